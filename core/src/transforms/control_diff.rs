//! Control flow inside traces and derivatives: recording a `cond` from traced branches, and
//! the forward- and reverse-mode rules of `cond` and `while`.
//!
//! A `cond` stays a `cond` under differentiation: its JVP is a `cond` of its branches' JVPs
//! and its VJP a `cond` of its branches' backward passes (each re-running its branch's
//! forward pass, as a checkpoint does), so only the taken branch runs, forward and backward.
//! A `while` loop has a JVP (a `while` carrying tangents with the loop values) but, as in
//! JAX, no VJP: its number of iterations is not known ahead, so there is nothing to save
//! its carries into; `fori_loop` with static bounds is a `scan` and has one.

use std::sync::Arc;

use super::autodiff::body_cotangents;
use super::forward::{Dual, jvp_program, with_tangents};
use super::rules::differentiable;
use crate::error::{Error, Result};
use crate::program::{
    AbstractValue, Atom, Primitive, Program, ProgramRef, TracedFunction, VarId, branch_index,
    predicate, record_multi, trace_fn, while_loop,
};
use crate::tensor::Tensor;

/// Records `cond(index, operands)` over branches traced on the operands' avals: each branch
/// program is given every branch's captured tensors as extra inputs (reading only its own),
/// so that all branches take the same operands. Outputs that differ only in weak type are
/// made strong in every branch.
///
/// # Errors
/// Recording errors (no traced operand).
pub(crate) fn record_cond<T>(
    index: &Tensor,
    operands: &[Tensor],
    branches: &[TracedFunction<T>],
) -> Result<Vec<Tensor>> {
    let n = operands.len();
    let strong: Vec<bool> = match branches.first() {
        Some(first) => (0..first.program.outputs.len())
            .map(|j| {
                let weak = |b: &TracedFunction<T>| b.program.aval_of(&b.program.outputs[j]).weak;
                branches.iter().any(|b| weak(b) != weak(first))
            })
            .collect(),
        None => Vec::new(),
    };
    let programs = branches
        .iter()
        .enumerate()
        .map(|(k, branch)| {
            let p = &branch.program;
            let mut avals = p.avals.clone();
            let mut inputs = p.inputs[..n].to_vec();
            for (j, other) in branches.iter().enumerate() {
                if j == k {
                    inputs.extend_from_slice(&p.inputs[n..]);
                } else {
                    for t in &other.captured {
                        inputs.push(VarId(avals.len() as u32));
                        avals.push(t.aval());
                    }
                }
            }
            for (out, &strong) in p.outputs.iter().zip(&strong) {
                if let (Atom::Var(v), true) = (out, strong) {
                    avals[v.0 as usize].weak = false;
                }
            }
            ProgramRef(Arc::new(Program::new(
                inputs,
                p.equations.clone(),
                p.outputs.clone(),
                avals,
            )))
        })
        .collect();
    let mut all: Vec<&Tensor> = vec![index];
    all.extend(operands);
    all.extend(branches.iter().flat_map(|b| &b.captured));
    record_multi(Primitive::Cond { branches: programs }, &all)
}

/// `program` with the inputs that closure capture appended after its `declared` ones moved
/// to position `at` (a `while` program takes its constants first).
pub(crate) fn captured_at(program: Program, declared: usize, at: usize) -> Program {
    let mut inputs = program.inputs[..at].to_vec();
    inputs.extend_from_slice(&program.inputs[declared..]);
    inputs.extend_from_slice(&program.inputs[at..declared]);
    Program::new(inputs, program.equations, program.outputs, program.avals)
}

/// The branch a concrete index selects, or `None` for a traced one.
fn concrete_branch(index: &Tensor, branches: usize) -> Result<Option<usize>> {
    match index.concrete() {
        Ok(index) => branch_index(index, branches).map(Some),
        Err(_) => Ok(None),
    }
}

