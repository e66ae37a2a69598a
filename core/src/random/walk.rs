//! Finding the random streams of a graph (Flax's `iter_graph` filtered to `RngStream`s).

use crate::graph::IdSet;

use crate::error::Result;
use crate::graph::{GraphValue, Key, Path, Value};

use super::stream::{RNG_STREAM_TYPE, RngStream};

/// Every [`RngStream`] reachable from `node`, with its path, each once (a stream reachable
/// through several paths is reported under the first in traversal order).
///
/// The traversal is the one of every graph operation: pre-order over children in sorted
/// key order, through objects, lists, dicts and tuples.
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
    let mut seen: IdSet = IdSet::default();
    let mut found = Vec::new();
    // Values still to visit with their paths, the next one last (an explicit stack, so
    // deep graphs do not recurse).
    let mut stack: Vec<(Path, Value)> = vec![(Path::root(), node.to_value())];
    while let Some((path, value)) = stack.pop() {
        let children: Vec<(Key, Value)> = match &value {
            Value::Object(o) => {
                if !seen.insert(o.id()) {
                    continue;
                }
                if o.type_name() == RNG_STREAM_TYPE {
                    found.push((path, RngStream::from_object(o.clone())?));
                    continue;
                }
                o.attributes()
                    .into_iter()
                    .map(|(k, v)| (Key::Str(k), v))
                    .collect()
            }
            Value::List(l) => {
                if !seen.insert(l.id()) {
                    continue;
                }
                (0_usize..).map(Key::from).zip(l.items()).collect()
            }
            Value::Dict(d) => {
                if !seen.insert(d.id()) {
                    continue;
                }
                d.entries()
            }
            Value::Tuple(items) => (0_usize..).map(Key::from).zip(items.clone()).collect(),
            Value::Static(_) | Value::Array(_) | Value::Variable(_) => continue,
        };
        let mut children = children;
        children.sort_by(|a, b| b.0.cmp(&a.0));
        stack.extend(children.into_iter().map(|(k, v)| (path.child(k), v)));
    }
    Ok(found)
}
