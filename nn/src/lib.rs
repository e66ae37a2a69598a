//! `nnx-nn`: Flax NNX's `nnx.nn` in Rust — layers and initialisers, built only on `nnx-core`'s
//! public API (so they run on every engine and under every transform), initialised bit for
//! bit as Flax initialises them for the same `Rngs` seed.
//!
//! - [`initializers`]: `jax.nn.initializers` (`lecun_normal`, `glorot_uniform`, `he_normal`,
//!   `variance_scaling`, `truncated_normal`, …), traceable: a layer can be created inside
//!   `vmap` or `scan` from a traced key.
//! - [`functions`]: activations and `jax.nn` functions (`relu`, `gelu`, `softmax`, `one_hot`,
//!   …), also at the crate root as Flax has them (`nnx.relu`).
//! - [`Linear`], `nnx.Linear`; [`Conv`] (feature groups too), [`ConvTranspose`]; [`max_pool`], [`min_pool`], [`avg_pool`]; [`LinearGeneral`]; [`MultiHeadAttention`] (with
//!   [`make_causal_mask`]); [`Embed`]; [`BatchNorm`], [`LayerNorm`], [`RMSNorm`], [`GroupNorm`]; [`LSTMCell`], [`GRUCell`]; [`Dropout`].
//!   `train()` / `eval()` (on `TypedModule`, or `Object`) switch Dropout and BatchNorm.
//! - [`RNN`] over any [`RnnCell`] (`LSTMCell`, `GRUCell`), one `scan`.
//! - [`losses`]: `optax.losses` (softmax cross-entropy with integer or probability labels,
//!   sigmoid binary cross-entropy, squared error, MSE, L2, Huber, L2 regularisation of a
//!   State); [`metrics`]: `nnx.metrics` (`Average`, `Accuracy`, `MultiMetric`), their totals
//!   in `MetricState` Variables.
//! - [`Sequential`] (`nnx.Sequential`); [`datasets`]: the 8×8 handwritten digits.
//! - [`checkpoint`]: safetensors checkpoints with Flax's flat paths, validated restores.
//! - [`optim`]: `nnx.Optimizer` over optax-style transformations and schedules (`sgd`,
//!   `adam`, `adamw`, `rmsprop`, `adagrad`, `lion`, `clip_by_global_norm`).
//!
//! `nnx_fast::prelude` re-exports this crate as `nn`.
//!
//! ```
//! use nnx_core::{Rngs, Tensor};
//! use nnx_nn::Linear;
//! # fn main() -> nnx_core::Result<()> {
//! let layer = Linear::new(3, 4, &Rngs::new(0)?)?;        // nnx.Linear(3, 4, rngs=nnx.Rngs(0))
//! let y = layer.forward(&Tensor::ones([2, 3]))?;
//! assert_eq!(y.shape(), &[2, 4]);
//! # Ok(())
//! # }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod attention;
pub mod checkpoint;
mod common;
pub mod conv;
pub mod datasets;
mod embed;
pub mod functions;
pub mod initializers;
pub mod linear;
pub mod losses;
pub mod metrics;
mod normalization;
pub mod optim;
mod pooling;
mod prelu;
mod recurrent;
mod rnn;
mod sequential;
mod stochastic;

pub use attention::{
    LinearGeneral, MultiHeadAttention, combine_masks, dot_product_attention, make_attention_mask,
    make_causal_mask,
};
pub use conv::{Conv, ConvTranspose, Padding};
pub use embed::Embed;
pub use functions::*;
pub use initializers::Initializer;
pub use linear::Linear;
pub use normalization::{BatchNorm, GroupNorm, LayerNorm, NormOptions, RMSNorm};
pub use pooling::{avg_pool, avg_pool_with, max_pool, min_pool};
pub use prelu::PReLU;
pub use recurrent::{CellOptions, GRUCell, LSTMCell, RnnCarry, RnnCell};
pub use rnn::{RNN, RnnCall};
pub use sequential::{Layer, Sequential};
pub use stochastic::{Dropout, DropoutOptions};
