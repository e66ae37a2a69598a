//! `nnx.Conv`: N-dimensional convolution over `[batch…, spatial…, features]` inputs.

use nnx_core::{Error, Module, Param, Result, Rngs, Tensor};

use crate::common::{dims, isize_of, param};
use crate::initializers;

/// How a [`Conv`] pads each spatial axis: `'SAME'` (the output has `ceil(n / stride)`
/// positions), `'VALID'` (no padding), or explicit `(low, high)` pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Padding {
    /// `'SAME'`.
    Same,
    /// `'VALID'`.
    Valid,
    /// `[(low, high), …]`, one pair per spatial axis.
    Explicit(Vec<(usize, usize)>),
}

/// `nnx.Conv(in_features, out_features, kernel_size, strides, padding, kernel_dilation)`:
/// the kernel has shape `kernel_size + [in_features, out_features]` and is initialised as
/// Flax's (`lecun_normal` over the receptive field, one `params` key; then the zero bias).
///
/// The convolution is a sum over kernel positions of a strided window of the (padded) input
/// times that position's `[in_features, out_features]` matrix: one GEMM per kernel
/// position and feature group, on every engine, differentiable as any program.
#[derive(Module, Clone, Debug)]
pub struct Conv {
    /// `kernel_size + [in_features, out_features]`.
    pub kernel: Param,
    /// `[out_features]`, or `None` without a bias.
    pub bias: Option<Param>,
    /// The input's feature count.
    pub in_features: usize,
    /// The output's feature count.
    pub out_features: usize,
    /// The window size per spatial axis.
    pub kernel_size: Vec<usize>,
    /// The step per spatial axis.
    pub strides: Vec<usize>,
    /// The spacing between kernel taps per spatial axis.
    pub kernel_dilation: Vec<usize>,
    /// The `(low, high)` padding per spatial axis with `padding_mode` `"EXPLICIT"` (empty
    /// otherwise).
    pub padding: Vec<(usize, usize)>,
    /// `"SAME"`, `"VALID"` or `"EXPLICIT"`.
    pub padding_mode: String,
    /// The number of feature groups (the kernel's input axis is `in_features / groups`).
    pub feature_group_count: usize,
    /// Whether there is a bias.
    pub use_bias: bool,
}

impl Conv {
    /// `nnx.Conv(in_features, out_features, kernel_size, rngs=rngs)`: stride 1, `'SAME'`.
    ///
    /// # Errors
    /// An empty or zero `kernel_size`; a missing `params` stream.
    pub fn new(
        in_features: usize,
        out_features: usize,
        kernel_size: &[usize],
        rngs: &Rngs,
    ) -> Result<Conv> {
        let ones = vec![1; kernel_size.len()];
        Conv::with(
            in_features,
            out_features,
            kernel_size,
            &ones,
            Padding::Same,
            &ones,
            true,
            rngs,
        )
    }

    /// `nnx.Conv(…, strides, padding, kernel_dilation, use_bias, rngs=rngs)`.
    ///
    /// # Errors
    /// As [`Conv::new`]; `strides`, `kernel_dilation` or explicit padding of another length
    /// than `kernel_size`, or zero.
    #[allow(clippy::too_many_arguments)]
    pub fn with(
        in_features: usize,
        out_features: usize,
        kernel_size: &[usize],
        strides: &[usize],
        padding: Padding,
        kernel_dilation: &[usize],
        use_bias: bool,
        rngs: &Rngs,
    ) -> Result<Conv> {
        let rank = kernel_size.len();
        let bad = |what: &str| Error::shape("Conv", what.to_owned());
        if rank == 0 || kernel_size.contains(&0) {
            return Err(bad("kernel_size needs one positive size per spatial axis"));
        }
        if strides.len() != rank || kernel_dilation.len() != rank {
            return Err(bad(
                "strides and kernel_dilation need one value per spatial axis",
            ));
        }
        if strides.contains(&0) || kernel_dilation.contains(&0) {
            return Err(bad("strides and kernel_dilation must be positive"));
        }
        let (mode, explicit) = match padding {
            Padding::Same => ("SAME", Vec::new()),
            Padding::Valid => ("VALID", Vec::new()),
            Padding::Explicit(pairs) if pairs.len() == rank => ("EXPLICIT", pairs),
            Padding::Explicit(_) => {
                return Err(bad("explicit padding needs one pair per spatial axis"));
            }
        };
        let mut shape = kernel_size.to_vec();
        shape.extend([in_features, out_features]);
        let kernel = param(&initializers::lecun_normal(), &shape, rngs)?;
        let bias = use_bias
            .then(|| param(&initializers::zeros(), [out_features], rngs))
            .transpose()?;
        Ok(Conv {
            kernel,
            bias,
            in_features,
            out_features,
            kernel_size: kernel_size.to_vec(),
            strides: strides.to_vec(),
            kernel_dilation: kernel_dilation.to_vec(),
            padding: explicit,
            padding_mode: mode.to_owned(),
            feature_group_count: 1,
            use_bias,
        })
    }

