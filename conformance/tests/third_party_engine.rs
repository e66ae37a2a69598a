//! A third-party engine running the conformance suite, as `docs/conformance.md` shows: an
//! engine outside this workspace's engine crates implements the two required methods of
//! [`Engine`] and gets one `#[test]` per conformance case from `suite!`.
//!
//! This one delegates to the reference interpreter and counts what it is asked to run, which
//! is how a real engine would start (and shows the suite really drives it).

use std::sync::atomic::{AtomicUsize, Ordering};

use nnx_core::program::{Batching, Program};
use nnx_core::{Array, Engine, Result};
use nnx_reference::Reference;

/// Programs run through the engine, over all tests of this file.
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// A minimal engine: `run` and `run_batched` are the only required methods (`run_scan` has a
/// provided default that loops over `run`).
struct Delegating;

impl Engine for Delegating {
    fn name(&self) -> &str {
        "delegating"
    }

    fn run(&self, program: &Program, inputs: &[Array]) -> Result<Vec<Array>> {
        RUNS.fetch_add(1, Ordering::Relaxed);
        Reference.run(program, inputs)
    }

    fn run_batched(
        &self,
        program: &Program,
        inputs: &[Array],
        batching: &Batching,
    ) -> Result<Vec<Array>> {
        RUNS.fetch_add(1, Ordering::Relaxed);
        Reference.run_batched(program, inputs, batching)
    }
}

nnx_conformance::suite!(Delegating);

#[test]
fn the_suite_drives_the_engine() {
    nnx_conformance::run_case(&Delegating, "guide_basic");
    assert!(RUNS.load(Ordering::Relaxed) > 0);
}
