//! Rebuilding a graph from a `GraphDef` and leaves (Flax's `unflatten`).

use std::collections::{BTreeMap, HashMap};

use indexmap::IndexMap;

use super::graphdef::{GraphDef, NodeDef, node_of};
use super::node::{Dict, List, Node, NodeKind, Object};
use super::node_id::NodeId;
use super::path::Path;
use super::state::Leaf;
use super::value::Value;
use super::variable::Variable;
use crate::error::{Error, Result};

/// What to do with Variable leaves when rebuilding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VariableReuse {
    /// Put the State's own Variable objects into the new graph (Flax's `merge`, copy=False).
    Share,
    /// Put new Variables with the same type, value and metadata (Flax's `clone`).
    Copy,
}

/// Rebuilds the graph described by `def` from `leaves`.
///
/// Every path is validated before anything is built: paths the GraphDef needs but the leaves
/// lack, and paths the leaves have but the GraphDef does not, are all reported in one
/// [`Error::MergeMismatch`]. A failed merge creates nothing.
pub(crate) fn unflatten(
    def: &GraphDef,
    leaves: BTreeMap<Path, Leaf>,
    reuse: VariableReuse,
) -> Result<Value> {
    unflatten_with(def, leaves, reuse, None).map(|u| u.value)
}

/// The result of [`unflatten_with`]: the rebuilt value, and the index each rebuilt node and
/// Variable had in the GraphDef.
pub(crate) struct Unflattened {
    pub(crate) value: Value,
    pub(crate) index_of: HashMap<NodeId, usize>,
}

/// [`unflatten`], reusing existing objects: a node or Variable whose definition has
/// `outer_index = Some(i)` is `outer[i]`, updated in place (children replaced; value and
/// metadata overwritten) instead of a new object. This is a transform's write-back step.
pub(crate) fn unflatten_with(
    def: &GraphDef,
    mut leaves: BTreeMap<Path, Leaf>,
    reuse: VariableReuse,
    outer: Option<&[Value]>,
) -> Result<Unflattened> {
    let needed = def.leaf_paths();
    let missing: Vec<Path> = needed
        .iter()
        .filter(|p| !leaves.contains_key(p))
        .cloned()
        .collect();
    if !missing.is_empty() || leaves.len() != needed.len() {
        let needed_set: std::collections::BTreeSet<&Path> = needed.iter().collect();
        let unexpected = leaves
            .keys()
            .filter(|p| !needed_set.contains(p))
            .cloned()
            .collect();
        return Err(Error::MergeMismatch {
            missing,
            unexpected,
        });
    }
    let mut builder = Builder {
        leaves: &mut leaves,
        by_index: HashMap::new(),
        index_of: HashMap::new(),
        reuse,
        outer,
    };
    let value = builder.build(&def.root, &mut Path::root())?;
    Ok(Unflattened {
        value,
        index_of: builder.index_of,
    })
}

struct Builder<'a> {
    leaves: &'a mut BTreeMap<Path, Leaf>,
    by_index: HashMap<usize, Value>,
    index_of: HashMap<NodeId, usize>,
    reuse: VariableReuse,
    outer: Option<&'a [Value]>,
}

impl Builder<'_> {
    fn take_leaf(&mut self, path: &Path) -> Result<Leaf> {
        // Validated up front; the error only guards against an inconsistent GraphDef.
        self.leaves
            .remove(path)
            .ok_or_else(|| Error::MergeMismatch {
                missing: vec![path.clone()],
                unexpected: Vec::new(),
            })
    }

    fn build(&mut self, def: &NodeDef, path: &mut Path) -> Result<Value> {
        Ok(match def {
            NodeDef::Static(s) => Value::Static(s.clone()),
            NodeDef::Leaf => Value::Array(self.take_leaf(path)?.value()),
            NodeDef::Ref(index) => self.by_index.get(index).cloned().ok_or_else(|| {
                Error::StructureMismatch(format!(
                    "GraphDef refers to node index {index} at {path} before defining it"
                ))
            })?,
            NodeDef::Variable(vd) => {
                let outer = vd
                    .outer_index
                    .and_then(|i| self.outer.and_then(|o| o.get(i)))
                    .and_then(Value::as_variable)
                    .filter(|v| v.variable_type() == vd.ty)
                    .cloned();
                let leaf = self.take_leaf(path)?;
                let variable = match (outer, leaf, self.reuse) {
                    (Some(target), leaf, _) => {
                        let metadata: IndexMap<_, _> = vd.metadata.iter().cloned().collect();
                        target.overwrite(leaf.value(), metadata);
                        target
                    }
                    (None, Leaf::Variable(v), VariableReuse::Share) => v,
                    (None, Leaf::Variable(v), VariableReuse::Copy) => v.copy(),
                    (None, Leaf::Array(t), _) => {
                        let metadata: IndexMap<_, _> = vd.metadata.iter().cloned().collect();
                        Variable::with_parts(vd.ty, t, metadata)
                    }
                };
                self.index_of.insert(variable.id(), vd.index);
                let value = Value::Variable(variable);
                self.by_index.insert(vd.index, value.clone());
                value
            }
            NodeDef::Tuple(items) => {
                let mut built = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    path.push(i);
                    built.push(self.build(item, path)?);
                    path.pop();
                }
                Value::Tuple(built)
            }
            NodeDef::Node {
                kind,
                index,
                outer_index,
                attributes,
            } => {
                let outer = outer_index
                    .and_then(|i| self.outer.and_then(|o| o.get(i)))
                    .and_then(node_of)
                    .filter(|n| n.kind() == kind)
                    .cloned();
                // Register the (empty or reused) node before its children so cycles resolve.
                let node = outer.unwrap_or_else(|| Node::new(kind.clone()));
                self.index_of.insert(node.id(), *index);
                let value = wrap_node(node.clone());
                self.by_index.insert(*index, value.clone());
                let mut children = Vec::with_capacity(attributes.len());
                for (key, child) in attributes {
                    path.push(key.clone());
                    children.push((key.clone(), self.build(child, path)?));
                    path.pop();
                }
                node.replace_children(children)?;
                value
            }
        })
    }
}

/// The typed handle for a node of a given kind.
pub(crate) fn wrap_node(node: Node) -> Value {
    match node.kind() {
        NodeKind::Object(_) => Value::Object(Object(node)),
        NodeKind::List => Value::List(List(node)),
        NodeKind::Dict => Value::Dict(Dict(node)),
    }
}
