//! Dense kernels backed by faer. This is the only module of the project that names faer.

use faer::linalg::matmul::matmul as faer_matmul;
use faer::{Accum, MatMut, MatRef, Par};
use nnx_core::tensor::elementwise::BinaryOp;
use nnx_core::tensor::pool;
use nnx_core::{Array, DType, Result};

use crate::helper;
use crate::parallel;

/// Multiply-adds up to which a product runs as a plain loop: below this, a GEMM library's
/// dispatch costs more than the arithmetic (a tiny MLP's 4×8·8×8 layer).
const SMALL_PRODUCT: usize = 1 << 15;

/// How the operands of a float32 elementwise operation line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// The same shape.
    Same,
    /// The right operand is one row repeated along the left's leading axes (`x + bias`).
    Row,
    /// The right operand is a single value (`maximum(x, 0)`).
    Scalar,
}

impl Layout {
    /// The layout of `a op b` when it has a float32 kernel: `a` strongly typed float32 (so
    /// the result is too, whatever `b`'s weak type), `b` float32 or a weak scalar.
    pub(crate) fn of(
        a_shape: &[usize],
        a: (DType, bool),
        b_shape: &[usize],
        b: (DType, bool),
    ) -> Option<Layout> {
        let (a_dtype, a_weak) = a;
        let (b_dtype, b_weak) = b;
        if a_dtype != DType::F32 || a_weak {
            return None;
        }
        let scalar = b_shape.iter().product::<usize>() == 1 && b_shape.len() <= a_shape.len();
        match b_dtype {
            DType::F32 if a_shape == b_shape => Some(Layout::Same),
            DType::F32 if scalar => Some(Layout::Scalar),
            DType::F32 if !b_shape.is_empty() && a_shape.ends_with(b_shape) => Some(Layout::Row),
            DType::I32 | DType::U32 if b_weak && scalar => Some(Layout::Scalar),
            _ => None,
        }
    }
}

/// Applies `op` elementwise as one loop per operation, so that the compiler sees a fixed
/// operation and vectorises it: `out[i] = op(x[i], y[i])`. With `y` of length 1 the one value
/// is used for every element; with a `y` shorter than `x` it repeats row by row.
pub(crate) fn zip_op(op: BinaryOp, out: &mut [f32], x: Option<&[f32]>, y: &[f32]) {
    if out.is_empty() || y.is_empty() {
        return;
    }
    macro_rules! each {
        ($f:expr) => {{
            let f = $f;
            match (x, y) {
                (None, [q]) => out.iter_mut().for_each(|p| *p = f(*p, *q)),
                (Some(x), [q]) => out.iter_mut().zip(x).for_each(|(o, &p)| *o = f(p, *q)),
                (None, y) => {
                    for row in out.chunks_exact_mut(y.len()) {
                        row.iter_mut().zip(y).for_each(|(p, &q)| *p = f(*p, q));
                    }
                }
                (Some(x), y) => {
                    for (row, xs) in out.chunks_exact_mut(y.len()).zip(x.chunks_exact(y.len())) {
                        for ((o, &p), &q) in row.iter_mut().zip(xs).zip(y) {
                            *o = f(p, q);
                        }
                    }
                }
            }
        }};
    }
    match op {
        BinaryOp::Add => each!(|p: f32, q: f32| p + q),
        BinaryOp::Sub => each!(|p: f32, q: f32| p - q),
        BinaryOp::Mul => each!(|p: f32, q: f32| p * q),
        BinaryOp::Div => each!(|p: f32, q: f32| p / q),
        // maximum/minimum propagate NaN exactly as the reference's `BinaryOp::f32` does.
        BinaryOp::Maximum | BinaryOp::Minimum | BinaryOp::Pow => each!(|p, q| op.f32(p, q)),
    }
}

