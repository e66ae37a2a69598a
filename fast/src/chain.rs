//! Elementwise fusion: a chain of float32 elementwise operations (`w - lr * g`, a loss's
//! `(y - t) * (y - t)`) as one loop over the output.
//!
//! Each float32 binary (same-shape, row or scalar right operand) or unary operation whose
//! result has a single use by another such operation of the same shape is absorbed into its
//! user. The root becomes one `call` of the absorbed equations, which the plan runs
//! block by block: every operation of the chain over a block of [`BLOCK`] elements held in
//! cache, then the next block. The float operations and their order per element are the
//! separate equations' — the results are identical — but the intermediates never reach
//! memory and the loop runs once.

use std::sync::Arc;

use nnx_core::program::{AbstractValue, Atom, Equation, Primitive, Program, ProgramRef, VarId};
use nnx_core::tensor::elementwise::{BinaryOp, UnaryOp};
use nnx_core::tensor::pool;
use nnx_core::{Array, DType, Result};

use crate::fuse::Dataflow;
use crate::kernels::{self, Layout};
use crate::parallel;

/// Elements per block: the chain's intermediates of one block stay in L1.
const BLOCK: usize = 512;

/// One step of a fused chain, over registers: inputs first, then one per step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Binary(BinaryOp, usize, usize),
    Unary(UnaryOp, usize),
}

/// A fused chain: how each input is read, and the steps (the last one is the result).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chain {
    /// Per input: same shape as the output, a row repeated, or a scalar.
    inputs: Vec<Layout>,
    steps: Vec<Step>,
}

/// Whether `eq` is an elementwise float32 operation with a kernel form, and its operands'
/// layouts against its output.
fn elementwise(program: &Program, eq: &Equation) -> Option<Vec<Layout>> {
    let [out] = eq.outputs.as_slice() else {
        return None;
    };
    let aval = &program.avals[out.0 as usize];
    if aval.dtype != DType::F32 || aval.weak {
        return None;
    }
    let layout = |atom: &Atom| {
        let a = program.aval_of(atom);
        if a.shape == aval.shape && a.dtype == DType::F32 && !a.weak {
            return Some(Layout::Same);
        }
        Layout::of(
            &aval.shape,
            (DType::F32, false),
            &a.shape,
            (a.dtype, a.weak),
        )
        .filter(|l| *l != Layout::Same)
    };
    match (&eq.primitive, eq.inputs.as_slice()) {
        (Primitive::Binary(op), [a, b]) if *op != BinaryOp::Pow => {
            // The left operand has the output's shape, as the kernels need.
            (layout(a)? == Layout::Same).then_some(())?;
            Some(vec![Layout::Same, layout(b)?])
        }
        (Primitive::Unary(_), [a]) => (layout(a)? == Layout::Same).then(|| vec![Layout::Same]),
        _ => None,
    }
}

/// `program` with its elementwise chains fused, or `None` when it has none.
pub(crate) fn fuse_chains(program: &Program) -> Option<Program> {
    let Dataflow { uses, defined_by } = Dataflow::of(program);
    let forms: Vec<Option<Vec<Layout>>> = program
        .equations
        .iter()
        .map(|eq| elementwise(program, eq))
        .collect();
    // Equations absorbed into a later one's chain, and each root's members.
    let mut absorbed = vec![false; program.equations.len()];
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); program.equations.len()];
    for (k, eq) in program.equations.iter().enumerate() {
        let Some(layouts) = &forms[k] else { continue };
        let out_shape = &program.avals[eq.outputs[0].0 as usize].shape;
        let mut chain = Vec::new();
        for (atom, layout) in eq.inputs.iter().zip(layouts) {
            if let (Atom::Var(v), Layout::Same) = (atom, layout)
                && uses[v.0 as usize] == 1
                && let Some(j) = defined_by[v.0 as usize]
                && forms[j].is_some()
                && !absorbed[j]
                && &program.avals[v.0 as usize].shape == out_shape
            {
                absorbed[j] = true;
                chain.append(&mut members[j]);
                chain.push(j);
            }
        }
        if !chain.is_empty() {
            chain.push(k);
            members[k] = chain;
        }
    }
    if members.iter().all(Vec::is_empty) {
        return None;
    }
    let mut equations = Vec::with_capacity(program.equations.len());
    for (k, eq) in program.equations.iter().enumerate() {
        if absorbed[k] {
            continue;
        }
        if members[k].is_empty() {
            equations.push(eq.clone());
        } else {
            equations.push(chain_equation(program, &members[k]));
        }
    }
    Some(Program::new(
        program.inputs.clone(),
        equations,
        program.outputs.clone(),
        program.avals.clone(),
    ))
}

