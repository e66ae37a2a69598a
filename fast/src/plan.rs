//! `Fast`'s compiled plans: a kernel chosen once per equation from the program's abstract
//! values, so that a cached call runs straight through without re-deciding layouts.

use std::sync::Arc;

use nnx_core::program::{
    AbstractValue, Atom, Equation, Outputs, Primitive, Program, interpret_owned,
};
use nnx_core::tensor::elementwise::CompareOp;
use nnx_core::{Array, DType, Result};

use crate::Fast;
use crate::batch::batched_program;
use crate::chain::{self, Chain, chain_of, fuse_chains};
use crate::fuse::{self, Gemm, drop_identity_reshapes, fuse, fuse_mask_epilogues, gemm_of};
use crate::helper;
use crate::kernels::{self, Layout};
use crate::ops;
use crate::pair::{pair, pair_of};
use crate::parallel;
use crate::scan::ScanPlan;

/// The compiled form of one program: one kernel per equation (by index).
#[derive(Debug)]
pub(crate) struct Compiled {
    kernels: Vec<Kernel>,
}

/// What runs one equation.
#[derive(Debug)]
enum Kernel {
    /// Float32 elementwise arithmetic in one contiguous pass.
    Binary(nnx_core::tensor::elementwise::BinaryOp, Layout),
    /// A small float32 product with a matrix on the right, as a plain loop.
    SmallMatmul,
    /// A fused GEMM chain (transposed operands, `relu(x @ W + b)`), as one kernel.
    Gemm(Gemm),
    /// A nested `call` (or a `vmap` rewritten as its batched program), compiled too.
    Call(Arc<Program>, Box<Compiled>),
    /// Two independent fused products, one per thread ([`pair`]); the second's operands
    /// start at the index.
    Pair(Gemm, Gemm, usize),
    /// A fused chain of float32 elementwise operations, as one blocked loop.
    Chain(Chain),
    /// `select(a op b, t, f)` in one pass ([`ops::masked_select`]).
    Mask(CompareOp),
    /// A scan: its body compiled, pass-throughs pruned.
    Scan(Box<ScanPlan>),
    /// Everything else: [`Fast::eval`] (GEMMs, batching rules, the reference kernels).
    Eval,
}

/// What `Fast::compile` keeps in a plan: the program to run and its compiled form. A
/// program that only calls another (a transform's single `call` equation, inputs and outputs
/// passed straight through) is compiled as the program it calls, one level less.
#[derive(Debug)]
pub(crate) struct Top {
    pub(crate) program: Arc<Program>,
    pub(crate) compiled: Compiled,
}

impl Top {
    pub(crate) fn new(program: Arc<Program>) -> Top {
        let program = unwrap_call(&program).unwrap_or(program);
        let (program, compiled) = Compiled::fused(&program);
        Top { program, compiled }
    }
}

/// The program `program` calls, when calling it is all `program` does.
fn unwrap_call(program: &Program) -> Option<Arc<Program>> {
    let [eq] = program.equations.as_slice() else {
        return None;
    };
    let Primitive::Call { program: inner } = &eq.primitive else {
        return None;
    };
    let inputs_through = eq.inputs.len() == program.inputs.len()
        && eq
            .inputs
            .iter()
            .zip(&program.inputs)
            .all(|(a, v)| matches!(a, Atom::Var(x) if x == v));
    let outputs_through = eq.outputs.len() == program.outputs.len()
        && eq
            .outputs
            .iter()
            .zip(&program.outputs)
            .all(|(v, a)| matches!(a, Atom::Var(x) if x == v));
    (inputs_through && outputs_through).then(|| inner.0.clone())
}

impl Compiled {
    /// `program` with its dense chains fused ([`fuse`]), and its compiled form.
    pub(crate) fn fused(program: &Arc<Program>) -> (Arc<Program>, Compiled) {
        let program = drop_identity_reshapes(program).map_or_else(|| program.clone(), Arc::new);
        let program = fuse(&program).map_or(program, Arc::new);
        let program = fuse_chains(&program).map_or(program, Arc::new);
        let program = ops::fuse_masks(&program).map_or(program, Arc::new);
        let program = fuse_mask_epilogues(&program).map_or(program, Arc::new);
        let program = pair(&program).map_or(program, Arc::new);
        let compiled = Compiled::new(&program);
        (program, compiled)
    }

    /// Chooses a kernel for every equation of `program` (and of the programs it calls).
    pub(crate) fn new(program: &Program) -> Compiled {
        let kernels = program
            .equations
            .iter()
            .map(|eq| choose(program, eq))
            .collect();
        Compiled { kernels }
    }

