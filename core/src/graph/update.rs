//! Writing a State into an existing graph in place (Flax's `nnx.update`).

use crate::graph::IdMap;
use std::collections::HashMap;

use super::node::{Node, NodeKind, new_key_error};
use super::path::{Key, Path};
use super::state::{Leaf, State};
use super::value::Value;
use crate::error::{Error, Result};

/// Writes every leaf of `state` into the graph rooted at `root`.
///
/// - an existing Variable takes the leaf's value (and, when the leaf is a Variable, its
///   metadata), keeping its identity;
/// - a raw array attribute is replaced by the leaf's array;
/// - a missing final key is added (a Variable leaf is added as a copy), if the node can
///   have it: an object only takes string keys (attribute names), a list only the index
///   `len` (an append, as Flax's `List` does; several appends in ascending order are
///   fine), a dict any key;
/// - a path that runs through a leaf or a static, or ends on a subgraph, is an error, and so
///   is a key of the wrong kind or out of range (a negative or too large list index).
///
/// All paths, and that every target may be mutated from the current trace level, are checked
/// before anything is written, so a failed update changes nothing.
pub(crate) fn update(root: &Value, state: &State) -> Result<()> {
    let _consistent = super::sync::consistency(true);
    let mut writes = Vec::with_capacity(state.len());
    // Lists that planned appends will have grown (by node id): the next index that appends.
    let mut planned_len: IdMap<usize> = IdMap::default();
    let mut resolver = Resolver::default();
    for (path, leaf) in state {
        writes.push(plan(root, path, leaf, &mut planned_len, &mut resolver)?);
    }
    for write in &writes {
        write.check_can_mutate()?;
    }
    for write in writes {
        write.apply()?;
    }
    Ok(())
}

enum Write {
    UpdateVariable(super::variable::Variable, Leaf),
    SetChild(Node, Key, Value),
    /// Tuples and maps are immutable values: rebuild the one held by `node[key]` with the
    /// element at `positions` (keys, through nested tuples and maps) replaced, and set it
    /// back.
    SetInTuple {
        node: Node,
        key: Key,
        positions: Vec<Key>,
        value: Value,
    },
}

