//! `nnx-reference`: the reference engine, the executable specification of the library.
//!
//! The engine's transform plumbing (vmap, jit, scan, grad) lands with the tracing work; today
//! the crate re-exports the shared object model so that code written against it keeps
//! working as the engine grows.
#![forbid(unsafe_code)]

pub use nnx_core::*;
