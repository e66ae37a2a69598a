//! `nnx.Conv`: N-dimensional convolution over `[batch…, spatial…, features]` inputs.

use nnx_core::{Error, Module, Param, Result, Rngs, Tensor};

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
/// position, on every engine, differentiable as any program. Input dilation and feature
/// groups are not supported yet.
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
    /// Whether there is a bias.
    pub use_bias: bool,
}

fn isize_of(n: usize) -> Result<isize> {
    isize::try_from(n).map_err(|_| Error::shape("Conv", "a dimension too large for isize"))
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
        let kernel = initializers::lecun_normal().init(&rngs.next_key("params")?, &shape)?;
        let bias = if use_bias {
            let zeros = initializers::zeros();
            Some(Param::new(
                zeros.init(&rngs.next_key("params")?, [out_features])?,
            ))
        } else {
            None
        };
        Ok(Conv {
            kernel: Param::new(kernel),
            bias,
            in_features,
            out_features,
            kernel_size: kernel_size.to_vec(),
            strides: strides.to_vec(),
            kernel_dilation: kernel_dilation.to_vec(),
            padding: explicit,
            padding_mode: mode.to_owned(),
            use_bias,
        })
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
        let rank = self.kernel_size.len();
        let shape = x.shape().to_vec();
        if shape.len() < rank + 1 || shape[shape.len() - 1] != self.in_features {
            return Err(Error::shape(
                "Conv",
                format!(
                    "expected inputs [batch…, {rank} spatial axes, {}], got {shape:?}",
                    self.in_features
                ),
            ));
        }
        let first = shape.len() - 1 - rank;
        let spatial = &shape[first..shape.len() - 1];
        let pads = self.pads(spatial);
        let mut padded = x.clone();
        let mut outs = Vec::with_capacity(rank);
        for (i, &(lo, hi)) in pads.iter().enumerate() {
            padded = padded.pad_axis(isize_of(first + i)?, lo, hi)?;
            let n = spatial[i] + lo + hi;
            let window = (self.kernel_size[i] - 1) * self.kernel_dilation[i] + 1;
            if n < window {
                return Err(Error::shape(
                    "Conv",
                    format!("spatial axis {i}: a window of {window} does not fit {n} positions"),
                ));
            }
            outs.push((n - window) / self.strides[i] + 1);
        }
        let kernel = self.kernel.value();
        let mut y: Option<Tensor> = None;
        let positions: usize = self.kernel_size.iter().product();
        for p in 0..positions {
            // The kernel position (row-major over kernel_size) and its input window.
            let mut rest = p;
            let mut tap = vec![0; rank];
            for i in (0..rank).rev() {
                tap[i] = rest % self.kernel_size[i];
                rest /= self.kernel_size[i];
            }
            let mut window = padded.clone();
            let mut weights = kernel.clone();
            for i in 0..rank {
                let start = tap[i] * self.kernel_dilation[i];
                window = strided(&window, first + i, start, outs[i], self.strides[i])?;
                weights = weights.index_axis(0, isize_of(tap[i])?)?;
            }
            let term = window.matmul(&weights)?;
            y = Some(match y {
                Some(acc) => (acc + &term)?,
                None => term,
            });
        }
        let y = y.ok_or_else(|| Error::shape("Conv", "an empty kernel"))?;
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
    let mut split: Vec<isize> = (taken.shape().iter())
        .map(|&d| isize_of(d))
        .collect::<Result<_>>()?;
    split[axis] = isize_of(count)?;
    split.insert(axis + 1, isize_of(stride)?);
    taken.reshape(&split)?.index_axis(a + 1, 0)
}
