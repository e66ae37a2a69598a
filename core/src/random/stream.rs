//! One named random stream (`nnx.RngStream`): a key and a counter.

use std::fmt;

use crate::error::{Error, Result};
use crate::graph::{GraphValue, Object, RngCount, RngKey, Static, Value, Variable, VariableType};
use crate::tensor::{DType, Tensor};

use super::keys::{Splits, fold_in_each, not_single_key, split_into, wrap_key_data};
use super::samplers;

/// The type name of the objects [`RngStream`] wraps.
pub const RNG_STREAM_TYPE: &str = "RngStream";

/// What a stream can be seeded with: an int seed (`key(seed)`), a key array used as given,
/// raw uint32 key data (through [`wrap_key_data`]), or another stream (its current key;
/// the new stream's count starts at zero, as in Flax).
///
/// ```
/// use nnx_core::random::{self, RngSeed};
/// # fn main() -> nnx_core::Result<()> {
/// let from_int = RngSeed::from(0);
/// let from_keys = RngSeed::from(random::split(&random::key(0), 10)?);
/// assert!(from_int.to_key()?.identical(&random::key(0)));
/// assert_eq!(from_keys.to_key()?.shape(), &[10]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub enum RngSeed {
    /// `jax.random.key(seed)`.
    Int(i64),
    /// A key array (dtype `key<fry>`, any shape) or uint32 key data of shape `[..., 2]`.
    Key(Tensor),
    /// The current key of another stream.
    Stream(RngStream),
}

impl RngSeed {
    /// The key array this seed stands for.
    ///
    /// # Errors
    /// [`Error::InvalidRngSeed`] for a tensor that is neither a key array nor uint32 data
    /// (Flax's "Invalid rng value"); the errors of [`wrap_key_data`]; the errors of
    /// [`RngStream::key`] for a malformed stream.
    pub fn to_key(&self) -> Result<Tensor> {
        match self {
            RngSeed::Int(seed) => Ok(super::keys::key(*seed)),
            RngSeed::Key(t) => match t.dtype() {
                DType::Key => Ok(t.clone()),
                DType::U32 => wrap_key_data(t),
                dtype => Err(Error::InvalidRngSeed {
                    value: t.repr(),
                    dtype,
                }),
            },
            RngSeed::Stream(stream) => Ok(stream.key()?.value()),
        }
    }
}

macro_rules! seed_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for RngSeed {
            fn from(seed: $t) -> RngSeed {
                RngSeed::Int(i64::from(seed))
            }
        }
    )*};
}
seed_from_int!(i64, i32, u32);

impl From<Tensor> for RngSeed {
    fn from(key: Tensor) -> RngSeed {
        RngSeed::Key(key)
    }
}

impl From<&Tensor> for RngSeed {
    fn from(key: &Tensor) -> RngSeed {
        RngSeed::Key(key.clone())
    }
}

impl From<RngStream> for RngSeed {
    fn from(stream: RngStream) -> RngSeed {
        RngSeed::Stream(stream)
    }
}

impl From<&RngStream> for RngSeed {
    fn from(stream: &RngStream) -> RngSeed {
        RngSeed::Stream(stream.clone())
    }
}

/// A random stream (`nnx.RngStream`): an [`Object`] of type `RngStream` with a static `tag`,
/// a `key` ([`RngKey`] Variable) and a `count` ([`RngCount`] Variable, uint32 of the key's
/// shape), both Variables carrying the metadata `tag='<name>'`.
///
/// `RngStream` is a handle: clones share the stream. Drawing ([`RngStream::next_key`])
/// returns `fold_in(key, count)` and increments `count` through [`Variable::update`], so a
/// stream captured from outside a transform cannot be drawn from inside it.
///
/// ```
/// use nnx_core::random::{self, RngStream};
/// # fn main() -> nnx_core::Result<()> {
/// let s = RngStream::new("noise", 0)?;
/// let k0 = s.next_key()?;
/// let k1 = s.next_key()?;
/// assert!(k1.identical(&random::fold_in(&random::key(0), 1)?));
/// assert_eq!(s.count()?.value().to_vec::<u32>()?, vec![2]);
/// assert!(!k0.identical(&k1));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RngStream(Object);

