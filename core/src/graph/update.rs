//! Writing a State into an existing graph in place (Flax's `nnx.update`).

use super::node::Node;
use super::path::{Key, Path};
use super::state::{Leaf, State};
use super::value::Value;
use crate::error::{Error, Result};

/// Writes every leaf of `state` into the graph rooted at `root`.
///
/// - an existing Variable takes the leaf's value (and, when the leaf is a Variable, its
///   metadata), keeping its identity;
/// - a raw array attribute is replaced by the leaf's array;
/// - a missing final key is added (a Variable leaf is added as a copy);
/// - a path that runs through a leaf or a static, or ends on a subgraph, is an error.
///
/// All paths are checked before anything is written, so a failed update changes nothing.
pub(crate) fn update(root: &Value, state: &State) -> Result<()> {
    let mut writes = Vec::with_capacity(state.len());
    for (path, leaf) in state {
        writes.push(plan(root, path, leaf)?);
    }
    for write in writes {
        write.apply()?;
    }
    Ok(())
}

enum Write {
    UpdateVariable(super::variable::Variable, Leaf),
    SetChild(Node, Key, Value),
    /// Tuples are immutable values: rebuild the tuple held by `node[key]` with the element at
    /// `positions` replaced, and set it back.
    SetInTuple {
        node: Node,
        key: Key,
        positions: Vec<usize>,
        value: Value,
    },
}

impl Write {
    fn apply(self) -> Result<()> {
        match self {
            Write::UpdateVariable(target, Leaf::Variable(source)) => target.update_from(&source),
            Write::UpdateVariable(target, Leaf::Array(t)) => target.set_value(t),
            Write::SetChild(node, key, value) => node.set(key, value),
            Write::SetInTuple {
                node,
                key,
                positions,
                value,
            } => {
                let current = node.get(&key).ok_or_else(|| {
                    Error::StructureMismatch(format!("attribute {key} disappeared during update"))
                })?;
                node.set(key, replace_in_tuple(current, &positions, value)?)
            }
        }
    }
}

fn plan(root: &Value, path: &Path, leaf: &Leaf) -> Result<Write> {
    let Some((last, parents)) = path.keys().split_last() else {
        return match root {
            Value::Variable(v) => Ok(Write::UpdateVariable(v.clone(), leaf.clone())),
            other => Err(Error::StructureMismatch(format!(
                "cannot update {} with a leaf at the root path",
                other.kind_name()
            ))),
        };
    };
    let mut current = root.clone();
    // The nearest graph node above the current position, the key under which the tuple
    // chain starts, and the positions inside nested tuples below it.
    let mut anchor: Option<(Node, Key, Vec<usize>)> = None;
    for (depth, key) in parents.iter().enumerate() {
        let here = Path::from(parents[..=depth].to_vec());
        let next = child(&current, key).ok_or_else(|| {
            Error::StructureMismatch(format!(
                "cannot update path {path}: there is no subgraph at {here}"
            ))
        })?;
        match (&current, key, &mut anchor) {
            (Value::Tuple(_), Key::Int(i), Some((_, _, positions))) => positions.push(*i as usize),
            (Value::Tuple(_), _, _) => {}
            _ => anchor = as_node(&current).map(|n| (n, key.clone(), Vec::new())),
        }
        current = next;
    }
    if let Value::Tuple(items) = &current {
        let (Some((node, key, mut positions)), Key::Int(i)) = (anchor, last) else {
            return Err(Error::StructureMismatch(format!(
                "cannot update path {path}: the tuple holding it is not inside an object, list or dict"
            )));
        };
        return match items.get(*i as usize) {
            Some(Value::Variable(v)) => Ok(Write::UpdateVariable(v.clone(), leaf.clone())),
            Some(Value::Array(_)) => {
                positions.push(*i as usize);
                Ok(Write::SetInTuple {
                    node,
                    key,
                    positions,
                    value: Value::Array(leaf.value()),
                })
            }
            _ => Err(Error::StructureMismatch(format!(
                "cannot update path {path}: the tuple has no array or Variable there"
            ))),
        };
    }
    let parent = as_node(&current).ok_or_else(|| {
        Error::StructureMismatch(format!(
            "cannot update path {path}: its parent is {}, which has no children to set",
            current.kind_name()
        ))
    })?;
    match parent.get(last) {
        Some(Value::Variable(v)) => Ok(Write::UpdateVariable(v, leaf.clone())),
        Some(Value::Array(_)) | None => {
            let value = match leaf {
                Leaf::Variable(v) => Value::Variable(v.copy()),
                Leaf::Array(t) => Value::Array(t.clone()),
            };
            Ok(Write::SetChild(parent, last.clone(), value))
        }
        Some(existing) => Err(Error::StructureMismatch(format!(
            "Expected a leaf at {path} to match the State, but the graph holds {} there",
            existing.kind_name()
        ))),
    }
}

fn as_node(value: &Value) -> Option<Node> {
    match value {
        Value::Object(o) => Some(o.0.clone()),
        Value::List(l) => Some(l.0.clone()),
        Value::Dict(d) => Some(d.0.clone()),
        _ => None,
    }
}

fn replace_in_tuple(current: Value, positions: &[usize], value: Value) -> Result<Value> {
    let Some((&first, rest)) = positions.split_first() else {
        return Ok(value);
    };
    match current {
        Value::Tuple(mut items) if first < items.len() => {
            let inner =
                std::mem::replace(&mut items[first], Value::Static(crate::graph::Static::None));
            items[first] = replace_in_tuple(inner, rest, value)?;
            Ok(Value::Tuple(items))
        }
        other => Err(Error::StructureMismatch(format!(
            "expected a tuple during update, found {}",
            other.kind_name()
        ))),
    }
}

fn child(value: &Value, key: &Key) -> Option<Value> {
    match value {
        Value::Object(o) => o.0.get(key),
        Value::List(l) => l.0.get(key),
        Value::Dict(d) => d.0.get(key),
        Value::Tuple(items) => match key {
            Key::Int(i) => usize::try_from(*i).ok().and_then(|i| items.get(i).cloned()),
            Key::Str(_) => None,
        },
        _ => None,
    }
}
