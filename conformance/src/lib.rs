//! `nnx-conformance`: engine-independent checks of the NNX model.
//!
//! - [`graphs`]: proptest strategies for random object graphs (nesting, shared Variables and
//!   objects, cycles, statics, containers, several Variable types).
//! - [`isomorphism`]: structural comparison of two graphs up to identity, used to state
//!   invariants such as "`merge(split(g))` is `g` with every sharing preserved".
//!
//! Engine-generic transform cases and the `suite!` macro join these as the engines grow.
#![forbid(unsafe_code)]

pub mod graphs;
pub mod isomorphism;

pub use isomorphism::{VariableIdentity, check_isomorphic};
