//! Rebuilding a graph from a `GraphDef` and leaves (Flax's `unflatten`).

use crate::graph::IdMap;
use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use super::graphdef::{GraphDef, NodeDef, Step, VariableDef, node_of};
use super::node::{Dict, List, Node, NodeKind, Object};
use super::path::{Key, Path, PathMatcher};
use super::state::{Leaf, State};
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

/// Rebuilds the graph described by `def` from `leaves`, given in sorted path order (the
/// order of a [`State`](super::State) and of the GraphDef's traversal).
///
/// Every path is validated before anything is built: paths the GraphDef needs but the leaves
/// lack, and paths the leaves have but the GraphDef does not, are all reported in one
/// [`Error::MergeMismatch`]. A failed merge creates nothing.
pub(crate) fn unflatten(
    def: &GraphDef,
    leaves: Vec<(Path, Leaf)>,
    reuse: VariableReuse,
) -> Result<Value> {
    unflatten_with(def, leaves, reuse, None).map(|u| u.value)
}

/// The result of [`unflatten_with`]: the rebuilt value, and the index each rebuilt node and
/// Variable had in the GraphDef.
pub(crate) struct Unflattened {
    pub(crate) value: Value,
    pub(crate) index_of: IdMap<usize>,
}

/// [`unflatten`], reusing existing objects: a node or Variable whose definition has
/// `outer_index = Some(i)` is `outer[i]`, updated in place (children replaced; value and
/// metadata overwritten) instead of a new object. This is a transform's write-back step.
///
/// The leaves are matched to the GraphDef's leaf paths by position (both are in sorted
/// order), with a [`PathMatcher`], so the check is linear in the total size of the graph
/// even when the paths are long; the build is one iterative pass over the entries.
pub(crate) fn unflatten_with(
    def: &GraphDef,
    leaves: Vec<(Path, Leaf)>,
    reuse: VariableReuse,
    outer: Option<&[Value]>,
) -> Result<Unflattened> {
    let needed = def.leaf_paths();
    let mut matcher = PathMatcher::default();
    let matches = needed.len() == leaves.len()
        && needed
            .iter()
            .zip(&leaves)
            .all(|(n, (p, _))| matcher.same(n, p));
    if !matches {
        return Err(mismatch(needed, &leaves));
    }
    build(
        def,
        leaves.into_iter().map(|(_, l)| l).collect(),
        reuse,
        outer,
    )
}

/// [`unflatten`] from several States that together must provide each leaf path exactly
/// once (`merge(def, [s1, s2, ...])`). The States are matched to the GraphDef's leaf paths
/// by position, without merging them into one map: linear in the size of the graph.
///
/// # Errors
/// [`Error::MergeDuplicate`] for the first path (in the States' order) provided twice;
/// otherwise [`Error::MergeMismatch`] as for [`unflatten`].
pub(crate) fn unflatten_states(
    def: &GraphDef,
    states: &[&State],
    reuse: VariableReuse,
) -> Result<Value> {
    let needed = def.leaf_paths();
    let mut heads: Vec<_> = states.iter().map(|s| s.iter().peekable()).collect();
    let mut matchers: Vec<PathMatcher> = states.iter().map(|_| PathMatcher::default()).collect();
    let mut leaves = Vec::with_capacity(needed.len());
    let mut complete = true;
    for path in needed {
        let mut found = None;
        let mut count = 0;
        for (head, matcher) in heads.iter_mut().zip(&mut matchers) {
            if let Some((p, _)) = head.peek()
                && matcher.same(path, p)
            {
                count += 1;
                found = head.next().map(|(_, leaf)| leaf.clone());
            }
        }
        match (count, found) {
            (1, Some(leaf)) => leaves.push(leaf),
            _ => {
                complete = false;
                break;
            }
        }
    }
    if !complete || heads.iter_mut().any(|h| h.peek().is_some()) {
        return Err(states_mismatch(needed, states));
    }
    build(def, leaves, reuse, None).map(|u| u.value)
}

