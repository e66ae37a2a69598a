//! Fast kernels for float32 indexing and along-axis operations: `take` (an embedding lookup)
//! and its transpose (the lookup's gradient, a scatter-add), `cumsum`, `argmax`/`argmin` and
//! `dynamic_update_slice` (a decode cache written at a step). Each views its operand as
//! `(outer, n, inner)` around the axis and runs one pass into a pooled buffer — split across
//! threads by independent blocks (rows of a lookup, outer blocks of a scatter, a sum or an
//! update) where the buffer is large — with exactly the reference's operations in the
//! reference's order, so the results are identical. `dynamic_slice` needs no kernel: it is a
//! view, on every engine.

use nnx_core::tensor::{ArgOp, check_update, pool, take_rows, window_start};
use nnx_core::{Array, DType, Result};

use crate::parallel;

/// `shape` around `axis`: the product of the axes before it, its length, the product of the
/// axes after it.
fn around(shape: &[usize], axis: usize) -> Option<(usize, usize, usize)> {
    let n = *shape.get(axis)?;
    Some((
        shape[..axis].iter().product(),
        n,
        shape[axis + 1..].iter().product(),
    ))
}

/// A contiguous float32 operand's elements.
fn f32_data(x: &Array) -> Option<&[f32]> {
    x.as_slice::<f32>().ok()
}

/// `jnp.take(table, indices, axis)` for a float32 table: each output row (`inner` elements)
/// copied from the table row its index names, or filled (NaN in `'fill'` mode, else zero).
pub(crate) fn take(
    axis: usize,
    fill: bool,
    table: &Array,
    indices: &Array,
) -> Option<Result<Array>> {
    let data = f32_data(table)?;
    let (outer, n, inner) = around(table.shape(), axis)?;
    let run = || -> Result<Array> {
        let rows = take_rows(indices, n)?;
        let shape = nnx_core::tensor::take_shape(table.shape(), indices.shape(), axis);
        nnx_core::tensor::check_allocation(&shape, DType::F32)?;
        let missing = if fill { f32::NAN } else { 0.0 };
        let mut out = pool::take(outer * rows.len() * inner);
        parallel::for_each_chunk(&mut out, inner, |k, dst| {
            let (o, j) = (k / rows.len(), k % rows.len());
            match rows[j] {
                Some(r) => dst.copy_from_slice(&data[(o * n + r) * inner..][..inner]),
                None => dst.fill(missing),
            }
        });
        Ok(Array::from_vec(&shape, out)?.with_weak(table.is_weak()))
    };
    Some(run())
}

/// The transpose of [`take`]: `cotangent`'s rows added into zeros of the table's shape at
/// their indices (dropped when out of range), in index order, each outer block on its own.
pub(crate) fn take_transpose(
    axis: usize,
    size: usize,
    cotangent: &Array,
    indices: &Array,
) -> Option<Result<Array>> {
    let data = f32_data(cotangent)?;
    let run = || -> Result<Array> {
        let shape =
            nnx_core::tensor::take_transpose_shape(cotangent.shape(), indices.shape(), axis, size)?;
        let rows = take_rows(indices, size)?;
        let (_, n, inner) = around(&shape, axis).unwrap_or((0, 0, 0));
        let mut out = pool::take_zeroed(shape.iter().product());
        parallel::for_each_chunk(&mut out, (n * inner).max(1), |o, block| {
            for (j, row) in rows.iter().enumerate() {
                if let Some(r) = row {
                    let from = &data[(o * rows.len() + j) * inner..][..inner];
                    let to = &mut block[r * inner..(r + 1) * inner];
                    to.iter_mut().zip(from).for_each(|(t, &f)| *t += f);
                }
            }
        });
        Ok(Array::from_vec(&shape, out)?.with_weak(cotangent.is_weak()))
    };
    Some(run())
}

/// `jnp.cumsum` along `axis` (from the end when `reverse`): each line's running sum, the
/// first element kept and every later one added to the sum before it, vectorised over the
/// `inner` lines of an outer block.
pub(crate) fn cumsum(axis: usize, reverse: bool, x: &Array) -> Option<Result<Array>> {
    let data = f32_data(x)?;
    let (_, n, inner) = around(x.shape(), axis)?;
    let mut out = pool::take(data.len());
    parallel::for_each_chunk(&mut out, (n * inner).max(1), |o, block| {
        let src = &data[o * n * inner..][..block.len()];
        block.copy_from_slice(src);
        for step in 1..n {
            let (k, previous) = match reverse {
                false => (step, step - 1),
                true => (n - 1 - step, n - step),
            };
            let (lo, hi) = block.split_at_mut(k.max(previous) * inner);
            let (dst, prev) = match reverse {
                false => (&mut hi[..inner], &lo[previous * inner..][..inner]),
                true => (&mut lo[k * inner..][..inner], &hi[..inner]),
            };
            // `p + d`, the reference's operand order (a NaN's payload follows the first).
            #[allow(clippy::assign_op_pattern)]
            dst.iter_mut().zip(prev).for_each(|(d, &p)| *d = p + *d);
        }
    });
    Some(Array::from_vec(x.shape(), out).map(|a| a.with_weak(x.is_weak())))
}

