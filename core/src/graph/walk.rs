//! The walk over a graph's objects (Flax's `iter_modules`), for operations that visit every
//! module: [`set_attributes`], `random::rng_streams`.

use super::{GraphValue, IdMap, IdSet, Key, NodeId, Object, Path, Value};
use crate::error::{Error, Result};

/// The identity of a graph node or Variable (`None` for tuples, statics and arrays, which
/// are values, met afresh wherever they occur).
fn identity(value: &Value) -> Option<NodeId> {
    match value {
        Value::Object(o) => Some(o.id()),
        Value::List(l) => Some(l.id()),
        Value::Dict(d) => Some(d.id()),
        Value::Variable(v) => Some(v.id()),
        Value::Tuple(_) | Value::Map(_) | Value::Static(_) | Value::Array(_) => None,
    }
}

/// A value's children, by key in sorted order.
pub(super) fn children(value: &Value) -> Vec<(Key, Value)> {
    let mut children: Vec<(Key, Value)> = match value {
        Value::Object(o) => (o.attributes().into_iter())
            .map(|(k, v)| (Key::Str(k), v))
            .collect(),
        Value::List(l) => (0_usize..).map(Key::from).zip(l.items()).collect(),
        Value::Dict(d) => d.entries(),
        Value::Tuple(_) | Value::Map(_) => value.pytree_children().unwrap_or_default(),
        Value::Static(_) | Value::Array(_) | Value::Variable(_) => Vec::new(),
    };
    children.sort_by(|a, b| a.0.cmp(&b.0));
    children
}

/// The one traversal of a graph's values: depth first from `root`, children in sorted key
/// order, through objects, lists, dicts and tuples. `enter` sees every occurrence of every
/// value with its path and whether it is the first occurrence of that graph node or
/// Variable (always for tuples, statics and arrays); it returns whether to go into the
/// value's children, which happens on a first occurrence only. `leave` sees each value
/// `enter` was first shown after its children (post-order). An explicit stack, so deep
/// graphs do not recurse.
fn traverse(
    root: &Value,
    mut enter: impl FnMut(&Path, &Value, bool) -> Result<bool>,
    mut leave: impl FnMut(&Path, &Value) -> Result<()>,
) -> Result<()> {
    enum Step {
        Enter(Path, Value),
        Leave(Path, Value),
    }
    let mut seen: IdSet = IdSet::default();
    let mut stack = vec![Step::Enter(Path::root(), root.clone())];
    while let Some(step) = stack.pop() {
        let (path, value) = match step {
            Step::Leave(path, value) => {
                leave(&path, &value)?;
                continue;
            }
            Step::Enter(path, value) => (path, value),
        };
        let first = identity(&value).is_none_or(|id| seen.insert(id));
        let descend = enter(&path, &value, first)?;
        if !first {
            continue;
        }
        let children = if descend {
            children(&value)
        } else {
            Vec::new()
        };
        stack.push(Step::Leave(path.clone(), value));
        stack.extend((children.into_iter().rev()).map(|(k, v)| Step::Enter(path.child(k), v)));
    }
    Ok(())
}

/// Calls `visit` on every object reachable from `root` (the root included), each once, with
/// its path, in the traversal order of every graph operation: pre-order over children in
/// sorted key order, through objects, lists, dicts and tuples. `visit` returns whether to
/// descend into the object's attributes.
///
/// # Errors
/// The first error `visit` returns.
pub fn walk_objects(
    root: &impl GraphValue,
    mut visit: impl FnMut(&Path, &Object) -> Result<bool>,
) -> Result<()> {
    traverse(
        &root.to_value(),
        |path, value, first| match value {
            Value::Object(o) if first => visit(path, o),
            _ => Ok(first),
        },
        |_, _| Ok(()),
    )
}

