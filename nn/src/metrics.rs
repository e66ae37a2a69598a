//! `nnx.metrics`: running metrics whose totals live in `MetricState` Variables, so they
//! update in place, inside `jit` too, and reset between epochs.
//!
//! ```
//! use nnx_core::{Result, Tensor};
//! use nnx_nn::metrics::{Accuracy, Average, MultiMetric, Updates};
//! let metrics = MultiMetric::new([("accuracy", Accuracy::new().into()), ("loss", Average::new().into())])?;
//! let logits = Tensor::from_vec(&[2, 2], vec![0.1f32, 0.9, 0.8, 0.2])?;
//! let labels = Tensor::from_slice(&[1i32, 1]);
//! metrics.update(&Updates::new().logits(&logits).labels(&labels).values(&Tensor::from_slice(&[1.0f32, 3.0])))?;
//! let computed = metrics.compute()?;
//! assert_eq!(computed["accuracy"].item::<f32>()?, 0.5);
//! assert_eq!(computed["loss"].item::<f32>()?, 2.0);
//! # Ok::<(), nnx_core::Error>(())
//! ```

use indexmap::IndexMap;

use nnx_core::graph::{FromValue, ToValue};
use nnx_core::tensor::elementwise::CompareOp;
use nnx_core::{DType, Error, Module, Object, Result, Tensor, Value, Variable, variable_type};

variable_type!(
    /// `nnx.metrics.MetricState`: a metric's running totals.
    pub MetricState: Variable
);

/// The named values one update passes to metrics (Flax's keyword arguments):
/// `values` for an [`Average`] (or the name it was built with), `logits` and `labels` for
/// an [`Accuracy`], and an optional `mask` (1 to count an entry, 0 to skip it).
#[derive(Clone, Debug, Default)]
pub struct Updates {
    named: IndexMap<String, Tensor>,
    mask: Option<Tensor>,
}

impl Updates {
    /// No values.
    pub fn new() -> Updates {
        Updates::default()
    }

    /// With `value` under `name` (`avg.update(name=value)`).
    pub fn with(mut self, name: &str, value: &Tensor) -> Updates {
        self.named.insert(name.to_owned(), value.clone());
        self
    }

    /// With `values` (what an `Average()` reads).
    pub fn values(self, values: &Tensor) -> Updates {
        self.with("values", values)
    }

    /// With `logits` (what an `Accuracy` reads).
    pub fn logits(self, logits: &Tensor) -> Updates {
        self.with("logits", logits)
    }

    /// With integer `labels` (what an `Accuracy` reads).
    pub fn labels(self, labels: &Tensor) -> Updates {
        self.with("labels", labels)
    }

    /// With a `mask` broadcastable to the values (or labels).
    pub fn mask(mut self, mask: &Tensor) -> Updates {
        self.mask = Some(mask.clone());
        self
    }

    fn get(&self, name: &str) -> Result<&Tensor> {
        self.named
            .get(name)
            .ok_or_else(|| Error::shape("metrics", format!("Expected keyword argument '{name}'")))
    }
}

/// `nnx.metrics.Average(argname)`: the running mean of the values passed under `argname`
/// (`values` by default): `total / count`, NaN before any update.
#[derive(Module, Clone, Debug)]
pub struct Average {
    /// The name of the values it reads.
    pub argname: String,
    /// The sum of the values (float32).
    pub total: MetricState,
    /// How many values (int32).
    pub count: MetricState,
}

impl Default for Average {
    fn default() -> Average {
        Average::new()
    }
}

impl Average {
    /// `Average()`: reads `values`.
    pub fn new() -> Average {
        Average::with_argname("values")
    }

    /// `Average(argname)`.
    pub fn with_argname(argname: &str) -> Average {
        Average {
            argname: argname.to_owned(),
            total: MetricState::new(Tensor::scalar(0.0f32)),
            count: MetricState::new(Tensor::scalar(0i32)),
        }
    }

    /// `avg.update(values=…, mask=…)`: adds the values' sum and count (only where `mask` is
    /// set).
    ///
    /// # Errors
    /// No values under `argname`; a mask that does not broadcast.
    pub fn update(&self, updates: &Updates) -> Result<()> {
        accumulate(
            &self.total,
            &self.count,
            updates.get(&self.argname)?,
            updates.mask.as_ref(),
        )
    }

