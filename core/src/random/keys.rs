//! PRNG keys as arrays: `key`, `wrap_key_data`, `key_data`, `split`, `fold_in`.
//!
//! A key is a [`Tensor`] of dtype [`DType::Key`] (JAX's `key<fry>`): a scalar key has shape
//! `[]`, and `split(key(0), 10)` is a key array of shape `[10]`. Every function here is a
//! pure function of its key array and static parameters, and is bit-exact with JAX
//! (`conformance/golden/PRNG.md` sections 2 to 4).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::program::Primitive;
use crate::tensor::{Array, Buffer, Tensor};

use super::primitive::RandomOp;
use super::threefry;

/// The shape of a split: a number of keys (`split(key, 10)`, shape `[10]`) or a shape
/// (`split(key, (2, 5))`). Converts from `usize`, `Vec<usize>`, `&[usize]` and `[usize; N]`.
///
/// The two forms give the same keys for the same shape; they differ only where Flax
/// distinguishes `splits=1` from `splits=(1,)` (`squeeze` accepts only the former).
///
/// ```
/// use nnx_core::random::Splits;
/// assert_eq!(Splits::from(3).shape(), vec![3]);
/// assert_eq!(Splits::from([2, 5]).shape(), vec![2, 5]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Splits {
    /// `n` keys, shape `[n]` (Flax's `splits=n`).
    Count(usize),
    /// Keys of this shape (Flax's `splits=(a, b, …)`).
    Shape(Vec<usize>),
}

impl Splits {
    /// The shape the split keys have.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Splits::Count(n) => vec![*n],
            Splits::Shape(shape) => shape.clone(),
        }
    }
}

impl From<usize> for Splits {
    fn from(n: usize) -> Splits {
        Splits::Count(n)
    }
}

impl From<Vec<usize>> for Splits {
    fn from(shape: Vec<usize>) -> Splits {
        Splits::Shape(shape)
    }
}

