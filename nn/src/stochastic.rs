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
    /// Axes along which one mask value is shared (negative ones count from the end).
    pub broadcast_dims: Vec<i64>,
    /// No masking (`eval()` sets it, `train()` clears it).
    pub deterministic: bool,
    /// The name of the stream the layer was forked from.
    pub rng_collection: String,
    /// The layer's stream, or `None` (then [`Dropout::forward_with`] needs a key).
    pub rngs: Option<RngStream>,
}

/// `nnx.Dropout`'s keyword arguments; [`Default`] gives Flax's (no broadcast axes, not
/// deterministic, the `dropout` stream).
#[derive(Clone, Debug, PartialEq)]
pub struct DropoutOptions {
    /// Axes along which one mask value is shared (negative ones count from the end).
    pub broadcast_dims: Vec<i64>,
    /// No masking.
    pub deterministic: bool,
    /// The stream the layer forks.
    pub rng_collection: String,
}

impl Default for DropoutOptions {
    fn default() -> Self {
        DropoutOptions {
            broadcast_dims: Vec::new(),
            deterministic: false,
            rng_collection: "dropout".to_owned(),
        }
    }
}

impl Dropout {
    /// `nnx.Dropout(rate, rngs=rngs)`: forks the `dropout` stream.
    ///
    /// # Errors
    /// A missing `dropout` (or `default`) stream.
    pub fn new(rate: f64, rngs: &Rngs) -> Result<Dropout> {
        Dropout::with_options(rate, DropoutOptions::default(), Some(rngs))
    }

    /// `nnx.Dropout(rate, broadcast_dims=…, deterministic=…, rng_collection=…, rngs=rngs)`;
    /// without `rngs` (Flax's `rngs=None`) the layer has no stream, and a call in training
    /// needs a key ([`Dropout::forward_with`]).
    ///
    /// ```
    /// use nnx_core::{Result, Tensor, random};
    /// use nnx_nn::{Dropout, DropoutOptions};
    /// # fn main() -> Result<()> {
    /// // One mask value per row, shared along the last axis.
    /// let options = DropoutOptions { broadcast_dims: vec![-1], ..DropoutOptions::default() };
    /// let dropout = Dropout::with_options(0.5, options, None)?;
    /// let y = dropout.forward_with(&Tensor::ones([4, 3]), Some(&random::key(0)))?;
    /// for row in y.to_vec::<f32>()?.chunks(3) {
    ///     assert!(row.iter().all(|&v| v == row[0]));
    /// }
    /// assert!(dropout.forward(&Tensor::ones([4, 3])).is_err()); // no stream, no key
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// With `rngs`, a missing `rng_collection` (or `default`) stream.
    pub fn with_options(
        rate: f64,
        options: DropoutOptions,
        rngs: Option<&Rngs>,
    ) -> Result<Dropout> {
        let stream = match rngs {
            Some(rngs) => Some(rngs.stream(&options.rng_collection)?.fork()?),
            None => None,
        };
        Ok(Dropout {
            rate,
            broadcast_dims: options.broadcast_dims,
            deterministic: options.deterministic,
            rng_collection: options.rng_collection,
            rngs: stream,
        })
    }

    /// `layer(x, deterministic=deterministic)`: the call's flag in place of the layer's.
    ///
    /// # Errors
    /// As [`Dropout::forward`].
    pub fn forward_deterministic(&self, x: &Tensor, deterministic: bool) -> Result<Tensor> {
        self.masked(x, deterministic, None)
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
        self.masked(x, self.deterministic, key)
    }

    fn masked(&self, x: &Tensor, deterministic: bool, key: Option<&Tensor>) -> Result<Tensor> {
        if self.rate == 0.0 || deterministic {
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
                    "`deterministic` is False, but no `rngs` argument was provided to Dropout \
                     as either a __call__ argument or class attribute (create the layer with \
                     Rngs, or pass a key to forward_with)",
                ));
            }
        };
        let keep = 1.0 - self.rate;
        let mut shape = x.shape().to_vec();
        let rank = shape.len() as i64;
        for &dim in &self.broadcast_dims {
            let at = if dim < 0 { dim + rank } else { dim };
            match usize::try_from(at).ok().and_then(|a| shape.get_mut(a)) {
                Some(d) => *d = 1,
                None => {
                    return Err(nnx_core::Error::shape(
                        "Dropout",
                        format!("broadcast_dims {dim} is out of range for inputs of rank {rank}"),
                    ));
                }
            }
        }
        let mask = random::bernoulli(&key, keep as f32, &shape)?.broadcast_to(x.shape())?;
        let kept = (x / keep as f32)?;
        mask.select(&kept, &Tensor::try_zeros(x.shape())?)
    }
}
