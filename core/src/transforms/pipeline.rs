//! The one transform pipeline. Every lifted transform runs the same sequence:
//!
//! ```text
//!  lower the arguments ─► cache lookup (structure + abstract values + prefixes)
//!        │ miss: prepare (spec checks, inner avals) ─► trace ─► finish (checks, primitive)
//!        ▼
//!  execute (a compiled plan, per engine) or record (inside an enclosing trace) ─► write back
//! ```
//!
//! A transform is its spec plus its [`Rules`]: what its prefixes are, how the inner abstract
//! values follow from the outer ones, what it checks on the traced program, and which
//! higher-order [`Primitive`] executes it. Everything else — caching, trace counting, the
//! closure rule's capture handling, compiling, recording when nested, writing back — is
//! here, once.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::fast_path::Shortcut;
use super::prune::{Passed, prune};
use crate::engine::{Engine, Plan};
use crate::error::{Error, Result};
use crate::graph::{GraphDef, Value};
use crate::lift::{self, Lowered, Prefix};
use crate::program::{
    AbstractValue, Atom, Equation, Primitive, Program, VarId, record_multi, trace_fn,
};
use crate::tensor::{Array, Tensor};

/// What makes one transform differ from another.
pub(crate) trait Rules {
    /// The prefix leaf (`Axis`, `ScanAxis`, `Diff`, `Whole`).
    type Leaf: Clone + PartialEq + Eq + Hash + fmt::Display + Send + Sync + 'static;
    /// What [`Rules::prepare`] hands to [`Rules::finish`] on a miss.
    type Prepared;
    /// What a cached trace keeps besides its program (used on every call).
    type Extra: Send + Sync + 'static;

    /// The arguments' prefix (checks of the spec against the arguments come here).
    fn in_prefix(&self, args: &[Value]) -> Result<Prefix<Self::Leaf>>;

    /// The output's prefix.
    fn out_prefix(&self) -> Prefix<Self::Leaf>;

    /// Calls the user's function.
    fn apply(&self, args: &[Value]) -> Result<Value>;

    /// On a miss, before tracing: the spec's checks against the lowered arguments, and the
    /// abstract value of each leaf inside the transform. May edit the Variables' metadata.
    fn prepare(
        &self,
        args: &[Value],
        lowered: &mut Lowered<Self::Leaf>,
    ) -> Result<(Vec<AbstractValue>, Self::Prepared)>;

    /// What runs inside the trace: raise the arguments, apply the function, lower the
    /// arguments and output again. Returns the output leaves' values (possibly followed by
    /// more values, which the caller gets back unwritten) and the lowered outputs.
    /// `_prepared` is what [`Rules::prepare`] returned.
    fn body(
        &self,
        lowered: &Lowered<Self::Leaf>,
        prefix: &Prefix<Self::Leaf>,
        _prepared: &Self::Prepared,
        inputs: Vec<Tensor>,
    ) -> Result<(Vec<Tensor>, Lowered<Self::Leaf>)> {
        lift_body(self, lowered, prefix, inputs)
    }

    /// On a miss, after tracing: the checks on the traced program and the higher-order
    /// primitive that executes it. `captured` is how many inputs closure capture appended
    /// after the lowered leaves.
    fn finish(
        &self,
        prepared: Self::Prepared,
        lowered: &Lowered<Self::Leaf>,
        outputs: &mut Lowered<Self::Leaf>,
        program: &Arc<Program>,
        captured: usize,
    ) -> Result<(Primitive, Self::Extra)>;

    /// Whether the transform needs each lowered leaf's Variable back
    /// ([`Outcome::leaf_variables`]); collecting them costs a handle clone per leaf.
    const LEAF_VARIABLES: bool = false;

    /// `Some(name)` when the transform runs without graph updates (`graph_updates(false)`):
    /// only the inputs' Variables take new values, structural changes are dropped, and the
    /// output may not return input Variables or objects (`name` names the transform in
    /// that error). Default: graph updates.
    fn without_graph_updates(&self) -> Option<&'static str> {
        None
    }

    /// Without graph updates, whether the output may hold the inputs' own Variables at
    /// `path` (the output's path, its root key first): a `scan` carry. Default: nowhere.
    fn may_return_inputs(&self, _path: &crate::graph::Path) -> bool {
        false
    }

    /// Whether an input Variable returned in the output must have the same prefix there as
    /// in the arguments (the aliasing check). Default: yes; `grad`'s output prefix means
    /// nothing, so an input Variable comes out as it is.
    fn checks_output_aliasing(&self) -> bool {
        true
    }

    /// Results that are, on every call, an input as it came in: `(result, lowered input)`
    /// pairs (a scan that runs no iteration keeps its broadcast state). Default: none.
    fn passthrough(&self, _extra: &Self::Extra) -> Vec<(usize, usize)> {
        Vec::new()
    }
}

