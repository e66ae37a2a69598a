//! The fast kernel for float32 triangular solves (`lax.linalg.triangular_solve`, which the
//! QR's derivatives run): the right-hand sides copied once into a pooled buffer and solved
//! in place, split across threads by independent blocks — each matrix's right-hand side on
//! the left (its columns interleave in memory), each row on the right. Every column or row
//! is one substitution in the reference's order ([`TriangularSolve::solve_in_place`]), so
//! the results are identical however the blocks are split.

use nnx_core::tensor::{TriangularSolve, pool};
use nnx_core::{Array, Result};

use crate::parallel;

/// `triangular_solve(a, b)` for contiguous float32 operands; `None` for others.
pub(crate) fn triangular_solve(
    spec: TriangularSolve,
    a: &Array,
    b: &Array,
) -> Option<Result<Array>> {
    let (matrices, rhs) = (a.as_slice::<f32>().ok()?, b.as_slice::<f32>().ok()?);
    let run = || -> Result<Array> {
        let shape = spec.check((a.shape(), a.dtype()), (b.shape(), b.dtype()))?;
        let m = a.shape()[a.ndim() - 1];
        let mut out = pool::take(rhs.len());
        out.copy_from_slice(rhs);
        let count = matrices.len() / (m * m).max(1);
        if count > 0 && m > 0 && !out.is_empty() {
            let block = out.len() / count;
            let unit = if spec.left_side { block } else { m };
            parallel::for_each_chunk(&mut out, unit, |k, dst| {
                let matrix = k * unit / block;
                spec.solve_in_place(&matrices[matrix * m * m..][..m * m], m, dst);
            });
        }
        Ok(Array::from_vec(&shape, out)?.with_weak(a.is_weak() && b.is_weak()))
    };
    Some(run())
}

#[cfg(test)]
mod tests {
    use nnx_core::program::Primitive;

    use super::*;
    use crate::test_util::{agrees_on_every_split, arr};

    /// `x` plus 3 on each matrix's diagonal (well conditioned).
    fn dominant(shape: &[usize]) -> Array {
        let m = shape[shape.len() - 1];
        let mut data = arr(shape, 0.5).to_vec::<f32>().unwrap();
        for (e, v) in data.iter_mut().enumerate() {
            if e % (m * m) / m == e % m {
                *v += 3.0;
            }
        }
        Array::from_vec(shape, data).unwrap()
    }

    #[test]
    fn triangular_solves_agree_with_the_reference_bit_for_bit() {
        let cases = [
            // Small: a vector, one matrix, a batch.
            ([3, 3].as_slice(), [3].as_slice(), [3].as_slice()),
            (&[3, 3], &[3, 2], &[2, 3]),
            (&[2, 4, 4], &[2, 4, 3], &[2, 3, 4]),
            // Large enough to be split across threads, on either side.
            (&[8, 64, 64], &[8, 64, 160], &[8, 160, 64]),
            // Empty.
            (&[0, 2, 2], &[0, 2, 5], &[0, 5, 2]),
        ];
        for (a_shape, left_b, right_b) in cases {
            let a = dominant(a_shape);
            for flags in 0..16u8 {
                let spec = TriangularSolve {
                    left_side: flags & 1 != 0,
                    lower: flags & 2 != 0,
                    transpose_a: flags & 4 != 0,
                    unit_diagonal: flags & 8 != 0,
                };
                let b = arr(if spec.left_side { left_b } else { right_b }, 1.5);
                let primitive = Primitive::TriangularSolve(spec);
                agrees_on_every_split(crate::ops::eval, &primitive, &[a.clone(), b]);
            }
        }
    }

    #[test]
    fn mismatched_operands_are_errors() {
        let spec = TriangularSolve::default();
        let err = triangular_solve(spec, &arr(&[3, 3], 0.0), &arr(&[3, 2], 0.0));
        assert!(matches!(err, Some(Err(nnx_core::Error::Shape { .. }))));
    }
}
