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

use crate::graph::{IdMap, IdSet};
use crate::program::AbstractValue;
use std::fmt::{self, Write as _};

use indexmap::IndexMap;

use super::prefix::Prefix;
use crate::error::{AliasConflict, Error, Result};
use crate::graph::graphdef::{Flattener, node_of};
use crate::graph::merge::{VariableReuse, unflatten_with};
use crate::graph::path::Rebaser;
use crate::graph::{GraphDef, Key, Leaf, NodeDef, NodeId, NodeKind, Path, Static, Value, Variable};
use crate::tensor::Tensor;
use crate::trace::current_level;

mod graph_updates;
pub use graph_updates::{check_outputs_are_new, write_back_values};

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
    /// The root it belongs to, naming it in [`LoweredLeaf::location`].
    root: RootLabel,
    /// Its path below the prefix position it falls under (a suffix of `path`).
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
        let position = self
            .path
            .ancestor(self.path.len().saturating_sub(self.local.len()));
        let mut out = position_location(self.root, position);
        push_keys(&mut out, &self.local.keys());
        out
    }
}

/// Appends keys in the location style: `.name` for attributes and entries, `[i]` for
/// positions.
fn push_keys(out: &mut String, keys: &[Key]) {
    for key in keys {
        let _ = match key {
            Key::Str(name) => write!(out, ".{name}"),
            Key::Int(i) => write!(out, "[{i}]"),
        };
    }
}

impl<L> Lowered<L> {
    /// The arrays, in a stable order (the traversal order of the values).
    pub fn leaves(&self) -> &[LoweredLeaf<L>] {
        &self.leaves
    }

    /// The abstract value (shape, dtype) of each leaf, in the order of [`Lowered::leaves`].
    pub fn avals(&self) -> Vec<AbstractValue> {
        self.leaves.iter().map(|l| l.value.aval()).collect()
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
    inner_to_outer: IdMap<usize>,
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
            label: RootLabel::Arg(i),
            value: value.clone(),
            prefix,
            checked: true,
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
    lower_outputs_with(raised, in_prefix, output, out_prefix, true)
}

/// [`lower_outputs`], where `check_output` says whether the output's prefix takes part in
/// the aliasing check: `grad`'s output has no prefix that means anything, so an input
/// Variable may come out as it is (in the auxiliary output).
///
/// # Errors
/// As [`lower_outputs`].
pub fn lower_outputs_with<L: Clone + PartialEq + fmt::Display>(
    raised: &Raised,
    in_prefix: &Prefix<L>,
    output: &Value,
    out_prefix: &Prefix<L>,
    check_output: bool,
) -> Result<Lowered<L>> {
    let prefixes = per_root(in_prefix, raised.args.len(), "in_axes")?;
    let mut roots: Vec<Root<'_, L>> = raised
        .args
        .iter()
        .zip(&prefixes)
        .enumerate()
        .map(|(i, (value, prefix))| Root {
            label: RootLabel::Arg(i),
            value: graph_nodes_only(value),
            prefix,
            checked: true,
        })
        .collect();
    roots.push(Root {
        label: RootLabel::Output,
        value: output.clone(),
        prefix: out_prefix,
        checked: check_output,
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
    build_output(outputs, values, &inputs.by_index)
}

/// Rebuilds `outputs` from `values`, reusing (and updating in place) the values of `outer`
/// that the outputs' definitions point at; returns the output root's value.
fn build_output<L>(outputs: &Lowered<L>, values: Vec<Tensor>, outer: &[Value]) -> Result<Value> {
    let _consistent = crate::graph::sync::consistency(true);
    let built = rebuild(outputs, values, Some(outer))?;
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
        Value::Map(entries) => Value::Map(
            (entries.iter())
                .map(|(k, v)| (k.clone(), graph_nodes_only(v)))
                .collect(),
        ),
        Value::Array(_) | Value::Static(_) => Value::Static(crate::graph::Static::None),
    }
}

/// How a root is named in error messages. Names are rendered only when an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RootLabel {
    /// `args[i]`.
    Arg(usize),
    /// `output`.
    Output,
}

impl fmt::Display for RootLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootLabel::Arg(i) => write!(f, "args[{i}]"),
            RootLabel::Output => f.write_str("output"),
        }
    }
}

