//! `nnx.Conv`: N-dimensional convolution over `[batch…, spatial…, features]` inputs.

use nnx_core::tensor::Windows;
use nnx_core::{Error, Module, Param, Result, Rngs, Tensor};

use crate::common::{dims, param};
use crate::initializers::{self, Initializer};

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

/// `nnx.Conv`'s and `nnx.ConvTranspose`'s keyword arguments; [`Default`] gives Flax's
/// defaults (unit strides and dilations, `'SAME'`, one feature group, a bias, `lecun_normal`
/// and zeros).
///
/// ```
/// use nnx_core::{Result, Rngs, Tensor};
/// use nnx_nn::{Conv, conv::{ConvOptions, Padding}, initializers};
/// # fn main() -> Result<()> {
/// // nnx.Conv(4, 8, (3, 3), strides=2, feature_group_count=2, use_bias=False,
/// //          kernel_init=nnx.initializers.he_normal(), rngs=nnx.Rngs(0))
/// let options = ConvOptions {
///     strides: Some(vec![2, 2]),
///     feature_group_count: 2,
///     use_bias: false,
///     kernel_init: initializers::he_normal(),
///     ..ConvOptions::default()
/// };
/// let conv = Conv::with_options(4, 8, &[3, 3], options, &Rngs::new(0)?)?;
/// assert_eq!(conv.kernel.value().shape(), &[3, 3, 2, 8]);
/// assert_eq!(conv.forward(&Tensor::ones([1, 8, 8, 4]))?.shape(), &[1, 4, 4, 8]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ConvOptions {
    /// The step per spatial axis (`None`: 1).
    pub strides: Option<Vec<usize>>,
    /// The padding.
    pub padding: Padding,
    /// `input_dilation` (`Conv` only; `None`: 1): `d - 1` zeros between input elements.
    /// JAX refuses `'SAME'` and `'VALID'` with it: the padding must be explicit.
    pub input_dilation: Option<Vec<usize>>,
    /// The spacing between kernel taps per spatial axis (`None`: 1).
    pub kernel_dilation: Option<Vec<usize>>,
    /// `feature_group_count` (`Conv` only).
    pub feature_group_count: usize,
    /// Whether there is a bias.
    pub use_bias: bool,
    /// The kernel's initializer.
    pub kernel_init: Initializer,
    /// The bias's initializer.
    pub bias_init: Initializer,
}

impl Default for ConvOptions {
    fn default() -> Self {
        ConvOptions {
            strides: None,
            padding: Padding::Same,
            input_dilation: None,
            kernel_dilation: None,
            feature_group_count: 1,
            use_bias: true,
            kernel_init: initializers::lecun_normal(),
            bias_init: initializers::zeros(),
        }
    }
}

