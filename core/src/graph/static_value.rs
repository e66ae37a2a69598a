//! Static (non-array) values: part of a graph's structure, not of its state.

use std::fmt;
use std::hash::{Hash, Hasher};

use super::path::python_str_repr;

/// A static value: Python's `None`, `bool`, `int`, `float`, `str` and lists, tuples and dicts
/// of them (`['a', 2, False]`, `sharding=('a', None)`).
///
/// Static values live in the [`GraphDef`](super::GraphDef), so changing one changes the
/// graph's structure (and would make `jit` retrace), exactly as in Flax. Equality is
/// structural; floats compare by bit pattern so that equality is reflexive and hashing is
/// consistent (unlike Python, `1`, `1.0` and `True` are different static values).
#[derive(Debug, Clone)]
pub enum Static {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A list.
    List(Vec<Static>),
    /// A tuple.
    Tuple(Vec<Static>),
    /// A dict with string keys, in insertion order.
    Dict(Vec<(String, Static)>),
    /// A graph's structure, passed to a transform as an argument (the functional style:
    /// `jit` over `(graphdef, state)` with `merge` inside).
    GraphDef(std::sync::Arc<super::GraphDef>),
}

impl Static {
    /// The string, if this is a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Static::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The items, if this is a list or a tuple.
    pub fn as_sequence(&self) -> Option<&[Static]> {
        match self {
            Static::List(items) | Static::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// Whether this is `None`.
    pub fn is_none(&self) -> bool {
        matches!(self, Static::None)
    }
}

impl PartialEq for Static {
    fn eq(&self, other: &Static) -> bool {
        match (self, other) {
            (Static::None, Static::None) => true,
            (Static::Bool(a), Static::Bool(b)) => a == b,
            (Static::Int(a), Static::Int(b)) => a == b,
            (Static::Float(a), Static::Float(b)) => a.to_bits() == b.to_bits(),
            (Static::Str(a), Static::Str(b)) => a == b,
            (Static::List(a), Static::List(b)) | (Static::Tuple(a), Static::Tuple(b)) => a == b,
            (Static::Dict(a), Static::Dict(b)) => a == b,
            (Static::GraphDef(a), Static::GraphDef(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Static {}

impl Hash for Static {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Static::None => {}
            Static::Bool(b) => b.hash(state),
            Static::Int(i) => i.hash(state),
            Static::Float(x) => x.to_bits().hash(state),
            Static::Str(s) => s.hash(state),
            Static::List(items) | Static::Tuple(items) => items.hash(state),
            Static::Dict(items) => items.hash(state),
            Static::GraphDef(def) => def.hash(state),
        }
    }
}

impl fmt::Display for Static {
    /// Python repr: `None`, `True`, `2`, `1.0`, `'a'`, `['a', 2, False]`, `('a',)`, `{'k': 1}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Static::None => f.write_str("None"),
            Static::Bool(true) => f.write_str("True"),
            Static::Bool(false) => f.write_str("False"),
            Static::Int(i) => write!(f, "{i}"),
            Static::Float(x) => f.write_str(&python_float_repr(*x)),
            Static::Str(s) => f.write_str(&python_str_repr(s)),
            Static::List(items) => write!(f, "[{}]", join(items)),
            Static::Tuple(items) if items.len() == 1 => write!(f, "({},)", items[0]),
            Static::Tuple(items) => write!(f, "({})", join(items)),
            Static::Dict(items) => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|(k, v)| format!("{}: {v}", python_str_repr(k)))
                    .collect();
                write!(f, "{{{}}}", parts.join(", "))
            }
            Static::GraphDef(def) => write!(f, "{def}"),
        }
    }
}

fn join(items: &[Static]) -> String {
    items
        .iter()
        .map(Static::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Python's `repr` of a float: shortest round-trip digits, always with a `.` or an exponent.
fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let abs = x.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        let s = format!("{x:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    let s = format!("{x}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

impl From<bool> for Static {
    fn from(v: bool) -> Static {
        Static::Bool(v)
    }
}

impl From<i64> for Static {
    fn from(v: i64) -> Static {
        Static::Int(v)
    }
}

impl From<i32> for Static {
    fn from(v: i32) -> Static {
        Static::Int(v.into())
    }
}

impl From<usize> for Static {
    fn from(v: usize) -> Static {
        Static::Int(v as i64)
    }
}

impl From<f64> for Static {
    fn from(v: f64) -> Static {
        Static::Float(v)
    }
}

impl From<f32> for Static {
    fn from(v: f32) -> Static {
        Static::Float(v.into())
    }
}

impl From<&str> for Static {
    fn from(v: &str) -> Static {
        Static::Str(v.to_owned())
    }
}

impl From<String> for Static {
    fn from(v: String) -> Static {
        Static::Str(v)
    }
}

impl<T: Into<Static>> From<Option<T>> for Static {
    fn from(v: Option<T>) -> Static {
        v.map_or(Static::None, Into::into)
    }
}

impl From<()> for Static {
    fn from((): ()) -> Static {
        Static::None
    }
}

/// A static list (`['a', 2, False]`) from values convertible into [`Static`]; `()` is `None`.
///
/// ```
/// use nnx_core::static_list;
/// assert_eq!(static_list!["a", 2, false].to_string(), "['a', 2, False]");
/// ```
#[macro_export]
macro_rules! static_list {
    ($($item:expr),* $(,)?) => {
        $crate::Static::List(vec![$($crate::Static::from($item)),*])
    };
}

/// A static tuple (`('a', 'b', None)`) from values convertible into [`Static`]; `()` is `None`.
///
/// ```
/// use nnx_core::static_tuple;
/// assert_eq!(static_tuple!["a", "b", ()].to_string(), "('a', 'b', None)");
/// ```
#[macro_export]
macro_rules! static_tuple {
    ($($item:expr),* $(,)?) => {
        $crate::Static::Tuple(vec![$($crate::Static::from($item)),*])
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_reprs() {
        assert_eq!(Static::from(1.0f64).to_string(), "1.0");
        assert_eq!(Static::from(1e-5f64).to_string(), "1e-05");
        assert_eq!(Static::from(0.1f64).to_string(), "0.1");
        assert_eq!(Static::Tuple(vec![Static::from("a")]).to_string(), "('a',)");
        assert_eq!(
            Static::Dict(vec![("k".into(), Static::None)]).to_string(),
            "{'k': None}"
        );
    }

    #[test]
    fn equality_is_structural_and_reflexive() {
        assert_eq!(Static::Float(f64::NAN), Static::Float(f64::NAN));
        assert_ne!(Static::Int(1), Static::Float(1.0));
        assert_ne!(Static::List(vec![]), Static::Tuple(vec![]));
    }
}
