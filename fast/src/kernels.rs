//! Dense kernels backed by faer. This is the only module of the project that names faer.

use faer::linalg::matmul::matmul as faer_matmul;
use faer::{Accum, MatMut, MatRef, Par};
use nnx_core::{Array, DType, Result};

/// `a @ b` with numpy semantics. float32 products whose right operand is a matrix — the
/// shape of every dense layer, batched or not — run as one faer GEMM over all leading axes
/// (`(B·m, k) × (k, n)`); same-shaped batches of matrices run as one GEMM per batch entry.
/// Everything else uses the reference kernel.
///
/// # Errors
/// The reference kernel's shape and dtype errors.
pub(crate) fn matmul(a: &Array, b: &Array) -> Result<Array> {
    if a.dtype() != DType::F32
        || b.dtype() != DType::F32
        || a.ndim() == 0
        || b.ndim() == 0
        || (a.is_weak() && b.is_weak())
    {
        return a.matmul(b);
    }
    let (ra, rb) = (a.ndim(), b.ndim());
    let k = a.shape()[ra - 1];
    if rb == 2 && b.shape()[0] == k {
        let n = b.shape()[1];
        let rows: usize = a.shape()[..ra - 1].iter().product();
        let data = gemm(
            a.as_slice::<f32>()?,
            b.as_slice::<f32>()?,
            1,
            rows,
            k,
            n,
            false,
        );
        let mut shape = a.shape()[..ra - 1].to_vec();
        shape.push(n);
        return Array::from_vec(&shape, data);
    }
    if ra == rb && ra > 2 && a.shape()[..ra - 2] == b.shape()[..rb - 2] && b.shape()[rb - 2] == k {
        let batch: usize = a.shape()[..ra - 2].iter().product();
        let (m, n) = (a.shape()[ra - 2], b.shape()[rb - 1]);
        let data = gemm(
            a.as_slice::<f32>()?,
            b.as_slice::<f32>()?,
            batch,
            m,
            k,
            n,
            true,
        );
        let mut shape = a.shape()[..ra - 1].to_vec();
        shape.push(n);
        return Array::from_vec(&shape, data);
    }
    a.matmul(b)
}

/// Multiply-adds above which one product is worth splitting across threads.
const PARALLEL_THRESHOLD: usize = 1 << 21;

/// `batch` row-major products `(m, k) × (k, n)`; `rhs_batched` says whether `b` holds one
/// matrix per batch entry or a single shared one.
fn gemm(
    a: &[f32],
    b: &[f32],
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    rhs_batched: bool,
) -> Vec<f32> {
    let mut out = vec![0.0f32; batch * m * n];
    if m == 0 || n == 0 {
        return out;
    }
    // Large products use every thread faer is configured with (all cores by default); small
    // ones stay on the calling thread, where the parallel overhead would dominate.
    let par = if m * k * n >= PARALLEL_THRESHOLD {
        faer::get_global_parallelism()
    } else {
        Par::Seq
    };
    for i in 0..batch {
        let lhs = MatRef::from_row_major_slice(&a[i * m * k..(i + 1) * m * k], m, k);
        let rhs_start = if rhs_batched { i * k * n } else { 0 };
        let rhs = MatRef::from_row_major_slice(&b[rhs_start..rhs_start + k * n], k, n);
        let dst = MatMut::from_row_major_slice_mut(&mut out[i * m * n..(i + 1) * m * n], m, n);
        faer_matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, par);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(shape: &[usize], f: impl Fn(usize) -> f32) -> Array {
        let n: usize = shape.iter().product();
        Array::from_vec(shape, (0..n).map(f).collect()).unwrap()
    }

    #[test]
    fn agrees_with_the_reference_kernel() {
        let cases: Vec<(Vec<usize>, Vec<usize>)> = vec![
            (vec![3, 4], vec![4, 5]),
            (vec![2, 3, 4], vec![4, 5]),
            (vec![4], vec![4, 5]),
            (vec![2, 3, 4], vec![2, 4, 5]),
            (vec![2, 3, 4], vec![4]),
            (vec![0, 4], vec![4, 3]),
        ];
        for (sa, sb) in cases {
            let a = arr(&sa, |i| (i as f32 * 0.37).sin());
            let b = arr(&sb, |i| (i as f32 * 0.11).cos());
            let fast = matmul(&a, &b).unwrap();
            let reference = a.matmul(&b).unwrap();
            assert!(
                fast.allclose(&reference, 1e-5, 1e-6).unwrap(),
                "{sa:?} @ {sb:?}"
            );
            assert_eq!(fast.shape(), reference.shape());
        }
    }
}
