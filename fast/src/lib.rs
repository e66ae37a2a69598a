//! `nnx-fast`: the production engine and the crate users depend on.
//!
//! [`Fast`] compiles programs into plans over faer GEMMs, batched bodies and fused kernels (a
//! vmapped dense layer is one GEMM over the whole batch with its bias and activation in the
//! same pass), split across the cores ([`Parallelism`]). The crate re-exports everything a user needs from `nnx-core`;
//! `use nnx_fast::prelude::*;` brings the everyday names into scope, `Fast` included.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod along;
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
mod solve;
#[cfg(test)]
mod test_util;

pub use fast_engine::Fast;
pub use parallel::Parallelism;

pub use nnx_core::*;

/// Layers and initialisers (`nnx.nn`, `jax.nn.initializers`): the `nnx-nn` crate.
pub use nnx_nn as nn;

/// The everyday names of a training script: arrays and their operators, objects, Variables
/// and their types, typed modules (`#[derive(Module)]`), filters, graph operations, every
/// transform with its axis specs, `Rngs` and `random`, and the `Fast` engine.
///
/// ```
/// use nnx_fast::prelude::*;
///
/// #[derive(Module, Clone)]
/// struct Linear {
///     kernel: Param,
///     bias: Param,
/// }
///
/// fn main() -> Result<()> {
///     let rngs = Rngs::new(0)?;
///     let model = Linear {
///         kernel: Param::new(random::normal(&rngs.next_key("params")?, &[3, 2])?),
///         bias: Param::new(Tensor::zeros(&[2])),
///     };
///     let forward = jit(|m: &Linear, x: &Tensor| (x.matmul(&m.kernel.value()) + &m.bias.value()).relu());
///     let y = forward.call(&Fast, (&model, &Tensor::ones(&[4, 3])))?;
///     assert_eq!(y.shape(), &[4, 2]);
///     Ok(())
/// }
/// ```
pub mod prelude {
    pub use crate::{Fast, nn};
    pub use nnx_core::graph::{self, FromValue, GraphValue, ToValue, TypedModule};
    pub use nnx_core::random::{self, Rngs};
    pub use nnx_core::shard::{self, Mesh, PartitionSpec};
    pub use nnx_core::transforms::{
        Carry, DiffState, Spec, StateAxes, StateSharding, cond, custom_vjp, eval_shape, fori_loop,
        get_partition_spec, grad, jacfwd, jacrev, jit, jvp, pmap, remat, scan, shard_map, switch,
        value_and_grad, vmap, while_loop,
    };
    pub use nnx_core::{
        Axes, BatchStat, Cache, DType, Dict, Engine, Error, ErrorKind, Filter, GraphDef,
        Intermediate, List, Module, Object, Param, Path, Result, State, Static, Tensor,
        TensorResult, Value, Variable, VariableType, static_list, static_tuple, variable_type,
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
