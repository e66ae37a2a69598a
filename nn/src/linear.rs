//! `nnx.Linear`.

use nnx_core::{Module, Param, Result, Rngs, Tensor};

use crate::common::param;
use crate::initializers::{self, Initializer};

/// `nnx.Linear(in_features, out_features)`: `y = x @ kernel + bias`, over the last axis of
/// `x`.
///
/// Created as Flax creates it: the kernel from `kernel_init` (default `lecun_normal`) with
/// the next key of the `params` stream, then the bias from `bias_init` (default zeros) with the
/// following one; so the same `Rngs` seed gives Flax's parameters bit for bit. The attribute
/// names are Flax's (`kernel`, `bias`, `in_features`, `out_features`, `use_bias`).
#[derive(Module, Clone, Debug)]
pub struct Linear {
    /// `[in_features, out_features]`.
    pub kernel: Param,
    /// `[out_features]`, or `None` without a bias.
    pub bias: Option<Param>,
    /// The size of the input's last axis.
    pub in_features: usize,
    /// The size of the output's last axis.
    pub out_features: usize,
    /// Whether there is a bias.
    pub use_bias: bool,
}

/// The options of [`Linear`], for [`Linear::with`].
#[derive(Clone, Debug)]
pub struct LinearOptions {
    /// Add a bias (default `true`).
    pub use_bias: bool,
    /// The kernel's initializer (default [`initializers::lecun_normal`]).
    pub kernel_init: Initializer,
    /// The bias's initializer (default [`initializers::zeros`]).
    pub bias_init: Initializer,
}

impl Default for LinearOptions {
    fn default() -> LinearOptions {
        LinearOptions {
            use_bias: true,
            kernel_init: initializers::lecun_normal(),
            bias_init: initializers::zeros(),
        }
    }
}

impl Linear {
    /// `nnx.Linear(in_features, out_features, rngs=rngs)`.
    ///
    /// # Errors
    /// A missing `params` (or `default`) stream in `rngs`.
    pub fn new(in_features: usize, out_features: usize, rngs: &Rngs) -> Result<Linear> {
        Linear::with(in_features, out_features, LinearOptions::default(), rngs)
    }

    /// `nnx.Linear(in_features, out_features, use_bias=…, kernel_init=…, bias_init=…,
    /// rngs=rngs)`.
    ///
    /// # Errors
    /// As [`Linear::new`], and an initializer's errors.
    pub fn with(
        in_features: usize,
        out_features: usize,
        options: LinearOptions,
        rngs: &Rngs,
    ) -> Result<Linear> {
        let kernel = param(&options.kernel_init, [in_features, out_features], rngs)?;
        let bias = (options.use_bias)
            .then(|| param(&options.bias_init, [out_features], rngs))
            .transpose()?;
        Ok(Linear {
            kernel,
            bias,
            in_features,
            out_features,
            use_bias: options.use_bias,
        })
    }

    /// `layer(x)`: `x @ kernel (+ bias)`, contracting `x`'s last axis.
    ///
    /// # Errors
    /// An input whose last axis is not `in_features`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.kernel.value())?;
        match &self.bias {
            Some(bias) => y + &bias.value(),
            None => Ok(y),
        }
    }
}
