//! Activations and functions of `jax.nn` / `nnx` (`nnx.relu`, `nnx.gelu`, `nnx.softmax`, …),
//! composed of tensor operations, so they trace, batch and differentiate like any program.
//!
//! ```
//! use nnx_core::Tensor;
//! use nnx_nn::functions::{one_hot, softmax};
//! # fn main() -> nnx_core::Result<()> {
//! let p = softmax(&Tensor::from_slice(&[1.0f32, 1.0]), -1)?;
//! assert_eq!(p.to_vec::<f32>()?, vec![0.5, 0.5]);
//! let labels = one_hot(&Tensor::from_slice(&[2i32, 0]), 3)?;
//! assert_eq!(labels.to_vec::<f32>()?, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
//! # Ok(())
//! # }
//! ```

use nnx_core::tensor::elementwise::{CompareOp, UnaryOp};
use nnx_core::{DType, Error, Result, Tensor};

/// `max(x, 0)`.
///
/// # Errors
/// A non-numeric `x`.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    x.relu()
}

/// `1 / (1 + exp(-x))` (`jax.nn.sigmoid`).
///
/// # Errors
/// A non-float `x`.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    1.0f32 / ((-x)?.exp()? + 1.0f32)?
}

/// `x · sigmoid(x)` (`jax.nn.silu`, `swish`).
///
/// # Errors
/// As [`sigmoid`].
pub fn silu(x: &Tensor) -> Result<Tensor> {
    x * sigmoid(x)?
}

/// `jax.nn.gelu(x, approximate)`: `x · Φ(x)`, exactly (`approximate = false`, through
/// [`erf`]) or with the tanh approximation `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`
/// (`approximate = true`, JAX's default).
///
/// # Errors
/// A non-float `x`.
pub fn gelu(x: &Tensor, approximate: bool) -> Result<Tensor> {
    if approximate {
        let cube = ((x * x)? * x)?;
        let inner = ((x + (cube * 0.044_715f32)?)? * (2.0f32 / std::f32::consts::PI).sqrt())?;
        (x * 0.5f32)? * (inner.tanh()? + 1.0f32)?
    } else {
        let phi = ((erf(&(x * std::f32::consts::FRAC_1_SQRT_2)?)? + 1.0f32)? * 0.5f32)?;
        x * phi
    }
}

/// `log(1 + exp(x))`, computed stably as `max(x, 0) + log(1 + exp(-|x|))`
/// (`jax.nn.softplus`).
///
/// # Errors
/// A non-float `x`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    let abs = x.maximum(&(-x)?)?;
    x.relu()? + (((-abs)?.exp()? + 1.0f32)?.log()?)
}

/// `x` for `x > 0`, `alpha (exp(x) - 1)` otherwise (`jax.nn.elu`).
///
/// # Errors
/// A non-float `x`.
pub fn elu(x: &Tensor, alpha: f32) -> Result<Tensor> {
    // The exponential of the negative part only, as JAX: a large positive `x` would give an
    // infinite slope, and a NaN gradient through the branch `where` does not take.
    let is_positive = positive(x)?;
    let negative_part = is_positive.select(&Tensor::from(0.0f32), x)?;
    let negative = ((negative_part.exp()? - 1.0f32)? * alpha)?;
    is_positive.select(x, &negative)
}

/// `min(max(x, 0), 6)` (`jax.nn.relu6`).
///
/// # Errors
/// A non-numeric `x`.
pub fn relu6(x: &Tensor) -> Result<Tensor> {
    x.relu()?.minimum(&Tensor::from(6.0f32))
}

/// `relu6(x + 3) / 6` (`jax.nn.hard_sigmoid`).
///
/// # Errors
/// A non-numeric `x`.
pub fn hard_sigmoid(x: &Tensor) -> Result<Tensor> {
    relu6(&(x + 3.0f32)?)? / 6.0f32
}

/// `x · hard_sigmoid(x)` (`jax.nn.hard_silu`, also `hard_swish`).
///
/// # Errors
/// A non-numeric `x`.
pub fn hard_silu(x: &Tensor) -> Result<Tensor> {
    x.mul(&hard_sigmoid(x)?)
}

/// `jax.nn.hard_swish`: [`hard_silu`].
///
/// # Errors
/// As [`hard_silu`].
pub fn hard_swish(x: &Tensor) -> Result<Tensor> {
    hard_silu(x)
}

/// `x` clipped to `[-1, 1]` (`jax.nn.hard_tanh`).
///
/// # Errors
/// A non-numeric `x`.
pub fn hard_tanh(x: &Tensor) -> Result<Tensor> {
    let one = Tensor::from(1.0f32);
    let below = x.compare(CompareOp::Lt, &Tensor::from(-1.0f32))?;
    let inner = below.select(&Tensor::from(-1.0f32), x)?;
    x.compare(CompareOp::Gt, &one)?.select(&one, &inner)
}

