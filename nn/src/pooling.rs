//! `nnx.max_pool`, `nnx.min_pool`, `nnx.avg_pool` over `[batch…, spatial…, features]`.

use nnx_core::{Error, Result, Tensor};

use crate::conv::{Geometry, Padding, pad_spatial, same_pads};

/// Every window of `x` (padded with `fill`), folded with `combine`: Flax's `pool`.
fn pool(
    x: &Tensor,
    window: &[usize],
    strides: Option<&[usize]>,
    padding: &Padding,
    fill: f32,
    combine: impl Fn(Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let rank = window.len();
    let shape = x.shape().to_vec();
    let ones = vec![1; rank];
    let strides = strides.unwrap_or(&ones);
    if rank == 0 || shape.len() < rank + 1 || strides.len() != rank || window.contains(&0) {
        return Err(Error::shape(
            "pool",
            format!("window {window:?} and strides {strides:?} do not fit inputs {shape:?}"),
        ));
    }
    let first = shape.len() - 1 - rank;
    let spatial = &shape[first..shape.len() - 1];
    let pads = match padding {
        Padding::Same => same_pads(spatial, window, strides),
        Padding::Valid => vec![(0, 0); rank],
        Padding::Explicit(pairs) if pairs.len() == rank => pairs.clone(),
        Padding::Explicit(_) => {
            return Err(Error::shape(
                "pool",
                "explicit padding needs one pair per spatial axis",
            ));
        }
    };
    let padded = pad_spatial(x, first, &pads, fill)?;
    let geometry = Geometry {
        kernel_size: window,
        strides,
        dilation: &ones,
    };
    geometry.fold(&padded, first, |_, view| Ok(view), combine)
}

/// `nnx.max_pool(x, window_shape, strides, padding)`: the maximum of each window (padding
/// never wins: it is `-inf`).
///
/// # Errors
/// A window or strides that do not fit the input.
pub fn max_pool(
    x: &Tensor,
    window: &[usize],
    strides: Option<&[usize]>,
    padding: Padding,
) -> Result<Tensor> {
    pool(x, window, strides, &padding, f32::NEG_INFINITY, |a, b| {
        a.maximum(b)
    })
}

/// `nnx.min_pool(x, window_shape, strides, padding)`: the minimum of each window.
///
/// # Errors
/// As [`max_pool`].
pub fn min_pool(
    x: &Tensor,
    window: &[usize],
    strides: Option<&[usize]>,
    padding: Padding,
) -> Result<Tensor> {
    pool(x, window, strides, &padding, f32::INFINITY, |a, b| {
        a.minimum(b)
    })
}

/// `nnx.avg_pool(x, window_shape, strides, padding)` with Flax's default
/// `count_include_pad=True`: each window's sum divided by the window's size.
///
/// # Errors
/// As [`max_pool`].
pub fn avg_pool(
    x: &Tensor,
    window: &[usize],
    strides: Option<&[usize]>,
    padding: Padding,
) -> Result<Tensor> {
    let sum = pool(x, window, strides, &padding, 0.0, |a, b| a + b)?;
    sum / window.iter().product::<usize>() as f32
}
