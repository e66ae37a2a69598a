//! `nnx.BatchNorm`, `nnx.LayerNorm`, `nnx.RMSNorm` and `nnx.GroupNorm`.

use nnx_core::tensor::ReduceOp;
use nnx_core::{BatchStat, Module, Param, Result, Rngs, Tensor};

use crate::common::{dims, param};
use crate::initializers::{self, Initializer};

/// The normalisation layers' keyword arguments that shape their parameters; [`Default`]
/// gives Flax's (the layer's own `epsilon`, a scale of ones and a bias of zeros).
///
/// ```
/// use nnx_core::{Result, Rngs};
/// use nnx_nn::{LayerNorm, NormOptions};
/// # fn main() -> Result<()> {
/// // nnx.LayerNorm(8, use_bias=False, epsilon=1e-5, rngs=nnx.Rngs(0)), as in GPT-style blocks.
/// let options = NormOptions { use_bias: false, epsilon: Some(1e-5), ..NormOptions::default() };
/// let norm = LayerNorm::with_options(8, options, &Rngs::new(0)?)?;
/// assert!(norm.bias.is_none() && norm.scale.is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NormOptions {
    /// Added to the variance (`None`: the layer's default, 1e-5 for `BatchNorm`, else 1e-6).
    pub epsilon: Option<f32>,
    /// Whether there is a bias (not read by `RMSNorm`, which has none).
    pub use_bias: bool,
    /// Whether there is a scale.
    pub use_scale: bool,
    /// The bias's initializer.
    pub bias_init: Initializer,
    /// The scale's initializer.
    pub scale_init: Initializer,
    /// The one-pass variance `mean(x²) - mean²` (Flax's default), else `mean((x - mean)²)`.
    pub use_fast_variance: bool,
}

impl Default for NormOptions {
    fn default() -> Self {
        NormOptions {
            epsilon: None,
            use_bias: true,
            use_scale: true,
            bias_init: initializers::zeros(),
            scale_init: initializers::ones(),
            use_fast_variance: true,
        }
    }
}

impl NormOptions {
    /// The scale, then the bias (each only if used, one `params` key each), as every Flax
    /// normalisation layer creates them.
    fn scale_and_bias(
        &self,
        num_features: usize,
        rngs: &Rngs,
    ) -> Result<(Option<Param>, Option<Param>)> {
        let scale = (self.use_scale)
            .then(|| param(&self.scale_init, [num_features], rngs))
            .transpose()?;
        let bias = (self.use_bias)
            .then(|| param(&self.bias_init, [num_features], rngs))
            .transpose()?;
        Ok((scale, bias))
    }
}

/// `mean(x²)` over `axes`, kept as size-1 axes: Flax's `_compute_stats` without
/// `use_mean` (`RMSNorm`'s variance).
fn mean_square(x: &Tensor, axes: Vec<isize>) -> Result<Tensor> {
    (x * x)?.reduce(ReduceOp::Mean, axes, true)
}

/// Mean and variance of `x` over `axes`, kept as size-1 axes, as Flax's `_compute_stats`:
/// with `fast_variance`, `var = max(0, mean(x²) - mean²)` (one pass), otherwise
/// `var = mean((x - mean)²)` (exact when the mean is large against the spread).
fn moments(x: &Tensor, axes: Vec<isize>, fast_variance: bool) -> Result<(Tensor, Tensor)> {
    let mean = x.reduce(ReduceOp::Mean, axes.clone(), true)?;
    let variance = if fast_variance {
        (mean_square(x, axes)? - (&mean * &mean)?)?.maximum(&Tensor::from(0.0f32))?
    } else {
        mean_square(&(x - &mean)?, axes)?
    };
    Ok((mean, variance))
}

/// Flax's `_normalize`: `(x - mean) · (rsqrt(var + ε) · scale) + bias`.
fn normalize(
    x: &Tensor,
    mean: Option<Tensor>,
    variance: Tensor,
    epsilon: f32,
    scale: Option<&Param>,
    bias: Option<&Param>,
) -> Result<Tensor> {
    let centred = match mean {
        Some(mean) => (x - &mean)?,
        None => x.clone(),
    };
    let mut factor = (1.0f32 / (variance + epsilon)?.sqrt()?)?;
    if let Some(scale) = scale {
        factor = (factor * &scale.value())?;
    }
    let y = (centred * &factor)?;
    match bias {
        Some(bias) => y + &bias.value(),
        None => Ok(y),
    }
}

