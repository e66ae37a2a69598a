//! Forward-mode differentiation of programs: evaluate a program on (primal, tangent) pairs
//! with tensor operations, applying each primitive's Jacobian-vector product rule.
//!
//! As in reverse mode ([`autodiff`](super::autodiff)), the rules are tensor operations, so
//! they record into the enclosing trace: `jvp` nests in `vmap`, `jit`, `scan` and `grad`,
//! and `jvp` of `grad` (a Hessian-vector product) or `grad` of `jvp` work. Loops are not
//! unrolled: the tangent of a `vmap` equation is one `vmap` of its body's JVP, carrying
//! the tangents as more mapped operands and outputs; of a `scan`, one `scan` whose carries
//! carry their tangents; of a `call` or checkpoint (`remat`), one `call` or checkpoint of
//! the body's JVP (so a checkpoint still recomputes under a later `grad`).

use std::sync::Arc;

use super::control_diff;
use super::rules::{ExtremumSlopes, differentiable, extremum_shares, unary_chain, zeros_like};
use crate::error::{Error, Result};
use crate::program::{
    AbstractValue, Batching, LoopValues, Outputs, Primitive, Program, ProgramRef, ScanInput,
    ScanOutput, ScanSpec, interpret_with, lanes_loop, record_multi, scan_loop, trace_fn,
};
use crate::shard::CollectiveOp;
use crate::tensor::elementwise::{BinaryOp, UnaryOp};
use crate::tensor::{ReduceOp, Tensor};

/// A value and its tangent (`None`: zero, the value does not depend on the inputs being
/// differentiated).
#[derive(Clone, Debug)]
pub(crate) struct Dual {
    /// The value.
    pub(crate) primal: Tensor,
    /// Its tangent, with the value's shape.
    pub(crate) tangent: Option<Tensor>,
}

impl Dual {
    pub(crate) fn constant(primal: Tensor) -> Dual {
        Dual {
            primal,
            tangent: None,
        }
    }

    fn is_traced(&self) -> bool {
        self.primal.is_traced() || self.tangent.as_ref().is_some_and(Tensor::is_traced)
    }

    /// The tangent, zeros where there is none.
    pub(crate) fn tangent_or_zeros(&self) -> Tensor {
        match &self.tangent {
            Some(t) => t.clone(),
            None => zeros_like(&self.primal),
        }
    }
}

/// Runs `program` on `inputs` and their tangents: every output with its tangent.
///
/// # Errors
/// Whatever evaluating the program or a rule reports.
pub(crate) fn jvp_program(program: &Program, inputs: Vec<Dual>) -> Result<Vec<Dual>> {
    interpret_with(
        program,
        inputs,
        |a| Dual::constant(Tensor::from(a.clone())),
        |_, eq, args| {
            let args = args.to_vec();
            Ok(Outputs::Many(match &eq.primitive {
                Primitive::CustomVjp { .. } => {
                    return Err(Error::CustomVjp(
                        "forward-mode differentiation (jvp, jacfwd) cannot go through a \
                         custom_vjp function, as in JAX: it has a backward pass only"
                            .into(),
                    ));
                }
                Primitive::Call { program }
                | Primitive::Remat { program, .. }
                | Primitive::Vmap { program, .. }
                | Primitive::Scan { program, .. } => higher_order(&eq.primitive, &program.0, args)?,
                Primitive::Cond { branches } => control_diff::cond_jvp(branches, args)?,
                Primitive::ShardMap { program, .. } => {
                    higher_order(&eq.primitive, &program.0, args)?
                }
                Primitive::While {
                    cond,
                    body,
                    cond_consts,
                    body_consts,
                } => {
                    let w = control_diff::WhileLoop {
                        cond: &cond.0,
                        body: &body.0,
                        cond_consts: *cond_consts,
                        body_consts: *body_consts,
                    };
                    control_diff::while_jvp(&w, args)?
                }
                primitive => vec![first_order(primitive, &args)?],
            }))
        },
    )
}

/// [`LoopValues`] over duals: the loops of an equation that nothing traced reaches run
/// here, lane by lane and iteration by iteration.
struct DualLoops;

