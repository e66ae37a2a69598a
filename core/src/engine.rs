//! The contract between the library and an engine.
//!
//! An engine executes [`Program`]s — the typed IR that tracing records from user closures.
//! Everything else (tracing, the NNX transform plumbing, caching) is shared code in
//! `nnx-core`. A third-party engine implements the two required methods and is checked by
//! running the `nnx-conformance` suite against it.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::error::Result;
use crate::program::{
    ArrayLoops, Batching, Primitive, Program, ScanSpec, branch_index, predicate, scan_loop,
    while_loop,
};
use crate::tensor::Array;

/// A program prepared once by an engine for repeated execution ([`Engine::compile`]): the
/// program and whatever the engine derived from it (kernel choices, buffer plans). Cached
/// transforms keep one plan per engine and run it on every cache hit with
/// [`Engine::execute`].
pub struct Plan {
    program: Arc<Program>,
    compiled: Option<Box<dyn Any + Send + Sync>>,
}

impl Plan {
    /// A plan that interprets `program` (what [`Engine::compile`] gives by default).
    pub fn interpreted(program: Arc<Program>) -> Plan {
        Plan {
            program,
            compiled: None,
        }
    }

    /// A plan carrying an engine's compiled form of `program`.
    pub fn compiled(program: Arc<Program>, compiled: impl Any + Send + Sync) -> Plan {
        Plan {
            program,
            compiled: Some(Box::new(compiled)),
        }
    }

    /// The program.
    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }

    /// The engine's compiled form, if it is a `T`.
    pub fn compiled_as<T: Any>(&self) -> Option<&T> {
        self.compiled.as_ref()?.downcast_ref()
    }
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plan")
            .field("equations", &self.program.equations.len())
            .field("compiled", &self.compiled.is_some())
            .finish()
    }
}

/// Executes programs. Implementations must give the results the reference engine gives
/// (up to floating-point tolerance), which the conformance suite checks. Engines are shared
/// between threads (`Sync`): a `shard_map` runs one device per thread.
///
/// Programs may contain higher-order equations ([`Primitive::Call`],
/// [`Primitive::Vmap`]) from nested transforms; an engine
/// evaluates them with its own `run` / `run_batched`.
pub trait Engine: Sync {
    /// A short name, for messages and benchmarks (`"reference"`, `"fast"`). Cached
    /// transforms keep one [`Plan`] per engine name, so engines whose plans differ must have
    /// different names.
    fn name(&self) -> &str;

    /// Prepares `program` for repeated execution. Provided: a plan that interprets the
    /// program with [`Engine::run`] (the program's [`Schedule`](crate::program::Schedule) —
    /// dead equations removed, values freed after their last use — is computed once and
    /// shared by every run). Engines override it together with [`Engine::execute`].
    ///
    /// # Errors
    /// A malformed program.
    fn compile(&self, program: Arc<Program>) -> Result<Plan> {
        program.schedule()?;
        Ok(Plan::interpreted(program))
    }

    /// Runs a plan made by this engine's [`Engine::compile`] on inputs it may consume (an
    /// input the plan reads for the last time can be computed in). Provided:
    /// [`Engine::run`] on the plan's program.
    ///
    /// # Errors
    /// As [`Engine::run`].
    fn execute(&self, plan: &Plan, inputs: Vec<Array>) -> Result<Vec<Array>> {
        self.run(plan.program(), &inputs)
    }

    /// Runs `program` on concrete inputs (in the program's input order) and returns its
    /// outputs.
    ///
    /// # Errors
    /// Kernel errors, and input counts or shapes that do not match the program.
    fn run(&self, program: &Program, inputs: &[Array]) -> Result<Vec<Array>>;

    /// Runs `program` as if once per lane `i < batching.axis_size`, where input `k` is
    /// `inputs[k]` indexed at `i` along `batching.in_axes[k]` (or whole when `None`), and
    /// stacks output `j` along `batching.out_axes[j]`. An output with out axis `None` does
    /// not depend on batched inputs (the caller checked), so it is the same for every lane.
    /// With zero lanes the result must be what the one per-lane loop
    /// ([`lanes_loop`](crate::program::lanes_loop)) gives: mapped outputs empty along their
    /// batch axis, unmapped ones computed once on zeros (the conformance suite checks it).
    ///
    /// # Errors
    /// Kernel errors, and inputs whose batch axes do not have `axis_size` elements.
    fn run_batched(
        &self,
        program: &Program,
        inputs: &[Array],
        batching: &Batching,
    ) -> Result<Vec<Array>>;

    /// Evaluates one first-order primitive on concrete operands: what an eager tensor
    /// operation runs (outside any transform) when this engine is the eager engine
    /// ([`set_eager_engine`]). Provided: the reference kernels.
    ///
    /// # Errors
    /// The primitive's shape and dtype errors.
    fn eval_eager(&self, primitive: &Primitive, args: &[Array]) -> Result<Array> {
        primitive.eval(args)
    }