/// The error of a failed [`unflatten_states`], as reported by a merge of the States into
/// one map: the first duplicate path, else every missing and unexpected path.
fn states_mismatch(needed: &[Path], states: &[&State]) -> Error {
    let mut all: Vec<(Path, Leaf)> = Vec::new();
    let mut given: HashSet<&Path> = HashSet::new();
    for state in states {
        for (path, leaf) in *state {
            if !given.insert(path) {
                return Error::MergeDuplicate { path: path.clone() };
            }
            all.push((path.clone(), leaf.clone()));
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    mismatch(needed, &all)
}

/// Builds from leaves already matched to the GraphDef's leaf entries, in order.
fn build(
    def: &GraphDef,
    leaves: Vec<Leaf>,
    reuse: VariableReuse,
    outer: Option<&[Value]>,
) -> Result<Unflattened> {
    let mut builder = Builder {
        leaves: leaves.into_iter(),
        by_index: HashMap::new(),
        index_of: IdMap::default(),
        reuse,
        outer,
    };
    let value = builder.build(def)?;
    Ok(Unflattened {
        value,
        index_of: builder.index_of,
    })
}

/// The [`Error::MergeMismatch`] listing every missing and every unexpected path, in order.
fn mismatch(needed: &[Path], leaves: &[(Path, Leaf)]) -> Error {
    let given: HashSet<&Path> = leaves.iter().map(|(p, _)| p).collect();
    let needed_set: HashSet<&Path> = needed.iter().collect();
    Error::MergeMismatch {
        missing: needed
            .iter()
            .filter(|p| !given.contains(p))
            .cloned()
            .collect(),
        unexpected: leaves
            .iter()
            .map(|(p, _)| p)
            .filter(|p| !needed_set.contains(p))
            .cloned()
            .collect(),
    }
}

struct Builder<'a> {
    leaves: std::vec::IntoIter<Leaf>,
    by_index: HashMap<usize, Value>,
    index_of: IdMap<usize>,
    reuse: VariableReuse,
    outer: Option<&'a [Value]>,
}

/// A node or tuple whose children are being built.
struct Frame {
    key: Option<Key>,
    remaining: usize,
    children: Vec<(Key, Value)>,
    /// What is being built.
    building: Building,
}

/// What a [`Frame`] builds.
enum Building {
    /// A graph node (reused or new) and its value.
    Node(Node, Value),
    /// A tuple.
    Tuple,
    /// A plain dict.
    Map,
}

impl Frame {
    fn finish(self) -> Result<(Option<Key>, Value)> {
        let value = match self.building {
            Building::Node(node, value) => {
                node.replace_children(self.children)?;
                value
            }
            Building::Tuple => Value::Tuple(self.children.into_iter().map(|(_, v)| v).collect()),
            Building::Map => Value::Map(self.children.into_iter().collect()),
        };
        Ok((self.key, value))
    }
}

impl Builder<'_> {
    fn take_leaf(&mut self, path: impl FnOnce() -> Path) -> Result<Leaf> {
        // Validated up front; the error only guards against an inconsistent GraphDef.
        self.leaves.next().ok_or_else(|| Error::MergeMismatch {
            missing: vec![path()],
            unexpected: Vec::new(),
        })
    }

    /// One pass over the entries with an explicit stack of the nodes and tuples being
    /// built. A node is registered (empty, or the reused outer node) before its children,
    /// so references and cycles resolve; its children are set when the last one is built.
    fn build(&mut self, def: &GraphDef) -> Result<Value> {
        let mut stack: Vec<Frame> = Vec::new();
        // Paths are only for errors: built from the open frames' keys when one happens.
        for step in def.walk_structure() {
            let Step::Enter { entry, .. } = step else {
                continue;
            };
            let key = entry.key.clone();
            let path = || {
                let keys = (stack.iter().filter_map(|f| f.key.clone())).chain(key.clone());
                Path::from(keys.collect::<Vec<_>>())
            };
            let mut done = match &entry.def {
                NodeDef::Static(s) => (key, Value::Static(s.clone())),
                NodeDef::Leaf => (key.clone(), Value::Array(self.take_leaf(path)?.value())),
                NodeDef::Ref(index) => {
                    let value = self.by_index.get(index).cloned().ok_or_else(|| {
                        Error::StructureMismatch(format!(
                            "GraphDef refers to node index {index} at {} before defining it",
                            path()
                        ))
                    })?;
                    (key, value)
                }
                NodeDef::Variable(vd) => (key.clone(), self.variable(vd, path)?),
                NodeDef::Tuple { len } | NodeDef::Map { len } => {
                    let frame = Frame {
                        key,
                        remaining: *len,
                        children: Vec::with_capacity(*len),
                        building: match &entry.def {
                            NodeDef::Map { .. } => Building::Map,
                            _ => Building::Tuple,
                        },
                    };
                    if *len > 0 {
                        stack.push(frame);
                        continue;
                    }
                    frame.finish()?
                }
                NodeDef::Node {
                    kind,
                    index,
                    outer_index,
                    len,
                } => {
                    let outer = outer_index
                        .and_then(|i| self.outer.and_then(|o| o.get(i)))
                        .and_then(node_of)
                        .filter(|n| n.kind() == kind)
                        .cloned();
                    let node = outer.unwrap_or_else(|| Node::new(kind.clone()));
                    self.index_of.insert(node.id(), *index);
                    let value = wrap_node(node.clone());
                    self.by_index.insert(*index, value.clone());
                    let frame = Frame {
                        key,
                        remaining: *len,
                        children: Vec::with_capacity(*len),
                        building: Building::Node(node, value),
                    };
                    if *len > 0 {
                        stack.push(frame);
                        continue;
                    }
                    frame.finish()?
                }
            };
            // Attach the finished value to its parent, finishing every parent it completes.
            loop {
                let Some(parent) = stack.last_mut() else {
                    return Ok(done.1);
                };
                let (key, value) = done;
                let key = key.ok_or_else(|| {
                    Error::StructureMismatch("GraphDef entry without a key".to_owned())
                })?;
                parent.children.push((key, value));
                parent.remaining -= 1;
                if parent.remaining > 0 {
                    break;
                }
                match stack.pop() {
                    Some(frame) => done = frame.finish()?,
                    None => break,
                }
            }
        }
        Err(Error::StructureMismatch(
            "GraphDef ended before its root was complete".to_owned(),
        ))
    }

    fn variable(&mut self, vd: &VariableDef, path: impl FnOnce() -> Path) -> Result<Value> {
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
        Ok(value)
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