/// One `call` of the chain's equations (in program order), over the values they read from
/// outside the chain (literals included, so the called program reads only its inputs).
fn chain_equation(program: &Program, members: &[usize]) -> Equation {
    let mut sorted = members.to_vec();
    sorted.sort_unstable();
    let step_of = |v: VarId| {
        sorted
            .iter()
            .position(|&k| program.equations[k].outputs.first() == Some(&v))
    };
    /// Where an operand of a step comes from.
    enum Source {
        Input(usize),
        Step(usize),
    }
    let mut inputs: Vec<Atom> = Vec::new();
    let mut steps: Vec<(Primitive, Vec<Source>)> = Vec::with_capacity(sorted.len());
    for &k in &sorted {
        let eq = &program.equations[k];
        let mut args = Vec::with_capacity(eq.inputs.len());
        for atom in &eq.inputs {
            args.push(match atom {
                Atom::Var(v) => match step_of(*v) {
                    Some(j) => Source::Step(j),
                    None => match inputs
                        .iter()
                        .position(|a| matches!(a, Atom::Var(x) if x == v))
                    {
                        Some(i) => Source::Input(i),
                        None => {
                            inputs.push(atom.clone());
                            Source::Input(inputs.len() - 1)
                        }
                    },
                },
                Atom::Literal(_) => {
                    inputs.push(atom.clone());
                    Source::Input(inputs.len() - 1)
                }
            });
        }
        steps.push((eq.primitive.clone(), args));
    }
    // Inputs are variables `0..n`, step `j`'s result is `n + j`.
    let n = inputs.len();
    let var = |source: &Source| match source {
        Source::Input(i) => Atom::Var(VarId(*i as u32)),
        Source::Step(j) => Atom::Var(VarId((n + j) as u32)),
    };
    let mut avals: Vec<AbstractValue> = inputs.iter().map(|a| program.aval_of(a)).collect();
    avals.extend(
        sorted
            .iter()
            .map(|&k| program.avals[program.equations[k].outputs[0].0 as usize].clone()),
    );
    let equations: Vec<Equation> = steps
        .iter()
        .enumerate()
        .map(|(j, (primitive, args))| Equation {
            primitive: primitive.clone(),
            inputs: args.iter().map(var).collect(),
            outputs: vec![VarId((n + j) as u32)],
        })
        .collect();
    let result = VarId((n + steps.len()).saturating_sub(1) as u32);
    let root = program.equations[*sorted.last().unwrap_or(&0)].outputs[0];
    let body = Program::new(
        (0..n).map(|i| VarId(i as u32)).collect(),
        equations,
        vec![Atom::Var(result)],
        avals,
    );
    Equation {
        primitive: Primitive::Call {
            program: ProgramRef(Arc::new(body)),
        },
        inputs,
        outputs: vec![root],
    }
}

/// The chain a called program holds, if it is one [`fuse_chains`] built.
pub(crate) fn chain_of(program: &Program) -> Option<Chain> {
    if program.equations.len() < 2 || program.outputs.len() != 1 {
        return None;
    }
    let n_in = program.inputs.len();
    let out_aval = program.aval_of(&program.outputs[0]);
    let mut inputs = Vec::with_capacity(n_in);
    for v in &program.inputs {
        let a = &program.avals[v.0 as usize];
        inputs.push(
            if a.shape == out_aval.shape && a.dtype == DType::F32 && !a.weak {
                Layout::Same
            } else {
                Layout::of(
                    &out_aval.shape,
                    (DType::F32, false),
                    &a.shape,
                    (a.dtype, a.weak),
                )?
            },
        );
    }
    let register = |atom: &Atom| match atom {
        Atom::Var(v) => Some(v.0 as usize),
        Atom::Literal(_) => None,
    };
    let mut steps = Vec::with_capacity(program.equations.len());
    for (i, eq) in program.equations.iter().enumerate() {
        // Every step's output is register `n_in + i`.
        (eq.outputs.as_slice() == [VarId((n_in + i) as u32)]).then_some(())?;
        steps.push(match (&eq.primitive, eq.inputs.as_slice()) {
            (Primitive::Binary(op), [a, b]) => Step::Binary(*op, register(a)?, register(b)?),
            (Primitive::Unary(op), [a]) => Step::Unary(*op, register(a)?),
            _ => return None,
        });
        // Operands are inputs or earlier steps.
        let ok = |r: usize| r < n_in + i;
        match steps.last() {
            Some(Step::Binary(_, a, b)) if ok(*a) && ok(*b) => {}
            Some(Step::Unary(_, a)) if ok(*a) => {}
            _ => return None,
        }
    }
    (register(&program.outputs[0])? == n_in + steps.len() - 1).then_some(Chain { inputs, steps })
}

