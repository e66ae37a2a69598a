//! `nnx-fast`: the production engine and the crate users depend on.
//!
//! [`Fast`] compiles programs into plans over faer GEMMs, batched bodies and fused kernels (a
//! vmapped dense layer is one GEMM over the whole batch with its bias and activation in the
//! same pass), split across the cores ([`Parallelism`]). The crate re-exports everything a user needs from `nnx-core`;
//! `use nnx_fast::prelude::*;` brings the everyday names into scope, `Fast` included.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod batch;
mod batching;
mod chain;
mod fast_engine;
mod fuse;
mod helper;
mod kernels;
mod ops;
mod pair;
mod parallel;
mod plan;
mod scan;
#[cfg(test)]
mod test_util;

pub use fast_engine::Fast;
pub use parallel::Parallelism;

pub use nnx_core::*;

/// The everyday names: arrays, objects, Variables and their types, filters, graph operations.
pub mod prelude {
    pub use crate::Fast;
    pub use nnx_core::graph::{self, GraphValue};
    pub use nnx_core::transforms::{StateAxes, jit, vmap};
    pub use nnx_core::{
        Axes, BatchStat, DType, Dict, Engine, Error, Filter, GraphDef, List, Module, Object, Param,
        Path, Result, State, Static, Tensor, Value, Variable, VariableType, static_list,
        static_tuple, variable_type,
    };
}

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The user guide's examples, compiled and run as doctests.
#[doc = include_str!("../../docs/guide.md")]
#[cfg(doctest)]
pub struct GuideDoctests;
