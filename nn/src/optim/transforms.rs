//! Gradient transformations, as optax's building blocks compute them: each has a state
//! (a step count, or one array per parameter) and maps updates to updates.

use nnx_core::graph::{Filter, Static};
use nnx_core::tensor::elementwise::CompareOp;
use nnx_core::{DType, Error, Result, Tensor};

use super::schedules::{Record, Schedule, record};

/// Which parameters weight decay applies to (optax's `mask`).
#[derive(Clone, Debug)]
pub enum DecayMask {
    /// Every parameter.
    All,
    /// The parameters a filter selects (resolved to paths when the optimizer is created).
    Filter(Filter),
    /// The parameters at these paths (`layers/0/kernel`).
    Paths(Vec<String>),
}

impl PartialEq for DecayMask {
    fn eq(&self, other: &DecayMask) -> bool {
        match (self, other) {
            (DecayMask::All, DecayMask::All) => true,
            (DecayMask::Paths(a), DecayMask::Paths(b)) => a == b,
            _ => false,
        }
    }
}

/// One gradient transformation (`optax.GradientTransformation`). Optimizers are chains of
/// them ([`super::sgd`], [`super::adam`], …).
#[derive(Clone, Debug, PartialEq)]
pub enum Transform {
    /// `optax.trace(decay, nesterov)`: momentum.
    Trace {
        /// The momentum.
        decay: f64,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// `optax.scale_by_adam(b1, b2, eps, eps_root)`.
    ScaleByAdam {
        /// First-moment decay.
        b1: f64,
        /// Second-moment decay.
        b2: f64,
        /// Added to the root.
        eps: f64,
        /// Added under the root.
        eps_root: f64,
    },
    /// `optax.scale_by_rms(decay, eps, initial_scale)`.
    ScaleByRms {
        /// The second moment's decay.
        decay: f64,
        /// Added under the root.
        eps: f64,
        /// The second moment's initial value.
        initial_scale: f64,
    },
    /// `optax.scale_by_rss(initial_accumulator_value, eps)` (Adagrad).
    ScaleByRss {
        /// The accumulator's initial value.
        initial_accumulator_value: f64,
        /// Added under the root.
        eps: f64,
    },
    /// `optax.scale_by_lion(b1, b2)`.
    ScaleByLion {
        /// The interpolation of the update.
        b1: f64,
        /// The momentum's decay.
        b2: f64,
    },
    /// `optax.add_decayed_weights(weight_decay, mask)`: `updates + weight_decay · params`.
    AddDecayedWeights {
        /// The decay.
        weight_decay: f64,
        /// Where it applies.
        mask: DecayMask,
    },
    /// `optax.scale_by_learning_rate(learning_rate)`: `-learning_rate(count) · updates`.
    ScaleByLearningRate(Schedule),
    /// `optax.clip_by_global_norm(max_norm)`.
    ClipByGlobalNorm(f64),
}

/// A transformation's state: named slots, each a scalar or one array per parameter.
#[derive(Clone, Debug)]
pub enum Slot {
    /// One array (a step count).
    Scalar(Tensor),
    /// One array per parameter, in the parameters' order.
    PerParam(Vec<Tensor>),
}

/// What a transformation sees of the parameters: their paths and values.
pub(crate) struct Params<'a> {
    pub(crate) paths: &'a [String],
    pub(crate) values: &'a [Tensor],
}

fn f(v: f64) -> f32 {
    v as f32
}

/// `(1 - decay) · g + decay · t` (optax's `update_moment`).
fn moment(g: &Tensor, t: &Tensor, decay: f64) -> Result<Tensor> {
    (g * f(1.0 - decay))? + (t * f(decay))?
}

/// `(1 - decay) · g² + decay · t` (optax's `update_moment_per_elem_norm`, order 2).
fn moment_squared(g: &Tensor, t: &Tensor, decay: f64) -> Result<Tensor> {
    ((g * g)? * f(1.0 - decay))? + (t * f(decay))?
}