/// `x / (|x| + 1)` (`jax.nn.soft_sign`).
///
/// # Errors
/// A non-numeric `x`.
pub fn soft_sign(x: &Tensor) -> Result<Tensor> {
    x.div(&(x.unary(UnaryOp::Abs)? + 1.0f32)?)
}

/// `scale · elu(x, alpha)` with the self-normalising constants (`jax.nn.selu`).
///
/// # Errors
/// A non-float `x`.
pub fn selu(x: &Tensor) -> Result<Tensor> {
    const ALPHA: f32 = 1.673_263_2;
    const SCALE: f32 = 1.050_701;
    elu(x, ALPHA)? * SCALE
}

/// `max(x, 0) + alpha (exp(min(x, 0) / alpha) - 1)` (`jax.nn.celu`).
///
/// # Errors
/// A non-float `x`.
pub fn celu(x: &Tensor, alpha: f32) -> Result<Tensor> {
    let zero = Tensor::from(0.0f32);
    let negative = (((x.minimum(&zero)? / alpha)?.exp()? - 1.0f32)? * alpha)?;
    x.maximum(&zero)? + negative
}

/// `-softplus(-x)` (`jax.nn.log_sigmoid`).
///
/// # Errors
/// A non-float `x`.
pub fn log_sigmoid(x: &Tensor) -> Result<Tensor> {
    softplus(&(-x)?)?.negative()
}

/// The first half of `x` along `axis` times the sigmoid of the second (`jax.nn.glu`).
///
/// # Errors
/// An axis out of range or of odd length.
pub fn glu(x: &Tensor, axis: isize) -> Result<Tensor> {
    let rank = x.ndim() as isize;
    let at = if axis < 0 { axis + rank } else { axis };
    let size = usize::try_from(at)
        .ok()
        .and_then(|a| x.shape().get(a))
        .copied()
        .ok_or_else(|| Error::shape("glu", format!("axis {axis} of a rank-{rank} array")))?;
    if size % 2 != 0 {
        return Err(Error::shape("glu", "axis size must be divisible by 2"));
    }
    let half = size / 2;
    x.slice_axis(axis, 0..half)?
        .mul(&sigmoid(&x.slice_axis(axis, half..size)?)?)
}

/// `jax.nn.swish`: [`silu`].
///
/// # Errors
/// As [`silu`].
pub fn swish(x: &Tensor) -> Result<Tensor> {
    silu(x)
}

/// `x` itself (`jax.nn.identity`).
///
/// # Errors
/// None.
pub fn identity(x: &Tensor) -> Result<Tensor> {
    Ok(x.clone())
}

/// `x` for `x >= 0`, `negative_slope · x` otherwise (`jax.nn.leaky_relu`; JAX's default
/// slope is `0.01`).
///
/// # Errors
/// A non-numeric `x`.
pub fn leaky_relu(x: &Tensor, negative_slope: f32) -> Result<Tensor> {
    let ge = x.compare(CompareOp::Ge, &Tensor::from(0.0f32))?;
    ge.select(x, &(x * negative_slope)?)
}

fn positive(x: &Tensor) -> Result<Tensor> {
    x.compare(CompareOp::Gt, &Tensor::from(0.0f32))
}

/// The reduction of `x` over `axis`, kept as a size-1 axis (`keepdims=True`).
fn kept(reduced: Tensor, axis: isize) -> Result<Tensor> {
    let rank = reduced.ndim() as isize + 1;
    reduced.expand_dims(if axis < 0 { axis + rank } else { axis })
}

/// `exp(x) / sum(exp(x))` over `axis`, with the maximum subtracted first (`jax.nn.softmax`).
///
/// # Errors
/// An axis out of range; a non-float `x`.
pub fn softmax(x: &Tensor, axis: isize) -> Result<Tensor> {
    let shift = kept(x.max(axis)?, axis)?.stop_gradient()?;
    let unnormalized = (x - &shift)?.exp()?;
    let total = kept(unnormalized.sum(axis)?, axis)?;
    unnormalized / total
}

/// `x - logsumexp(x)` over `axis` (`jax.nn.log_softmax`).
///
/// # Errors
/// As [`softmax`].
pub fn log_softmax(x: &Tensor, axis: isize) -> Result<Tensor> {
    let shift = kept(x.max(axis)?, axis)?.stop_gradient()?;
    let shifted = (x - &shift)?;
    let total = kept(shifted.exp()?.sum(axis)?, axis)?;
    &shifted - total.log()?
}

