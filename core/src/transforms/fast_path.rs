//! The cheap cache hit: calling a transform again on the *same* objects, unchanged in
//! structure, without walking their graph.
//!
//! After a call through the full pipeline whose arguments kept their structure (the usual
//! training step: values change, structure does not), the pipeline remembers a [`Shortcut`]:
//! the identity and structure version of every graph node and Variable reachable from the
//! arguments, where each input leaf is read from, where each result goes, and how the
//! output is built. A later call checks the roots' identities and every recorded version —
//! any attribute added, deleted or replaced, new sharing, or Variable metadata changed
//! anywhere in the graph bumps a version — then gathers the Variables' values directly,
//! runs the cached plan and writes the results straight into the Variables. When anything
//! differs, the call takes the full pipeline, which retraces exactly when the structure
//! key says so.

use super::prune::Passed;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Result;
use crate::graph::sync::structure_epoch;
use crate::graph::{NodeId, Static, Value, Variable, WeakNode, WeakVariable};
use crate::lift::Lowered;
use crate::program::AbstractValue;
use crate::tensor::Tensor;
use crate::trace::{TraceLevel, current_level};

/// What an argument was.
enum Root {
    Node(NodeId),
    Variable(NodeId),
    Array,
}

/// Where an input leaf is read from.
enum Source {
    /// The value of recorded Variable `k`.
    Variable(usize),
    /// Argument `i` itself (an array).
    Arg(usize),
}

/// How the output value is built from the results.
enum Template {
    Result(usize),
    Static(Static),
    Tuple(Vec<Template>),
}

/// A remembered call: everything a repeated call on the same objects needs.
pub(crate) struct Shortcut {
    level: TraceLevel,
    roots: Vec<Root>,
    nodes: Vec<(WeakNode, NodeId, u64)>,
    variables: Vec<(WeakVariable, u64)>,
    sources: Vec<Source>,
    avals: Vec<AbstractValue>,
    /// Result index → recorded Variable it is written into.
    writes: Vec<(usize, usize)>,
    output: Template,
    /// Which results are used (written or returned); unwritten pass-throughs are not.
    wanted: Vec<bool>,
    /// How many results are output leaves (the rest go back to the transform unwritten).
    outputs: usize,
    /// The structure epoch at which every recorded version was last found unchanged: while
    /// the epoch stays there, nothing anywhere changed structure and the checks are skipped.
    checked: AtomicU64,
}

impl Shortcut {
    /// Remembers a call, from its arguments lowered again *after* the call (`after`), which
    /// must have the structure they had before it (`before`), the lowered outputs the
    /// results are for, and the output value it returned. `None` when the call does not
    /// fit the shortcut (a raw array inside an object, an object in the output, a changed
    /// structure).
    pub(crate) fn record<L: PartialEq>(
        epoch: u64,
        args: &[Value],
        before: &Lowered<L>,
        after: &Lowered<L>,
        outputs: &Lowered<L>,
        results: &[Passed],
        output: &Value,
    ) -> Option<Shortcut> {
        // The same structure and abstract values: the trace's key still holds.
        if before.graphdef() != after.graphdef()
            || before.leaves().len() != after.leaves().len()
            || before
                .leaves()
                .iter()
                .zip(after.leaves())
                .any(|(b, a)| b.prefix != a.prefix || !b.value.aval().same_as(&a.value))
        {
            return None;
        }
        let roots = args
            .iter()
            .map(|arg| match arg {
                Value::Object(o) => Some(Root::Node(o.id())),
                Value::List(l) => Some(Root::Node(l.id())),
                Value::Dict(d) => Some(Root::Node(d.id())),
                Value::Variable(v) => Some(Root::Variable(v.id())),
                Value::Array(_) => Some(Root::Array),
                Value::Static(_) | Value::Tuple(_) | Value::Map(_) => None,
            })
            .collect::<Option<Vec<_>>>()?;
        let mut nodes = Vec::new();
        let mut variables = Vec::new();
        let mut variable_index = std::collections::HashMap::new();
        for value in after.nodes() {
            match value {
                Value::Variable(v) => {
                    variable_index.insert(v.id(), variables.len());
                    variables.push((v.downgrade(), v.version()));
                }
                other => {
                    let node = crate::graph::graphdef::node_of(other)?;
                    nodes.push((node.downgrade(), node.id(), node.version()));
                }
            }
        }
        let mut sources = Vec::with_capacity(after.leaves().len());
        let mut leaf_of = std::collections::HashMap::new();
        for (i, leaf) in after.leaves().iter().enumerate() {
            leaf_of.insert(leaf.path.clone(), i);
            let source = match (&leaf.variable, leaf.path.len()) {
                (Some(v), _) => Source::Variable(*variable_index.get(&v.id())?),
                (None, 1) => Source::Arg(root_of(&leaf.path)?),
                // A raw array held by an object: the full pipeline handles it.
                (None, _) => return None,
            };
            sources.push(source);
        }
        let avals = after.avals();
        let mut writes = Vec::new();
        let mut output_results = Vec::new();
        for (j, leaf) in outputs.leaves().iter().enumerate() {
            let root = root_of(&leaf.path)?;
            if root == args.len() {
                output_results.push(j);
            } else {
                let i = *leaf_of.get(&leaf.path)?;
                let Source::Variable(k) = sources[i] else {
                    return None;
                };
                // Written unless it is the very input at that place, passed through.
                if results.get(j) != Some(&Passed::Input(i)) {
                    writes.push((j, k));
                }
            }
        }
        // Results past the output leaves (gradients) are computed, never pass-throughs.
        let mut wanted = vec![true; results.len()];
        wanted[..outputs.leaves().len().min(results.len())].fill(false);
        for &j in writes.iter().map(|(j, _)| j).chain(&output_results) {
            wanted[j] = true;
        }
        let mut next = output_results.into_iter();
        let output = template(output, &mut next)?;
        if next.next().is_some() {
            return None;
        }
        Some(Shortcut {
            level: current_level(),
            roots,
            nodes,
            variables,
            sources,
            avals,
            writes,
            output,
            wanted,
            outputs: outputs.leaves().len(),
            checked: AtomicU64::new(epoch),
        })
    }

