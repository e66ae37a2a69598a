//! `GraphDef`: the static structure of a graph, and the traversal that produces it.

use std::collections::HashMap;
use std::fmt;

use super::node::{Node, NodeKind};
use super::node_id::NodeId;
use super::path::{Key, Path};
use super::state::Leaf;
use super::static_value::Static;
use super::value::Value;
use super::variable::{Variable, VariableType};

/// The structure of a graph without its state: node kinds and type names, attribute keys,
/// static values, Variable types and metadata, and the sharing topology (every shared node
/// is described once and referred to by index afterwards). It never holds shapes or values.
///
/// Two graphs have equal `GraphDef`s exactly when `merge` would rebuild one from the other's
/// state: this is what a `jit` cache keys on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GraphDef {
    pub(crate) root: NodeDef,
    pub(crate) num_leaves: usize,
}

/// One position of a [`GraphDef`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NodeDef {
    /// An object, list or dict seen for the first time, with its children in sorted key order.
    Node {
        /// Object (with type name), list or dict.
        kind: NodeKind,
        /// Position in the traversal's shared node counter.
        index: usize,
        /// The index of the corresponding node outside a transform, when this definition was
        /// produced inside one (`None` for nodes created inside, and outside transforms).
        outer_index: Option<usize>,
        /// Children in sorted key order.
        attributes: Vec<(Key, NodeDef)>,
    },
    /// A Variable seen for the first time (one leaf).
    Variable(VariableDef),
    /// A node or Variable already described at this index (a shared reference or a cycle).
    Ref(usize),
    /// A tuple (no identity: described at every occurrence).
    Tuple(Vec<NodeDef>),
    /// A raw array (one leaf).
    Leaf,
    /// A static value.
    Static(Static),
}

/// The static description of a Variable: its type, index and metadata.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VariableDef {
    /// The Variable's type.
    pub ty: VariableType,
    /// Position in the traversal's shared node counter.
    pub index: usize,
    /// See [`NodeDef::Node::outer_index`].
    pub outer_index: Option<usize>,
    /// The metadata, in insertion order.
    pub metadata: Vec<(String, Static)>,
}

impl GraphDef {
    /// The root of the structure.
    pub fn root(&self) -> &NodeDef {
        &self.root
    }

    /// The number of leaves (Variables and raw arrays) a State must provide.
    pub fn num_leaves(&self) -> usize {
        self.num_leaves
    }

    /// The leaf paths in traversal (= sorted) order.
    pub fn leaf_paths(&self) -> Vec<Path> {
        let mut out = Vec::with_capacity(self.num_leaves);
        collect_leaf_paths(&self.root, &mut Path::root(), &mut out);
        out
    }
}

fn collect_leaf_paths(def: &NodeDef, path: &mut Path, out: &mut Vec<Path>) {
    match def {
        NodeDef::Variable(_) | NodeDef::Leaf => out.push(path.clone()),
        NodeDef::Node { attributes, .. } => {
            for (key, child) in attributes {
                path.push(key.clone());
                collect_leaf_paths(child, path, out);
                path.pop();
            }
        }
        NodeDef::Tuple(items) => {
            for (i, child) in items.iter().enumerate() {
                path.push(i);
                collect_leaf_paths(child, path, out);
                path.pop();
            }
        }
        NodeDef::Ref(_) | NodeDef::Static(_) => {}
    }
}

impl fmt::Display for GraphDef {
    /// An indented outline: one line per position.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "GraphDef(num_leaves={})", self.num_leaves)?;
        write_def(f, &self.root, None, 1)
    }
}

fn write_def(
    f: &mut fmt::Formatter<'_>,
    def: &NodeDef,
    key: Option<&Key>,
    depth: usize,
) -> fmt::Result {
    let indent = "  ".repeat(depth);
    let label = key.map(|k| format!("{k}: ")).unwrap_or_default();
    match def {
        NodeDef::Node {
            kind,
            index,
            attributes,
            ..
        } => {
            writeln!(f, "{indent}{label}{}[{index}]", kind.type_name())?;
            for (k, child) in attributes {
                write_def(f, child, Some(k), depth + 1)?;
            }
            Ok(())
        }
        NodeDef::Variable(v) => writeln!(f, "{indent}{label}{}[{}]", v.ty, v.index),
        NodeDef::Ref(index) => writeln!(f, "{indent}{label}Ref[{index}]"),
        NodeDef::Tuple(items) => {
            writeln!(f, "{indent}{label}tuple")?;
            for (i, child) in items.iter().enumerate() {
                write_def(f, child, Some(&Key::from(i)), depth + 1)?;
            }
            Ok(())
        }
        NodeDef::Leaf => writeln!(f, "{indent}{label}Array"),
        NodeDef::Static(s) => writeln!(f, "{indent}{label}{s}"),
    }
}

