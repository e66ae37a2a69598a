//! The contract between the library and an engine.
//!
//! An engine executes [`Program`]s — the typed IR that tracing records from user closures.
//! Everything else (tracing, the NNX transform plumbing, caching) is shared code in
//! `nnx-core`. A third-party engine implements the two required methods and is checked by
//! running the `nnx-conformance` suite against it.

use crate::error::Error;
use crate::error::Result;
use crate::program::{Batching, Program, ScanInput, ScanOutput, ScanSpec};
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
    /// With zero lanes the result must be [`Batching::zero_lane_outputs`] (the conformance
    /// suite checks it).
    ///
    /// # Errors
    /// Kernel errors, and inputs whose batch axes do not have `axis_size` elements.
    fn run_batched(
        &self,
        program: &Program,
        inputs: &[Array],
        batching: &Batching,
    ) -> Result<Vec<Array>>;

    /// Runs `program` as a loop (`scan`): `spec.length` iterations, carry inputs threaded
    /// through, scanned inputs sliced per iteration, outputs stacked or carried. Provided:
    /// it calls [`Engine::run`] once per iteration; engines may override it.
    ///
    /// # Errors
    /// Kernel errors, scanned inputs whose axis does not have `spec.length` elements, and
    /// outputs too large to allocate (checked before the first iteration).
    fn run_scan(&self, program: &Program, inputs: &[Array], spec: &ScanSpec) -> Result<Vec<Array>> {
        let mut carry: Vec<Option<Array>> = inputs
            .iter()
            .zip(&spec.inputs)
            .map(|(x, kind)| (*kind == ScanInput::Carry).then(|| x.clone()))
            .collect();
        // Also the results' avals, for a loop that runs no iteration.
        let avals = spec.check_outputs(program)?;
        let mut stacked: Vec<Vec<Array>> = vec![Vec::new(); spec.outputs.len()];
        let mut first: Vec<Option<Array>> = vec![None; spec.outputs.len()];
        for step in 0..spec.length {
            let t = if spec.reverse {
                spec.length - 1 - step
            } else {
                step
            };
            let step_inputs = inputs
                .iter()
                .zip(&spec.inputs)
                .zip(&carry)
                .map(|((x, kind), c)| match (kind, c) {
                    (ScanInput::Carry, Some(c)) => Ok(c.clone()),
                    (ScanInput::Scanned(axis), _) => x.index_axis(*axis as isize, t as isize),
                    _ => Ok(x.clone()),
                })
                .collect::<Result<Vec<_>>>()?;
            let outs = self.run(program, &step_inputs)?;
            for (j, (out, kind)) in outs.into_iter().zip(&spec.outputs).enumerate() {
                match kind {
                    ScanOutput::Carry(i) => carry[*i] = Some(out),
                    ScanOutput::Stacked(_) => stacked[j].push(out),
                    ScanOutput::Broadcast => {
                        if first[j].is_none() {
                            first[j] = Some(out);
                        }
                    }
                }
            }
        }
        spec.outputs
            .iter()
            .enumerate()
            .map(|(j, kind)| match kind {
                ScanOutput::Carry(i) => carry[*i].clone().ok_or_else(|| {
                    Error::InvalidValue(format!(
                        "scan output {j} carries input {i}, which is not a carry"
                    ))
                }),
                ScanOutput::Stacked(axis) => {
                    let mut values = std::mem::take(&mut stacked[j]);
                    if spec.reverse {
                        values.reverse();
                    }
                    if values.is_empty() {
                        return Array::zeros_of(&avals[j].shape, avals[j].dtype);
                    }
                    Array::stack(&values, *axis as isize)
                }
                ScanOutput::Broadcast => match first[j].clone() {
                    Some(v) => Ok(v),
                    None => Array::zeros_of(&avals[j].shape, avals[j].dtype),
                },
            })
            .collect()
    }
}