impl LoopValues for DualLoops {
    type Value = Dual;

    fn index(&mut self, value: &Dual, axis: usize, i: usize) -> Result<Dual> {
        let (axis, i) = (axis as isize, i as isize);
        Ok(Dual {
            primal: value.primal.index_axis(axis, i)?,
            tangent: (value.tangent.as_ref())
                .map(|t| t.index_axis(axis, i))
                .transpose()?,
        })
    }

    fn stack(&mut self, values: Vec<Dual>, axis: usize) -> Result<Dual> {
        let primals: Vec<Tensor> = values.iter().map(|d| d.primal.clone()).collect();
        let tangent = match values.iter().any(|d| d.tangent.is_some()) {
            true => {
                let tangents: Vec<Tensor> = values.iter().map(Dual::tangent_or_zeros).collect();
                Some(Tensor::stack(&tangents, axis as isize)?)
            }
            false => None,
        };
        Ok(Dual {
            primal: Tensor::stack(&primals, axis as isize)?,
            tangent,
        })
    }

    fn zeros(&mut self, aval: &AbstractValue) -> Result<Dual> {
        Ok(Dual::constant(Tensor::zeros_of(&aval.shape, aval.dtype)?))
    }

    fn aval(&self, value: &Dual) -> AbstractValue {
        value.primal.aval()
    }
}