/// `t / (1 - decay^count)` (optax's `bias_correction`).
fn bias_correction(t: &Tensor, decay: f64, count: &Tensor) -> Result<Tensor> {
    let power = Tensor::from(f(decay)).pow(&count.astype(DType::F32)?)?;
    t / (1.0f32 - power)?
}

fn rsqrt(x: &Tensor) -> Result<Tensor> {
    1.0f32 / x.sqrt()?
}

fn zeros_like(values: &[Tensor]) -> Result<Vec<Tensor>> {
    values
        .iter()
        .map(|v| Tensor::try_zeros(v.shape()))
        .collect()
}

fn full_like(values: &[Tensor], value: f64) -> Result<Vec<Tensor>> {
    values
        .iter()
        .map(|v| Tensor::try_full(v.shape(), f(value)))
        .collect()
}

fn count() -> Slot {
    Slot::Scalar(Tensor::scalar(0i32))
}

fn sign(x: &Tensor) -> Result<Tensor> {
    let zero = Tensor::from(0.0f32);
    let positive = x.compare(CompareOp::Gt, &zero)?;
    let negative = x.compare(CompareOp::Lt, &zero)?;
    positive.select(
        &Tensor::from(1.0f32),
        &negative.select(&Tensor::from(-1.0f32), &zero)?,
    )
}

impl Transform {
    /// The slots of this transformation's state and their initial values.
    pub(crate) fn init(&self, params: &Params) -> Result<Vec<(&'static str, Slot)>> {
        let values = params.values;
        Ok(match self {
            Transform::Trace { .. } => vec![("trace", Slot::PerParam(zeros_like(values)?))],
            Transform::ScaleByAdam { .. } => vec![
                ("count", count()),
                ("mu", Slot::PerParam(zeros_like(values)?)),
                ("nu", Slot::PerParam(zeros_like(values)?)),
            ],
            Transform::ScaleByRms { initial_scale, .. } => {
                vec![("nu", Slot::PerParam(full_like(values, *initial_scale)?))]
            }
            Transform::ScaleByRss {
                initial_accumulator_value,
                ..
            } => vec![(
                "sum_of_squares",
                Slot::PerParam(full_like(values, *initial_accumulator_value)?),
            )],
            Transform::ScaleByLion { .. } => vec![
                ("count", count()),
                ("mu", Slot::PerParam(zeros_like(values)?)),
            ],
            Transform::ScaleByLearningRate(Schedule::Constant(_))
            | Transform::AddDecayedWeights { .. }
            | Transform::ClipByGlobalNorm(_) => Vec::new(),
            Transform::ScaleByLearningRate(_) => vec![("count", count())],
        })
    }

