//! The graph operations: `split`, `merge`, `update`, `state`, `graphdef`, `clone`.

use super::filter::Filter;
use super::graphdef::{Flattener, GraphDef};
use super::merge::{VariableReuse, unflatten, unflatten_states};
use super::path::{Key, Path};
use super::state::{Leaf, State};
use super::value::{GraphValue, Value};
use crate::error::{Error, Result};

/// Splits a graph into its structure and its whole state (`nnx.split(node)`).
///
/// The State's Variable leaves are the graph's own Variables (same identity). A Variable
/// reachable through several paths appears once, under the first path in sorted traversal
/// order.
///
/// ```
/// use nnx_core::{Object, Param, Tensor, graph};
/// # fn main() -> nnx_core::Result<()> {
/// let m = Object::new("M").with("w", Param::new(Tensor::zeros(&[2])))?;
/// m.set("alias", m.get("w")?)?;
/// let (def, state) = graph::split(&m);
/// assert_eq!(state.len(), 1); // shared Variable stored once, under ('alias',)
/// let rebuilt: Object = graph::merge(&def, [&state])?;
/// assert!(rebuilt.var("alias")?.ptr_eq(&rebuilt.var("w")?));
/// # Ok(())
/// # }
/// ```
pub fn split(node: &impl GraphValue) -> (GraphDef, State) {
    let (def, leaves) = Flattener::flatten(&node.to_value());
    (def, State::from_leaves(leaves))
}

/// Splits a graph into its structure and one State per filter (`nnx.split(node, *filters)`).
///
/// Each leaf goes to the first filter that matches it. The filters must cover every leaf,
/// and [`Filter::Everything`] may only come last.
///
/// # Errors
/// [`Error::EverythingNotLast`]; [`Error::NonExhaustiveFilters`] listing every leaf no filter
/// matched.
pub fn split_by(node: &impl GraphValue, filters: &[Filter]) -> Result<(GraphDef, Vec<State>)> {
    if let Some(index) = filters.iter().position(Filter::is_everything)
        && index + 1 != filters.len()
    {
        return Err(Error::EverythingNotLast { index });
    }
    let (def, leaves) = Flattener::flatten(&node.to_value());
    let (states, remainder) = partition(leaves, filters);
    if !remainder.is_empty() {
        return Err(Error::NonExhaustiveFilters {
            remainder: remainder.into_iter().map(|(p, _)| p).collect(),
        });
    }
    Ok((def, states))
}

/// Every leaf of the graph as a State (`nnx.state(node)`).
pub fn state(node: &impl GraphValue) -> State {
    split(node).1
}

/// The leaves a filter selects (`nnx.state(node, filter)`; not required to be exhaustive).
pub fn state_by(node: &impl GraphValue, filter: &Filter) -> State {
    let (_, leaves) = Flattener::flatten(&node.to_value());
    State::from_leaves(leaves.into_iter().filter(|(p, l)| filter.matches(p, l)))
}

/// The structure of the graph (`nnx.graphdef(node)`).
pub fn graphdef(node: &impl GraphValue) -> GraphDef {
    Flattener::flatten(&node.to_value()).0
}

/// Rebuilds a graph from its structure and States (`nnx.merge`). New objects and containers
/// are created; the States' Variables are reused (so the result shares them with whatever
/// the States came from, as in Flax); raw-array leaves at Variable positions become new
/// Variables of the recorded type and metadata.
///
/// Unlike Flax, every path is checked: the States together must provide exactly the
/// GraphDef's leaf paths.
///
/// # Errors
/// [`Error::MergeDuplicate`] when two States provide the same path; [`Error::MergeMismatch`]
/// listing every missing and every unexpected path; [`Error::WrongValueKind`] when the root
/// is not of type `T`.
pub fn merge<'a, T: GraphValue>(
    def: &GraphDef,
    states: impl IntoIterator<Item = &'a State>,
) -> Result<T> {
    merge_with(def, states, VariableReuse::Share)
}

fn merge_with<'a, T: GraphValue>(
    def: &GraphDef,
    states: impl IntoIterator<Item = &'a State>,
    reuse: VariableReuse,
) -> Result<T> {
    let states: Vec<&State> = states.into_iter().collect();
    T::from_value(&unflatten_states(def, &states, reuse)?)
}