/// The right operand of a float32 elementwise kernel as a slice: the whole of `b` (same
/// shape or a row), or its one value converted to float32 (a scalar, possibly a weak
/// integer literal). `None` when `b` does not match `layout` against `len` elements.
fn right_operand(b: &Array, layout: Layout, len: usize) -> Option<std::borrow::Cow<'_, [f32]>> {
    use std::borrow::Cow;
    match layout {
        Layout::Scalar => {
            let q = match b.dtype() {
                DType::F32 => *b.as_slice::<f32>().ok()?.first()?,
                DType::I32 => *b.as_slice::<i32>().ok()?.first()? as f32,
                DType::U32 => *b.as_slice::<u32>().ok()?.first()? as f32,
                _ => return None,
            };
            Some(Cow::Owned(vec![q]))
        }
        Layout::Same | Layout::Row => {
            let y = rows_of(b)?;
            len.is_multiple_of(y.len()).then_some(Cow::Borrowed(y))
        }
    }
}

/// A float32 operand of an elementwise kernel, read in place: all its elements, or, for a
/// broadcast view (a bias or a scalar broadcast to a batch's shape), the one block it repeats
/// — which the kernels repeat row by row ([`zip_op`]) — so that the broadcast is never
/// copied. `None` for another dtype or an empty operand.
pub(crate) fn rows_of(a: &Array) -> Option<&[f32]> {
    let block = match a.is_contiguous() {
        true => None,
        false => a.strided::<f32>().ok()?.repeated_block(),
    };
    let y = match block {
        Some(block) => block,
        None => a.as_slice::<f32>().ok()?,
    };
    (!y.is_empty()).then_some(y)
}

/// `a` as a matrix of rows (axes `..split`) by columns (axes `split..`), read in place when
/// its rows or its columns are contiguous in memory (a dense array, a transposed one, a layer
/// sliced out of stacked weights: faer takes strided operands); any other view is copied
/// once. `None` for another dtype.
fn matrix(a: &Array, split: usize) -> Option<MatRef<'_, f32>> {
    let s = a.strided::<f32>().ok()?;
    if let Some((rows, row_stride, cols, col_stride)) = s.matrix(split)
        && rows > 0
        && cols > 0
    {
        // Every element is in bounds (the view's own invariant), which is what faer checks.
        let data = &s.data[s.offset..];
        if col_stride == 1 || cols == 1 {
            return Some(MatRef::from_row_major_slice_with_stride(
                data, rows, cols, row_stride,
            ));
        }
        if row_stride == 1 || rows == 1 {
            return Some(MatRef::from_column_major_slice_with_stride(
                data, rows, cols, col_stride,
            ));
        }
    }
    let x = a.as_slice::<f32>().ok()?;
    let rows = a.shape()[..split].iter().product();
    let cols = a.shape()[split..].iter().product();
    Some(MatRef::from_row_major_slice(x, rows, cols))
}

/// `a op b` for float32 `a` with the given [`Layout`] (which the caller established): one
/// pass over contiguous memory into a pooled buffer, the result sharing `a`'s shape. `None`
/// when the operands do not have that layout after all.
pub(crate) fn f32_binary(
    op: BinaryOp,
    a: &Array,
    b: &Array,
    layout: Layout,
) -> Option<Result<Array>> {
    let x = a.as_slice::<f32>().ok()?;
    let y = right_operand(b, layout, x.len())?;
    let mut out = pool::take(x.len());
    zip_op_split(op, &mut out, Some(x), &y);
    Some(Array::from_vec_like(a, out, false))
}

/// [`zip_op`] split across the threads when `out` is large, in pieces of whole repeats of
/// `y`: the same operation per element, so the same results.
fn zip_op_split(op: BinaryOp, out: &mut [f32], x: Option<&[f32]>, y: &[f32]) {
    let unit = y.len().max(1);
    let piece = (out.len().div_ceil(parallel::threads()).div_ceil(unit) * unit).max(unit);
    parallel::for_each_chunk(out, piece, |i, chunk| {
        let at = i * piece;
        zip_op(op, chunk, x.map(|x| &x[at..at + chunk.len()]), y);
    });
}

