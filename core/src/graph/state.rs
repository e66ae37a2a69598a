//! `State`: the leaves of a graph by path.

use std::collections::BTreeMap;
use std::fmt;

use super::filter::Filter;
use super::path::{Key, Path, Rebaser};
use super::variable::Variable;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A leaf of a graph's state: a Variable (the very Variable object of the graph, as in Flax)
/// or a raw array attribute.
#[derive(Clone, Debug)]
pub enum Leaf {
    /// A Variable handle.
    Variable(Variable),
    /// A raw array.
    Array(Tensor),
}

impl Leaf {
    /// The array held by the leaf.
    pub fn value(&self) -> Tensor {
        match self {
            Leaf::Variable(v) => v.value(),
            Leaf::Array(t) => t.clone(),
        }
    }

    /// The Variable, if this leaf is one.
    pub fn as_variable(&self) -> Option<&Variable> {
        match self {
            Leaf::Variable(v) => Some(v),
            Leaf::Array(_) => None,
        }
    }
}

/// The state of a graph: leaves (Variables and raw arrays) by path, kept sorted by path.
///
/// `State` has a flat view ([`State::iter`]: `(path, leaf)` in sorted order, Flax's
/// `FlatState`) and a nested view ([`State::nested`], [`State::at`]: the `{'sub': {'w': …}}`
/// mapping Flax prints). Leaves that are Variables are the graph's own Variable handles, so
/// mutating them through the State mutates the graph; [`State::map`] builds a State of new
/// Variables instead.
#[derive(Clone, Debug, Default)]
pub struct State {
    leaves: BTreeMap<Path, Leaf>,
}

/// The nested view of a [`State`]: a tree of mappings whose leaves are [`Leaf`]s.
///
/// `Clone`, `Debug` and `Drop` are iterative, so a view of any depth is fine; match it by
/// reference (`if let NestedState::Map(m) = &state.nested()`).
pub enum NestedState {
    /// A leaf.
    Leaf(Leaf),
    /// A mapping from keys to subtrees, sorted by key.
    Map(BTreeMap<Key, NestedState>),
}

impl State {
    /// An empty State.
    pub fn new() -> State {
        State::default()
    }

    /// Adds or replaces the leaf at `path`, returning the previous one.
    pub fn insert(&mut self, path: impl Into<Path>, leaf: Leaf) -> Option<Leaf> {
        self.leaves.insert(path.into(), leaf)
    }

    /// The leaf at `path`.
    pub fn get(&self, path: &Path) -> Option<&Leaf> {
        self.leaves.get(path)
    }

    /// The Variable at `path`.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] when there is no leaf at `path`, and [`Error::LeafNotVariable`]
    /// when the leaf is a raw array.
    pub fn variable(&self, path: &Path) -> Result<Variable> {
        match self.leaves.get(path) {
            Some(Leaf::Variable(v)) => Ok(v.clone()),
            Some(Leaf::Array(_)) => Err(Error::LeafNotVariable { path: path.clone() }),
            None => Err(Error::KeyNotFound {
                container: "State",
                key: path.to_string(),
                available: self.leaves.keys().map(Path::to_string).collect(),
            }),
        }
    }

    /// Removes the leaf at `path`.
    pub fn remove(&mut self, path: &Path) -> Option<Leaf> {
        self.leaves.remove(path)
    }

    /// The number of leaves.
    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    /// Whether there are no leaves.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// The flat view: `(path, leaf)` sorted by path.
    pub fn iter(&self) -> impl Iterator<Item = (&Path, &Leaf)> {
        self.leaves.iter()
    }

