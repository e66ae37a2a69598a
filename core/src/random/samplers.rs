//! Samplers on key arrays: `bits`, `uniform`, `normal`, `randint`, `bernoulli`.
//!
//! Each takes a single (scalar) key and a result shape and is bit-exact with the
//! `jax.random` function of the same name on XLA:CPU (float32 and int32 defaults,
//! `conformance/golden/PRNG.md` sections 5 to 9). They are wrappers around
//! [`RandomOp::apply`].

use crate::error::Result;
use crate::tensor::Tensor;

use super::primitive::RandomOp;

/// `jax.random.bits(key, shape)`: uniformly random uint32 words.
///
/// # Errors
/// [`Error::UnsupportedDType`](crate::Error::UnsupportedDType) when `key` is not a key
/// array; [`Error::Shape`](crate::Error::Shape) when it is not a single key.
pub fn bits(key: &Tensor, shape: impl AsRef<[usize]>) -> Result<Tensor> {
    RandomOp::Bits {
        shape: shape.as_ref().to_vec(),
    }
    .apply(key)
}

/// `jax.random.uniform(key, shape)`: float32 values in `[0, 1)`.
///
/// # Errors
/// As [`bits`].
///
/// ```
/// use nnx_core::random;
/// # fn main() -> nnx_core::Result<()> {
/// let u = random::uniform(&random::key(0), &[2])?;
/// assert_eq!(u.to_vec::<f32>()?, vec![0.947_667, 0.978_579_9]);
/// # Ok(())
/// # }
/// ```
pub fn uniform(key: &Tensor, shape: impl AsRef<[usize]>) -> Result<Tensor> {
    uniform_range(key, shape, 0.0, 1.0)
}

/// `jax.random.uniform(key, shape, minval=minval, maxval=maxval)`: float32 values in
/// `[minval, maxval)`, computed as `max(minval, fma(f, maxval - minval, minval))` with `f`
/// in `[0, 1)`. As in JAX only the lower bound is clamped, so a value can round up to
/// `maxval` when the span is not exactly representable.
///
/// # Errors
/// As [`bits`].
///
/// ```
/// use nnx_core::random;
/// # fn main() -> nnx_core::Result<()> {
/// let u = random::uniform_range(&random::key(3), &[100], -2.0, 5.0)?;
/// assert!(u.to_vec::<f32>()?.iter().all(|&x| (-2.0..5.0).contains(&x)));
/// # Ok(())
/// # }
/// ```
pub fn uniform_range(
    key: &Tensor,
    shape: impl AsRef<[usize]>,
    minval: f32,
    maxval: f32,
) -> Result<Tensor> {
    RandomOp::Uniform {
        shape: shape.as_ref().to_vec(),
        minval,
        maxval,
    }
    .apply(key)
}

/// `jax.random.normal(key, shape)`: standard normal float32 values, through XLA's
/// `erf_inv` bit for bit.
///
/// # Errors
/// As [`bits`].
///
/// ```
/// use nnx_core::random;
/// # fn main() -> nnx_core::Result<()> {
/// let z = random::normal(&random::key(0), &[2])?;
/// assert_eq!(z.to_vec::<f32>()?, vec![1.622_642_2, 2.025_264_7]);
/// # Ok(())
/// # }
/// ```
pub fn normal(key: &Tensor, shape: impl AsRef<[usize]>) -> Result<Tensor> {
    RandomOp::Normal {
        shape: shape.as_ref().to_vec(),
    }
    .apply(key)
}

/// `jax.random.truncated_normal(key, lower, upper, shape)`: standard normal float32 values
/// restricted to `(lower, upper)`, bit for bit as JAX draws them (the initialisers'
/// `truncated_normal`, `lecun_normal`, `he_normal`, … use it with bounds `±2`).
///
/// ```
/// use nnx_core::random;
/// let x = random::truncated_normal(&random::key(0), -2.0, 2.0, [1000])?;
/// let v = x.to_vec::<f32>()?;
/// assert!(v.iter().all(|&t| -2.0 < t && t < 2.0));
/// # Ok::<(), nnx_core::Error>(())
/// ```
///
/// # Errors
/// As [`uniform`].
pub fn truncated_normal(
    key: &Tensor,
    lower: f32,
    upper: f32,
    shape: impl AsRef<[usize]>,
) -> Result<Tensor> {
    RandomOp::TruncatedNormal {
        shape: shape.as_ref().to_vec(),
        lower,
        upper,
    }
    .apply(key)
}

/// `jax.random.randint(key, shape, minval, maxval)`: int32 values in `[minval, maxval)`;
/// every value is `minval` when `maxval <= minval`, as in JAX.
///
/// # Errors
/// As [`bits`].
///
/// ```
/// use nnx_core::random;
/// # fn main() -> nnx_core::Result<()> {
/// let r = random::randint(&random::key(0), &[50], -3, 4)?;
/// assert!(r.to_vec::<i32>()?.iter().all(|&x| (-3..4).contains(&x)));
/// # Ok(())
/// # }
/// ```
pub fn randint(
    key: &Tensor,
    shape: impl AsRef<[usize]>,
    minval: i32,
    maxval: i32,
) -> Result<Tensor> {
    RandomOp::Randint {
        shape: shape.as_ref().to_vec(),
        minval,
        maxval,
    }
    .apply(key)
}

/// `jax.random.bernoulli(key, p, shape)`: bool values, `true` with probability `p`
/// (`uniform(key, shape) < p`, JAX's default `mode='low'`).
///
/// # Errors
/// As [`bits`].
pub fn bernoulli(key: &Tensor, p: f32, shape: impl AsRef<[usize]>) -> Result<Tensor> {
    RandomOp::Bernoulli {
        shape: shape.as_ref().to_vec(),
        p,
    }
    .apply(key)
}
