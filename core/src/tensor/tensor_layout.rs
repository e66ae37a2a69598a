//! [`Tensor`]'s layout operations: reshapes, transposes, axes added, removed and moved,
//! indexing, slicing, padding, broadcasting, stacking and concatenation. On concrete arrays
//! most are views ([`Array`]'s); on tracers they are recorded as their primitives.

#[cfg(doc)]
use super::Array;
use super::Tensor;
use super::layout::{check_joinable, resolve_reshape};
use super::reduce::Axes;
use super::shape::{
    broadcast_shapes, check_slice, normalize_axes, normalize_axis, normalize_index, squeeze_axes,
};
use crate::error::{Error, Result};
use crate::program::Primitive;

impl Tensor {
    /// Reshape (one `-1` inferred); see [`Array::reshape`].
    ///
    /// # Errors
    /// As [`Array::reshape`].
    pub fn reshape(&self, shape: &[isize]) -> Result<Tensor> {
        self.unary_op(
            |a| a.reshape(shape),
            |from| {
                Ok(Primitive::Reshape {
                    shape: resolve_reshape(from, shape)?,
                })
            },
        )
    }

    /// Reverses the axes.
    ///
    /// # Errors
    /// Never for concrete tensors; recording errors for tracers.
    pub fn transpose(&self) -> Result<Tensor> {
        let perm: Vec<isize> = (0..self.ndim() as isize).rev().collect();
        self.permute_axes(&perm)
    }

    /// Reorders axes; see [`Array::permute_axes`].
    ///
    /// # Errors
    /// As [`Array::permute_axes`].
    pub fn permute_axes(&self, axes: &[isize]) -> Result<Tensor> {
        self.unary_op(
            |a| a.permute_axes(axes),
            |shape| {
                if axes.len() != shape.len() {
                    return Err(Error::shape(
                        "transpose",
                        format!("axes {axes:?} do not match an array of shape {shape:?}"),
                    ));
                }
                Ok(Primitive::Transpose {
                    perm: normalize_axes("transpose", axes, shape)?,
                })
            },
        )
    }

    /// Moves an axis; see [`Array::moveaxis`].
    ///
    /// # Errors
    /// As [`Array::moveaxis`].
    pub fn moveaxis(&self, source: isize, destination: isize) -> Result<Tensor> {
        let src = normalize_axis("moveaxis", source, self.shape())?;
        let dst = normalize_axis("moveaxis", destination, self.shape())?;
        let mut perm: Vec<isize> = (0..self.ndim() as isize)
            .filter(|&a| a != src as isize)
            .collect();
        perm.insert(dst, src as isize);
        self.permute_axes(&perm)
    }

    /// Inserts a size-1 axis; see [`Array::expand_dims`].
    ///
    /// # Errors
    /// As [`Array::expand_dims`].
    pub fn expand_dims(&self, axis: isize) -> Result<Tensor> {
        self.unary_op(
            |a| a.expand_dims(axis),
            |shape| {
                let mut result = shape.to_vec();
                result.push(1);
                Ok(Primitive::ExpandDims {
                    axis: normalize_axis("expand_dims", axis, &result)?,
                })
            },
        )
    }

    /// Removes size-1 axes; see [`Array::squeeze`].
    ///
    /// # Errors
    /// As [`Array::squeeze`].
    pub fn squeeze(&self, axes: impl Into<Axes>) -> Result<Tensor> {
        let axes = axes.into();
        self.unary_op(
            |a| a.squeeze(axes.clone()),
            |shape| {
                let axes = squeeze_axes(&axes, shape)?;
                Ok(Primitive::Squeeze { axes })
            },
        )
    }

    /// One index along an axis, removing it; see [`Array::index_axis`].
    ///
    /// # Errors
    /// As [`Array::index_axis`].
    pub fn index_axis(&self, axis: isize, index: isize) -> Result<Tensor> {
        self.unary_op(
            |a| a.index_axis(axis, index),
            |shape| {
                let (axis, index) = normalize_index(axis, index, shape)?;
                Ok(Primitive::IndexAxis { axis, index })
            },
        )
    }

    /// A range along an axis; see [`Array::slice_axis`].
    ///
    /// # Errors
    /// As [`Array::slice_axis`].
    pub fn slice_axis(&self, axis: isize, range: std::ops::Range<usize>) -> Result<Tensor> {
        self.unary_op(
            |a| a.slice_axis(axis, range.clone()),
            |shape| {
                let axis = check_slice(axis, &range, shape)?;
                Ok(Primitive::SliceAxis {
                    axis,
                    start: range.start,
                    end: range.end,
                })
            },
        )
    }

    /// Zeros around the tensor along an axis; see [`Array::pad_axis`].
    ///
    /// # Errors
    /// As [`Array::pad_axis`].
    pub fn pad_axis(&self, axis: isize, before: usize, after: usize) -> Result<Tensor> {
        self.unary_op(
            |a| a.pad_axis(axis, before, after),
            |shape| {
                let axis = super::shape::normalize_axis("pad", axis, shape)?;
                Ok(Primitive::Pad {
                    axis,
                    before,
                    after,
                })
            },
        )
    }

    /// Broadcast to a shape; see [`Array::broadcast_to`].
    ///
    /// # Errors
    /// As [`Array::broadcast_to`].
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        self.unary_op(
            |a| a.broadcast_to(shape),
            |from| {
                if broadcast_shapes("broadcast_to", from, shape)? != shape {
                    return Err(Error::Broadcast {
                        op: "broadcast_to",
                        lhs: from.to_vec(),
                        rhs: shape.to_vec(),
                    });
                }
                Ok(Primitive::BroadcastTo {
                    shape: shape.to_vec(),
                })
            },
        )
    }

    /// Joins tensors along a new axis; see [`Array::stack`].
    ///
    /// # Errors
    /// As [`Array::stack`].
    pub fn stack(tensors: &[Tensor], axis: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::shape("stack", "need at least one array to stack"))?;
        check_same_shapes("stack", tensors, None)?;
        let mut result = first.shape().to_vec();
        result.push(1);
        let axis = normalize_axis("stack", axis, &result)?;
        let refs: Vec<&Tensor> = tensors.iter().collect();
        Tensor::apply(Primitive::Stack { axis }, &refs)
    }

    /// Joins tensors along an existing axis; see [`Array::concatenate`].
    ///
    /// # Errors
    /// As [`Array::concatenate`].
    pub fn concatenate(tensors: &[Tensor], axis: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::shape("concatenate", "need at least one array to concatenate"))?;
        let axis = normalize_axis("concatenate", axis, first.shape())?;
        check_same_shapes("concatenate", tensors, Some(axis))?;
        let refs: Vec<&Tensor> = tensors.iter().collect();
        Tensor::apply(Primitive::Concatenate { axis }, &refs)
    }
}

/// All tensors share dtype and shape (except along `except`).
fn check_same_shapes(op: &'static str, tensors: &[Tensor], except: Option<usize>) -> Result<()> {
    check_joinable(op, tensors.iter().map(|t| (t.shape(), t.dtype())), except)
}
