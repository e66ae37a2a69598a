//! Crossing a transform boundary: Flax's four-step recipe (SEMANTICS.md §3).
//!
//! ```text
//!   (2) raise (inner merge)  ────────►  lower_outputs (3, inner split)    inside the trace
//!        ▲                                   │
//!   (1) lower_args (outer split) ─────►  write_back (4, outer merge)      outside
//! ```
//!
//! 1. [`lower_args`] splits every input graph node with one shared index (so aliases across
//!    arguments are described once), checks consistent aliasing and the trace level, and
//!    gives every array leaf its prefix.
//! 2. [`raise`] rebuilds the arguments from (possibly transformed) leaf values as *new*
//!    objects at the current (inner) trace level, remembering each one's outer index.
//! 3. [`lower_outputs`] splits all input graph nodes again, together with the outputs,
//!    tagging objects that came in with their outer index; aliasing is checked again across
//!    inputs and outputs.
//! 4. [`write_back`] rebuilds at the outer level, *reusing* the caller's objects for every
//!    tagged node (children replaced, Variables updated in place) and creating the rest.
//!
//! Nothing outside is mutated before step 4, and step 4 validates before it writes, so a
//! transform that fails leaves the caller's objects exactly as they were.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use indexmap::IndexMap;

use super::prefix::Prefix;
use crate::error::{AliasConflict, Error, Result};
use crate::graph::graphdef::{Flattener, node_of};
use crate::graph::merge::{VariableReuse, unflatten_with};
use crate::graph::path::Rebaser;
use crate::graph::{GraphDef, Key, Leaf, NodeDef, NodeId, NodeKind, Path, Static, Value, Variable};
use crate::tensor::Tensor;
use crate::trace::current_level;

/// The flat, transform-ready form of some values: their structure, and every array that
/// crosses the boundary with the prefix it got.
pub struct Lowered<L> {
    def: GraphDef,
    leaves: Vec<LoweredLeaf<L>>,
    by_index: Vec<Value>,
    roots: usize,
}

/// One array crossing a transform boundary.
#[derive(Clone, Debug)]
pub struct LoweredLeaf<L> {
    /// Where it sits: the first key is the root (argument) position.
    pub path: Path,
    /// The location of the prefix position it falls under (`args[0]`).
    base: Arc<str>,
    /// Its path below that position.
    local: Path,
    /// The array.
    pub value: Tensor,
    /// What the transform does with it.
    pub prefix: L,
    /// The Variable holding it, if any (for metadata such as `sharding`).
    pub variable: Option<Variable>,
}

impl<L> LoweredLeaf<L> {
    /// Human-readable location (`args[0].kernel`), for error messages. Built on demand: it
    /// is as long as the leaf's path.
    pub fn location(&self) -> String {
        format!("{}{}", self.base, local_location(&self.local))
    }
}

impl<L> Lowered<L> {
    /// The arrays, in a stable order (the traversal order of the values).
    pub fn leaves(&self) -> &[LoweredLeaf<L>] {
        &self.leaves
    }

    /// Every graph node and Variable of the lowered values, once each, in index order.
    pub(crate) fn nodes(&self) -> &[Value] {
        &self.by_index
    }

    /// How many roots were lowered (the arguments, plus the output for lowered outputs).
    pub fn num_roots(&self) -> usize {
        self.roots
    }

    /// The structure (includes static values, Variable types and metadata, sharing).
    pub fn graphdef(&self) -> &GraphDef {
        &self.def
    }

