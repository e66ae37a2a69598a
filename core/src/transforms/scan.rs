//! `scan`: a loop over a function of objects and arrays, with NNX semantics.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::args::IntoArgs;
use super::metadata::{enter_partition, leave_partition};
use super::pipeline::{self, Cache, Rules};
use super::typed::{self, Body, IntoBody};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::graph::graphdef::Step;
use crate::graph::{GraphDef, Key, NodeDef, Path, Value};
use crate::lift::{Lowered, LoweredLeaf, Prefix};
use crate::program::{
    AbstractValue, Primitive, Program, ProgramRef, ScanInput, ScanOutput, ScanSpec,
};

/// How `scan` treats a part of its inputs or outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScanAxis {
    /// Loop state (`nnx.Carry`).
    Carry,
    /// Scanned along this axis (negative counts from the end).
    Axis(isize),
    /// The same every iteration (`None`; inputs only).
    Broadcast,
}

/// The `nnx.Carry` marker: `scan(f).in_axes((Carry, 0))`.
#[derive(Clone, Copy, Debug)]
pub struct Carry;

impl fmt::Display for ScanAxis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanAxis::Carry => f.write_str("Carry"),
            ScanAxis::Axis(a) => write!(f, "{a}"),
            ScanAxis::Broadcast => f.write_str("None"),
        }
    }
}

/// `in_axes` / `out_axes` of [`scan`].
pub type ScanAxes = Prefix<ScanAxis>;

impl From<Carry> for Prefix<ScanAxis> {
    fn from(_: Carry) -> ScanAxes {
        Prefix::Leaf(ScanAxis::Carry)
    }
}

impl From<i32> for Prefix<ScanAxis> {
    fn from(axis: i32) -> ScanAxes {
        Prefix::Leaf(ScanAxis::Axis(axis as isize))
    }
}

impl From<Option<i32>> for Prefix<ScanAxis> {
    fn from(axis: Option<i32>) -> ScanAxes {
        Prefix::Leaf(axis.map_or(ScanAxis::Broadcast, |a| ScanAxis::Axis(a as isize)))
    }
}

crate::lift::prefix_from_tuples!(ScanAxis);

/// Loops `f` (`nnx.scan`). `in_axes` marks one argument as the carry (`Carry`), others as
/// scanned along an axis or broadcast (`None`); `f` returns `(carry, y)` as a tuple matching
/// `out_axes` (default `(Carry, 0)`): the carry is threaded through the iterations and the
/// `y`s are stacked. Objects work as everywhere: a carried object's state is threaded, a
/// scanned object's per-iteration slices are re-stacked, and graph changes propagate.
///
/// The carry's structure must not change (the error names added and removed paths).
/// Broadcast state changed inside is written back when the change does not depend on the
/// iteration, and is an error when it does (Flax silently drops it).
pub fn scan<M, F: IntoBody<M>>(f: F) -> Scan<F::Body> {
    Scan {
        f: f.into_body(),
        in_axes: Prefix::Tuple(vec![
            Prefix::Leaf(ScanAxis::Carry),
            Prefix::Leaf(ScanAxis::Axis(0)),
        ]),
        out_axes: Prefix::Tuple(vec![
            Prefix::Leaf(ScanAxis::Carry),
            Prefix::Leaf(ScanAxis::Axis(0)),
        ]),
        length: None,
        reverse: false,
        partition: None,
        graph_updates: true,
        cache: Cache::default(),
    }
}

/// A scanned function; see [`scan`].
pub struct Scan<F> {
    f: F,
    in_axes: ScanAxes,
    out_axes: ScanAxes,
    length: Option<usize>,
    reverse: bool,
    /// `transform_metadata`'s partition name.
    partition: Option<String>,
    /// `graph_updates(false)` when `false`.
    graph_updates: bool,
    cache: Cache<ScanAxis, ZeroLength>,
}

