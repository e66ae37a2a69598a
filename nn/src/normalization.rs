//! `nnx.BatchNorm`, `nnx.LayerNorm` and `nnx.RMSNorm`.

use nnx_core::{BatchStat, Module, Param, Result, Rngs, Tensor};

use crate::initializers::{self, Initializer};

/// Mean and variance over the last axis, kept as a size-1 axis, as Flax's `_compute_stats`
/// with `use_fast_variance`: `var = max(0, mean(x²) - mean²)`; without `use_mean`, the
/// mean is zero and `var = mean(x²)`.
fn stats(x: &Tensor, use_mean: bool) -> Result<(Option<Tensor>, Tensor)> {
    let mean_square = (x * x)?.mean(-1)?.expand_dims(-1)?;
    if !use_mean {
        return Ok((None, mean_square));
    }
    let mean = x.mean(-1)?.expand_dims(-1)?;
    let variance = (mean_square - (&mean * &mean)?)?.maximum(&Tensor::from(0.0f32))?;
    Ok((Some(mean), variance))
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

/// Draws the next `params` key and initialises a feature vector with it (as Flax does, even
/// for constant initialisers: the key count matters for the layers created after).
fn feature_param(init: &Initializer, features: usize, rngs: &Rngs) -> Result<Param> {
    let key = rngs.next_key("params")?;
    Ok(Param::new(init.init(&key, [features])?))
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
        let scale = use_scale
            .then(|| feature_param(&initializers::ones(), num_features, rngs))
            .transpose()?;
        let bias = use_bias
            .then(|| feature_param(&initializers::zeros(), num_features, rngs))
            .transpose()?;
        Ok(LayerNorm {
            scale,
            bias,
            num_features,
            epsilon,
            use_bias,
            use_scale,
        })
    }

    /// `layer(x)`.
    ///
    /// # Errors
    /// An input whose last axis is not `num_features`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (mean, variance) = stats(x, true)?;
        normalize(
            x,
            mean,
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
        let scale = use_scale
            .then(|| feature_param(&initializers::ones(), num_features, rngs))
            .transpose()?;
        Ok(RMSNorm {
            scale,
            num_features,
            epsilon,
            use_scale,
        })
    }

    /// `layer(x)`.
    ///
    /// # Errors
    /// An input whose last axis is not `num_features`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, mean_square) = stats(x, false)?;
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
}

impl BatchNorm {
    /// `nnx.BatchNorm(num_features, rngs=rngs)`.
    ///
    /// # Errors
    /// A missing `params` (or `default`) stream.
    pub fn new(num_features: usize, rngs: &Rngs) -> Result<BatchNorm> {
        let scale = feature_param(&initializers::ones(), num_features, rngs)?;
        let bias = feature_param(&initializers::zeros(), num_features, rngs)?;
        Ok(BatchNorm {
            mean: BatchStat::new(Tensor::try_zeros([num_features])?),
            var: BatchStat::new(Tensor::try_ones([num_features])?),
            scale: Some(scale),
            bias: Some(bias),
            num_features,
            use_running_average: false,
            momentum: 0.99,
            epsilon: 1e-5,
            use_bias: true,
            use_scale: true,
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
            let mean = x.mean(axes.clone())?;
            let mean_square = (x * x)?.mean(axes)?;
            let variance = (mean_square - (&mean * &mean)?)?.maximum(&Tensor::from(0.0f32))?;
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
