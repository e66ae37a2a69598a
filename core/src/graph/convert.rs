//! [`ToValue`] and [`FromValue`]: Rust types as graph [`Value`]s and back.
//!
//! These are the conversions behind typed transformed functions (`|m: &Mlp, x: &Tensor|`) and
//! the fields of `#[derive(Module)]` structs. Handles convert to themselves (a `Param` field
//! *is* the Variable in the graph, so reference semantics hold); numbers, strings and `bool`s
//! are static values; tuples are tuples; a `Vec` of statics is a static list and a `Vec` of
//! graph values a [`List`] node, a string-keyed `BTreeMap`/`IndexMap` a [`Dict`] node (or a
//! static dict); `Option::None` is `None`.
//!
//! A failed conversion is [`Error::TypeMismatch`] naming the Rust type asked for and what the
//! value was; callers add where it happened with [`Error::within`].

use super::node::NodeKind;
use super::typed_nodes::{remember_node, typed_node};
use super::{Dict, Key, List, Object, Static, Value, Variable};
use crate::error::{Error, Result};
use crate::random::Rngs;
use crate::tensor::Tensor;
use indexmap::IndexMap;
use std::collections::BTreeMap;

/// A Rust value that can be put into the graph: a transformed function's output, an argument,
/// a field of a typed module.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be put into an NNX graph",
    label = "not a graph value",
    note = "graph values are `Tensor`, `Object`, `List`, `Dict`, `Variable` and its typed \
            handles (`Param`, `BatchStat`, `variable_type!` types), `Rngs`, typed modules \
            (`#[derive(Module)]`), static `bool`/integers/floats/`String`, and tuples, `Vec`s \
            and `Option`s of these"
)]
pub trait ToValue {
    /// The value as a graph [`Value`] (handles are shared, not copied).
    fn to_value(&self) -> Value;
}

/// A Rust type that can be read back from a graph [`Value`]: a typed function's argument,
/// a transform's output, a field of a typed module.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be read from an NNX graph",
    label = "not a graph value",
    note = "graph values are `Tensor`, `Object`, `List`, `Dict`, `Variable` and its typed \
            handles (`Param`, `BatchStat`, `variable_type!` types), `Rngs`, typed modules \
            (`#[derive(Module)]`), static `bool`/integers/floats/`String`, and tuples, `Vec`s \
            and `Option`s of these"
)]
pub trait FromValue: Sized {
    /// The type as error messages name it (`Tensor`, `Param`, `Linear`).
    fn expected() -> String;

    /// Reads the value.
    ///
    /// # Errors
    /// [`Error::TypeMismatch`] when the value is of another kind.
    fn from_value(value: &Value) -> Result<Self>;
}

/// The [`Error::TypeMismatch`] for a value that is not a `T`.
pub fn mismatch<T: FromValue>(found: &Value) -> Error {
    Error::TypeMismatch {
        at: String::new(),
        expected: T::expected(),
        found: found.kind_name(),
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

impl FromValue for Value {
    fn expected() -> String {
        "Value".into()
    }

    fn from_value(value: &Value) -> Result<Self> {
        Ok(value.clone())
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

/// Handles and arrays: the value is the handle itself.
macro_rules! handle_conversion {
    ($ty:ty, $name:literal, $variant:ident) => {
        impl ToValue for $ty {
            fn to_value(&self) -> Value {
                Value::$variant(self.clone())
            }
        }

        impl FromValue for $ty {
            fn expected() -> String {
                $name.into()
            }

            fn from_value(value: &Value) -> Result<Self> {
                match value {
                    Value::$variant(v) => Ok(v.clone()),
                    other => Err(mismatch::<Self>(other)),
                }
            }
        }
    };
}

handle_conversion!(Object, "Object", Object);
handle_conversion!(List, "List", List);
handle_conversion!(Dict, "Dict", Dict);
handle_conversion!(Variable, "Variable", Variable);
handle_conversion!(Static, "Static", Static);

impl ToValue for Tensor {
    fn to_value(&self) -> Value {
        Value::Array(self.clone())
    }
}

/// An array argument, or a Variable's value (as `Value::as_tensor`).
impl FromValue for Tensor {
    fn expected() -> String {
        "Tensor".into()
    }

    fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Array(t) => Ok(t.clone()),
            Value::Variable(v) => Ok(v.value()),
            other => Err(mismatch::<Self>(other)),
        }
    }
}

impl ToValue for Rngs {
    fn to_value(&self) -> Value {
        Value::Object(self.as_object().clone())
    }
}

impl FromValue for Rngs {
    fn expected() -> String {
        "Rngs".into()
    }

    fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Object(o) => Rngs::from_object(o.clone()).map_err(|_| mismatch::<Self>(value)),
            other => Err(mismatch::<Self>(other)),
        }
    }
}