/// The default [`Rules::body`]: the boundary's steps 2 and 3 around the function.
pub(crate) fn lift_body<R: Rules + ?Sized>(
    rules: &R,
    lowered: &Lowered<R::Leaf>,
    prefix: &Prefix<R::Leaf>,
    inputs: Vec<Tensor>,
) -> Result<(Vec<Tensor>, Lowered<R::Leaf>)> {
    let checks = OutputChecks {
        without_graph_updates: rules.without_graph_updates(),
        aliasing: rules.checks_output_aliasing(),
    };
    lift_apply(
        lowered,
        prefix,
        &rules.out_prefix(),
        inputs,
        checks,
        |args| rules.apply(args),
    )
}

/// How [`lift_apply`] checks the output.
#[derive(Clone, Copy)]
pub(crate) struct OutputChecks {
    /// The transform's name when it runs with `graph_updates(false)`: its output may not
    /// return a captured Variable or object.
    pub without_graph_updates: Option<&'static str>,
    /// Whether the output's prefix takes part in the aliasing check.
    pub aliasing: bool,
}

impl Default for OutputChecks {
    fn default() -> OutputChecks {
        OutputChecks {
            without_graph_updates: None,
            aliasing: true,
        }
    }
}

/// The boundary's steps 2 and 3 around `apply`: raise the lowered arguments on `inputs`,
/// apply, lower the arguments and the output again. Returns the output leaves' values and
/// the lowered outputs, checked as `checks` says.
pub(crate) fn lift_apply<L: Clone + PartialEq + fmt::Display>(
    lowered: &Lowered<L>,
    prefix: &Prefix<L>,
    out_prefix: &Prefix<L>,
    inputs: Vec<Tensor>,
    checks: OutputChecks,
    apply: impl FnOnce(&[Value]) -> Result<Value>,
) -> Result<(Vec<Tensor>, Lowered<L>)> {
    let raised = lift::raise(lowered, inputs)?;
    let output = apply(&raised.args)?;
    let outputs = lift::lower_outputs_with(&raised, prefix, &output, out_prefix, checks.aliasing)
        .map_err(|e| captured_output(e, checks.without_graph_updates))?;
    let values = outputs.leaves().iter().map(|l| l.value.clone()).collect();
    Ok((values, outputs))
}

/// Without graph updates, an output that returns a Variable or object of an enclosing
/// trace is Flax's "Cannot return captured Variable" error (with graph updates it stays
/// the closure rule's error).
fn captured_output(error: Error, without_graph_updates: Option<&'static str>) -> Error {
    match (error, without_graph_updates) {
        (
            Error::ExtractFromOtherTrace {
                type_name,
                variable,
                path,
                ..
            },
            Some(transform),
        ) if path.starts_with("output") => {
            let what = if variable { "Variable" } else { "object" };
            Error::GraphUpdates(format!(
                "Cannot return captured {what} of type {type_name} from {transform} with \
                 graph_updates(false) (found at {path}): pass it as an argument, or return a \
                 copy (graph::clone)"
            ))
        }
        (error, _) => error,
    }
}

/// The traces of one transform, by cache key, and how many traces it made.
pub(crate) struct Cache<L, X> {
    entries: Mutex<HashMap<Key<L>, EntryRef<L, X>>>,
    /// The most recent calls on unchanged objects, newest first.
    shortcuts: Mutex<Vec<ShortcutRef<L, X>>>,
    traces: AtomicUsize,
}

type EntryRef<L, X> = Arc<Entry<L, X>>;
type ShortcutRef<L, X> = (Arc<Shortcut>, EntryRef<L, X>);

/// How many argument identities a transform remembers for the shortcut.
const SHORTCUTS: usize = 4;

