//! Learning-rate schedules, as `optax.schedules` computes them: a value of the step count,
//! traceable (the count is an int32 array, possibly a tracer inside `jit`).

use nnx_core::graph::Static;
use nnx_core::tensor::elementwise::CompareOp;
use nnx_core::{DType, Error, Result, Tensor};

/// A learning rate as a function of the step count (`optax.Schedule`).
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// `optax.constant_schedule(value)`.
    Constant(f64),
    /// `optax.linear_schedule(init_value, end_value, transition_steps, transition_begin)`.
    Linear {
        /// The value up to `transition_begin`.
        init_value: f64,
        /// The value after the transition.
        end_value: f64,
        /// The transition's length in steps.
        transition_steps: i64,
        /// The step the transition starts at.
        transition_begin: i64,
    },
    /// `optax.cosine_decay_schedule(init_value, decay_steps, alpha, exponent)`.
    CosineDecay {
        /// The initial value.
        init_value: f64,
        /// The steps to decay over.
        decay_steps: i64,
        /// The final value as a fraction of `init_value`.
        alpha: f64,
        /// The cosine's exponent.
        exponent: f64,
    },
    /// `optax.warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps, decay_steps,
    /// end_value, exponent)`: linear warmup, then cosine decay (`decay_steps` counts the
    /// warmup).
    WarmupCosineDecay {
        /// The value at step 0.
        init_value: f64,
        /// The value after warmup.
        peak_value: f64,
        /// The warmup's length.
        warmup_steps: i64,
        /// Warmup and decay together.
        decay_steps: i64,
        /// The final value.
        end_value: f64,
        /// The cosine's exponent.
        exponent: f64,
    },
    /// `optax.exponential_decay(init_value, transition_steps, decay_rate, transition_begin,
    /// staircase, end_value)`.
    Exponential {
        /// The initial value.
        init_value: f64,
        /// Steps per factor of `decay_rate`.
        transition_steps: i64,
        /// The factor per `transition_steps`.
        decay_rate: f64,
        /// The step decay starts at.
        transition_begin: i64,
        /// Decay in whole steps of `transition_steps`.
        staircase: bool,
        /// A bound the value does not pass.
        end_value: Option<f64>,
    },
    /// `optax.piecewise_constant_schedule(init_value, boundaries_and_scales)`: the value is
    /// multiplied by each scale once the count reaches its boundary.
    PiecewiseConstant {
        /// The initial value.
        init_value: f64,
        /// `(boundary, scale)` pairs.
        boundaries_and_scales: Vec<(i64, f64)>,
    },
}

impl From<f64> for Schedule {
    fn from(value: f64) -> Schedule {
        Schedule::Constant(value)
    }
}

impl From<f32> for Schedule {
    fn from(value: f32) -> Schedule {
        Schedule::Constant(f64::from(value))
    }
}

fn scalar(v: f64) -> Tensor {
    Tensor::from(v as f32)
}

impl Schedule {
    /// The value at `count` (an int32 scalar), as float32.
    ///
    /// # Errors
    /// A non-scalar count.
    pub fn value(&self, count: &Tensor) -> Result<Tensor> {
        let count = count.astype(DType::F32)?;
        match self {
            Schedule::Constant(v) => Ok(scalar(*v)),
            Schedule::Linear {
                init_value,
                end_value,
                transition_steps,
                transition_begin,
            } => linear(
                &count,
                *init_value,
                *end_value,
                *transition_steps,
                *transition_begin,
            ),
            Schedule::CosineDecay {
                init_value,
                decay_steps,
                alpha,
                exponent,
            } => cosine(&count, *init_value, *decay_steps, *alpha, *exponent),
            Schedule::WarmupCosineDecay {
                init_value,
                peak_value,
                warmup_steps,
                decay_steps,
                end_value,
                exponent,
            } => {
                let alpha = if *peak_value == 0.0 {
                    0.0
                } else {
                    end_value / peak_value
                };
                let warmup = linear(&count, *init_value, *peak_value, *warmup_steps, 0)?;
                let after = (&count - *warmup_steps as f32)?;
                let decay = cosine(
                    &after,
                    *peak_value,
                    decay_steps - warmup_steps,
                    alpha,
                    *exponent,
                )?;
                count
                    .compare(CompareOp::Lt, &scalar(*warmup_steps as f64))?
                    .select(&warmup, &decay)
            }
            Schedule::Exponential {
                init_value,
                transition_steps,
                decay_rate,
                transition_begin,
                staircase,
                end_value,
            } => {
                if *transition_steps <= 0 {
                    return Ok(scalar(*init_value));
                }
                let count = (&count - *transition_begin as f32)?;
                let mut p = (&count / *transition_steps as f32)?;
                if *staircase {
                    p = floor(&p)?;
                }
                let mut decayed = (scalar(*decay_rate).pow(&p)? * *init_value as f32)?;
                if *transition_begin > 0 {
                    decayed = count
                        .compare(CompareOp::Le, &Tensor::from(0.0f32))?
                        .select(&scalar(*init_value), &decayed)?;
                }
                match end_value {
                    Some(end) if *decay_rate < 1.0 => decayed.maximum(&scalar(*end)),
                    Some(end) => decayed.minimum(&scalar(*end)),
                    None => Ok(decayed),
                }
            }
            Schedule::PiecewiseConstant {
                init_value,
                boundaries_and_scales,
            } => {
                let mut pairs = boundaries_and_scales.clone();
                pairs.sort_by_key(|(b, _)| *b);
                let mut v = scalar(*init_value);
                for (boundary, scale) in pairs {
                    // Before the boundary (count < boundary) the value stays.
                    let before = count.compare(CompareOp::Lt, &scalar(boundary as f64))?;
                    v = before.select(&v, &(&v * scale as f32)?)?;
                }
                Ok(v)
            }
        }
    }