/// Where `Carry` appears in a prefix: `Ok(true)` at the top level, errors when nested or
/// repeated.
fn carry_position(prefix: &ScanAxes, name: &str) -> Result<bool> {
    fn nested(p: &ScanAxes) -> bool {
        match p {
            Prefix::Leaf(ScanAxis::Carry) => true,
            Prefix::Leaf(_) => false,
            Prefix::Tuple(items) => items.iter().any(nested),
            Prefix::StateAxes(groups) => groups.iter().any(|(_, a)| *a == ScanAxis::Carry),
        }
    }
    match prefix {
        Prefix::Leaf(ScanAxis::Carry) => Ok(true),
        Prefix::Tuple(items) => {
            let top: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, p)| matches!(p, Prefix::Leaf(ScanAxis::Carry)))
                .map(|(i, _)| i)
                .collect();
            if top.len() > 1 {
                return Err(Error::InvalidPrefix(format!(
                    "Found multiple Carry definitions at {name}[{}] and {name}[{}]",
                    top[0], top[1]
                )));
            }
            if items
                .iter()
                .any(|p| !matches!(p, Prefix::Leaf(_) | Prefix::StateAxes(_)) && nested(p))
            {
                return Err(Error::InvalidPrefix(format!(
                    "Carry must be at the top level of {name}, it cannot be nested. Found {name}={prefix}"
                )));
            }
            Ok(top.len() == 1
                || items
                    .iter()
                    .any(|p| matches!(p, Prefix::StateAxes(_)) && nested(p)))
        }
        other => Ok(nested(other)),
    }
}

impl<F: Body> Scan<F> {
    /// How each argument is treated (default `(Carry, 0)`).
    pub fn in_axes(mut self, axes: impl Into<ScanAxes>) -> Scan<F> {
        self.in_axes = axes.into();
        self
    }

    /// How each output is treated (default `(Carry, 0)`); `None` is not allowed.
    pub fn out_axes(mut self, axes: impl Into<ScanAxes>) -> Scan<F> {
        self.out_axes = axes.into();
        self
    }

    /// The number of iterations, required when nothing is scanned.
    pub fn length(mut self, length: usize) -> Scan<F> {
        self.length = Some(length);
        self
    }

    /// Iterate from the last index to the first (outputs stay in index order).
    pub fn reverse(mut self, reverse: bool) -> Scan<F> {
        self.reverse = reverse;
        self
    }

    /// `transform_metadata={nnx.PARTITION_NAME: name}`, as on [`vmap`](super::vmap):
    /// inside, the axis name `name` is removed from the `sharding` metadata of scanned
    /// Variables at their scanned axis (it must be there), and it is inserted again at the
    /// stacking axis of stacked outputs.
    pub fn transform_metadata(mut self, partition_name: &str) -> Scan<F> {
        self.partition = Some(partition_name.to_owned());
        self
    }

    /// `nnx.scan(f, graph_updates=False)` with `false`: the inputs' Variables take their new
    /// values in place and structural changes are dropped, as
    /// [`Jit::graph_updates`](super::Jit::graph_updates); the carry comes out as new objects
    /// holding the inputs' own Variables (Flax: `m2 is not m`, `m2.w is m.w`), and returning
    /// input Variables anywhere but in the carry is an error.
    pub fn graph_updates(mut self, graph_updates: bool) -> Scan<F> {
        self.graph_updates = graph_updates;
        self
    }

