//! `transform_metadata`: keeping `sharding` axis names in step with the axes a transform
//! removes and inserts (Flax's `PARTITION_NAME`, SEMANTICS.md V7).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::graph::{Path, Static};
use crate::lift::Lowered;

/// The Variable metadata keys that name array axes.
const AXIS_NAME_KEYS: [&str; 2] = ["sharding", "out_sharding"];

/// Entering a transform mapped on `axis`: removes the axis name at `axis` from every
/// axis-name metadata entry that is a sequence (`None` entries are left alone). The removed
/// entry must be `name`; `location` names the Variable in the error
/// ([`Error::AxisNameMismatch`]) and is only called when there is one.
pub(crate) fn remove_axis(
    metadata: &mut [(String, Static)],
    axis: usize,
    name: &str,
    location: impl FnOnce() -> String,
) -> Result<()> {
    for (key, value) in metadata
        .iter_mut()
        .filter(|(k, _)| AXIS_NAME_KEYS.contains(&k.as_str()))
    {
        let Some(items) = value.as_sequence() else {
            continue;
        };
        match items.get(axis) {
            Some(Static::Str(found)) if found == name => {}
            found => {
                let found = found.map_or_else(|| "nothing".to_owned(), ToString::to_string);
                return Err(Error::AxisNameMismatch {
                    name: name.to_owned(),
                    axis,
                    sequence: value.to_string(),
                    found,
                    location: format!("{}.{key}", location()),
                });
            }
        }
        let mut items = items.to_vec();
        items.remove(axis);
        *value = rebuild(value, items);
    }
    Ok(())
}

/// Leaving a transform with the batch axis at `axis` (already normalised against the
/// output's rank, which fixes Flax's negative-axis bug): inserts `name` at `axis` in every
/// non-empty axis-name sequence, padding with `None` first if it is too short.
pub(crate) fn add_axis(metadata: &mut [(String, Static)], axis: usize, name: &str) {
    for (_, value) in metadata
        .iter_mut()
        .filter(|(k, _)| AXIS_NAME_KEYS.contains(&k.as_str()))
    {
        let Some(items) = value.as_sequence().filter(|items| !items.is_empty()) else {
            continue;
        };
        let mut items = items.to_vec();
        while items.len() < axis {
            items.push(Static::None);
        }
        items.insert(axis, Static::Str(name.to_owned()));
        *value = rebuild(value, items);
    }
}

/// Entering a transform that maps leaf `i` of `lowered` on `axes[i]`: [`remove_axis`] on
/// the metadata of each mapped leaf's Variable.
pub(crate) fn enter_partition<L>(
    lowered: &mut Lowered<L>,
    axes: &[Option<usize>],
    name: &str,
) -> Result<()> {
    let axes: HashMap<Path, usize> = (lowered.leaves().iter().zip(axes))
        .filter_map(|(l, a)| a.map(|a| (l.path.clone(), a)))
        .collect();
    lowered.edit_variable_metadata(|leaf, metadata| match axes.get(&leaf.path) {
        Some(&axis) => remove_axis(metadata, axis, name, || leaf.location()),
        None => Ok(()),
    })
}

/// Leaving a transform that stacks output leaf `j` along `axes[j]`: [`add_axis`] on the
/// metadata of each stacked leaf's Variable.
pub(crate) fn leave_partition<L>(
    outputs: &mut Lowered<L>,
    axes: &[Option<usize>],
    name: &str,
) -> Result<()> {
    let axes: HashMap<Path, usize> = (outputs.leaves().iter().zip(axes))
        .filter_map(|(l, a)| a.map(|a| (l.path.clone(), a)))
        .collect();
    outputs.edit_variable_metadata(|leaf, metadata| {
        if let Some(&axis) = axes.get(&leaf.path) {
            add_axis(metadata, axis, name);
        }
        Ok(())
    })
}

/// A sequence of the same kind (list or tuple) as `like`.
fn rebuild(like: &Static, items: Vec<Static>) -> Static {
    match like {
        Static::List(_) => Static::List(items),
        _ => Static::Tuple(items),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::static_tuple;

    fn md(v: Static) -> Vec<(String, Static)> {
        vec![("sharding".to_owned(), v)]
    }

    #[test]
    fn removes_and_inserts_the_partition_name() {
        let mut m = md(static_tuple!["a", "b", ()]);
        remove_axis(&mut m, 1, "b", || "args[0].param".to_owned()).unwrap();
        assert_eq!(m[0].1, static_tuple!["a", ()]);
        add_axis(&mut m, 1, "b");
        assert_eq!(m[0].1, static_tuple!["a", "b", ()]);
    }

    #[test]
    fn removing_the_wrong_name_is_an_error() {
        let mut m = md(static_tuple![(), "a", "b"]);
        let err = remove_axis(&mut m, 1, "b", || "args[0].p".to_owned()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Expected to remove 'b' at index 1 from (None, 'a', 'b'), but found 'a' (args[0].p.sharding)"
        );
    }

    #[test]
    fn inserting_pads_with_none_and_skips_empty_or_none() {
        let mut m = md(static_tuple!["a"]);
        add_axis(&mut m, 2, "b");
        assert_eq!(m[0].1, static_tuple!["a", (), "b"]);
        let mut none = md(Static::None);
        add_axis(&mut none, 0, "b");
        assert_eq!(none[0].1, Static::None);
    }
}
