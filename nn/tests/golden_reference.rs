//! The golden layer cases (`golden/cases.rs`) on the reference engine.

#[path = "golden/cases.rs"]
mod cases;
mod common;

/// The engine every case runs on: eager work stays on the reference kernels.
fn engine() -> &'static nnx_reference::Reference {
    &nnx_reference::Reference
}
