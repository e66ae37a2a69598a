//! Matrix multiplication with numpy's `matmul` semantics.

use super::shape::broadcast_shapes;
use super::{Array, Buffer, DType, Element, promote};
use crate::error::{Error, Result};

impl Array {
    /// `self @ other` with numpy semantics: 1-D operands are promoted to a row (left) or a
    /// column (right) vector and the added axis removed afterwards; leading (batch) axes
    /// broadcast. Accumulates in the operands' dtype (float32 stays float32, as in JAX).
    ///
    /// # Errors
    /// [`Error::Shape`] for 0-d operands, [`Error::MatmulShape`] when the contracting
    /// dimensions differ, [`Error::Broadcast`] when the batch axes do not broadcast,
    /// [`Error::UnsupportedDType`] for bool or key operands.
    ///
    /// ```
    /// # use nnx_core::Array;
    /// let x = Array::from_slice(&[1.0f32, 2.0]);
    /// let w = Array::from_vec(&[2, 3], vec![1.0f32, 0.0, 1.0, 0.0, 1.0, 1.0]).unwrap();
    /// let y = x.matmul(&w).unwrap();
    /// assert_eq!(y.shape(), &[3]);
    /// assert_eq!(y.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0]);
    /// ```
    pub fn matmul(&self, other: &Array) -> Result<Array> {
        let out_shape = matmul_shape(self.shape(), other.shape())?;
        let (dtype, weak) = promote(self.dtype(), self.is_weak(), other.dtype(), other.is_weak())
            .filter(|(d, _)| d.is_numeric())
            .ok_or(Error::DTypeMismatch {
                op: "matmul",
                lhs: self.dtype(),
                rhs: other.dtype(),
            })?;
        super::alloc::check_allocation(&out_shape, dtype)?;
        let lhs = self.astype(dtype)?;
        let rhs = other.astype(dtype)?;
        let lhs_vector = lhs.ndim() == 1;
        let rhs_vector = rhs.ndim() == 1;
        let lhs = if lhs_vector { lhs.expand_dims(0)? } else { lhs };
        let rhs = if rhs_vector {
            rhs.expand_dims(-1)?
        } else {
            rhs
        };
        let (m, k) = last_two(lhs.shape());
        let n = rhs.shape()[rhs.ndim() - 1];
        let lhs_batch = &lhs.shape()[..lhs.ndim() - 2];
        let rhs_batch = &rhs.shape()[..rhs.ndim() - 2];
        let batch = broadcast_shapes("matmul", lhs_batch, rhs_batch)?;
        let batch_size: usize = batch.iter().product();
        let lhs = lhs.broadcast_to(&[batch.as_slice(), &[m, k]].concat())?;
        let rhs = rhs.broadcast_to(&[batch.as_slice(), &[k, n]].concat())?;
        let dims = GemmDims {
            batch: batch_size,
            m,
            k,
            n,
        };
        let buffer = match (lhs.buffer(), rhs.buffer()) {
            (Buffer::F32(a), Buffer::F32(b)) => {
                f32::into_buffer(gemm(a, b, dims, |x, y, acc: f32| acc + x * y))
            }
            (Buffer::I32(a), Buffer::I32(b)) => {
                i32::into_buffer(gemm(a, b, dims, |x: i32, y, acc| {
                    acc.wrapping_add(x.wrapping_mul(y))
                }))
            }
            (Buffer::U32(a), Buffer::U32(b)) => {
                u32::into_buffer(gemm(a, b, dims, |x: u32, y, acc| {
                    acc.wrapping_add(x.wrapping_mul(y))
                }))
            }
            _ => {
                return Err(Error::UnsupportedDType {
                    op: "matmul",
                    dtype,
                    expected: Some("int32, uint32 or float32"),
                });
            }
        };
        debug_assert_ne!(dtype, DType::Key);
        Ok(Array::from_parts(out_shape, buffer, weak))
    }
}

