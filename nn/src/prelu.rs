//! `nnx.PReLU`: a leaky relu whose negative slope is a parameter.

use nnx_core::tensor::elementwise::CompareOp;
use nnx_core::{Module, Param, Result, Tensor};

/// `nnx.PReLU(negative_slope_init)`: `x` where `x >= 0`, `negative_slope · x` elsewhere,
/// the slope a scalar `Param` (created from the value, drawing no key, as Flax).
///
/// ```
/// use nnx_core::{Result, Tensor};
/// use nnx_nn::PReLU;
/// # fn main() -> Result<()> {
/// let act = PReLU::new(0.1);
/// let y = act.forward(&Tensor::from_slice(&[-2.0f32, 3.0]))?;
/// assert_eq!(y.to_vec::<f32>()?, vec![-0.2, 3.0]);
/// # Ok(())
/// # }
/// ```
#[derive(Module, Clone, Debug)]
pub struct PReLU {
    /// The slope for negative inputs (a float32 scalar).
    pub negative_slope: Param,
}

impl PReLU {
    /// `nnx.PReLU(negative_slope_init)` (Flax's default is `0.01`).
    pub fn new(negative_slope_init: f32) -> PReLU {
        PReLU {
            negative_slope: Param::new(Tensor::scalar(negative_slope_init)),
        }
    }

    /// `layer(x)`.
    ///
    /// # Errors
    /// A non-float `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let slope = self.negative_slope.value().astype(x.dtype())?;
        let nonnegative = x.compare(CompareOp::Ge, &Tensor::from(0.0f32))?;
        nonnegative.select(x, &slope.mul(x)?)
    }
}

impl Default for PReLU {
    fn default() -> Self {
        PReLU::new(0.01)
    }
}
