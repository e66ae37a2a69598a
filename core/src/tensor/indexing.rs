//! Indexing by values known only when running: `jnp.take` along an axis (a gather) and
//! its transpose, which adds rows back where they were taken from (a scatter-add), and
//! `lax.dynamic_slice_in_dim` / `lax.dynamic_update_slice_in_dim`.

use super::alloc::check_allocation;
use super::shape::normalize_axis;
use super::{Array, Buffer, DType, Element, map_buffer};
use crate::error::{Error, Result};

/// The output shape of taking `indices` along `axis` of `shape`: the axis replaced by the
/// indices' shape.
pub fn take_shape(shape: &[usize], indices: &[usize], axis: usize) -> Vec<usize> {
    let mut out = shape[..axis].to_vec();
    out.extend_from_slice(indices);
    out.extend_from_slice(&shape[axis + 1..]);
    out
}

/// The row each index names along an axis of length `n` (negative indices count from the
/// end, as numpy's), or `None` out of range: how [`Array::take_at`] reads its indices, for
/// engines with kernels of their own.
///
/// # Errors
/// [`Error::UnsupportedDType`] for indices that are not int32 or uint32.
pub fn take_rows(indices: &Array, n: usize) -> Result<Vec<Option<usize>>> {
    let resolve = |i: i64| {
        let i = if i < 0 { i + n as i64 } else { i };
        usize::try_from(i).ok().filter(|&i| i < n)
    };
    Ok(match indices.buffer() {
        Buffer::I32(d) => d.iter().map(|&i| resolve(i64::from(i))).collect(),
        Buffer::U32(d) => d.iter().map(|&i| resolve(i64::from(i))).collect(),
        _ => {
            return Err(Error::UnsupportedDType {
                op: "take",
                dtype: indices.dtype(),
                expected: Some("int32 or uint32 indices"),
            });
        }
    })
}

/// `shape` around `axis`: the product of the axes before it, its length, the product of the
/// axes after it.
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

/// What an out-of-range index reads in `jnp.take`'s default `'fill'` mode: NaN for floats,
/// the most negative int32, the largest uint32, `true`.
trait FillValue: Copy {
    const FILL: Self;
}

impl FillValue for f32 {
    const FILL: f32 = f32::NAN;
}
impl FillValue for i32 {
    const FILL: i32 = i32::MIN;
}
impl FillValue for u32 {
    const FILL: u32 = u32::MAX;
}
impl FillValue for bool {
    const FILL: bool = true;
}
impl FillValue for [u32; 2] {
    const FILL: [u32; 2] = [0, 0];
}

fn gather<T: Copy + Default + FillValue>(
    data: &[T],
    rows: &[Option<usize>],
    (outer, n, inner): (usize, usize, usize),
    fill: bool,
) -> Vec<T> {
    let missing = if fill { T::FILL } else { T::default() };
    let mut out = Vec::with_capacity(outer * rows.len() * inner);
    for o in 0..outer {
        for row in rows {
            match row {
                Some(r) => {
                    let at = (o * n + r) * inner;
                    out.extend_from_slice(&data[at..at + inner]);
                }
                None => out.extend(std::iter::repeat_n(missing, inner)),
            }
        }
    }
    out
}

fn scatter_add<T: Copy + Default>(
    data: &[T],
    rows: &[Option<usize>],
    (outer, n, inner): (usize, usize, usize),
    add: impl Fn(T, T) -> T,
) -> Vec<T> {
    let mut out = vec![T::default(); outer * n * inner];
    for o in 0..outer {
        for (j, row) in rows.iter().enumerate() {
            if let Some(r) = row {
                let from = (o * rows.len() + j) * inner;
                let to = (o * n + r) * inner;
                for k in 0..inner {
                    out[to + k] = add(out[to + k], data[from + k]);
                }
            }
        }
    }
    out
}