/// `nnx.LayerNorm(num_features)` over the last axis: `(x - mean) / sqrt(var + epsilon) *
/// scale + bias`, with Flax's defaults (`epsilon = 1e-6`, scale ones, bias zeros, each drawn
/// with a `params` key).
#[derive(Module, Clone, Debug)]
pub struct LayerNorm {
    /// `[num_features]`, or `None` with `use_scale = false`.
    pub scale: Option<Param>,
    /// `[num_features]`, or `None` with `use_bias = false`.
    pub bias: Option<Param>,
    /// The size of the normalised (last) axis.
    pub num_features: usize,
    /// Added to the variance.
    pub epsilon: f32,
    /// Whether there is a bias.
    pub use_bias: bool,
    /// Whether there is a scale.
    pub use_scale: bool,
    /// The one-pass variance (see [`NormOptions::use_fast_variance`]).
    pub use_fast_variance: bool,
}

impl LayerNorm {
    /// `nnx.LayerNorm(num_features, rngs=rngs)`.
    ///
    /// # Errors
    /// A missing `params` (or `default`) stream.
    pub fn new(num_features: usize, rngs: &Rngs) -> Result<LayerNorm> {
        LayerNorm::with(num_features, 1e-6, true, true, rngs)
    }

    /// `nnx.LayerNorm(num_features, epsilon=…, use_bias=…, use_scale=…, rngs=rngs)`.
    ///
    /// # Errors
    /// As [`LayerNorm::new`].
    pub fn with(
        num_features: usize,
        epsilon: f32,
        use_bias: bool,
        use_scale: bool,
        rngs: &Rngs,
    ) -> Result<LayerNorm> {
        let options = NormOptions {
            epsilon: Some(epsilon),
            use_bias,
            use_scale,
            ..NormOptions::default()
        };
        LayerNorm::with_options(num_features, options, rngs)
    }

    /// `nnx.LayerNorm(num_features, **options, rngs=rngs)`.
    ///
    /// # Errors
    /// As [`LayerNorm::new`].
    pub fn with_options(
        num_features: usize,
        options: NormOptions,
        rngs: &Rngs,
    ) -> Result<LayerNorm> {
        let (scale, bias) = options.scale_and_bias(num_features, rngs)?;
        Ok(LayerNorm {
            scale,
            bias,
            num_features,
            epsilon: options.epsilon.unwrap_or(1e-6),
            use_bias: options.use_bias,
            use_scale: options.use_scale,
            use_fast_variance: options.use_fast_variance,
        })
    }

    /// `layer(x)`.
    ///
    /// # Errors
    /// An input whose last axis is not `num_features`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (mean, variance) = moments(x, vec![-1], self.use_fast_variance)?;
        normalize(
            x,
            Some(mean),
            variance,
            self.epsilon,
            self.scale.as_ref(),
            self.bias.as_ref(),
        )
    }
}

/// `nnx.RMSNorm(num_features)` over the last axis: `x / sqrt(mean(x²) + epsilon) * scale`
/// (`epsilon = 1e-6`, scale ones drawn with a `params` key).
#[derive(Module, Clone, Debug)]
pub struct RMSNorm {
    /// `[num_features]`, or `None` with `use_scale = false`.
    pub scale: Option<Param>,
    /// The size of the normalised (last) axis.
    pub num_features: usize,
    /// Added to the mean square.
    pub epsilon: f32,
    /// Whether there is a scale.
    pub use_scale: bool,
}

impl RMSNorm {
    /// `nnx.RMSNorm(num_features, rngs=rngs)`.
    ///
    /// # Errors
    /// A missing `params` (or `default`) stream.
    pub fn new(num_features: usize, rngs: &Rngs) -> Result<RMSNorm> {
        RMSNorm::with(num_features, 1e-6, true, rngs)
    }

    /// `nnx.RMSNorm(num_features, epsilon=…, use_scale=…, rngs=rngs)`.
    ///
    /// # Errors
    /// As [`RMSNorm::new`].
    pub fn with(
        num_features: usize,
        epsilon: f32,
        use_scale: bool,
        rngs: &Rngs,
    ) -> Result<RMSNorm> {
        let options = NormOptions {
            epsilon: Some(epsilon),
            use_scale,
            ..NormOptions::default()
        };
        RMSNorm::with_options(num_features, options, rngs)
    }

