//! Jacobians of a traced program with respect to some of its inputs, as one `vmap` over a
//! basis: of the backward pass over the output's cotangent basis (`jacrev`, one lane per
//! output element) or of the forward pass over the inputs' tangent basis (`jacfwd`, one
//! lane per input element). Either way the program size does not depend on the sizes.

use std::sync::Arc;

use super::autodiff::body_cotangents;
use super::forward::{Dual, jvp_program};
use crate::error::{Error, Result};
use crate::program::{AbstractValue, Batching, Primitive, Program, ProgramRef, record_multi};
use crate::program::{TracedFunction, trace_fn};
use crate::tensor::{DType, Tensor};

/// How a Jacobian is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Reverse mode: one backward pass per output element (`jacrev`).
    Reverse,
    /// Forward mode: one forward pass per input element (`jacfwd`).
    Forward,
}

impl Mode {
    /// The transform's name (`jacrev`, `jacfwd`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Reverse => "jacrev",
            Mode::Forward => "jacfwd",
        }
    }
}

/// The Jacobian of output `output` of `program` run on `inputs` with respect to each input
/// in `wanted`: shape `output's shape + that input's shape`, as `jax.jacrev`/`jax.jacfwd`
/// lay it out.
///
/// # Errors
/// [`Error::JacobianOutput`] when the output is not float32; recording errors.
pub(crate) fn jacobian(
    mode: Mode,
    program: &Program,
    inputs: &[Tensor],
    output: usize,
    wanted: &[usize],
) -> Result<Vec<Tensor>> {
    let out = program.output_avals()[output].clone();
    if out.dtype != DType::F32 {
        return Err(Error::JacobianOutput {
            transform: mode.name(),
            dtype: out.dtype,
        });
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let sizes: Vec<usize> = wanted.iter().map(|&i| inputs[i].size()).collect();
    let lanes = match mode {
        Mode::Reverse => out.shape.iter().product(),
        Mode::Forward => sizes.iter().sum(),
    };
    let mut avals: Vec<AbstractValue> = inputs.iter().map(Tensor::aval).collect();
    avals.push(AbstractValue::new(vec![lanes], DType::F32, false));
    let n = inputs.len();
    let out_dims = dims(&out.shape);
    let per_lane: TracedFunction<()> = match mode {
        Mode::Reverse => trace_fn(&avals, |values| {
            let (inputs, u) = values.split_at(n);
            let cotangent = u[0].reshape(&out_dims)?;
            let grads = body_cotangents(program, inputs, &[], &[output], &[cotangent], wanted)?;
            Ok((grads, ()))
        })?,
        Mode::Forward => trace_fn(&avals, |values| {
            let (inputs, e) = values.split_at(n);
            let mut duals: Vec<Dual> = inputs.iter().cloned().map(Dual::constant).collect();
            let mut offset = 0;
            for (&i, &size) in wanted.iter().zip(&sizes) {
                let piece = e[0].slice_axis(0, offset..offset + size)?;
                duals[i].tangent = Some(piece.reshape(&dims(inputs[i].shape()))?);
                offset += size;
            }
            let outputs = jvp_program(program, duals)?;
            Ok((vec![outputs[output].tangent_or_zeros()], ()))
        })?,
    };
    let captured = per_lane.captured.len();
    let outputs = match mode {
        Mode::Reverse => wanted.len(),
        Mode::Forward => 1,
    };
    let batching = Batching {
        in_axes: (0..n)
            .map(|_| None)
            .chain([Some(0)])
            .chain((0..captured).map(|_| None))
            .collect(),
        out_axes: vec![Some(0); outputs],
        axis_size: lanes,
    };
    let basis = identity(lanes)?;
    let operands: Vec<&Tensor> = (inputs.iter())
        .chain([&basis])
        .chain(&per_lane.captured)
        .collect();
    let primitive = Primitive::Vmap {
        program: ProgramRef(Arc::new(per_lane.program)),
        batching,
    };
    let stacked = record_multi(primitive, &operands)?;
    match mode {
        // Lane k holds row k of the Jacobian: (outputs, *input) → (*output, *input).
        Mode::Reverse => (wanted.iter().zip(stacked))
            .map(|(&i, rows)| rows.reshape(&[out_dims.clone(), dims(inputs[i].shape())].concat()))
            .collect(),
        // Lane k holds column k: (inputs, *output), split per input and moved to the end.
        Mode::Forward => {
            let columns = &stacked[0];
            let mut offset = 0;
            (wanted.iter().zip(&sizes))
                .map(|(&i, &size)| {
                    let block = columns.slice_axis(0, offset..offset + size)?;
                    offset += size;
                    block
                        .moveaxis(0, -1)?
                        .reshape(&[out_dims.clone(), dims(inputs[i].shape())].concat())
                })
                .collect()
        }
    }
}

/// The `n × n` identity in float32.
fn identity(n: usize) -> Result<Tensor> {
    let i = Tensor::arange(n);
    i.expand_dims(1)?
        .equal(&i.expand_dims(0)?)?
        .astype(DType::F32)
}

fn dims(shape: &[usize]) -> Vec<isize> {
    shape.iter().map(|&d| d as isize).collect()
}
