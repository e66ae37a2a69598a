//! The node of a typed value: one graph node per typed module (and per `Vec` of graph
//! values), found again from the module's handles.
//!
//! A `#[derive(Module)]` struct holds handles (Variables, sub-modules), not its graph node.
//! So that a module passed twice, a sub-module shared by two parents, and repeated calls on one
//! model all see one node (and repeated transform calls take their shortcut), the registry
//! here keeps each typed node under its [`NodeKey`]: its type name and the identities of its
//! handle children. Converting the same handles again finds the node.
//!
//! The registry holds its nodes, and forgets them once nothing outside it can name them
//! again: a periodic sweep keeps an entry while its node, or one of its handle children, has
//! a handle outside the registry's own nodes, together with every entry reachable from a kept
//! node; the rest are dropped.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use super::node::{Node, NodeKind};
use super::{Key, NodeId, Object, Value};

/// The identity of a node built for a typed value: its type and the identities of the
/// handles among its children, in order.
type NodeKey = (&'static str, Vec<NodeId>);

static TYPED_NODES: Mutex<Registry> = Mutex::new(Registry {
    nodes: None,
    sweep_at: MIN_SWEEP,
});

/// Sweep when the registry reaches this many entries, at least.
const MIN_SWEEP: usize = 64;

struct Registry {
    nodes: Option<HashMap<NodeKey, Node>>,
    /// Sweep when the map grows to this size (twice what the last sweep kept).
    sweep_at: usize,
}

fn handle_id(value: &Value) -> Option<NodeId> {
    match value {
        Value::Variable(v) => Some(v.id()),
        Value::Object(o) => Some(o.id()),
        Value::List(l) => Some(l.id()),
        Value::Dict(d) => Some(d.id()),
        _ => None,
    }
}

/// The node behind a handle value, if it is a graph node.
fn child_node(value: &Value) -> Option<&Node> {
    match value {
        Value::Object(o) => Some(&o.0),
        Value::List(l) => Some(&l.0),
        Value::Dict(d) => Some(&d.0),
        _ => None,
    }
}

fn strong_count(value: &Value) -> usize {
    match value {
        Value::Variable(v) => v.strong_count(),
        other => child_node(other).map_or(0, Node::strong_count),
    }
}

fn node_key(type_name: &'static str, children: &[(Key, Value)]) -> Option<NodeKey> {
    let ids: Vec<NodeId> = children.iter().filter_map(|(_, v)| handle_id(v)).collect();
    (!ids.is_empty()).then_some((type_name, ids))
}

fn with_registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut registry = TYPED_NODES.lock().unwrap_or_else(PoisonError::into_inner);
    f(&mut registry)
}

/// Drops the entries nothing outside the registry can name again (see the module docs).
fn sweep(nodes: &mut HashMap<NodeKey, Node>) {
    // Handles the registry accounts for: one per entry (the map's), one per child slot of an
    // entry's node.
    let mut internal: HashMap<NodeId, usize> = HashMap::new();
    for node in nodes.values() {
        *internal.entry(node.id()).or_default() += 1;
        node.for_each_child(|child| {
            if let Some(id) = handle_id(child) {
                *internal.entry(id).or_default() += 1;
            }
        });
    }
    let held_outside = |id: NodeId, count: usize| count > internal.get(&id).copied().unwrap_or(0);
    let entry_ids: HashSet<NodeId> = nodes.values().map(Node::id).collect();
    // An entry can be named again while its node or a handle child is held outside, or a
    // child entry can: its key leads back to it. Start from the first, walk up to parents.
    let mut parents: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    let mut children: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    let mut live: Vec<NodeId> = Vec::new();
    for node in nodes.values() {
        let mut root = held_outside(node.id(), node.strong_count());
        node.for_each_child(|child| {
            if let Some(id) = handle_id(child) {
                root |= held_outside(id, strong_count(child));
                if entry_ids.contains(&id) {
                    parents.entry(id).or_default().push(node.id());
                    children.entry(node.id()).or_default().push(id);
                }
            }
        });
        if root {
            live.push(node.id());
        }
    }
    let mut keep: HashSet<NodeId> = HashSet::new();
    while let Some(id) = live.pop() {
        if keep.insert(id) {
            live.extend(parents.get(&id).into_iter().flatten());
        }
    }
    // A kept node's child entries are kept with it (its key names them).
    let mut down: Vec<NodeId> = keep.iter().copied().collect();
    while let Some(id) = down.pop() {
        for &child in children.get(&id).into_iter().flatten() {
            if keep.insert(child) {
                down.push(child);
            }
        }
    }
    nodes.retain(|_, node| keep.contains(&node.id()));
}

/// Records that `node` is the node of the typed value with these children.
pub(crate) fn remember_node(node: &Node, type_name: &'static str, children: &[(Key, Value)]) {
    let Some(key) = node_key(type_name, children) else {
        return;
    };
    with_registry(|registry| {
        let nodes = registry.nodes.get_or_insert_with(HashMap::new);
        nodes.insert(key, node.clone());
        if nodes.len() >= registry.sweep_at {
            sweep(nodes);
            registry.sweep_at = (nodes.len() * 2).max(MIN_SWEEP);
        }
    });
}

