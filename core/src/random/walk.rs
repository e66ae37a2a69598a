//! Finding the random streams of a graph (Flax's `iter_graph` filtered to `RngStream`s).

use std::collections::HashSet;

use crate::error::Result;
use crate::graph::{GraphValue, Key, NodeId, Path, Value};

use super::stream::{RNG_STREAM_TYPE, RngStream};

/// Every [`RngStream`] reachable from `node`, with its path, each once (a stream reachable
/// through several paths is reported under the first in traversal order).
///
/// The traversal is the one of every graph operation: pre-order over children in sorted
/// key order, through objects, lists, dicts and tuples.
///
/// # Errors
/// [`Error::InvalidValue`](crate::Error::InvalidValue) when an object of type `RngStream`
/// is malformed (see [`RngStream::from_object`]).
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
    let mut walker = Walker::default();
    walker.visit(&node.to_value(), &mut Path::root())?;
    Ok(walker.found)
}

#[derive(Default)]
struct Walker {
    seen: HashSet<NodeId>,
    found: Vec<(Path, RngStream)>,
}

impl Walker {
    fn visit(&mut self, value: &Value, path: &mut Path) -> Result<()> {
        let children: Vec<(Key, Value)> = match value {
            Value::Object(o) => {
                if !self.seen.insert(o.id()) {
                    return Ok(());
                }
                if o.type_name() == RNG_STREAM_TYPE {
                    self.found
                        .push((path.clone(), RngStream::from_object(o.clone())?));
                    return Ok(());
                }
                o.attributes()
                    .into_iter()
                    .map(|(k, v)| (Key::Str(k), v))
                    .collect()
            }
            Value::List(l) => {
                if !self.seen.insert(l.id()) {
                    return Ok(());
                }
                (0_usize..).map(Key::from).zip(l.items()).collect()
            }
            Value::Dict(d) => {
                if !self.seen.insert(d.id()) {
                    return Ok(());
                }
                d.entries()
            }
            Value::Tuple(items) => (0_usize..).map(Key::from).zip(items.clone()).collect(),
            Value::Static(_) | Value::Array(_) | Value::Variable(_) => return Ok(()),
        };
        let mut children = children;
        children.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, child) in children {
            path.push(key);
            let result = self.visit(&child, path);
            path.pop();
            result?;
        }
        Ok(())
    }
}