impl<L, X> Default for Cache<L, X> {
    fn default() -> Self {
        Cache {
            entries: Mutex::new(HashMap::new()),
            shortcuts: Mutex::new(Vec::new()),
            traces: AtomicUsize::new(0),
        }
    }
}

impl<L, X> Cache<L, X> {
    /// How many times the function has been traced.
    pub(crate) fn trace_count(&self) -> usize {
        self.traces.load(Ordering::Relaxed)
    }
}

/// What identifies a trace: the arguments' structure, every leaf's abstract value and
/// prefix (a `StateAxes` filter decides a leaf's prefix from its path and Variable).
#[derive(PartialEq, Eq, Hash)]
struct Key<L> {
    structure: GraphDef,
    avals: Vec<AbstractValue>,
    prefixes: Vec<L>,
}

/// One trace, ready to run again.
pub(crate) struct Entry<L, X> {
    /// The higher-order equation that runs the traced program, pruned of pass-through
    /// outputs (recorded when nested).
    primitive: Primitive,
    /// Which of the lowered inputs the pruned program takes.
    inputs: Vec<usize>,
    /// Where each result comes from.
    pub(crate) results: Vec<Passed>,
    /// `outputs = primitive(inputs)` as a program of its own: what engines compile.
    top: Arc<Program>,
    /// The lowered outputs: where each result goes on write-back.
    outputs: Lowered<L>,
    /// The rules' data.
    pub(crate) extra: X,
    /// Compiled plans, one per engine name.
    plans: Mutex<Vec<(String, Arc<Plan>)>>,
    /// Whether this trace is reused (it did not capture tracers or read captured state).
    cached: bool,
    /// Set when a call of this trace could not be remembered as a shortcut.
    no_shortcut: AtomicBool,
}

impl<L, X> Entry<L, X> {
    fn plan(&self, engine: &(impl Engine + ?Sized)) -> Result<Arc<Plan>> {
        let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, plan)) = plans.iter().find(|(name, _)| name == engine.name()) {
            return Ok(plan.clone());
        }
        let plan = Arc::new(engine.compile(self.top.clone())?);
        plans.push((engine.name().to_owned(), plan.clone()));
        Ok(plan)
    }
}

/// `outputs = primitive(inputs)` as a program.
fn single_equation(primitive: Primitive, in_avals: Vec<AbstractValue>) -> Result<Program> {
    let out_avals = primitive.output_avals(&in_avals)?;
    let n = in_avals.len();
    let inputs: Vec<VarId> = (0..n).map(|i| VarId(i as u32)).collect();
    let outputs: Vec<VarId> = (n..n + out_avals.len()).map(|i| VarId(i as u32)).collect();
    let equation = Equation {
        primitive,
        inputs: inputs.iter().map(|&v| Atom::Var(v)).collect(),
        outputs: outputs.clone(),
    };
    let avals = in_avals.into_iter().chain(out_avals).collect();
    Ok(Program::new(
        inputs,
        vec![equation],
        outputs.into_iter().map(Atom::Var).collect(),
        avals,
    ))
}

/// What a call through the pipeline gives its transform.
pub(crate) struct Outcome<L, X> {
    /// The function's output, written back.
    pub(crate) value: Value,
    /// Values the body returned after the output leaves (not written back).
    pub(crate) rest: Vec<Tensor>,
    /// The Variable behind each lowered argument leaf (`None` for a raw array), in order;
    /// empty unless the rules ask for them ([`Rules::LEAF_VARIABLES`]).
    pub(crate) leaf_variables: Vec<Option<crate::graph::Variable>>,
    /// The trace that ran.
    pub(crate) entry: Arc<Entry<L, X>>,
}

/// The result of one call through the whole pipeline.
pub(crate) struct Called<L, X> {
    /// The function's output, written back.
    pub(crate) value: Value,
    /// Values the body returned after the output leaves (not written back).
    pub(crate) rest: Vec<Tensor>,
    /// The lowered arguments.
    pub(crate) lowered: Lowered<L>,
    /// The trace that ran.
    pub(crate) entry: Arc<Entry<L, X>>,
}

