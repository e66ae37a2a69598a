//! `Fast`'s scan: the body compiled once (fused and planned like any program), the scan
//! pruned of what it passes through unchanged (a training step's scanned layers returned as
//! they came in are not re-stacked), scanned inputs sliced as views (a layer out of stacked
//! weights copies nothing) and outputs stacked by contiguous copies into one pooled buffer,
//! all through the one scan loop ([`scan_loop`]).

use std::sync::Arc;

use nnx_core::program::{AbstractValue, LoopValues, Primitive, Program, ScanSpec, scan_loop};
use nnx_core::tensor::pool;
use nnx_core::transforms::{Passed, prune};
use nnx_core::{Array, DType, Result};

use crate::Fast;
use crate::plan::Compiled;

/// A compiled scan equation.
#[derive(Debug)]
pub(crate) struct ScanPlan {
    spec: ScanSpec,
    body: Arc<Program>,
    compiled: Compiled,
    results: Vec<AbstractValue>,
    /// The equation's inputs the pruned scan takes.
    inputs: Vec<usize>,
    /// Where each of the equation's outputs comes from.
    outputs: Vec<Passed>,
}

impl ScanPlan {
    /// The plan of `Primitive::Scan { program, spec }`; `None` for other primitives.
    pub(crate) fn new(primitive: &Primitive) -> Option<ScanPlan> {
        let pruned = prune(primitive.clone());
        let Primitive::Scan { program, spec } = pruned.primitive else {
            return None;
        };
        let results = spec.output_avals(&program.0);
        let (body, compiled) = Compiled::fused(&program.0);
        Some(ScanPlan {
            spec,
            body,
            compiled,
            results,
            inputs: pruned.inputs,
            outputs: pruned.results,
        })
    }

    /// Runs the scan on the equation's operands (moved in).
    pub(crate) fn run(&self, engine: &Fast, args: &mut [Array]) -> Result<Vec<Array>> {
        let inputs: Vec<Array> = self.inputs.iter().map(|&i| args[i].clone()).collect();
        let computed = scan_loop(
            &mut Slices,
            &self.spec,
            &self.results,
            &inputs,
            |_, step| self.compiled.run(engine, &self.body, step.to_vec()),
        )?;
        Ok(self
            .outputs
            .iter()
            .map(|passed| match passed {
                Passed::Computed(k) => computed[*k].clone(),
                Passed::Input(i) => args[*i].clone(),
            })
            .collect())
    }
}

/// Scan values as arrays: slices are views, stacks along the first axis contiguous copies.
struct Slices;

impl LoopValues for Slices {
    type Value = Array;

    fn index(&mut self, value: &Array, axis: usize, i: usize) -> Result<Array> {
        value.index_axis(axis as isize, i as isize)
    }

    fn stack(&mut self, values: Vec<Array>, axis: usize) -> Result<Array> {
        let Some(first) = values.first() else {
            return Array::stack(&values, axis as isize);
        };
        let same = values
            .iter()
            .all(|v| v.shape() == first.shape() && v.dtype() == DType::F32 && !v.is_weak());
        if axis != 0 || !same {
            return Array::stack(&values, axis as isize);
        }
        let len: usize = first.shape().iter().product();
        let mut out = pool::take(len * values.len());
        for (chunk, v) in out.chunks_exact_mut(len.max(1)).zip(&values) {
            chunk.copy_from_slice(v.as_slice::<f32>()?);
        }
        let mut shape = vec![values.len()];
        shape.extend_from_slice(first.shape());
        Array::from_vec(&shape, out)
    }

    fn zeros(&mut self, aval: &AbstractValue) -> Result<Array> {
        Array::zeros_of(&aval.shape, aval.dtype)
    }

    fn aval(&self, value: &Array) -> AbstractValue {
        value.aval()
    }
}