    /// `avg.compute()`: `total / count` (NaN when nothing was counted).
    ///
    /// # Errors
    /// None in practice.
    pub fn compute(&self) -> Result<Tensor> {
        self.total.value() / self.count.value().astype(DType::F32)?
    }

    /// `avg.reset()`: zero totals.
    ///
    /// # Errors
    /// Inside a transform that does not own the metric.
    pub fn reset(&self) -> Result<()> {
        reset(&self.total, &self.count)
    }
}

/// `nnx.metrics.Accuracy(threshold)`: the fraction of correct predictions — `argmax(logits,
/// -1) == labels` for multi-class logits, or `(logits >= threshold) == (labels > 0)` with a
/// threshold (binary).
#[derive(Module, Clone, Debug)]
pub struct Accuracy {
    /// The binary decision threshold, or `None` for multi-class logits.
    pub threshold: Option<f64>,
    /// As [`Average`]'s (`values`).
    pub argname: String,
    /// The number of correct predictions (float32).
    pub total: MetricState,
    /// The number of predictions (int32).
    pub count: MetricState,
}

impl Default for Accuracy {
    fn default() -> Accuracy {
        Accuracy::new()
    }
}

impl Accuracy {
    /// `Accuracy()`: multi-class.
    pub fn new() -> Accuracy {
        let average = Average::new();
        Accuracy {
            threshold: None,
            argname: average.argname,
            total: average.total,
            count: average.count,
        }
    }

    /// `Accuracy(threshold=…)`: binary, a logit at or above `threshold` predicts the
    /// positive class.
    pub fn binary(threshold: f64) -> Accuracy {
        Accuracy {
            threshold: Some(threshold),
            ..Accuracy::new()
        }
    }

    /// `acc.update(logits=…, labels=…, mask=…)`.
    ///
    /// # Errors
    /// No `logits` or `labels`; logits with other than one more axis than the labels (as
    /// many with a threshold); labels that are not int32 ("Expected labels.dtype==jnp.int32").
    pub fn update(&self, updates: &Updates) -> Result<()> {
        let (logits, labels) = (updates.get("logits")?, updates.get("labels")?);
        let bad = |what: String| Error::shape("Accuracy", what);
        match self.threshold {
            Some(_) if logits.ndim() != labels.ndim() => {
                return Err(bad(format!(
                    "For binary classification, expected logits.ndim==labels.ndim, got {} and {}",
                    logits.ndim(),
                    labels.ndim()
                )));
            }
            None if logits.ndim() != labels.ndim() + 1 => {
                return Err(bad(format!(
                    "For multi-class classification, expected logits.ndim==labels.ndim+1, got {} and {}",
                    logits.ndim(),
                    labels.ndim()
                )));
            }
            _ => {}
        }
        if labels.dtype() != DType::I32 {
            return Err(Error::UnsupportedDType {
                op: "Accuracy",
                dtype: labels.dtype(),
                expected: Some("int32 labels (Expected labels.dtype==jnp.int32)"),
            });
        }
        let correct = match self.threshold {
            Some(t) => {
                let predicted = logits.compare(CompareOp::Ge, &Tensor::from(t as f32))?;
                predicted.equal(&labels.greater(&Tensor::from(0i32))?)?
            }
            None => logits.argmax(-1)?.equal(labels)?,
        };
        accumulate(&self.total, &self.count, &correct, updates.mask.as_ref())
    }

    /// The accuracy so far (NaN before any update).
    ///
    /// # Errors
    /// None in practice.
    pub fn compute(&self) -> Result<Tensor> {
        self.total.value() / self.count.value().astype(DType::F32)?
    }

    /// Zero totals.
    ///
    /// # Errors
    /// As [`Average::reset`].
    pub fn reset(&self) -> Result<()> {
        reset(&self.total, &self.count)
    }
}

/// `total += Σ values`, `count += n` (masked: `Σ values · mask`, `n = Σ mask`).
fn accumulate(
    total: &MetricState,
    count: &MetricState,
    values: &Tensor,
    mask: Option<&Tensor>,
) -> Result<()> {
    let values = values.astype(DType::F32)?;
    let (sum, n) =
        match mask {
            None => (
                values.sum(None)?,
                Tensor::scalar(i32::try_from(values.size()).map_err(|_| {
                    Error::shape("metrics", "more values than an int32 count holds")
                })?),
            ),
            Some(mask) => (
                (&values * mask.astype(DType::F32)?)?.sum(None)?,
                mask.astype(DType::I32)?.sum(None)?,
            ),
        };
    total.set_value((total.value() + sum)?)?;
    count.set_value((count.value() + n)?)
}

