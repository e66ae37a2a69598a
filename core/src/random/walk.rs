//! Finding the random streams of a graph (Flax's `iter_graph` filtered to `RngStream`s).

use crate::error::Result;
use crate::graph::{GraphValue, Path};

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
