//! `nnx-reference`: the reference engine, the executable specification of the library.
//!
//! It interprets programs plainly: equations in order with the naive kernels of
//! `nnx-core`'s [`Array`]; `vmap` is the definition itself — run the program once per lane on
//! the sliced inputs and stack the results (`vmap(f)(x)[i] == f(x[i])`). Nothing is fused,
//! cached or parallelised, so it is slow and obviously right; the `fast` engine must agree
//! with it.
//!
//! ```
//! use nnx_core::{Tensor, Value, transforms::vmap};
//! use nnx_reference::Reference;
//! # fn main() -> nnx_core::Result<()> {
//! let x = Tensor::arange(6).reshape(&[3, 2])?;
//! let y = vmap(|args: &[Value]| {
//!     let row = args[0].as_tensor()?;
//!     Ok(Value::from(row.sum(0)?))
//! })
//! .call(&Reference, &[Value::from(x)])?;
//! assert_eq!(y.as_tensor()?.to_vec::<i32>()?, vec![1, 5, 9]);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use nnx_core::program::{ArrayLoops, Batching, Primitive, Program, interpret, lanes_loop};
use nnx_core::{Array, Engine, Result};

/// The reference engine: a plain interpreter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reference;

impl Engine for Reference {
    fn name(&self) -> &str {
        "reference"
    }

    fn run(&self, program: &Program, inputs: &[Array]) -> Result<Vec<Array>> {
        interpret(program, inputs, |primitive, args| match primitive {
            Primitive::Call { program }
            | Primitive::Remat { program, .. }
            | Primitive::CustomVjp { program, .. } => self.run(&program.0, args),
            Primitive::Scan { program, spec } => self.run_scan(&program.0, args, spec),
            Primitive::Vmap { program, batching } => self.run_batched(&program.0, args, batching),
            control @ (Primitive::Cond { .. } | Primitive::While { .. }) => {
                self.run_control(control, args)
            }
            Primitive::ShardMap { program, spec } => self.run_shard_map(&program.0, args, spec),
            primitive => Ok(vec![primitive.eval(args)?]),
        })
    }

    fn run_batched(
        &self,
        program: &Program,
        inputs: &[Array],
        batching: &Batching,
    ) -> Result<Vec<Array>> {
        let lane_outputs = program.output_avals();
        if batching.axis_size > 0 {
            batching.check_outputs(program)?;
        }
        lanes_loop(
            &mut ArrayLoops,
            batching,
            &lane_outputs,
            inputs,
            |_, lane| self.run(program, lane),
        )
    }
}