/// Every value of the graph with its path (`nnx.iter_graph`): post-order (a node after its
/// children), children in sorted key order, each object, list, dict and Variable once (at
/// its first path), tuples, static values and arrays wherever they occur; the root last.
///
/// ```
/// use nnx_core::{Object, Param, Tensor, graph};
/// # fn main() -> nnx_core::Result<()> {
/// let sub = Object::new("Sub").with("w", Param::new(Tensor::ones([2])))?.with("n", 3)?;
/// let m = Object::new("M").with("b", &sub)?.with("a", &sub)?;
/// let paths: Vec<String> = graph::iter_graph(&m)?.iter().map(|(p, _)| p.slashed()).collect();
/// assert_eq!(paths, ["a/n", "a/w", "a", "<root>"]); // `b` is `a`, met once
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// None for a well-formed graph.
pub fn iter_graph(root: &impl GraphValue) -> Result<Vec<(Path, Value)>> {
    let mut out = Vec::new();
    traverse(
        &root.to_value(),
        |_, _, first| Ok(first),
        |path, value| {
            out.push((path.clone(), value.clone()));
            Ok(())
        },
    )?;
    Ok(out)
}

/// The paths of every object, list, dict and Variable reachable along more than one path
/// (`nnx.find_duplicates`): one list per shared value, its paths in traversal order, the
/// lists in the order their values are first met. A shared node's own children are
/// listed only if they are shared otherwise as well.
///
/// ```
/// use nnx_core::{Object, Param, Tensor, graph};
/// # fn main() -> nnx_core::Result<()> {
/// let sub = Object::new("Sub").with("w", Param::new(Tensor::ones([2])))?;
/// let m = Object::new("M").with("b", &sub)?.with("a", &sub)?;
/// let dups = graph::find_duplicates(&m)?;
/// let dups: Vec<Vec<String>> = dups.iter().map(|d| d.iter().map(|p| p.slashed()).collect()).collect();
/// assert_eq!(dups, [["a", "b"]]);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// None for a well-formed graph.
pub fn find_duplicates(root: &impl GraphValue) -> Result<Vec<Vec<Path>>> {
    let mut paths: Vec<Vec<Path>> = Vec::new();
    let mut index: IdMap<usize> = IdMap::default();
    traverse(
        &root.to_value(),
        |path, value, first| {
            if let Some(id) = identity(value) {
                let i = *index.entry(id).or_insert_with(|| {
                    paths.push(Vec::new());
                    paths.len() - 1
                });
                paths[i].push(path.clone());
            }
            Ok(first)
        },
        |_, _| Ok(()),
    )?;
    paths.retain(|p| p.len() > 1);
    Ok(paths)
}

