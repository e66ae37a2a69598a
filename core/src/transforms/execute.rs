//! How a transform hands its traced program over: to the engine when its inputs are
//! concrete, or as a higher-order equation of the enclosing trace when they are tracers
//! (which is what makes transforms nest).

use crate::error::Result;
use crate::program::{Primitive, record_multi};
use crate::tensor::{Array, Tensor};

/// Runs `run` on the concrete inputs, or, if any input is a tracer, records `primitive`
/// (which must describe the same computation) into the enclosing trace.
pub(crate) fn run_or_record(
    inputs: &[Tensor],
    primitive: impl FnOnce() -> Primitive,
    run: impl FnOnce(&[Array]) -> Result<Vec<Array>>,
) -> Result<Vec<Tensor>> {
    if inputs.iter().any(Tensor::is_traced) {
        let refs: Vec<&Tensor> = inputs.iter().collect();
        return record_multi(primitive(), &refs);
    }
    let arrays: Vec<Array> = inputs
        .iter()
        .map(|t| t.concrete().cloned())
        .collect::<Result<_>>()?;
    Ok(run(&arrays)?.into_iter().map(Tensor::from).collect())
}