/// The location of a prefix position (`args[1][0]`): its root's label, then `[i]` for each
/// tuple position on its path below the root.
fn position_location(root: RootLabel, path: &Path) -> String {
    let mut out = root.to_string();
    for key in path.keys().iter().skip(1) {
        let _ = write!(out, "[{key}]");
    }
    out
}

struct Root<'p, L> {
    label: RootLabel,
    value: Value,
    prefix: &'p Prefix<L>,
    /// Whether its prefixes take part in the aliasing check.
    checked: bool,
}

/// Where a prefix leaf or StateAxes applies: a subtree position.
struct Position<'p, L> {
    /// The root's index, then the tuple positions leading to it.
    path: Path,
    /// The root it is under.
    root: RootLabel,
    value: Value,
    prefix: PrefixAt<'p, L>,
}

impl<L> Position<'_, L> {
    /// Its location (`args[1][0]`), for error messages.
    fn location(&self) -> String {
        position_location(self.root, &self.path)
    }
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
    outer_indexes: Option<&IdMap<usize>>,
) -> Result<Lowered<L>> {
    let mut positions = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        collect_positions(
            &root.value,
            root.prefix,
            Path::root().child(i),
            root.label,
            &mut positions,
        )?;
    }
    let unchecked: Vec<RootLabel> = (roots.iter())
        .filter(|r| !r.checked)
        .map(|r| r.label)
        .collect();
    check_positions(&positions, &unchecked)?;
    let tuple = Value::Tuple(roots.iter().map(|r| r.value.clone()).collect());
    let flat = Flattener::flatten_with(&tuple, outer_indexes);
    let mut leaves = Vec::with_capacity(flat.leaves.len());
    let mut rebasers: Vec<Rebaser> = positions
        .iter()
        .map(|p| Rebaser::new(p.path.len()))
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
            root: positions[i].root,
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

