//! `nnx.max_pool`, `nnx.min_pool`, `nnx.avg_pool` over `[batch…, spatial…, features]`.

use nnx_core::{Error, Result, Tensor};

use crate::conv::{Padding, same_pads, strided};

fn isize_of(n: usize) -> Result<isize> {
    isize::try_from(n).map_err(|_| Error::shape("pool", "a dimension too large for isize"))
}

/// Pads `x`'s `axis` with `before` and `after` copies of `value`.
fn pad_with(x: &Tensor, axis: usize, before: usize, after: usize, value: f32) -> Result<Tensor> {
    if before == 0 && after == 0 {
        return Ok(x.clone());
    }
    let block = |n: usize| {
        let mut shape = x.shape().to_vec();
        shape[axis] = n;
        Tensor::try_full(&shape, value)
    };
    Tensor::concatenate(&[block(before)?, x.clone(), block(after)?], isize_of(axis)?)
}

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
    let mut padded = x.clone();
    let mut outs = Vec::with_capacity(rank);
    for i in 0..rank {
        let (lo, hi) = pads[i];
        padded = pad_with(&padded, first + i, lo, hi, fill)?;
        let n = spatial[i] + lo + hi;
        if n < window[i] {
            return Err(Error::shape(
                "pool",
                format!("a window of {} does not fit {n} positions", window[i]),
            ));
        }
        outs.push((n - window[i]) / strides[i] + 1);
    }
    let mut acc: Option<Tensor> = None;
    for p in 0..window.iter().product::<usize>() {
        let mut rest = p;
        let mut view = padded.clone();
        for i in (0..rank).rev() {
            let tap = rest % window[i];
            rest /= window[i];
            view = strided(&view, first + i, tap, outs[i], strides[i])?;
        }
        acc = Some(match acc {
            Some(a) => combine(a, &view)?,
            None => view,
        });
    }
    acc.ok_or_else(|| Error::shape("pool", "an empty window"))
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