    /// Runs `program` (the one this was compiled from) on `inputs`, consuming them.
    pub(crate) fn run(
        &self,
        engine: &Fast,
        program: &Program,
        inputs: Vec<Array>,
    ) -> Result<Vec<Array>> {
        interpret_owned(program, inputs, |k, eq, args| {
            let kernel = self.kernels.get(k);
            // An operand read for the last time and held by no one else is computed in.
            if let (Some(Kernel::Binary(op, layout)), [a, b]) = (kernel, &mut *args)
                && kernels::f32_binary_in_place(*op, a, b, *layout)
            {
                return Ok(Outputs::Operand(0));
            }
            if let Some(Kernel::Gemm(gemm)) = kernel
                && let Some(result) = fuse::gemm(*gemm, args)
            {
                return Ok(Outputs::One(result?));
            }
            if let Some(Kernel::Pair(first, second, split)) = kernel
                && let Some(results) = run_pair(*first, *second, args.split_at(*split))
            {
                return Ok(Outputs::Many(results?));
            }
            if let Some(Kernel::Chain(chain)) = kernel
                && let Some(result) = chain::run(chain, args)
            {
                return Ok(Outputs::One(result?));
            }
            if let Some(Kernel::Mask(op)) = kernel
                && let Some(result) = ops::masked_select(*op, args)
            {
                return Ok(Outputs::One(result?));
            }
            if let Some(Kernel::Scan(scan)) = kernel {
                return scan.run(engine, args).map(Outputs::from);
            }
            // The operands move into the nested call.
            if let Some(Kernel::Call(inner, compiled)) = kernel {
                let owned = args.iter_mut().map(Array::take).collect();
                return compiled.run(engine, inner, owned).map(Outputs::from);
            }
            let args: &[Array] = args;
            let fallback = || engine.eval(&eq.primitive, args).map(Outputs::from);
            match (kernel, args) {
                (Some(Kernel::Binary(op, layout)), [a, b]) => {
                    kernels::f32_binary(*op, a, b, *layout)
                        .map_or_else(fallback, |r| Ok(Outputs::One(r?)))
                }
                (Some(Kernel::SmallMatmul), [a, b]) => {
                    kernels::small_matmul(a, b).map_or_else(fallback, |r| Ok(Outputs::One(r?)))
                }
                _ => fallback(),
            }
        })
    }
}

fn aval(program: &Program, atom: &Atom) -> (Vec<usize>, DType, bool) {
    let AbstractValue { shape, dtype, weak } = program.aval_of(atom);
    (shape, dtype, weak)
}

fn choose(program: &Program, eq: &Equation) -> Kernel {
    match (&eq.primitive, eq.inputs.as_slice()) {
        (Primitive::Binary(op), [a, b]) => {
            let (sa, da, wa) = aval(program, a);
            let (sb, db, wb) = aval(program, b);
            match Layout::of(&sa, (da, wa), &sb, (db, wb)) {
                Some(layout) => Kernel::Binary(*op, layout),
                None => Kernel::Eval,
            }
        }
        (Primitive::Matmul, [a, b]) => {
            let (sa, da, wa) = aval(program, a);
            let (sb, db, wb) = aval(program, b);
            if kernels::is_small_product(&sa, (da, wa), &sb, (db, wb)) {
                Kernel::SmallMatmul
            } else {
                Kernel::Eval
            }
        }
        (Primitive::Scan { .. }, _) => match ScanPlan::new(&eq.primitive) {
            Some(scan) => Kernel::Scan(Box::new(scan)),
            None => Kernel::Eval,
        },
        // A vmap whose body the batching rules cover runs as one compiled batched program.
        (Primitive::Vmap { program, batching }, _) => match batched_program(&program.0, batching) {
            Some(flat) => {
                let (inner, compiled) = Compiled::fused(&Arc::new(flat));
                Kernel::Call(inner, Box::new(compiled))
            }
            None => Kernel::Eval,
        },
        // A call is a fused form if it is one, else a program compiled in turn.
        (Primitive::Call { program }, _) => {
            let p = &program.0;
            if let Some(gemm) = gemm_of(p) {
                Kernel::Gemm(gemm)
            } else if let Some((first, second, split)) = pair_of(p) {
                Kernel::Pair(first, second, split)
            } else if let Some(chain) = chain_of(p) {
                Kernel::Chain(chain)
            } else if let Some(op) = ops::mask_of(p) {
                Kernel::Mask(op)
            } else {
                let (inner, compiled) = Compiled::fused(&program.0);
                Kernel::Call(inner, Box::new(compiled))
            }
        }
        // A checkpointed call, or one with a custom backward pass, runs as a call: the
        // backward pass is differentiation's business.
        (Primitive::Remat { program, .. } | Primitive::CustomVjp { program, .. }, _) => {
            let (inner, compiled) = Compiled::fused(&program.0);
            Kernel::Call(inner, Box::new(compiled))
        }
        _ => Kernel::Eval,
    }
}

/// Runs two fused products, the second on the helper thread when there are several cores;
/// `None` when either's operands are not of its form after all (the caller then interprets
/// the pair).
fn run_pair(first: Gemm, second: Gemm, args: (&[Array], &[Array])) -> Option<Result<Vec<Array>>> {
    let (a, b) = if parallel::threads() > 1 {
        helper::join(|| fuse::gemm(first, args.0), || fuse::gemm(second, args.1))
    } else {
        (fuse::gemm(first, args.0), fuse::gemm(second, args.1))
    };
    match (a?, b?) {
        (Ok(a), Ok(b)) => Some(Ok(vec![a, b])),
        (Err(e), _) | (_, Err(e)) => Some(Err(e)),
    }
}