    /// The paths, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.leaves.keys()
    }

    /// The sub-State under `prefix`, with `prefix` removed from its paths (`state['sub']`).
    pub fn at(&self, prefix: &Path) -> State {
        let mut rebaser = Rebaser::new(prefix.len());
        State {
            leaves: self
                .leaves
                .iter()
                .filter(|(p, _)| p.starts_with(prefix))
                .map(|(p, l)| (rebaser.rebase(p), l.clone()))
                .collect(),
        }
    }

    /// The nested view. A State whose only leaf is at the root path (the State of a bare
    /// Variable) is `NestedState::Leaf`.
    pub fn nested(&self) -> NestedState {
        if let Some(root) = self.leaves.get(&Path::root()) {
            return NestedState::Leaf(root.clone());
        }
        nest(self.leaves.iter())
    }

    /// The leaves the filter selects (Flax's `filter_state`).
    pub fn filter(&self, filter: &Filter) -> State {
        State {
            leaves: self
                .leaves
                .iter()
                .filter(|(p, l)| filter.matches(p, l))
                .map(|(p, l)| (p.clone(), l.clone()))
                .collect(),
        }
    }

    /// The union of several States (Flax's `merge_state`); later States win on equal paths.
    pub fn merged<'a>(states: impl IntoIterator<Item = &'a State>) -> State {
        // Later States win: a stable sort keeps equal paths in State order, and of each run
        // of equal paths only the last is kept.
        let mut leaves: Vec<(Path, Leaf)> = states
            .into_iter()
            .flat_map(|s| s.leaves.iter().map(|(p, l)| (p.clone(), l.clone())))
            .collect();
        leaves.sort_by(|a, b| a.0.cmp(&b.0));
        let mut unique: Vec<(Path, Leaf)> = Vec::with_capacity(leaves.len());
        for (path, leaf) in leaves {
            match unique.last_mut() {
                Some(last) if last.0 == path => last.1 = leaf,
                _ => unique.push((path, leaf)),
            }
        }
        State::from_leaves(unique)
    }

    /// A State of *new* Variables (same types and metadata) holding `f(path, value)`; raw
    /// array leaves stay raw arrays. The canonical SGD step is
    /// `params.map(|p, w| w - lr * grads[p])` followed by `update(model, &new)`.
    ///
    /// # Errors
    /// Whatever `f` returns.
    pub fn map(&self, mut f: impl FnMut(&Path, &Tensor) -> Result<Tensor>) -> Result<State> {
        let mut leaves = Vec::with_capacity(self.leaves.len());
        for (path, leaf) in &self.leaves {
            let new = match leaf {
                Leaf::Variable(v) => {
                    let copy = v.copy();
                    copy.set_value(f(path, &v.value())?)?;
                    Leaf::Variable(copy)
                }
                Leaf::Array(t) => Leaf::Array(f(path, t)?),
            };
            leaves.push((path.clone(), new));
        }
        // Collecting a sorted sequence builds the map in one pass.
        Ok(State::from_leaves(leaves))
    }

    /// The nested view with every leaf a plain array (`nnx.to_pure_dict`): what a
    /// framework-free checkpoint or another library holds.
    ///
    /// ```
    /// use nnx_core::{Object, Param, Tensor, graph::{self, Leaf, NestedState, State}};
    /// # fn main() -> nnx_core::Result<()> {
    /// let m = Object::new("M").with("w", Param::new(Tensor::ones([2])))?;
    /// let pure = graph::state(&m).to_pure_dict();
    /// let NestedState::Map(map) = &pure else { unreachable!() };
    /// assert!(matches!(map.values().next(), Some(NestedState::Leaf(Leaf::Array(_)))));
    /// // Back into the model (`nnx.update` from a pure dict).
    /// graph::update(&m, &State::from_pure_dict(&pure.map_arrays(|t| t * 3.0)?))?;
    /// assert_eq!(m.value("w")?.to_vec::<f32>()?, vec![3.0, 3.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_pure_dict(&self) -> NestedState {
        let arrays: Vec<(Path, Leaf)> = (self.leaves.iter())
            .map(|(p, l)| (p.clone(), Leaf::Array(l.value())))
            .collect();
        State::from_leaves(arrays).nested()
    }

    /// A State of the nested mapping's leaves by path (its arrays stay raw arrays): a pure
    /// dict as a State, for [`update`](super::update) or [`merge`](super::merge).
    pub fn from_pure_dict(pure: &NestedState) -> State {
        State::from_leaves(pure.flat().into_iter().map(|(p, l)| (p, l.clone())))
    }

    /// Replaces the leaves at the paths the nested mapping holds with its arrays
    /// (`nnx.replace_by_pure_dict`): a Variable leaf by a copy of it (type and metadata
    /// kept) holding the new array, a raw array by the new one. The graph the State came
    /// from is not changed; [`update`](super::update) writes the result into it.
    ///
    /// # Errors
    /// [`Error::StructureMismatch`] naming every path of the mapping the State does not
    /// have (nothing is replaced then).
    pub fn replace_by_pure_dict(&mut self, pure: &NestedState) -> Result<()> {
        let flat = pure.flat();
        let missing: Vec<String> = (flat.iter())
            .filter(|(p, _)| !self.leaves.contains_key(p))
            .map(|(p, _)| format!("'{}'", p.slashed()))
            .collect();
        if !missing.is_empty() {
            return Err(Error::StructureMismatch(format!(
                "key in pure_dict not available in state: {}",
                missing.join(", ")
            )));
        }
        for (path, new) in flat {
            let value = new.value();
            if let Some(leaf) = self.leaves.get_mut(&path) {
                *leaf = match leaf {
                    Leaf::Variable(v) => {
                        let copy = v.copy();
                        copy.set_value(value)?;
                        Leaf::Variable(copy)
                    }
                    Leaf::Array(_) => Leaf::Array(value),
                };
            }
        }
        Ok(())
    }

    pub(crate) fn from_leaves(leaves: impl IntoIterator<Item = (Path, Leaf)>) -> State {
        State {
            leaves: leaves.into_iter().collect(),
        }
    }

    pub(crate) fn into_leaves(self) -> BTreeMap<Path, Leaf> {
        self.leaves
    }
}