    fn validate(&self) -> Result<()> {
        let carry_in = carry_position(&self.in_axes, "in_axes")?;
        let carry_out = carry_position(&self.out_axes, "out_axes")?;
        if carry_in != carry_out {
            return Err(Error::InvalidPrefix(format!(
                "If one of in_axes or out_axes has Carry, the other must also have Carry. Got in_axes={} and out_axes={}",
                self.in_axes, self.out_axes
            )));
        }
        fn broadcast_path(p: &ScanAxes, at: String) -> Option<String> {
            match p {
                Prefix::Leaf(ScanAxis::Broadcast) => Some(at),
                Prefix::Leaf(_) => None,
                Prefix::Tuple(items) => items
                    .iter()
                    .enumerate()
                    .find_map(|(i, q)| broadcast_path(q, format!("{at}[{i}]"))),
                Prefix::StateAxes(groups) => groups
                    .iter()
                    .any(|(_, a)| *a == ScanAxis::Broadcast)
                    .then_some(at),
            }
        }
        if let Some(at) = broadcast_path(&self.out_axes, "out_axes".into()) {
            return Err(Error::InvalidPrefix(format!(
                "Cannot broadcast output state. Got None at: {at}"
            )));
        }
        Ok(())
    }

    /// Runs the loop.
    ///
    /// # Errors
    /// Prefix errors (Carry placement, `None` in `out_axes`), scanned axes of different
    /// lengths, carry structure changes, iteration-dependent changes to broadcast state,
    /// aliasing and closure-rule errors, and whatever `f` returns. On error the caller's
    /// objects are unchanged.
    pub fn call(&self, engine: &(impl Engine + ?Sized), args: impl IntoArgs) -> Result<F::Output> {
        typed::output::<F>(pipeline::call(self, &self.cache, engine, &args.into_args())?.value)
    }

    /// How many times the function has been traced (once per structure and abstract
    /// values, as Flax's `scan`).
    pub fn trace_count(&self) -> usize {
        self.cache.trace_count()
    }

    /// `lengths` holds each scanned leaf (its location is built only for the error).
    fn length_of(&self, lengths: &[(&LoweredLeaf<ScanAxis>, usize)]) -> Result<usize> {
        let all: Vec<usize> = lengths.iter().map(|l| l.1).chain(self.length).collect();
        match all.first() {
            None => Err(Error::InvalidPrefix(
                "scan needs at least one scanned input or an explicit length".into(),
            )),
            Some(&n) if all.iter().all(|&m| m == n) => Ok(n),
            Some(_) => {
                let lines: Vec<String> = lengths
                    .iter()
                    .map(|(leaf, n)| format!("  {}: {n}", leaf.location()))
                    .collect();
                Err(Error::InvalidPrefix(format!(
                    "scan got scanned axes of different lengths{}:\n{}",
                    self.length
                        .map(|n| format!(" (length={n})"))
                        .unwrap_or_default(),
                    lines.join("\n")
                )))
            }
        }
    }
}