impl RngStream {
    /// A new stream tagged `tag`, seeded with `seed`; its count starts at zero.
    ///
    /// # Errors
    /// As [`RngSeed::to_key`].
    pub fn new(tag: &str, seed: impl Into<RngSeed>) -> Result<RngStream> {
        let key = seed.into().to_key()?;
        RngStream::from_key(tag, key)
    }

    /// A new stream from a key array (already checked to be one).
    pub(crate) fn from_key(tag: &str, key: Tensor) -> Result<RngStream> {
        let count = Tensor::full(key.shape(), 0_u32);
        let object = Object::new(RNG_STREAM_TYPE)
            .with("tag", Static::Str(tag.to_owned()))?
            .with("key", RngKey::new(key).with_metadata("tag", tag))?
            .with("count", RngCount::new(count).with_metadata("tag", tag))?;
        Ok(RngStream(object))
    }

    /// Wraps an object that is a stream, such as one rebuilt by `graph::merge`.
    ///
    /// # Errors
    /// [`Error::WrongValueKind`] when the object is not of type `RngStream`;
    /// [`Error::MalformedRngStream`] when its `tag`, `key` or `count` attribute is not of
    /// the right kind (a static string, an `RngKey` holding a key array, an `RngCount`
    /// holding uint32); [`Error::AttributeNotFound`] or [`Error::AttributeType`] when the
    /// `key` or `count` Variable is missing.
    pub fn from_object(object: Object) -> Result<RngStream> {
        let stream = RngStream(object);
        stream.validate()?;
        Ok(stream)
    }

    fn validate(&self) -> Result<()> {
        let object = &self.0;
        if object.type_name() != RNG_STREAM_TYPE {
            return Err(Error::WrongValueKind {
                expected: "an RngStream object",
                found: format!("a '{}' object", object.type_name()),
            });
        }
        self.tag()?;
        let key = self.key()?;
        let count = self.count()?;
        if key.value().dtype() != DType::Key {
            return Err(self.malformed(format!(
                "its key holds {} data, not a key array",
                key.value().dtype()
            )));
        }
        if count.value().dtype() != DType::U32 {
            return Err(self.malformed(format!(
                "its count holds {} data, not uint32",
                count.value().dtype()
            )));
        }
        Ok(())
    }

    /// A [`Error::MalformedRngStream`] naming this stream (by its tag, when it has one).
    fn malformed(&self, problem: String) -> Error {
        Error::MalformedRngStream {
            tag: self.tag().ok(),
            problem,
        }
    }

    fn variable(&self, name: &str, ty: VariableType) -> Result<Variable> {
        let var = self.0.var(name)?;
        if var.is_instance(ty) {
            Ok(var)
        } else {
            Err(self.malformed(format!(
                "its {name} is a {} variable, not {}",
                var.type_name(),
                ty.name()
            )))
        }
    }

    /// The stream's tag (its name in the `Rngs`).
    ///
    /// # Errors
    /// [`Error::MalformedRngStream`] when the `tag` attribute is missing or not a static
    /// string.
    pub fn tag(&self) -> Result<String> {
        match self.0.get("tag") {
            Ok(Value::Static(Static::Str(tag))) => Ok(tag),
            _ => Err(Error::MalformedRngStream {
                tag: None,
                problem: "its tag is not a static string".to_owned(),
            }),
        }
    }

    /// The `RngKey` Variable.
    ///
    /// # Errors
    /// [`Error::AttributeNotFound`] or [`Error::AttributeType`] when there is no `key`
    /// Variable; [`Error::MalformedRngStream`] when it is not an `RngKey`.
    pub fn key(&self) -> Result<Variable> {
        self.variable("key", VariableType::RNG_KEY)
    }

    /// The `RngCount` Variable.
    ///
    /// # Errors
    /// As [`RngStream::key`], for `count` and `RngCount`.
    pub fn count(&self) -> Result<Variable> {
        self.variable("count", VariableType::RNG_COUNT)
    }