    /// Which results the shortcut uses.
    pub(crate) fn wanted(&self) -> Option<&[bool]> {
        Some(&self.wanted)
    }

    /// The input values for a call on `args`, when it is the remembered call on unchanged
    /// objects.
    pub(crate) fn gather(&self, args: &[Value]) -> Option<Gathered> {
        if args.len() != self.roots.len() || current_level() != self.level {
            return None;
        }
        for (arg, root) in args.iter().zip(&self.roots) {
            let same = match (arg, root) {
                (Value::Object(o), Root::Node(id)) => o.id() == *id,
                (Value::List(l), Root::Node(id)) => l.id() == *id,
                (Value::Dict(d), Root::Node(id)) => d.id() == *id,
                (Value::Variable(v), Root::Variable(id)) => v.id() == *id,
                (Value::Array(_), Root::Array) => true,
                _ => false,
            };
            if !same {
                return None;
            }
        }
        let _consistent = crate::graph::sync::consistency(false);
        let epoch = structure_epoch();
        let unchanged = epoch == self.checked.load(Ordering::Acquire);
        if !unchanged {
            for (node, id, version) in &self.nodes {
                if node.version() != Some((*id, *version)) {
                    return None;
                }
            }
        }
        let variables = self
            .variables
            .iter()
            .map(|(weak, version)| {
                let v = weak.upgrade()?;
                (unchanged || v.version() == *version).then_some(v)
            })
            .collect::<Option<Vec<_>>>()?;
        if !unchanged {
            self.checked.store(epoch, Ordering::Release);
        }
        let mut inputs = Vec::with_capacity(self.sources.len());
        for (source, aval) in self.sources.iter().zip(&self.avals) {
            let value = match source {
                Source::Variable(k) => variables[*k].value(),
                Source::Arg(i) => args[*i].as_tensor().ok()?,
            };
            if value.is_traced() || !aval.same_as(&value) {
                return None;
            }
            inputs.push(value);
        }
        Some(Gathered { inputs, variables })
    }

    /// Writes the results into the Variables and builds the output value; returns it with
    /// the results past the output leaves (not written) and, when `leaf_variables`, each
    /// lowered leaf's Variable.
    pub(crate) fn scatter(
        &self,
        gathered: Gathered,
        mut results: Vec<Option<Tensor>>,
        leaf_variables: bool,
    ) -> Result<(Value, Vec<Tensor>, Vec<Option<Variable>>)> {
        {
            let _consistent = crate::graph::sync::consistency(true);
            for &(j, k) in &self.writes {
                if let Some(value) = results.get_mut(j).and_then(Option::take) {
                    gathered.variables[k].overwrite_value(value);
                }
            }
        }
        let rest = results
            .split_off(self.outputs.min(results.len()))
            .into_iter()
            .flatten()
            .collect();
        let leaf_variables = if leaf_variables {
            (self.sources.iter())
                .map(|source| match source {
                    Source::Variable(k) => gathered.variables.get(*k).cloned(),
                    Source::Arg(_) => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok((build(&self.output, &mut results), rest, leaf_variables))
    }
}

/// A call's inputs, and the Variables they came from.
pub(crate) struct Gathered {
    pub(crate) inputs: Vec<Tensor>,
    variables: Vec<Variable>,
}

fn root_of(path: &crate::graph::Path) -> Option<usize> {
    match path.keys().first()? {
        crate::graph::Key::Int(i) => usize::try_from(*i).ok(),
        crate::graph::Key::Str(_) => None,
    }
}

fn template(value: &Value, next: &mut impl Iterator<Item = usize>) -> Option<Template> {
    match value {
        Value::Array(_) => next.next().map(Template::Result),
        Value::Static(s) => Some(Template::Static(s.clone())),
        Value::Tuple(items) => items
            .iter()
            .map(|item| template(item, next))
            .collect::<Option<Vec<_>>>()
            .map(Template::Tuple),
        _ => None,
    }
}

fn build(template: &Template, results: &mut [Option<Tensor>]) -> Value {
    match template {
        Template::Result(j) => results
            .get_mut(*j)
            .and_then(Option::take)
            .map_or(Value::Static(Static::None), Value::Array),
        Template::Static(s) => Value::Static(s.clone()),
        Template::Tuple(items) => Value::Tuple(items.iter().map(|t| build(t, results)).collect()),
    }
}
