//! Inter-operation parallelism: two independent large products run at the same time.
//!
//! A backward pass computes, for each layer, the gradient of its weights (`xᵀ @ g`) and of
//! its input (`g @ Wᵀ`): two products of the same size that read the same `g` and nothing of
//! each other. Products of a layer-sized GEMM (256×256×256) do not gain from being split
//! across threads (waking the other thread costs about what it saves), but two of them side
//! by side keep both cores busy. After fusion, each large fused product whose next large
//! fused product does not read anything computed in between is merged with it into one
//! `call` of a two-equation program; the plan runs the pair with one product per thread.

use std::sync::Arc;

use nnx_core::program::{Atom, Equation, Primitive, Program, ProgramRef, VarId};

use crate::fuse::gemm_of;

/// Multiply-adds from which a fused product is worth running beside another.
const PAIR_MADDS: usize = 1 << 22;

/// Equations looked ahead for a partner.
const WINDOW: usize = 12;

/// Whether `eq` is a large fused product (a `call` of a GEMM chain).
fn large_product(program: &Program, eq: &Equation) -> bool {
    let Primitive::Call { program: inner } = &eq.primitive else {
        return false;
    };
    let Some(gemm) = gemm_of(&inner.0) else {
        return false;
    };
    let [a, b, ..] = eq.inputs.as_slice() else {
        return false;
    };
    let (sa, sb) = (program.aval_of(a).shape, program.aval_of(b).shape);
    let (Some(&a_last), [b0, b1]) = (sa.last(), sb.as_slice()) else {
        return false;
    };
    let rows: usize = if gemm.transpose_a {
        a_last
    } else {
        sa.iter().rev().skip(1).product()
    };
    let (k, n) = if gemm.transpose_b { (b1, b0) } else { (b0, b1) };
    rows.saturating_mul(*k).saturating_mul(*n) >= PAIR_MADDS
}

/// `program` with independent large products paired, or `None` when there are none.
pub(crate) fn pair(program: &Program) -> Option<Program> {
    let eqs = &program.equations;
    let large: Vec<bool> = eqs.iter().map(|eq| large_product(program, eq)).collect();
    let mut partner: Vec<Option<usize>> = vec![None; eqs.len()];
    let mut taken = vec![false; eqs.len()];
    for i in 0..eqs.len() {
        if !large[i] || taken[i] {
            continue;
        }
        // What equations i..j define; j may move up to i if it reads none of it.
        let mut defined: Vec<VarId> = eqs[i].outputs.clone();
        for j in i + 1..eqs.len().min(i + 1 + WINDOW) {
            let reads_defined = eqs[j]
                .inputs
                .iter()
                .any(|a| matches!(a, Atom::Var(v) if defined.contains(v)));
            if large[j] && !taken[j] && !reads_defined {
                partner[i] = Some(j);
                taken[i] = true;
                taken[j] = true;
                break;
            }
            defined.extend(&eqs[j].outputs);
        }
    }
    if partner.iter().all(Option::is_none) {
        return None;
    }
    let mut equations = Vec::with_capacity(eqs.len());
    for (i, eq) in eqs.iter().enumerate() {
        match partner[i] {
            Some(j) => equations.push(pair_equation(program, eq, &eqs[j])),
            None if taken[i] => {} // moved up beside its partner
            None => equations.push(eq.clone()),
        }
    }
    Some(Program::new(
        program.inputs.clone(),
        equations,
        program.outputs.clone(),
        program.avals.clone(),
    ))
}

/// One `call` of `{ first; second }`, over both equations' operands.
fn pair_equation(program: &Program, first: &Equation, second: &Equation) -> Equation {
    let inputs: Vec<Atom> = first.inputs.iter().chain(&second.inputs).cloned().collect();
    let mut avals: Vec<_> = inputs.iter().map(|a| program.aval_of(a)).collect();
    let mut renumber = |eq: &Equation, offset: usize| {
        let outputs: Vec<VarId> = eq
            .outputs
            .iter()
            .map(|v| {
                avals.push(program.avals[v.0 as usize].clone());
                VarId(avals.len() as u32 - 1)
            })
            .collect();
        Equation {
            primitive: eq.primitive.clone(),
            inputs: (0..eq.inputs.len())
                .map(|k| Atom::Var(VarId((offset + k) as u32)))
                .collect(),
            outputs,
        }
    };
    let a = renumber(first, 0);
    let b = renumber(second, first.inputs.len());
    let outputs: Vec<Atom> = a
        .outputs
        .iter()
        .chain(&b.outputs)
        .map(|v| Atom::Var(*v))
        .collect();
    let body = Program::new(
        (0..inputs.len()).map(|k| VarId(k as u32)).collect(),
        vec![a, b],
        outputs,
        avals,
    );
    Equation {
        primitive: Primitive::Call {
            program: ProgramRef(Arc::new(body)),
        },
        inputs,
        outputs: first
            .outputs
            .iter()
            .chain(&second.outputs)
            .copied()
            .collect(),
    }
}

/// The two fused products of a program [`pair`] built, with where the second one's
/// operands start.
pub(crate) fn pair_of(program: &Program) -> Option<(crate::fuse::Gemm, crate::fuse::Gemm, usize)> {
    let [a, b] = program.equations.as_slice() else {
        return None;
    };
    let gemm = |eq: &Equation| match &eq.primitive {
        Primitive::Call { program } => gemm_of(&program.0),
        _ => None,
    };
    let split = a.inputs.len();
    let consecutive = a
        .inputs
        .iter()
        .chain(&b.inputs)
        .enumerate()
        .all(|(k, atom)| matches!(atom, Atom::Var(v) if v.0 as usize == k));
    (consecutive && program.inputs.len() == split + b.inputs.len() && program.outputs.len() == 2)
        .then_some(())?;
    Some((gemm(a)?, gemm(b)?, split))
}