impl Array {
    /// `jnp.take(self, indices, axis)`: the entries at `indices` along `axis`, which the
    /// indices' shape replaces. Negative indices count from the end; an index out of range
    /// reads NaN (floats), the most negative int32, the largest uint32 or `true`, as JAX's
    /// default `'fill'` mode; with `fill` false it reads zero instead (the mode gradients
    /// use).
    ///
    /// ```
    /// # use nnx_core::Array;
    /// let table = Array::from_vec(&[3, 2], vec![0.0f32, 1.0, 10.0, 11.0, 20.0, 21.0])?;
    /// let rows = table.take_at(&Array::from_slice(&[2i32, -3, 7]), 0, true)?;
    /// assert_eq!(rows.shape(), &[3, 2]);
    /// let v = rows.to_vec::<f32>()?;
    /// assert_eq!(&v[..4], &[20.0, 21.0, 0.0, 1.0]);
    /// assert!(v[4].is_nan() && v[5].is_nan());
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::AxisOutOfBounds`]; [`Error::UnsupportedDType`] for indices that are not
    /// int32 or uint32; [`Error::ArrayTooLarge`] for a result the machine cannot hold.
    pub fn take_at(&self, indices: &Array, axis: isize, fill: bool) -> Result<Array> {
        let axis = normalize_axis("take", axis, self.shape())?;
        let shape = take_shape(self.shape(), indices.shape(), axis);
        check_allocation(&shape, self.dtype())?;
        let split = around(self.shape(), axis);
        let rows = take_rows(indices, split.1)?;
        let buffer = map_buffer!(self.buffer(), data => gather(data, &rows, split, fill));
        Ok(Array::from_parts(shape, buffer, self.is_weak()))
    }

    /// The transpose of [`Array::take_at`] along `axis`: `self` (the shape of a take's result)
    /// added into zeros of the table's shape (`size` along `axis`) at `indices`; rows of
    /// out-of-range indices are dropped. Repeated indices add up.
    ///
    /// # Errors
    /// [`Error::Shape`] when `self` is not the shape of such a take; as [`Array::take_at`];
    /// [`Error::UnsupportedDType`] for bool or keys.
    pub fn take_transpose(&self, indices: &Array, axis: usize, size: usize) -> Result<Array> {
        let shape = take_transpose_shape(self.shape(), indices.shape(), axis, size)?;
        let split = around(&shape, axis);
        let rows = take_rows(indices, size)?;
        let buffer = match self.buffer() {
            Buffer::F32(d) => f32::into_buffer(scatter_add(d, &rows, split, |a, b| a + b)),
            Buffer::I32(d) => i32::into_buffer(scatter_add(d, &rows, split, i32::wrapping_add)),
            Buffer::U32(d) => u32::into_buffer(scatter_add(d, &rows, split, u32::wrapping_add)),
            _ => {
                return Err(Error::UnsupportedDType {
                    op: "take_transpose",
                    dtype: self.dtype(),
                    expected: Some("int32, uint32 or float32"),
                });
            }
        };
        Ok(Array::from_parts(shape, buffer, self.is_weak()))
    }
}

/// The start of a `size`-long window along an axis of length `n` for the scalar index
/// `start`: negative counts from the end, then clamped so the window fits, as
/// `lax.dynamic_slice` does.
///
/// # Errors
/// [`Error::Shape`] for a start that is not a scalar; [`Error::UnsupportedDType`] for one
/// that is not an integer.
pub fn window_start(start: &Array, n: usize, size: usize) -> Result<usize> {
    check_start(start.shape(), start.dtype())?;
    let i = match start.buffer() {
        Buffer::I32(d) => i64::from(d[0]),
        Buffer::U32(d) => i64::from(d[0]),
        _ => return Err(Error::internal("a start index that is not an integer")),
    };
    let i = if i < 0 { i + n as i64 } else { i };
    Ok(i.clamp(0, n.saturating_sub(size) as i64) as usize)
}

impl Array {
    /// `lax.dynamic_slice_in_dim(self, start, size, axis)`: `size` entries along `axis`
    /// from the scalar index `start` (a negative start counts from the end; the start is
    /// clamped so that the slice fits).
    ///
    /// ```
    /// # use nnx_core::Array;
    /// let x = Array::arange(5);
    /// let at = |i: i32| x.dynamic_slice_in_dim(&Array::scalar(i), 2, 0);
    /// assert_eq!(at(1)?.to_vec::<i32>()?, vec![1, 2]);
    /// assert_eq!(at(9)?.to_vec::<i32>()?, vec![3, 4]); // clamped
    /// assert_eq!(at(-2)?.to_vec::<i32>()?, vec![3, 4]);
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::AxisOutOfBounds`]; [`Error::Shape`] for a `size` longer than the axis or a
    /// start that is not a scalar; [`Error::UnsupportedDType`] for a start that is not an
    /// integer.
    pub fn dynamic_slice_in_dim(&self, start: &Array, size: usize, axis: isize) -> Result<Array> {
        let axis = normalize_axis("dynamic_slice", axis, self.shape())?;
        let n = self.shape()[axis];
        check_window("dynamic_slice", size, n)?;
        let from = window_start(start, n, size)?;
        self.slice_axis(axis as isize, from..from + size)
    }

    /// `lax.dynamic_update_slice_in_dim(self, update, start, axis)`: `self` with `update`
    /// written along `axis` from the scalar index `start` (clamped as in
    /// [`Array::dynamic_slice_in_dim`]).
    ///
    /// # Errors
    /// As [`Array::dynamic_slice_in_dim`]; [`Error::Shape`] when `update` differs from
    /// `self` off the axis; [`Error::DTypeMismatch`] for another dtype.
    pub fn dynamic_update_slice_in_dim(
        &self,
        update: &Array,
        start: &Array,
        axis: isize,
    ) -> Result<Array> {
        let axis = normalize_axis("dynamic_update_slice", axis, self.shape())?;
        check_update(
            self.shape(),
            self.dtype(),
            update.shape(),
            update.dtype(),
            axis,
        )?;
        let (n, size) = (self.shape()[axis], update.shape()[axis]);
        let from = window_start(start, n, size)?;
        let a = axis as isize;
        Array::concatenate(
            &[
                self.slice_axis(a, 0..from)?,
                update.clone(),
                self.slice_axis(a, from + size..n)?,
            ],
            a,
        )
    }
}

/// Checks a `size`-long window fits an axis of length `n`.
fn check_window(op: &'static str, size: usize, n: usize) -> Result<()> {
    if size > n {
        return Err(Error::shape(
            op,
            format!("a slice of {size} does not fit an axis of length {n}"),
        ));
    }
    Ok(())
}

/// Checks `update` can be written into `operand` along `axis`.
///
/// # Errors
/// [`Error::Shape`], [`Error::DTypeMismatch`].
pub fn check_update(
    operand: &[usize],
    operand_dtype: DType,
    update: &[usize],
    update_dtype: DType,
    axis: usize,
) -> Result<()> {
    if operand_dtype != update_dtype {
        return Err(Error::DTypeMismatch {
            op: "dynamic_update_slice",
            lhs: operand_dtype,
            rhs: update_dtype,
        });
    }
    let fits = update.len() == operand.len()
        && (0..operand.len()).all(|i| i == axis || update[i] == operand[i]);
    if !fits {
        return Err(Error::shape(
            "dynamic_update_slice",
            format!("an update of shape {update:?} does not fit {operand:?} along axis {axis}"),
        ));
    }
    check_window("dynamic_update_slice", update[axis], operand[axis])
}

/// Checks a dynamic slice's start operand: an int32 or uint32 scalar.
///
/// # Errors
/// [`Error::Shape`], [`Error::UnsupportedDType`].
pub fn check_start(shape: &[usize], dtype: DType) -> Result<()> {
    if !shape.is_empty() {
        return Err(Error::shape(
            "dynamic_slice",
            format!("the start index must be a scalar, got shape {shape:?}"),
        ));
    }
    match dtype {
        DType::I32 | DType::U32 => Ok(()),
        _ => Err(Error::UnsupportedDType {
            op: "dynamic_slice",
            dtype,
            expected: Some("an int32 or uint32 start index"),
        }),
    }
}

/// Checks a dynamic slice of `size` along `axis` fits `shape`.
///
/// # Errors
/// [`Error::Shape`].
pub fn check_slice_window(shape: &[usize], axis: usize, size: usize) -> Result<()> {
    match shape.get(axis) {
        Some(&n) => check_window("dynamic_slice", size, n),
        None => Err(Error::shape(
            "dynamic_slice",
            format!("axis {axis} of shape {shape:?}"),
        )),
    }
}

/// The table shape whose take of `indices` along `axis` has shape `taken`, given the
/// table's length `size` along the axis.
///
/// # Errors
/// [`Error::Shape`] when `taken` is not such a shape.
pub fn take_transpose_shape(
    taken: &[usize],
    indices: &[usize],
    axis: usize,
    size: usize,
) -> Result<Vec<usize>> {
    let fits = taken.len() >= axis + indices.len() && &taken[axis..axis + indices.len()] == indices;
    if !fits {
        return Err(Error::shape(
            "take_transpose",
            format!("{taken:?} is not a take of indices {indices:?} along axis {axis}"),
        ));
    }
    let mut shape = taken[..axis].to_vec();
    shape.push(size);
    shape.extend_from_slice(&taken[axis + indices.len()..]);
    Ok(shape)
}

/// Checks `dtype` can index.
pub(crate) fn check_indices(dtype: DType) -> Result<()> {
    match dtype {
        DType::I32 | DType::U32 => Ok(()),
        _ => Err(Error::UnsupportedDType {
            op: "take",
            dtype,
            expected: Some("int32 or uint32 indices"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_along_an_inner_axis_and_back() {
        let x = Array::arange(12).reshape(&[2, 3, 2]).unwrap();
        let idx = Array::from_vec(&[2, 2], vec![2i32, 0, 2, -1]).unwrap();
        let t = x.take_at(&idx, 1, true).unwrap();
        assert_eq!(t.shape(), &[2, 2, 2, 2]);
        assert_eq!(
            t.to_vec::<i32>().unwrap(),
            vec![4, 5, 0, 1, 4, 5, 4, 5, 10, 11, 6, 7, 10, 11, 10, 11]
        );
        let back = t.take_transpose(&idx, 1, 3).unwrap();
        assert_eq!(back.shape(), &[2, 3, 2]);
        // Row 2 was taken three times, row 0 once, row 1 never.
        assert_eq!(
            back.to_vec::<i32>().unwrap(),
            vec![0, 1, 0, 0, 12, 15, 6, 7, 0, 0, 30, 33]
        );
    }

    #[test]
    fn dynamic_slices_clamp_and_update() {
        let x = Array::arange(6).reshape(&[3, 2]).unwrap();
        let start = |i: i32| Array::scalar(i);
        let s = x.dynamic_slice_in_dim(&start(2), 2, 0).unwrap();
        assert_eq!(s.to_vec::<i32>().unwrap(), vec![2, 3, 4, 5]);
        let u = Array::from_vec(&[1, 2], vec![-1i32, -2]).unwrap();
        let y = x.dynamic_update_slice_in_dim(&u, &start(-1), 0).unwrap();
        assert_eq!(y.to_vec::<i32>().unwrap(), vec![0, 1, 2, 3, -1, -2]);
        assert!(x.dynamic_slice_in_dim(&start(0), 4, 0).is_err());
        assert!(
            x.dynamic_slice_in_dim(&Array::from_slice(&[0i32]), 1, 0)
                .is_err()
        );
        assert!(
            x.dynamic_update_slice_in_dim(&x.transpose(), &start(0), 0)
                .is_err()
        );
    }

    #[test]
    fn out_of_range_fills_and_errors() {
        let x = Array::from_slice(&[1i32, 2]);
        let t = x.take_at(&Array::from_slice(&[5u32, 1]), 0, true).unwrap();
        assert_eq!(t.to_vec::<i32>().unwrap(), vec![i32::MIN, 2]);
        let z = x.take_at(&Array::from_slice(&[-3i32]), 0, false).unwrap();
        assert_eq!(z.to_vec::<i32>().unwrap(), vec![0]);
        assert!(x.take_at(&Array::from_slice(&[0.5f32]), 0, true).is_err());
        assert!(x.take_at(&Array::from_slice(&[0i32]), 1, true).is_err());
        assert!(
            Array::zeros(&[3])
                .take_transpose(&Array::from_slice(&[0i32, 1]), 0, 4)
                .is_err()
        );
    }
}
