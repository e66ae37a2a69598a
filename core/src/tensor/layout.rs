//! Operations that move elements without computing on them: reshape, transpose, expand and
//! squeeze, index and slice along an axis, stack, concatenate, broadcast. They work on every
//! dtype, keys included. All but stack and concatenate return views ([`crate::tensor#views`]): they
//! copy nothing (a reshape copies only a view that is not contiguous).

use std::ops::Range;

use super::alloc::check_allocation;
use super::reduce::Axes;
use super::shape::{
    broadcast_shapes, check_slice, normalize_axes, normalize_axis, normalize_index, squeeze_axes,
    strides,
};
use super::{Array, Buffer, DType, map_buffer};
use crate::error::{Error, Result};

impl Array {
    /// The same elements in a new shape; one dimension may be `-1` and is then inferred.
    ///
    /// # Errors
    /// [`Error::Shape`] when the sizes differ, more than one `-1` is given, or a dimension is
    /// negative.
    ///
    /// ```
    /// # use nnx_core::Array;
    /// let t = Array::arange(6).reshape(&[3, -1]).unwrap();
    /// assert_eq!(t.shape(), &[3, 2]);
    /// ```
    pub fn reshape(&self, shape: &[isize]) -> Result<Array> {
        let new_shape = resolve_reshape(self.shape(), shape)?;
        Ok(match self.contiguous_offset() {
            Some(offset) => {
                let strides = strides(&new_shape);
                self.with_layout(new_shape, offset, strides)
            }
            None => Array::from_parts(new_shape, self.buffer().clone(), self.is_weak()),
        })
    }

    /// Reverses the order of the axes (`x.T`).
    pub fn transpose(&self) -> Array {
        let perm: Vec<usize> = (0..self.ndim()).rev().collect();
        self.permute_unchecked(&perm)
    }

    /// Reorders the axes: output axis `i` is input axis `axes[i]` (`jnp.transpose(x, axes)`).
    ///
    /// # Errors
    /// [`Error::Shape`] when `axes` is not a permutation of the array's axes.
    pub fn permute_axes(&self, axes: &[isize]) -> Result<Array> {
        if axes.len() != self.ndim() {
            return Err(Error::shape(
                "transpose",
                format!(
                    "axes {axes:?} do not match an array of shape {:?}",
                    self.shape()
                ),
            ));
        }
        let perm = normalize_axes("transpose", axes, self.shape())?;
        Ok(self.permute_unchecked(&perm))
    }

