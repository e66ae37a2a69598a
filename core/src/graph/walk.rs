//! The walk over a graph's objects (Flax's `iter_modules`), for operations that visit every
//! module: [`set_attributes`], `random::rng_streams`.

use super::{GraphValue, IdSet, Key, Object, Path, Value};
use crate::error::{Error, Result};

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
    let mut seen: IdSet = IdSet::default();
    // Values still to visit with their paths, the next one last (an explicit stack, so
    // deep graphs do not recurse).
    let mut stack: Vec<(Path, Value)> = vec![(Path::root(), root.to_value())];
    while let Some((path, value)) = stack.pop() {
        let mut children: Vec<(Key, Value)> = match &value {
            Value::Object(o) => {
                if !seen.insert(o.id()) || !visit(&path, o)? {
                    continue;
                }
                (o.attributes().into_iter())
                    .map(|(k, v)| (Key::Str(k), v))
                    .collect()
            }
            Value::List(l) => {
                if !seen.insert(l.id()) {
                    continue;
                }
                (0_usize..).map(Key::from).zip(l.items()).collect()
            }
            Value::Dict(d) => {
                if !seen.insert(d.id()) {
                    continue;
                }
                d.entries()
            }
            Value::Tuple(items) => (0_usize..).map(Key::from).zip(items.clone()).collect(),
            Value::Static(_) | Value::Array(_) | Value::Variable(_) => continue,
        };
        children.sort_by(|a, b| b.0.cmp(&a.0));
        stack.extend(children.into_iter().map(|(k, v)| (path.child(k), v)));
    }
    Ok(())
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