    /// `nnx.RMSNorm(num_features, **options, rngs=rngs)` (`use_bias`, `bias_init` and
    /// `use_fast_variance` are not read: the layer has no bias and no mean).
    ///
    /// # Errors
    /// As [`RMSNorm::new`].
    pub fn with_options(num_features: usize, options: NormOptions, rngs: &Rngs) -> Result<RMSNorm> {
        let options = NormOptions {
            use_bias: false,
            ..options
        };
        let (scale, _) = options.scale_and_bias(num_features, rngs)?;
        Ok(RMSNorm {
            scale,
            num_features,
            epsilon: options.epsilon.unwrap_or(1e-6),
            use_scale: options.use_scale,
        })
    }

    /// `layer(x)`.
    ///
    /// # Errors
    /// An input whose last axis is not `num_features`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean_square = mean_square(x, vec![-1])?;
        normalize(
            x,
            None,
            mean_square,
            self.epsilon,
            self.scale.as_ref(),
            None,
        )
    }
}

/// `nnx.BatchNorm(num_features)` over every axis but the last: in training, normalises with
/// the batch's statistics and moves the running `mean` and `var` (BatchStat Variables)
/// towards them by `1 - momentum`; with `use_running_average` (after `eval()`), normalises
/// with the running statistics. Flax's defaults: `momentum = 0.99`, `epsilon = 1e-5`.
#[derive(Module, Clone, Debug)]
pub struct BatchNorm {
    /// The running mean, `[num_features]`, starting at zeros.
    pub mean: BatchStat,
    /// The running variance, `[num_features]`, starting at ones.
    pub var: BatchStat,
    /// `[num_features]`, or `None` with `use_scale = false`.
    pub scale: Option<Param>,
    /// `[num_features]`, or `None` with `use_bias = false`.
    pub bias: Option<Param>,
    /// The size of the feature (last) axis.
    pub num_features: usize,
    /// Normalise with the running statistics and leave them as they are.
    pub use_running_average: bool,
    /// The running statistics' decay.
    pub momentum: f64,
    /// Added to the variance.
    pub epsilon: f32,
    /// Whether there is a bias.
    pub use_bias: bool,
    /// Whether there is a scale.
    pub use_scale: bool,
    /// The one-pass variance (see [`NormOptions::use_fast_variance`]).
    pub use_fast_variance: bool,
}

impl BatchNorm {
    /// `nnx.BatchNorm(num_features, rngs=rngs)`.
    ///
    /// # Errors
    /// A missing `params` (or `default`) stream.
    pub fn new(num_features: usize, rngs: &Rngs) -> Result<BatchNorm> {
        BatchNorm::with_options(num_features, NormOptions::default(), rngs)
    }

    /// `nnx.BatchNorm(num_features, **options, rngs=rngs)` (`momentum` and
    /// `use_running_average` are fields to set on the layer).
    ///
    /// # Errors
    /// As [`BatchNorm::new`].
    pub fn with_options(
        num_features: usize,
        options: NormOptions,
        rngs: &Rngs,
    ) -> Result<BatchNorm> {
        let mean = BatchStat::new(Tensor::try_zeros([num_features])?);
        let var = BatchStat::new(Tensor::try_ones([num_features])?);
        let (scale, bias) = options.scale_and_bias(num_features, rngs)?;
        Ok(BatchNorm {
            mean,
            var,
            scale,
            bias,
            num_features,
            use_running_average: false,
            momentum: 0.99,
            epsilon: options.epsilon.unwrap_or(1e-5),
            use_bias: options.use_bias,
            use_scale: options.use_scale,
            use_fast_variance: options.use_fast_variance,
        })
    }

    /// `layer(x)`.
    ///
    /// # Errors
    /// An input whose last axis is not `num_features`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (mean, variance) = if self.use_running_average {
            (self.mean.value(), self.var.value())
        } else {
            let axes: Vec<isize> = (0..x.ndim().saturating_sub(1) as isize).collect();
            let (mean, variance) = moments(x, axes, self.use_fast_variance)?;
            // Per feature, as the running statistics are.
            let features = [self.num_features as isize];
            let (mean, variance) = (mean.reshape(&features)?, variance.reshape(&features)?);
            let momentum = self.momentum as f32;
            let decay = (1.0 - self.momentum) as f32;
            let moved = |running: &BatchStat, batch: &Tensor| -> Result<Tensor> {
                ((running.value() * momentum)? + (batch * decay)?)?.stop_gradient()
            };
            self.mean.set_value(moved(&self.mean, &mean)?)?;
            self.var.set_value(moved(&self.var, &variance)?)?;
            (mean, variance)
        };
        normalize(
            x,
            Some(mean),
            variance,
            self.epsilon,
            self.scale.as_ref(),
            self.bias.as_ref(),
        )
    }
}