/// `log(sum(exp(x)))` over `axis`, stably (`jax.nn.logsumexp`); the axis is removed.
///
/// # Errors
/// As [`softmax`].
pub fn logsumexp(x: &Tensor, axis: isize) -> Result<Tensor> {
    let max = x.max(axis)?.stop_gradient()?;
    let shifted = (x - &kept(max.clone(), axis)?)?;
    shifted.exp()?.sum(axis)?.log()? + &max
}

/// `one_hot(x, num_classes)`: float32, a new last axis that is 1 at each integer of `x`
/// (`jax.nn.one_hot`); out-of-range values give all zeros.
///
/// # Errors
/// A float `x`.
pub fn one_hot(x: &Tensor, num_classes: usize) -> Result<Tensor> {
    if x.dtype().is_float() {
        return Err(Error::shape(
            "one_hot",
            format!("takes integer class labels, got {}", x.dtype()),
        ));
    }
    let classes = Tensor::try_arange(num_classes)?;
    x.astype(DType::I32)?
        .expand_dims(-1)?
        .compare(CompareOp::Eq, &classes)?
        .astype(DType::F32)
}

/// `jnp.argmax(x, axis)`: the index (int32) of the first maximum along `axis`, or of the
/// first NaN where there is one; the axis is removed ([`Tensor::argmax`], one primitive).
///
/// # Errors
/// An axis out of range; an empty axis.
pub fn argmax(x: &Tensor, axis: isize) -> Result<Tensor> {
    x.argmax(axis)
}

/// `jnp.argmin(x, axis)`: as [`argmax`] for the minimum.
///
/// # Errors
/// As [`argmax`].
pub fn argmin(x: &Tensor, axis: isize) -> Result<Tensor> {
    x.argmin(axis)
}

/// `(x - mean) / sqrt(var + epsilon)` over `axis` (`jax.nn.standardize`, with JAX's
/// `var = mean(x²) - mean²`).
///
/// # Errors
/// As [`softmax`].
pub fn standardize(x: &Tensor, axis: isize, epsilon: f32) -> Result<Tensor> {
    let mean = kept(x.mean(axis)?, axis)?;
    let mean_square = kept((x * x)?.mean(axis)?, axis)?;
    let variance = (mean_square - (&mean * &mean)?)?;
    (x - &mean)? / ((variance + epsilon)?.sqrt()?)
}

/// The error function (`jax.lax.erf`): [`Tensor::erf`], bit for bit as XLA computes it in
/// float32.
///
/// # Errors
/// A non-float `x`.
pub fn erf(x: &Tensor) -> Result<Tensor> {
    x.erf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnx_core::random::sampling::erf_f32;

    #[test]
    fn erf_agrees_with_the_kernel() {
        let xs: Vec<f32> = (-50..=50).map(|i| i as f32 * 0.09).collect();
        let got = erf(&Tensor::from_slice(&xs))
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        for (x, g) in xs.iter().zip(got) {
            assert_eq!(g.to_bits(), erf_f32(*x).to_bits(), "erf({x}) = {g}");
        }
    }

    #[test]
    fn activations_at_known_points() {
        let x = Tensor::from_slice(&[-1.0f32, 0.0, 2.0]);
        let close = |t: Tensor, want: &[f32]| {
            let v = t.to_vec::<f32>().unwrap();
            assert!(
                v.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
                "{v:?} vs {want:?}"
            );
        };
        close(sigmoid(&x).unwrap(), &[0.268_941_43, 0.5, 0.880_797_1]);
        close(
            softplus(&x).unwrap(),
            &[0.313_261_7, std::f32::consts::LN_2, 2.126_928],
        );
        close(elu(&x, 1.0).unwrap(), &[-0.632_120_56, 0.0, 2.0]);
        close(leaky_relu(&x, 0.01).unwrap(), &[-0.01, 0.0, 2.0]);
        close(gelu(&x, false).unwrap(), &[-0.158_655_25, 0.0, 1.954_499_7]);
        close(logsumexp(&x, -1).unwrap(), &[2.169_846]);
        assert!(one_hot(&x, 3).is_err());
        let m = Tensor::from_vec(&[2, 3], vec![1.0f32, 3.0, 3.0, f32::NAN, 0.0, f32::NAN]).unwrap();
        assert_eq!(argmax(&m, -1).unwrap().to_vec::<i32>().unwrap(), vec![1, 0]);
        assert_eq!(argmin(&m, 1).unwrap().to_vec::<i32>().unwrap(), vec![0, 0]);
        assert_eq!(
            argmax(&m, 0).unwrap().to_vec::<i32>().unwrap(),
            vec![1, 0, 1]
        );
    }
}
