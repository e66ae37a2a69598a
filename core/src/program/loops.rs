//! The one scan loop and the one per-lane loop, over any kind of value: arrays (every
//! engine's `run_scan` and per-lane `vmap`), tape slots (reverse-mode differentiation
//! unrolls through both), batched values (the per-lane fallback of batching rules).

use super::aval::AbstractValue;
use super::primitive::{Batching, ScanInput, ScanOutput, ScanSpec};
use crate::error::{Error, Result};
use crate::tensor::Array;

/// The operations the loops need on their values.
pub trait LoopValues {
    /// The values looped over.
    type Value: Clone;

    /// Element `i` of `value` along `axis` (the axis removed).
    ///
    /// # Errors
    /// An axis or index out of range.
    fn index(&mut self, value: &Self::Value, axis: usize, i: usize) -> Result<Self::Value>;

    /// `values` stacked along a new `axis`.
    ///
    /// # Errors
    /// Values of different shapes.
    fn stack(&mut self, values: Vec<Self::Value>, axis: usize) -> Result<Self::Value>;

    /// Zeros of an abstract value (what a loop that runs no iteration gives).
    ///
    /// # Errors
    /// An aval too large to allocate.
    fn zeros(&mut self, aval: &AbstractValue) -> Result<Self::Value>;

    /// The shape and dtype of a value.
    fn aval(&self, value: &Self::Value) -> AbstractValue;
}

/// [`LoopValues`] over concrete arrays.
#[derive(Debug, Clone, Copy, Default)]
pub struct ArrayLoops;

impl LoopValues for ArrayLoops {
    type Value = Array;

    fn index(&mut self, value: &Array, axis: usize, i: usize) -> Result<Array> {
        value.index_axis(axis as isize, i as isize)
    }

    fn stack(&mut self, values: Vec<Array>, axis: usize) -> Result<Array> {
        Array::stack(&values, axis as isize)
    }

    fn zeros(&mut self, aval: &AbstractValue) -> Result<Array> {
        Array::zeros_of(&aval.shape, aval.dtype)
    }

    fn aval(&self, value: &Array) -> AbstractValue {
        value.aval()
    }
}

