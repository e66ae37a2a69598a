//! `eval_shape`: a function's output with every array abstract, computing nothing
//! (`nnx.eval_shape`).

use super::args::IntoArgs;
use super::jit::Whole;
use super::pipeline::{OutputChecks, lift_apply};
use super::typed::{self, Body, IntoBody};
use crate::error::Result;
use crate::graph::{self, Value};
use crate::lift::{self, Prefix};
use crate::program::trace_fn;
use crate::tensor::Tensor;

/// Runs `f` abstractly (`nnx.eval_shape`): it is traced on its arguments' shapes and dtypes,
/// nothing is computed, and its output comes back with every array an abstract one
/// ([`Tensor::abstract_of`], printed as `ShapeDtypeStruct(shape=…, dtype=…)`): objects with
/// the structure, Variable types and metadata the function builds. The function works on
/// a copy of its arguments, so what it does to them does not propagate (as in Flax).
///
/// The usual use is a model's shape without its initialisation — to restore a checkpoint
/// into (`nnx_nn::checkpoint::restore`), or to inspect a large model's parameters:
///
/// ```
/// use nnx_core::transforms::eval_shape;
/// use nnx_core::{Object, Param, Result, Rngs};
///
/// let rngs = Rngs::new(0)?;
/// let build = eval_shape(|rngs: &Rngs| -> Result<Object> {
///     let kernel = rngs.stream("default")?.normal(&[2, 3])?;
///     Object::new("Linear").with("kernel", Param::new(kernel))
/// });
/// let abstract_model = build.call((&rngs,))?;
/// let kernel = abstract_model.value("kernel")?;
/// assert!(kernel.is_abstract());
/// assert_eq!(kernel.repr(), "ShapeDtypeStruct(shape=(2, 3), dtype=float32)");
/// // The caller's Rngs did not move.
/// assert_eq!(rngs.stream("default")?.count()?.value().item::<u32>()?, 0);
/// # Ok::<(), nnx_core::Error>(())
/// ```
pub fn eval_shape<M, F: IntoBody<M>>(f: F) -> EvalShape<F::Body> {
    EvalShape { f: f.into_body() }
}

/// A function evaluated abstractly; see [`eval_shape`].
pub struct EvalShape<F> {
    f: F,
}

impl<F: Body> EvalShape<F> {
    /// The function's output on `args`, every array abstract.
    ///
    /// # Errors
    /// Whatever the function returns (shape errors are found while tracing), aliasing and
    /// closure-rule errors, and [`Error::AbstractArray`](crate::Error::AbstractArray) where
    /// the function reads an array's values.
    pub fn call(&self, args: impl IntoArgs) -> Result<F::Output> {
        let copied = match graph::clone(&Value::Tuple(args.into_args())) {
            Value::Tuple(items) => items,
            other => vec![other],
        };
        let prefix = Prefix::Leaf(Whole);
        let lowered = lift::lower_args(&copied, &prefix)?;
        let traced = trace_fn(&lowered.avals(), |inputs| {
            lift_apply(
                &lowered,
                &prefix,
                &prefix,
                inputs,
                OutputChecks::default(),
                |args| self.f.apply(args),
            )
        })?;
        let values = (traced.program.output_avals().into_iter())
            .map(Tensor::abstract_of)
            .collect();
        typed::output::<F>(lift::write_back(&lowered, &traced.extra, values)?)
    }
}