impl Write {
    /// The trace-level check the write will make, made before any write happens.
    fn check_can_mutate(&self) -> Result<()> {
        match self {
            Write::UpdateVariable(target, Leaf::Variable(source)) if target.ptr_eq(source) => {
                Ok(())
            }
            Write::UpdateVariable(target, _) => target.check_can_mutate(),
            Write::SetChild(node, ..) | Write::SetInTuple { node, .. } => node.check_can_mutate(),
        }
    }

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

fn plan(
    root: &Value,
    path: &Path,
    leaf: &Leaf,
    planned_len: &mut IdMap<usize>,
    resolver: &mut Resolver,
) -> Result<Write> {
    let Some(last) = path.last() else {
        return match root {
            Value::Variable(v) => Ok(Write::UpdateVariable(v.clone(), leaf.clone())),
            other => Err(Error::StructureMismatch(format!(
                "cannot update {} with a leaf at the root path",
                other.kind_name()
            ))),
        };
    };
    let (current, anchor) = match path.parent() {
        Some(parent) => resolver.resolve(root, parent, path)?,
        None => (root.clone(), None),
    };
    if let Value::Tuple(_) | Value::Map(_) = &current {
        let Some((node, key, mut positions)) = anchor else {
            return Err(Error::StructureMismatch(format!(
                "cannot update path {path}: the {} holding it is not inside an object, list or dict",
                current.kind_name()
            )));
        };
        return match child(&current, last) {
            Some(Value::Variable(v)) => Ok(Write::UpdateVariable(v.clone(), leaf.clone())),
            Some(Value::Array(_)) => {
                positions.push(last.clone());
                Ok(Write::SetInTuple {
                    node,
                    key,
                    positions,
                    value: Value::Array(leaf.value()),
                })
            }
            _ => Err(Error::StructureMismatch(format!(
                "cannot update path {path}: the {} has no array or Variable there",
                current.kind_name()
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
        Some(Value::Array(_)) => Ok(Write::SetChild(parent, last.clone(), new_leaf(leaf))),
        None => {
            check_new_key(&parent, last, path, planned_len)?;
            Ok(Write::SetChild(parent, last.clone(), new_leaf(leaf)))
        }
        Some(existing) => Err(Error::StructureMismatch(format!(
            "Expected a leaf at {path} to match the State, but the graph holds {} there",
            existing.kind_name()
        ))),
    }
}

/// The value a leaf becomes when it is set as a child: a copy of a Variable leaf (the
/// State's Variable is not shared into the graph), or the array.
fn new_leaf(leaf: &Leaf) -> Value {
    match leaf {
        Leaf::Variable(v) => Value::Variable(v.copy()),
        Leaf::Array(t) => Value::Array(t.clone()),
    }
}

/// Whether `key`, absent from `parent`, can be added to it ([`new_key_error`]), counting
/// the appends already planned for a list.
fn check_new_key(
    parent: &Node,
    key: &Key,
    path: &Path,
    planned_len: &mut IdMap<usize>,
) -> Result<()> {
    let len = planned_len
        .entry(parent.id())
        .or_insert_with(|| parent.len());
    match new_key_error(parent.kind(), key, *len) {
        Some(why) => Err(Error::StructureMismatch(format!(
            "cannot update path {path}: {why}"
        ))),
        None => {
            if *parent.kind() == NodeKind::List {
                *len += 1;
            }
            Ok(())
        }
    }
}

/// The nearest graph node above a position, the key under which the tuple chain below it
/// starts, and the keys inside nested tuples and maps below that.
type Anchor = Option<(Node, Key, Vec<Key>)>;

/// Resolves the parents of the State's paths in the graph, remembering every path prefix
/// already resolved (by the identity of its shared path node), so that resolving all the
/// paths of a State costs time linear in the number of distinct prefixes, not in the sum
/// of the paths' lengths.
#[derive(Default)]
struct Resolver {
    /// Path node address → the value there and its anchor, with the path node kept alive
    /// (so the address cannot be reused for another node).
    resolved: HashMap<usize, (Value, Anchor, Path)>,
}

impl Resolver {
    /// The value at `prefix` (the parent of `path`, for error messages) and its anchor.
    fn resolve(&mut self, root: &Value, prefix: &Path, path: &Path) -> Result<(Value, Anchor)> {
        let mut unresolved = Vec::new();
        let mut p = prefix;
        let (mut current, mut anchor) = loop {
            if p.is_empty() {
                break (root.clone(), None);
            }
            if let Some((value, anchor, _)) = p.node_addr().and_then(|a| self.resolved.get(&a)) {
                break (value.clone(), anchor.clone());
            }
            unresolved.push(p);
            match p.parent() {
                Some(parent) => p = parent,
                None => break (root.clone(), None),
            }
        };
        for here in unresolved.into_iter().rev() {
            let Some(key) = here.last() else { continue };
            let next = child(&current, key).ok_or_else(|| {
                Error::StructureMismatch(format!(
                    "cannot update path {path}: there is no subgraph at {here}"
                ))
            })?;
            match (&current, key, &mut anchor) {
                (Value::Tuple(_) | Value::Map(_), key, Some((_, _, positions))) => {
                    positions.push(key.clone())
                }
                (Value::Tuple(_) | Value::Map(_), _, _) => {}
                _ => anchor = as_node(&current).map(|n| (n, key.clone(), Vec::new())),
            }
            current = next;
            if let Some(addr) = here.node_addr() {
                self.resolved
                    .insert(addr, (current.clone(), anchor.clone(), here.clone()));
            }
        }
        Ok((current, anchor))
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

fn replace_in_tuple(current: Value, positions: &[Key], value: Value) -> Result<Value> {
    let Some((first, rest)) = positions.split_first() else {
        return Ok(value);
    };
    let mut children = current.pytree_children().unwrap_or_default();
    match children.iter_mut().find(|(k, _)| k == first) {
        Some((_, slot)) => {
            let inner = std::mem::replace(slot, Value::Static(crate::graph::Static::None));
            *slot = replace_in_tuple(inner, rest, value)?;
            Ok(current.with_pytree_children(children))
        }
        None => Err(Error::StructureMismatch(format!(
            "expected a tuple or dict with {first} during update, found {}",
            current.kind_name()
        ))),
    }
}

/// The child of a graph value (node, tuple or map) at `key`.
pub(super) fn child(value: &Value, key: &Key) -> Option<Value> {
    match value {
        Value::Object(o) => o.0.get(key),
        Value::List(l) => l.0.get(key),
        Value::Dict(d) => d.0.get(key),
        Value::Tuple(items) => match key {
            Key::Int(i) => usize::try_from(*i).ok().and_then(|i| items.get(i).cloned()),
            Key::Str(_) => None,
        },
        Value::Map(entries) => entries.get(key).cloned(),
        _ => None,
    }
}