/// The cotangents of a `cond`'s operands `x` (the index first) that are `needed`, given its
/// outputs' cotangents `g`: one `cond` on the same index whose branches are the branches'
/// backward passes.
pub(crate) fn cond_vjp(
    branches: &[ProgramRef],
    x: &[Tensor],
    g: &[Option<Tensor>],
    needed: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let Some((index, operands)) = x.split_first() else {
        return Err(Error::malformed_program("cond has no index"));
    };
    let first = &branches
        .first()
        .ok_or_else(|| Error::malformed_program("cond has no branch"))?
        .0;
    let out_avals = first.output_avals();
    let seeded: Vec<(usize, Tensor)> = (g.iter().enumerate())
        .filter_map(|(j, g)| Some((j, g.clone()?)))
        .filter(|(j, _)| out_avals.get(*j).is_some_and(|a| differentiable(a.dtype)))
        .collect();
    let wrt: Vec<usize> = (0..operands.len()).filter(|&i| needed[i + 1]).collect();
    let mut result = vec![None; x.len()];
    if seeded.is_empty() || wrt.is_empty() {
        return Ok(result);
    }
    let seeded_outputs: Vec<usize> = seeded.iter().map(|(j, _)| *j).collect();
    let avals: Vec<AbstractValue> = (operands.iter())
        .chain(seeded.iter().map(|(_, g)| g))
        .map(Tensor::aval)
        .collect();
    let traced = branches
        .iter()
        .map(|branch| {
            trace_fn(&avals, |values| {
                let (inputs, cotangents) = values.split_at(operands.len());
                let grads =
                    body_cotangents(&branch.0, inputs, &[], &seeded_outputs, cotangents, &wrt)?;
                Ok((grads, ()))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut cond_operands = operands.to_vec();
    cond_operands.extend(seeded.into_iter().map(|(_, g)| g));
    for (&i, cot) in wrt.iter().zip(record_cond(index, &cond_operands, &traced)?) {
        result[i + 1] = Some(cot);
    }
    Ok(result)
}

/// The error of differentiating a `while` loop in reverse mode (as JAX's).
pub(crate) fn while_vjp_error() -> Error {
    Error::ControlFlow(
        "reverse-mode differentiation does not work for while_loop: its number of \
         iterations is not known ahead. Use fori_loop with static bounds, or scan, to \
         differentiate a loop"
            .into(),
    )
}

/// A `cond` equation on duals: the taken branch's JVP when the index is concrete, else one
/// `cond` of the branches' JVPs carrying the operands' tangents.
pub(crate) fn cond_jvp(branches: &[ProgramRef], args: Vec<Dual>) -> Result<Vec<Dual>> {
    let Some((index, operands)) = args.split_first() else {
        return Err(Error::malformed_program("cond has no index"));
    };
    if let Some(k) = concrete_branch(&index.primal, branches.len())? {
        return jvp_program(&branches[k].0, operands.to_vec());
    }
    let primals: Vec<Tensor> = operands.iter().map(|d| d.primal.clone()).collect();
    let with_tangent: Vec<bool> = (operands.iter())
        .map(|d| d.tangent.is_some() && differentiable(d.primal.dtype()))
        .collect();
    if !with_tangent.contains(&true) {
        let mut all = vec![&index.primal];
        all.extend(&primals);
        let outputs = record_multi(
            Primitive::Cond {
                branches: branches.to_vec(),
            },
            &all,
        )?;
        return Ok(outputs.into_iter().map(Dual::constant).collect());
    }
    let first = &branches[0].0;
    let out_avals = first.output_avals();
    let depends: Vec<Vec<bool>> = branches
        .iter()
        .map(|b| b.0.depends_on(&with_tangent))
        .collect();
    let tangent_outputs: Vec<usize> = (0..out_avals.len())
        .filter(|&j| differentiable(out_avals[j].dtype) && depends.iter().any(|d| d[j]))
        .collect();
    let tangent_inputs: Vec<usize> = (0..operands.len()).filter(|&i| with_tangent[i]).collect();
    let avals: Vec<AbstractValue> = (primals.iter().map(Tensor::aval))
        .chain(tangent_inputs.iter().map(|&i| primals[i].aval()))
        .collect();
    let n = operands.len();
    let traced = branches
        .iter()
        .map(|branch| {
            trace_fn(&avals, |values| {
                let (values, tangents) = values.split_at(n);
                let mut duals: Vec<Dual> = values.iter().cloned().map(Dual::constant).collect();
                for (&i, t) in tangent_inputs.iter().zip(tangents) {
                    duals[i].tangent = Some(t.clone());
                }
                let outputs = jvp_program(&branch.0, duals)?;
                let mut results: Vec<Tensor> = outputs.iter().map(|d| d.primal.clone()).collect();
                results.extend(
                    tangent_outputs
                        .iter()
                        .map(|&j| outputs[j].tangent_or_zeros()),
                );
                Ok((results, ()))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut cond_operands = primals;
    cond_operands.extend(
        tangent_inputs
            .iter()
            .map(|&i| operands[i].tangent_or_zeros()),
    );
    let results = record_cond(&index.primal, &cond_operands, &traced)?;
    Ok(with_tangents(results, out_avals.len(), &tangent_outputs))
}

/// The operands of a `while` equation.
pub(crate) struct WhileLoop<'a> {
    /// The predicate.
    pub(crate) cond: &'a Program,
    /// The body.
    pub(crate) body: &'a Program,
    /// How many operands the predicate reads first.
    pub(crate) cond_consts: usize,
    /// How many operands the body reads next.
    pub(crate) body_consts: usize,
}

/// A `while` equation on duals: run now when nothing is traced, else one `while` whose loop
/// values carry their tangents (a loop value takes one when its next value depends on
/// something with a tangent).
pub(crate) fn while_jvp(w: &WhileLoop<'_>, args: Vec<Dual>) -> Result<Vec<Dual>> {
    let (cc, bc) = (w.cond_consts, w.body_consts);
    if !args
        .iter()
        .any(|d| d.primal.is_traced() || d.tangent.as_ref().is_some_and(Tensor::is_traced))
    {
        return while_loop(
            &mut (),
            cc,
            bc,
            &args,
            |_, a| {
                let out = jvp_program(w.cond, a.to_vec())?;
                let holds = out
                    .first()
                    .ok_or_else(|| Error::malformed_program("a while predicate has no output"))?;
                predicate(holds.primal.concrete()?)
            },
            |_, a| jvp_program(w.body, a.to_vec()),
        );
    }
    let primals: Vec<Tensor> = args.iter().map(|d| d.primal.clone()).collect();
    // Which of the body's inputs (its constants, then the loop values) carry a tangent.
    let mut with_tangent: Vec<bool> = (args[cc..].iter())
        .map(|d| d.tangent.is_some() && differentiable(d.primal.dtype()))
        .collect();
    loop {
        let depends = w.body.depends_on(&with_tangent);
        let mut changed = false;
        for (k, d) in depends.into_iter().enumerate() {
            let i = bc + k;
            if d && !with_tangent[i] && differentiable(primals[cc + i].dtype()) {
                with_tangent[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let primitive = Primitive::While {
        cond: ProgramRef(Arc::new(w.cond.clone())),
        body: ProgramRef(Arc::new(w.body.clone())),
        cond_consts: cc,
        body_consts: bc,
    };
    if !with_tangent.contains(&true) {
        let outputs = record_multi(primitive, &primals.iter().collect::<Vec<_>>())?;
        return Ok(outputs.into_iter().map(Dual::constant).collect());
    }
    let values = primals.len() - cc - bc;
    let tangent_consts: Vec<usize> = (0..bc).filter(|&i| with_tangent[i]).collect();
    let tangent_values: Vec<usize> = (0..values).filter(|&k| with_tangent[bc + k]).collect();
    let aval = |i: usize| primals[i].aval();
    let value_avals: Vec<AbstractValue> = (cc + bc..primals.len()).map(aval).collect();
    let value_tangent_avals: Vec<AbstractValue> =
        tangent_values.iter().map(|&k| aval(cc + bc + k)).collect();
    // The predicate on (its constants, the values, their tangents).
    let cond_avals: Vec<AbstractValue> = ((0..cc).map(aval))
        .chain(value_avals.iter().cloned())
        .chain(value_tangent_avals.iter().cloned())
        .collect();
    let cond = trace_fn(&cond_avals, |inputs| {
        let duals = inputs[..cc + values].iter().cloned().map(Dual::constant);
        let out = jvp_program(w.cond, duals.collect())?;
        Ok((out.into_iter().map(|d| d.primal).collect(), ()))
    })?;
    // The body on (its constants, their tangents, the values, their tangents).
    let body_avals: Vec<AbstractValue> = ((cc..cc + bc).map(aval))
        .chain(tangent_consts.iter().map(|&i| aval(cc + i)))
        .chain(value_avals.iter().cloned())
        .chain(value_tangent_avals.iter().cloned())
        .collect();
    let body = trace_fn(&body_avals, |inputs| {
        let (consts, rest) = inputs.split_at(bc);
        let (const_tangents, rest) = rest.split_at(tangent_consts.len());
        let (vals, tangents) = rest.split_at(values);
        let mut duals: Vec<Dual> = consts
            .iter()
            .chain(vals)
            .cloned()
            .map(Dual::constant)
            .collect();
        for (&i, t) in tangent_consts.iter().zip(const_tangents) {
            duals[i].tangent = Some(t.clone());
        }
        for (&k, t) in tangent_values.iter().zip(tangents) {
            duals[bc + k].tangent = Some(t.clone());
        }
        let out = jvp_program(w.body, duals)?;
        let mut results: Vec<Tensor> = out.iter().map(|d| d.primal.clone()).collect();
        results.extend(tangent_values.iter().map(|&k| out[k].tangent_or_zeros()));
        Ok((results, ()))
    })?;
    let cond_consts = cc + cond.captured.len();
    let body_consts = bc + tangent_consts.len() + body.captured.len();
    let lifted = Primitive::While {
        cond: ProgramRef(Arc::new(captured_at(cond.program, cond_avals.len(), cc))),
        body: ProgramRef(Arc::new(captured_at(
            body.program,
            body_avals.len(),
            bc + tangent_consts.len(),
        ))),
        cond_consts,
        body_consts,
    };
    let mut operands: Vec<Tensor> = primals[..cc].to_vec();
    operands.extend(cond.captured);
    operands.extend_from_slice(&primals[cc..cc + bc]);
    operands.extend(
        tangent_consts
            .iter()
            .map(|&i| args[cc + i].tangent_or_zeros()),
    );
    operands.extend(body.captured);
    operands.extend_from_slice(&primals[cc + bc..]);
    operands.extend(
        tangent_values
            .iter()
            .map(|&k| args[cc + bc + k].tangent_or_zeros()),
    );
    let results = record_multi(lifted, &operands.iter().collect::<Vec<_>>())?;
    Ok(with_tangents(results, values, &tangent_values))
}
