//! The [`Tensor`] operations the layer primitives record: running sums and extrema along an
//! axis, gathers and their scatter-add transposes, dynamic slices, and the
//! sliding windows of convolutions and pooling (with their transposes).

#[cfg(doc)]
use super::Array;
use super::shape::normalize_axis;
use super::{ArgOp, Tensor, Windows};
use crate::error::Result;
use crate::program::Primitive;

impl Tensor {
    /// The cumulative sum along `axis`; see [`Array::cumsum`].
    ///
    /// # Errors
    /// As [`Array::cumsum`].
    pub fn cumsum(&self, axis: isize, reverse: bool) -> Result<Tensor> {
        self.unary_op(
            |a| a.cumsum(axis, reverse),
            |shape| {
                let axis = super::shape::normalize_axis("cumsum", axis, shape)?;
                Ok(Primitive::Cumsum { axis, reverse })
            },
        )
    }

    /// The position of the first extremum along `axis`; see [`Array::arg_reduce`].
    ///
    /// # Errors
    /// As [`Array::arg_reduce`].
    pub fn arg_reduce(&self, op: ArgOp, axis: isize) -> Result<Tensor> {
        self.unary_op(
            |a| a.arg_reduce(op, axis),
            |shape| {
                let axis = super::shape::normalize_axis(op.name(), axis, shape)?;
                Ok(Primitive::ArgReduce { op, axis })
            },
        )
    }

    /// The int32 position of the first largest element along `axis` (`jnp.argmax`).
    ///
    /// # Errors
    /// As [`Array::arg_reduce`].
    pub fn argmax(&self, axis: isize) -> Result<Tensor> {
        self.arg_reduce(ArgOp::Max, axis)
    }

    /// The int32 position of the first smallest element along `axis` (`jnp.argmin`).
    ///
    /// # Errors
    /// As [`Array::arg_reduce`].
    pub fn argmin(&self, axis: isize) -> Result<Tensor> {
        self.arg_reduce(ArgOp::Min, axis)
    }

    /// `jnp.take(self, indices, axis)`: the entries at `indices` (int32 or uint32) along
    /// `axis`, which the indices' shape replaces; negative indices count from the end, out
    /// of range reads NaN (floats); see [`Array::take_at`]. Differentiable in `self`: the
    /// gradient adds up at repeated indices.
    ///
    /// ```
    /// use nnx_core::Tensor;
    /// let table = Tensor::from_vec(&[3, 2], vec![0.0f32, 1.0, 10.0, 11.0, 20.0, 21.0])?;
    /// let rows = table.take(&Tensor::from_slice(&[2i32, 0]), 0)?;
    /// assert_eq!(rows.to_vec::<f32>()?, vec![20.0, 21.0, 0.0, 1.0]);
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Array::take_at`].
    pub fn take(&self, indices: &Tensor, axis: isize) -> Result<Tensor> {
        self.take_with(indices, axis, true)
    }

    /// [`Tensor::take`] with out-of-range indices reading the fill value (`fill`) or zero.
    ///
    /// # Errors
    /// As [`Array::take_at`].
    pub fn take_with(&self, indices: &Tensor, axis: isize, fill: bool) -> Result<Tensor> {
        let axis = normalize_axis("take", axis, self.shape())?;
        Tensor::apply(Primitive::Take { axis, fill }, &[self, indices])
    }

    /// `lax.dynamic_slice_in_dim(self, start, size, axis)`: `size` entries along `axis` from
    /// a scalar int32 `start` that may be traced (clamped so the slice fits); see
    /// [`Array::dynamic_slice_in_dim`].
    ///
    /// # Errors
    /// As [`Array::dynamic_slice_in_dim`].
    pub fn dynamic_slice_in_dim(&self, start: &Tensor, size: usize, axis: isize) -> Result<Tensor> {
        let axis = normalize_axis("dynamic_slice", axis, self.shape())?;
        Tensor::apply(Primitive::DynamicSlice { axis, size }, &[self, start])
    }

    /// `lax.dynamic_update_slice_in_dim(self, update, start, axis)`: `self` with `update`
    /// written along `axis` from a scalar int32 `start` that may be traced; see
    /// [`Array::dynamic_update_slice_in_dim`].
    ///
    /// ```
    /// use nnx_core::Tensor;
    /// let cache = Tensor::zeros([4]);
    /// let at = Tensor::scalar(1i32);
    /// let written = cache.dynamic_update_slice_in_dim(&Tensor::ones([2]), &at, 0)?;
    /// assert_eq!(written.to_vec::<f32>()?, vec![0.0, 1.0, 1.0, 0.0]);
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Array::dynamic_update_slice_in_dim`].
    pub fn dynamic_update_slice_in_dim(
        &self,
        update: &Tensor,
        start: &Tensor,
        axis: isize,
    ) -> Result<Tensor> {
        let axis = normalize_axis("dynamic_update_slice", axis, self.shape())?;
        Tensor::apply(
            Primitive::DynamicUpdateSlice { axis },
            &[self, update, start],
        )
    }

    /// The transpose of a take (a scatter-add into a table of length `size` along `axis`);
    /// see [`Array::take_transpose`].
    ///
    /// # Errors
    /// As [`Array::take_transpose`].
    pub fn take_transpose(&self, indices: &Tensor, axis: usize, size: usize) -> Result<Tensor> {
        Tensor::apply(Primitive::TakeTranspose { axis, size }, &[self, indices])
    }

    /// The sliding windows of `self` (`[batch…, spatial…, features]`); see
    /// [`Array::patches`].
    ///
    /// # Errors
    /// As [`Array::patches`].
    pub fn patches(&self, windows: &Windows) -> Result<Tensor> {
        Tensor::apply(
            Primitive::Patches {
                windows: windows.clone(),
            },
            &[self],
        )
    }

    /// Patches added back into an input of spatial shape `spatial`; see
    /// [`Array::patches_transpose`].
    ///
    /// # Errors
    /// As [`Array::patches_transpose`].
    pub fn patches_transpose(&self, windows: &Windows, spatial: &[usize]) -> Result<Tensor> {
        Tensor::apply(
            Primitive::PatchesTranspose {
                windows: windows.clone(),
                spatial: spatial.to_vec(),
            },
            &[self],
        )
    }
}
