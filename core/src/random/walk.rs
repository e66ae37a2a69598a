//! Finding the random streams of a graph (Flax's `iter_graph` filtered to `RngStream`s).

use crate::error::{Error, Result};
use crate::graph::{GraphValue, Path};
use crate::tensor::{DType, Tensor};

use super::stream::{RNG_STREAM_TYPE, RngStream};

/// Every [`RngStream`] reachable from `node`, with its path, each once (a stream reachable
/// through several paths is reported under the first in traversal order).
///
/// The traversal is [`walk_objects`](crate::graph::walk_objects), the one of every graph
/// operation.
///
/// # Errors
/// [`Error::MalformedRngStream`](crate::Error::MalformedRngStream) when an object of type
/// `RngStream` is malformed (see [`RngStream::from_object`]).
///
/// ```
/// use nnx_core::{Object, Path, random::{Rngs, rng_streams}};
/// # fn main() -> nnx_core::Result<()> {
/// let model = Object::new("Model").with("rngs", Rngs::new(0)?)?;
/// let found = rng_streams(&model)?;
/// assert_eq!(found.len(), 1);
/// assert_eq!(found[0].0, Path::from(["rngs", "default"]));
/// # Ok(())
/// # }
/// ```
pub fn rng_streams(node: &impl GraphValue) -> Result<Vec<(Path, RngStream)>> {
    let mut found = Vec::new();
    crate::graph::walk_objects(node, |path, object| {
        if object.type_name() == RNG_STREAM_TYPE {
            found.push((path.clone(), RngStream::from_object(object.clone())?));
            return Ok(false);
        }
        Ok(true)
    })?;
    Ok(found)
}

/// How [`reseed`] fits a new key to a stream that holds an array of keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReseedPolicy {
    /// Only streams with a single key may be reseeded; an array of keys is an error
    /// (Flax's `'scalars_only'`, the default).
    #[default]
    ScalarsOnly,
    /// The new key is split to the stream's key shape (Flax's `'match_shape'`).
    MatchShape,
}

/// Gives the streams of `node` with the tags in `seeds` new keys (`nnx.reseed`): each such
/// stream's key becomes the next key of `Rngs(tag=seed)` — `fold_in(key(seed), 0)` for the
/// first stream of a tag, as in Flax, not `key(seed)` — and its count zero. A stream holding
/// an array of keys (after `split_rngs`) takes the new key split to its shape under
/// [`ReseedPolicy::MatchShape`], and is an error under [`ReseedPolicy::ScalarsOnly`].
///
/// ```
/// use nnx_core::{Object, Rngs, random::{self, ReseedPolicy}};
/// # fn main() -> nnx_core::Result<()> {
/// let m = Object::new("M").with("rngs", Rngs::builder().stream("dropout", 1).build()?)?;
/// let rngs = Rngs::from_object(m.object("rngs")?)?;
/// rngs.next_key("dropout")?;
/// random::reseed(&m, [("dropout", 42.into())], ReseedPolicy::ScalarsOnly)?;
/// let stream = rngs.stream("dropout")?;
/// let expected = random::fold_in(&random::key(42), 0)?;
/// assert!(stream.key()?.value().key_data()?.identical(&expected.key_data()?));
/// assert_eq!(stream.count()?.value().item::<u32>()?, 0);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// A stream with an array of keys under [`ReseedPolicy::ScalarsOnly`], naming its path (no
/// stream is changed then); invalid seeds.
pub fn reseed<'a>(
    node: &impl GraphValue,
    seeds: impl IntoIterator<Item = (&'a str, super::RngSeed)>,
    policy: ReseedPolicy,
) -> Result<()> {
    let mut builder = super::Rngs::builder();
    let mut tags = Vec::new();
    for (tag, seed) in seeds {
        builder = builder.stream(tag, seed);
        tags.push(tag.to_owned());
    }
    let fresh = builder.build()?;
    let mut writes = Vec::new();
    for (path, stream) in rng_streams(node)? {
        let tag = stream.tag()?;
        if !tags.contains(&tag) {
            continue;
        }
        let shape = stream.key()?.value().shape().to_vec();
        let key = fresh.next_key(&tag)?;
        let key = match (shape.is_empty(), policy) {
            (true, _) => key,
            (false, ReseedPolicy::MatchShape) => super::keys::split_shape(&key, &shape)?,
            (false, ReseedPolicy::ScalarsOnly) => {
                return Err(Error::shape(
                    "reseed",
                    format!(
                        "Cannot reseed stream at path '{}' because it has a non-scalar key, found \
                     key with shape {shape:?}; use ReseedPolicy::MatchShape to split the new \
                     key to that shape",
                        path.slashed()
                    ),
                ));
            }
        };
        writes.push((stream, key, shape));
    }
    for (stream, key, shape) in writes {
        stream.key()?.set_value(key)?;
        stream
            .count()?
            .set_value(Tensor::zeros_of(&shape, DType::U32)?)?;
    }
    Ok(())
}