/// Maps every value of the graph bottom-up (`nnx.recursive_map`): in [`iter_graph`]'s
/// order, each child of a node is replaced by what `f` returned for it (in place, as Flax
/// sets the attributes), then `f` is called on the node itself with its path; a shared node
/// or Variable is mapped once and its result used wherever it occurs. Returns `f`'s result
/// for the root.
///
/// ```
/// use nnx_core::{Object, Param, Tensor, Value, graph};
/// # fn main() -> nnx_core::Result<()> {
/// let sub = Object::new("Sub").with("w", Param::new(Tensor::ones([2])))?;
/// let m = Object::new("M").with("a", &sub)?.with("b", &sub)?;
/// let doubled = graph::recursive_map(&m, |_, value| match value {
///     Value::Variable(v) => Ok(Value::from(Param::new((&v.value() * 2.0)?))),
///     other => Ok(other),
/// })?;
/// let m2 = doubled.object()?;
/// assert_eq!(m2.object("a")?.value("w")?.to_vec::<f32>()?, vec![2.0, 2.0]);
/// assert!(m2.object("a")?.ptr_eq(&m2.object("b")?));
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// The first error `f` returns; setting a child of a node owned by another trace level.
pub fn recursive_map(
    root: &impl GraphValue,
    mut f: impl FnMut(&Path, Value) -> Result<Value>,
) -> Result<Value> {
    // What `f` gave: by identity for nodes and Variables, by path for the rest.
    let mut mapped: IdMap<Value> = IdMap::default();
    let mut by_path: std::collections::HashMap<Path, Value> = std::collections::HashMap::new();
    let mut result = None;
    for (path, value) in iter_graph(root)? {
        // Children are mapped before their node: put their results in.
        let mut value = value;
        let mut items = Vec::new();
        for (key, child) in children(&value) {
            let new = match identity(&child) {
                Some(id) => mapped.get(&id).cloned(),
                None => by_path.remove(&path.child(key.clone())),
            };
            let new = new.unwrap_or_else(|| child.clone());
            if !new.same_as(&child) {
                match (&value, &key) {
                    (Value::Object(o), Key::Str(name)) => o.set(name, new.clone())?,
                    (Value::List(l), Key::Int(i)) => l.set(*i as usize, new.clone())?,
                    (Value::Dict(d), key) => d.insert(key.clone(), new.clone())?,
                    _ => {}
                }
            }
            items.push((key, new));
        }
        if let Value::Tuple(_) | Value::Map(_) = value {
            value = value.with_pytree_children(items);
        }
        let id = identity(&value);
        let out = f(&path, value)?;
        if path.is_empty() {
            result = Some(out.clone());
        }
        match id {
            Some(id) => {
                mapped.insert(id, out);
            }
            None => {
                by_path.insert(path, out);
            }
        }
    }
    result.ok_or_else(|| Error::internal("iter_graph gives the root last"))
}

/// `module.set_attributes(**attributes)`: sets each named attribute on every object
/// reachable from `root` that has it (the root included). With `raise_if_not_found`, an
/// attribute no object has is an error, and nothing is set.
///
/// This is what `train()` / `eval()` do with `deterministic` and `use_running_average`; a
/// typed module reads the new values back with [`TypedModule::from_object`]
/// (`TypedModule::eval` does both).
///
/// ```
/// use nnx_core::{Object, Value, graph};
/// # fn main() -> nnx_core::Result<()> {
/// let dropout = Object::new("Dropout").with("deterministic", false)?;
/// let model = Object::new("Model").with("dropout", &dropout)?;
/// graph::set_attributes(&model, &[("deterministic", Value::from(true))], true)?;
/// assert!(dropout.get("deterministic")?.same_as(&Value::from(true)));
/// assert!(graph::set_attributes(&model, &[("momentum", Value::from(0.9))], true).is_err());
/// # Ok(())
/// # }
/// ```
///
/// [`TypedModule::from_object`]: super::TypedModule::from_object
///
/// # Errors
/// [`Error::AttributesNotFound`] for attributes no object has (with `raise_if_not_found`);
/// the closure rule's error for an object of another trace level.
pub fn set_attributes(
    root: &impl GraphValue,
    attributes: &[(&str, Value)],
    raise_if_not_found: bool,
) -> Result<()> {
    let mut holders: Vec<Object> = Vec::new();
    let mut found = vec![false; attributes.len()];
    walk_objects(root, |_, object| {
        let mut has_any = false;
        for (i, (name, _)) in attributes.iter().enumerate() {
            if object.has(name) {
                found[i] = true;
                has_any = true;
            }
        }
        if has_any {
            holders.push(object.clone());
        }
        Ok(true)
    })?;
    let mut missing: Vec<String> = (attributes.iter().zip(&found))
        .filter(|(_, found)| !**found)
        .map(|((name, _), _)| (*name).to_owned())
        .collect();
    if raise_if_not_found && !missing.is_empty() {
        missing.sort();
        return Err(Error::AttributesNotFound { names: missing });
    }
    for object in holders {
        for (name, value) in attributes {
            if object.has(name) {
                object.set(name, value.clone())?;
            }
        }
    }
    Ok(())
}