/// `nnx.Conv(in_features, out_features, kernel_size, strides, padding, kernel_dilation)`:
/// the kernel has shape `kernel_size + [in_features, out_features]` and is initialised as
/// Flax's (`lecun_normal` over the receptive field, one `params` key; then the zero bias).
///
/// The convolution is the input's patches (the `patches` primitive, im2col) times the kernel
/// seen as one `[taps · in_features, out_features]` matrix: one GEMM (batched over feature
/// groups), on every engine; its input gradient is the patches' transpose (col2im).
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
    /// `d - 1` zeros between input elements per spatial axis.
    pub input_dilation: Vec<usize>,
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
    /// As [`Conv::with_options`].
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
        let options = ConvOptions {
            strides: Some(strides.to_vec()),
            padding,
            kernel_dilation: Some(kernel_dilation.to_vec()),
            use_bias,
            ..ConvOptions::default()
        };
        Conv::with_options(in_features, out_features, kernel_size, options, rngs)
    }

    /// `nnx.Conv(…, feature_group_count=groups)`: each of `groups` slices of the input
    /// features is convolved with its own slice of the output features (depthwise with
    /// `groups = in_features`). Otherwise Flax's defaults.
    ///
    /// # Errors
    /// As [`Conv::with_options`].
    pub fn grouped(
        in_features: usize,
        out_features: usize,
        kernel_size: &[usize],
        groups: usize,
        rngs: &Rngs,
    ) -> Result<Conv> {
        let options = ConvOptions {
            feature_group_count: groups,
            ..ConvOptions::default()
        };
        Conv::with_options(in_features, out_features, kernel_size, options, rngs)
    }

    /// `nnx.Conv(in_features, out_features, kernel_size, **options, rngs=rngs)`: the kernel
    /// `kernel_size + [in_features / groups, out_features]` from `kernel_init`, then the bias
    /// from `bias_init`, one `params` key each, as Flax.
    ///
    /// # Errors
    /// An empty or zero `kernel_size`; strides or dilations of another length than
    /// `kernel_size`, or zero; explicit padding of another length; `'SAME'`/`'VALID'` with
    /// an input dilation (JAX's "String padding is not implemented for transposed
    /// convolution using this op"); a feature group count that is zero or does not divide
    /// both feature counts; a missing `params` stream.
    pub fn with_options(
        in_features: usize,
        out_features: usize,
        kernel_size: &[usize],
        options: ConvOptions,
        rngs: &Rngs,
    ) -> Result<Conv> {
        let rank = kernel_size.len();
        let bad = |what: String| Error::shape("Conv", what);
        if rank == 0 || kernel_size.contains(&0) {
            return Err(bad(
                "kernel_size needs one positive size per spatial axis".into()
            ));
        }
        let per_axis = |name: &str, given: Option<Vec<usize>>| -> Result<Vec<usize>> {
            let values = given.unwrap_or_else(|| vec![1; rank]);
            if values.len() != rank || values.contains(&0) {
                return Err(bad(format!(
                    "{name} needs one positive value per spatial axis ({rank}), got {values:?}"
                )));
            }
            Ok(values)
        };
        let strides = per_axis("strides", options.strides)?;
        let kernel_dilation = per_axis("kernel_dilation", options.kernel_dilation)?;
        let input_dilation = per_axis("input_dilation", options.input_dilation)?;
        let (mode, explicit) = match options.padding {
            Padding::Same => ("SAME", Vec::new()),
            Padding::Valid => ("VALID", Vec::new()),
            Padding::Explicit(pairs) if pairs.len() == rank => ("EXPLICIT", pairs),
            Padding::Explicit(_) => {
                return Err(bad(
                    "explicit padding needs one pair per spatial axis".into()
                ));
            }
        };
        check_dilated_padding(mode, &input_dilation)?;
        let groups = options.feature_group_count;
        if groups == 0
            || !in_features.is_multiple_of(groups)
            || !out_features.is_multiple_of(groups)
        {
            return Err(bad(format!(
                "feature_group_count {groups} must divide in_features {in_features} and out_features {out_features}"
            )));
        }
        let mut shape = kernel_size.to_vec();
        shape.extend([in_features / groups, out_features]);
        let kernel = param(&options.kernel_init, &shape, rngs)?;
        let bias = (options.use_bias)
            .then(|| param(&options.bias_init, [out_features], rngs))
            .transpose()?;
        Ok(Conv {
            kernel,
            bias,
            in_features,
            out_features,
            kernel_size: kernel_size.to_vec(),
            strides,
            kernel_dilation,
            input_dilation,
            padding: explicit,
            padding_mode: mode.to_owned(),
            feature_group_count: groups,
            use_bias: options.use_bias,
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
        let first = spatial_start(x, rank, self.in_features, "Conv")?;
        let spatial = &x.shape()[first..x.ndim() - 1];
        check_dilated_padding(&self.padding_mode, &self.input_dilation)?;
        let windows = Windows::new(
            &self.kernel_size,
            &self.strides,
            &self.pads(spatial),
            &self.input_dilation,
            &self.kernel_dilation,
        )?;
        let y = correlate(x, &windows, &self.kernel.value(), self.feature_group_count)?;
        match &self.bias {
            Some(bias) => y + &bias.value(),
            None => Ok(y),
        }
    }
}

/// JAX refuses `'SAME'` and `'VALID'` padding with an input dilation: the padding must be
/// explicit.
fn check_dilated_padding(padding_mode: &str, input_dilation: &[usize]) -> Result<()> {
    if padding_mode != "EXPLICIT" && input_dilation.iter().any(|&d| d > 1) {
        return Err(Error::shape(
            "Conv",
            "String padding is not implemented for transposed convolution using this op. \
             Please either exactly specify the required padding or use conv_transpose.",
        ));
    }
    Ok(())
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

/// The cross-correlation of `x` with `kernel` (`window size + [in / groups, out]`) over
/// `windows`: the patches of `x` (im2col) times the kernel as one matrix, one GEMM (a
/// batched GEMM over the feature groups).
fn correlate(x: &Tensor, windows: &Windows, kernel: &Tensor, groups: usize) -> Result<Tensor> {
    let patches = x.patches(windows)?;
    let rank = windows.rank();
    // The batch axes and the window positions: `[batch…, windows…]`.
    let positions = dims(&patches.shape()[..patches.ndim() - rank - 1])?;
    let features = *x.shape().last().unwrap_or(&0);
    let outputs = *kernel.shape().last().unwrap_or(&0);
    let taps: usize = windows.size().iter().product();
    let with = |tail: &[usize]| -> Result<Vec<isize>> {
        let mut shape = positions.clone();
        shape.extend(dims(tail)?);
        Ok(shape)
    };
    if groups <= 1 {
        let rows = patches.reshape(&with(&[taps * features])?)?;
        return rows.matmul(&kernel.reshape(&dims(&[taps * features, outputs])?)?);
    }
    let (per_in, per_out) = (features / groups, outputs / groups);
    // `[…, taps, groups, per_in]` to `[…, groups, 1, taps · per_in]`.
    let n = positions.len();
    let mut perm = dims(&(0..n).collect::<Vec<_>>())?;
    perm.extend(dims(&[n + 1, n, n + 2])?);
    let rows = patches
        .reshape(&with(&[taps, groups, per_in])?)?
        .permute_axes(&perm)?
        .reshape(&with(&[groups, 1, taps * per_in])?)?;
    // `[taps · per_in, groups · per_out]` to `[groups, taps · per_in, per_out]`.
    let weights = kernel
        .reshape(&dims(&[taps * per_in, groups, per_out])?)?
        .permute_axes(&[1, 0, 2])?;
    rows.matmul(&weights)?.reshape(&with(&[outputs])?)
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
    /// As [`ConvTranspose::with_options`].
    pub fn new(
        in_features: usize,
        out_features: usize,
        kernel_size: &[usize],
        strides: &[usize],
        padding: Padding,
        rngs: &Rngs,
    ) -> Result<ConvTranspose> {
        let options = ConvOptions {
            strides: Some(strides.to_vec()),
            padding,
            ..ConvOptions::default()
        };
        ConvTranspose::with_options(in_features, out_features, kernel_size, options, rngs)
    }

    /// `nnx.ConvTranspose(in_features, out_features, kernel_size, **options, rngs=rngs)`
    /// (`strides`, `padding`, `kernel_dilation`, `use_bias` and the initializers; strides
    /// default to 1 as in Flax).
    ///
    /// # Errors
    /// As [`Conv::with_options`]; an input dilation or feature groups, which
    /// `nnx.ConvTranspose` does not take.
    pub fn with_options(
        in_features: usize,
        out_features: usize,
        kernel_size: &[usize],
        options: ConvOptions,
        rngs: &Rngs,
    ) -> Result<ConvTranspose> {
        if options.input_dilation.is_some() || options.feature_group_count != 1 {
            return Err(Error::shape(
                "ConvTranspose",
                "takes neither input_dilation nor feature_group_count",
            ));
        }
        let conv = Conv::with_options(in_features, out_features, kernel_size, options, rngs)?;
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
            use_bias: conv.use_bias,
        })
    }

    /// `layer(x)` for `x` of shape `[batch…, spatial…, in_features]`.
    ///
    /// # Errors
    /// As [`Conv::forward`].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rank = self.kernel_size.len();
        spatial_start(x, rank, self.in_features, "ConvTranspose")?;
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
        // The input dilated by the strides, padded, correlated at stride 1.
        let windows = Windows::new(
            &self.kernel_size,
            &vec![1; rank],
            &pads,
            &self.strides,
            &self.kernel_dilation,
        )?;
        let y = correlate(x, &windows, &self.kernel.value(), 1)?;
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
