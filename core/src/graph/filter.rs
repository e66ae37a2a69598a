//! Filters select Variables (and raw arrays) by type, tag, path or predicate.

use std::fmt;
use std::sync::Arc;

use super::path::{Key, Path, python_str_repr};
use super::state::Leaf;
use super::static_value::Static;
use super::variable::VariableType;

/// A filter over the leaves of a graph: called with the leaf's path (relative to the node
/// being split) and the leaf itself. The same vocabulary as Flax (`nnx.filterlib`).
///
/// Converts from a [`VariableType`] (`OfType`) and from a `&str` (`WithTag`, which matches
/// the `tag` metadata, not path names — as in Flax).
///
/// ```
/// use nnx_core::{Filter, Param, Path, Tensor, VariableType, graph::Leaf};
/// let f = Filter::all([VariableType::PARAM.into(), Filter::not(Filter::path_contains("bias"))]);
/// let leaf = Leaf::Variable(Param::new(Tensor::zeros(&[1])).into());
/// assert!(f.matches(&Path::from(["kernel"]), &leaf));
/// assert!(!f.matches(&Path::from(["bias"]), &leaf));
/// assert_eq!(f.to_string(), "All(OfType(Param), Not(PathContains('bias', exact=True)))");
/// ```
#[derive(Clone)]
pub enum Filter {
    /// Variables whose type is this type or a subtype (`isinstance`).
    OfType(VariableType),
    /// Raw array leaves (attributes that are arrays, not Variables).
    Array,
    /// Variables whose `tag` metadata equals this string.
    WithTag(String),
    /// Any of the filters matches (logical or).
    Any(Vec<Filter>),
    /// All of the filters match (logical and).
    All(Vec<Filter>),
    /// The filter does not match.
    Not(Box<Filter>),
    /// The path contains this key (`exact`), or some key's text contains it (`!exact`).
    PathContains {
        /// The key to look for.
        key: Key,
        /// Whole-key match (`true`) or substring match on the key's text (`false`).
        exact: bool,
    },
    /// The path is one of these.
    PathIn(Vec<Path>),
    /// Everything (`...` / `True` in Flax).
    Everything,
    /// Nothing (`None` / `False` in Flax).
    Nothing,
    /// An arbitrary predicate, with a name for printing.
    Predicate(Predicate),
}

/// A named predicate filter; see [`Filter::predicate`].
#[derive(Clone)]
pub struct Predicate {
    name: String,
    f: PredicateFn,
}

type PredicateFn = Arc<dyn Fn(&Path, &Leaf) -> bool + Send + Sync>;

impl Filter {
    /// `Any(filters)`.
    pub fn any(filters: impl IntoIterator<Item = Filter>) -> Filter {
        Filter::Any(filters.into_iter().collect())
    }

    /// `All(filters)`.
    pub fn all(filters: impl IntoIterator<Item = Filter>) -> Filter {
        Filter::All(filters.into_iter().collect())
    }

    /// `Not(filter)`.
    #[allow(clippy::should_implement_trait)]
    pub fn not(filter: Filter) -> Filter {
        Filter::Not(Box::new(filter))
    }

    /// `PathContains(key, exact=True)`.
    pub fn path_contains(key: impl Into<Key>) -> Filter {
        Filter::PathContains {
            key: key.into(),
            exact: true,
        }
    }

    /// A filter from a closure; `name` is what the filter prints as.
    pub fn predicate(
        name: &str,
        f: impl Fn(&Path, &Leaf) -> bool + Send + Sync + 'static,
    ) -> Filter {
        Filter::Predicate(Predicate {
            name: name.to_owned(),
            f: Arc::new(f),
        })
    }