/// Runs `rules`' transform on `args`: the shortcut when the objects are those of a recent
/// call and unchanged, else the whole pipeline (remembering the call for the shortcut when
/// it fits).
///
/// # Errors
/// As [`call_full`].
pub(crate) fn call<R: Rules>(
    rules: &R,
    cache: &Cache<R::Leaf, R::Extra>,
    engine: &(impl Engine + ?Sized),
    args: &[Value],
) -> Result<Outcome<R::Leaf, R::Extra>> {
    let shortcuts = cache
        .shortcuts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for (shortcut, entry) in shortcuts {
        if let Some(mut gathered) = shortcut.gather(args) {
            let inputs = std::mem::take(&mut gathered.inputs);
            let results = execute(engine, &entry, inputs, shortcut.wanted())?;
            let (value, rest, leaf_variables) =
                shortcut.scatter(gathered, results, R::LEAF_VARIABLES)?;
            return Ok(Outcome {
                value,
                rest,
                leaf_variables,
                entry,
            });
        }
    }
    let called = call_full(rules, cache, engine, args)?;
    if called.entry.cached && !called.entry.no_shortcut.load(Ordering::Relaxed) {
        remember(rules, cache, args, &called);
    }
    let leaf_variables = if R::LEAF_VARIABLES {
        (called.lowered.leaves().iter())
            .map(|l| l.variable.clone())
            .collect()
    } else {
        Vec::new()
    };
    Ok(Outcome {
        value: called.value,
        rest: called.rest,
        leaf_variables,
        entry: called.entry,
    })
}

/// Remembers a call that went through the whole pipeline for the shortcut, if its
/// arguments kept their structure; marks its trace as unfit otherwise.
fn remember<R: Rules>(
    rules: &R,
    cache: &Cache<R::Leaf, R::Extra>,
    args: &[Value],
    called: &Called<R::Leaf, R::Extra>,
) {
    // Read before the walk: a change during it makes the shortcut check every version.
    let epoch = crate::graph::sync::structure_epoch();
    let after = rules
        .in_prefix(args)
        .and_then(|prefix| lift::lower_args(args, &prefix));
    let shortcut = after.ok().and_then(|after| {
        Shortcut::record(
            epoch,
            args,
            &called.lowered,
            &after,
            &called.entry.outputs,
            &called.entry.results,
            &called.value,
        )
    });
    match shortcut {
        Some(shortcut) => {
            let mut shortcuts = cache
                .shortcuts
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            shortcuts.insert(0, (Arc::new(shortcut), called.entry.clone()));
            shortcuts.truncate(SHORTCUTS);
        }
        None => called.entry.no_shortcut.store(true, Ordering::Relaxed),
    }
}

/// Runs the entry's plan on concrete inputs (consuming them, so that the engine may compute
/// in the buffers of inputs read for the last time), or records its primitive into the
/// enclosing trace when an input it reads is a tracer. Returns every result, a pass-through
/// one (the input itself) only where `wanted` says so (all when `None`).
fn execute<L, X>(
    engine: &(impl Engine + ?Sized),
    entry: &Entry<L, X>,
    inputs: Vec<Tensor>,
    wanted: Option<&[bool]>,
) -> Result<Vec<Option<Tensor>>> {
    let mut results: Vec<Option<Tensor>> = entry
        .results
        .iter()
        .enumerate()
        .map(|(j, passed)| match *passed {
            Passed::Input(i) if wanted.is_none_or(|w| w.get(j) == Some(&true)) => {
                inputs.get(i).cloned()
            }
            _ => None,
        })
        .collect();
    let traced = entry.inputs.iter().any(|&i| inputs[i].is_traced());
    // Only what the pruned program reads decides: with no traced operand, it runs now.
    let computed: Vec<Tensor> = if traced {
        let refs: Vec<&Tensor> = entry.inputs.iter().map(|&i| &inputs[i]).collect();
        record_multi(entry.primitive.clone(), &refs)?
    } else {
        let mut inputs: Vec<Option<Tensor>> = inputs.into_iter().map(Some).collect();
        let arrays: Vec<Array> = entry
            .inputs
            .iter()
            .map(|&i| {
                inputs[i]
                    .take()
                    .ok_or_else(|| Error::MalformedProgram {
                        reason: format!("input {i} is taken twice"),
                    })?
                    .into_concrete()
            })
            .collect::<Result<_>>()?;
        let plan = entry.plan(engine)?;
        engine
            .execute(&plan, arrays)?
            .into_iter()
            .map(Tensor::from)
            .collect()
    };
    // Result `j` is output `k` of the program where it says `Computed(k)` (increasing in
    // `j`); a result the rules pass through, such as a scan's unchanged Variable carry,
    // leaves its output unread.
    let mut computed = computed.into_iter().enumerate();
    for (result, passed) in results.iter_mut().zip(&entry.results) {
        if let Passed::Computed(k) = passed {
            let value = (computed.by_ref())
                .find(|(i, _)| i == k)
                .map(|(_, t)| t)
                .ok_or_else(|| Error::MalformedProgram {
                    reason: "an engine returned fewer results than the program has outputs".into(),
                })?;
            *result = Some(value);
        }
    }
    Ok(results)
}