/// The shape of `lhs @ rhs` (numpy `matmul`), validating the operands' shapes.
pub(crate) fn matmul_shape(lhs: &[usize], rhs: &[usize]) -> Result<Vec<usize>> {
    if lhs.is_empty() || rhs.is_empty() {
        return Err(Error::shape(
            "matmul",
            format!("operands must have at least one dimension, got shapes {lhs:?} and {rhs:?}"),
        ));
    }
    let l: Vec<usize> = if lhs.len() == 1 {
        vec![1, lhs[0]]
    } else {
        lhs.to_vec()
    };
    let r: Vec<usize> = if rhs.len() == 1 {
        vec![rhs[0], 1]
    } else {
        rhs.to_vec()
    };
    let (m, k) = last_two(&l);
    let (k2, n) = last_two(&r);
    if k != k2 {
        return Err(Error::MatmulShape {
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
            lhs_inner: k,
            rhs_inner: k2,
        });
    }
    let mut out = broadcast_shapes("matmul", &l[..l.len() - 2], &r[..r.len() - 2])?;
    if lhs.len() > 1 {
        out.push(m);
    }
    if rhs.len() > 1 {
        out.push(n);
    }
    super::alloc::element_count(&out)?;
    Ok(out)
}

fn last_two(shape: &[usize]) -> (usize, usize) {
    (shape[shape.len() - 2], shape[shape.len() - 1])
}

#[derive(Clone, Copy)]
struct GemmDims {
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
}

/// A plain batched GEMM in `i, p, j` loop order: `c[b, i, j] = Σ_p a[b, i, p] · b[b, p, j]`.
fn gemm<T: Element + Default>(a: &[T], b: &[T], d: GemmDims, fma: impl Fn(T, T, T) -> T) -> Vec<T> {
    let GemmDims { batch, m, k, n } = d;
    let mut c = vec![T::default(); batch * m * n];
    for bi in 0..batch {
        let a = &a[bi * m * k..(bi + 1) * m * k];
        let b = &b[bi * k * n..(bi + 1) * k * n];
        let c = &mut c[bi * m * n..(bi + 1) * m * n];
        for i in 0..m {
            let row = &mut c[i * n..(i + 1) * n];
            for p in 0..k {
                let x = a[i * k + p];
                let b_row = &b[p * n..(p + 1) * n];
                for (acc, &y) in row.iter_mut().zip(b_row) {
                    *acc = fma(x, y, *acc);
                }
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], data: Vec<f32>) -> Array {
        Array::from_vec(shape, data).unwrap()
    }

    #[test]
    fn two_d_times_two_d() {
        let a = t(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let b = t(&[2, 1], vec![5.0, 6.0]);
        let c = a.matmul(&b).unwrap();
        assert_eq!(c.shape(), &[2, 1]);
        assert_eq!(c.to_vec::<f32>().unwrap(), vec![17.0, 39.0]);
    }

    #[test]
    fn vectors_contract_to_a_scalar() {
        let v = t(&[3], vec![1.0, 2.0, 3.0]);
        let s = v.matmul(&v).unwrap();
        assert_eq!(s.shape(), &[] as &[usize]);
        assert_eq!(s.item::<f32>().unwrap(), 14.0);
    }

    #[test]
    fn batch_axes_broadcast() {
        let a = Array::ones(&[4, 1, 2, 3]);
        let b = Array::ones(&[5, 3, 2]);
        let c = a.matmul(&b).unwrap();
        assert_eq!(c.shape(), &[4, 5, 2, 2]);
        assert!(c.to_vec::<f32>().unwrap().iter().all(|&x| x == 3.0));
    }

    #[test]
    fn contracting_mismatch_names_both_shapes() {
        let err = Array::ones(&[2, 3])
            .matmul(&Array::ones(&[2, 3]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "matmul: contracting dimensions differ: lhs shape [2, 3] has 3 columns, rhs shape [2, 3] has 2 rows"
        );
        assert!(Array::scalar(1.0f32).matmul(&Array::ones(&[1])).is_err());
    }

    #[test]
    fn integer_matmul() {
        let a = Array::arange(4).reshape(&[2, 2]).unwrap();
        assert_eq!(
            a.matmul(&a).unwrap().to_vec::<i32>().unwrap(),
            vec![2, 3, 6, 11]
        );
    }
}
