//! `nnx.Dropout`.

use nnx_core::random::{self, RngStream};
use nnx_core::{Module, Result, Rngs, Tensor};

/// `nnx.Dropout(rate, rngs=rngs)`: in training, each element is zeroed with probability
/// `rate` and the others scaled by `1 / (1 - rate)`; with `deterministic` (after `eval()`),
/// the input passes unchanged.
///
/// As in Flax, the layer keeps its own stream, forked from the `dropout` stream of the `Rngs`
/// it is created with (or `default`), and draws one key from it per call; the masks are
/// Flax's for the same seed.
#[derive(Module, Clone, Debug)]
pub struct Dropout {
    /// The probability of dropping an element.
    pub rate: f64,
    /// Axes along which one mask value is shared.
    pub broadcast_dims: Vec<usize>,
    /// No masking (`eval()` sets it, `train()` clears it).
    pub deterministic: bool,
    /// The name of the stream the layer was forked from.
    pub rng_collection: String,
    /// The layer's stream, or `None` (then [`Dropout::forward_with`] needs a key).
    pub rngs: Option<RngStream>,
}

impl Dropout {
    /// `nnx.Dropout(rate, rngs=rngs)`: forks the `dropout` stream.
    ///
    /// # Errors
    /// A missing `dropout` (or `default`) stream.
    pub fn new(rate: f64, rngs: &Rngs) -> Result<Dropout> {
        Ok(Dropout {
            rate,
            broadcast_dims: Vec::new(),
            deterministic: false,
            rng_collection: "dropout".to_owned(),
            rngs: Some(rngs.stream("dropout")?.fork()?),
        })
    }

    /// `layer(x)`.
    ///
    /// # Errors
    /// A layer in training without a stream; the samplers' errors.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, None)
    }

    /// `layer(x, rngs=key)`: as [`Dropout::forward`], drawing the mask from `key` when given.
    ///
    /// # Errors
    /// As [`Dropout::forward`].
    pub fn forward_with(&self, x: &Tensor, key: Option<&Tensor>) -> Result<Tensor> {
        if self.rate == 0.0 || self.deterministic {
            return Ok(x.clone());
        }
        if self.rate == 1.0 {
            return Tensor::try_zeros(x.shape());
        }
        let key = match (key, &self.rngs) {
            (Some(key), _) => key.clone(),
            (None, Some(stream)) => stream.next_key()?,
            (None, None) => {
                return Err(nnx_core::Error::shape(
                    "Dropout",
                    "no rngs: create the layer with Rngs or pass a key to forward_with",
                ));
            }
        };
        let keep = 1.0 - self.rate;
        let mut shape = x.shape().to_vec();
        for &dim in &self.broadcast_dims {
            if let Some(d) = shape.get_mut(dim) {
                *d = 1;
            }
        }
        let mask = random::bernoulli(&key, keep as f32, &shape)?.broadcast_to(x.shape())?;
        let kept = (x / keep as f32)?;
        mask.select(&kept, &Tensor::try_zeros(x.shape())?)
    }
}