/// Builds the nested view from leaves in sorted path order, in one pass: the maps along the
/// previous leaf's path stay open on a stack, and each leaf closes the ones it does not
/// share (by the common prefix with the previous path) and opens the new ones. Linear in
/// the total size of the paths' shared structure, whatever the depth.
fn nest<'a>(leaves: impl Iterator<Item = (&'a Path, &'a Leaf)>) -> NestedState {
    /// Closes the top map into its parent (a leaf already there wins, as a path through a
    /// leaf has nowhere to go).
    fn close(open: &mut Vec<(Key, BTreeMap<Key, NestedState>)>) {
        if open.len() < 2 {
            return;
        }
        if let Some((key, map)) = open.pop()
            && let Some((_, parent)) = open.last_mut()
        {
            parent.entry(key).or_insert(NestedState::Map(map));
        }
    }
    // open[i] is the map at the first i keys of the previous path.
    let mut open: Vec<(Key, BTreeMap<Key, NestedState>)> = vec![(Key::Int(0), BTreeMap::new())];
    let mut previous: Option<&Path> = None;
    for (path, leaf) in leaves {
        let Some(last) = path.last() else {
            continue;
        };
        let common = previous.map_or(0, |p| p.compare(path).0);
        while open.len() > common + 1 {
            close(&mut open);
        }
        let parent_len = path.len() - 1;
        if open.len() <= parent_len {
            let start = open.len() - 1;
            for key in path.keys_from(start).into_iter().take(parent_len - start) {
                open.push((key, BTreeMap::new()));
            }
        }
        if let Some((_, map)) = open.last_mut() {
            map.insert(last.clone(), NestedState::Leaf(leaf.clone()));
        }
        previous = Some(path);
    }
    while open.len() > 1 {
        close(&mut open);
    }
    NestedState::Map(open.pop().map(|(_, m)| m).unwrap_or_default())
}

impl NestedState {
    /// The same mapping with `f` applied to every leaf's array (each leaf becomes a raw
    /// array): a transformation of a pure dict.
    ///
    /// # Errors
    /// Whatever `f` returns.
    pub fn map_arrays(&self, mut f: impl FnMut(&Tensor) -> Result<Tensor>) -> Result<NestedState> {
        let leaves = (self.flat().into_iter())
            .map(|(p, l)| Ok((p, Leaf::Array(f(&l.value())?))))
            .collect::<Result<Vec<_>>>()?;
        Ok(State::from_leaves(leaves).nested())
    }