/// Runs a scan: `spec.length` iterations of `body`, carry inputs threaded through, scanned
/// inputs sliced per iteration, outputs stacked (in index order, also when reversed), carried
/// or taken from the first iteration. `results` are the scan's result avals
/// ([`ScanSpec::output_avals`]): with no iteration, stacked outputs are empty and broadcast
/// ones zeros.
///
/// # Errors
/// Whatever `body` and the value operations return.
pub fn scan_loop<O: LoopValues>(
    ops: &mut O,
    spec: &ScanSpec,
    results: &[AbstractValue],
    inputs: &[O::Value],
    mut body: impl FnMut(&mut O, &[O::Value]) -> Result<Vec<O::Value>>,
) -> Result<Vec<O::Value>> {
    let mut carry: Vec<Option<O::Value>> = inputs
        .iter()
        .zip(&spec.inputs)
        .map(|(x, kind)| (*kind == ScanInput::Carry).then(|| x.clone()))
        .collect();
    let mut stacked: Vec<Vec<O::Value>> = vec![Vec::new(); spec.outputs.len()];
    let mut first: Vec<Option<O::Value>> = vec![None; spec.outputs.len()];
    for step in 0..spec.length {
        let t = if spec.reverse {
            spec.length - 1 - step
        } else {
            step
        };
        let mut step_inputs = Vec::with_capacity(inputs.len());
        for ((x, kind), c) in inputs.iter().zip(&spec.inputs).zip(&carry) {
            step_inputs.push(match (kind, c) {
                (ScanInput::Carry, Some(c)) => c.clone(),
                (ScanInput::Scanned(axis), _) => ops.index(x, *axis, t)?,
                _ => x.clone(),
            });
        }
        for (j, (out, kind)) in body(ops, &step_inputs)?
            .into_iter()
            .zip(&spec.outputs)
            .enumerate()
        {
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
    let mut outputs = Vec::with_capacity(spec.outputs.len());
    for (j, kind) in spec.outputs.iter().enumerate() {
        let aval = results.get(j).ok_or_else(|| Error::MalformedProgram {
            reason: format!("scan output {j} has no result aval"),
        })?;
        outputs.push(match kind {
            ScanOutput::Carry(i) => {
                carry
                    .get(*i)
                    .cloned()
                    .flatten()
                    .ok_or_else(|| Error::MalformedProgram {
                        reason: format!("scan output {j} carries input {i}, which is not a carry"),
                    })?
            }
            ScanOutput::Stacked(axis) => {
                let mut values = std::mem::take(&mut stacked[j]);
                if spec.reverse {
                    values.reverse();
                }
                if values.is_empty() {
                    ops.zeros(aval)?
                } else {
                    ops.stack(values, *axis)?
                }
            }
            ScanOutput::Broadcast => match first[j].take() {
                Some(v) => v,
                None => ops.zeros(aval)?,
            },
        });
    }
    Ok(outputs)
}

/// Runs `lane` once per lane `i < batching.axis_size` on the inputs indexed at `i` along
/// their mapped axes (whole when unmapped), and stacks each output along its out axis (an
/// unmapped output is the same for every lane: the first lane's). `lane_outputs` are the
/// per-lane output avals. With zero lanes, mapped outputs are empty along their batch axis
/// and, as in JAX, unmapped ones are computed once with zeros standing in for the mapped
/// inputs' lane (only if there is such an output).
///
/// # Errors
/// Inputs whose mapped axis does not have `axis_size` elements ([`Error::Shape`]), and
/// whatever `lane` and the value operations return.
pub fn lanes_loop<O: LoopValues>(
    ops: &mut O,
    batching: &Batching,
    lane_outputs: &[AbstractValue],
    inputs: &[O::Value],
    mut lane: impl FnMut(&mut O, &[O::Value]) -> Result<Vec<O::Value>>,
) -> Result<Vec<O::Value>> {
    let size = batching.axis_size;
    for (input, axis) in inputs.iter().zip(&batching.in_axes) {
        batching.check_input(&ops.aval(input).shape, *axis)?;
    }
    let mut lanes: Vec<Vec<O::Value>> = vec![Vec::new(); lane_outputs.len()];
    let unmapped = if size == 0 && batching.out_axes.iter().any(Option::is_none) {
        let mut zero_lane = Vec::with_capacity(inputs.len());
        for (input, axis) in inputs.iter().zip(&batching.in_axes) {
            zero_lane.push(match axis {
                Some(axis) => {
                    let mut aval = ops.aval(input);
                    if *axis < aval.shape.len() {
                        aval.shape.remove(*axis);
                    }
                    ops.zeros(&aval)?
                }
                None => input.clone(),
            });
        }
        lane(ops, &zero_lane)?
    } else {
        Vec::new()
    };
    for i in 0..size {
        let mut lane_inputs = Vec::with_capacity(inputs.len());
        for (input, axis) in inputs.iter().zip(&batching.in_axes) {
            lane_inputs.push(match axis {
                Some(axis) => ops.index(input, *axis, i)?,
                None => input.clone(),
            });
        }
        for (j, out) in lane(ops, &lane_inputs)?.into_iter().enumerate() {
            if let Some(values) = lanes.get_mut(j) {
                values.push(out);
            }
        }
    }
    let mut unmapped = unmapped.into_iter().map(Some).collect::<Vec<_>>();
    let mut outputs = Vec::with_capacity(lane_outputs.len());
    for (j, ((values, axis), aval)) in lanes
        .into_iter()
        .zip(&batching.out_axes)
        .zip(lane_outputs)
        .enumerate()
    {
        outputs.push(match axis {
            Some(axis) if values.is_empty() => {
                let mut aval = aval.clone();
                aval.shape.insert((*axis).min(aval.shape.len()), 0);
                ops.zeros(&aval)?
            }
            Some(axis) => ops.stack(values, *axis)?,
            None => match values.into_iter().next() {
                Some(v) => v,
                None => unmapped.get_mut(j).and_then(Option::take).ok_or_else(|| {
                    Error::MalformedProgram {
                        reason: format!("vmap output {j} was not computed"),
                    }
                })?,
            },
        });
    }
    Ok(outputs)
}