/// What each traced output is: the new value of a carry input, stacked, or (checked)
/// iteration-independent broadcast state.
///
/// A carried object's Variables are matched by path; only what the function *returns* as
/// its carry (the leaves under the output root, `output_root`) may stand, in order, for
/// array carries, which have no object to be written back into. A Variable added to a
/// carried object is therefore an added carry, never a stand-in for an array carry. And a
/// path of a carried object must still hold the same thing: the same Variable, or a raw
/// array where there was one; otherwise the carry was *replaced* there (the body put
/// another Variable, or a Variable where an array was), and the iterations would thread
/// one Variable's value into another. The one exception (`renew_variables`, Flax's rule): a
/// carry argument that is itself a Variable, replaced by a new Variable the function
/// returns in its place; the argument's own leaf is then returned among the results that
/// are inputs as they came in.
pub(super) fn output_kinds(
    output_root: usize,
    lowered_inputs: &Lowered<ScanAxis>,
    lowered_outputs: &Lowered<ScanAxis>,
    program: &Program,
    input_kinds: &[ScanInput],
    renew_variables: bool,
) -> Result<(Vec<ScanOutput>, Unchanged)> {
    let inputs = lowered_inputs.leaves();
    let outputs = lowered_outputs.leaves();
    let input_variables = variable_indexes(lowered_inputs.graphdef());
    let output_variables = variable_indexes(lowered_outputs.graphdef());
    // Whether the output leaf at `path` is what the input leaf there was.
    let same_leaf = |path: &Path| match (input_variables.get(path), output_variables.get(path)) {
        (None, None) => true,
        (Some(&(index, _)), Some(&(_, outer))) => outer == Some(index),
        _ => false,
    };
    let mut replaced = Vec::new();
    let carries: Vec<usize> = inputs
        .iter()
        .enumerate()
        .filter(|(_, l)| l.prefix == ScanAxis::Carry)
        .map(|(i, _)| i)
        .collect();
    // Unmatched carries by path, so matching every output is linear in their number.
    let mut carries_by_path: HashMap<&Path, std::collections::VecDeque<usize>> = HashMap::new();
    for &i in &carries {
        carries_by_path
            .entry(&inputs[i].path)
            .or_default()
            .push_back(i);
    }
    let mut matched = vec![false; inputs.len()];
    let mut added = Vec::new();
    let varying: Vec<bool> = input_kinds
        .iter()
        .map(|k| *k != ScanInput::Broadcast)
        .collect();
    let depends = program.depends_on(&varying);
    // A carry argument that is itself a Variable, replaced by a new Variable the body
    // returns in its place (`renew_variables`): Flax accepts it — the new Variable carries
    // the value and comes out, the argument is unchanged (its own leaf is written back as it
    // came in).
    let returned_at =
        |out: &LoweredLeaf<ScanAxis>| out.path.ancestor(1).last() == Some(&Key::from(output_root));
    let renewed: Option<(usize, usize)> = renew_variables
        .then(|| {
            let bare: Vec<usize> = (carries.iter().copied())
                .filter(|&i| inputs[i].path.len() == 1 && inputs[i].variable.is_some())
                .collect();
            let new: Vec<usize> = (outputs.iter().enumerate())
                .filter(|(_, out)| {
                    out.prefix == ScanAxis::Carry
                        && returned_at(out)
                        && matches!(output_variables.get(&out.path), Some((_, None)))
                })
                .map(|(j, _)| j)
                .collect();
            match (bare.as_slice(), new.as_slice()) {
                ([i], [j]) => Some((*i, *j)),
                _ => None,
            }
        })
        .flatten();
    let mut unchanged = Vec::new();
    let mut kinds = Vec::with_capacity(outputs.len());
    for (j, out) in outputs.iter().enumerate() {
        if let Some((i, new)) = renewed {
            if j == new {
                matched[i] = true;
                kinds.push(ScanOutput::Carry(i));
                continue;
            }
            if out.path == inputs[i].path {
                unchanged.push((j, i));
                kinds.push(ScanOutput::Broadcast);
                continue;
            }
        }
        kinds.push(match out.prefix {
                ScanAxis::Carry => {
                    let by_path = carries_by_path.get_mut(&out.path).and_then(|pending| {
                        std::iter::from_fn(|| pending.pop_front()).find(|&i| !matched[i])
                    });
                    let returned = returned_at(out);
                    let positional = || {
                        if !returned {
                            return None;
                        }
                        carries.iter().copied().find(|&i| {
                            !matched[i]
                                && inputs[i].variable.is_none()
                                && inputs[i].path.len() <= out.path.len()
                        })
                    };
                    match by_path.or_else(positional) {
                        Some(i) if by_path.is_some() && !same_leaf(&out.path) => {
                            matched[i] = true;
                            replaced.push(out.location());
                            ScanOutput::Broadcast
                        }
                        Some(i) => {
                            matched[i] = true;
                            let (a, b) = (inputs[i].value.aval(), out.value.aval());
                            if a.shape != b.shape || a.dtype != b.dtype {
                                return Err(Error::InvalidPrefix(format!(
                                    "scan carry {} changed from {a} to {b} inside the body; the carry must keep its shape and dtype",
                                    out.location()
                                )));
                            }
                            ScanOutput::Carry(i)
                        }
                        None => {
                            added.push(out.location());
                            ScanOutput::Broadcast
                        }
                    }
                }
                ScanAxis::Axis(axis) => {
                    let n = out.value.ndim() as isize + 1;
                    let a = if axis < 0 { axis + n } else { axis };
                    if !(0..n).contains(&a) {
                        return Err(Error::InvalidPrefix(format!(
                            "scan out_axes {axis} is out of bounds for {} (rank {} plus the scan axis)",
                            out.location(),
                            out.value.ndim()
                        )));
                    }
                    ScanOutput::Stacked(a as usize)
                }
                ScanAxis::Broadcast => {
                    if depends[j] {
                        return Err(Error::InvalidPrefix(format!(
                            "scan: broadcast state {} was changed with a value that depends on the iteration (carry or scanned inputs); each iteration would write a different value. Carry it or scan it instead",
                            out.location()
                        )));
                    }
                    ScanOutput::Broadcast
                }
            });
    }
    let removed: Vec<String> = carries
        .iter()
        .filter(|&&i| !matched[i])
        .map(|&i| inputs[i].location())
        .collect();
    if !added.is_empty() || !removed.is_empty() || !replaced.is_empty() {
        let mut parts = Vec::new();
        if !replaced.is_empty() {
            parts.push(format!(
                "replaced the Variable or array at {}",
                replaced.join(", ")
            ));
        }
        if !added.is_empty() {
            parts.push(format!("added {}", added.join(", ")));
        }
        if !removed.is_empty() {
            parts.push(format!("removed {}", removed.join(", ")));
        }
        return Err(Error::InvalidPrefix(format!(
            "Carry references must be the same between iterations: the scan carry must keep the same structure and reference the same objects, but the body {}",
            parts.join("; ")
        )));
    }
    Ok((kinds, unchanged))
}