/// Static scalars: numbers, strings and `bool`s are static values, as in Flax.
macro_rules! static_conversion {
    ($ty:ty, $name:literal, $pattern:pat => $read:expr) => {
        impl ToValue for $ty {
            fn to_value(&self) -> Value {
                Value::Static(Static::from(self.clone()))
            }
        }

        impl FromValue for $ty {
            fn expected() -> String {
                $name.into()
            }

            fn from_value(value: &Value) -> Result<Self> {
                match value {
                    Value::Static($pattern) => $read.ok_or_else(|| mismatch::<Self>(value)),
                    other => Err(mismatch::<Self>(other)),
                }
            }
        }
    };
}

static_conversion!(bool, "bool", Static::Bool(b) => Some(*b));
static_conversion!(i64, "i64", Static::Int(i) => Some(*i));
static_conversion!(i32, "i32", Static::Int(i) => i32::try_from(*i).ok());
static_conversion!(usize, "usize", Static::Int(i) => usize::try_from(*i).ok());
static_conversion!(f64, "f64", Static::Float(x) => Some(*x));
static_conversion!(f32, "f32", Static::Float(x) => Some(*x as f32));
static_conversion!(String, "String", Static::Str(s) => Some(s.clone()));

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Static(Static::from(self))
    }
}

impl ToValue for () {
    fn to_value(&self) -> Value {
        Value::Static(Static::None)
    }
}

impl FromValue for () {
    fn expected() -> String {
        "()".into()
    }

    fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Static(Static::None) => Ok(()),
            other => Err(mismatch::<Self>(other)),
        }
    }
}

/// `None` is Python's `None` (an absent optional field, `self.bias = None`).
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Static(Static::None),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn expected() -> String {
        format!("Option<{}>", T::expected())
    }

    fn from_value(value: &Value) -> Result<Self> {
        match value {
            Value::Static(Static::None) => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// Items of a sequence as values: `Value::Tuple` items, or a static list's or tuple's items.
fn sequence_items(value: &Value) -> Option<Vec<Value>> {
    match value {
        Value::Tuple(items) => Some(items.clone()),
        Value::List(list) => Some(list.items()),
        Value::Static(s) => s
            .as_sequence()
            .map(|items| items.iter().cloned().map(Value::Static).collect()),
        _ => None,
    }
}

/// The statics of `values`, if every one is static.
fn all_static(values: &[Value]) -> Option<Vec<Static>> {
    values.iter().map(|v| v.as_static().cloned()).collect()
}

macro_rules! tuple_conversion {
    ($len:literal; $($name:ident $index:tt),+) => {
        impl<$($name: ToValue),+> ToValue for ($($name,)+) {
            fn to_value(&self) -> Value {
                let items = vec![$(self.$index.to_value()),+];
                match all_static(&items) {
                    Some(statics) => Value::Static(Static::Tuple(statics)),
                    None => Value::Tuple(items),
                }
            }
        }

        impl<$($name: FromValue),+> FromValue for ($($name,)+) {
            fn expected() -> String {
                let names: Vec<String> = vec![$($name::expected()),+];
                format!("({})", names.join(", "))
            }

            fn from_value(value: &Value) -> Result<Self> {
                match sequence_items(value) {
                    Some(items) if items.len() == $len => Ok(($(
                        $name::from_value(&items[$index]).map_err(|e| e.within(format!("item {}", $index)))?,
                    )+)),
                    _ => Err(mismatch::<Self>(value)),
                }
            }
        }
    };
}

tuple_conversion!(1; A 0);
tuple_conversion!(2; A 0, B 1);
tuple_conversion!(3; A 0, B 1, C 2);
tuple_conversion!(4; A 0, B 1, C 2, D 3);
tuple_conversion!(5; A 0, B 1, C 2, D 3, E 4);
tuple_conversion!(6; A 0, B 1, C 2, D 3, E 4, F 5);

/// The value of a collection: static if every child is, else a node of `kind` (the same
/// node each time for the same handles, as for typed modules, see
/// [`TypedModule`](super::TypedModule)).
fn collection_value(
    kind: NodeKind,
    children: Vec<(Key, Value)>,
    static_form: impl FnOnce(Vec<(Key, Static)>) -> Static,
) -> Value {
    let statics: Option<Vec<(Key, Static)>> = (children.iter())
        .map(|(k, v)| v.as_static().map(|s| (k.clone(), s.clone())))
        .collect();
    if let Some(statics) = statics {
        return Value::Static(static_form(statics));
    }
    match kind {
        NodeKind::Dict => Value::Dict(Dict(typed_node(NodeKind::Dict, "Dict", children))),
        _ => Value::List(List(typed_node(NodeKind::List, "List", children))),
    }
}

/// A `Vec` of statics is a static list; a `Vec` of anything else a [`List`] node
/// (`nnx.List`), one node for the same items.
impl<T: ToValue> ToValue for Vec<T> {
    fn to_value(&self) -> Value {
        let children = (self.iter().enumerate())
            .map(|(i, v)| (Key::from(i), v.to_value()))
            .collect();
        collection_value(NodeKind::List, children, |statics| {
            Static::List(statics.into_iter().map(|(_, s)| s).collect())
        })
    }
}

impl<T: FromValue> FromValue for Vec<T> {
    fn expected() -> String {
        format!("Vec<{}>", T::expected())
    }

    fn from_value(value: &Value) -> Result<Self> {
        let items = sequence_items(value).ok_or_else(|| mismatch::<Self>(value))?;
        let out = items
            .iter()
            .enumerate()
            .map(|(i, v)| T::from_value(v).map_err(|e| e.within(format!("item {i}"))))
            .collect::<Result<Vec<T>>>()?;
        if let Value::List(list) = value {
            let children: Vec<(Key, Value)> = items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Key::from(i), v))
                .collect();
            remember_node(&list.0, "List", &children);
        }
        Ok(out)
    }
}

