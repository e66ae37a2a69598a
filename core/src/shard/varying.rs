//! Which mesh axes a `shard_map` body's values vary along (JAX's replication check): a
//! result the out specs replicate along an axis must not vary along it.

use super::collective::CollectiveOp;
use super::mesh::Mesh;
use crate::program::{Atom, Primitive, Program, ScanOutput};

/// The bit of each of `names` in a variation mask over `mesh`'s axes.
pub(crate) fn bits(mesh: &Mesh, names: &[String]) -> u64 {
    names
        .iter()
        .filter_map(|n| mesh.axis(n))
        .fold(0, |m, a| m | (1 << a))
}

/// For each output of `program`, the mesh axes (bits over `mesh`'s axes) along which it
/// may differ between devices, given the inputs' (`inputs`, one per program input).
/// Conservative where it must be: a loop or branch varies along everything its operands
/// vary along, unless a fixpoint shows less (a scan's carries).
pub(crate) fn varying(program: &Program, inputs: &[u64], mesh: &Mesh) -> Vec<u64> {
    let mut env = vec![0u64; program.avals.len()];
    for (v, &m) in program.inputs.iter().zip(inputs) {
        if let Some(slot) = env.get_mut(v.0 as usize) {
            *slot = m;
        }
    }
    let of = |env: &[u64], a: &Atom| match a {
        Atom::Var(v) => env.get(v.0 as usize).copied().unwrap_or(0),
        Atom::Literal(_) => 0,
    };
    for eq in &program.equations {
        let ins: Vec<u64> = eq.inputs.iter().map(|a| of(&env, a)).collect();
        let union = ins.iter().fold(0, |m, i| m | i);
        let outs: Vec<u64> = match &eq.primitive {
            Primitive::Collective(op) => {
                let axes = bits(mesh, op.axes());
                vec![match op {
                    CollectiveOp::Psum { .. }
                    | CollectiveOp::Pmean { .. }
                    | CollectiveOp::Pmax { .. }
                    | CollectiveOp::AllGather { .. } => union & !axes,
                    CollectiveOp::PsumScatter { .. } | CollectiveOp::Ppermute { .. } => {
                        union | axes
                    }
                    CollectiveOp::AxisIndex { .. } => axes,
                }]
            }
            Primitive::Call { program }
            | Primitive::Remat { program, .. }
            | Primitive::CustomVjp { program, .. }
            | Primitive::Vmap { program, .. } => varying(&program.0, &ins, mesh),
            Primitive::Scan { program, spec } => {
                let mut carried = ins.clone();
                loop {
                    let outs = varying(&program.0, &carried, mesh);
                    let mut changed = false;
                    for (out, kind) in outs.iter().zip(&spec.outputs) {
                        if let ScanOutput::Carry(i) = kind
                            && let Some(m) = carried.get_mut(*i)
                            && *m | out != *m
                        {
                            *m |= out;
                            changed = true;
                        }
                    }
                    if !changed {
                        break outs;
                    }
                }
            }
            _ => vec![union; eq.outputs.len()],
        };
        for (v, m) in eq.outputs.iter().zip(outs) {
            if let Some(slot) = env.get_mut(v.0 as usize) {
                *slot = m;
            }
        }
    }
    program.outputs.iter().map(|a| of(&env, a)).collect()
}
