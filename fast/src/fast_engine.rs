//! The `Fast` engine: the program interpreter with faer kernels and batching rules.

use std::sync::Arc;

use nnx_core::program::{Batching, Primitive, Program, interpret};
use nnx_core::{Array, Engine, Error, Plan, Result};

use crate::batching;
use crate::kernels;
use crate::ops;
use crate::plan::Top;

/// The production engine. Programs are interpreted with faer GEMMs for matrix products, and
/// `vmap` runs each equation once over the whole batch wherever a batching rule exists (a
/// vmapped `x @ W + b` is one GEMM over `(B·m, k) × (k, n)` and one broadcast add), falling
/// back to a per-lane loop for the rest. Results agree with
/// [`Reference`](https://docs.rs/nnx-reference) up to floating-point reassociation; the
/// conformance suite checks it.
///
/// ```
/// use nnx_fast::prelude::*;
/// use nnx_fast::Fast;
/// # fn main() -> Result<()> {
/// let w = Object::new("Linear").with("kernel", Param::new(Tensor::ones(&[3, 2])))?;
/// let y = vmap(|args: &[Value]| Ok(Value::from(args[1].as_tensor()?.matmul(&args[0].object()?.value("kernel")?)?)))
///     .in_axes((None::<i32>, 0))
///     .call(&Fast, (&w, &Tensor::ones(&[4, 3])))?;
/// assert_eq!(y.as_tensor()?.to_vec::<f32>()?, vec![3.0; 8]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Fast;

impl Fast {
    /// Evaluates one equation on concrete (unbatched) operands.
    pub(crate) fn eval(&self, primitive: &Primitive, args: &[Array]) -> Result<Vec<Array>> {
        match primitive {
            Primitive::Matmul => match args {
                [a, b] => Ok(vec![match kernels::small_matmul_if_small(a, b) {
                    Some(result) => result?,
                    None => kernels::matmul(a, b)?,
                }]),
                _ => Err(Error::MalformedProgram {
                    reason: format!("matmul takes two operands, got {}", args.len()),
                }),
            },
            Primitive::Call { program } => self.run(&program.0, args),
            Primitive::Vmap { program, batching } => self.run_batched(&program.0, args, batching),
            Primitive::Scan { program, spec } => self.run_scan(&program.0, args, spec),
            other => match ops::eval(other, args) {
                Some(result) => Ok(vec![result?]),
                None => Ok(vec![other.eval(args)?]),
            },
        }
    }
}

impl Engine for Fast {
    fn name(&self) -> &str {
        "fast"
    }

    /// Chooses a kernel for every equation once (elementwise layouts, small products as
    /// plain loops, nested calls compiled too).
    fn compile(&self, program: Arc<Program>) -> Result<Plan> {
        program.schedule()?;
        let top = Top::new(program.clone());
        top.program.schedule()?;
        Ok(Plan::compiled(program, top))
    }

    fn execute(&self, plan: &Plan, inputs: Vec<Array>) -> Result<Vec<Array>> {
        match plan.compiled_as::<Top>() {
            Some(top) => top.compiled.run(self, &top.program, inputs),
            None => self.run(plan.program(), &inputs),
        }
    }

    fn run(&self, program: &Program, inputs: &[Array]) -> Result<Vec<Array>> {
        interpret(program, inputs, |primitive, args| {
            self.eval(primitive, args)
        })
    }

    fn run_batched(
        &self,
        program: &Program,
        inputs: &[Array],
        batching: &Batching,
    ) -> Result<Vec<Array>> {
        batching::run_batched(self, program, inputs, batching)
    }
}