/// What `prepare` finds: each leaf's kind, and the number of iterations.
pub(crate) struct Looped {
    kinds: Vec<ScanInput>,
    length: usize,
}

/// Outputs that are, on every call, an input as it came in (output index, lowered input
/// index): broadcast state when the loop runs no iteration, and a Variable carry argument
/// the body replaced by a new Variable.
pub(crate) struct ZeroLength(Unchanged);

/// `(output index, lowered input index)` pairs of results that are inputs as they came in.
type Unchanged = Vec<(usize, usize)>;

impl<F: Body> Rules for Scan<F> {
    type Leaf = ScanAxis;
    type Prepared = Looped;
    type Extra = ZeroLength;

    fn in_prefix(&self, args: &[Value]) -> Result<ScanAxes> {
        self.validate()?;
        if matches!(self.in_axes, Prefix::Leaf(ScanAxis::Carry)) && args.len() != 1 {
            return Err(Error::InvalidPrefix(format!(
                "When in_axes=Carry, the function must take exactly one argument, got {} \
                 arguments. Pass the carry as one tuple, or give each argument its own axis \
                 (in_axes=(Carry, 0, ...))",
                args.len()
            )));
        }
        Ok(self.in_axes.clone())
    }

    fn out_prefix(&self) -> ScanAxes {
        self.out_axes.clone()
    }

    fn apply(&self, args: &[Value]) -> Result<Value> {
        self.f.apply(args)
    }

    fn prepare(
        &self,
        _args: &[Value],
        lowered: &mut Lowered<ScanAxis>,
    ) -> Result<(Vec<AbstractValue>, Looped)> {
        let mut kinds = Vec::with_capacity(lowered.leaves().len());
        let mut avals = Vec::with_capacity(lowered.leaves().len());
        let mut lengths = Vec::new();
        for leaf in lowered.leaves() {
            let mut aval = leaf.value.aval();
            kinds.push(match leaf.prefix {
                ScanAxis::Carry => ScanInput::Carry,
                ScanAxis::Broadcast => ScanInput::Broadcast,
                ScanAxis::Axis(axis) => {
                    let n = aval.shape.len() as isize;
                    let a = if axis < 0 { axis + n } else { axis };
                    if !(0..n).contains(&a) {
                        return Err(Error::InvalidPrefix(format!(
                            "scan in_axes {axis} is out of bounds for {} of shape {:?}",
                            leaf.location(),
                            aval.shape
                        )));
                    }
                    lengths.push((leaf, aval.shape[a as usize]));
                    aval.shape.remove(a as usize);
                    ScanInput::Scanned(a as usize)
                }
            });
            avals.push(aval);
        }
        let length = self.length_of(&lengths)?;
        if let Some(name) = &self.partition {
            let axes: Vec<Option<usize>> = (kinds.iter())
                .map(|k| match k {
                    ScanInput::Scanned(a) => Some(*a),
                    _ => None,
                })
                .collect();
            enter_partition(lowered, &axes, name)?;
        }
        Ok((avals, Looped { kinds, length }))
    }