    /// Edits the recorded metadata of every Variable (once per Variable, even if shared),
    /// e.g. to move a `sharding` axis name as a batch axis comes or goes. Raising uses the
    /// edited metadata for the Variables it creates; writing back copies it into the
    /// caller's Variables.
    ///
    /// # Errors
    /// Whatever `f` returns.
    pub fn edit_variable_metadata(
        &mut self,
        mut f: impl FnMut(&LoweredLeaf<L>, &mut Vec<(String, Static)>) -> Result<()>,
    ) -> Result<()> {
        // The leaves are in the traversal order of the GraphDef: the k-th leaf entry is
        // `self.leaves[k]`.
        let mut leaves = self.leaves.iter();
        for entry in &mut self.def.entries {
            match &mut entry.def {
                NodeDef::Variable(vd) => {
                    if let Some(leaf) = leaves.next() {
                        f(leaf, &mut vd.metadata)?;
                    }
                }
                NodeDef::Leaf => {
                    leaves.next();
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The arguments rebuilt inside a transform, and where each rebuilt object came from.
pub struct Raised {
    /// The arguments, as new objects at the current trace level.
    pub args: Vec<Value>,
    inner_to_outer: HashMap<NodeId, usize>,
}

/// Step 1: lowers a transform's arguments. `labels` name the roots in errors (`args[0]`).
///
/// # Errors
/// [`Error::InvalidPrefix`] when the prefix does not fit the arguments;
/// [`Error::InconsistentAliasing`] when a Variable is reached with different prefixes;
/// [`Error::NoAxisFound`] when a `StateAxes` filter set misses a Variable;
/// [`Error::ExtractFromOtherTrace`] when an argument belongs to another trace level.
pub fn lower_args<L: Clone + PartialEq + fmt::Display>(
    args: &[Value],
    prefix: &Prefix<L>,
) -> Result<Lowered<L>> {
    // The aliasing walk and the flatten see one consistent graph.
    let _consistent = crate::graph::sync::consistency(false);
    let prefixes = per_root(prefix, args.len(), "in_axes")?;
    let roots: Vec<Root<'_, L>> = args
        .iter()
        .zip(&prefixes)
        .enumerate()
        .map(|(i, (value, prefix))| Root {
            label: format!("args[{i}]"),
            value: value.clone(),
            prefix,
        })
        .collect();
    lower(&roots, None)
}

/// Step 2: rebuilds the arguments from `values` (one per leaf of `lowered`, in order) as new
/// objects at the current trace level.
///
/// # Errors
/// [`Error::Shape`] when the number of values does not match the number of leaves.
pub fn raise<L>(lowered: &Lowered<L>, values: Vec<Tensor>) -> Result<Raised> {
    let built = rebuild(lowered, values, None)?;
    let args = match built.value {
        Value::Tuple(items) => items,
        other => vec![other],
    };
    Ok(Raised {
        args,
        inner_to_outer: built.index_of,
    })
}

/// Step 3: lowers the (possibly mutated) arguments together with the function's output.
/// The arguments keep the input prefix; the output gets `out_prefix`.
///
/// # Errors
/// As [`lower_args`], with aliasing checked across arguments and output together.
pub fn lower_outputs<L: Clone + PartialEq + fmt::Display>(
    raised: &Raised,
    in_prefix: &Prefix<L>,
    output: &Value,
    out_prefix: &Prefix<L>,
) -> Result<Lowered<L>> {
    let prefixes = per_root(in_prefix, raised.args.len(), "in_axes")?;
    let mut roots: Vec<Root<'_, L>> = raised
        .args
        .iter()
        .zip(&prefixes)
        .enumerate()
        .map(|(i, (value, prefix))| Root {
            label: format!("args[{i}]"),
            value: graph_nodes_only(value),
            prefix,
        })
        .collect();
    roots.push(Root {
        label: "output".to_owned(),
        value: output.clone(),
        prefix: out_prefix,
    });
    lower(&roots, Some(&raised.inner_to_outer))
}

/// Step 4: writes `values` (one per leaf of `outputs`, in order) back: objects that came in
/// as inputs are updated in place, the rest are created. Returns the output value.
///
/// # Errors
/// [`Error::Shape`] when the number of values does not match the number of leaves.
pub fn write_back<L>(
    inputs: &Lowered<L>,
    outputs: &Lowered<L>,
    values: Vec<Tensor>,
) -> Result<Value> {
    let _consistent = crate::graph::sync::consistency(true);
    let built = rebuild(outputs, values, Some(&inputs.by_index))?;
    match built.value {
        Value::Tuple(mut items) if items.len() == outputs.roots => Ok(items
            .pop()
            .unwrap_or(Value::Static(crate::graph::Static::None))),
        other => Ok(other),
    }
}

fn rebuild<L>(
    lowered: &Lowered<L>,
    values: Vec<Tensor>,
    outer: Option<&[Value]>,
) -> Result<crate::graph::merge::Unflattened> {
    if values.len() != lowered.leaves.len() {
        return Err(Error::shape(
            "transform",
            format!(
                "expected {} leaf values, got {}",
                lowered.leaves.len(),
                values.len()
            ),
        ));
    }
    let leaves: Vec<(Path, Leaf)> = lowered
        .leaves
        .iter()
        .zip(values)
        .map(|(leaf, value)| (leaf.path.clone(), Leaf::Array(value)))
        .collect();
    unflatten_with(&lowered.def, leaves, VariableReuse::Share, outer)
}

/// Splits a top-level prefix into one prefix per root.
fn per_root<L: Clone + fmt::Display>(
    prefix: &Prefix<L>,
    n: usize,
    name: &str,
) -> Result<Vec<Prefix<L>>> {
    match prefix {
        Prefix::Leaf(_) => Ok(vec![prefix.clone(); n]),
        Prefix::Tuple(items) if items.len() == n => Ok(items.clone()),
        Prefix::Tuple(items) => Err(Error::InvalidPrefix(format!(
            "{name} has {} entries but the function takes {n} arguments: {name}={prefix}",
            items.len()
        ))),
        Prefix::StateAxes(_) => Err(Error::InvalidPrefix(format!(
            "{name}={prefix} cannot be used for the whole argument list: StateAxes can only be used directly on graph nodes (objects, lists, dicts); give one entry per argument"
        ))),
    }
}

/// Arguments as written back: graph nodes stay, arrays and statics become `None` (they are
/// values, so there is nothing to write back into).
fn graph_nodes_only(value: &Value) -> Value {
    match value {
        Value::Object(_) | Value::List(_) | Value::Dict(_) | Value::Variable(_) => value.clone(),
        Value::Tuple(items) => Value::Tuple(items.iter().map(graph_nodes_only).collect()),
        Value::Array(_) | Value::Static(_) => Value::Static(crate::graph::Static::None),
    }
}

struct Root<'p, L> {
    label: String,
    value: Value,
    prefix: &'p Prefix<L>,
}

/// Where a prefix leaf or StateAxes applies: a subtree position.
struct Position<'p, L> {
    path: Path,
    location: String,
    value: Value,
    prefix: PrefixAt<'p, L>,
}

enum PrefixAt<'p, L> {
    Leaf(&'p L),
    StateAxes(&'p [(crate::graph::Filter, L)]),
}

impl<L: Clone> PrefixAt<'_, L> {
    /// The prefix of a leaf at `local` (its path below the position).
    fn resolve(&self, local: &Path, leaf: &Leaf) -> Result<L> {
        match self {
            PrefixAt::Leaf(l) => Ok((*l).clone()),
            PrefixAt::StateAxes(groups) => groups
                .iter()
                .find(|(f, _)| f.matches(local, leaf))
                .map(|(_, l)| l.clone())
                .ok_or_else(|| Error::NoAxisFound {
                    path: local.clone(),
                    variable: match leaf {
                        Leaf::Variable(v) => v.to_string(),
                        Leaf::Array(t) => t.repr(),
                    },
                }),
        }
    }
}

fn lower<L: Clone + PartialEq + fmt::Display>(
    roots: &[Root<'_, L>],
    outer_indexes: Option<&HashMap<NodeId, usize>>,
) -> Result<Lowered<L>> {
    let mut positions = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        collect_positions(
            &root.value,
            root.prefix,
            Path::root().child(i),
            root.label.clone(),
            &mut positions,
        )?;
    }
    check_positions(&positions)?;
    let tuple = Value::Tuple(roots.iter().map(|r| r.value.clone()).collect());
    let flat = Flattener::flatten_with(&tuple, outer_indexes);
    let mut leaves = Vec::with_capacity(flat.leaves.len());
    let mut rebasers: Vec<Rebaser> = positions
        .iter()
        .map(|p| Rebaser::new(p.path.len()))
        .collect();
    let bases: Vec<Arc<str>> = positions
        .iter()
        .map(|p| Arc::from(p.location.as_str()))
        .collect();
    for (path, leaf) in flat.leaves {
        let Some(i) = positions.iter().position(|p| path.starts_with(&p.path)) else {
            return Err(Error::InvalidPrefix(format!(
                "no prefix covers the value at {path}"
            )));
        };
        let local = rebasers[i].rebase(&path);
        let prefix = positions[i].prefix.resolve(&local, &leaf)?;
        leaves.push(LoweredLeaf {
            base: bases[i].clone(),
            local,
            path,
            value: leaf.value(),
            prefix,
            variable: leaf.as_variable().cloned(),
        });
    }
    Ok(Lowered {
        def: flat.def,
        leaves,
        by_index: flat.by_index,
        roots: roots.len(),
    })
}

fn local_location(local: &Path) -> String {
    local
        .keys()
        .iter()
        .map(|k| match k {
            Key::Str(s) => format!(".{s}"),
            Key::Int(i) => format!("[{i}]"),
        })
        .collect()
}

/// A location below a position, as a persistent list of its printed segments (`.kernel`,
/// `[0]`), so that extending it is O(1); [`render`] joins them.
type Location = Path;

fn render(base: &str, location: &Location) -> String {
    let mut out = base.to_owned();
    for segment in location.keys() {
        if let Key::Str(s) = segment {
            out.push_str(&s);
        }
    }
    out
}

fn collect_positions<'p, L: fmt::Display>(
    value: &Value,
    prefix: &'p Prefix<L>,
    path: Path,
    location: String,
    out: &mut Vec<Position<'p, L>>,
) -> Result<()> {
    match prefix {
        Prefix::Leaf(l) => out.push(Position {
            path,
            location,
            value: value.clone(),
            prefix: PrefixAt::Leaf(l),
        }),
        Prefix::StateAxes(groups) => match value {
            Value::Object(_) | Value::List(_) | Value::Dict(_) | Value::Variable(_) => {
                out.push(Position {
                    path,
                    location,
                    value: value.clone(),
                    prefix: PrefixAt::StateAxes(groups),
                })
            }
            other => {
                return Err(Error::InvalidPrefix(format!(
                    "Cannot use StateAxes on non-graph nodes, found {prefix} for {} at {location}; StateAxes can only be used directly on objects, lists, dicts or Variables, not as a prefix of a tuple of them",
                    other.kind_name()
                )));
            }
        },
        Prefix::Tuple(prefixes) => match value {
            Value::Tuple(items) if items.len() == prefixes.len() => {
                for (i, (item, p)) in items.iter().zip(prefixes).enumerate() {
                    collect_positions(item, p, path.child(i), format!("{location}[{i}]"), out)?;
                }
            }
            other => {
                return Err(Error::InvalidPrefix(format!(
                    "prefix {prefix} expects a tuple of {} values at {location}, found {}",
                    prefixes.len(),
                    other.kind_name()
                )));
            }
        },
    }
    Ok(())
}

/// How many times the aliasing walk expands one node under one position: enough to list
/// the occurrences people care about, bounded so that wide DAGs stay linear.
const MAX_EXPANSIONS_PER_NODE: usize = 8;

/// The aliasing and trace-level checks: walks the whole graph under every position,
/// recording the prefix of every Variable, and of every raw array held by an object, list or
/// dict, at every occurrence (a node shared within one argument is listed under each path;
/// cycles are cut at the first repeat on the current path). A raw array in a shared node is
/// state with one place, like a Variable: reached with two prefixes it would be mapped one
/// way and written back the other (Flax does not check these and silently stacks a
/// broadcast array).
fn check_positions<L: Clone + PartialEq + fmt::Display>(
    positions: &[Position<'_, L>],
) -> Result<()> {
    let mut walk = AliasWalk {
        level: current_level(),
        seen: IndexMap::new(),
        expansions: HashMap::new(),
        ancestors: HashSet::new(),
    };
    for position in positions {
        walk.expansions.clear();
        walk.visit(position)?;
    }
    let conflicts: Vec<AliasConflict> = walk
        .seen
        .into_values()
        .filter(|(_, occurrences)| occurrences.iter().any(|(_, _, p)| *p != occurrences[0].2))
        .map(|(type_name, occurrences)| AliasConflict {
            type_name,
            occurrences: occurrences
                .into_iter()
                .map(|(base, location, p)| (render(base, &location), p.to_string()))
                .collect(),
        })
        .collect();
    if conflicts.is_empty() {
        Ok(())
    } else {
        Err(Error::InconsistentAliasing { conflicts })
    }
}

/// An occurrence of a Variable: the position's location, the location below it, the prefix.
type Occurrence<'a, L> = (&'a str, Location, L);

/// A place that holds state: a Variable, or the array slot of a graph node (the node and the
/// path from it, through tuples, to the array).
#[derive(Clone, PartialEq, Eq, Hash)]
enum Slot {
    Variable(NodeId),
    Array(NodeId, Path),
}

struct AliasWalk<'a, L> {
    level: u32,
    /// Slot → (type name, every occurrence it was reached with).
    seen: IndexMap<Slot, (String, Vec<Occurrence<'a, L>>)>,
    expansions: HashMap<NodeId, usize>,
    /// The nodes on the current path (a cycle is cut at the first repeat).
    ancestors: HashSet<NodeId>,
}

/// A step of the aliasing walk: visit a value, or leave a node (its subtree is done).
enum Task {
    Visit {
        value: Value,
        local: Path,
        location: Location,
        /// The nearest graph node above, and the path from it (through tuples).
        holder: Option<(NodeId, Path)>,
    },
    Leave(NodeId),
}

impl<'a, L: Clone> AliasWalk<'a, L> {
    /// Walks the graph under one position with an explicit stack, in pre-order.
    fn visit(&mut self, position: &'a Position<'_, L>) -> Result<()> {
        let base = position.location.as_str();
        let mut stack = vec![Task::Visit {
            value: position.value.clone(),
            local: Path::root(),
            location: Location::root(),
            holder: None,
        }];
        while let Some(task) = stack.pop() {
            let (value, local, location, holder) = match task {
                Task::Leave(id) => {
                    self.ancestors.remove(&id);
                    continue;
                }
                Task::Visit {
                    value,
                    local,
                    location,
                    holder,
                } => (value, local, location, holder),
            };
            match &value {
                Value::Variable(v) => {
                    check_level(v.type_name(), v.trace_level(), self.level, || {
                        render(base, &location)
                    })?;
                    let prefix = position
                        .prefix
                        .resolve(&local, &Leaf::Variable(v.clone()))?;
                    self.record(
                        Slot::Variable(v.id()),
                        v.type_name(),
                        base,
                        location,
                        prefix,
                    );
                }
                Value::Array(t) => {
                    if let Some((node, path)) = holder {
                        let prefix = position.prefix.resolve(&local, &Leaf::Array(t.clone()))?;
                        self.record(Slot::Array(node, path), "Array", base, location, prefix);
                    }
                }
                Value::Object(_) | Value::List(_) | Value::Dict(_) => {
                    let Some(node) = node_of(&value) else {
                        continue;
                    };
                    check_level(
                        node.kind().type_name(),
                        node.trace_level(),
                        self.level,
                        || render(base, &location),
                    )?;
                    let count = self.expansions.entry(node.id()).or_insert(0);
                    if self.ancestors.contains(&node.id()) || *count >= MAX_EXPANSIONS_PER_NODE {
                        continue;
                    }
                    *count += 1;
                    self.ancestors.insert(node.id());
                    stack.push(Task::Leave(node.id()));
                    for (key, child) in node.sorted_children().into_iter().rev() {
                        let segment = match (node.kind(), &key) {
                            (NodeKind::Object(_), Key::Str(s)) => format!(".{s}"),
                            (_, k) => format!("[{k}]"),
                        };
                        // Only arrays (possibly inside tuples) need their slot.
                        let holder = matches!(child, Value::Array(_) | Value::Tuple(_))
                            .then(|| (node.id(), Path::root().child(key.clone())));
                        stack.push(Task::Visit {
                            value: child,
                            local: local.child(key),
                            location: location.child(segment),
                            holder,
                        });
                    }
                }
                Value::Tuple(items) => {
                    for (i, item) in items.iter().enumerate().rev() {
                        stack.push(Task::Visit {
                            value: item.clone(),
                            local: local.child(i),
                            location: location.child(format!("[{i}]")),
                            holder: holder.as_ref().map(|(n, p)| (*n, p.child(i))),
                        });
                    }
                }
                Value::Static(_) => {}
            }
        }
        Ok(())
    }

    /// Records one occurrence of a slot (once per location).
    fn record(
        &mut self,
        slot: Slot,
        type_name: &str,
        base: &'a str,
        location: Location,
        prefix: L,
    ) {
        let entry = self
            .seen
            .entry(slot)
            .or_insert_with(|| (type_name.to_owned(), Vec::new()));
        if !entry
            .1
            .iter()
            .any(|(b, l, _)| std::ptr::eq(*b, base) && *l == location)
        {
            entry.1.push((base, location, prefix));
        }
    }
}

fn check_level(
    type_name: &str,
    owner: u32,
    current: u32,
    location: impl FnOnce() -> String,
) -> Result<()> {
    if owner == current {
        Ok(())
    } else {
        Err(Error::ExtractFromOtherTrace {
            type_name: type_name.to_owned(),
            path: location(),
            object_level: owner,
            current_level: current,
        })
    }
}
