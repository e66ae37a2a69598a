//! `nnx.max_pool`, `nnx.min_pool`, `nnx.avg_pool` over `[batch…, spatial…, features]`.

use nnx_core::tensor::{ArgOp, Windows};
use nnx_core::{Error, Result, Tensor};

use crate::common::{dims, isize_of};
use crate::conv::{Padding, same_pads};

/// Every window of `x` (padded with `fill`) as `[batch…, windows…, taps, features]` (the
/// patches of the padded input, taps flattened), and the taps' axis: Flax's `pool`.
fn windows_of(
    x: &Tensor,
    window: &[usize],
    strides: Option<&[usize]>,
    padding: &Padding,
    fill: f32,
) -> Result<(Tensor, isize)> {
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
    let windows = Windows::new(window, strides, &vec![(0, 0); rank], &ones, &ones)?;
    let patches = padded.patches(&windows)?;
    let mut flat = dims(&patches.shape()[..first + rank])?;
    flat.extend([-1, isize_of(shape[shape.len() - 1])?]);
    Ok((patches.reshape(&flat)?, isize_of(first + rank)?))
}

/// The first extremum of each window, so that its gradient goes to that one element, as
/// `lax.reduce_window`'s (`select_and_scatter_add`) does; a NaN wins, as in XLA.
fn choose(
    x: &Tensor,
    window: &[usize],
    strides: Option<&[usize]>,
    padding: &Padding,
    op: ArgOp,
) -> Result<Tensor> {
    let fill = match op {
        ArgOp::Max => f32::NEG_INFINITY,
        ArgOp::Min => f32::INFINITY,
    };
    let (windows, taps) = windows_of(x, window, strides, padding, fill)?;
    let chosen = windows.arg_reduce(op, taps)?.expand_dims(taps)?;
    let count = windows.shape()[windows.ndim() - 2];
    let tap = Tensor::arange(count).reshape(&[isize_of(count)?, 1])?;
    let zero = Tensor::from(0.0f32);
    chosen.equal(&tap)?.select(&windows, &zero)?.sum(taps)
}

/// `x` padded on each spatial axis (from `first`) with `(low, high)` copies of `value`.
fn pad_spatial(x: &Tensor, first: usize, pads: &[(usize, usize)], value: f32) -> Result<Tensor> {
    let mut padded = x.clone();
    for (i, &(lo, hi)) in pads.iter().enumerate() {
        let axis = isize_of(first + i)?;
        padded = if lo + hi == 0 {
            padded
        } else if value == 0.0 {
            padded.pad_axis(axis, lo, hi)?
        } else {
            let block = |n: usize| {
                let mut shape = padded.shape().to_vec();
                shape[first + i] = n;
                Tensor::try_full(&shape, value)
            };
            Tensor::concatenate(&[block(lo)?, padded.clone(), block(hi)?], axis)?
        };
    }
    Ok(padded)
}

/// `nnx.max_pool(x, window_shape, strides, padding)`: the maximum of each window (padding
/// never wins: it is `-inf`). Its gradient goes to the first maximum of each window, as
/// JAX's does.
///
/// # Errors
/// A window or strides that do not fit the input.
pub fn max_pool(
    x: &Tensor,
    window: &[usize],
    strides: Option<&[usize]>,
    padding: Padding,
) -> Result<Tensor> {
    choose(x, window, strides, &padding, ArgOp::Max)
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
    choose(x, window, strides, &padding, ArgOp::Min)
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
    let (windows, taps) = windows_of(x, window, strides, &padding, 0.0)?;
    windows.sum(taps)? / window.iter().product::<usize>() as f32
}