/// [`f32_binary`] computed in `a`'s buffer, when `a` is the only handle to it (an operand
/// read for the last time): `a` becomes the result without allocating. `false` (and `a`
/// untouched) when `a` is shared or the operands do not have the layout.
pub(crate) fn f32_binary_in_place(op: BinaryOp, a: &mut Array, b: &Array, layout: Layout) -> bool {
    if a.dtype() != DType::F32 || a.is_weak() {
        return false;
    }
    let len = a.shape().iter().product();
    let Some(y) = right_operand(b, layout, len) else {
        return false;
    };
    match a.unique_f32_mut() {
        Some(x) => {
            zip_op_split(op, x, None, &y);
            true
        }
        None => false,
    }
}

/// Whether `a @ b` is a float32 product with a matrix on the right small enough for
/// [`small_matmul`].
pub(crate) fn is_small_product(
    a_shape: &[usize],
    a: (DType, bool),
    b_shape: &[usize],
    b: (DType, bool),
) -> bool {
    a.0 == DType::F32
        && b.0 == DType::F32
        && !(a.1 && b.1)
        && !a_shape.is_empty()
        && b_shape.len() == 2
        && a_shape[a_shape.len() - 1] == b_shape[0]
        && a_shape.iter().product::<usize>().saturating_mul(b_shape[1]) <= SMALL_PRODUCT
}

/// `out += x · w` for row-major `x` of shape `(rows, k)` and `w` of shape `(k, n)`, as a
/// plain loop in the reference's summation order (over `k` for each output element).
fn product_into(x: &[f32], w: &[f32], k: usize, n: usize, out: &mut [f32]) {
    for (row, dst) in x.chunks_exact(k).zip(out.chunks_exact_mut(n.max(1))) {
        for (p, &xp) in row.iter().enumerate() {
            for (o, &wv) in dst.iter_mut().zip(&w[p * n..(p + 1) * n]) {
                *o += xp * wv;
            }
        }
    }
}

/// [`small_matmul`] when the operands qualify ([`is_small_product`]).
pub(crate) fn small_matmul_if_small(a: &Array, b: &Array) -> Option<Result<Array>> {
    let dtype = |x: &Array| (x.dtype(), x.is_weak());
    if is_small_product(a.shape(), dtype(a), b.shape(), dtype(b)) {
        small_matmul(a, b)
    } else {
        None
    }
}

/// `a @ b` for a float32 `a` of shape `(…, k)` and matrix `b` of shape `(k, n)`, as a plain
/// loop (the reference's summation order). `None` when the operands are not of that form.
pub(crate) fn small_matmul(a: &Array, b: &Array) -> Option<Result<Array>> {
    let (x, w) = (a.as_slice::<f32>().ok()?, b.as_slice::<f32>().ok()?);
    let (&k, &[kb, n]) = (a.shape().last()?, b.shape()) else {
        return None;
    };
    if k != kb || k == 0 || x.len() % k != 0 {
        return None;
    }
    let rows = x.len() / k;
    let mut out = pool::take_zeroed(rows * n);
    product_into(x, w, k, n, &mut out);
    if n == k {
        // A square layer keeps the input's shape: share it.
        return Some(Array::from_vec_like(a, out, false));
    }
    let mut shape = a.shape().to_vec();
    if let Some(last) = shape.last_mut() {
        *last = n;
    }
    Some(Array::from_vec(&shape, out))
}

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
    if rb == 2
        && b.shape()[0] == k
        && let Some(result) = matmul_matrix(a, b, None)
    {
        return result;
    }
    if ra == rb && ra > 2 && a.shape()[..ra - 2] == b.shape()[..rb - 2] && b.shape()[rb - 2] == k {
        let batch: usize = a.shape()[..ra - 2].iter().product();
        let (m, n) = (a.shape()[ra - 2], b.shape()[rb - 1]);
        let mut shape = a.shape()[..ra - 1].to_vec();
        shape.push(n);
        if k == 1 {
            // Outer products (per-example weight gradients): one pass writing each output
            // once, `0 + x·w` exactly as the reference's accumulation computes it.
            let (x, w) = (a.as_slice::<f32>()?, b.as_slice::<f32>()?);
            let mut out = pool::take(batch * m * n);
            if m > 0 && n > 0 {
                parallel::for_each_chunk(&mut out, m * n, |i, dst| {
                    let (xs, ws) = (&x[i * m..(i + 1) * m], &w[i * n..(i + 1) * n]);
                    for (row, &xi) in dst.chunks_exact_mut(n).zip(xs) {
                        row.iter_mut()
                            .zip(ws)
                            .for_each(|(o, &wj)| *o = 0.0 + xi * wj);
                    }
                });
            }
            return Array::from_vec(&shape, out);
        }
        if batch.saturating_mul(m * k).saturating_mul(n) <= SMALL_PRODUCT && k > 0 {
            let (x, w) = (a.as_slice::<f32>()?, b.as_slice::<f32>()?);
            let mut out = pool::take_zeroed(batch * m * n);
            for i in 0..batch {
                product_into(
                    &x[i * m * k..(i + 1) * m * k],
                    &w[i * k * n..(i + 1) * k * n],
                    k,
                    n,
                    &mut out[i * m * n..(i + 1) * m * n],
                );
            }
            return Array::from_vec(&shape, out);
        }
        let data = gemm(a.as_slice::<f32>()?, b.as_slice::<f32>()?, batch, m, k, n);
        return Array::from_vec(&shape, data);
    }
    a.matmul(b)
}

