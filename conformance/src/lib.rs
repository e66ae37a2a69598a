//! `nnx-conformance`: the engine-independent specification, runnable against any engine.
//!
//! - [`cases`]: engine-generic cases (the transforms guide section by section, its errors),
//!   each a `fn(&dyn Engine) -> CaseResult` checked against golden data from real Flax/JAX.
//! - [`suite!`]: one `#[test]` per case for an engine —
//!   `nnx_conformance::suite!(nnx_reference::Reference);` — and [`run_all`] for a single test
//!   that reports every failure.
//! - [`programs`]: proptest strategies for random programs (nested transforms over every
//!   primitive), run differentially against the reference engine by
//!   [`cases::differential`].
//! - [`oracle`]: a float64 evaluator of programs, the oracle finite differences are taken
//!   on by [`cases::derivatives`].
//! - [`graphs`]: proptest strategies for random object graphs; [`isomorphism`]: graph
//!   comparison up to identity.
//! - Snapshots of printed structure and error messages live in this crate
//!   (`src/snapshots/`), so every engine is compared with the same files.
#![forbid(unsafe_code)]

pub mod cases;
pub mod golden;
pub mod graphs;
pub mod isomorphism;
pub mod oracle;
pub mod programs;
pub mod snapshots;
mod suite;

pub use isomorphism::{VariableIdentity, check_isomorphic};
pub use suite::{Case, CaseResult, Failure, Outcome, run_all, run_case};
