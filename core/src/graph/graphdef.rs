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
pub(crate) struct Flattener {
    seen: HashMap<NodeId, usize>,
    leaves: Vec<(Path, Leaf)>,
}

impl Flattener {
    /// Flattens one root, returning its GraphDef and its leaves in traversal order.
    pub(crate) fn flatten(root: &Value) -> (GraphDef, Vec<(Path, Leaf)>) {
        let mut flattener = Flattener::default();
        let def = flattener.visit(root, &mut Path::root());
        let num_leaves = flattener.leaves.len();
        (
            GraphDef {
                root: def,
                num_leaves,
            },
            flattener.leaves,
        )
    }

    fn next_index(&mut self, id: NodeId) -> usize {
        let index = self.seen.len();
        self.seen.insert(id, index);
        index
    }

    fn visit(&mut self, value: &Value, path: &mut Path) -> NodeDef {
        match value {
            Value::Static(s) => NodeDef::Static(s.clone()),
            Value::Array(t) => {
                self.leaves.push((path.clone(), Leaf::Array(t.clone())));
                NodeDef::Leaf
            }
            Value::Variable(v) => self.visit_variable(v, path),
            Value::Object(o) => self.visit_node(&o.0, path),
            Value::List(l) => self.visit_node(&l.0, path),
            Value::Dict(d) => self.visit_node(&d.0, path),
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
        let index = self.next_index(v.id());
        self.leaves.push((path.clone(), Leaf::Variable(v.clone())));
        NodeDef::Variable(VariableDef {
            ty: v.variable_type(),
            index,
            outer_index: None,
            metadata: v.metadata(),
        })
    }

    fn visit_node(&mut self, node: &Node, path: &mut Path) -> NodeDef {
        if let Some(&index) = self.seen.get(&node.id()) {
            return NodeDef::Ref(index);
        }
        let index = self.next_index(node.id());
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
            outer_index: None,
            attributes,
        }
    }
}
