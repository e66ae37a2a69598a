//! Prefix trees: how each part of a transform's inputs or outputs is transformed.

use std::fmt;

use crate::graph::Filter;

/// A prefix over a transform's arguments (or outputs), like JAX's `in_axes`: a leaf applies
/// to everything below it, a tuple matches a tuple of values position by position, and
/// [`Prefix::StateAxes`] maps the Variables of one graph node by filter (`nnx.StateAxes`).
///
/// `L` is what a transform attaches to each leaf: an axis for `vmap`, a differentiation flag
/// for `grad`, a carry marker for `scan`.
#[derive(Clone, Debug)]
pub enum Prefix<L> {
    /// Applies `L` to the whole subtree.
    Leaf(L),
    /// Matches a tuple (or the argument list) element by element.
    Tuple(Vec<Prefix<L>>),
    /// Only valid directly on a graph node: each Variable gets the `L` of the first filter
    /// that matches it (filters are tried in order).
    StateAxes(Vec<(Filter, L)>),
}

impl<L> Prefix<L> {
    /// `StateAxes` from `(filter, leaf)` pairs.
    pub fn state_axes(groups: impl IntoIterator<Item = (Filter, L)>) -> Prefix<L> {
        Prefix::StateAxes(groups.into_iter().collect())
    }

    /// The same tree with each leaf mapped by `f`.
    ///
    /// # Errors
    /// The first error `f` returns.
    pub fn try_map<M>(&self, f: &impl Fn(&L) -> crate::Result<M>) -> crate::Result<Prefix<M>> {
        Ok(match self {
            Prefix::Leaf(l) => Prefix::Leaf(f(l)?),
            Prefix::Tuple(items) => Prefix::Tuple(
                items
                    .iter()
                    .map(|p| p.try_map(f))
                    .collect::<crate::Result<_>>()?,
            ),
            Prefix::StateAxes(groups) => Prefix::StateAxes(
                (groups.iter())
                    .map(|(filter, l)| Ok((filter.clone(), f(l)?)))
                    .collect::<crate::Result<_>>()?,
            ),
        })
    }
}

/// `From` tuples of up to four values that convert to `Prefix<$leaf>` (`in_axes=(0, None)`):
/// one implementation for every transform's prefix leaf.
macro_rules! prefix_from_tuples {
    ($leaf:ty) => {
        $crate::lift::prefix_from_tuples!(@one $leaf; A);
        $crate::lift::prefix_from_tuples!(@one $leaf; A, B);
        $crate::lift::prefix_from_tuples!(@one $leaf; A, B, C);
        $crate::lift::prefix_from_tuples!(@one $leaf; A, B, C, D);
    };
    (@one $leaf:ty; $($name:ident),+) => {
        impl<$($name: Into<$crate::lift::Prefix<$leaf>>),+> From<($($name,)+)>
            for $crate::lift::Prefix<$leaf>
        {
            #[allow(non_snake_case)]
            fn from(($($name,)+): ($($name,)+)) -> $crate::lift::Prefix<$leaf> {
                $crate::lift::Prefix::Tuple(vec![$($name.into()),+])
            }
        }
    };
}
pub(crate) use prefix_from_tuples;

impl<L> From<L> for Prefix<L> {
    fn from(leaf: L) -> Prefix<L> {
        Prefix::Leaf(leaf)
    }
}

impl<L: fmt::Display> fmt::Display for Prefix<L> {
    /// Python-like: `0`, `(0, None)`, `StateAxes({OfType(Param): 0, ...})`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::Leaf(l) => write!(f, "{l}"),
            Prefix::Tuple(items) => {
                let parts: Vec<String> = items.iter().map(ToString::to_string).collect();
                match parts.as_slice() {
                    [one] => write!(f, "({one},)"),
                    _ => write!(f, "({})", parts.join(", ")),
                }
            }
            Prefix::StateAxes(groups) => {
                let parts: Vec<String> = groups
                    .iter()
                    .map(|(flt, l)| format!("{flt}: {l}"))
                    .collect();
                write!(f, "StateAxes({{{}}})", parts.join(", "))
            }
        }
    }
}