/// Writes a State into a graph in place (`nnx.update`): existing Variables keep their
/// identity and take the State's values (and metadata, for Variable leaves); missing
/// attributes are added.
///
/// # Errors
/// [`Error::StructureMismatch`] when a path runs through a leaf or ends on a subgraph;
/// [`Error::TraceContext`] when a Variable or object belongs to another trace level. Paths
/// are checked before anything is written.
pub fn update(node: &impl GraphValue, state: &State) -> Result<()> {
    super::update::update(&node.to_value(), state)
}

/// Removes the Variables `filter` selects from the graph and returns them as a State
/// (`nnx.pop(node, filter)`): each is deleted from the object or dict holding it at its
/// path (a shared Variable at its first path, as in Flax). Intermediates sown during a
/// forward pass are the usual use.
///
/// ```
/// use nnx_core::{Intermediate, Object, Param, Tensor, VariableType, graph};
/// # fn main() -> nnx_core::Result<()> {
/// let m = Object::new("M")
///     .with("w", Param::new(Tensor::ones([2])))?
///     .with("i", Intermediate::new(Tensor::ones([3])))?;
/// let popped = graph::pop(&m, &VariableType::INTERMEDIATE.into())?;
/// assert_eq!(popped.len(), 1);
/// assert!(!m.has("i") && m.has("w"));
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`Error::StructureMismatch`] for a selected Variable held by a list or tuple (removing
/// it would renumber or rebuild its container); the graph is then unchanged. The closure
/// rule's error for a node of another trace level.
pub fn pop(node: &impl GraphValue, filter: &Filter) -> Result<State> {
    let popped = state_by(node, filter);
    let root = node.to_value();
    let mut removals = Vec::with_capacity(popped.len());
    for (path, _) in popped.iter() {
        let (Some(parent), Some(key)) = (path.parent(), path.last()) else {
            return Err(Error::StructureMismatch(
                "pop cannot remove the root itself".into(),
            ));
        };
        let mut holder = root.clone();
        for k in parent.keys() {
            holder = super::update::child(&holder, &k).ok_or_else(|| {
                Error::StructureMismatch(format!("pop: no value at '{}'", parent.slashed()))
            })?;
        }
        match (&holder, key) {
            (Value::Object(_), Key::Str(_)) | (Value::Dict(_), _) => {
                removals.push((holder, key.clone()));
            }
            _ => {
                return Err(Error::StructureMismatch(format!(
                    "pop cannot remove '{}': it is held by {}, which has no keys to delete",
                    path.slashed(),
                    holder.kind_name()
                )));
            }
        }
    }
    for (holder, key) in removals {
        match (holder, key) {
            (Value::Object(o), Key::Str(name)) => {
                o.del(&name)?;
            }
            (Value::Dict(d), key) => {
                d.remove(key)?;
            }
            _ => {}
        }
    }
    Ok(popped)
}

/// A deep copy of a graph with the same structure and sharing but new objects and new
/// Variables (`nnx.clone`). Arrays are immutable and so are shared.
///
/// The copy is a consistent snapshot: while it is taken, no transform's write-back or
/// `update` on another thread can change the graph, so every Variable comes from the same
/// step. (A [`State`] from [`split`]/[`state`] holds the graph's own Variables, which go on
/// changing; clone first for a snapshot to save.)
pub fn clone<T: GraphValue>(node: &T) -> T {
    let _consistent = super::sync::consistency(false);
    let (def, state) = split(node);
    let value = unflatten(
        &def,
        state.into_leaves().into_iter().collect(),
        VariableReuse::Copy,
    );
    // A State taken from the graph always matches its own GraphDef.
    match value.and_then(|v| T::from_value(&v)) {
        Ok(copy) => copy,
        Err(_) => unreachable!("a graph's own state always merges into its GraphDef"),
    }
}

/// Splits leaves by first-matching filter; returns one State per filter and the leaves no
/// filter matched.
fn partition(leaves: Vec<(Path, Leaf)>, filters: &[Filter]) -> (Vec<State>, Vec<(Path, Leaf)>) {
    let mut groups: Vec<Vec<(Path, Leaf)>> = vec![Vec::new(); filters.len()];
    let mut remainder = Vec::new();
    for (path, leaf) in leaves {
        match filters.iter().position(|f| f.matches(&path, &leaf)) {
            Some(i) => groups[i].push((path, leaf)),
            None => remainder.push((path, leaf)),
        }
    }
    (
        groups.into_iter().map(State::from_leaves).collect(),
        remainder,
    )
}
