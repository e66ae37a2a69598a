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

use std::collections::HashMap;
use std::fmt;

use indexmap::IndexMap;

use super::prefix::Prefix;
use crate::error::{AliasConflict, Error, Result};
use crate::graph::graphdef::{Flattener, node_of};
use crate::graph::merge::{VariableReuse, unflatten_with};
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
    /// Human-readable location (`args[0].kernel`), for error messages.
    pub location: String,
    /// The array.
    pub value: Tensor,
    /// What the transform does with it.
    pub prefix: L,
    /// The Variable holding it, if any (for metadata such as `sharding`).
    pub variable: Option<Variable>,
}

impl<L> Lowered<L> {
    /// The arrays, in a stable order (the traversal order of the values).
    pub fn leaves(&self) -> &[LoweredLeaf<L>] {
        &self.leaves
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
    for (path, leaf) in flat.leaves {
        let Some(position) = positions.iter().find(|p| path.starts_with(&p.path)) else {
            return Err(Error::InvalidPrefix(format!(
                "no prefix covers the value at {path}"
            )));
        };
        let local = path.strip_prefix_len(position.path.len());
        let prefix = position.prefix.resolve(&local, &leaf)?;
        leaves.push(LoweredLeaf {
            location: format!("{}{}", position.location, local_location(&local)),
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
/// recording every Variable's prefix at every occurrence (a node shared within one argument
/// is listed under each path; cycles are cut at the first repeat on the current path).
fn check_positions<L: Clone + PartialEq + fmt::Display>(
    positions: &[Position<'_, L>],
) -> Result<()> {
    let mut walk = AliasWalk {
        level: current_level(),
        seen: IndexMap::new(),
        expansions: HashMap::new(),
        ancestors: Vec::new(),
    };
    for position in positions {
        walk.expansions.clear();
        walk.visit(
            position,
            &position.value,
            Path::root(),
            position.location.clone(),
        )?;
    }
    let conflicts: Vec<AliasConflict> = walk
        .seen
        .into_values()
        .filter(|(_, occurrences)| occurrences.iter().any(|(_, p)| *p != occurrences[0].1))
        .map(|(type_name, occurrences)| AliasConflict {
            type_name,
            occurrences: occurrences
                .into_iter()
                .map(|(path, p)| (path, p.to_string()))
                .collect(),
        })
        .collect();
    if conflicts.is_empty() {
        Ok(())
    } else {
        Err(Error::InconsistentAliasing { conflicts })
    }
}

struct AliasWalk<L> {
    level: u32,
    /// Variable → (type name, every (location, prefix) it was reached with).
    seen: IndexMap<NodeId, (String, Vec<(String, L)>)>,
    expansions: HashMap<NodeId, usize>,
    ancestors: Vec<NodeId>,
}

impl<L: Clone> AliasWalk<L> {
    fn visit(
        &mut self,
        position: &Position<'_, L>,
        value: &Value,
        local: Path,
        location: String,
    ) -> Result<()> {
        match value {
            Value::Variable(v) => {
                check_level(v.type_name(), v.trace_level(), self.level, &location)?;
                let prefix = position
                    .prefix
                    .resolve(&local, &Leaf::Variable(v.clone()))?;
                let entry = self
                    .seen
                    .entry(v.id())
                    .or_insert_with(|| (v.type_name().to_owned(), Vec::new()));
                if !entry.1.iter().any(|(l, _)| *l == location) {
                    entry.1.push((location, prefix));
                }
            }
            Value::Object(_) | Value::List(_) | Value::Dict(_) => {
                let Some(node) = node_of(value) else {
                    return Ok(());
                };
                check_level(
                    node.kind().type_name(),
                    node.trace_level(),
                    self.level,
                    &location,
                )?;
                let count = self.expansions.entry(node.id()).or_insert(0);
                if self.ancestors.contains(&node.id()) || *count >= MAX_EXPANSIONS_PER_NODE {
                    return Ok(());
                }
                *count += 1;
                self.ancestors.push(node.id());
                for (key, child) in node.sorted_children() {
                    let child_location = match (node.kind(), &key) {
                        (NodeKind::Object(_), Key::Str(s)) => format!("{location}.{s}"),
                        (_, k) => format!("{location}[{k}]"),
                    };
                    self.visit(position, &child, local.child(key), child_location)?;
                }
                self.ancestors.pop();
            }
            Value::Tuple(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.visit(position, item, local.child(i), format!("{location}[{i}]"))?;
                }
            }
            Value::Array(_) | Value::Static(_) => {}
        }
        Ok(())
    }
}

fn check_level(type_name: &str, owner: u32, current: u32, location: &str) -> Result<()> {
    if owner == current {
        Ok(())
    } else {
        Err(Error::ExtractFromOtherTrace {
            type_name: type_name.to_owned(),
            path: location.to_owned(),
            object_level: owner,
            current_level: current,
        })
    }
}