    /// `tx.update(updates, state, params)`: the new updates and state.
    pub(crate) fn update(
        &self,
        updates: Vec<Tensor>,
        state: &[Slot],
        params: &Params,
    ) -> Result<(Vec<Tensor>, Vec<Slot>)> {
        let per_param = |i: usize| -> Result<&Vec<Tensor>> {
            match state.get(i) {
                Some(Slot::PerParam(v)) if v.len() == updates.len() => Ok(v),
                _ => Err(Error::shape("optimizer", "a malformed optimizer state")),
            }
        };
        let scalar = |i: usize| -> Result<&Tensor> {
            match state.get(i) {
                Some(Slot::Scalar(t)) => Ok(t),
                _ => Err(Error::shape("optimizer", "a malformed optimizer state")),
            }
        };
        let map = |f: &dyn Fn(usize, &Tensor) -> Result<Tensor>| -> Result<Vec<Tensor>> {
            updates.iter().enumerate().map(|(i, g)| f(i, g)).collect()
        };
        Ok(match self {
            Transform::Trace { decay, nesterov } => {
                let trace = per_param(0)?;
                let new_trace = map(&|i, g| g + (&trace[i] * f(*decay))?)?;
                let out = match nesterov {
                    true => map(&|i, g| g + (&new_trace[i] * f(*decay))?)?,
                    false => new_trace.clone(),
                };
                (out, vec![Slot::PerParam(new_trace)])
            }
            Transform::ScaleByAdam {
                b1,
                b2,
                eps,
                eps_root,
            } => {
                let (mu, nu) = (per_param(1)?, per_param(2)?);
                let mu = map(&|i, g| moment(g, &mu[i], *b1))?;
                let nu = map(&|i, g| moment_squared(g, &nu[i], *b2))?;
                let count = (scalar(0)? + 1i32)?;
                let out = map(&|i, _| {
                    let mu_hat = bias_correction(&mu[i], *b1, &count)?;
                    let nu_hat = bias_correction(&nu[i], *b2, &count)?;
                    mu_hat / ((nu_hat + f(*eps_root))?.sqrt()? + f(*eps))?
                })?;
                (
                    out,
                    vec![Slot::Scalar(count), Slot::PerParam(mu), Slot::PerParam(nu)],
                )
            }
            Transform::ScaleByRms { decay, eps, .. } => {
                let nu = per_param(0)?;
                let nu = map(&|i, g| moment_squared(g, &nu[i], *decay))?;
                let out = map(&|i, g| g * rsqrt(&(&nu[i] + f(*eps))?)?)?;
                (out, vec![Slot::PerParam(nu)])
            }
            Transform::ScaleByRss { eps, .. } => {
                let sums = per_param(0)?;
                let sums = map(&|i, g| (g * g)? + &sums[i])?;
                let out = map(&|i, g| {
                    let positive = sums[i].compare(CompareOp::Gt, &Tensor::from(0.0f32))?;
                    let inv =
                        positive.select(&rsqrt(&(&sums[i] + f(*eps))?)?, &Tensor::from(0.0f32))?;
                    inv * g
                })?;
                (out, vec![Slot::PerParam(sums)])
            }
            Transform::ScaleByLion { b1, b2 } => {
                let mu = per_param(1)?;
                let out = map(&|i, g| sign(&moment(g, &mu[i], *b1)?))?;
                let mu = map(&|i, g| moment(g, &mu[i], *b2))?;
                let count = (scalar(0)? + 1i32)?;
                (out, vec![Slot::Scalar(count), Slot::PerParam(mu)])
            }
            Transform::AddDecayedWeights { weight_decay, mask } => {
                let decayed = |i: usize| match mask {
                    DecayMask::All => Ok(true),
                    DecayMask::Paths(paths) => Ok(paths.contains(&params.paths[i])),
                    DecayMask::Filter(_) => Err(Error::shape(
                        "add_decayed_weights",
                        "the mask filter was not resolved to paths (create an Optimizer)",
                    )),
                };
                let out = map(&|i, g| match decayed(i)? {
                    true => g + (&params.values[i] * f(*weight_decay))?,
                    false => Ok(g.clone()),
                })?;
                (out, Vec::new())
            }
            Transform::ScaleByLearningRate(Schedule::Constant(lr)) => {
                (map(&|_, g| g * f(-lr))?, Vec::new())
            }
            Transform::ScaleByLearningRate(schedule) => {
                let count = scalar(0)?;
                let step = schedule.value(count)?.negative()?;
                let out = map(&|_, g| g * &step)?;
                (out, vec![Slot::Scalar((count + 1i32)?)])
            }
            Transform::ClipByGlobalNorm(max_norm) => {
                let mut total = Tensor::from(0.0f32);
                for g in &updates {
                    total = (total + (g * g)?.sum(None)?)?;
                }
                let norm = total.sqrt()?;
                let keep = norm.compare(CompareOp::Lt, &Tensor::from(f(*max_norm)))?;
                let out = map(&|_, g| keep.select(g, &((g / &norm)? * f(*max_norm))?))?;
                (out, Vec::new())
            }
        })
    }

