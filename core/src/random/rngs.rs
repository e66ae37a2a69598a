//! `Rngs` (`nnx.Rngs`): named random streams in one object.

use std::fmt;

use crate::error::{Error, Result};
use crate::graph::{Filter, GraphValue, Leaf, Object, Path, Value};
use crate::tensor::Tensor;

use super::keys::Splits;
use super::stream::{RNG_STREAM_TYPE, RngSeed, RngStream};

/// The type name of the objects [`Rngs`] wraps.
pub const RNGS_TYPE: &str = "Rngs";

/// The name of the stream that unknown stream names fall back to.
pub const DEFAULT_STREAM: &str = "default";

/// Named random streams (`nnx.Rngs`): an [`Object`] of type `Rngs` whose attributes are
/// [`RngStream`] objects, one per stream name. Being an ordinary object graph, it prints,
/// splits, merges and goes through transforms exactly like Flax's.
///
/// `Rngs` is a cheap handle (clones share the object). Drawing from a name that has no
/// stream falls back to the `default` stream; without one it is an error naming the streams
/// that exist.
///
/// ```
/// use nnx_core::random::{self, Rngs};
/// # fn main() -> nnx_core::Result<()> {
/// let rngs = Rngs::builder().stream("params", 0).stream("dropout", 1).build()?;
/// let k = rngs.next_key("params")?;
/// assert!(k.identical(&random::fold_in(&random::key(0), 0)?));
/// let err = rngs.next_key("noise").unwrap_err();
/// assert!(err.to_string().starts_with("No RngStream named 'noise' found in Rngs."));
///
/// // `Rngs::new(seed)` is `nnx.Rngs(seed)`: a single `default` stream.
/// let rngs = Rngs::new(0)?;
/// let _ = rngs.default_key()?;                // rngs()
/// let _ = rngs.next_key("anything")?;         // falls back to `default`
/// assert_eq!(rngs.stream("default")?.count()?.value().to_vec::<u32>()?, vec![2]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Rngs(Object);

impl Rngs {
    /// `nnx.Rngs(seed)`: one stream named `default`.
    ///
    /// # Errors
    /// As [`RngSeed::to_key`] (never for an int seed).
    pub fn new(seed: impl Into<RngSeed>) -> Result<Rngs> {
        Rngs::builder().default_stream(seed).build()
    }

    /// A builder for an `Rngs` with named streams.
    pub fn builder() -> RngsBuilder {
        RngsBuilder::default()
    }

    /// Wraps an object that is an `Rngs`, such as one rebuilt by `graph::merge`.
    ///
    /// # Errors
    /// [`Error::WrongValueKind`] when the object is not of type `Rngs`;
    /// [`Error::MalformedRngStream`] when one of its `RngStream` attributes is malformed (see
    /// [`RngStream::from_object`]).
    pub fn from_object(object: Object) -> Result<Rngs> {
        if object.type_name() != RNGS_TYPE {
            return Err(Error::WrongValueKind {
                expected: "an Rngs object",
                found: format!("a '{}' object", object.type_name()),
            });
        }
        let rngs = Rngs(object);
        rngs.streams()?;
        Ok(rngs)
    }

    /// The underlying object.
    pub fn as_object(&self) -> &Object {
        &self.0
    }

    /// The underlying object, by value.
    pub fn into_object(self) -> Object {
        self.0
    }

    /// Whether two handles refer to the same `Rngs`.
    pub fn ptr_eq(&self, other: &Rngs) -> bool {
        self.0.ptr_eq(&other.0)
    }

    /// The streams in attribute order (Flax's `rngs.items()`); attributes that are not
    /// `RngStream` objects are skipped.
    ///
    /// # Errors
    /// [`Error::MalformedRngStream`] when an `RngStream` attribute is malformed.
    pub fn streams(&self) -> Result<Vec<(String, RngStream)>> {
        self.0
            .attributes()
            .into_iter()
            .filter_map(|(name, value)| match value {
                Value::Object(o) if o.type_name() == RNG_STREAM_TYPE => Some((name, o)),
                _ => None,
            })
            .map(|(name, o)| Ok((name, RngStream::from_object(o)?)))
            .collect()
    }

    /// The stream names in attribute order (Flax's `list(rngs)`).
    pub fn stream_names(&self) -> Vec<String> {
        self.0
            .attributes()
            .into_iter()
            .filter(|(_, v)| matches!(v, Value::Object(o) if o.type_name() == RNG_STREAM_TYPE))
            .map(|(name, _)| name)
            .collect()
    }

