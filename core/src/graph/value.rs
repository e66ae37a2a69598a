//! What an attribute (or a container element) can hold.

use super::node::{Dict, List, Object};
use super::static_value::Static;
use super::variable::Variable;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The value of an attribute, a list element or a dict entry.
///
/// `Variable`, `Object`, `List` and `Dict` are handles with identity (shared references and
/// cycles are preserved by every graph operation); `Array` and `Tuple` are plain values;
/// `Static` values are part of the graph's structure rather than its state.
#[derive(Clone, Debug)]
pub enum Value {
    /// A static value (`None`, numbers, strings, and lists/tuples/dicts of them).
    Static(Static),
    /// A raw array attribute (state, but not a Variable).
    Array(Tensor),
    /// A Variable.
    Variable(Variable),
    /// An object (a Module, `Rngs`, …).
    Object(Object),
    /// A mutable list with identity (`nnx.List`).
    List(List),
    /// A mutable dict with identity (`nnx.Dict`).
    Dict(Dict),
    /// An immutable tuple holding data (a tuple of statics is [`Static::Tuple`]).
    Tuple(Vec<Value>),
    /// A plain dict without identity (a Python `dict` where Flax takes pytrees): like a
    /// tuple with keys, described and copied at every occurrence, so the same map given
    /// twice is two maps while the Variables and objects inside stay shared. Entries in
    /// key order. A map of statics is [`Static::Dict`] when its keys are strings.
    Map(std::collections::BTreeMap<super::Key, Value>),
}

impl Value {
    /// A short description of the kind of value, for error messages.
    pub fn kind_name(&self) -> String {
        match self {
            Value::Static(s) => format!("the static value {s}"),
            Value::Array(t) => format!("an array of shape {:?}", t.shape()),
            Value::Variable(v) => format!("a {} variable", v.type_name()),
            Value::Object(o) => format!("a '{}' object", o.type_name()),
            Value::List(_) => "a List".to_owned(),
            Value::Dict(_) => "a Dict".to_owned(),
            Value::Tuple(_) => "a tuple".to_owned(),
            Value::Map(_) => "a dict".to_owned(),
        }
    }

