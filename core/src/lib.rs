//! `nnx-core`: Flax NNX's programming model for Rust — the parts every engine shares.
//!
//! - [`Tensor`]: n-d arrays (float32, int32, uint32, bool, PRNG keys) with numpy semantics.
//! - [`graph`]: objects, Variables and containers with reference semantics, and the graph
//!   operations `split`, `merge`, `update`, `state`, `graphdef`, `clone`, with filters.
//! - [`random`]: JAX's threefry PRNG, bit for bit.
//! - [`trace`]: trace levels, behind the rule that captured objects cannot be mutated.
//! - [`Error`]: the one error type, with a [`kind`](Error::kind).
//!
//! Split a model into structure and state, edit the state, and merge it back:
//!
//! ```
//! use nnx_core::{Object, Param, Tensor, graph, static_list};
//! # fn main() -> nnx_core::Result<()> {
//! let model = Object::new("Linear")
//!     .with("kernel", Param::new(Tensor::ones(&[2, 3])))?
//!     .with("bias", Param::new(Tensor::zeros(&[3])))?
//!     .with("features", static_list![2, 3])?;
//!
//! let (def, state) = graph::split(&model);
//! // A State of new Variables holding kernel * 2 (the model is untouched).
//! let doubled = state.map(|_path, w| w * 2.0)?;
//! let twice: nnx_core::Object = graph::merge(&def, [&doubled])?;
//! assert_eq!(twice.value("kernel")?.to_vec::<f32>()?, vec![2.0; 6]);
//! assert_eq!(model.value("kernel")?.to_vec::<f32>()?, vec![1.0; 6]);
//!
//! // Or write it back into the original model in place.
//! graph::update(&model, &doubled)?;
//! assert_eq!(model.value("kernel")?.to_vec::<f32>()?, vec![2.0; 6]);
//! # Ok(())
//! # }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

extern crate self as nnx_core;

pub mod engine;
pub mod error;
pub mod graph;
pub mod lift;
pub mod program;
pub mod random;
pub mod shard;
pub mod tensor;
pub mod trace;
pub mod transforms;

pub use engine::{Engine, Plan};
pub use error::{AliasConflict, Error, ErrorKind, Result};
pub use graph::{
    BatchStat, Cache, Dict, Filter, GraphDef, Intermediate, Key, List, Module, Object, Param, Path,
    RngCount, RngKey, RngState, State, Static, Value, Variable, VariableType,
};
pub use random::{RngStream, Rngs};
pub use tensor::{Array, Axes, DType, Operand, Tensor, TensorResult};

/// `#[derive(Module)]`: a struct as a typed module (see [`graph::TypedModule`]).
pub use nnx_derive::Module;

/// Handles and compiled transforms can move between threads (decision record 0004).
#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        assert_send_sync::<crate::Object>();
        assert_send_sync::<crate::List>();
        assert_send_sync::<crate::Dict>();
        assert_send_sync::<crate::Variable>();
        assert_send_sync::<crate::Value>();
        assert_send_sync::<crate::State>();
        assert_send_sync::<crate::GraphDef>();
        assert_send_sync::<crate::Rngs>();
        assert_send_sync::<crate::Filter>();
        assert_send_sync::<crate::Tensor>();
        assert_send_sync::<crate::program::Program>();
        assert_send_sync::<
            crate::transforms::Jit<fn(&[crate::Value]) -> crate::Result<crate::Value>>,
        >();
    }
}