    /// Runs `program` as a loop (`scan`): `spec.length` iterations, carry inputs threaded
    /// through, scanned inputs sliced per iteration, outputs stacked or carried. Provided:
    /// it calls [`Engine::run`] once per iteration; engines may override it.
    ///
    /// # Errors
    /// Kernel errors, scanned inputs whose axis does not have `spec.length` elements, and
    /// outputs too large to allocate (checked before the first iteration).
    fn run_scan(&self, program: &Program, inputs: &[Array], spec: &ScanSpec) -> Result<Vec<Array>> {
        // Also the results' avals, for a loop that runs no iteration.
        let results = spec.check_outputs(program)?;
        scan_loop(&mut ArrayLoops, spec, &results, inputs, |_, step| {
            self.run(program, step)
        })
    }
    /// Runs a `shard_map` equation ([`Primitive::ShardMap`]): `program` once per device of
    /// `spec.mesh`, each on its own thread with its block of every input, collectives
    /// exchanging values between them. Provided ([`run_sharded`](crate::shard::run_sharded)
    /// with [`Engine::run`] per device); engines may override it.
    ///
    /// # Errors
    /// Kernel errors, inputs that do not split as `spec` says, and devices that disagree
    /// on their collectives.
    fn run_shard_map(
        &self,
        program: &Program,
        inputs: &[Array],
        spec: &crate::shard::ShardSpec,
    ) -> Result<Vec<Array>> {
        crate::shard::run_sharded(self, program, spec, inputs)
    }

    /// Runs a control-flow equation ([`Primitive::Cond`] or [`Primitive::While`]) with
    /// [`Engine::run`] for its programs: the branch the index selects, or the one while
    /// loop ([`while_loop`]). Provided; engines may override it.
    ///
    /// # Errors
    /// Kernel errors, an index or predicate of the wrong kind, and
    /// [`Error::MalformedProgram`](crate::Error::MalformedProgram) for another primitive.
    fn run_control(&self, primitive: &Primitive, inputs: &[Array]) -> Result<Vec<Array>> {
        match primitive {
            Primitive::Cond { branches } => {
                let (index, operands) = inputs
                    .split_first()
                    .ok_or_else(|| crate::Error::malformed_program("cond has no index"))?;
                let k = branch_index(index, branches.len())?;
                self.run(&branches[k].0, operands)
            }
            Primitive::While {
                cond,
                body,
                cond_consts,
                body_consts,
            } => while_loop(
                &mut (),
                *cond_consts,
                *body_consts,
                inputs,
                |_, args| {
                    let holds = self.run(&cond.0, args)?;
                    predicate(holds.first().ok_or_else(|| {
                        crate::Error::malformed_program("a while predicate has no output")
                    })?)
                },
                |_, args| self.run(&body.0, args),
            ),
            other => Err(crate::Error::malformed_program(format!(
                "{} is not control flow",
                other.name()
            ))),
        }
    }
}

/// The engine eager tensor operations run on, when one is set.
static EAGER: std::sync::RwLock<Option<Arc<dyn Engine + Send + Sync>>> =
    std::sync::RwLock::new(None);

/// Sets the engine that eager tensor operations (outside any transform) run on, for the
/// whole process; `None` returns them to the reference kernels. The engine evaluates every
/// operation that is one primitive over its operands — arithmetic, comparisons, `select`,
/// `matmul`, `stack`/`concatenate`, random draws; layout changes and reductions run the
/// array methods (which also check their arguments) on any engine. `nnx-fast` sets itself
/// ([`Fast::use_for_eager`](https://docs.rs/nnx-fast)), so that a program depending on it
/// gets its kernels for eager work too (an optimizer update outside `jit`, a model's
/// initialisation, evaluation code).
///
/// ```
/// use std::sync::Arc;
/// use nnx_core::engine::{eager_engine, set_eager_engine};
/// use nnx_core::program::{ArrayLoops, Batching, Program, interpret, lanes_loop};
/// use nnx_core::{Array, Engine, Result, Tensor};
///
/// /// An engine that interprets with the reference kernels (a `vmap` lane by lane).
/// struct Plain;
/// impl Engine for Plain {
///     fn name(&self) -> &str { "plain" }
///     fn run(&self, program: &Program, inputs: &[Array]) -> Result<Vec<Array>> {
///         interpret(program, inputs, |primitive, args| Ok(vec![primitive.eval(args)?]))
///     }
///     fn run_batched(&self, p: &Program, inputs: &[Array], b: &Batching) -> Result<Vec<Array>> {
///         lanes_loop(&mut ArrayLoops, b, &p.output_avals(), inputs, |_, lane| self.run(p, lane))
///     }
/// }
///
/// let before = eager_engine();
/// set_eager_engine(Some(Arc::new(Plain)));
/// let y = (&Tensor::ones(&[2]) + 1)?; // evaluated by `Plain::eval_eager` (the default kernels)
/// assert_eq!(y.to_vec::<f32>()?, vec![2.0, 2.0]);
/// assert_eq!(eager_engine().map(|e| e.name().to_string()).as_deref(), Some("plain"));
/// set_eager_engine(before);
/// # Ok::<(), nnx_core::Error>(())
/// ```
pub fn set_eager_engine(engine: Option<Arc<dyn Engine + Send + Sync>>) {
    *EAGER
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = engine;
}

/// The engine eager tensor operations run on (`None`: the reference kernels).
pub fn eager_engine() -> Option<Arc<dyn Engine + Send + Sync>> {
    EAGER
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}
