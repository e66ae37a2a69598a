//! Optimizers: `nnx.Optimizer` over optax-style gradient transformations ([`Transform`],
//! chained with [`Chain`]) and learning-rate [`Schedule`]s. Each optimizer matches optax's
//! steps (golden data from optax 0.2.8 in `golden/optim.json`).

mod optimizer;
mod schedules;
mod transforms;

pub use optimizer::{Chain, ModelAndOptimizer, OptState, Optimizer};
pub use schedules::Schedule;
pub use transforms::{DecayMask, Slot, Transform};

use nnx_core::graph::Filter;

fn lr(learning_rate: impl Into<Schedule>) -> Transform {
    Transform::ScaleByLearningRate(learning_rate.into())
}

/// `optax.sgd(learning_rate)`.
pub fn sgd(learning_rate: impl Into<Schedule>) -> Chain {
    Chain(vec![lr(learning_rate)])
}

/// `optax.sgd(learning_rate, momentum, nesterov)`.
pub fn sgd_momentum(learning_rate: impl Into<Schedule>, momentum: f64, nesterov: bool) -> Chain {
    Chain(vec![
        Transform::Trace {
            decay: momentum,
            nesterov,
        },
        lr(learning_rate),
    ])
}

fn scale_by_adam() -> Transform {
    Transform::ScaleByAdam {
        b1: 0.9,
        b2: 0.999,
        eps: 1e-8,
        eps_root: 0.0,
    }
}

/// `optax.adam(learning_rate)` (`b1 = 0.9`, `b2 = 0.999`, `eps = 1e-8`).
pub fn adam(learning_rate: impl Into<Schedule>) -> Chain {
    Chain(vec![scale_by_adam(), lr(learning_rate)])
}

/// `optax.adamw(learning_rate, weight_decay=…, mask=…)`: Adam with decoupled weight decay,
/// on the parameters `mask` selects (`None`: all).
pub fn adamw(learning_rate: impl Into<Schedule>, weight_decay: f64, mask: Option<Filter>) -> Chain {
    Chain(vec![
        scale_by_adam(),
        Transform::AddDecayedWeights {
            weight_decay,
            mask: mask.map_or(DecayMask::All, DecayMask::Filter),
        },
        lr(learning_rate),
    ])
}

/// `optax.rmsprop(learning_rate, decay=0.9, eps=1e-8, momentum=…)`.
pub fn rmsprop(learning_rate: impl Into<Schedule>, momentum: Option<f64>) -> Chain {
    let mut chain = vec![
        Transform::ScaleByRms {
            decay: 0.9,
            eps: 1e-8,
            initial_scale: 0.0,
        },
        lr(learning_rate),
    ];
    if let Some(decay) = momentum {
        chain.push(Transform::Trace {
            decay,
            nesterov: false,
        });
    }
    Chain(chain)
}

/// `optax.adagrad(learning_rate)` (`initial_accumulator_value = 0.1`, `eps = 1e-7`).
pub fn adagrad(learning_rate: impl Into<Schedule>) -> Chain {
    Chain(vec![
        Transform::ScaleByRss {
            initial_accumulator_value: 0.1,
            eps: 1e-7,
        },
        lr(learning_rate),
    ])
}

/// `optax.lion(learning_rate, b1=0.9, b2=0.99, weight_decay=1e-3)`.
pub fn lion(learning_rate: impl Into<Schedule>, weight_decay: f64) -> Chain {
    Chain(vec![
        Transform::ScaleByLion { b1: 0.9, b2: 0.99 },
        Transform::AddDecayedWeights {
            weight_decay,
            mask: DecayMask::All,
        },
        lr(learning_rate),
    ])
}

/// `optax.clip_by_global_norm(max_norm)`, to chain before an optimizer:
/// `clip_by_global_norm(1.0).then(adam(1e-3))`.
pub fn clip_by_global_norm(max_norm: f64) -> Chain {
    Chain(vec![Transform::ClipByGlobalNorm(max_norm)])
}