/// A `call`, checkpoint, `vmap` or `scan` equation on duals.
fn higher_order(primitive: &Primitive, body: &Program, args: Vec<Dual>) -> Result<Vec<Dual>> {
    if !args.iter().any(Dual::is_traced) {
        return unrolled(primitive, body, args);
    }
    let primals: Vec<Tensor> = args.iter().map(|d| d.primal.clone()).collect();
    let mut with_tangent: Vec<bool> = (args.iter())
        .map(|d| d.tangent.is_some() && differentiable(d.primal.dtype()))
        .collect();
    if !with_tangent.iter().any(|&t| t) {
        let outputs = record_multi(primitive.clone(), &primals.iter().collect::<Vec<_>>())?;
        return Ok(outputs.into_iter().map(Dual::constant).collect());
    }
    // Which outputs get a tangent: those that depend on an input with one. A scan's carry
    // takes one in when its new value has one, and gives one out when it takes one in.
    let out_avals = body.output_avals();
    let mut out_tangent = body.depends_on(&with_tangent);
    if let Primitive::Scan { spec, .. } = primitive {
        loop {
            let mut changed = false;
            for (j, kind) in spec.outputs.iter().enumerate() {
                if let ScanOutput::Carry(i) = *kind
                    && out_tangent[j]
                    && !with_tangent[i]
                    && differentiable(primals[i].dtype())
                {
                    with_tangent[i] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
            out_tangent = body.depends_on(&with_tangent);
        }
        for (j, kind) in spec.outputs.iter().enumerate() {
            if let ScanOutput::Carry(i) = *kind {
                out_tangent[j] = with_tangent[i];
            }
        }
    }
    for (j, aval) in out_avals.iter().enumerate() {
        out_tangent[j] &= differentiable(aval.dtype);
    }
    let tangent_inputs: Vec<usize> = (0..args.len()).filter(|&i| with_tangent[i]).collect();
    let tangent_outputs: Vec<usize> = (0..out_avals.len()).filter(|&j| out_tangent[j]).collect();
    // The body's inputs as one lane or iteration sees them, then their tangents.
    let lane_inputs = body.input_avals();
    let avals: Vec<AbstractValue> = (lane_inputs.iter().cloned())
        .chain(tangent_inputs.iter().map(|&i| lane_inputs[i].clone()))
        .collect();
    let n = args.len();
    // A `shard_map` body's collectives name its mesh's axes.
    let _axes = match primitive {
        Primitive::ShardMap { spec, .. } => Some(crate::shard::AxisScope::enter(&spec.mesh)),
        _ => None,
    };
    let traced = trace_fn(&avals, |values| {
        let (values, tangents) = values.split_at(n);
        let mut duals: Vec<Dual> = values.iter().cloned().map(Dual::constant).collect();
        for (&i, t) in tangent_inputs.iter().zip(tangents) {
            duals[i].tangent = Some(t.clone());
        }
        let outputs = jvp_program(body, duals)?;
        let mut results: Vec<Tensor> = outputs.iter().map(|d| d.primal.clone()).collect();
        for &j in &tangent_outputs {
            results.push(outputs[j].tangent_or_zeros());
        }
        Ok((results, ()))
    })?;
    let program = ProgramRef(Arc::new(traced.program));
    let captured = traced.captured.len();
    let lifted = match primitive {
        Primitive::Call { .. } => Primitive::Call { program },
        Primitive::Remat { policy, .. } => Primitive::Remat {
            program,
            policy: *policy,
        },
        Primitive::Vmap { batching, .. } => {
            let mut in_axes = batching.in_axes.clone();
            in_axes.extend(tangent_inputs.iter().map(|&i| batching.in_axes[i]));
            in_axes.extend((0..captured).map(|_| None));
            let mut out_axes = batching.out_axes.clone();
            out_axes.extend(tangent_outputs.iter().map(|&j| batching.out_axes[j]));
            Primitive::Vmap {
                program,
                batching: Batching {
                    in_axes,
                    out_axes,
                    axis_size: batching.axis_size,
                },
            }
        }
        Primitive::Scan { spec, .. } => {
            let mut inputs = spec.inputs.clone();
            inputs.extend(tangent_inputs.iter().map(|&i| spec.inputs[i]));
            inputs.extend((0..captured).map(|_| ScanInput::Broadcast));
            let mut outputs = spec.outputs.clone();
            for &j in &tangent_outputs {
                outputs.push(match spec.outputs[j] {
                    ScanOutput::Carry(i) => {
                        let k = tangent_inputs.iter().position(|&t| t == i).ok_or_else(|| {
                            Error::internal("a scan carry's tangent has no tangent input")
                        })?;
                        ScanOutput::Carry(n + k)
                    }
                    other => other,
                });
            }
            Primitive::Scan {
                program,
                spec: ScanSpec {
                    length: spec.length,
                    reverse: spec.reverse,
                    inputs,
                    outputs,
                },
            }
        }
        Primitive::ShardMap { spec, .. } => {
            let mut shard = spec.clone();
            let in_specs = tangent_inputs.iter().map(|&i| spec.in_specs[i].clone());
            shard.in_specs.extend(in_specs);
            shard.in_specs.extend((0..captured).map(|_| Vec::new()));
            let out_specs = tangent_outputs.iter().map(|&j| spec.out_specs[j].clone());
            shard.out_specs.extend(out_specs);
            Primitive::ShardMap {
                program,
                spec: shard,
            }
        }
        _ => return Err(Error::internal("a first-order primitive in higher_order")),
    };
    let mut operands: Vec<Tensor> = primals;
    for &i in &tangent_inputs {
        operands.push(args[i].tangent_or_zeros());
    }
    operands.extend(traced.captured);
    let results = record_multi(lifted, &operands.iter().collect::<Vec<_>>())?;
    Ok(with_tangents(results, out_avals.len(), &tangent_outputs))
}

/// The first `n` of `results` as duals, the tangents of outputs `tangent_outputs` following
/// them in `results` (what a lifted higher-order equation returns).
pub(crate) fn with_tangents(
    results: Vec<Tensor>,
    n: usize,
    tangent_outputs: &[usize],
) -> Vec<Dual> {
    let mut results = results.into_iter();
    let mut outputs: Vec<Dual> = (&mut results).take(n).map(Dual::constant).collect();
    for (&j, t) in tangent_outputs.iter().zip(results) {
        outputs[j].tangent = Some(t);
    }
    outputs
}

/// A higher-order equation nothing traced reaches, run now: calls inline, loops lane by
/// lane or iteration by iteration.
fn unrolled(primitive: &Primitive, body: &Program, args: Vec<Dual>) -> Result<Vec<Dual>> {
    match primitive {
        Primitive::Vmap { batching, .. } => {
            let lane_outputs = body.output_avals();
            lanes_loop(&mut DualLoops, batching, &lane_outputs, &args, |_, lane| {
                jvp_program(body, lane.to_vec())
            })
        }
        Primitive::Scan { spec, .. } => {
            let results = spec.output_avals(body);
            scan_loop(&mut DualLoops, spec, &results, &args, |_, step| {
                jvp_program(body, step.to_vec())
            })
        }
        // Its body runs per device: there is no device here.
        Primitive::ShardMap { .. } => Err(Error::Sharding(
            "forward-mode differentiation of a shard_map whose inputs are all constants".into(),
        )),
        _ => jvp_program(body, args),
    }
}

/// A first-order primitive on duals: its value, and the tangent of its (one) output.
fn first_order(p: &Primitive, args: &[Dual]) -> Result<Dual> {
    let x: Vec<Tensor> = args.iter().map(|d| d.primal.clone()).collect();
    let y = Tensor::apply(p.clone(), &x.iter().collect::<Vec<_>>())?;
    let t: Vec<Option<Tensor>> = (args.iter())
        .map(|d| {
            d.tangent
                .clone()
                .filter(|_| differentiable(d.primal.dtype()))
        })
        .collect();
    let tangent = match t.iter().all(Option::is_none) || !differentiable(y.dtype()) {
        true => None,
        false => jvp_rule(p, &x, &y, &t)?,
    };
    Ok(Dual { primal: y, tangent })
}

/// The tangent of `y = p(x)` given the operands' tangents `t` (at least one present).
fn jvp_rule(
    p: &Primitive,
    x: &[Tensor],
    y: &Tensor,
    t: &[Option<Tensor>],
) -> Result<Option<Tensor>> {
    // A tangent with the output's shape (an operand's tangent may broadcast).
    let fit = |t: Tensor| -> Result<Tensor> {
        match t.shape() == y.shape() {
            true => Ok(t),
            false => t.broadcast_to(y.shape()),
        }
    };
    // Operand `i`'s tangent, zeros if it has none.
    let or_zeros = |i: usize| -> Tensor {
        match &t[i] {
            Some(t) => t.clone(),
            None => zeros_like(&x[i]),
        }
    };
    // The same (linear) primitive applied to the tangents.
    let linear = || -> Result<Tensor> {
        let ts: Vec<Tensor> = (0..x.len()).map(or_zeros).collect();
        Tensor::apply(p.clone(), &ts.iter().collect::<Vec<_>>())
    };
    // Σ over present tangents of `term(i, tangent)`.
    let sum_terms = |term: &dyn Fn(usize, &Tensor) -> Result<Tensor>| -> Result<Option<Tensor>> {
        let mut total: Option<Tensor> = None;
        for (i, ti) in t.iter().enumerate() {
            if let Some(ti) = ti {
                let part = fit(term(i, ti)?)?;
                total = Some(match total {
                    Some(acc) => acc.add(&part)?,
                    None => part,
                });
            }
        }
        Ok(total)
    };
    let one = || Tensor::from(1.0f32);
    Ok(match p {
        Primitive::Binary(op) => {
            let (a, b) = (&x[0], &x[1]);
            match op {
                BinaryOp::Add => sum_terms(&|_, t| Ok(t.clone()))?,
                BinaryOp::Sub => sum_terms(&|i, t| match i {
                    0 => Ok(t.clone()),
                    _ => t.unary(UnaryOp::Neg),
                })?,
                BinaryOp::Mul => sum_terms(&|i, t| t.mul(if i == 0 { b } else { a }))?,
                BinaryOp::Div => sum_terms(&|i, t| match i {
                    0 => t.div(b),
                    _ => t.mul(y)?.div(b)?.unary(UnaryOp::Neg),
                })?,
                BinaryOp::Pow => sum_terms(&|i, t| match i {
                    0 => t.mul(b)?.mul(&a.pow(&b.sub(&one())?)?),
                    _ => t.mul(y)?.mul(&a.log()?),
                })?,
                BinaryOp::Maximum | BinaryOp::Minimum => {
                    // As the VJP (see `ExtremumSlopes`); relu's constant zero has no tangent.
                    let slopes = ExtremumSlopes::of(*op, a, b, y)?;
                    sum_terms(&|i, t| {
                        slopes.chain(i, y, t)?.ok_or_else(|| {
                            Error::internal("a tangent for the constant operand of relu")
                        })
                    })?
                }
            }
        }
        Primitive::Unary(op) => Some(unary_chain(*op, &x[0], y, &or_zeros(0))?),
        Primitive::Select => {
            let c = &x[0];
            let on = |i: usize| -> Result<Tensor> { fit(or_zeros(i)) };
            Some(c.select(&on(1)?, &on(2)?)?)
        }
        Primitive::Matmul => sum_terms(&|i, t| match i {
            0 => t.matmul(&x[1]),
            _ => x[0].matmul(t),
        })?,
        Primitive::Reduce { op, axes, keepdims } => Some(match op {
            ReduceOp::Sum | ReduceOp::Mean => linear()?,
            ReduceOp::Max | ReduceOp::Min => {
                // The tangents of the elements that attain the extremum, shared as the
                // VJP shares the cotangent.
                let shares = extremum_shares(&x[0], y, axes, *keepdims)?;
                let axes: Vec<isize> = axes.iter().map(|&i| i as isize).collect();
                (or_zeros(0).mul(&shares)?).reduce(ReduceOp::Sum, axes, *keepdims)?
            }
        }),
        Primitive::Reshape { .. }
        | Primitive::Squeeze { .. }
        | Primitive::ExpandDims { .. }
        | Primitive::Transpose { .. }
        | Primitive::BroadcastTo { .. }
        | Primitive::IndexAxis { .. }
        | Primitive::SliceAxis { .. }
        | Primitive::Pad { .. }
        | Primitive::Cumsum { .. }
        | Primitive::Patches { .. }
        | Primitive::PatchesTranspose { .. }
        | Primitive::Concatenate { .. }
        | Primitive::Stack { .. }
        | Primitive::Astype { .. } => Some(linear()?),
        // Linear in the first operand; the indices have no tangent. Tangents read zero out
        // of range, as JAX's gather JVP fills with 0.
        Primitive::Take { axis, .. } => match &t[0] {
            Some(t0) => Some(t0.take_with(&x[1], *axis as isize, false)?),
            None => None,
        },
        Primitive::TakeTranspose { axis, size } => match &t[0] {
            Some(t0) => Some(t0.take_transpose(&x[1], *axis, *size)?),
            None => None,
        },
        Primitive::DynamicSlice { axis, size } => match &t[0] {
            Some(t0) => Some(t0.dynamic_slice_in_dim(&x[1], *size, *axis as isize)?),
            None => None,
        },
        Primitive::DynamicUpdateSlice { axis } => {
            Some(or_zeros(0).dynamic_update_slice_in_dim(&or_zeros(1), &x[2], *axis as isize)?)
        }
        Primitive::QrQ => Some(super::linalg_rules::qr_q_jvp(&x[0], y, &or_zeros(0))?),
        Primitive::TriangularSolve(spec) => Some(super::linalg_rules::triangular_solve_jvp(
            *spec,
            x,
            y,
            t[0].as_ref(),
            t[1].as_ref(),
        )?),
        Primitive::Collective(op) => match op {
            CollectiveOp::AxisIndex { .. } => None,
            CollectiveOp::Pmax { axes } => {
                // The tangents of the devices that attain the maximum, shared.
                let (shares, _) = super::rules::pmax_shares(&x[0], y, axes)?;
                Some(crate::shard::psum(
                    &or_zeros(0).mul(&shares)?,
                    axes.as_slice(),
                )?)
            }
            _ => Some(linear()?),
        },
        Primitive::ShardMap { .. } => return Err(super::rules::no_derivative(p)),
        Primitive::Compare(_)
        | Primitive::ArgReduce { .. }
        | Primitive::StopGradient
        | Primitive::Random(_)
        | Primitive::FoldInEach
        | Primitive::SeedKeys => None,
        Primitive::Call { .. }
        | Primitive::Remat { .. }
        | Primitive::CustomVjp { .. }
        | Primitive::Vmap { .. }
        | Primitive::Scan { .. }
        | Primitive::Cond { .. }
        | Primitive::While { .. } => {
            return Err(Error::internal(format!(
                "{} reached a first-order JVP rule",
                p.name()
            )));
        }
    })
}