    /// The number of streams.
    pub fn len(&self) -> usize {
        self.stream_names().len()
    }

    /// Whether there are no streams.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a stream is named `name` exactly (no fallback to `default`).
    pub fn contains(&self, name: &str) -> bool {
        self.stream_names().iter().any(|n| n == name)
    }

    /// The stream named `name`, or the `default` stream when there is none by that name
    /// (`rngs[name]` / `rngs.<name>`).
    ///
    /// # Errors
    /// [`Error::RngStreamNotFound`] ("No RngStream named '…' found in Rngs.") listing the
    /// streams when neither exists; [`Error::MalformedRngStream`] when the stream is
    /// malformed.
    pub fn stream(&self, name: &str) -> Result<RngStream> {
        let found = if self.0.has(name) {
            self.0.get(name)?
        } else if self.0.has(DEFAULT_STREAM) {
            self.0.get(DEFAULT_STREAM)?
        } else {
            return Err(Error::RngStreamNotFound {
                name: name.to_owned(),
                available: self.stream_names(),
            });
        };
        crate::graph::FromValue::from_value(&found)
    }

    /// Draws a key from stream `name` (falling back to `default`): `rngs.<name>()`.
    ///
    /// # Errors
    /// As [`Rngs::stream`] and [`RngStream::next_key`].
    pub fn next_key(&self, name: &str) -> Result<Tensor> {
        self.stream(name)?.next_key()
    }

    /// Draws a key from the `default` stream: `rngs()`.
    ///
    /// # Errors
    /// As [`Rngs::next_key`].
    pub fn default_key(&self) -> Result<Tensor> {
        self.next_key(DEFAULT_STREAM)
    }

    /// `rngs.uniform(shape)`: uniform values from a key drawn from the `default` stream.
    ///
    /// # Errors
    /// As [`RngStream::uniform`].
    pub fn uniform(&self, shape: &[usize]) -> Result<Tensor> {
        self.stream(DEFAULT_STREAM)?.uniform(shape)
    }

    /// `rngs.normal(shape)`: normal values from a key drawn from the `default` stream.
    ///
    /// # Errors
    /// As [`RngStream::normal`].
    pub fn normal(&self, shape: &[usize]) -> Result<Tensor> {
        self.stream(DEFAULT_STREAM)?.normal(shape)
    }

    /// `rngs.fork()`: a new `Rngs` whose every stream is [`RngStream::fork`] of this one's
    /// (each of this `Rngs`' counts advances by one).
    ///
    /// # Errors
    /// As [`RngStream::fork`].
    pub fn fork(&self) -> Result<Rngs> {
        self.map_streams(|s| s.fork())
    }

    /// `rngs.split(k)`: a new `Rngs` whose every stream is [`RngStream::split`]`(k)` of this
    /// one's: keys of shape `k`, zero counts (each of this `Rngs`' counts advances by one).
    ///
    /// # Errors
    /// As [`RngStream::split`]; nothing is drawn unless every stream holds a single key.
    pub fn split(&self, k: impl Into<Splits>) -> Result<Rngs> {
        let k = k.into();
        for (_, stream) in self.streams()? {
            stream.require_single_key("split")?;
        }
        self.map_streams(|s| s.split(k.clone()))
    }

    /// `rngs.split({filter: k, …})`: a new `Rngs` in which each stream the first matching
    /// filter gives a `Some(k)` is [`RngStream::split`]`(k)` of this one's, and every other
    /// stream (matched with `None`, or by no filter) a copy of it (same key and count).
    /// Filters see each stream by its tag (`Filter::from("dropout")`) and its key Variable;
    /// `Filter::Everything` stands for Flax's `...`.
    ///
    /// ```
    /// use nnx_core::{Filter, Rngs};
    /// # fn main() -> nnx_core::Result<()> {
    /// let rngs = Rngs::builder().stream("params", 1).stream("dropout", 2).stream("noise", 3).build()?;
    /// let split = rngs.split_by(&[
    ///     (Filter::from("params"), Some(5.into())),
    ///     (Filter::from("dropout"), None),
    ///     (Filter::Everything, Some(vec![2, 5].into())),
    /// ])?;
    /// assert_eq!(split.stream("params")?.key()?.value().shape(), &[5]);
    /// assert_eq!(split.stream("dropout")?.key()?.value().shape(), &[] as &[usize]);
    /// assert_eq!(split.stream("noise")?.key()?.value().shape(), &[2, 5]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`RngStream::split`], checked for every stream to be split before anything is
    /// drawn.
    pub fn split_by(&self, splits: &[(Filter, Option<Splits>)]) -> Result<Rngs> {
        let chosen = (self.streams()?.into_iter())
            .map(|(name, stream)| {
                let path = Path::from([name.as_str()]);
                let leaf = Leaf::Variable(stream.key()?);
                let k = (splits.iter())
                    .find(|(f, _)| f.matches(&path, &leaf))
                    .and_then(|(_, k)| k.clone());
                if k.is_some() {
                    stream.require_single_key("split")?;
                }
                Ok((name, stream, k))
            })
            .collect::<Result<Vec<_>>>()?;
        let object = Object::new(RNGS_TYPE);
        for (name, stream, k) in chosen {
            let new = match k {
                Some(k) => stream.split(k)?,
                None => {
                    let copy = RngStream::from_key(&stream.tag()?, stream.key()?.value())?;
                    copy.count()?.set_value(stream.count()?.value())?;
                    copy
                }
            };
            object.set(&name, new)?;
        }
        Ok(Rngs(object))
    }