    /// Draws a key (`stream()` in Flax): returns `fold_in(key, count)` and increments
    /// `count`. For a stream holding a key array each key is folded with its own count
    /// ([`fold_in_each`]), which is what every lane of `vmap` computes.
    ///
    /// # Errors
    /// [`Error::TraceContext`] when the count belongs to another trace level (checked
    /// before anything is computed); the errors of [`RngStream::key`] and [`fold_in_each`].
    pub fn next_key(&self) -> Result<Tensor> {
        let key = self.key()?.value();
        let mut drawn = None;
        self.count()?.update(|count| {
            drawn = Some(fold_in_each(&key, &count)?);
            count.add(&Tensor::scalar(1_u32))
        })?;
        drawn.ok_or_else(|| Error::internal("the RngStream count was not updated"))
    }

    /// A new stream with the same tag whose key is `self.next_key()` (`stream.fork()`); this
    /// stream's count advances by one.
    ///
    /// # Errors
    /// As [`RngStream::next_key`].
    pub fn fork(&self) -> Result<RngStream> {
        let key = self.next_key()?;
        RngStream::from_key(&self.tag()?, key)
    }

    /// A new stream with the same tag whose key is `split(self.next_key(), k)` and whose
    /// count is zeros of that shape (`stream.split(k)`); this stream's count advances by one.
    ///
    /// # Errors
    /// [`Error::Shape`] when the stream holds a key array rather than a single key (checked
    /// before drawing); as [`RngStream::next_key`].
    pub fn split(&self, k: impl Into<Splits>) -> Result<RngStream> {
        self.require_single_key("split")?;
        let key = split_into(&self.next_key()?, &k.into())?;
        RngStream::from_key(&self.tag()?, key)
    }

    /// A new stream with the same tag whose key is `self.next_key()` broadcast to
    /// `shape + key.shape` (`stream.broadcast(k)`: every element holds the same key).
    ///
    /// # Errors
    /// As [`RngStream::next_key`].
    pub fn broadcast(&self, k: impl Into<Splits>) -> Result<RngStream> {
        let key = self.next_key()?;
        let mut shape = k.into().shape();
        shape.extend_from_slice(key.shape());
        RngStream::from_key(&self.tag()?, key.broadcast_to(&shape)?)
    }

    /// `jax.random.uniform(self.next_key(), shape)`.
    ///
    /// # Errors
    /// As [`RngStream::next_key`] and [`samplers::uniform`].
    pub fn uniform(&self, shape: &[usize]) -> Result<Tensor> {
        self.require_single_key("uniform")?;
        samplers::uniform(&self.next_key()?, shape)
    }

    /// `jax.random.normal(self.next_key(), shape)`.
    ///
    /// # Errors
    /// As [`RngStream::next_key`] and [`samplers::normal`].
    pub fn normal(&self, shape: &[usize]) -> Result<Tensor> {
        self.require_single_key("normal")?;
        samplers::normal(&self.next_key()?, shape)
    }

    /// An error unless the stream holds a single key.
    pub(crate) fn require_single_key(&self, op: &'static str) -> Result<()> {
        let shape = self.key()?.shape();
        if shape.is_empty() {
            Ok(())
        } else {
            Err(not_single_key(op, &shape))
        }
    }

    /// The underlying object.
    pub fn as_object(&self) -> &Object {
        &self.0
    }

    /// The underlying object, by value.
    pub fn into_object(self) -> Object {
        self.0
    }

    /// Whether two handles refer to the same stream.
    pub fn ptr_eq(&self, other: &RngStream) -> bool {
        self.0.ptr_eq(&other.0)
    }
}

impl From<RngStream> for Value {
    fn from(stream: RngStream) -> Value {
        Value::Object(stream.0)
    }
}

impl GraphValue for RngStream {}

impl crate::graph::ToValue for RngStream {
    fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }
}

impl crate::graph::FromValue for RngStream {
    fn expected() -> String {
        "RngStream".into()
    }

    fn from_value(value: &Value) -> Result<RngStream> {
        match value {
            Value::Object(o) => RngStream::from_object(o.clone()),
            other => Err(crate::graph::mismatch::<RngStream>(other)),
        }
    }
}

impl fmt::Display for RngStream {
    /// Flax's repr: `RngStream( # RngState: 2 (12 B)\n  tag='default',\n  key=…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for RngStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}