    /// The schedule as a static value (it lives in a `GraphDef`, as Flax keeps `tx` static).
    pub fn to_static(&self) -> Static {
        let f = Static::Float;
        let i = Static::Int;
        let (kind, fields): (&str, Vec<(&str, Static)>) = match self {
            Schedule::Constant(v) => ("constant", vec![("value", f(*v))]),
            Schedule::Linear {
                init_value,
                end_value,
                transition_steps,
                transition_begin,
            } => (
                "linear",
                vec![
                    ("init_value", f(*init_value)),
                    ("end_value", f(*end_value)),
                    ("transition_steps", i(*transition_steps)),
                    ("transition_begin", i(*transition_begin)),
                ],
            ),
            Schedule::CosineDecay {
                init_value,
                decay_steps,
                alpha,
                exponent,
            } => (
                "cosine_decay",
                vec![
                    ("init_value", f(*init_value)),
                    ("decay_steps", i(*decay_steps)),
                    ("alpha", f(*alpha)),
                    ("exponent", f(*exponent)),
                ],
            ),
            Schedule::WarmupCosineDecay {
                init_value,
                peak_value,
                warmup_steps,
                decay_steps,
                end_value,
                exponent,
            } => (
                "warmup_cosine_decay",
                vec![
                    ("init_value", f(*init_value)),
                    ("peak_value", f(*peak_value)),
                    ("warmup_steps", i(*warmup_steps)),
                    ("decay_steps", i(*decay_steps)),
                    ("end_value", f(*end_value)),
                    ("exponent", f(*exponent)),
                ],
            ),
            Schedule::Exponential {
                init_value,
                transition_steps,
                decay_rate,
                transition_begin,
                staircase,
                end_value,
            } => (
                "exponential_decay",
                vec![
                    ("init_value", f(*init_value)),
                    ("transition_steps", i(*transition_steps)),
                    ("decay_rate", f(*decay_rate)),
                    ("transition_begin", i(*transition_begin)),
                    ("staircase", Static::Bool(*staircase)),
                    ("end_value", end_value.map_or(Static::None, f)),
                ],
            ),
            Schedule::PiecewiseConstant {
                init_value,
                boundaries_and_scales,
            } => (
                "piecewise_constant",
                vec![
                    ("init_value", f(*init_value)),
                    (
                        "boundaries_and_scales",
                        Static::List(
                            (boundaries_and_scales.iter())
                                .map(|(b, s)| Static::Tuple(vec![i(*b), f(*s)]))
                                .collect(),
                        ),
                    ),
                ],
            ),
        };
        record(kind, fields)
    }

