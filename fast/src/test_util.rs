//! What the unit tests of the kernels and compiler passes share.

use nnx_core::program::AbstractValue;
use nnx_core::{Array, DType};

/// A float32 array of `shape` with deterministic, varied values (`seed` shifts them).
pub(crate) fn arr(shape: &[usize], seed: f32) -> Array {
    let n: usize = shape.iter().product();
    let data = (0..n).map(|i| ((i as f32 + seed) * 0.37).sin()).collect();
    Array::from_vec(shape, data).unwrap()
}

/// The abstract value of a strongly typed float32 array of `shape`.
pub(crate) fn aval(shape: &[usize]) -> AbstractValue {
    AbstractValue::new(shape.to_vec(), DType::F32, false)
}
