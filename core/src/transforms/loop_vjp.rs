//! The backward passes of loops, as loops: a `vmap` equation's is one `vmap` of its body's
//! backward pass, a `scan`'s one reverse `scan` of its body's backward pass over the carries
//! the forward scan saved, a `shard_map`'s one `shard_map` of its body's backward pass. Each
//! body's backward pass is traced once with the tape of
//! [`autodiff`](super::autodiff) (so loops nested in the body get the same treatment), and
//! the program size does not depend on the number of lanes or iterations.

use std::sync::Arc;

use super::autodiff::{Tape, body_cotangents, or_zeros};
use super::rules::{differentiable, zeros_like};
use crate::error::{Error, Result};
use crate::program::{
    AbstractValue, Atom, Batching, Primitive, Program, ProgramRef, ScanInput, ScanOutput, ScanSpec,
    record_multi, trace_fn,
};
use crate::shard::{AxisScope, ShardSpec};
use crate::tensor::Tensor;

/// Output positions with their cotangents.
type Seeded = Vec<(usize, Tensor)>;

/// The outputs a loop body's backward pass starts from (those with a float cotangent, with
/// it) and the operands it gives cotangents for; `None` when either is empty.
fn seeds(
    outputs: &[AbstractValue],
    g: &[Option<Tensor>],
    needed: &[bool],
) -> Option<(Seeded, Vec<usize>)> {
    let seeded: Seeded = (g.iter().enumerate())
        .filter_map(|(j, g)| Some((j, g.clone()?)))
        .filter(|(j, _)| outputs.get(*j).is_some_and(|a| differentiable(a.dtype)))
        .collect();
    let wrt: Vec<usize> = (0..needed.len()).filter(|&i| needed[i]).collect();
    (!seeded.is_empty() && !wrt.is_empty()).then_some((seeded, wrt))
}

/// The cotangents of a `vmap` equation's operands `x` that are `needed`, given its outputs'
/// cotangents `g`: one `vmap`, over the same lanes, of the body's backward pass. Each lane
/// re-runs the body's forward pass (nothing is saved between the passes) and sweeps back
/// from that lane's output cotangents; an operand mapped along an axis gets its cotangents
/// stacked along it, an unmapped one (shared by every lane, such as a model's weights) their
/// sum over lanes.
pub(super) fn vmap_vjp(
    body: &Program,
    batching: &Batching,
    x: &[Tensor],
    g: &[Option<Tensor>],
    needed: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let lane_outputs = body.output_avals();
    let Some((seeded, wrt)) = seeds(&lane_outputs, g, needed) else {
        return Ok(vec![None; x.len()]);
    };
    let mut avals: Vec<AbstractValue> = (x.iter().zip(&batching.in_axes))
        .map(|(t, axis)| {
            let mut aval = t.aval();
            if let Some(axis) = axis {
                aval.shape.remove(*axis);
            }
            aval
        })
        .collect();
    avals.extend(seeded.iter().map(|(j, _)| lane_outputs[*j].clone()));
    let backward = trace_fn(&avals, |values| {
        let (inputs, cotangents) = values.split_at(x.len());
        let outputs: Vec<usize> = seeded.iter().map(|(j, _)| *j).collect();
        let grads = body_cotangents(body, inputs, &[], &outputs, cotangents, &wrt)?;
        Ok((grads, ()))
    })?;
    let mut in_axes = batching.in_axes.clone();
    in_axes.extend(seeded.iter().map(|(j, _)| batching.out_axes[*j]));
    in_axes.extend(backward.captured.iter().map(|_| None));
    let lanes = Batching {
        in_axes,
        out_axes: wrt
            .iter()
            .map(|&i| Some(batching.in_axes[i].unwrap_or(0)))
            .collect(),
        axis_size: batching.axis_size,
    };
    let operands: Vec<&Tensor> = (x.iter())
        .chain(seeded.iter().map(|(_, g)| g))
        .chain(&backward.captured)
        .collect();
    let primitive = Primitive::Vmap {
        program: ProgramRef(Arc::new(backward.program)),
        batching: lanes,
    };
    let mut result = vec![None; x.len()];
    for (&i, cot) in wrt.iter().zip(record_multi(primitive, &operands)?) {
        result[i] = Some(match batching.in_axes[i] {
            Some(_) => cot,
            None => cot.sum(0)?,
        });
    }
    Ok(result)
}

