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
    let pads = pads_of(&shape[first..shape.len() - 1], window, strides, padding)?;
    let padded = pad_spatial(x, first, &pads, fill)?;
    let windows = Windows::new(window, strides, &vec![(0, 0); rank], &ones, &ones)?;
    let patches = padded.patches(&windows)?;
    let mut flat = dims(&patches.shape()[..first + rank])?;
    flat.extend([-1, isize_of(shape[shape.len() - 1])?]);
    Ok((patches.reshape(&flat)?, isize_of(first + rank)?))
}

/// The `(low, high)` padding per spatial axis.
fn pads_of(
    spatial: &[usize],
    window: &[usize],
    strides: &[usize],
    padding: &Padding,
) -> Result<Vec<(usize, usize)>> {
    Ok(match padding {
        Padding::Same => same_pads(spatial, window, strides),
        Padding::Valid => vec![(0, 0); window.len()],
        Padding::Explicit(pairs) if pairs.len() == window.len() => pairs.clone(),
        Padding::Explicit(_) => {
            return Err(Error::shape(
                "pool",
                "explicit padding needs one pair per spatial axis",
            ));
        }
    })
}

/// `x` as `[batch…, out₀, window₀, out₁, window₁, …, features]` and the window axes, when
/// the windows tile it: strides equal to the window and no padding (the usual 2×2 pool).
/// Rows and columns past the last whole window are dropped, as the windows drop them. Then
/// a window's sum is a sum over its axes of a view — no patches are copied — in the patches'
/// tap order, so the results are the same.
fn tiles(
    x: &Tensor,
    window: &[usize],
    strides: Option<&[usize]>,
    padding: &Padding,
) -> Result<Option<(Tensor, Vec<isize>)>> {
    let (rank, shape) = (window.len(), x.shape().to_vec());
    if strides != Some(window) || rank == 0 || shape.len() < rank + 1 || window.contains(&0) {
        return Ok(None);
    }
    let first = shape.len() - 1 - rank;
    let spatial = &shape[first..shape.len() - 1];
    if pads_of(spatial, window, window, padding)?
        .iter()
        .any(|&(lo, hi)| lo + hi > 0)
    {
        return Ok(None);
    }
    let mut whole = x.clone();
    let mut tiled = dims(&shape[..first])?;
    let mut taps = Vec::with_capacity(rank);
    for (i, (&n, &w)) in spatial.iter().zip(window).enumerate() {
        let out = n / w;
        if out * w != n {
            whole = whole.slice_axis(isize_of(first + i)?, 0..out * w)?;
        }
        tiled.extend([isize_of(out)?, isize_of(w)?]);
        taps.push(isize_of(first + 2 * i + 1)?);
    }
    tiled.push(isize_of(shape[shape.len() - 1])?);
    Ok(Some((whole.reshape(&tiled)?, taps)))
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
    avg_pool_with(x, window, strides, padding, true)
}

/// `nnx.avg_pool(x, window_shape, strides, padding, count_include_pad)`: with
/// `count_include_pad = false`, each window's sum is divided by the number of input
/// elements it covers (padding not counted), as Flax divides by a pool of ones.
///
/// ```
/// use nnx_core::{Result, Tensor};
/// use nnx_nn::{avg_pool_with, conv::Padding};
/// # fn main() -> Result<()> {
/// let x = Tensor::from_vec(&[1, 3, 1], vec![1.0f32, 2.0, 3.0])?;
/// let y = avg_pool_with(&x, &[2], Some(&[1]), Padding::Same, false)?;
/// assert_eq!(y.to_vec::<f32>()?, vec![1.5, 2.5, 3.0]); // the last window covers one element
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// As [`max_pool`].
pub fn avg_pool_with(
    x: &Tensor,
    window: &[usize],
    strides: Option<&[usize]>,
    padding: Padding,
    count_include_pad: bool,
) -> Result<Tensor> {
    let count = window.iter().product::<usize>() as f32;
    if let Some((tiled, taps)) = tiles(x, window, strides, &padding)? {
        return tiled.sum(taps)? / count;
    }
    let (windows, taps) = windows_of(x, window, strides, &padding, 0.0)?;
    let sums = windows.sum(taps)?;
    if count_include_pad {
        return sums / count;
    }
    // The elements each window covers: the same pooling of ones, one feature.
    let mut ones_shape = x.shape().to_vec();
    if let Some(features) = ones_shape.last_mut() {
        *features = 1;
    }
    let (ones, taps) = windows_of(
        &Tensor::try_ones(&ones_shape)?,
        window,
        strides,
        &padding,
        0.0,
    )?;
    sums.div(&ones.sum(taps)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnx_core::random;

    #[test]
    fn tiled_average_pools_equal_the_patches_bit_for_bit_with_their_gradients() {
        // Odd sizes: the last row and column are dropped, as the windows drop them.
        let x = random::normal(&random::key(3), [2, 7, 5, 3]).unwrap();
        let by_patches = |x: &Tensor| -> Result<Tensor> {
            let (windows, taps) = windows_of(x, &[2, 2], Some(&[2, 2]), &Padding::Valid, 0.0)?;
            windows.sum(taps)? / 4.0f32
        };
        let tiled = |x: &Tensor| avg_pool(x, &[2, 2], Some(&[2, 2]), Padding::Valid);
        assert!(
            tiles(&x, &[2, 2], Some(&[2, 2]), &Padding::Valid)
                .unwrap()
                .is_some()
        );
        let (a, b) = (tiled(&x).unwrap(), by_patches(&x).unwrap());
        assert_eq!(a.shape(), &[2, 3, 2, 3]);
        assert!(a.identical(&b), "{a} vs {b}");
        let grad = |f: &dyn Fn(&Tensor) -> Result<Tensor>| -> Tensor {
            let out = nnx_core::transforms::grad(|x: &Tensor| f(x)?.sum(None))
                .call(&nnx_reference::Reference, (&x,))
                .unwrap();
            match &out.grads[0] {
                nnx_core::transforms::Grad::Array(g) => g.clone(),
                other => panic!("an array's gradient, got {other:?}"),
            }
        };
        assert!(grad(&tiled).identical(&grad(&by_patches)));
        // Overlapping windows or padding take the patches.
        assert!(
            tiles(&x, &[2, 2], Some(&[1, 1]), &Padding::Valid)
                .unwrap()
                .is_none()
        );
        assert!(
            tiles(&x, &[2, 2], Some(&[2, 2]), &Padding::Same)
                .unwrap()
                .is_none()
        );
    }
}
