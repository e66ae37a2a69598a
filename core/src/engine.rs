//! The contract between the library and an engine.
//!
//! An engine executes [`Program`]s — the typed IR that tracing records from user closures.
//! Everything else (tracing, the NNX transform plumbing, caching) is shared code in
//! `nnx-core`. A third-party engine implements the two required methods and is checked by
//! running the `nnx-conformance` suite against it.

use crate::error::Result;
use crate::program::{Batching, Program};
use crate::tensor::Array;

/// Executes programs. Implementations must give the results the reference engine gives
/// (up to floating-point tolerance), which the conformance suite checks.
///
/// Programs may contain higher-order equations ([`Primitive::Call`](crate::program::Primitive::Call),
/// [`Primitive::Vmap`](crate::program::Primitive::Vmap)) from nested transforms; an engine
/// evaluates them with its own `run` / `run_batched`.
pub trait Engine {
    /// A short name, for messages and benchmarks (`"reference"`, `"fast"`).
    fn name(&self) -> &str;

    /// Runs `program` on concrete inputs (in the program's input order) and returns its
    /// outputs.
    ///
    /// # Errors
    /// Kernel errors, and input counts or shapes that do not match the program.
    fn run(&self, program: &Program, inputs: &[Array]) -> Result<Vec<Array>>;

    /// Runs `program` as if once per lane `i < batching.axis_size`, where input `k` is
    /// `inputs[k]` indexed at `i` along `batching.in_axes[k]` (or whole when `None`), and
    /// stacks output `j` along `batching.out_axes[j]`. An output with out axis `None` does
    /// not depend on batched inputs (the caller checked), so it is the same for every lane.
    ///
    /// # Errors
    /// Kernel errors, and inputs whose batch axes do not have `axis_size` elements.
    fn run_batched(
        &self,
        program: &Program,
        inputs: &[Array],
        batching: &Batching,
    ) -> Result<Vec<Array>>;
}