/// `nnx.GroupNorm(num_features, num_groups)`: the features split into `num_groups` groups,
/// each normalised over the spatial axes and its own features (the batch axis is the first);
/// then Flax's per-feature `scale` and `bias` (`epsilon = 1e-6`).
#[derive(Module, Clone, Debug)]
pub struct GroupNorm {
    /// `[num_features]`, or `None` with `use_scale = false`.
    pub scale: Option<Param>,
    /// `[num_features]`, or `None` with `use_bias = false`.
    pub bias: Option<Param>,
    /// The size of the feature (last) axis.
    pub num_features: usize,
    /// The number of groups.
    pub num_groups: usize,
    /// `num_features / num_groups`.
    pub group_size: usize,
    /// Added to the variance.
    pub epsilon: f32,
    /// Whether there is a bias.
    pub use_bias: bool,
    /// Whether there is a scale.
    pub use_scale: bool,
    /// The one-pass variance (see [`NormOptions::use_fast_variance`]).
    pub use_fast_variance: bool,
}

impl GroupNorm {
    /// `nnx.GroupNorm(num_features, num_groups=num_groups, rngs=rngs)` (Flax's default
    /// `num_groups` is 32).
    ///
    /// # Errors
    /// `num_groups` zero or not dividing `num_features` (Flax's message); a missing `params`
    /// stream.
    pub fn new(num_features: usize, num_groups: usize, rngs: &Rngs) -> Result<GroupNorm> {
        GroupNorm::with_options(num_features, num_groups, NormOptions::default(), rngs)
    }

    /// `nnx.GroupNorm(num_features, num_groups=num_groups, **options, rngs=rngs)`.
    ///
    /// # Errors
    /// As [`GroupNorm::new`].
    pub fn with_options(
        num_features: usize,
        num_groups: usize,
        options: NormOptions,
        rngs: &Rngs,
    ) -> Result<GroupNorm> {
        if num_groups == 0 || !num_features.is_multiple_of(num_groups) {
            return Err(nnx_core::Error::shape(
                "GroupNorm",
                format!(
                    "Number of groups ({num_groups}) does not divide the number of channels ({num_features})."
                ),
            ));
        }
        let (scale, bias) = options.scale_and_bias(num_features, rngs)?;
        Ok(GroupNorm {
            scale,
            bias,
            num_features,
            num_groups,
            group_size: num_features / num_groups,
            epsilon: options.epsilon.unwrap_or(1e-6),
            use_bias: options.use_bias,
            use_scale: options.use_scale,
            use_fast_variance: options.use_fast_variance,
        })
    }

    /// `layer(x)` for `x` of shape `[batch, spatial…, num_features]`.
    ///
    /// # Errors
    /// An input with fewer than two axes or another feature count.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let shape = x.shape().to_vec();
        let rank = shape.len();
        if rank < 2 || shape[rank - 1] != self.num_features {
            return Err(nnx_core::Error::shape(
                "GroupNorm",
                format!("expected [batch, …, {}], got {shape:?}", self.num_features),
            ));
        }
        let mut grouped_shape = shape[..rank - 1].to_vec();
        grouped_shape.extend([self.num_groups, self.group_size]);
        let grouped = x.reshape(&dims(&grouped_shape)?)?;
        // Spatial axes and the in-group feature axis of the grouped array.
        let mut axes: Vec<isize> = (1..rank as isize - 1).collect();
        axes.push(rank as isize);
        let (mean, variance) = moments(&grouped, axes, self.use_fast_variance)?;
        // [batch, groups] -> [batch, 1…, groups, 1] -> x's shape, as Flax's repeat and reshape.
        let mut kept = vec![shape[0]];
        kept.extend(std::iter::repeat_n(1, rank - 2));
        kept.extend([self.num_groups, 1]);
        let full = |stat: Tensor| -> Result<Tensor> {
            stat.reshape(&dims(&kept)?)?
                .broadcast_to(&grouped_shape)?
                .reshape(&dims(&shape)?)
        };
        normalize(
            x,
            Some(full(mean)?),
            full(variance)?,
            self.epsilon,
            self.scale.as_ref(),
            self.bias.as_ref(),
        )
    }
}