    /// `rngs.broadcast(k)`: a new `Rngs` whose every stream holds one freshly drawn key
    /// repeated to shape `k` (each of this `Rngs`' counts advances by one).
    ///
    /// # Errors
    /// As [`RngStream::broadcast`].
    pub fn broadcast(&self, k: impl Into<Splits>) -> Result<Rngs> {
        let k = k.into();
        self.map_streams(|s| s.broadcast(k.clone()))
    }

    fn map_streams(&self, f: impl Fn(&RngStream) -> Result<RngStream>) -> Result<Rngs> {
        let object = Object::new(RNGS_TYPE);
        for (name, stream) in self.streams()? {
            object.set(&name, f(&stream)?)?;
        }
        Ok(Rngs(object))
    }
}

/// Builds an [`Rngs`] with named streams: `Rngs::builder().stream("noise", seed)`.
///
/// Seeds are anything that converts into [`RngSeed`]: an int, a key, a key array (the
/// stream's key and count then have that array's shape) or uint32 key data. As in Flax, the
/// `default` stream given with [`RngsBuilder::default_stream`] comes after the named ones.
///
/// ```
/// use nnx_core::random::{self, Rngs};
/// # fn main() -> nnx_core::Result<()> {
/// let rngs = Rngs::builder()
///     .default_stream(0)
///     .stream("noise", random::split(&random::key(0), 10)?)
///     .build()?;
/// assert_eq!(rngs.stream_names(), vec!["noise", "default"]);
/// assert_eq!(rngs.stream("noise")?.count()?.shape(), vec![10]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct RngsBuilder {
    streams: Vec<(String, RngSeed)>,
    default: Option<RngSeed>,
}

impl RngsBuilder {
    /// Adds the stream `name`, seeded with `seed`.
    pub fn stream(mut self, name: &str, seed: impl Into<RngSeed>) -> RngsBuilder {
        self.streams.push((name.to_owned(), seed.into()));
        self
    }

    /// Sets the `default` stream (Flax's positional seed), added after the named streams.
    pub fn default_stream(mut self, seed: impl Into<RngSeed>) -> RngsBuilder {
        self.default = Some(seed.into());
        self
    }

    /// Creates the `Rngs`.
    ///
    /// # Errors
    /// [`Error::DuplicateRngStream`] when a stream name is given twice (including `default`
    /// both ways); [`Error::InvalidRngSeed`] when a seed is invalid (see
    /// [`RngSeed::to_key`]).
    pub fn build(self) -> Result<Rngs> {
        let mut streams = self.streams;
        if let Some(seed) = self.default {
            streams.push((DEFAULT_STREAM.to_owned(), seed));
        }
        let object = Object::new(RNGS_TYPE);
        for (name, seed) in streams {
            if object.has(&name) {
                return Err(Error::DuplicateRngStream { name });
            }
            object.set(&name, RngStream::new(&name, seed)?)?;
        }
        Ok(Rngs(object))
    }
}

impl From<Rngs> for Value {
    fn from(rngs: Rngs) -> Value {
        Value::Object(rngs.0)
    }
}

impl From<&Rngs> for Value {
    fn from(rngs: &Rngs) -> Value {
        Value::Object(rngs.0.clone())
    }
}

impl GraphValue for Rngs {}

impl fmt::Display for Rngs {
    /// Flax's repr: `Rngs( # RngState: 2 (12 B)\n  default=RngStream(…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Rngs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}