/// `a @ b` for a float32 `a` of shape `(…, k)` (leading axes flattened into rows) and a
/// float32 matrix `b` of shape `(k, n)`: one faer GEMM reading both operands in place —
/// views included, so a transposed operand is never copied — with `epilogue` run on the
/// result's rows as they are computed. `None` when the operands are not of that form.
pub(crate) fn matmul_matrix(
    a: &Array,
    b: &Array,
    epilogue: Option<Epilogue<'_>>,
) -> Option<Result<Array>> {
    if a.dtype() != DType::F32 || b.dtype() != DType::F32 {
        return None;
    }
    let &[k, n] = b.shape() else { return None };
    let shape = a.shape();
    if shape.last() != Some(&k) {
        return None;
    }
    // Rows from the shape, not from the data: with `k = 0` there is no data.
    let m: usize = shape[..shape.len() - 1].iter().product();
    let mut shape = shape.to_vec();
    *shape.last_mut()? = n;
    if m == 0 || n == 0 || k == 0 {
        return Some(Array::from_vec(&shape, pool::take_zeroed(m * n)));
    }
    let (lhs, rhs) = (matrix(a, a.ndim() - 1)?, matrix(b, 1)?);
    // Every element is overwritten (`Accum::Replace`): no zero-fill.
    let mut out = pool::take(m * n);
    product(&mut out, lhs, rhs, epilogue);
    Some(Array::from_vec(&shape, out))
}

/// `batch` row-major products `(m, k) × (k, n)`, one matrix of each operand per batch entry.
fn gemm(a: &[f32], b: &[f32], batch: usize, m: usize, k: usize, n: usize) -> Vec<f32> {
    if m == 0 || n == 0 || k == 0 {
        return pool::take_zeroed(batch * m * n);
    }
    // Every element is overwritten (`Accum::Replace`): no zero-fill.
    let mut out = pool::take(batch * m * n);
    // Product `i` of the batch into `out`; `alone` when it may use every thread itself.
    let one = |i: usize, out: &mut [f32], alone: bool| {
        let lhs = MatRef::from_row_major_slice(&a[i * m * k..(i + 1) * m * k], m, k);
        let rhs = MatRef::from_row_major_slice(&b[i * k * n..(i + 1) * k * n], k, n);
        if alone {
            product(out, lhs, rhs, None);
        } else {
            let dst = MatMut::from_row_major_slice_mut(out, m, n);
            faer_matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
        }
    };
    if batch > 1 && batch >= parallel::threads() {
        // Independent products: one run of them per thread, each sequential.
        parallel::for_each_chunk(&mut out, m * n, |i, c| one(i, c, false));
    } else {
        out.chunks_exact_mut(m * n)
            .enumerate()
            .for_each(|(i, c)| one(i, c, true));
    }
    out
}