    /// `nnx.Conv(…, feature_group_count=groups)`: each of `groups` slices of the input
    /// features is convolved with its own slice of the output features (depthwise with
    /// `groups = in_features`). Otherwise as [`Conv::with`], stride 1 and `'SAME'`.
    ///
    /// # Errors
    /// `groups` zero or not dividing both feature counts; as [`Conv::with`].
    pub fn grouped(
        in_features: usize,
        out_features: usize,
        kernel_size: &[usize],
        groups: usize,
        rngs: &Rngs,
    ) -> Result<Conv> {
        if groups == 0
            || !in_features.is_multiple_of(groups)
            || !out_features.is_multiple_of(groups)
        {
            return Err(Error::shape(
                "Conv",
                format!(
                    "feature_group_count {groups} must divide in_features {in_features} and out_features {out_features}"
                ),
            ));
        }
        let ones = vec![1; kernel_size.len()];
        let mut conv = Conv::with(
            in_features / groups,
            out_features,
            kernel_size,
            &ones,
            Padding::Same,
            &ones,
            true,
            rngs,
        )?;
        conv.in_features = in_features;
        conv.feature_group_count = groups;
        Ok(conv)
    }

    /// The `(low, high)` padding of each spatial axis for an input of spatial shape
    /// `spatial`.
    fn pads(&self, spatial: &[usize]) -> Vec<(usize, usize)> {
        match self.padding_mode.as_str() {
            "SAME" => {
                let windows: Vec<usize> = (self.kernel_size.iter().zip(&self.kernel_dilation))
                    .map(|(&k, &d)| (k - 1) * d + 1)
                    .collect();
                same_pads(spatial, &windows, &self.strides)
            }
            "EXPLICIT" => self.padding.clone(),
            _ => vec![(0, 0); spatial.len()],
        }
    }

    /// `layer(x)` for `x` of shape `[batch…, spatial…, in_features]`.
    ///
    /// # Errors
    /// An input with too few axes or another feature count; a window larger than the padded
    /// input.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let first = spatial_start(x, self.kernel_size.len(), self.in_features, "Conv")?;
        let spatial = &x.shape()[first..x.ndim() - 1];
        let padded = pad_spatial(x, first, &self.pads(spatial), 0.0)?;
        let geometry = Geometry {
            kernel_size: &self.kernel_size,
            strides: &self.strides,
            dilation: &self.kernel_dilation,
        };
        let y = correlate(
            &padded,
            first,
            &self.kernel.value(),
            &geometry,
            self.feature_group_count,
        )?;
        match &self.bias {
            Some(bias) => y + &bias.value(),
            None => Ok(y),
        }
    }
}

/// Checks `x` is `[batch…, rank spatial axes, features]`; returns the first spatial axis.
fn spatial_start(x: &Tensor, rank: usize, features: usize, layer: &'static str) -> Result<usize> {
    let shape = x.shape();
    if shape.len() < rank + 1 || shape[shape.len() - 1] != features {
        return Err(Error::shape(
            layer,
            format!("expected inputs [batch…, {rank} spatial axes, {features}], got {shape:?}"),
        ));
    }
    Ok(shape.len() - 1 - rank)
}

/// `x` padded on each spatial axis (from `first`) with `(low, high)` copies of `value`.
pub(crate) fn pad_spatial(
    x: &Tensor,
    first: usize,
    pads: &[(usize, usize)],
    value: f32,
) -> Result<Tensor> {
    let mut padded = x.clone();
    for (i, &(lo, hi)) in pads.iter().enumerate() {
        let axis = first + i;
        padded = if value == 0.0 {
            padded.pad_axis(isize_of(axis)?, lo, hi)?
        } else if lo + hi > 0 {
            let block = |n: usize| {
                let mut shape = padded.shape().to_vec();
                shape[axis] = n;
                Tensor::try_full(&shape, value)
            };
            Tensor::concatenate(&[block(lo)?, padded.clone(), block(hi)?], isize_of(axis)?)?
        } else {
            padded
        };
    }
    Ok(padded)
}

/// A convolution's windows: size, step and tap spacing per spatial axis.
pub(crate) struct Geometry<'a> {
    pub(crate) kernel_size: &'a [usize],
    pub(crate) strides: &'a [usize],
    pub(crate) dilation: &'a [usize],
}