    /// The transformation as a static value (Flax keeps `tx` static).
    ///
    /// # Errors
    /// A weight-decay mask still given as a filter.
    pub(crate) fn to_static(&self) -> Result<Static> {
        let fl = Static::Float;
        Ok(match self {
            Transform::Trace { decay, nesterov } => record(
                "trace",
                vec![("decay", fl(*decay)), ("nesterov", Static::Bool(*nesterov))],
            ),
            Transform::ScaleByAdam {
                b1,
                b2,
                eps,
                eps_root,
            } => record(
                "scale_by_adam",
                vec![
                    ("b1", fl(*b1)),
                    ("b2", fl(*b2)),
                    ("eps", fl(*eps)),
                    ("eps_root", fl(*eps_root)),
                ],
            ),
            Transform::ScaleByRms {
                decay,
                eps,
                initial_scale,
            } => record(
                "scale_by_rms",
                vec![
                    ("decay", fl(*decay)),
                    ("eps", fl(*eps)),
                    ("initial_scale", fl(*initial_scale)),
                ],
            ),
            Transform::ScaleByRss {
                initial_accumulator_value,
                eps,
            } => record(
                "scale_by_rss",
                vec![
                    ("initial_accumulator_value", fl(*initial_accumulator_value)),
                    ("eps", fl(*eps)),
                ],
            ),
            Transform::ScaleByLion { b1, b2 } => {
                record("scale_by_lion", vec![("b1", fl(*b1)), ("b2", fl(*b2))])
            }
            Transform::AddDecayedWeights { weight_decay, mask } => record(
                "add_decayed_weights",
                vec![
                    ("weight_decay", fl(*weight_decay)),
                    (
                        "mask",
                        match mask {
                            DecayMask::All => Static::None,
                            DecayMask::Paths(paths) => {
                                Static::List(paths.iter().map(|p| Static::Str(p.clone())).collect())
                            }
                            DecayMask::Filter(_) => {
                                return Err(Error::shape(
                                    "add_decayed_weights",
                                    "a mask filter must be resolved before it is stored",
                                ));
                            }
                        },
                    ),
                ],
            ),
            Transform::ScaleByLearningRate(schedule) => record(
                "scale_by_learning_rate",
                vec![("learning_rate", schedule.to_static())],
            ),
            Transform::ClipByGlobalNorm(max_norm) => {
                record("clip_by_global_norm", vec![("max_norm", fl(*max_norm))])
            }
        })
    }

    /// The transformation [`Transform::to_static`] wrote.
    pub(crate) fn from_static(value: &Static) -> Result<Transform> {
        let r = Record::of(value, "gradient transformation")?;
        Ok(match r.kind()? {
            "trace" => Transform::Trace {
                decay: r.float("decay")?,
                nesterov: r.bool("nesterov")?,
            },
            "scale_by_adam" => Transform::ScaleByAdam {
                b1: r.float("b1")?,
                b2: r.float("b2")?,
                eps: r.float("eps")?,
                eps_root: r.float("eps_root")?,
            },
            "scale_by_rms" => Transform::ScaleByRms {
                decay: r.float("decay")?,
                eps: r.float("eps")?,
                initial_scale: r.float("initial_scale")?,
            },
            "scale_by_rss" => Transform::ScaleByRss {
                initial_accumulator_value: r.float("initial_accumulator_value")?,
                eps: r.float("eps")?,
            },
            "scale_by_lion" => Transform::ScaleByLion {
                b1: r.float("b1")?,
                b2: r.float("b2")?,
            },
            "add_decayed_weights" => Transform::AddDecayedWeights {
                weight_decay: r.float("weight_decay")?,
                mask: match r.get("mask")? {
                    Static::None => DecayMask::All,
                    Static::List(paths) => DecayMask::Paths(
                        paths
                            .iter()
                            .map(|p| p.as_str().map(str::to_owned).ok_or_else(|| r.bad("mask")))
                            .collect::<Result<_>>()?,
                    ),
                    _ => return Err(r.bad("mask")),
                },
            },
            "scale_by_learning_rate" => {
                Transform::ScaleByLearningRate(Schedule::from_static(r.get("learning_rate")?)?)
            }
            "clip_by_global_norm" => Transform::ClipByGlobalNorm(r.float("max_norm")?),
            other => return Err(r.bad(other)),
        })
    }
}