fn collect_positions<'p, L: fmt::Display>(
    value: &Value,
    prefix: &'p Prefix<L>,
    path: Path,
    root: RootLabel,
    out: &mut Vec<Position<'p, L>>,
) -> Result<()> {
    match prefix {
        Prefix::Leaf(l) => out.push(Position {
            path,
            root,
            value: value.clone(),
            prefix: PrefixAt::Leaf(l),
        }),
        Prefix::StateAxes(groups) => match value {
            Value::Object(_)
            | Value::List(_)
            | Value::Dict(_)
            | Value::Variable(_)
            | Value::Map(_) => out.push(Position {
                path,
                root,
                value: value.clone(),
                prefix: PrefixAt::StateAxes(groups),
            }),
            other => {
                return Err(Error::InvalidPrefix(format!(
                    "Cannot use StateAxes on non-graph nodes, found {prefix} for {} at {}; StateAxes can only be used directly on objects, lists, dicts or Variables, not as a prefix of a tuple of them",
                    other.kind_name(),
                    position_location(root, &path)
                )));
            }
        },
        Prefix::Tuple(prefixes) => match value {
            Value::Tuple(items) if items.len() == prefixes.len() => {
                for (i, (item, p)) in items.iter().zip(prefixes).enumerate() {
                    collect_positions(item, p, path.child(i), root, out)?;
                }
            }
            other => {
                return Err(Error::InvalidPrefix(format!(
                    "prefix {prefix} expects a tuple of {} values at {}, found {}",
                    prefixes.len(),
                    position_location(root, &path),
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
/// broadcast array). Occurrences under the `unchecked` roots are not compared (their
/// trace levels still are).
fn check_positions<L: Clone + PartialEq + fmt::Display>(
    positions: &[Position<'_, L>],
    unchecked: &[RootLabel],
) -> Result<()> {
    let mut walk = AliasWalk {
        level: current_level(),
        seen: IndexMap::new(),
        expansions: IdMap::default(),
        ancestors: IdSet::default(),
        containers: Vec::new(),
    };
    for (index, position) in positions.iter().enumerate() {
        walk.expansions.clear();
        walk.visit(position, index)?;
    }
    let AliasWalk {
        seen, containers, ..
    } = walk;
    let conflicts: Vec<AliasConflict> = seen
        .into_values()
        .map(|(type_name, mut occurrences)| {
            occurrences.retain(|o| !unchecked.contains(&positions[o.position].root));
            (type_name, occurrences)
        })
        .filter(|(_, occurrences)| {
            occurrences
                .iter()
                .any(|o| o.prefix != occurrences[0].prefix)
        })
        .map(|(type_name, occurrences)| AliasConflict {
            type_name: type_name.to_owned(),
            occurrences: occurrences
                .into_iter()
                .map(|o| {
                    let location = render(&positions[o.position], &o.at, &containers);
                    (location, o.prefix.to_string())
                })
                .collect(),
        })
        .collect();
    if conflicts.is_empty() {
        Ok(())
    } else {
        Err(Error::InconsistentAliasing { conflicts })
    }
}

/// A container the aliasing walk went into (a graph node or a tuple), so that a location
/// below it can be printed when an error needs it: `.name` for an object's attributes,
/// `[key]` for anything else.
struct Container {
    /// The container it is a child of (`None` at the position itself).
    parent: Option<usize>,
    /// Whether it is an object (its string keys print as `.name`).
    object: bool,
}

/// Where the walk is below a position: the keys followed, and the container the last key
/// indexes (into [`AliasWalk::containers`]). Nothing is printed until an error needs it.
struct At {
    local: Path,
    parent: Option<usize>,
}

/// The printed location of `at` under `position` (`args[0]['a']['b'].param`).
fn render<L>(position: &Position<'_, L>, at: &At, containers: &[Container]) -> String {
    // The segments from the deepest up: each key with the container it indexes.
    let mut segments: Vec<(&Key, bool)> = Vec::with_capacity(at.local.len());
    let (mut path, mut parent) = (&at.local, at.parent);
    while let (Some(key), Some(c)) = (path.last(), parent) {
        segments.push((key, containers[c].object));
        path = path.parent().unwrap_or(path);
        parent = containers[c].parent;
    }
    let mut out = position.location();
    for (key, object) in segments.into_iter().rev() {
        match (object, key) {
            (true, Key::Str(s)) => {
                out.push('.');
                out.push_str(s);
            }
            (_, k) => {
                let _ = write!(out, "[{k}]");
            }
        }
    }
    out
}

/// An occurrence of a Variable or array slot: the position (index), where below it, and the
/// prefix it got there.
struct Occurrence<L> {
    position: usize,
    at: At,
    prefix: L,
}

/// A place that holds state: a Variable, or the array slot of a graph node (the node and the
/// path from it, through tuples, to the array).
#[derive(Clone, PartialEq, Eq, Hash)]
enum Slot {
    Variable(NodeId),
    Array(NodeId, Path),
}

struct AliasWalk<L> {
    level: u32,
    /// Slot → (type name, every occurrence it was reached with).
    seen: IndexMap<Slot, (&'static str, Vec<Occurrence<L>>)>,
    expansions: IdMap<usize>,
    /// The nodes on the current path (a cycle is cut at the first repeat).
    ancestors: IdSet,
    /// Every container entered, across all positions (occurrences point into it).
    containers: Vec<Container>,
}

/// A step of the aliasing walk: visit a value, or leave a node (its subtree is done).
enum Task {
    Visit {
        value: Value,
        at: At,
        /// The nearest graph node above, and the path from it (through tuples).
        holder: Option<(NodeId, Path)>,
    },
    Leave(NodeId),
}

impl<L: Clone> AliasWalk<L> {
    /// Walks the graph under one position (the `index`-th) with an explicit stack, in
    /// pre-order.
    fn visit(&mut self, position: &Position<'_, L>, index: usize) -> Result<()> {
        let mut stack = vec![Task::Visit {
            value: position.value.clone(),
            at: At {
                local: Path::root(),
                parent: None,
            },
            holder: None,
        }];
        while let Some(task) = stack.pop() {
            let (value, at, holder) = match task {
                Task::Leave(id) => {
                    self.ancestors.remove(&id);
                    continue;
                }
                Task::Visit { value, at, holder } => (value, at, holder),
            };
            match &value {
                Value::Variable(v) => {
                    check_level(v.type_name(), true, v.trace_level(), self.level, || {
                        render(position, &at, &self.containers)
                    })?;
                    let prefix = position
                        .prefix
                        .resolve(&at.local, &Leaf::Variable(v.clone()))?;
                    self.record(Slot::Variable(v.id()), v.type_name(), index, at, prefix);
                }
                Value::Array(t) => {
                    if let Some((node, path)) = holder {
                        let prefix = position
                            .prefix
                            .resolve(&at.local, &Leaf::Array(t.clone()))?;
                        self.record(Slot::Array(node, path), "Array", index, at, prefix);
                    }
                }
                Value::Object(_) | Value::List(_) | Value::Dict(_) => {
                    let Some(node) = node_of(&value) else {
                        continue;
                    };
                    check_level(
                        node.kind().type_name(),
                        false,
                        node.trace_level(),
                        self.level,
                        || render(position, &at, &self.containers),
                    )?;
                    let count = self.expansions.entry(node.id()).or_insert(0);
                    if self.ancestors.contains(&node.id()) || *count >= MAX_EXPANSIONS_PER_NODE {
                        continue;
                    }
                    *count += 1;
                    self.ancestors.insert(node.id());
                    stack.push(Task::Leave(node.id()));
                    let container =
                        self.enter(at.parent, matches!(node.kind(), NodeKind::Object(_)));
                    for (key, child) in node.sorted_children().into_iter().rev() {
                        // Only arrays (possibly inside tuples and maps) need their slot.
                        let holder =
                            matches!(child, Value::Array(_) | Value::Tuple(_) | Value::Map(_))
                                .then(|| (node.id(), Path::root().child(key.clone())));
                        stack.push(Task::Visit {
                            value: child,
                            at: At {
                                local: at.local.child(key),
                                parent: Some(container),
                            },
                            holder,
                        });
                    }
                }
                Value::Tuple(_) | Value::Map(_) => {
                    let container = self.enter(at.parent, false);
                    for (key, item) in value
                        .pytree_children()
                        .unwrap_or_default()
                        .into_iter()
                        .rev()
                    {
                        stack.push(Task::Visit {
                            value: item,
                            at: At {
                                local: at.local.child(key.clone()),
                                parent: Some(container),
                            },
                            holder: holder.as_ref().map(|(n, p)| (*n, p.child(key))),
                        });
                    }
                }
                Value::Static(_) => {}
            }
        }
        Ok(())
    }

    /// Notes a container entered below `parent`; returns its index.
    fn enter(&mut self, parent: Option<usize>, object: bool) -> usize {
        self.containers.push(Container { parent, object });
        self.containers.len() - 1
    }

    /// Records one occurrence of a slot (once per location).
    fn record(&mut self, slot: Slot, type_name: &'static str, position: usize, at: At, prefix: L) {
        let entry = self
            .seen
            .entry(slot)
            .or_insert_with(|| (type_name, Vec::new()));
        if !entry
            .1
            .iter()
            .any(|o| o.position == position && o.at.local == at.local)
        {
            entry.1.push(Occurrence {
                position,
                at,
                prefix,
            });
        }
    }
}

fn check_level(
    type_name: &str,
    variable: bool,
    owner: u32,
    current: u32,
    location: impl FnOnce() -> String,
) -> Result<()> {
    if owner == current {
        Ok(())
    } else {
        Err(Error::ExtractFromOtherTrace {
            type_name: type_name.to_owned(),
            variable,
            path: location(),
            object_level: owner,
            current_level: current,
        })
    }
}
