//! The golden layer cases (`golden/cases.rs`, `golden/spatial_and_recurrent.rs`,
//! `golden/options.rs`) on the fast engine, eager work included.

#[path = "golden/cases.rs"]
mod cases;
mod common;
#[path = "golden/options.rs"]
mod options;
#[path = "golden/spatial_and_recurrent.rs"]
mod spatial_and_recurrent;

/// The engine every case runs on, made the engine of eager work too.
fn engine() -> &'static nnx_fast::Fast {
    nnx_fast::Fast::use_for_eager();
    &nnx_fast::Fast
}
