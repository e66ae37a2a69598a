//! Builders for the transforms guide's objects, shared by the integration tests.
#![allow(dead_code)]

use nnx_core::{Object, Param, Result, Tensor, variable_type};

variable_type!(
    /// The guide's `class Count(nnx.Variable): pass`.
    pub Count: nnx_core::Variable
);

/// The guide's `Weights(kernel (10, 2, 3), bias (10, 3), count=arange(10))`.
pub fn guide_weights() -> Result<Object> {
    Object::new("Weights")
        .with("kernel", Param::new(Tensor::zeros([10, 2, 3])))?
        .with("bias", Param::new(Tensor::zeros([10, 3])))?
        .with("count", Count::new(Tensor::arange(10)))
}

/// Reads the golden observables the real Flax/JAX printed for the guide.
pub fn seed_guide() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../conformance/golden/seed_guide.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}