    /// A plain dict ([`Value::Map`]) of these entries; if every value is static and every
    /// key a string the result is a [`Static::Dict`].
    ///
    /// ```
    /// use nnx_core::{Param, Tensor, Value};
    /// let w = Param::new(Tensor::ones(&[2]));
    /// let d = Value::map([("w", Value::from(&w)), ("n", Value::from(3))]);
    /// assert!(matches!(d, Value::Map(_)));
    /// assert!(matches!(Value::map([("n", Value::from(3))]), Value::Static(_)));
    /// ```
    pub fn map<K: Into<super::Key>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
        let entries: std::collections::BTreeMap<super::Key, Value> =
            entries.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let statics: Option<Vec<(String, Static)>> = (entries.iter())
            .map(|(k, v)| match (k, v) {
                (super::Key::Str(k), Value::Static(s)) => Some((k.clone(), s.clone())),
                _ => None,
            })
            .collect();
        match statics {
            Some(statics) => Value::Static(Static::Dict(statics.into_iter().collect())),
            None => Value::Map(entries),
        }
    }

    /// The children of a plain value that holds others (a tuple's items by position, a
    /// map's entries by key), in key order; `None` for anything else.
    pub fn pytree_children(&self) -> Option<Vec<(super::Key, Value)>> {
        match self {
            Value::Tuple(items) => Some(
                (0_usize..)
                    .map(super::Key::from)
                    .zip(items.iter().cloned())
                    .collect(),
            ),
            Value::Map(entries) => Some(
                (entries.iter())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The same kind of plain container as `self` (a tuple or a map) holding `children`
    /// (given in `self`'s key order); `self` unchanged for anything else.
    pub fn with_pytree_children(&self, children: Vec<(super::Key, Value)>) -> Value {
        match self {
            Value::Tuple(_) => Value::Tuple(children.into_iter().map(|(_, v)| v).collect()),
            Value::Map(_) => Value::Map(children.into_iter().collect()),
            other => other.clone(),
        }
    }

    /// The child at `key`: a plain map's or tuple's entry (`d['a']`, `t[0]`), a [`Dict`]'s
    /// entry, a [`List`]'s item, an object's attribute.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`](crate::Error::KeyNotFound) when there is none (or `self`
    /// holds nothing).
    pub fn entry(&self, key: impl Into<super::Key>) -> crate::Result<Value> {
        let key = key.into();
        super::update::child(self, &key).ok_or_else(|| crate::Error::KeyNotFound {
            container: match self {
                Value::Tuple(_) => "tuple",
                Value::Map(_) | Value::Dict(_) => "dict",
                Value::List(_) => "List",
                Value::Object(_) => "object",
                _ => "a value without children",
            },
            key: key.to_string(),
            available: (super::walk::children(self).iter())
                .map(|(k, _)| k.to_string())
                .collect(),
        })
    }

    /// A tuple of values; if every item is static the result is a [`Static::Tuple`].
    pub fn tuple(items: Vec<Value>) -> Value {
        if items.iter().all(|v| matches!(v, Value::Static(_))) {
            let statics = items
                .into_iter()
                .filter_map(|v| match v {
                    Value::Static(s) => Some(s),
                    _ => None,
                })
                .collect();
            Value::Static(Static::Tuple(statics))
        } else {
            Value::Tuple(items)
        }
    }

    /// The variable, if this is one.
    pub fn as_variable(&self) -> Option<&Variable> {
        match self {
            Value::Variable(v) => Some(v),
            _ => None,
        }
    }

    /// The array held: a raw array, or a Variable's value.
    ///
    /// # Errors
    /// [`Error::WrongValueKind`] for any other kind of value.
    pub fn as_tensor(&self) -> Result<Tensor> {
        match self {
            Value::Array(t) => Ok(t.clone()),
            Value::Variable(v) => Ok(v.value()),
            other => Err(Error::WrongValueKind {
                expected: "an array",
                found: other.kind_name(),
            }),
        }
    }

    /// The Variable held, as a `Result` (convenient with `?` in transformed functions).
    ///
    /// # Errors
    /// [`Error::WrongValueKind`] for any other kind of value.
    pub fn variable(&self) -> Result<Variable> {
        self.as_variable()
            .cloned()
            .ok_or_else(|| Error::WrongValueKind {
                expected: "a Variable",
                found: self.kind_name(),
            })
    }

    /// The object held, as a `Result` (convenient with `?` in transformed functions).
    ///
    /// # Errors
    /// [`Error::WrongValueKind`] for any other kind of value.
    pub fn object(&self) -> Result<Object> {
        self.as_object()
            .cloned()
            .ok_or_else(|| Error::WrongValueKind {
                expected: "an object",
                found: self.kind_name(),
            })
    }

    /// The object, if this is one.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The static value, if this is one.
    pub fn as_static(&self) -> Option<&Static> {
        match self {
            Value::Static(s) => Some(s),
            _ => None,
        }
    }

    /// Whether two values are the same value: identical handles for Variables, objects and
    /// containers (Python's `is`), equal statics, bit-identical arrays, and tuples and maps
    /// of same values.
    pub fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Static(a), Value::Static(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => a.identical(b),
            (Value::Variable(a), Value::Variable(b)) => a.ptr_eq(b),
            (Value::Object(a), Value::Object(b)) => a.ptr_eq(b),
            (Value::List(a), Value::List(b)) => a.ptr_eq(b),
            (Value::Dict(a), Value::Dict(b)) => a.ptr_eq(b),
            (Value::Tuple(a), Value::Tuple(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_as(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && (a.iter().zip(b)).all(|((ka, x), (kb, y))| ka == kb && x.same_as(y))
            }
            _ => false,
        }
    }
}

impl From<Static> for Value {
    fn from(v: Static) -> Value {
        Value::Static(v)
    }
}

impl From<Tensor> for Value {
    fn from(v: Tensor) -> Value {
        Value::Array(v)
    }
}

impl From<&Tensor> for Value {
    fn from(v: &Tensor) -> Value {
        Value::Array(v.clone())
    }
}

impl From<Variable> for Value {
    fn from(v: Variable) -> Value {
        Value::Variable(v)
    }
}

impl From<&Variable> for Value {
    fn from(v: &Variable) -> Value {
        Value::Variable(v.clone())
    }
}

impl From<Object> for Value {
    fn from(v: Object) -> Value {
        Value::Object(v)
    }
}

impl From<&Object> for Value {
    fn from(v: &Object) -> Value {
        Value::Object(v.clone())
    }
}

impl From<List> for Value {
    fn from(v: List) -> Value {
        Value::List(v)
    }
}

impl From<Dict> for Value {
    fn from(v: Dict) -> Value {
        Value::Dict(v)
    }
}

macro_rules! value_from_static {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Static(Static::from(v))
            }
        }
    )*};
}
value_from_static!(bool, i64, i32, usize, f64, &str, String, ());

/// Types that a graph operation (`split`, `merge`, `state`, `update`, `clone`) can take as
/// its root and give back from `merge`: objects, lists, dicts, Variables (and typed Variable
/// handles such as `Param`), `Rngs`, typed modules (`#[derive(Module)]`), and [`Value`]
/// itself.
pub trait GraphValue: super::ToValue + super::FromValue {}

impl GraphValue for Value {}
impl GraphValue for Object {}
impl GraphValue for List {}
impl GraphValue for Dict {}
impl GraphValue for Variable {}