impl Geometry<'_> {
    /// The number of windows along each spatial axis of `spatial` (already padded).
    fn outputs(&self, spatial: &[usize]) -> Result<Vec<usize>> {
        (0..spatial.len())
            .map(|i| {
                let window = (self.kernel_size[i] - 1) * self.dilation[i] + 1;
                if spatial[i] < window {
                    return Err(Error::shape(
                        "conv",
                        format!(
                            "spatial axis {i}: a window of {window} does not fit {} positions",
                            spatial[i]
                        ),
                    ));
                }
                Ok((spatial[i] - window) / self.strides[i] + 1)
            })
            .collect()
    }

    /// Calls `visit(tap, view)` for every kernel position (row-major over `kernel_size`) with
    /// the strided window of `padded` it multiplies; folds the results with `combine`.
    pub(crate) fn fold(
        &self,
        padded: &Tensor,
        first: usize,
        mut visit: impl FnMut(&[usize], Tensor) -> Result<Tensor>,
        combine: impl Fn(Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let rank = self.kernel_size.len();
        let outs = self.outputs(&padded.shape()[first..first + rank])?;
        let mut acc: Option<Tensor> = None;
        for p in 0..self.kernel_size.iter().product::<usize>() {
            let mut rest = p;
            let mut tap = vec![0; rank];
            for i in (0..rank).rev() {
                tap[i] = rest % self.kernel_size[i];
                rest /= self.kernel_size[i];
            }
            let mut view = padded.clone();
            for i in 0..rank {
                view = strided(
                    &view,
                    first + i,
                    tap[i] * self.dilation[i],
                    outs[i],
                    self.strides[i],
                )?;
            }
            let term = visit(&tap, view)?;
            acc = Some(match acc {
                Some(a) => combine(a, &term)?,
                None => term,
            });
        }
        acc.ok_or_else(|| Error::shape("conv", "an empty window"))
    }
}

