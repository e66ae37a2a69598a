//! Step 4 without graph updates (`graph_updates(false)`): only Variables' values cross
//! back, and the output may not return the inputs' own Variables or objects.

use super::{Lowered, RootLabel, build_output, push_keys};
use crate::error::{Error, Result};
use crate::graph::{Key, NodeDef, Path, Value};
use crate::tensor::Tensor;

/// Step 4 without graph updates (`graph_updates(false)`): only the inputs' Variables take
/// their new values, in place; structural changes made inside (attributes added, deleted or
/// replaced) are dropped, and the output is built from new objects (holding the inputs'
/// own Variables where it returns them, as a `scan` carry does). Call
/// [`check_outputs_are_new`] on the outputs first where returning inputs is an error.
///
/// # Errors
/// As [`write_back`](super::write_back); the closure rule's error for a Variable of another trace level.
pub fn write_back_values<L>(
    inputs: &Lowered<L>,
    outputs: &Lowered<L>,
    values: Vec<Tensor>,
) -> Result<Value> {
    // The inputs' Variables are reused (their values overwritten); their objects, lists
    // and dicts are not: the rebuilt ones are new, and the caller's keep their structure.
    let variables_only: Vec<Value> = (inputs.by_index.iter())
        .map(|v| match v {
            Value::Variable(_) => v.clone(),
            _ => Value::Static(crate::graph::Static::None),
        })
        .collect();
    build_output(outputs, values, &variables_only)
}

/// Without graph updates a transform's output must not hold the inputs' Variables or
/// objects (Flax: "does not support Variable aliasing … input Variables returned as
/// outputs"), except where `allowed` says so for a path in the output (a `scan` carry).
/// `transform` names the transform in the error.
///
/// # Errors
/// [`Error::GraphUpdates`] naming each returned input Variable or object by its path in the
/// output.
pub fn check_outputs_are_new<L>(
    outputs: &Lowered<L>,
    transform: &str,
    allowed: impl Fn(&Path) -> bool,
) -> Result<()> {
    let output_root = Key::from(outputs.roots.saturating_sub(1));
    // The nodes and Variables that stand for inputs, by index (a `Ref` points back at one).
    let mut from_inputs = std::collections::HashSet::new();
    let mut returned = Vec::new();
    for step in outputs.def.walk() {
        let crate::graph::graphdef::Step::Enter { entry, path, .. } = step else {
            continue;
        };
        let in_output = path.keys().first() == Some(&output_root);
        let outer = match &entry.def {
            NodeDef::Variable(vd) => vd.outer_index.map(|_| vd.index),
            NodeDef::Node {
                index, outer_index, ..
            } => outer_index.map(|_| *index),
            NodeDef::Ref(index) => from_inputs.contains(index).then_some(*index),
            _ => None,
        };
        if let Some(index) = outer {
            from_inputs.insert(index);
        }
        let outer = outer.is_some();
        if in_output && outer && !allowed(&path) {
            let mut at = RootLabel::Output.to_string();
            push_keys(&mut at, &path.keys()[1..]);
            returned.push(at);
        }
    }
    if returned.is_empty() {
        return Ok(());
    }
    Err(Error::GraphUpdates(format!(
        "{transform} with graph_updates(false) does not support Variable aliasing: the output \
         returns input Variables or objects at {}. Return new ones (graph::clone), or use graph \
         updates (the default)",
        returned.join(", ")
    )))
}
