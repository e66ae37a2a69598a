//! Small helpers shared by the transforms for handing tensors to an engine.

use crate::error::Result;
use crate::tensor::{Array, Tensor};

/// Whether any tensor is a tracer (then the transform records into the enclosing trace
/// instead of running the engine).
pub(crate) fn any_traced(tensors: &[Tensor]) -> bool {
    tensors.iter().any(Tensor::is_traced)
}

/// The concrete arrays behind tensors known not to be traced.
pub(crate) fn as_arrays(tensors: &[Tensor]) -> Result<Vec<Array>> {
    tensors.iter().map(|t| t.concrete().cloned()).collect()
}