    fn finish(
        &self,
        looped: Looped,
        lowered: &Lowered<ScanAxis>,
        outputs: &mut Lowered<ScanAxis>,
        program: &Arc<Program>,
        captured: usize,
    ) -> Result<(Primitive, ZeroLength)> {
        let mut input_kinds = looped.kinds;
        input_kinds.extend(std::iter::repeat_n(ScanInput::Broadcast, captured));
        let (output_kinds, unchanged) = output_kinds(
            lowered.num_roots(),
            lowered,
            outputs,
            program,
            &input_kinds,
            true,
        )?;
        if let Some(name) = &self.partition {
            let axes: Vec<Option<usize>> = (output_kinds.iter())
                .map(|k| match k {
                    ScanOutput::Stacked(a) => Some(*a),
                    _ => None,
                })
                .collect();
            leave_partition(outputs, &axes, name)?;
        }
        // Zero iterations run nothing, so broadcast state keeps its value (an engine has no
        // iteration to take a broadcast output from, and gives zeros).
        let mut zero_length = unchanged;
        if looped.length == 0 {
            let broadcast_inputs: HashMap<&Path, usize> = lowered
                .leaves()
                .iter()
                .enumerate()
                .filter(|(_, l)| l.prefix == ScanAxis::Broadcast)
                .map(|(i, l)| (&l.path, i))
                .collect();
            for (j, (out, kind)) in outputs.leaves().iter().zip(&output_kinds).enumerate() {
                if let (Some(&i), ScanOutput::Broadcast) = (broadcast_inputs.get(&out.path), kind) {
                    zero_length.push((j, i));
                }
            }
        }
        let spec = ScanSpec {
            length: looped.length,
            reverse: self.reverse,
            inputs: input_kinds,
            outputs: output_kinds,
        };
        let primitive = Primitive::Scan {
            program: ProgramRef(program.clone()),
            spec,
        };
        Ok((primitive, ZeroLength(zero_length)))
    }

    fn without_graph_updates(&self) -> Option<&'static str> {
        (!self.graph_updates).then_some("scan")
    }

    fn may_return_inputs(&self, path: &Path) -> bool {
        let mut prefix = &self.out_axes;
        for key in path.keys().iter().skip(1) {
            match (prefix, key) {
                (Prefix::Tuple(items), Key::Int(i)) => match items.get(*i as usize) {
                    Some(p) => prefix = p,
                    None => return false,
                },
                _ => break,
            }
        }
        matches!(prefix, Prefix::Leaf(ScanAxis::Carry))
    }

    fn passthrough(&self, zero_length: &ZeroLength) -> Vec<(usize, usize)> {
        zero_length.0.clone()
    }
}

/// The Variable at each leaf path of a structure: its index, and the index of the Variable
/// it stands for outside the transform (for a structure produced inside one).
fn variable_indexes(def: &GraphDef) -> HashMap<Path, (usize, Option<usize>)> {
    def.walk()
        .filter_map(|step| match step {
            Step::Enter { entry, path, .. } => match &entry.def {
                NodeDef::Variable(vd) => Some((path, (vd.index, vd.outer_index))),
                _ => None,
            },
            Step::Leave => None,
        })
        .collect()
}