/// The cross-correlation of padded `x` with `kernel` (`kernel_size + [in / groups, out]`):
/// one GEMM per kernel position and feature group.
fn correlate(
    padded: &Tensor,
    first: usize,
    kernel: &Tensor,
    geometry: &Geometry,
    groups: usize,
) -> Result<Tensor> {
    let features = *padded.shape().last().unwrap_or(&0);
    let outputs = *kernel.shape().last().unwrap_or(&0);
    let (per_in, per_out) = (features / groups.max(1), outputs / groups.max(1));
    let group_terms = (0..groups)
        .map(|g| {
            let x = if groups == 1 {
                padded.clone()
            } else {
                padded.slice_axis(-1, g * per_in..(g + 1) * per_in)?
            };
            let k = if groups == 1 {
                kernel.clone()
            } else {
                kernel.slice_axis(-1, g * per_out..(g + 1) * per_out)?
            };
            geometry.fold(
                &x,
                first,
                |tap, view| {
                    let mut weights = k.clone();
                    for &t in tap {
                        weights = weights.index_axis(0, isize_of(t)?)?;
                    }
                    view.matmul(&weights)
                },
                |a, b| a + b,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    if group_terms.len() == 1 {
        group_terms
            .into_iter()
            .next()
            .ok_or_else(|| Error::shape("conv", "no group"))
    } else {
        Tensor::concatenate(&group_terms, -1)
    }
}

/// `x` with `stride - 1` zeros inserted between neighbours along `axis` (lhs dilation).
fn dilate(x: &Tensor, axis: usize, stride: usize) -> Result<Tensor> {
    let n = x.shape()[axis];
    if stride == 1 || n == 0 {
        return Ok(x.clone());
    }
    let zeros = Tensor::try_zeros(x.shape())?;
    let mut parts = vec![x.clone()];
    parts.extend(std::iter::repeat_n(zeros, stride - 1));
    let interleaved = Tensor::stack(&parts, isize_of(axis + 1)?)?;
    let mut merged = dims(x.shape())?;
    merged[axis] = isize_of(n * stride)?;
    interleaved
        .reshape(&merged)?
        .slice_axis(isize_of(axis)?, 0..(n - 1) * stride + 1)
}

/// `nnx.ConvTranspose(in_features, out_features, kernel_size, strides, padding,
/// kernel_dilation)` with `transpose_kernel=False`: `lax.conv_transpose`, i.e. the input
/// dilated by the strides, padded (`'SAME'` and `'VALID'` as
/// `lax._conv_transpose_padding`, explicit pairs as given), and correlated with the kernel
/// at stride 1. Initialised as Flax's (`lecun_normal` kernel `kernel_size + [in, out]`, then
/// the zero bias).
#[derive(Module, Clone, Debug)]
pub struct ConvTranspose {
    /// `kernel_size + [in_features, out_features]`.
    pub kernel: Param,
    /// `[out_features]`, or `None` without a bias.
    pub bias: Option<Param>,
    /// The input's feature count.
    pub in_features: usize,
    /// The output's feature count.
    pub out_features: usize,
    /// The window size per spatial axis.
    pub kernel_size: Vec<usize>,
    /// The upsampling factor per spatial axis.
    pub strides: Vec<usize>,
    /// The spacing between kernel taps per spatial axis.
    pub kernel_dilation: Vec<usize>,
    /// The `(low, high)` padding per spatial axis with `padding_mode` `"EXPLICIT"`.
    pub padding: Vec<(usize, usize)>,
    /// `"SAME"`, `"VALID"` or `"EXPLICIT"`.
    pub padding_mode: String,
    /// Whether there is a bias.
    pub use_bias: bool,
}

impl ConvTranspose {
    /// `nnx.ConvTranspose(in_features, out_features, kernel_size, strides=…, padding=…,
    /// rngs=rngs)` (kernel dilation 1, with a bias).
    ///
    /// # Errors
    /// As [`Conv::with`].
    pub fn new(
        in_features: usize,
        out_features: usize,
        kernel_size: &[usize],
        strides: &[usize],
        padding: Padding,
        rngs: &Rngs,
    ) -> Result<ConvTranspose> {
        let ones = vec![1; kernel_size.len()];
        let conv = Conv::with(
            in_features,
            out_features,
            kernel_size,
            strides,
            padding,
            &ones,
            true,
            rngs,
        )?;
        Ok(ConvTranspose {
            kernel: conv.kernel,
            bias: conv.bias,
            in_features,
            out_features,
            kernel_size: conv.kernel_size,
            strides: conv.strides,
            kernel_dilation: conv.kernel_dilation,
            padding: conv.padding,
            padding_mode: conv.padding_mode,
            use_bias: true,
        })
    }

    /// `layer(x)` for `x` of shape `[batch…, spatial…, in_features]`.
    ///
    /// # Errors
    /// As [`Conv::forward`].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rank = self.kernel_size.len();
        let first = spatial_start(x, rank, self.in_features, "ConvTranspose")?;
        let mut dilated = x.clone();
        for i in 0..rank {
            dilated = dilate(&dilated, first + i, self.strides[i])?;
        }
        let pads: Vec<(usize, usize)> = match self.padding_mode.as_str() {
            "EXPLICIT" => self.padding.clone(),
            mode => (0..rank)
                .map(|i| {
                    let k = (self.kernel_size[i] - 1) * self.kernel_dilation[i] + 1;
                    let s = self.strides[i];
                    let (pad_len, pad_a) = if mode == "SAME" {
                        let len = k + s - 2;
                        (len, if s > k - 1 { k - 1 } else { len.div_ceil(2) })
                    } else {
                        (k + s - 2 + k.saturating_sub(s), k - 1)
                    };
                    (pad_a, pad_len - pad_a)
                })
                .collect(),
        };
        let padded = pad_spatial(&dilated, first, &pads, 0.0)?;
        let ones = vec![1; rank];
        let geometry = Geometry {
            kernel_size: &self.kernel_size,
            strides: &ones,
            dilation: &self.kernel_dilation,
        };
        let y = correlate(&padded, first, &self.kernel.value(), &geometry, 1)?;
        match &self.bias {
            Some(bias) => y + &bias.value(),
            None => Ok(y),
        }
    }
}

/// `lax.padtype_to_pads(…, 'SAME')`: per axis, the padding that gives `ceil(n / stride)`
/// windows of size `window`, split with the smaller half first.
pub(crate) fn same_pads(
    spatial: &[usize],
    windows: &[usize],
    strides: &[usize],
) -> Vec<(usize, usize)> {
    (spatial.iter().zip(windows).zip(strides))
        .map(|((&n, &window), &stride)| {
            let out = n.div_ceil(stride);
            let total = ((out.max(1) - 1) * stride + window).saturating_sub(n);
            (total / 2, total - total / 2)
        })
        .collect()
}

/// `count` elements of `axis` from `start`, every `stride`-th.
pub(crate) fn strided(
    x: &Tensor,
    axis: usize,
    start: usize,
    count: usize,
    stride: usize,
) -> Result<Tensor> {
    let a = isize_of(axis)?;
    if stride == 1 {
        return x.slice_axis(a, start..start + count);
    }
    let len = x.shape()[axis];
    let end = (start + count * stride).min(len);
    let taken = x.slice_axis(a, start..end)?;
    let taken = taken.pad_axis(a, 0, start + count * stride - end)?;
    let mut split = dims(taken.shape())?;
    split[axis] = isize_of(count)?;
    split.insert(axis + 1, isize_of(stride)?);
    taken.reshape(&split)?.index_axis(a + 1, 0)
}