/// Runs a fused chain on its operands, block by block. `None` when they are not of the
/// chain's form after all.
pub(crate) fn run(chain: &Chain, args: &[Array]) -> Option<Result<Array>> {
    let len = args
        .iter()
        .zip(&chain.inputs)
        .find(|(_, l)| **l == Layout::Same)
        .map(|(a, _)| a.shape().iter().product::<usize>())?;
    let shape = args
        .iter()
        .zip(&chain.inputs)
        .find(|(_, l)| **l == Layout::Same)?
        .0
        .shape()
        .to_vec();
    // The inputs as slices, scalars as one float32 value.
    let mut data: Vec<std::borrow::Cow<'_, [f32]>> = Vec::with_capacity(args.len());
    for (a, layout) in args.iter().zip(&chain.inputs) {
        data.push(match layout {
            Layout::Same | Layout::Row => std::borrow::Cow::Borrowed(kernels::rows_of(a)?),
            Layout::Scalar => std::borrow::Cow::Owned(vec![match a.dtype() {
                DType::F32 => *a.as_slice::<f32>().ok()?.first()?,
                DType::I32 => *a.as_slice::<i32>().ok()?.first()? as f32,
                DType::U32 => *a.as_slice::<u32>().ok()?.first()? as f32,
                _ => return None,
            }]),
        });
        // A broadcast view gives the block it repeats, which is then staged as a row.
        let r = data.last()?.len();
        (*layout == Layout::Scalar || len.is_multiple_of(r)).then_some(())?;
    }
    let n_in = args.len();
    let mut out = pool::take(len);
    // One run of blocks per thread (large outputs only; see `parallel::for_each_chunk`).
    let per_thread = len.div_ceil(parallel::threads()).div_ceil(BLOCK) * BLOCK;
    let last = chain.steps.len() - 1;
    parallel::for_each_chunk(&mut out, per_thread.max(BLOCK), |piece, out| {
        let offset = piece * per_thread.max(BLOCK);
        let mut regs = vec![[0.0f32; BLOCK]; last];
        // Inputs of the output's shape are read in place; scalars and repeated rows are
        // staged block by block in the block's layout.
        let mut staged = vec![[0.0f32; BLOCK]; n_in];
        for (i, d) in data.iter().enumerate() {
            if let [x] = d[..] {
                staged[i].fill(x);
            }
        }
        for local in (0..out.len()).step_by(BLOCK) {
            let (start, m) = (offset + local, BLOCK.min(out.len() - local));
            for (i, d) in data.iter().enumerate() {
                if d.len() != len && d.len() != 1 {
                    for (j, x) in staged[i][..m].iter_mut().enumerate() {
                        *x = d[(start + j) % d.len()];
                    }
                }
            }
            // The last step writes the output block itself.
            let block = &mut out[local..local + m];
            for (s, step) in chain.steps.iter().enumerate() {
                let (done, rest) = regs.split_at_mut(s.min(last));
                let dst = match rest.first_mut() {
                    Some(reg) if s < last => &mut reg[..m],
                    _ => &mut *block,
                };
                let read = |r: usize| -> &[f32] {
                    match data.get(r) {
                        Some(d) if d.len() == len => &d[start..start + m],
                        Some(_) => &staged[r][..m],
                        None => &done[r - n_in][..m],
                    }
                };
                match *step {
                    Step::Binary(op, a, b) => kernels::zip_op(op, dst, Some(read(a)), read(b)),
                    Step::Unary(op, a) => {
                        dst.iter_mut()
                            .zip(read(a))
                            .for_each(|(o, &x)| *o = op.f32(x));
                    }
                }
            }
        }
    });
    Some(Array::from_vec(&shape, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fast;
    use crate::test_util::{arr, aval};
    use nnx_core::Engine;
    use nnx_core::program::trace_fn;

    #[test]
    fn elementwise_chains_fuse_and_agree_bit_for_bit() {
        // An SGD update; an error with a row offset, then its square (the error is read
        // twice, so it ends a chain of its own); a shared value (read twice: not fused).
        let traced = trace_fn(&[aval(&[700, 3]), aval(&[700, 3]), aval(&[3])], |xs| {
            let (w, g, b) = (&xs[0], &xs[1], &xs[2]);
            let update = w.sub(&(g * 0.01f32)?)?;
            let err = w.sub(g)?.add(b)?;
            let sq = (&err * &err)?.tanh()?;
            let shared = (g * 2.0f32)?;
            let twice = (&shared + &shared)?;
            Ok((vec![update, sq, twice], ()))
        })
        .unwrap();
        let fused = fuse_chains(&traced.program).expect("chains to fuse");
        let chains = fused
            .equations
            .iter()
            .filter(|eq| matches!(&eq.primitive, Primitive::Call { program } if chain_of(&program.0).is_some()))
            .count();
        assert_eq!(chains, 3, "{fused}");
        let inputs = vec![arr(&[700, 3], 0.0), arr(&[700, 3], 1.0), arr(&[3], 2.0)];
        let expected = nnx_reference::Reference
            .run(&traced.program, &inputs)
            .unwrap();
        let plan = Fast.compile(Arc::new(traced.program)).unwrap();
        let got = Fast.execute(&plan, inputs).unwrap();
        for (g, e) in got.iter().zip(&expected) {
            assert!(g.identical(e), "{g:?} vs {e:?}");
        }
    }
}