/// The node of a typed value: the node already built for (or viewed as) the same handles,
/// with its other children brought up to date (statics, arrays); otherwise a new node of
/// `kind` with `children`, remembered. (When the existing node cannot take an update,
/// because it belongs to another trace level, the value gets a new node.)
pub(crate) fn typed_node(
    kind: NodeKind,
    type_name: &'static str,
    children: Vec<(Key, Value)>,
) -> Node {
    let key = node_key(type_name, &children);
    let existing = key.as_ref().and_then(|key| {
        with_registry(|registry| {
            registry
                .nodes
                .as_ref()
                .and_then(|nodes| nodes.get(key))
                .cloned()
        })
    });
    // The same handles: the same node (its key is this one), with its other children
    // (statics, arrays) brought up to date.
    if let Some(node) = existing.filter(|node| node.kind() == &kind)
        && children.iter().all(|(key, value)| {
            node.get(key).is_some_and(|current| current.same_as(value))
                || node.set(key.clone(), value.clone()).is_ok()
        })
    {
        return node;
    }
    let node = Node::with_children(kind, children.iter().cloned().collect());
    remember_node(&node, type_name, &children);
    node
}

/// The node of a typed module (`#[derive(Module)]`): converting the same handles again gives
/// the same object, so a module passed twice, a shared sub-module and repeated calls on one
/// model each see one node.
pub fn typed_object(type_name: &'static str, fields: Vec<(&str, Value)>) -> Object {
    let children = fields.into_iter().map(|(k, v)| (Key::from(k), v)).collect();
    Object(typed_node(
        NodeKind::Object(type_name.into()),
        type_name,
        children,
    ))
}

/// Records that `object` is the node of a typed module viewed from it with these fields, so
/// that converting the view back finds the same object.
pub fn remember_object(object: &Object, type_name: &'static str, fields: &[(&str, Value)]) {
    let children: Vec<(Key, Value)> = (fields.iter())
        .map(|(k, v)| (Key::from(*k), v.clone()))
        .collect();
    remember_node(&object.0, type_name, &children);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;
    use crate::graph::{FromValue, Param, ToValue};

    fn registered(key: &NodeKey) -> bool {
        with_registry(|r| r.nodes.as_ref().is_some_and(|n| n.contains_key(key)))
    }

    #[test]
    fn the_node_outlives_its_last_handle_while_the_typed_value_lives() {
        let w = Param::new(Tensor::ones([2]));
        let first = typed_object("Kept", vec![("w", w.to_value())]);
        let id = first.id();
        drop(first);
        // Only the registry holds the node now; the Param is still held by `w`.
        with_registry(|r| sweep(r.nodes.get_or_insert_with(HashMap::new)));
        assert_eq!(typed_object("Kept", vec![("w", w.to_value())]).id(), id);
        let key: NodeKey = ("Kept", vec![w.id()]);
        drop(w);
        with_registry(|r| sweep(r.nodes.get_or_insert_with(HashMap::new)));
        assert!(!registered(&key));
    }

    #[test]
    fn nested_typed_nodes_are_kept_and_dropped_together() {
        let w = Param::new(Tensor::ones([2]));
        let inner = typed_object("Inner", vec![("w", w.to_value())]);
        let outer = typed_object("Outer", vec![("inner", Value::Object(inner.clone()))]);
        let keys: [NodeKey; 2] = [("Inner", vec![w.id()]), ("Outer", vec![inner.id()])];
        drop((inner, outer));
        with_registry(|r| sweep(r.nodes.get_or_insert_with(HashMap::new)));
        assert!(keys.iter().all(registered));
        drop(w);
        with_registry(|r| sweep(r.nodes.get_or_insert_with(HashMap::new)));
        assert!(!keys.iter().any(registered));
    }

    #[test]
    fn the_same_handles_give_the_same_node() {
        let w = Param::new(Tensor::ones([2]));
        let fields = || vec![("w", Value::from(&*w)), ("n", 3usize.to_value())];
        let a = typed_object("Lin", fields());
        let b = typed_object("Lin", fields());
        assert!(a.ptr_eq(&b));
        // A static field changed on the typed side is written to the node.
        let changed = vec![("w", Value::from(&*w)), ("n", 4usize.to_value())];
        let c = typed_object("Lin", changed);
        assert!(c.ptr_eq(&a));
        assert_eq!(usize::from_value(&a.get("n").unwrap()).unwrap(), 4);
        // Another type over the same handles is another node.
        assert!(!typed_object("Other", fields()).ptr_eq(&a));
        // Without handles there is no identity to find: a new node each time.
        let stat = || vec![("n", 1usize.to_value())];
        assert!(!typed_object("S", stat()).ptr_eq(&typed_object("S", stat())));
    }
}