/// `jnp.argmax`/`jnp.argmin` along `axis` of a float32 array: the first position of each
/// line's extremum, a NaN counting as the extremum (its first position wins), as the
/// reference — reading rows in order, the `inner` lines of an outer block side by side,
/// instead of one strided line at a time.
pub(crate) fn arg_reduce(op: ArgOp, axis: usize, x: &Array) -> Option<Result<Array>> {
    let data = f32_data(x)?;
    let (outer, n, inner) = around(x.shape(), axis)?;
    if n == 0 {
        // The reference's error for an empty axis.
        return None;
    }
    let better = |a: f32, b: f32| {
        !b.is_nan()
            && (a.is_nan()
                || match op {
                    ArgOp::Max => a > b,
                    ArgOp::Min => a < b,
                })
    };
    let mut best = vec![0i32; outer * inner];
    // The lines of an outer block side by side: the best value so far per line.
    let mut values = vec![0.0f32; inner];
    for (o, positions) in best.chunks_exact_mut(inner.max(1)).enumerate() {
        let block = &data[o * n * inner..][..n * inner];
        values.copy_from_slice(&block[..inner]);
        for k in 1..n {
            let row = &block[k * inner..(k + 1) * inner];
            for ((value, position), &v) in values.iter_mut().zip(positions.iter_mut()).zip(row) {
                if better(v, *value) {
                    *value = v;
                    *position = k as i32;
                }
            }
        }
    }
    let mut shape = x.shape().to_vec();
    shape.remove(axis);
    Some(Array::from_vec(&shape, best))
}

/// `lax.dynamic_update_slice_in_dim` for float32 operands: the operand copied once with the
/// update written over the window at the clamped start.
pub(crate) fn dynamic_update_slice(
    axis: usize,
    operand: &Array,
    update: &Array,
    start: &Array,
) -> Option<Result<Array>> {
    let (data, new) = (f32_data(operand)?, f32_data(update)?);
    // Weak operands take the reference's path (its concatenation decides the weak type).
    if operand.is_weak() || update.is_weak() {
        return None;
    }
    let run = || -> Result<Array> {
        check_update(
            operand.shape(),
            operand.dtype(),
            update.shape(),
            update.dtype(),
            axis,
        )?;
        let (_, n, inner) = around(operand.shape(), axis).unwrap_or((0, 0, 0));
        let size = update.shape()[axis];
        let from = window_start(start, n, size)?;
        let mut out = pool::take(data.len());
        parallel::for_each_chunk(&mut out, (n * inner).max(1), |o, block| {
            block.copy_from_slice(&data[o * n * inner..][..block.len()]);
            block[from * inner..(from + size) * inner]
                .copy_from_slice(&new[o * size * inner..][..size * inner]);
        });
        Array::from_vec(operand.shape(), out)
    };
    Some(run())
}

#[cfg(test)]
mod tests {
    use nnx_core::Array;
    use nnx_core::program::Primitive;
    use nnx_core::tensor::ArgOp;

    use crate::ops::eval;
    use crate::test_util::{agrees_on_every_split, arr};

    #[test]
    fn indexing_and_along_axis_kernels_agree_with_the_reference_bit_for_bit() {
        let indices = Array::from_slice(&[2i32, -1, 7, 0, 2]);
        let small = arr(&[4, 3, 5], 0.0);
        // Large enough to be split across threads.
        let large = arr(&[64, 300, 16], 1.0);
        let large_indices =
            Array::from_slice(&(0..300).map(|i: i32| i * 7 % 320 - 10).collect::<Vec<_>>());
        let mut with_nan = arr(&[3, 6], 2.0).to_vec::<f32>().unwrap();
        with_nan[4] = f32::NAN;
        with_nan[8] = f32::NAN;
        let with_nan = Array::from_vec(&[3, 6], with_nan).unwrap();
        let mut cases: Vec<(Primitive, Vec<Array>)> = Vec::new();
        for axis in 0..3 {
            for fill in [true, false] {
                cases.push((
                    Primitive::Take { axis, fill },
                    vec![small.clone(), indices.clone()],
                ));
            }
            let taken = small.take_at(&indices, axis as isize, false).unwrap();
            let size = small.shape()[axis];
            cases.push((
                Primitive::TakeTranspose { axis, size },
                vec![taken, indices.clone()],
            ));
            for reverse in [false, true] {
                cases.push((Primitive::Cumsum { axis, reverse }, vec![small.clone()]));
            }
            for op in [ArgOp::Max, ArgOp::Min] {
                cases.push((Primitive::ArgReduce { op, axis }, vec![small.clone()]));
            }
        }
        for axis in 0..2 {
            for op in [ArgOp::Max, ArgOp::Min] {
                cases.push((Primitive::ArgReduce { op, axis }, vec![with_nan.clone()]));
            }
        }
        cases.push((
            Primitive::Take {
                axis: 1,
                fill: true,
            },
            vec![large.clone(), large_indices.clone()],
        ));
        let taken = large.take_at(&large_indices, 1, false).unwrap();
        cases.push((
            Primitive::TakeTranspose { axis: 1, size: 300 },
            vec![taken, large_indices],
        ));
        cases.push((
            Primitive::Cumsum {
                axis: 1,
                reverse: true,
            },
            vec![large.clone()],
        ));
        // Updates at a start inside, past the end (clamped) and negative.
        for (axis, start) in [(1, 1), (1, 9), (0, -1), (2, 2)] {
            let mut shape = small.shape().to_vec();
            shape[axis] = 2;
            let update = arr(&shape, 5.0);
            cases.push((
                Primitive::DynamicUpdateSlice { axis },
                vec![small.clone(), update, Array::scalar(start)],
            ));
        }
        let update = arr(&[64, 10, 16], 3.0);
        cases.push((
            Primitive::DynamicUpdateSlice { axis: 1 },
            vec![large, update, Array::scalar(100u32)],
        ));
        for (primitive, args) in cases {
            agrees_on_every_split(eval, &primitive, &args);
        }
    }
}