/// What a fused product applies to its result, a block of whole rows at a time (the bias
/// and activation of a dense layer, a relu mask), while the block is still in cache: called
/// with the index of the block's first element in the result, and the block.
pub(crate) type Epilogue<'a> = &'a (dyn Fn(usize, &mut [f32]) + Sync);

/// `out = lhs · rhs` (every element overwritten; `out` row-major), then `epilogue` on it.
/// Large products are split across threads by blocks of rows of the result, each thread one
/// sequential GEMM on its block followed by the epilogue on that block (no synchronisation
/// inside the product, no second pass over memory).
fn product(
    out: &mut [f32],
    lhs: MatRef<'_, f32>,
    rhs: MatRef<'_, f32>,
    epilogue: Option<Epilogue<'_>>,
) {
    let (m, k, n) = (lhs.nrows(), lhs.ncols(), rhs.ncols());
    // The product of `lhs`'s rows from `first` on into `out`, then the epilogue.
    let one = |out: &mut [f32], first: usize, lhs: MatRef<'_, f32>| {
        let rows = lhs.nrows();
        let dst = MatMut::from_row_major_slice_mut(out, rows, n);
        faer_matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
        if let Some(epilogue) = epilogue {
            epilogue(first * n, out);
        }
    };
    let blocks = parallel::row_blocks(m, k * n);
    if blocks <= 1 || n == 0 {
        one(out, 0, lhs);
        return;
    }
    let rows = m.div_ceil(blocks);
    let parts: Vec<std::sync::Mutex<Option<&mut [f32]>>> = out
        .chunks_mut(rows * n)
        .map(|block| std::sync::Mutex::new(Some(block)))
        .collect();
    helper::run_parts(parts.len(), &|i| {
        let block = parts[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(block) = block {
            one(block, i * rows, lhs.subrows(i * rows, block.len() / n));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(shape: &[usize], f: impl Fn(usize) -> f32) -> Array {
        let n: usize = shape.iter().product();
        Array::from_vec(shape, (0..n).map(f).collect()).unwrap()
    }

    #[test]
    fn large_elementwise_operations_agree_with_the_reference_on_every_split() {
        let values = |i: usize| (i as f32 * 0.37).sin();
        let x = arr(&[300, 500], values);
        let same = arr(&[300, 500], |i| (i as f32 * 0.11).cos() + 2.0);
        let row = arr(&[500], |i| i as f32 * 0.5 + 1.0);
        let scalar = Array::scalar(3.0f32);
        for (b, layout) in [
            (&same, Layout::Same),
            (&row, Layout::Row),
            (&scalar, Layout::Scalar),
        ] {
            for op in [BinaryOp::Sub, BinaryOp::Div] {
                let reference = x.binary(op, b).unwrap();
                for parallelism in [
                    crate::Parallelism::Sequential,
                    crate::Parallelism::Threads(2),
                ] {
                    let before = crate::Fast::parallelism();
                    crate::Fast::set_parallelism(parallelism);
                    let fast = f32_binary(op, &x, b, layout).unwrap().unwrap();
                    let mut in_place = arr(&[300, 500], values);
                    let computed_in = f32_binary_in_place(op, &mut in_place, b, layout);
                    crate::Fast::set_parallelism(before);
                    assert!(
                        fast.identical(&reference),
                        "{op:?} {layout:?} {parallelism:?}"
                    );
                    assert!(
                        computed_in && in_place.identical(&reference),
                        "{op:?} {layout:?}"
                    );
                }
            }
        }
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
            // Empty inner dimension: zeros of the result's shape.
            (vec![3, 0], vec![0, 2]),
            (vec![2, 3, 0], vec![0, 4]),
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

    /// Views as GEMM operands are read in place (no copy is made) and give the reference's
    /// products: transposes, a layer out of stacked weights, a broadcast row block, and a
    /// layout faer cannot take (copied first).
    #[test]
    fn products_read_views_in_place() {
        let x = arr(&[3, 70, 90], |i| (i as f32 * 0.37).sin());
        let w = arr(&[4, 90, 50], |i| (i as f32 * 0.11).cos());
        let layer = w.index_axis(0, 2).unwrap();
        let cases = [
            (x.index_axis(0, 1).unwrap(), layer.clone()),
            (
                x.index_axis(0, 0)
                    .unwrap()
                    .transpose()
                    .compact()
                    .transpose(),
                layer.transpose().compact().transpose(),
            ),
            (
                x.permute_axes(&[0, 2, 1])
                    .unwrap()
                    .index_axis(0, 2)
                    .unwrap()
                    .transpose(),
                layer.clone(),
            ),
            (
                arr(&[90], |i| i as f32).broadcast_to(&[8, 90]).unwrap(),
                layer.clone(),
            ),
            (x.permute_axes(&[1, 0, 2]).unwrap(), layer.clone()),
        ];
        for (a, b) in cases {
            assert!(matrix(&b, 1).is_some());
            let fast = matmul_matrix(&a, &b, None).unwrap().unwrap();
            let reference = a.compact().matmul(&b.compact()).unwrap();
            assert_eq!(fast.shape(), reference.shape());
            assert!(
                fast.allclose(&reference, 1e-5, 1e-5).unwrap(),
                "{:?}",
                a.shape()
            );
        }
        // In place: the operand's own memory is what faer reads.
        let t = layer.transpose();
        let m = matrix(&t, 1).unwrap();
        let base = layer.as_slice::<f32>().unwrap();
        assert_eq!(m.as_ptr(), base.as_ptr());
        assert_eq!((m.row_stride(), m.col_stride()), (1, 50));
    }

    #[test]
    fn small_kernels_agree_with_the_reference_kernels() {
        let x = arr(&[4, 8], |i| (i as f32 * 0.37).sin());
        let w = arr(&[8, 3], |i| (i as f32 * 0.11).cos());
        let bias = arr(&[8], |i| i as f32 - 4.0);
        let small = small_matmul(&x, &w).unwrap().unwrap();
        assert!(small.allclose(&x.matmul(&w).unwrap(), 1e-6, 1e-6).unwrap());
        for (b, layout) in [
            (bias.clone(), Layout::Row),
            // A broadcast view: its one row is read in place, never expanded.
            (bias.broadcast_to(x.shape()).unwrap(), Layout::Same),
            (
                Array::scalar(0.5f32).broadcast_to(x.shape()).unwrap(),
                Layout::Same,
            ),
            (x.clone(), Layout::Same),
            (Array::weak_scalar(0i32), Layout::Scalar),
            (Array::scalar(f32::NAN), Layout::Scalar),
        ] {
            for op in [BinaryOp::Add, BinaryOp::Maximum, BinaryOp::Div] {
                let fast = f32_binary(op, &x, &b, layout).unwrap().unwrap();
                let reference = x.binary(op, &b).unwrap();
                assert!(fast.identical(&reference), "{op:?} {layout:?}");
                assert_eq!(fast.is_weak(), reference.is_weak());
                let mut owned = Array::from_vec(x.shape(), x.to_vec::<f32>().unwrap()).unwrap();
                assert!(f32_binary_in_place(op, &mut owned, &b, layout));
                assert!(owned.identical(&reference), "in place {op:?} {layout:?}");
                // A shared operand is never written.
                let mut shared = x.clone();
                assert!(!f32_binary_in_place(op, &mut shared, &b, layout));
                assert!(shared.identical(&x));
            }
            assert_eq!(
                Layout::of(
                    x.shape(),
                    (x.dtype(), x.is_weak()),
                    b.shape(),
                    (b.dtype(), b.is_weak())
                ),
                Some(layout)
            );
        }
    }
}