impl From<&[usize]> for Splits {
    fn from(shape: &[usize]) -> Splits {
        Splits::Shape(shape.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Splits {
    fn from(shape: [usize; N]) -> Splits {
        Splits::Shape(shape.to_vec())
    }
}

/// `jax.random.key(seed)`: a scalar key. With JAX's default `jax_enable_x64=False` the seed
/// is truncated to 32 bits, so the key data is `[0, seed mod 2^32]`.
///
/// ```
/// use nnx_core::random;
/// # fn main() -> nnx_core::Result<()> {
/// let k = random::key(42);
/// assert_eq!(k.shape(), &[] as &[usize]);
/// assert_eq!(random::key_data(&k)?.to_vec::<u32>()?, vec![0, 42]);
/// assert_eq!(random::key_data(&random::key(-1))?.to_vec::<u32>()?, vec![0, u32::MAX]);
/// # Ok(())
/// # }
/// ```
pub fn key(seed: i64) -> Tensor {
    Tensor::from(Array::from_parts(
        Vec::new(),
        Buffer::Key(Arc::new(vec![threefry::seed_key(seed)])),
        false,
    ))
}

/// `jax.random.key(seeds)` for an int32 or uint32 array of seeds (one key per element, of
/// the same shape). Unlike [`key`] it works on traced seeds, as in the guide's
/// `vmap(create_weights)(jnp.arange(10))`.
///
/// # Errors
/// [`Error::UnsupportedDType`] for other dtypes.
///
/// ```
/// use nnx_core::{Tensor, random};
/// # fn main() -> nnx_core::Result<()> {
/// let keys = random::key_from_seeds(&Tensor::arange(3))?;
/// assert!(keys.index_axis(0, 2)?.identical(&random::key(2)));
/// # Ok(())
/// # }
/// ```
pub fn key_from_seeds(seeds: &Tensor) -> Result<Tensor> {
    Tensor::apply(Primitive::SeedKeys, &[seeds])
}

/// The reference kernel of [`key_from_seeds`].
pub(crate) fn seed_keys_array(seeds: &Array) -> Result<Array> {
    let keys: Vec<[u32; 2]> = match seeds.dtype() {
        crate::DType::I32 => seeds
            .as_slice::<i32>()?
            .iter()
            .map(|&s| threefry::seed_key(s.into()))
            .collect(),
        crate::DType::U32 => seeds
            .as_slice::<u32>()?
            .iter()
            .map(|&s| threefry::seed_key(s.into()))
            .collect(),
        other => {
            return Err(Error::UnsupportedDType {
                op: "key_from_seeds",
                dtype: other,
                expected: Some("int32 or uint32 seeds"),
            });
        }
    };
    Array::from_keys(seeds.shape(), keys)
}

/// `jax.random.wrap_key_data(data)`: a key array from raw uint32 words of shape
/// `[..., 2]`; the result has the shape without the trailing `2`.
///
/// # Errors
/// [`Error::UnsupportedDType`] when `data` is not uint32; [`Error::Shape`] when its last
/// dimension is not 2.
///
/// ```
/// use nnx_core::{Tensor, random};
/// # fn main() -> nnx_core::Result<()> {
/// let data = Tensor::from_vec(&[2, 2], vec![0u32, 1, 2, 3])?;
/// let keys = random::wrap_key_data(&data)?;
/// assert_eq!(keys.shape(), &[2]);
/// assert!(random::key_data(&keys)?.identical(&data));
/// # Ok(())
/// # }
/// ```
pub fn wrap_key_data(data: &Tensor) -> Result<Tensor> {
    let words = data
        .as_slice::<u32>()
        .map_err(|_| Error::UnsupportedDType {
            op: "wrap_key_data",
            dtype: data.dtype(),
            expected: Some("uint32 key data"),
        })?;
    let (last, batch) = match data.shape().split_last() {
        Some((&last, batch)) => (last, batch),
        None => (0, &[] as &[usize]),
    };
    if last != 2 {
        return Err(Error::shape(
            "wrap_key_data",
            format!(
                "expected key data whose shape ends with (2,), got shape {}",
                py_shape(data.shape())
            ),
        ));
    }
    let keys = words.chunks_exact(2).map(|w| [w[0], w[1]]).collect();
    Tensor::from_keys(batch, keys)
}

/// `jax.random.key_data(keys)`: the raw words of a key array, uint32 of shape
/// `keys.shape + [2]`.
///
/// # Errors
/// [`Error::UnsupportedDType`] when `keys` is not a key array.
pub fn key_data(keys: &Tensor) -> Result<Tensor> {
    key_words("key_data", keys)?;
    keys.key_data()
}

/// `jax.random.split(key, num)`: `num` new keys, shape `[num]`; key `i` is
/// `fold_in(key, i)`.
///
/// # Errors
/// [`Error::UnsupportedDType`] when `key` is not a key array; [`Error::Shape`] when it is
/// not a single (scalar) key.
///
/// ```
/// use nnx_core::random;
/// # fn main() -> nnx_core::Result<()> {
/// let k = random::key(0);
/// let keys = random::split(&k, 3)?;
/// assert_eq!(keys.shape(), &[3]);
/// assert!(keys.index_axis(0, 2)?.identical(&random::fold_in(&k, 2)?));
/// // Like JAX, a key array is refused: batching is vmap's job.
/// assert!(random::split(&keys, 2).is_err());
/// # Ok(())
/// # }
/// ```
pub fn split(key: &Tensor, num: usize) -> Result<Tensor> {
    RandomOp::Split { shape: vec![num] }.apply(key)
}

/// `jax.random.split(key, shape)`: new keys of the given shape, in row-major order
/// (`split_shape(k, &[2, 3])` is `split(k, 6)` reshaped).
///
/// # Errors
/// As [`split`].
pub fn split_shape(key: &Tensor, shape: &[usize]) -> Result<Tensor> {
    RandomOp::Split {
        shape: shape.to_vec(),
    }
    .apply(key)
}

/// [`split`] or [`split_shape`], whichever `splits` describes.
///
/// # Errors
/// As [`split`].
pub fn split_into(key: &Tensor, splits: &Splits) -> Result<Tensor> {
    split_shape(key, &splits.shape())
}

/// `jax.random.fold_in(key, data)`: a new scalar key `threefry2x32(key, [0, data])`.
///
/// # Errors
/// [`Error::UnsupportedDType`] when `key` is not a key array; [`Error::Shape`] when it is
/// not a single key (use [`fold_in_each`] for a key array).
///
/// ```
/// use nnx_core::random;
/// # fn main() -> nnx_core::Result<()> {
/// let k = random::fold_in(&random::key(0), 1)?;
/// assert_eq!(random::key_data(&k)?.to_vec::<u32>()?, vec![0x375f_238f, 0xcddb_151d]);
/// # Ok(())
/// # }
/// ```
pub fn fold_in(key: &Tensor, data: u32) -> Result<Tensor> {
    RandomOp::FoldIn { data }.apply(key)
}

/// `vmap(fold_in)`: folds each key of a key array with its own uint32 datum.
///
/// `data` has the key array's shape, or is a scalar that every key is folded with. This is
/// how an [`RngStream`](super::RngStream) holding a key array (`Rngs` seeded with
/// `split(key(0), 10)`) draws: element `i` is `fold_in(keys[i], data[i])`, exactly what each
/// lane of `nnx.vmap` computes. (Flax itself, outside `vmap`, refuses such a stream with
/// "fold_in accepts a single key".)
///
/// # Errors
/// [`Error::UnsupportedDType`] when `keys` is not a key array or `data` is not uint32;
/// [`Error::Shape`] when `data` is neither a scalar nor of the keys' shape.
///
/// ```
/// use nnx_core::{Tensor, random};
/// # fn main() -> nnx_core::Result<()> {
/// let keys = random::split(&random::key(0), 3)?;
/// let folded = random::fold_in_each(&keys, &Tensor::from_slice(&[0u32, 1, 2]))?;
/// let second = random::fold_in(&keys.index_axis(0, 1)?, 1)?;
/// assert!(folded.index_axis(0, 1)?.identical(&second));
/// # Ok(())
/// # }
/// ```
pub fn fold_in_each(keys: &Tensor, data: &Tensor) -> Result<Tensor> {
    Tensor::apply(Primitive::FoldInEach, &[keys, data])
}

/// The reference kernel of [`fold_in_each`] on concrete arrays.
pub(crate) fn fold_in_each_array(keys: &Array, data: &Array) -> Result<Array> {
    let words = keys
        .keys()
        .map_err(|_| not_a_key("fold_in_each", keys.dtype()))?;
    let values = data
        .as_slice::<u32>()
        .map_err(|_| Error::UnsupportedDType {
            op: "fold_in_each",
            dtype: data.dtype(),
            expected: Some("uint32 data"),
        })?;
    check_fold_in_each_shapes(keys.shape(), data.shape())?;
    let folded: Vec<[u32; 2]> = if data.shape() == keys.shape() {
        words
            .iter()
            .zip(values)
            .map(|(&k, &d)| threefry::fold_in(k, d))
            .collect()
    } else {
        let d = values.first().copied().unwrap_or(0);
        words.iter().map(|&k| threefry::fold_in(k, d)).collect()
    };
    Array::from_keys(keys.shape(), folded)
}

/// `data` must be a scalar or have the keys' shape.
pub(crate) fn check_fold_in_each_shapes(keys: &[usize], data: &[usize]) -> Result<()> {
    if data == keys || data.is_empty() {
        Ok(())
    } else {
        Err(Error::shape(
            "fold_in_each",
            format!(
                "data of shape {} does not match keys of shape {}",
                py_shape(data),
                py_shape(keys)
            ),
        ))
    }
}

fn not_a_key(op: &'static str, dtype: crate::DType) -> Error {
    Error::UnsupportedDType {
        op,
        dtype,
        expected: Some(
            "a PRNG key array (dtype key<fry>); make one with random::key or random::wrap_key_data",
        ),
    }
}

/// The words of a key array, or an error naming `op` when it is not one.
pub(crate) fn key_words<'a>(op: &'static str, keys: &'a Tensor) -> Result<&'a [[u32; 2]]> {
    keys.keys().map_err(|e| match e {
        Error::Concretization { .. } => e,
        _ => not_a_key(op, keys.dtype()),
    })
}

/// The words of a single (scalar) key, or JAX's "accepts a single key" error.
pub(crate) fn single_key(op: &'static str, key: &Array) -> Result<[u32; 2]> {
    let words = key.keys().map_err(|_| not_a_key(op, key.dtype()))?;
    match (key.shape(), words) {
        ([], [k]) => Ok(*k),
        _ => Err(not_single_key(op, key.shape())),
    }
}

/// JAX's error for a key array passed where a single key is needed.
pub(crate) fn not_single_key(op: &'static str, shape: &[usize]) -> Error {
    Error::shape(
        op,
        format!(
            "expected a single key, but was given a key array of shape {} != (). \
             Use vmap for batching.",
            py_shape(shape)
        ),
    )
}

/// A shape as Python prints a tuple: `()`, `(3,)`, `(2, 3)`.
pub(crate) fn py_shape(shape: &[usize]) -> String {
    match shape {
        [] => "()".to_owned(),
        [one] => format!("({one},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", dims.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_shapes() {
        assert_eq!(py_shape(&[]), "()");
        assert_eq!(py_shape(&[3]), "(3,)");
        assert_eq!(py_shape(&[2, 3]), "(2, 3)");
    }
}
