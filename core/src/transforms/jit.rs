//! `jit`: trace once per structure, run the cached program, with NNX semantics.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::args::IntoArgs;
use crate::engine::Engine;
use crate::error::Result;
use crate::graph::{GraphDef, Value};
use crate::lift::{self, Lowered, Prefix};
use crate::program::{AbstractValue, Primitive, Program, ProgramRef, trace_fn};
use crate::tensor::Tensor;

use super::execute::run_or_record;

/// The prefix leaf of `jit`: every input is passed whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Whole;

impl fmt::Display for Whole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*")
    }
}

/// Compiles `f` (`nnx.jit`): the function is traced once per *cache key* — the arguments'
/// graph structure (object types, attributes, static values, Variable types and metadata,
/// sharing) plus every array's shape and dtype — and the cached program is run afterwards.
/// State and graph changes made inside propagate out exactly as in `vmap`; a structure change
/// inside means the next call has a new key and retraces (the guide's warning).
/// [`Jit::trace_count`] makes retracing observable.
///
/// ```
/// use nnx_core::{Value, transforms::jit};
/// let f = jit(|args: &[Value]| Ok(args[0].clone()));
/// assert_eq!(f.trace_count(), 0);
/// ```
pub fn jit<F: Fn(&[Value]) -> Result<Value>>(f: F) -> Jit<F> {
    Jit {
        f,
        cache: Mutex::new(HashMap::new()),
        traces: AtomicUsize::new(0),
    }
}

/// A compiled function; see [`jit`].
pub struct Jit<F> {
    f: F,
    cache: Mutex<HashMap<CacheKey, Arc<Compiled>>>,
    traces: AtomicUsize,
}

#[derive(PartialEq, Eq, Hash)]
struct CacheKey {
    structure: GraphDef,
    avals: Vec<AbstractValue>,
}

struct Compiled {
    program: Arc<Program>,
    outputs: Lowered<Whole>,
}

impl<F: Fn(&[Value]) -> Result<Value>> Jit<F> {
    /// How many times the function has been traced.
    pub fn trace_count(&self) -> usize {
        self.traces.load(Ordering::Relaxed)
    }

    /// Calls the compiled function.
    ///
    /// # Errors
    /// Aliasing and closure-rule errors, and whatever `f` returns. On error the caller's
    /// objects are unchanged.
    pub fn call(&self, engine: &(impl Engine + ?Sized), args: impl IntoArgs) -> Result<Value> {
        let args = &args.into_args()[..];
        let prefix = Prefix::Leaf(Whole);
        let lowered = lift::lower_args(args, &prefix)?;
        let key = CacheKey {
            structure: lowered.graphdef().clone(),
            avals: lowered.leaves().iter().map(|l| l.value.aval()).collect(),
        };
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        let (compiled, captured) = match cached {
            Some(compiled) => (compiled, Vec::new()),
            None => {
                self.traces.fetch_add(1, Ordering::Relaxed);
                let traced = trace_fn(&key.avals, |inputs| {
                    let raised = lift::raise(&lowered, inputs)?;
                    let output = (self.f)(&raised.args)?;
                    let outputs = lift::lower_outputs(&raised, &prefix, &output, &prefix)?;
                    let values = outputs.leaves().iter().map(|l| l.value.clone()).collect();
                    Ok((values, outputs))
                })?;
                let compiled = Arc::new(Compiled {
                    program: Arc::new(traced.program),
                    outputs: traced.extra,
                });
                // A program that captured tracers of an enclosing trace is only valid there.
                if traced.captured.is_empty() {
                    self.cache
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(key, compiled.clone());
                }
                (compiled, traced.captured)
            }
        };
        let inputs: Vec<Tensor> = lowered
            .leaves()
            .iter()
            .map(|l| l.value.clone())
            .chain(captured)
            .collect();
        let results = run_or_record(
            &inputs,
            || Primitive::Call {
                program: ProgramRef(compiled.program.clone()),
            },
            |arrays| engine.run(&compiled.program, arrays),
        )?;
        lift::write_back(&lowered, &compiled.outputs, results)
    }
}