/// The cotangents of a `shard_map`'s operands: one `shard_map` of its body's backward pass
/// (the body re-run from the operands' blocks), as JAX transposes one. An output replicated
/// along mesh axes is one value its devices share, so each device's part of its cotangent
/// is divided by their number; an operand replicated along mesh axes is used by each of
/// their devices, so its cotangent is the `psum` of theirs.
pub(super) fn shard_map_vjp(
    body: &Program,
    spec: &ShardSpec,
    x: &[Tensor],
    g: &[Option<Tensor>],
    needed: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let block_outputs = body.output_avals();
    let Some((seeded, wrt)) = seeds(&block_outputs, g, needed) else {
        return Ok(vec![None; x.len()]);
    };
    let mesh = &spec.mesh;
    // The mesh axes a value placed as `dims` is replicated along.
    let unmentioned = |dims: &[Vec<String>]| -> Vec<String> {
        (mesh.axes().iter())
            .filter(|(name, _)| !dims.iter().flatten().any(|n| n == name))
            .map(|(name, _)| name.clone())
            .collect()
    };
    let mut avals = body.input_avals();
    avals.extend(seeded.iter().map(|(j, _)| block_outputs[*j].clone()));
    let backward = {
        let _axes = AxisScope::enter(mesh);
        trace_fn(&avals, |values| {
            let (inputs, cotangents) = values.split_at(x.len());
            let cotangents = (seeded.iter().zip(cotangents))
                .map(|((j, _), ct)| {
                    let shared = unmentioned(&spec.out_specs[*j]);
                    match shared.is_empty() {
                        true => Ok(ct.clone()),
                        false => ct / spec.mesh.count(&shared) as f32,
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            let outputs: Vec<usize> = seeded.iter().map(|(j, _)| *j).collect();
            let grads = body_cotangents(body, inputs, &[], &outputs, &cotangents, &wrt)?;
            let grads = (wrt.iter().zip(grads))
                .map(|(&i, grad)| {
                    let shared = unmentioned(&spec.in_specs[i]);
                    match shared.is_empty() {
                        true => Ok(grad),
                        false => crate::shard::psum(&grad, shared.as_slice()),
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((grads, ()))
        })?
    };
    let mut shard = spec.clone();
    shard
        .in_specs
        .extend(seeded.iter().map(|(j, _)| spec.out_specs[*j].clone()));
    shard
        .in_specs
        .extend(backward.captured.iter().map(|_| Vec::new()));
    shard.out_specs = wrt.iter().map(|&i| spec.in_specs[i].clone()).collect();
    let operands: Vec<&Tensor> = (x.iter())
        .chain(seeded.iter().map(|(_, g)| g))
        .chain(&backward.captured)
        .collect();
    let primitive = Primitive::ShardMap {
        program: ProgramRef(Arc::new(backward.program)),
        spec: shard,
    };
    let mut result = vec![None; x.len()];
    for (&i, cot) in wrt.iter().zip(record_multi(primitive, &operands)?) {
        result[i] = Some(cot);
    }
    Ok(result)
}

/// The body outputs that are new carries, in output order (what [`Tape`]'s `scan_step`
/// saves per iteration besides the carries it starts from).
pub(super) fn carry_outputs(spec: &ScanSpec) -> Vec<usize> {
    (spec.outputs.iter().enumerate())
        .filter(|(_, kind)| matches!(kind, ScanOutput::Carry(_)))
        .map(|(j, _)| j)
        .collect()
}

/// For each variable of `program`, the first-order equation that computes it alone (the
/// equations whose saved result a re-run can take instead of computing it).
fn computed_by(program: &Program) -> Vec<Option<usize>> {
    let mut by = vec![None; program.avals.len()];
    for (k, eq) in program.equations.iter().enumerate() {
        let first_order = !matches!(
            eq.primitive,
            Primitive::Call { .. }
                | Primitive::Remat { .. }
                | Primitive::CustomVjp { .. }
                | Primitive::Vmap { .. }
                | Primitive::Scan { .. }
        );
        if let ([v], true) = (eq.outputs.as_slice(), first_order) {
            by[v.0 as usize] = Some(k);
        }
    }
    by
}

/// The cotangents of a `scan` equation's operands `x` (scanned and broadcast ones only where
/// `needed`), given its outputs and saved carries `out` (as the tape's `scan_step` recorded
/// them) and the outputs' cotangents `g`: one scan in the opposite direction over the
/// body's backward pass. Each iteration re-runs the body
/// from the carry it started from (saved by the forward scan) and sweeps back from the
/// cotangent of the carry it produced and of its stacked outputs; the carries' cotangents
/// are the loop state, scanned inputs get theirs stacked, broadcast inputs (a model's
/// weights shared by every iteration) the sum over iterations, accumulated as loop state.
pub(super) fn scan_vjp(
    body: &Program,
    spec: &ScanSpec,
    x: &[Tensor],
    out: &[Tensor],
    g: &[Option<Tensor>],
    needed: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let n_out = spec.outputs.len();
    let float = |i: &usize| differentiable(x[*i].dtype());
    // The operands of each kind, in order.
    let of_kind = |kind: fn(&ScanInput) -> bool| -> Vec<usize> {
        (0..x.len()).filter(|&i| kind(&spec.inputs[i])).collect()
    };
    let carries = of_kind(|k| *k == ScanInput::Carry);
    let scanned = of_kind(|k| matches!(k, ScanInput::Scanned(_)));
    let broadcast = of_kind(|k| *k == ScanInput::Broadcast);
    let float_carries: Vec<usize> = carries.iter().copied().filter(float).collect();
    // Carry cotangents are the loop's state whether or not the initial carry needs one;
    // scanned and broadcast inputs get one only when the caller needs it.
    let scanned_wrt: Vec<usize> = scanned.iter().copied().filter(|&i| needed[i]).collect();
    let broadcast_wrt: Vec<usize> = broadcast.iter().copied().filter(|&i| needed[i]).collect();
    let lane_outputs = body.output_avals();
    // Stacked outputs with a cotangent, and the output carrying each carry input.
    let seeded: Vec<(usize, usize, Tensor)> = (spec.outputs.iter().enumerate())
        .filter_map(|(j, kind)| match (kind, g.get(j)?) {
            (ScanOutput::Stacked(axis), Some(g)) if differentiable(lane_outputs[j].dtype) => {
                Some((j, *axis, g.clone()))
            }
            _ => None,
        })
        .collect();
    let carry_output = |i: usize| spec.outputs.iter().position(|k| *k == ScanOutput::Carry(i));
    let wanted = !float_carries.is_empty() || !scanned_wrt.is_empty() || !broadcast_wrt.is_empty();
    let seeds_any = !seeded.is_empty()
        || float_carries
            .iter()
            .any(|&i| carry_output(i).is_some_and(|j| g.get(j).is_some_and(Option::is_some)));
    if !wanted || !seeds_any {
        return Ok(vec![None; x.len()]);
    }
    let unstacked = |aval: AbstractValue, axis: usize| {
        let mut aval = aval;
        aval.shape.remove(axis);
        aval
    };
    // The backward body's inputs: carry cotangents and broadcast accumulators (loop state),
    // saved carries, scanned inputs, stacked-output cotangents (scanned), broadcast inputs.
    let mut kinds: Vec<ScanInput> = Vec::new();
    let mut avals: Vec<AbstractValue> = Vec::new();
    let mut operands: Vec<Tensor> = Vec::new();
    for &i in &float_carries {
        let g = carry_output(i).and_then(|j| g.get(j).cloned().flatten());
        operands.push(g.unwrap_or_else(|| zeros_like(&x[i])));
        avals.push(x[i].aval());
        kinds.push(ScanInput::Carry);
    }
    for &b in &broadcast_wrt {
        operands.push(zeros_like(&x[b]));
        avals.push(x[b].aval());
        kinds.push(ScanInput::Carry);
    }
    for (k, &i) in carries.iter().enumerate() {
        operands.push(out[n_out + k].clone());
        avals.push(x[i].aval());
        kinds.push(ScanInput::Scanned(0));
    }
    // Each iteration's outputs (the new carries it saved, the stacked outputs), which its
    // re-run reads instead of recomputing: what leads only to them is not recomputed.
    let mut produced: Vec<usize> = Vec::new();
    for (c, &j) in carry_outputs(spec).iter().enumerate() {
        operands.push(out[n_out + carries.len() + c].clone());
        avals.push(lane_outputs[j].clone());
        kinds.push(ScanInput::Scanned(0));
        produced.push(j);
    }
    for (j, kind) in spec.outputs.iter().enumerate() {
        if let ScanOutput::Stacked(axis) = kind {
            operands.push(out[j].clone());
            avals.push(lane_outputs[j].clone());
            kinds.push(ScanInput::Scanned(*axis));
            produced.push(j);
        }
    }
    let by = computed_by(body);
    for &s in &scanned {
        let ScanInput::Scanned(axis) = spec.inputs[s] else {
            continue;
        };
        operands.push(x[s].clone());
        avals.push(unstacked(x[s].aval(), axis));
        kinds.push(ScanInput::Scanned(axis));
    }
    for (_, axis, g) in &seeded {
        operands.push(g.clone());
        avals.push(unstacked(g.aval(), *axis));
        kinds.push(ScanInput::Scanned(*axis));
    }
    for &b in &broadcast {
        operands.push(x[b].clone());
        avals.push(x[b].aval());
        kinds.push(ScanInput::Broadcast);
    }
    let (n_ct, n_acc) = (float_carries.len(), broadcast_wrt.len());
    let backward = trace_fn(&avals, |values| {
        let (state, rest) = values.split_at(n_ct + n_acc);
        let (ct, acc) = state.split_at(n_ct);
        let (saved, rest) = rest.split_at(carries.len());
        let (outputs, rest) = rest.split_at(produced.len());
        let (xs, rest) = rest.split_at(scanned.len());
        let (gs, bs) = rest.split_at(seeded.len());
        // The body's inputs in its own order.
        let mut inputs: Vec<Tensor> = Vec::with_capacity(x.len());
        let (mut c, mut s, mut b) = (saved.iter(), xs.iter(), bs.iter());
        for kind in &spec.inputs {
            let next = match kind {
                ScanInput::Carry => c.next(),
                ScanInput::Scanned(_) => s.next(),
                ScanInput::Broadcast => b.next(),
            };
            inputs.push(next.cloned().ok_or_else(|| {
                Error::internal("a scan's backward pass lost track of its inputs")
            })?);
        }
        let mut reuse: Vec<Option<Tensor>> = vec![None; body.equations.len()];
        for (&j, value) in produced.iter().zip(outputs) {
            if let Atom::Var(v) = &body.outputs[j]
                && let Some(k) = by[v.0 as usize]
            {
                reuse[k] = Some(value.clone());
            }
        }
        let tape = Tape::forward_reusing(body, &inputs, &reuse)?;
        let mut seeds: Vec<(usize, Tensor)> = (float_carries.iter().zip(ct))
            .filter_map(|(&i, ct)| Some((carry_output(i)?, ct.clone())))
            .collect();
        seeds.extend(seeded.iter().zip(gs).map(|((j, _, _), g)| (*j, g.clone())));
        let wanted: Vec<usize> = (float_carries.iter())
            .chain(&broadcast_wrt)
            .chain(&scanned_wrt)
            .copied()
            .collect();
        let cots = tape.backward(&seeds, &wanted)?;
        let mut results: Vec<Tensor> = Vec::new();
        for &i in &float_carries {
            results.push(or_zeros(cots[i].clone(), &inputs[i]));
        }
        for (&b, acc) in broadcast_wrt.iter().zip(acc) {
            results.push(match &cots[b] {
                Some(cot) => acc.add(cot)?,
                None => acc.clone(),
            });
        }
        for &s in &scanned_wrt {
            results.push(or_zeros(cots[s].clone(), &inputs[s]));
        }
        Ok((results, ()))
    })?;
    kinds.extend(backward.captured.iter().map(|_| ScanInput::Broadcast));
    operands.extend(backward.captured.iter().cloned());
    let mut outputs: Vec<ScanOutput> = (0..n_ct + n_acc).map(ScanOutput::Carry).collect();
    outputs.extend(scanned_wrt.iter().map(|&s| match spec.inputs[s] {
        ScanInput::Scanned(axis) => ScanOutput::Stacked(axis),
        _ => ScanOutput::Stacked(0),
    }));
    let reverse_spec = ScanSpec {
        length: spec.length,
        reverse: !spec.reverse,
        inputs: kinds,
        outputs,
    };
    let cots = record_multi(
        Primitive::Scan {
            program: ProgramRef(Arc::new(backward.program)),
            spec: reverse_spec,
        },
        &operands.iter().collect::<Vec<_>>(),
    )?;
    let mut result = vec![None; x.len()];
    let targets = float_carries
        .iter()
        .chain(&broadcast_wrt)
        .chain(&scanned_wrt);
    for (&i, cot) in targets.zip(cots) {
        result[i] = Some(cot);
    }
    Ok(result)
}