/// Runs `rules`' transform on `args`: the whole pipeline.
///
/// # Errors
/// Whatever the rules, the function, lowering or the engine report; on error the caller's
/// objects are unchanged (nothing is written before the last step).
pub(crate) fn call_full<R: Rules>(
    rules: &R,
    cache: &Cache<R::Leaf, R::Extra>,
    engine: &(impl Engine + ?Sized),
    args: &[Value],
) -> Result<Called<R::Leaf, R::Extra>> {
    let prefix = rules.in_prefix(args)?;
    let mut lowered = lift::lower_args(args, &prefix)?;
    let key = Key {
        structure: lowered.graphdef().clone(),
        avals: lowered.avals(),
        prefixes: lowered.leaves().iter().map(|l| l.prefix.clone()).collect(),
    };
    let cached = cache
        .entries
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        .cloned();
    let mut inputs: Vec<Tensor> = lowered.leaves().iter().map(|l| l.value.clone()).collect();
    let entry = match cached {
        Some(entry) => entry,
        None => {
            cache.traces.fetch_add(1, Ordering::Relaxed);
            let (avals, prepared) = rules.prepare(args, &mut lowered)?;
            let traced = trace_fn(&avals, |ins| rules.body(&lowered, &prefix, &prepared, ins))?;
            let mut outputs = traced.extra;
            if let Some(name) = rules.without_graph_updates() {
                lift::check_outputs_are_new(&outputs, name, |path| rules.may_return_inputs(path))?;
            }
            let program = Arc::new(traced.program);
            let (primitive, extra) = rules.finish(
                prepared,
                &lowered,
                &mut outputs,
                &program,
                traced.captured.len(),
            )?;
            let all_avals: Vec<AbstractValue> = key
                .avals
                .iter()
                .cloned()
                .chain(traced.captured.iter().map(Tensor::aval))
                .collect();
            let mut pruned = prune(primitive);
            for (j, i) in rules.passthrough(&extra) {
                if let Some(result) = pruned.results.get_mut(j) {
                    *result = Passed::Input(i);
                }
            }
            let top_avals = pruned
                .inputs
                .iter()
                .map(|&i| all_avals[i].clone())
                .collect();
            let top = single_equation(pruned.primitive.clone(), top_avals)?;
            // A trace that captured tracers of an enclosing trace is valid only there, and
            // one that read captured state baked that state in: neither is reused.
            // Nor is one made inside a `shard_map` body: it depends on the mesh.
            let cached = traced.captured.is_empty()
                && !traced.reads_outer
                && !crate::shard::axis_env_active();
            let entry = Arc::new(Entry {
                primitive: pruned.primitive,
                inputs: pruned.inputs,
                results: pruned.results,
                top: Arc::new(top),
                outputs,
                extra,
                plans: Mutex::new(Vec::new()),
                cached,
                // The shortcut writes back with graph updates.
                no_shortcut: AtomicBool::new(rules.without_graph_updates().is_some()),
            });
            if cached {
                cache
                    .entries
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key, entry.clone());
            }
            inputs.extend(traced.captured);
            entry
        }
    };
    let mut results = execute(engine, &entry, inputs, None)?
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::MalformedProgram {
            reason: "a result is missing".into(),
        })?;
    let rest = results.split_off(entry.outputs.leaves().len().min(results.len()));
    let value = match rules.without_graph_updates() {
        None => lift::write_back(&lowered, &entry.outputs, results)?,
        Some(_) => lift::write_back_values(&lowered, &entry.outputs, results)?,
    };
    Ok(Called {
        value,
        rest,
        lowered,
        entry,
    })
}
