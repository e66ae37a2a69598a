//! The CNN of Flax NNX's MNIST tutorial, built from the layer library: the convolution
//! workloads of the anchor comparison (`j`, `k` in [`crate::anchors`]), against
//! `benches/flax/anchors.py`'s same model in Flax.

use nnx_fast::nn::{self, losses, optim};
use nnx_fast::prelude::*;

/// `Conv(1→32, 3×3) → relu → avg_pool 2×2 → Conv(32→64, 3×3) → relu → avg_pool 2×2 →
/// flatten → Linear(3136→256) → relu → Linear(256→10)`, as the Flax tutorial's `CNN`.
#[derive(Module, Clone)]
#[module(name = "CNN")]
pub struct Cnn {
    conv1: nn::Conv,
    conv2: nn::Conv,
    linear1: nn::Linear,
    linear2: nn::Linear,
}

impl Cnn {
    /// The model, initialised from `rngs`' `params` stream.
    ///
    /// # Errors
    /// None in practice (the shapes are fixed).
    pub fn new(rngs: &Rngs) -> Result<Cnn> {
        Ok(Cnn {
            conv1: nn::Conv::new(1, 32, &[3, 3], rngs)?,
            conv2: nn::Conv::new(32, 64, &[3, 3], rngs)?,
            linear1: nn::Linear::new(3136, 256, rngs)?,
            linear2: nn::Linear::new(256, 10, rngs)?,
        })
    }

    /// Class scores, `[batch, 10]`, for `[batch, 28, 28, 1]` images.
    ///
    /// # Errors
    /// Shape errors.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let pool = |h: &Tensor| nn::avg_pool(h, &[2, 2], Some(&[2, 2]), nn::Padding::Valid);
        let h = pool(&self.conv1.forward(x)?.relu()?)?;
        let h = pool(&self.conv2.forward(&h)?.relu()?)?;
        let h = h.reshape(&[h.shape()[0] as isize, -1])?;
        self.linear2.forward(&self.linear1.forward(&h)?.relu()?)
    }
}

/// The mean softmax cross-entropy of `model` on images `x` with integer labels `y`.
///
/// # Errors
/// Shape errors.
pub fn loss(model: &Cnn, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    losses::softmax_cross_entropy_with_integer_labels(&model.forward(x)?, y)?.mean(None)
}

/// An SGD optimizer (learning rate 1e-3) over `model`'s Params, as the Flax side's
/// `nnx.Optimizer(model, optax.sgd(1e-3), wrt=nnx.Param)`.
///
/// # Errors
/// None in practice.
pub fn optimizer(model: &Cnn) -> Result<optim::Optimizer> {
    optim::Optimizer::new(model, optim::sgd(1e-3), VariableType::PARAM)
}

/// A batch of `batch` random images and labels in `0..10`.
///
/// # Errors
/// None in practice.
pub fn batch(batch: usize) -> Result<(Tensor, Tensor)> {
    let images = random::normal(&random::key(4), [batch, 28, 28, 1])?;
    let labels: Vec<i32> = (0..batch).map(|i| (i * 7 % 10) as i32).collect();
    Ok((images, Tensor::from_slice(&labels)))
}
