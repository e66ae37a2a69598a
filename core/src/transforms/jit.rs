//! `jit`: trace once per structure, run the cached program, with NNX semantics; and
//! `remat`, the same with the program checkpointed for differentiation.

use std::fmt;
use std::sync::Arc;

use super::args::IntoArgs;
use super::pipeline::{self, Cache, Rules};
use super::typed::{self, Body, IntoBody};
use crate::engine::Engine;
use crate::error::Result;
use crate::graph::Value;
use crate::lift::{Lowered, Prefix};
use crate::program::{AbstractValue, Primitive, Program, ProgramRef, RematPolicy};

/// The prefix leaf of `jit`: every input is passed whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
pub fn jit<M, F: IntoBody<M>>(f: F) -> Jit<F::Body> {
    Jit {
        f: f.into_body(),
        cache: Cache::default(),
        checkpoint: None,
        graph_updates: true,
    }
}

/// Checkpoints `f` for differentiation (`nnx.remat`, `jax.checkpoint`): it runs as [`jit`]
/// does — same lifting of objects, state and graph updates, caching — but under `grad`
/// its intermediates are not kept for the backward pass: the backward pass runs `f` again.
/// [`Jit::policy`] chooses what may be kept instead (the results of matrix products).
/// Applied to a layer's body inside `scan`, this is the standard way to train deep stacks
/// in less memory; `scan`'s own backward pass already recomputes each iteration from its
/// carry.
///
/// ```
/// use nnx_core::{Value, transforms::remat};
/// use nnx_core::program::RematPolicy;
/// let block = remat(|args: &[Value]| Ok(args[0].clone())).policy(RematPolicy::DotsSaveable);
/// assert_eq!(block.trace_count(), 0);
/// ```
pub fn remat<M, F: IntoBody<M>>(f: F) -> Jit<F::Body> {
    Jit {
        f: f.into_body(),
        cache: Cache::default(),
        checkpoint: Some(RematPolicy::default()),
        graph_updates: true,
    }
}

/// A compiled function; see [`jit`] (and [`remat`], a checkpointed one).
pub struct Jit<F> {
    f: F,
    cache: Cache<Whole, ()>,
    /// `Some` for [`remat`]: the program is a checkpoint with this policy.
    checkpoint: Option<RematPolicy>,
    /// `graph_updates(false)` when `false`.
    graph_updates: bool,
}

impl<F: Body> Rules for Jit<F> {
    type Leaf = Whole;
    type Prepared = ();
    type Extra = ();

    fn in_prefix(&self, _args: &[Value]) -> Result<Prefix<Whole>> {
        Ok(Prefix::Leaf(Whole))
    }

    fn out_prefix(&self) -> Prefix<Whole> {
        Prefix::Leaf(Whole)
    }

    fn apply(&self, args: &[Value]) -> Result<Value> {
        self.f.apply(args)
    }

    fn prepare(
        &self,
        _args: &[Value],
        lowered: &mut Lowered<Whole>,
    ) -> Result<(Vec<AbstractValue>, ())> {
        Ok((lowered.avals(), ()))
    }

    fn finish(
        &self,
        _prepared: (),
        _lowered: &Lowered<Whole>,
        _outputs: &mut Lowered<Whole>,
        program: &Arc<Program>,
        _captured: usize,
    ) -> Result<(Primitive, ())> {
        let program = ProgramRef(program.clone());
        let primitive = match self.checkpoint {
            Some(policy) => Primitive::Remat { program, policy },
            None => Primitive::Call { program },
        };
        Ok((primitive, ()))
    }

    fn without_graph_updates(&self) -> Option<&'static str> {
        match (self.graph_updates, self.checkpoint) {
            (true, _) => None,
            (false, None) => Some("jit"),
            (false, Some(_)) => Some("remat"),
        }
    }
}

impl<F: Body> Jit<F> {
    /// `nnx.jit(f, graph_updates=False)` with `false`: the inputs' Variables take their new
    /// values in place, but structural changes made inside (attributes added, deleted or
    /// replaced) are not propagated, and the output may not return input Variables or
    /// objects (an `Error::GraphUpdates` naming them; return new ones). With `true` (the
    /// default), everything propagates.
    ///
    /// ```
    /// use nnx_core::{Value, transforms::jit};
    /// let step = jit(|args: &[Value]| Ok(args[0].clone())).graph_updates(false);
    /// assert_eq!(step.trace_count(), 0);
    /// ```
    pub fn graph_updates(mut self, graph_updates: bool) -> Jit<F> {
        self.graph_updates = graph_updates;
        self
    }

    /// How many times the function has been traced.
    pub fn trace_count(&self) -> usize {
        self.cache.trace_count()
    }

    /// Checkpoints the function for differentiation with `policy` (what [`remat`] does with
    /// the default, [`RematPolicy::NothingSaveable`]).
    pub fn policy(mut self, policy: RematPolicy) -> Jit<F> {
        self.checkpoint = Some(policy);
        self
    }

    /// Calls the compiled function.
    ///
    /// # Errors
    /// Aliasing and closure-rule errors, and whatever `f` returns. On error the caller's
    /// objects are unchanged.
    pub fn call(&self, engine: &(impl Engine + ?Sized), args: impl IntoArgs) -> Result<F::Output> {
        typed::output::<F>(pipeline::call(self, &self.cache, engine, &args.into_args())?.value)
    }
}