fn reset(total: &MetricState, count: &MetricState) -> Result<()> {
    total.set_value(Tensor::scalar(0.0f32))?;
    count.set_value(Tensor::scalar(0i32))
}

/// One metric of a [`MultiMetric`].
#[derive(Clone, Debug)]
pub enum Metric {
    /// An [`Average`].
    Average(Average),
    /// An [`Accuracy`].
    Accuracy(Accuracy),
}

impl From<Average> for Metric {
    fn from(metric: Average) -> Metric {
        Metric::Average(metric)
    }
}

impl From<Accuracy> for Metric {
    fn from(metric: Accuracy) -> Metric {
        Metric::Accuracy(metric)
    }
}

impl Metric {
    fn of(value: &Value) -> Result<Metric> {
        match value {
            Value::Object(o) if o.type_name() == "Accuracy" => {
                Accuracy::from_value(value).map(Metric::Accuracy)
            }
            _ => Average::from_value(value).map(Metric::Average),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Metric::Average(m) => m.to_value(),
            Metric::Accuracy(m) => m.to_value(),
        }
    }

    fn update(&self, updates: &Updates) -> Result<()> {
        match self {
            Metric::Average(m) => m.update(updates),
            Metric::Accuracy(m) => m.update(updates),
        }
    }

    fn compute(&self) -> Result<Tensor> {
        match self {
            Metric::Average(m) => m.compute(),
            Metric::Accuracy(m) => m.compute(),
        }
    }

    fn reset(&self) -> Result<()> {
        match self {
            Metric::Average(m) => m.reset(),
            Metric::Accuracy(m) => m.reset(),
        }
    }
}

/// `nnx.MultiMetric(accuracy=Accuracy(), loss=Average())`: named metrics, each an attribute
/// of one `MultiMetric` object (so its state's paths are `accuracy/total`, `loss/count`, …),
/// updated together from one [`Updates`].
#[derive(Clone, Debug)]
pub struct MultiMetric(Object);

impl MultiMetric {
    /// A MultiMetric of `metrics`, in order.
    ///
    /// # Errors
    /// A name Flax reserves (`reset`, `update`, `compute`) or given twice.
    pub fn new<'a>(metrics: impl IntoIterator<Item = (&'a str, Metric)>) -> Result<MultiMetric> {
        let object = Object::new("MultiMetric");
        let mut names = Vec::new();
        for (name, metric) in metrics {
            if ["reset", "update", "compute"].contains(&name) || names.iter().any(|n| n == name) {
                return Err(Error::shape(
                    "MultiMetric",
                    format!("the metric name '{name}' is reserved or given twice"),
                ));
            }
            object.set(name, metric.to_value())?;
            names.push(name.to_owned());
        }
        Ok(MultiMetric(object))
    }

    /// The metrics, by name.
    ///
    /// # Errors
    /// An attribute that is not a metric.
    pub fn metrics(&self) -> Result<IndexMap<String, Metric>> {
        (self.0.attributes().into_iter())
            .map(|(name, value)| Ok((name, Metric::of(&value)?)))
            .collect()
    }

    /// `metrics.update(**updates)`: every metric reads what it needs from `updates`.
    ///
    /// # Errors
    /// A metric's error (a value it needs is missing).
    pub fn update(&self, updates: &Updates) -> Result<()> {
        self.metrics()?.values().try_for_each(|m| m.update(updates))
    }

    /// `metrics.compute()`: each metric's value, by name.
    ///
    /// # Errors
    /// As [`MultiMetric::metrics`].
    pub fn compute(&self) -> Result<IndexMap<String, Tensor>> {
        (self.metrics()?.into_iter())
            .map(|(name, m)| Ok((name, m.compute()?)))
            .collect()
    }

    /// `metrics.reset()`.
    ///
    /// # Errors
    /// As [`Average::reset`].
    pub fn reset(&self) -> Result<()> {
        self.metrics()?.values().try_for_each(Metric::reset)
    }

    /// The MultiMetric's object.
    pub fn as_object(&self) -> &Object {
        &self.0
    }
}

crate::common::object_handle!(MultiMetric, "MultiMetric");