/// A map key as the string it was made from.
fn key_name(key: Key) -> String {
    match key {
        Key::Str(s) => s,
        Key::Int(i) => i.to_string(),
    }
}

/// Entries of a string-keyed map value: a [`Dict`] node's, a plain map's, or a static
/// dict's.
fn map_entries(value: &Value) -> Option<Vec<(String, Value)>> {
    let by_string = |(k, v): (Key, Value)| match k {
        Key::Str(k) => Some((k, v)),
        Key::Int(_) => None,
    };
    match value {
        Value::Dict(dict) => dict.entries().into_iter().map(by_string).collect(),
        Value::Map(_) => (value.pytree_children()?.into_iter())
            .map(by_string)
            .collect(),
        Value::Static(Static::Dict(entries)) => Some(
            (entries.iter())
                .map(|(k, v)| (k.clone(), Value::Static(v.clone())))
                .collect(),
        ),
        _ => None,
    }
}

/// String-keyed maps: a static dict if every value is static, else a [`Dict`] node
/// (`nnx.Dict`), one node for the same entries.
macro_rules! map_conversion {
    ($map:ident, $name:literal) => {
        impl<T: ToValue> ToValue for $map<String, T> {
            fn to_value(&self) -> Value {
                let children = (self.iter())
                    .map(|(k, v)| (Key::from(k), v.to_value()))
                    .collect();
                collection_value(NodeKind::Dict, children, |statics| {
                    Static::Dict(
                        (statics.into_iter())
                            .map(|(k, s)| (key_name(k), s))
                            .collect(),
                    )
                })
            }
        }

        impl<T: FromValue> FromValue for $map<String, T> {
            fn expected() -> String {
                format!("{}<String, {}>", $name, T::expected())
            }

            fn from_value(value: &Value) -> Result<Self> {
                let entries = map_entries(value).ok_or_else(|| mismatch::<Self>(value))?;
                let out = (entries.iter())
                    .map(|(k, v)| {
                        T::from_value(v)
                            .map(|t| (k.clone(), t))
                            .map_err(|e| e.within(format!("entry {k:?}")))
                    })
                    .collect::<Result<Self>>()?;
                if let Value::Dict(dict) = value {
                    let children: Vec<(Key, Value)> = entries
                        .into_iter()
                        .map(|(k, v)| (Key::from(k), v))
                        .collect();
                    remember_node(&dict.0, "Dict", &children);
                }
                Ok(out)
            }
        }
    };
}

map_conversion!(BTreeMap, "BTreeMap");
map_conversion!(IndexMap, "IndexMap");

/// A State crosses a transform as the nested [`Dict`](super::Dict)s of its leaves (the
/// graph's own Variables and raw arrays), so a function can take and return States (the
/// functional style); the Variables are lowered, raised and written back as any others.
impl ToValue for super::State {
    fn to_value(&self) -> Value {
        if let Some(root) = self.get(&super::Path::root()) {
            return leaf_value(root);
        }
        let root = super::Dict::new();
        for (path, leaf) in self.iter() {
            let keys = path.keys();
            let Some((last, inner)) = keys.split_last() else {
                continue;
            };
            let mut at = root.clone();
            for key in inner {
                at = match at.get(key.clone()) {
                    Ok(Value::Dict(d)) => d,
                    _ => {
                        let d = super::Dict::new();
                        // A new key on a new Dict: cannot fail.
                        let _ = at.insert(key.clone(), d.clone());
                        d
                    }
                };
            }
            let _ = at.insert(last.clone(), leaf_value(leaf));
        }
        Value::Dict(root)
    }
}

