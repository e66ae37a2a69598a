//! The random primitives as data: one [`RandomOp`] per `jax.random` function.
//!
//! Each operation is a pure function of one key array and static parameters, so a tracing
//! layer can record `(RandomOp, key)` as a primitive, infer its result with
//! [`RandomOp::output_shape`] / [`RandomOp::output_dtype`] without running it, and evaluate
//! it later with [`RandomOp::apply`]. The free functions of [`random`](super) are thin
//! wrappers around this type.

use std::sync::Arc;

use crate::error::Result;
use crate::program::Primitive;
use crate::tensor::{Array, Buffer, DType, Tensor, byte_size, check_allocation};

use super::keys::{not_single_key, single_key};
use super::{sampling, threefry};

/// A random primitive with its static parameters. Every variant takes a single (scalar)
/// key, as in JAX, and is bit-exact with the JAX function it names.
///
/// ```
/// use nnx_core::{DType, random::{self, RandomOp}};
/// # fn main() -> nnx_core::Result<()> {
/// let op = RandomOp::Normal { shape: vec![2, 3] };
/// let key = random::key(1);
/// assert_eq!(op.output_shape(key.shape())?, vec![2, 3]);
/// assert_eq!(op.output_dtype(), DType::F32);
/// assert!(op.apply(&key)?.identical(&random::normal(&key, &[2, 3])?));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RandomOp {
    /// `jax.random.split(key, shape)`: a key array of `shape`.
    Split {
        /// Shape of the new key array.
        shape: Vec<usize>,
    },
    /// `jax.random.fold_in(key, data)`: a scalar key.
    FoldIn {
        /// The datum folded in.
        data: u32,
    },
    /// `jax.random.bits(key, shape)`: uint32 words.
    Bits {
        /// Result shape.
        shape: Vec<usize>,
    },
    /// `jax.random.uniform(key, shape, float32, minval, maxval)`.
    Uniform {
        /// Result shape.
        shape: Vec<usize>,
        /// Inclusive lower bound.
        minval: f32,
        /// Exclusive upper bound (a value can round up to it, as in JAX).
        maxval: f32,
    },
    /// `jax.random.normal(key, shape, float32)`.
    Normal {
        /// Result shape.
        shape: Vec<usize>,
    },
    /// `jax.random.truncated_normal(key, lower, upper, shape, float32)`.
    TruncatedNormal {
        /// Result shape.
        shape: Vec<usize>,
        /// Lower bound (exclusive: values are clipped to just above it).
        lower: f32,
        /// Upper bound (exclusive).
        upper: f32,
    },
    /// `jax.random.randint(key, shape, minval, maxval)` with dtype int32.
    Randint {
        /// Result shape.
        shape: Vec<usize>,
        /// Inclusive lower bound.
        minval: i32,
        /// Exclusive upper bound.
        maxval: i32,
    },
    /// `jax.random.bernoulli(key, p, shape)` (`mode='low'`): bool.
    Bernoulli {
        /// Result shape.
        shape: Vec<usize>,
        /// Probability of `true`, as float32.
        p: f32,
    },
}

impl RandomOp {
    /// The `jax.random` name of the operation (`"uniform"`).
    pub fn name(&self) -> &'static str {
        match self {
            RandomOp::Split { .. } => "split",
            RandomOp::FoldIn { .. } => "fold_in",
            RandomOp::Bits { .. } => "bits",
            RandomOp::Uniform { .. } => "uniform",
            RandomOp::Normal { .. } => "normal",
            RandomOp::TruncatedNormal { .. } => "truncated_normal",
            RandomOp::Randint { .. } => "randint",
            RandomOp::Bernoulli { .. } => "bernoulli",
        }
    }

    /// The dtype of the result.
    pub fn output_dtype(&self) -> DType {
        match self {
            RandomOp::Split { .. } | RandomOp::FoldIn { .. } => DType::Key,
            RandomOp::Bits { .. } => DType::U32,
            RandomOp::Uniform { .. }
            | RandomOp::Normal { .. }
            | RandomOp::TruncatedNormal { .. } => DType::F32,
            RandomOp::Randint { .. } => DType::I32,
            RandomOp::Bernoulli { .. } => DType::Bool,
        }
    }

    /// The shape of the result for a key of shape `key_shape`, without computing it.
    ///
    /// # Errors
    /// [`Error::Shape`](crate::Error::Shape) when `key_shape` is not `[]` (a single key);
    /// [`Error::ArrayTooLarge`](crate::Error::ArrayTooLarge) when the result's size
    /// overflows.
    pub fn output_shape(&self, key_shape: &[usize]) -> Result<Vec<usize>> {
        if !key_shape.is_empty() {
            return Err(not_single_key(self.name(), key_shape));
        }
        let shape = self.shape().to_vec();
        byte_size(&shape, self.output_dtype())?;
        Ok(shape)
    }

    /// The result shape requested by the parameters (`[]` for `fold_in`).
    fn shape(&self) -> &[usize] {
        match self {
            RandomOp::FoldIn { .. } => &[],
            RandomOp::Split { shape }
            | RandomOp::Bits { shape }
            | RandomOp::Uniform { shape, .. }
            | RandomOp::Normal { shape }
            | RandomOp::TruncatedNormal { shape, .. }
            | RandomOp::Randint { shape, .. }
            | RandomOp::Bernoulli { shape, .. } => shape,
        }
    }

    /// Applies the primitive to a single key: computed now for a concrete key, recorded
    /// when the key is traced.
    ///
    /// # Errors
    /// [`Error::UnsupportedDType`](crate::Error::UnsupportedDType) when `key` is not a key
    /// array; [`Error::Shape`](crate::Error::Shape) when it is not a single key, or when
    /// the result shape has more elements than `usize` can count.
    pub fn apply(&self, key: &Tensor) -> Result<Tensor> {
        Tensor::apply(Primitive::Random(self.clone()), &[key])
    }

    /// The reference kernel: evaluates the primitive on a concrete single key.
    ///
    /// # Errors
    /// As [`RandomOp::apply`].
    pub fn eval(&self, key: &Array) -> Result<Array> {
        let k = single_key(self.name(), key)?;
        let shape = self.shape().to_vec();
        check_allocation(&shape, self.output_dtype())?;
        let n = crate::tensor::element_count(&shape)?;
        let buffer = match self {
            RandomOp::Split { .. } => Buffer::Key(Arc::new(threefry::split(k, n))),
            RandomOp::FoldIn { data } => Buffer::Key(Arc::new(vec![threefry::fold_in(k, *data)])),
            RandomOp::Bits { .. } => Buffer::U32(Arc::new(threefry::random_bits_u32(k, n))),
            RandomOp::Uniform { minval, maxval, .. } => Buffer::F32(Arc::new(
                sampling::uniform_f32(k, n, *minval, *maxval).into(),
            )),
            RandomOp::Normal { .. } => Buffer::F32(Arc::new(sampling::normal_f32(k, n).into())),
            RandomOp::TruncatedNormal { lower, upper, .. } => Buffer::F32(Arc::new(
                sampling::truncated_normal_f32(k, n, *lower, *upper).into(),
            )),
            RandomOp::Randint { minval, maxval, .. } => {
                Buffer::I32(Arc::new(sampling::randint_i32(k, n, *minval, *maxval)))
            }
            RandomOp::Bernoulli { p, .. } => Buffer::Bool(Arc::new(sampling::bernoulli(k, n, *p))),
        };
        Ok(Array::from_parts(shape, buffer, false))
    }
}