    /// Whether the filter selects the leaf at `path`.
    pub fn matches(&self, path: &Path, leaf: &Leaf) -> bool {
        match self {
            Filter::OfType(ty) => matches!(leaf, Leaf::Variable(v) if v.is_instance(*ty)),
            Filter::Array => matches!(leaf, Leaf::Array(_)),
            Filter::WithTag(tag) => match leaf {
                Leaf::Variable(v) => v.metadata_value("tag") == Some(Static::Str(tag.clone())),
                Leaf::Array(_) => false,
            },
            Filter::Any(fs) => fs.iter().any(|f| f.matches(path, leaf)),
            Filter::All(fs) => fs.iter().all(|f| f.matches(path, leaf)),
            Filter::Not(f) => !f.matches(path, leaf),
            Filter::PathContains { key, exact: true } => path.any_key(|k| k == key),
            Filter::PathContains { key, exact: false } => {
                let needle = key_text(key);
                path.any_key(|k| key_text(k).contains(&needle))
            }
            Filter::PathIn(paths) => paths.contains(path),
            Filter::Everything => true,
            Filter::Nothing => false,
            Filter::Predicate(p) => (p.f)(path, leaf),
        }
    }

    /// Whether this filter is `Everything` (allowed only last in `split`).
    pub(crate) fn is_everything(&self) -> bool {
        matches!(self, Filter::Everything)
    }
}

fn key_text(key: &Key) -> String {
    match key {
        Key::Int(i) => i.to_string(),
        Key::Str(s) => s.clone(),
    }
}

impl From<VariableType> for Filter {
    fn from(ty: VariableType) -> Filter {
        Filter::OfType(ty)
    }
}

impl From<&str> for Filter {
    fn from(tag: &str) -> Filter {
        Filter::WithTag(tag.to_owned())
    }
}

impl fmt::Display for Filter {
    /// Flax's filter reprs: `OfType(Param)`, `WithTag('x')`, `Any(...)`, `Everything()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |fs: &[Filter]| {
            fs.iter()
                .map(Filter::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Filter::OfType(ty) => write!(f, "OfType({ty})"),
            Filter::Array => f.write_str("OfType(Array)"),
            Filter::WithTag(tag) => write!(f, "WithTag({})", python_str_repr(tag)),
            Filter::Any(fs) => write!(f, "Any({})", list(fs)),
            Filter::All(fs) => write!(f, "All({})", list(fs)),
            Filter::Not(inner) => write!(f, "Not({inner})"),
            Filter::PathContains { key, exact } => {
                write!(
                    f,
                    "PathContains({key}, exact={})",
                    if *exact { "True" } else { "False" }
                )
            }
            Filter::PathIn(paths) => {
                write!(
                    f,
                    "PathIn({})",
                    paths
                        .iter()
                        .map(Path::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            Filter::Everything => f.write_str("Everything()"),
            Filter::Nothing => f.write_str("Nothing()"),
            Filter::Predicate(p) => write!(f, "Predicate({})", p.name),
        }
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tensor;
    use crate::graph::{Param, RngCount, Variable};

    fn leaf(v: Variable) -> Leaf {
        Leaf::Variable(v)
    }

    #[test]
    fn type_filters_match_subtypes() {
        let count = leaf(Variable::from(RngCount::new(Tensor::zeros([]))));
        let p = Path::from(["rngs", "default", "count"]);
        assert!(Filter::from(VariableType::RNG_STATE).matches(&p, &count));
        assert!(!Filter::from(VariableType::PARAM).matches(&p, &count));
    }

    #[test]
    fn string_filters_match_tags_not_paths() {
        let tagged = leaf(Variable::from(
            Param::new(Tensor::zeros([])).with_metadata("tag", "params"),
        ));
        let p = Path::from(["p"]);
        assert!(Filter::from("params").matches(&p, &tagged));
        assert!(!Filter::from("p").matches(&p, &tagged));
    }

    #[test]
    fn path_filters() {
        let l = leaf(Variable::from(Param::new(Tensor::zeros([]))));
        let p = Path::from(["encoder", "layer_0"]).child("kernel");
        assert!(Filter::path_contains("encoder").matches(&p, &l));
        assert!(!Filter::path_contains("layer").matches(&p, &l));
        assert!(
            Filter::PathContains {
                key: "layer".into(),
                exact: false
            }
            .matches(&p, &l)
        );
        assert!(Filter::PathIn(vec![p.clone()]).matches(&p, &l));
        assert!(Filter::Array.matches(&p, &Leaf::Array(Tensor::zeros([]))));
    }
}