    /// The schedule [`Schedule::to_static`] wrote.
    ///
    /// # Errors
    /// A static value that is not one.
    pub fn from_static(value: &Static) -> Result<Schedule> {
        let r = Record::of(value, "schedule")?;
        Ok(match r.kind()? {
            "constant" => Schedule::Constant(r.float("value")?),
            "linear" => Schedule::Linear {
                init_value: r.float("init_value")?,
                end_value: r.float("end_value")?,
                transition_steps: r.int("transition_steps")?,
                transition_begin: r.int("transition_begin")?,
            },
            "cosine_decay" => Schedule::CosineDecay {
                init_value: r.float("init_value")?,
                decay_steps: r.int("decay_steps")?,
                alpha: r.float("alpha")?,
                exponent: r.float("exponent")?,
            },
            "warmup_cosine_decay" => Schedule::WarmupCosineDecay {
                init_value: r.float("init_value")?,
                peak_value: r.float("peak_value")?,
                warmup_steps: r.int("warmup_steps")?,
                decay_steps: r.int("decay_steps")?,
                end_value: r.float("end_value")?,
                exponent: r.float("exponent")?,
            },
            "exponential_decay" => Schedule::Exponential {
                init_value: r.float("init_value")?,
                transition_steps: r.int("transition_steps")?,
                decay_rate: r.float("decay_rate")?,
                transition_begin: r.int("transition_begin")?,
                staircase: r.bool("staircase")?,
                end_value: match r.get("end_value")? {
                    Static::None => None,
                    _ => Some(r.float("end_value")?),
                },
            },
            "piecewise_constant" => Schedule::PiecewiseConstant {
                init_value: r.float("init_value")?,
                boundaries_and_scales: (r.get("boundaries_and_scales")?.as_sequence())
                    .ok_or_else(|| r.bad("boundaries_and_scales"))?
                    .iter()
                    .map(|pair| match pair.as_sequence() {
                        Some([Static::Int(b), Static::Float(s)]) => Ok((*b, *s)),
                        _ => Err(r.bad("boundaries_and_scales")),
                    })
                    .collect::<Result<_>>()?,
            },
            other => return Err(r.bad(other)),
        })
    }
}

/// optax's `polynomial_schedule` with power 1.
fn linear(count: &Tensor, init: f64, end: f64, steps: i64, begin: i64) -> Result<Tensor> {
    if steps <= 0 {
        return Ok(scalar(init));
    }
    let clipped = (count - begin as f32)?
        .maximum(&Tensor::from(0.0f32))?
        .minimum(&scalar(steps as f64))?;
    let frac = (1.0f32 - (clipped / steps as f32)?)?;
    (frac * (init - end) as f32)? + end as f32
}

/// optax's `cosine_decay_schedule`.
fn cosine(count: &Tensor, init: f64, steps: i64, alpha: f64, exponent: f64) -> Result<Tensor> {
    if steps <= 0 {
        return Ok(scalar(init));
    }
    let count = count.minimum(&scalar(steps as f64))?;
    let angle = ((count * std::f32::consts::PI)? / steps as f32)?;
    let decay = ((angle.cos()? + 1.0f32)? * 0.5f32)?;
    let decayed = ((decay.pow(&scalar(exponent))? * (1.0 - alpha) as f32)? + alpha as f32)?;
    decayed * init as f32
}

/// `floor(x)` from a truncation: one less where truncating rounded up.
fn floor(x: &Tensor) -> Result<Tensor> {
    let truncated = x.astype(DType::I32)?.astype(DType::F32)?;
    let up = truncated.compare(CompareOp::Gt, x)?;
    up.select(&(&truncated - 1.0f32)?, &truncated)
}

/// A static record: `{"kind": kind, field: value, …}`.
pub(crate) fn record(kind: &str, fields: Vec<(&str, Static)>) -> Static {
    let mut entries = vec![("kind".to_owned(), Static::Str(kind.to_owned()))];
    entries.extend(fields.into_iter().map(|(k, v)| (k.to_owned(), v)));
    Static::Dict(entries)
}

/// Reading a static record back.
pub(crate) struct Record<'a> {
    entries: &'a [(String, Static)],
    what: &'static str,
}

impl<'a> Record<'a> {
    pub(crate) fn of(value: &'a Static, what: &'static str) -> Result<Record<'a>> {
        match value {
            Static::Dict(entries) => Ok(Record { entries, what }),
            _ => Err(Error::shape(what, format!("not a {what}: {value}"))),
        }
    }

    pub(crate) fn bad(&self, field: &str) -> Error {
        Error::shape(self.what, format!("a malformed {} ({field})", self.what))
    }

    pub(crate) fn get(&self, name: &str) -> Result<&'a Static> {
        (self.entries.iter())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .ok_or_else(|| self.bad(name))
    }

    pub(crate) fn kind(&self) -> Result<&'a str> {
        self.get("kind")?.as_str().ok_or_else(|| self.bad("kind"))
    }

    pub(crate) fn float(&self, name: &str) -> Result<f64> {
        match self.get(name)? {
            Static::Float(v) => Ok(*v),
            _ => Err(self.bad(name)),
        }
    }

    pub(crate) fn int(&self, name: &str) -> Result<i64> {
        match self.get(name)? {
            Static::Int(v) => Ok(*v),
            _ => Err(self.bad(name)),
        }
    }

    pub(crate) fn bool(&self, name: &str) -> Result<bool> {
        match self.get(name)? {
            Static::Bool(v) => Ok(*v),
            _ => Err(self.bad(name)),
        }
    }
}
