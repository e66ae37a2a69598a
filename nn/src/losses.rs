//! Losses, as `optax.losses` computes them: per-example (or per-element) values that the
//! caller reduces, usually with `.mean(None)`.
//!
//! ```
//! use nnx_core::{Result, Tensor};
//! use nnx_nn::losses;
//! let logits = Tensor::from_vec(&[2, 3], vec![1.2f32, -0.8, -0.5, 0.9, -1.2, 1.1])?;
//! let labels = Tensor::from_slice(&[0i32, 1]);
//! let loss = losses::softmax_cross_entropy_with_integer_labels(&logits, &labels)?;
//! let v = loss.to_vec::<f32>()?; // optax: [0.2761, 2.9518]
//! assert!((v[0] - 0.2761).abs() < 1e-4 && (v[1] - 2.9518).abs() < 1e-4);
//! # Ok::<(), nnx_core::Error>(())
//! ```

use nnx_core::graph::State;
use nnx_core::tensor::elementwise::CompareOp;
use nnx_core::{DType, Error, Result, Tensor};

use crate::functions::{log_softmax, logsumexp, softplus};

/// `optax.softmax_cross_entropy(logits, labels)`: `-Σ labels · log_softmax(logits)` over
/// the last axis, for labels that are probabilities (one-hot or soft); the axis is removed.
///
/// # Errors
/// Shapes that do not broadcast; non-float logits.
pub fn softmax_cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    check_float("softmax_cross_entropy", logits)?;
    (labels * log_softmax(logits, -1)?)?.sum(-1)?.negative()
}

/// `optax.softmax_cross_entropy_with_integer_labels(logits, labels)`: `logsumexp(logits) -
/// logits[label]` over the last axis, for int32 class indices (`labels` has `logits`' shape
/// without the last axis). A label outside `[0, classes)` gives NaN.
///
/// # Errors
/// Non-float logits, non-integer labels, shapes that do not fit.
pub fn softmax_cross_entropy_with_integer_labels(
    logits: &Tensor,
    labels: &Tensor,
) -> Result<Tensor> {
    check_float("softmax_cross_entropy_with_integer_labels", logits)?;
    if labels.dtype().is_float() || labels.dtype() == DType::Bool {
        return Err(Error::UnsupportedDType {
            op: "softmax_cross_entropy_with_integer_labels",
            dtype: labels.dtype(),
            expected: Some("integer labels"),
        });
    }
    let classes = *logits.shape().last().unwrap_or(&0);
    if logits.ndim() != labels.ndim() + 1 || logits.shape()[..labels.ndim()] != *labels.shape() {
        return Err(Error::shape(
            "softmax_cross_entropy_with_integer_labels",
            format!(
                "labels of shape {:?} for logits of shape {:?} (expected the logits' shape without its last axis)",
                labels.shape(),
                logits.shape()
            ),
        ));
    }
    // The label's logit, picked by a mask (no product with the other logits, which may be
    // infinite).
    let hit = labels
        .astype(DType::I32)?
        .expand_dims(-1)?
        .compare(CompareOp::Eq, &Tensor::try_arange(classes)?)?;
    let label_logits = hit.select(logits, &Tensor::from(0.0f32))?.sum(-1)?;
    let valid = hit
        .astype(DType::I32)?
        .sum(-1)?
        .greater(&Tensor::from(0i32))?;
    let loss = (logsumexp(logits, -1)? - label_logits)?;
    valid.select(&loss, &Tensor::from(f32::NAN))
}

/// `optax.sigmoid_binary_cross_entropy(logits, labels)`: `-labels · log σ(logits) - (1 -
/// labels) · log σ(-logits)` elementwise, for labels in `{0, 1}` or probabilities.
///
/// # Errors
/// Shapes that do not broadcast; non-float logits.
pub fn sigmoid_binary_cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    check_float("sigmoid_binary_cross_entropy", logits)?;
    let labels = labels.astype(DType::F32)?;
    // log σ(x) = -softplus(-x).
    let log_p = softplus(&logits.negative()?)?.negative()?;
    let log_not_p = softplus(logits)?.negative()?;
    (labels.negative()? * log_p)? - ((1.0f32 - &labels)? * log_not_p)?
}

/// `optax.squared_error(predictions, targets)`: `(predictions - targets)²` elementwise.
///
/// # Errors
/// Shapes that do not broadcast.
pub fn squared_error(predictions: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let errors = (predictions - targets)?;
    &errors * &errors
}

/// The mean squared error: [`squared_error`] averaged over every element.
///
/// # Errors
/// As [`squared_error`].
pub fn mean_squared_error(predictions: &Tensor, targets: &Tensor) -> Result<Tensor> {
    squared_error(predictions, targets)?.mean(None)
}

/// `optax.l2_loss(predictions, targets)`: `0.5 · (predictions - targets)²` elementwise.
///
/// # Errors
/// As [`squared_error`].
pub fn l2_loss(predictions: &Tensor, targets: &Tensor) -> Result<Tensor> {
    squared_error(predictions, targets)? * 0.5f32
}

/// `optax.huber_loss(predictions, targets, delta)`: `0.5 · e²` where `|e| ≤ delta`, `delta ·
/// (|e| - 0.5 · delta)` beyond, elementwise (`e = predictions - targets`).
///
/// # Errors
/// As [`squared_error`].
pub fn huber_loss(predictions: &Tensor, targets: &Tensor, delta: f32) -> Result<Tensor> {
    let errors = (predictions - targets)?;
    let abs = errors.maximum(&errors.negative()?)?;
    let quadratic = abs.minimum(&Tensor::from(delta))?;
    // As optax: |e| - min(|e|, delta) rather than max(|e| - delta, 0), whose gradient at the
    // boundary would count twice.
    let linear = (&abs - &quadratic)?;
    ((&quadratic * &quadratic)? * 0.5f32)? + (linear * delta)?
}

/// The L2 regularisation term of a State (for instance `nnx.state(model, nnx.Param)`): the
/// sum of the squares of all its float arrays, `Σ_p Σ p²`; multiply it by the coefficient
/// and add it to the loss.
///
/// # Errors
/// None for float arrays.
pub fn l2_regularization(state: &State) -> Result<Tensor> {
    let mut total = Tensor::from(0.0f32);
    for (_, leaf) in state.iter() {
        let value = leaf.value();
        if value.dtype().is_float() {
            total = (total + (&value * &value)?.sum(None)?)?;
        }
    }
    Ok(total)
}

fn check_float(op: &'static str, x: &Tensor) -> Result<()> {
    match x.dtype().is_float() {
        true => Ok(()),
        false => Err(Error::UnsupportedDType {
            op,
            dtype: x.dtype(),
            expected: Some("float32 logits"),
        }),
    }
}