/// The pre-order, sorted-key traversal behind `split`, `state` and `graphdef` (Flax's
/// `flatten`): graph nodes and Variables get indexes from one shared counter, repeats become
/// [`NodeDef::Ref`], and leaves are collected with their paths.
#[derive(Default)]
pub(crate) struct Flattener<'a> {
    seen: HashMap<NodeId, usize>,
    leaves: Vec<(Path, Leaf)>,
    /// Every node and Variable by index (for writing results back into them).
    by_index: Vec<Value>,
    /// Inside a transform: the outer index of each object that came in as an input.
    outer_indexes: Option<&'a HashMap<NodeId, usize>>,
}

/// The result of flattening: the structure, the leaves in traversal order, and every node
/// and Variable by its index.
pub(crate) struct Flattened {
    pub(crate) def: GraphDef,
    pub(crate) leaves: Vec<(Path, Leaf)>,
    pub(crate) by_index: Vec<Value>,
}

impl<'a> Flattener<'a> {
    /// Flattens one root, returning its GraphDef and its leaves in traversal order.
    pub(crate) fn flatten(root: &Value) -> (GraphDef, Vec<(Path, Leaf)>) {
        let f = Flattener::flatten_with(root, None);
        (f.def, f.leaves)
    }

    /// Flattens one root, recording outer indexes for the objects in `outer_indexes`.
    pub(crate) fn flatten_with(
        root: &Value,
        outer_indexes: Option<&'a HashMap<NodeId, usize>>,
    ) -> Flattened {
        let mut flattener = Flattener {
            outer_indexes,
            ..Flattener::default()
        };
        let def = flattener.visit(root, &mut Path::root());
        let num_leaves = flattener.leaves.len();
        Flattened {
            def: GraphDef {
                root: def,
                num_leaves,
            },
            leaves: flattener.leaves,
            by_index: flattener.by_index,
        }
    }

    fn next_index(&mut self, id: NodeId, value: Value) -> (usize, Option<usize>) {
        let index = self.seen.len();
        self.seen.insert(id, index);
        self.by_index.push(value);
        let outer = self.outer_indexes.and_then(|m| m.get(&id).copied());
        (index, outer)
    }

    fn visit(&mut self, value: &Value, path: &mut Path) -> NodeDef {
        match value {
            Value::Static(s) => NodeDef::Static(s.clone()),
            Value::Array(t) => {
                self.leaves.push((path.clone(), Leaf::Array(t.clone())));
                NodeDef::Leaf
            }
            Value::Variable(v) => self.visit_variable(v, path),
            Value::Object(_) | Value::List(_) | Value::Dict(_) => self.visit_node(value, path),
            Value::Tuple(items) => NodeDef::Tuple(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        path.push(i);
                        let def = self.visit(item, path);
                        path.pop();
                        def
                    })
                    .collect(),
            ),
        }
    }

    fn visit_variable(&mut self, v: &Variable, path: &Path) -> NodeDef {
        if let Some(&index) = self.seen.get(&v.id()) {
            return NodeDef::Ref(index);
        }
        let (index, outer_index) = self.next_index(v.id(), Value::Variable(v.clone()));
        self.leaves.push((path.clone(), Leaf::Variable(v.clone())));
        NodeDef::Variable(VariableDef {
            ty: v.variable_type(),
            index,
            outer_index,
            metadata: v.metadata(),
        })
    }

    fn visit_node(&mut self, value: &Value, path: &mut Path) -> NodeDef {
        let Some(node) = node_of(value) else {
            return NodeDef::Static(Static::None);
        };
        if let Some(&index) = self.seen.get(&node.id()) {
            return NodeDef::Ref(index);
        }
        let (index, outer_index) = self.next_index(node.id(), value.clone());
        let attributes = node
            .sorted_children()
            .into_iter()
            .map(|(key, child)| {
                path.push(key.clone());
                let def = self.visit(&child, path);
                path.pop();
                (key, def)
            })
            .collect();
        NodeDef::Node {
            kind: node.kind().clone(),
            index,
            outer_index,
            attributes,
        }
    }
}

/// The node behind an object, list or dict value.
pub(crate) fn node_of(value: &Value) -> Option<&Node> {
    match value {
        Value::Object(o) => Some(&o.0),
        Value::List(l) => Some(&l.0),
        Value::Dict(d) => Some(&d.0),
        _ => None,
    }
}