    pub(crate) fn permute_unchecked(&self, perm: &[usize]) -> Array {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return self.clone();
        }
        let (offset, in_strides) = self.layout();
        let out_shape: Vec<usize> = perm.iter().map(|&p| self.shape()[p]).collect();
        let out_strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
        self.with_layout(out_shape, offset, out_strides)
    }

    /// Moves axis `source` to position `destination` (`jnp.moveaxis`).
    ///
    /// # Errors
    /// [`Error::AxisOutOfBounds`] for axes outside the array's rank.
    pub fn moveaxis(&self, source: isize, destination: isize) -> Result<Array> {
        let src = normalize_axis("moveaxis", source, self.shape())?;
        let dst = normalize_axis("moveaxis", destination, self.shape())?;
        let mut perm: Vec<usize> = (0..self.ndim()).filter(|&a| a != src).collect();
        perm.insert(dst, src);
        Ok(self.permute_unchecked(&perm))
    }

    /// Inserts a size-1 axis at `axis` (which may be `ndim`, or negative counting from the
    /// end of the *result*).
    ///
    /// # Errors
    /// [`Error::AxisOutOfBounds`] when `axis` is outside `[-ndim-1, ndim]`.
    pub fn expand_dims(&self, axis: isize) -> Result<Array> {
        let mut result_shape = self.shape().to_vec();
        result_shape.push(1);
        let a = normalize_axis("expand_dims", axis, &result_shape)?;
        let mut shape = self.shape().to_vec();
        shape.insert(a, 1);
        let (offset, strides) = self.layout();
        let mut strides = strides.into_owned();
        strides.insert(a, 0);
        Ok(self.with_layout(shape, offset, strides))
    }

    /// Removes size-1 axes: all of them for [`Axes::All`], else the ones named.
    ///
    /// # Errors
    /// [`Error::Shape`] when a named axis does not have size 1.
    pub fn squeeze(&self, axes: impl Into<Axes>) -> Result<Array> {
        let remove = squeeze_axes(&axes.into(), self.shape())?;
        let (offset, strides) = self.layout();
        let (shape, strides) = self
            .shape()
            .iter()
            .zip(strides.iter())
            .enumerate()
            .filter(|(a, _)| !remove.contains(a))
            .map(|(_, (&d, &s))| (d, s))
            .unzip();
        Ok(self.with_layout(shape, offset, strides))
    }

    /// The sub-array at `index` along `axis`, with that axis removed (`x[:, i]` for axis 1).
    /// Negative indices count from the end.
    ///
    /// # Errors
    /// [`Error::AxisOutOfBounds`] or [`Error::IndexOutOfBounds`].
    pub fn index_axis(&self, axis: isize, index: isize) -> Result<Array> {
        let (a, i) = normalize_index(axis, index, self.shape())?;
        let (offset, strides) = self.layout();
        let mut shape = self.shape().to_vec();
        let mut strides = strides.into_owned();
        shape.remove(a);
        let step = strides.remove(a);
        Ok(self.with_layout(shape, offset + i * step, strides))
    }

    /// The elements `range` along `axis`, keeping the axis (`x[:, 1:3]` for axis 1).
    ///
    /// # Errors
    /// [`Error::AxisOutOfBounds`], or [`Error::Shape`] when the range does not fit the axis.
    pub fn slice_axis(&self, axis: isize, range: Range<usize>) -> Result<Array> {
        let a = check_slice(axis, &range, self.shape())?;
        Ok(self.slice_unchecked(a, range))
    }

    /// Zeros around the array along `axis` (`jnp.pad` along one axis): `before` before it and
    /// `after` after it.
    ///
    /// ```
    /// use nnx_core::Array;
    /// let a = Array::from_vec(&[2], vec![1.0f32, 2.0])?;
    /// assert_eq!(a.pad_axis(0, 1, 2)?.to_vec::<f32>()?, vec![0.0, 1.0, 2.0, 0.0, 0.0]);
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::AxisOutOfBounds`], [`Error::ArrayTooLarge`] when the padded size overflows,
    /// [`Error::AllocationFailed`].
    pub fn pad_axis(&self, axis: isize, before: usize, after: usize) -> Result<Array> {
        let axis = super::shape::normalize_axis("pad", axis, self.shape())?;
        super::padded_shape(self.shape(), axis, before, after)?;
        let zeros = |n: usize| {
            let mut shape = self.shape().to_vec();
            shape[axis] = n;
            Array::zeros_of(&shape, self.dtype())
        };
        Array::concatenate(
            &[zeros(before)?, self.clone(), zeros(after)?],
            axis as isize,
        )
    }

    fn slice_unchecked(&self, axis: usize, range: Range<usize>) -> Array {
        let mut out_shape = self.shape().to_vec();
        out_shape[axis] = range.len();
        let (offset, strides) = self.layout();
        let offset = offset + range.start * strides[axis];
        self.with_layout(out_shape, offset, strides.into_owned())
    }

    /// Broadcasts to a larger shape (numpy rules).
    ///
    /// # Errors
    /// [`Error::Broadcast`] when the array's shape does not broadcast to `shape`.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Array> {
        let joined = broadcast_shapes("broadcast_to", self.shape(), shape)?;
        if joined != shape {
            return Err(Error::Broadcast {
                op: "broadcast_to",
                lhs: self.shape().to_vec(),
                rhs: shape.to_vec(),
            });
        }
        if self.shape() == shape {
            return Ok(self.clone());
        }
        // A broadcast copies nothing, but whatever reads it in row-major order copies it:
        // a size that could not be allocated is an error here, not an abort there.
        check_allocation(shape, self.dtype())?;
        let (offset, own) = self.layout();
        let lead = shape.len() - self.ndim();
        let strides = (0..shape.len())
            .map(|i| match i.checked_sub(lead) {
                Some(j) if self.shape()[j] != 1 => own[j],
                _ => 0,
            })
            .collect();
        Ok(self.with_layout(shape.to_vec(), offset, strides))
    }

    /// Joins arrays of one shape along a new axis.
    ///
    /// # Errors
    /// [`Error::Shape`] when the list is empty or the shapes differ,
    /// [`Error::DTypeMismatch`] when the dtypes differ, [`Error::AxisOutOfBounds`].
    pub fn stack(tensors: &[Array], axis: isize) -> Result<Array> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::shape("stack", "need at least one array to stack"))?;
        if let Some(other) = tensors.iter().find(|t| t.shape() != first.shape()) {
            return Err(Error::shape(
                "stack",
                format!(
                    "all input arrays must have the same shape, got {:?} and {:?}",
                    first.shape(),
                    other.shape()
                ),
            ));
        }
        let expanded = tensors
            .iter()
            .map(|t| t.expand_dims(axis))
            .collect::<Result<Vec<_>>>()?;
        let mut result_shape = first.shape().to_vec();
        result_shape.push(1);
        let a = normalize_axis("stack", axis, &result_shape)?;
        Array::concatenate(&expanded, a as isize)
    }

    /// Joins arrays along an existing axis.
    ///
    /// # Errors
    /// [`Error::Shape`] when the list is empty or shapes differ off the axis,
    /// [`Error::DTypeMismatch`] when the dtypes differ, [`Error::AxisOutOfBounds`].
    pub fn concatenate(tensors: &[Array], axis: isize) -> Result<Array> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::shape("concatenate", "need at least one array to concatenate"))?;
        let a = normalize_axis("concatenate", axis, first.shape())?;
        check_joinable(
            "concatenate",
            tensors.iter().map(|t| (t.shape(), t.dtype())),
            Some(a),
        )?;
        let mut out_shape = first.shape().to_vec();
        out_shape[a] = tensors
            .iter()
            .try_fold(0usize, |n, t| n.checked_add(t.shape()[a]))
            .ok_or_else(|| Error::ArrayTooLarge {
                shape: out_shape.clone(),
            })?;
        check_allocation(&out_shape, first.dtype())?;
        let outer: usize = first.shape()[..a].iter().product();
        let chunk = |t: &Array| t.shape()[a..].iter().product::<usize>();
        let weak = tensors.iter().all(Array::is_weak);
        let buffer = map_buffer!(first.buffer(), _first => {
            let mut data = Vec::with_capacity(out_shape.iter().product());
            for o in 0..outer {
                for t in tensors {
                    let c = chunk(t);
                    let src = typed(t.buffer(), _first);
                    data.extend_from_slice(&src[o * c..(o + 1) * c]);
                }
            }
            data
        });
        Ok(Array::from_parts(out_shape, buffer, weak))
    }
}

/// The typed data of `buffer`, known to have the same variant as `like`.
fn typed<'a, T, D>(buffer: &'a Buffer, like: &std::sync::Arc<D>) -> &'a [T]
where
    D: AsRef<[T]>,
    Buffer: TypedView<T>,
{
    let _ = like;
    buffer.view()
}

/// Access to a buffer's data as a given element type, for code generic over the variant.
trait TypedView<T> {
    fn view(&self) -> &[T];
}

macro_rules! impl_typed_view {
    ($t:ty, $variant:ident) => {
        impl TypedView<$t> for Buffer {
            fn view(&self) -> &[$t] {
                match self {
                    Buffer::$variant(d) => d.as_slice(),
                    // Callers check that all buffers share one dtype first.
                    _ => &[],
                }
            }
        }
    };
}
impl_typed_view!(bool, Bool);
impl_typed_view!(i32, I32);
impl_typed_view!(u32, U32);
impl_typed_view!(f32, F32);
impl_typed_view!([u32; 2], Key);

/// The shape `reshape(shape)` gives an array of shape `from`: one `-1` is inferred.
pub(crate) fn resolve_reshape(from: &[usize], shape: &[isize]) -> Result<Vec<usize>> {
    let size: usize = from.iter().product();
    let bad = |message: String| Error::shape("reshape", message);
    let mut inferred = None;
    let mut known = 1usize;
    for (i, &d) in shape.iter().enumerate() {
        match d {
            -1 if inferred.is_none() => inferred = Some(i),
            -1 => {
                return Err(bad(format!(
                    "can only specify one unknown dimension, got {shape:?}"
                )));
            }
            d if d < 0 => return Err(bad(format!("negative dimension {d} in {shape:?}"))),
            d => {
                known = known
                    .checked_mul(d as usize)
                    .ok_or_else(|| Error::ArrayTooLarge {
                        shape: shape.iter().map(|&d| d.max(0) as usize).collect(),
                    })?
            }
        }
    }
    let mut new_shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    let mismatch = || {
        bad(format!(
            "cannot reshape array of shape {from:?} (size {size}) into shape {shape:?}"
        ))
    };
    if let Some(i) = inferred {
        if known == 0 || !size.is_multiple_of(known) {
            return Err(mismatch());
        }
        new_shape[i] = size / known;
    } else if known != size {
        return Err(mismatch());
    }
    Ok(new_shape)
}

/// Checks that arrays joined by `op` (given as shape and dtype) share their dtype and their
/// shape, except along axis `except` (the concatenation axis).
///
/// # Errors
/// [`Error::DTypeMismatch`] or [`Error::Shape`], naming the first two that differ.
pub(super) fn check_joinable<'a>(
    op: &'static str,
    arrays: impl IntoIterator<Item = (&'a [usize], DType)>,
    except: Option<usize>,
) -> Result<()> {
    let mut arrays = arrays.into_iter();
    let Some((first_shape, first_dtype)) = arrays.next() else {
        return Ok(());
    };
    for (shape, dtype) in arrays {
        if dtype != first_dtype {
            return Err(Error::DTypeMismatch {
                op,
                lhs: first_dtype,
                rhs: dtype,
            });
        }
        let same = shape.len() == first_shape.len()
            && (shape.iter().zip(first_shape).enumerate())
                .all(|(i, (x, y))| Some(i) == except || x == y);
        if !same {
            let rule = match except {
                Some(a) => {
                    format!(
                        "all input array dimensions except for the concatenation axis {a} must match"
                    )
                }
                None => "all input arrays must have the same shape".to_owned(),
            };
            return Err(Error::shape(
                op,
                format!("{rule}, got {first_shape:?} and {shape:?}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iota(shape: &[usize]) -> Array {
        let n = shape.iter().product();
        Array::arange(n)
            .reshape(&shape.iter().map(|&d| d as isize).collect::<Vec<_>>())
            .unwrap()
    }

    #[test]
    fn reshape_infers_and_rejects() {
        assert_eq!(iota(&[2, 3]).reshape(&[-1]).unwrap().shape(), &[6]);
        let err = iota(&[2, 3]).reshape(&[4, -1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "reshape: cannot reshape array of shape [2, 3] (size 6) into shape [4, -1]"
        );
        assert!(iota(&[2, 3]).reshape(&[-1, -1]).is_err());
    }

    #[test]
    fn transpose_and_moveaxis() {
        let t = iota(&[2, 3]).transpose();
        assert_eq!(t.shape(), &[3, 2]);
        assert_eq!(t.to_vec::<i32>().unwrap(), vec![0, 3, 1, 4, 2, 5]);
        let m = iota(&[2, 3, 4]).moveaxis(0, -1).unwrap();
        assert_eq!(m.shape(), &[3, 4, 2]);
        assert_eq!(m.index_axis(2, 1).unwrap().to_vec::<i32>().unwrap()[0], 12);
    }

    #[test]
    fn index_and_slice() {
        let x = iota(&[3, 4]);
        assert_eq!(
            x.index_axis(1, -1).unwrap().to_vec::<i32>().unwrap(),
            vec![3, 7, 11]
        );
        assert_eq!(
            x.slice_axis(0, 1..3).unwrap().to_vec::<i32>().unwrap(),
            vec![4, 5, 6, 7, 8, 9, 10, 11]
        );
        let err = x.index_axis(0, 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "index_axis: index 3 is out of bounds for axis 0 with size 3"
        );
        assert!(x.slice_axis(0, 2..5).is_err());
    }

    #[test]
    fn stack_and_concatenate() {
        let a = Array::from_slice(&[1i32, 2]);
        let b = Array::from_slice(&[3i32, 4]);
        let s = Array::stack(&[a.clone(), b.clone()], 1).unwrap();
        assert_eq!(s.shape(), &[2, 2]);
        assert_eq!(s.to_vec::<i32>().unwrap(), vec![1, 3, 2, 4]);
        let c = Array::concatenate(&[a.clone(), b], 0).unwrap();
        assert_eq!(c.to_vec::<i32>().unwrap(), vec![1, 2, 3, 4]);
        assert!(Array::stack(&[a, Array::arange(3)], 0).is_err());
        assert!(Array::stack(&[], 0).is_err());
    }

    #[test]
    fn squeeze_and_expand() {
        let x = iota(&[1, 3, 1]);
        assert_eq!(x.squeeze(Axes::All).unwrap().shape(), &[3]);
        assert_eq!(x.squeeze(0).unwrap().shape(), &[3, 1]);
        assert!(x.squeeze(1).is_err());
        assert_eq!(iota(&[3]).expand_dims(-1).unwrap().shape(), &[3, 1]);
    }

    #[test]
    fn keys_move_like_any_dtype() {
        let k = Array::from_keys(&[2], vec![[1, 2], [3, 4]]).unwrap();
        let s = Array::stack(&[k.clone(), k], 0).unwrap();
        assert_eq!(
            s.index_axis(1, 1).unwrap().keys().unwrap(),
            &[[3, 4], [3, 4]]
        );
    }
}
