//! The golden layer cases (`golden/cases.rs`, `golden/spatial_and_recurrent.rs`,
//! `golden/options.rs`) on the reference engine.

#[path = "golden/cases.rs"]
mod cases;
mod common;
#[path = "golden/options.rs"]
mod options;
#[path = "golden/spatial_and_recurrent.rs"]
mod spatial_and_recurrent;

/// The engine every case runs on: eager work stays on the reference kernels.
fn engine() -> &'static nnx_reference::Reference {
    &nnx_reference::Reference
}