    /// The leaves with their paths, in sorted order (iteratively).
    fn flat(&self) -> Vec<(Path, &Leaf)> {
        let mut out = Vec::new();
        let mut stack: Vec<(Path, &NestedState)> = vec![(Path::root(), self)];
        while let Some((path, node)) = stack.pop() {
            match node {
                NestedState::Leaf(leaf) => out.push((path, leaf)),
                NestedState::Map(map) => {
                    stack.extend(map.iter().rev().map(|(k, v)| (path.child(k.clone()), v)));
                }
            }
        }
        out
    }
}

impl Clone for NestedState {
    /// Rebuilt from the leaves, iteratively.
    fn clone(&self) -> NestedState {
        match self {
            NestedState::Leaf(leaf) => NestedState::Leaf(leaf.clone()),
            NestedState::Map(_) => {
                let flat = self.flat();
                nest(flat.iter().map(|(p, l)| (p, *l)))
            }
        }
    }
}

impl fmt::Debug for NestedState {
    /// Nested mappings (`{'sub': {'w': Param#3}}`), written iteratively and in time linear
    /// in the view's size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let map = match self {
            NestedState::Leaf(leaf) => return f.debug_tuple("Leaf").field(leaf).finish(),
            NestedState::Map(map) => map,
        };
        f.write_str("{")?;
        // The open mappings: the entries still to write, and whether one was written.
        let mut open = vec![(map.iter(), false)];
        while let Some((entries, written)) = open.last_mut() {
            let Some((key, value)) = entries.next() else {
                f.write_str("}")?;
                open.pop();
                continue;
            };
            if std::mem::replace(written, true) {
                f.write_str(", ")?;
            }
            write!(f, "{key}: ")?;
            match value {
                NestedState::Leaf(leaf) => write!(f, "{leaf:?}")?,
                NestedState::Map(inner) => {
                    f.write_str("{")?;
                    open.push((inner.iter(), false));
                }
            }
        }
        Ok(())
    }
}

impl Drop for NestedState {
    /// Iterative, so that the nested view of a very deep State drops without recursion.
    fn drop(&mut self) {
        let NestedState::Map(map) = self else {
            return;
        };
        let mut stack: Vec<BTreeMap<Key, NestedState>> = vec![std::mem::take(map)];
        while let Some(mut map) = stack.pop() {
            while let Some((_, mut child)) = map.pop_first() {
                if let NestedState::Map(inner) = &mut child {
                    stack.push(std::mem::take(inner));
                }
            }
        }
    }
}

impl<'a> IntoIterator for &'a State {
    type Item = (&'a Path, &'a Leaf);
    type IntoIter = std::collections::btree_map::Iter<'a, Path, Leaf>;
    fn into_iter(self) -> Self::IntoIter {
        self.leaves.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Param;

    #[test]
    fn nested_and_sub_views() {
        let mut s = State::new();
        s.insert(
            ["sub", "w"],
            Leaf::Variable(Variable::from(Param::new(Tensor::zeros([1])))),
        );
        s.insert(["b"], Leaf::Array(Tensor::zeros([1])));
        let NestedState::Map(top) = &s.nested() else {
            panic!("expected a map");
        };
        assert_eq!(
            top.keys().cloned().collect::<Vec<_>>(),
            vec![Key::from("b"), Key::from("sub")]
        );
        assert_eq!(
            s.at(&Path::from(["sub"]))
                .paths()
                .cloned()
                .collect::<Vec<_>>(),
            vec![Path::from(["w"])]
        );
        assert!(s.variable(&Path::from(["b"])).is_err());
        assert!(s.variable(&Path::from(["zz"])).is_err());
    }

    #[test]
    fn map_builds_new_variables() {
        let p = Param::new(Tensor::zeros([2]));
        let mut s = State::new();
        s.insert(["p"], Leaf::Variable(Variable::from(p.clone())));
        let m = s.map(|_, t| t + 1.0).unwrap();
        let new = m.variable(&Path::from(["p"])).unwrap();
        assert!(!new.ptr_eq(&p));
        assert_eq!(new.value().to_vec::<f32>().unwrap(), vec![1.0, 1.0]);
        assert_eq!(p.value().to_vec::<f32>().unwrap(), vec![0.0, 0.0]);
    }
}