fn leaf_value(leaf: &super::Leaf) -> Value {
    match leaf {
        super::Leaf::Variable(v) => Value::Variable(v.clone()),
        super::Leaf::Array(t) => Value::Array(t.clone()),
    }
}

impl FromValue for super::State {
    fn expected() -> String {
        "a State (nested Dicts of Variables and arrays)".into()
    }

    fn from_value(value: &Value) -> Result<super::State> {
        let mut state = super::State::new();
        let mut stack = vec![(super::Path::root(), value.clone())];
        while let Some((path, value)) = stack.pop() {
            match value {
                Value::Dict(d) => {
                    stack.extend((d.entries().into_iter()).map(|(k, v)| (path.child(k), v)))
                }
                Value::Variable(v) => {
                    state.insert(path, super::Leaf::Variable(v));
                }
                Value::Array(t) => {
                    state.insert(path, super::Leaf::Array(t));
                }
                other => return Err(mismatch::<super::State>(&other)),
            }
        }
        Ok(state)
    }
}

impl super::GraphValue for super::State {}

/// A GraphDef crosses a transform as a static value (part of the cache key).
impl ToValue for super::GraphDef {
    fn to_value(&self) -> Value {
        Value::Static(Static::GraphDef(std::sync::Arc::new(self.clone())))
    }
}

impl FromValue for super::GraphDef {
    fn expected() -> String {
        "a GraphDef".into()
    }

    fn from_value(value: &Value) -> Result<super::GraphDef> {
        match value {
            Value::Static(Static::GraphDef(def)) => Ok(def.as_ref().clone()),
            other => Err(mismatch::<super::GraphDef>(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Param;

    #[test]
    fn statics_and_tuples_round_trip() {
        let v = (3usize, "a".to_owned(), true).to_value();
        assert!(matches!(v, Value::Static(Static::Tuple(_))));
        let back: (usize, String, bool) = FromValue::from_value(&v).unwrap();
        assert_eq!(back, (3, "a".to_owned(), true));
        let t = (Tensor::ones([2]), 1i64).to_value();
        assert!(matches!(t, Value::Tuple(_)));
    }

    #[test]
    fn mismatches_name_the_rust_type_and_the_value() {
        let err = Tensor::from_value(&Value::Object(Object::new("Weights"))).unwrap_err();
        assert_eq!(err.to_string(), "expected Tensor, found a 'Weights' object");
        let nested = <(Tensor, usize)>::from_value(&(Tensor::ones([1]), 2.5f64).to_value())
            .unwrap_err()
            .within("argument 1");
        assert_eq!(
            nested.to_string(),
            "argument 1, item 1: expected usize, found the static value 2.5"
        );
    }

    #[test]
    fn vecs_of_handles_are_lists_with_identity() {
        let items = [
            Param::new(Tensor::ones([1])),
            Param::new(Tensor::zeros([1])),
        ];
        let vars: Vec<Variable> = items.iter().map(|p| (**p).clone()).collect();
        let (Value::List(a), Value::List(b)) = (vars.to_value(), vars.to_value()) else {
            panic!("expected lists");
        };
        assert!(a.ptr_eq(&b));
        let mut layers = BTreeMap::new();
        layers.insert("a".to_owned(), vars[0].clone());
        let (Value::Dict(d), Value::Dict(e)) = (layers.to_value(), layers.to_value()) else {
            panic!("expected dicts");
        };
        assert!(d.ptr_eq(&e));
        let back: BTreeMap<String, Variable> = FromValue::from_value(&Value::Dict(d)).unwrap();
        assert!(back["a"].ptr_eq(&vars[0]));
        let mut sizes = IndexMap::new();
        sizes.insert("b".to_owned(), 2usize);
        sizes.insert("a".to_owned(), 1usize);
        let stat = sizes.to_value();
        assert!(stat.same_as(&Value::Static(Static::Dict(vec![
            ("b".to_owned(), Static::Int(2)),
            ("a".to_owned(), Static::Int(1))
        ]))));
        let back: IndexMap<String, usize> = FromValue::from_value(&stat).unwrap();
        assert_eq!(back, sizes);
        let statics = vec![1usize, 2].to_value();
        assert!(statics.same_as(&Value::Static(Static::List(vec![
            Static::Int(1),
            Static::Int(2)
        ]))));
    }
}
