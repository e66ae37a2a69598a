//! Shape arithmetic shared by the array operations: broadcasting, axes, strides.

use super::reduce::Axes;
use crate::error::{Error, Result};

/// The numpy broadcast of two shapes.
pub(crate) fn broadcast_shapes(
    op: &'static str,
    lhs: &[usize],
    rhs: &[usize],
) -> Result<Vec<usize>> {
    let ndim = lhs.len().max(rhs.len());
    let mut out = vec![0; ndim];
    for (i, slot) in out.iter_mut().enumerate() {
        let l = dim_from_right(lhs, ndim - 1 - i);
        let r = dim_from_right(rhs, ndim - 1 - i);
        *slot = match (l, r) {
            (a, b) if a == b => a,
            (1, b) => b,
            (a, 1) => a,
            _ => {
                return Err(Error::Broadcast {
                    op,
                    lhs: lhs.to_vec(),
                    rhs: rhs.to_vec(),
                });
            }
        };
    }
    super::alloc::element_count(&out)?;
    Ok(out)
}

/// The size of dimension `from_right` counted from the last (0 = last), 1 if absent.
fn dim_from_right(shape: &[usize], from_right: usize) -> usize {
    if from_right < shape.len() {
        shape[shape.len() - 1 - from_right]
    } else {
        1
    }
}

/// Row-major strides (in elements) of a shape.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// Strides of `shape` seen through a broadcast to `out_shape` (0 on broadcast dimensions).
pub(crate) fn broadcast_strides(shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let own = strides(shape);
    let offset = out_shape.len() - shape.len();
    (0..out_shape.len())
        .map(|i| {
            if i < offset || shape[i - offset] == 1 {
                0
            } else {
                own[i - offset]
            }
        })
        .collect()
}

/// Normalises a possibly negative axis into `[0, ndim)`.
pub(crate) fn normalize_axis(op: &'static str, axis: isize, shape: &[usize]) -> Result<usize> {
    let ndim = shape.len() as isize;
    let normalized = if axis < 0 { axis + ndim } else { axis };
    if (0..ndim).contains(&normalized) {
        Ok(normalized as usize)
    } else {
        Err(Error::AxisOutOfBounds {
            op,
            axis,
            ndim: shape.len(),
            shape: shape.to_vec(),
        })
    }
}

/// Normalises a list of axes, rejecting repeats.
pub(crate) fn normalize_axes(
    op: &'static str,
    axes: &[isize],
    shape: &[usize],
) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &axis in axes {
        let a = normalize_axis(op, axis, shape)?;
        if out.contains(&a) {
            return Err(Error::RepeatedAxis {
                op,
                axis: a,
                axes: axes.to_vec(),
            });
        }
        out.push(a);
    }
    Ok(out)
}

/// The axes `squeeze` removes: every size-1 axis for [`Axes::All`], else the listed ones,
/// which must have size 1.
pub(crate) fn squeeze_axes(axes: &Axes, shape: &[usize]) -> Result<Vec<usize>> {
    match axes {
        Axes::All => Ok((0..shape.len()).filter(|&a| shape[a] == 1).collect()),
        Axes::Some(list) => {
            let list = normalize_axes("squeeze", list, shape)?;
            if let Some(&a) = list.iter().find(|&&a| shape[a] != 1) {
                return Err(Error::shape(
                    "squeeze",
                    format!(
                        "cannot select an axis to squeeze out which has size not equal to one: axis {a} of shape {shape:?}"
                    ),
                ));
            }
            Ok(list)
        }
    }
}

/// The normalised `(axis, index)` of `index_axis`; negative indices count from the end.
pub(crate) fn normalize_index(
    axis: isize,
    index: isize,
    shape: &[usize],
) -> Result<(usize, usize)> {
    let axis = normalize_axis("index_axis", axis, shape)?;
    let size = shape[axis];
    let i = if index < 0 {
        index + size as isize
    } else {
        index
    };
    if i < 0 || i as usize >= size {
        return Err(Error::IndexOutOfBounds {
            op: "index_axis",
            index,
            axis,
            size,
        });
    }
    Ok((axis, i as usize))
}

/// The shape of an array of `shape` padded along `axis` (already normalised).
///
/// # Errors
/// [`Error::ArrayTooLarge`] when the padded size or element count overflows.
pub fn padded_shape(
    shape: &[usize],
    axis: usize,
    before: usize,
    after: usize,
) -> Result<Vec<usize>> {
    let mut padded = shape.to_vec();
    let size = (padded.get(axis).copied())
        .and_then(|n| n.checked_add(before)?.checked_add(after))
        .ok_or_else(|| Error::ArrayTooLarge {
            shape: shape.to_vec(),
        })?;
    padded[axis] = size;
    super::element_count(&padded)?;
    Ok(padded)
}

/// The normalised axis of `slice_axis`, checking that `range` fits it.
pub(crate) fn check_slice(
    axis: isize,
    range: &std::ops::Range<usize>,
    shape: &[usize],
) -> Result<usize> {
    let axis = normalize_axis("slice_axis", axis, shape)?;
    if range.start > range.end || range.end > shape[axis] {
        return Err(Error::shape(
            "slice_axis",
            format!(
                "range {range:?} does not fit axis {axis} of size {} (shape {shape:?})",
                shape[axis]
            ),
        ));
    }
    Ok(axis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes("t", &[3, 1], &[4]).unwrap(), vec![3, 4]);
        assert_eq!(broadcast_shapes("t", &[], &[2, 2]).unwrap(), vec![2, 2]);
        let err = broadcast_shapes("add", &[3], &[4]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "add: shapes [3] and [4] cannot be broadcast together"
        );
        assert_eq!(broadcast_strides(&[3, 1], &[2, 3, 2]), vec![0, 1, 0]);
    }

    #[test]
    fn axes_are_normalised_and_checked() {
        assert_eq!(normalize_axis("t", -1, &[2, 3]).unwrap(), 1);
        assert!(normalize_axis("t", 2, &[2, 3]).is_err());
        assert!(normalize_axes("t", &[0, -2], &[2, 3]).is_err());
    }
}
