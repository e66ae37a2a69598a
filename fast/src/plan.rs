//! `Fast`'s compiled plans: a kernel chosen once per equation from the program's abstract
//! values, so that a cached call runs straight through without re-deciding layouts.

use std::sync::Arc;

use nnx_core::program::{
    AbstractValue, Atom, Equation, Outputs, Primitive, Program, interpret_indexed,
};
use nnx_core::{Array, DType, Result};

use crate::Fast;
use crate::kernels::{self, Layout};

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
    /// A nested `call`, compiled too.
    Call(Arc<Program>, Box<Compiled>),
    /// Everything else: [`Fast::eval`] (GEMMs, batching rules, the reference kernels).
    Eval,
}

impl Compiled {
    /// Chooses a kernel for every equation of `program` (and of the programs it calls).
    pub(crate) fn new(program: &Program) -> Compiled {
        let kernels = program
            .equations
            .iter()
            .map(|eq| choose(program, eq))
            .collect();
        Compiled { kernels }
    }

    /// Runs `program` (the one this was compiled from) on `inputs`.
    pub(crate) fn run(
        &self,
        engine: &Fast,
        program: &Program,
        inputs: &[Array],
    ) -> Result<Vec<Array>> {
        interpret_indexed(program, inputs, |k, eq, args| {
            let kernel = self.kernels.get(k);
            // An operand read for the last time and held by no one else is computed in.
            if let (Some(Kernel::Binary(op, layout)), [a, b]) = (kernel, &mut *args)
                && let Some(result) = kernels::f32_binary_in_place(*op, a, b, *layout)
            {
                return Ok(Outputs::One(result));
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
                (Some(Kernel::Call(inner, compiled)), _) => {
                    compiled.run(engine, inner, args).map(Outputs::from)
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
        (Primitive::Call { program }, _) => {
            Kernel::Call(program.0.clone(), Box::new(Compiled::new(&program.0)))
        }
        _ => Kernel::Eval,
    }
}
