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

use nnx_core::program::{Batching, Primitive, Program, interpret};
use nnx_core::{Array, Engine, Error, Result};

/// The reference engine: a plain interpreter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reference;

impl Engine for Reference {
    fn name(&self) -> &str {
        "reference"
    }

    fn run(&self, program: &Program, inputs: &[Array]) -> Result<Vec<Array>> {
        interpret(program, inputs, |primitive, args| match primitive {
            Primitive::Call { program } => self.run(&program.0, args),
            Primitive::Scan { program, spec } => self.run_scan(&program.0, args, spec),
            Primitive::Vmap { program, batching } => self.run_batched(&program.0, args, batching),
            primitive => Ok(vec![primitive.eval(args)?]),
        })
    }

    fn run_batched(
        &self,
        program: &Program,
        inputs: &[Array],
        batching: &Batching,
    ) -> Result<Vec<Array>> {
        for (input, axis) in inputs.iter().zip(&batching.in_axes) {
            if let Some(axis) = axis
                && input.shape().get(*axis) != Some(&batching.axis_size)
            {
                return Err(Error::shape(
                    "vmap",
                    format!(
                        "input of shape {:?} cannot be mapped along axis {axis} with {} lanes",
                        input.shape(),
                        batching.axis_size
                    ),
                ));
            }
        }
        if batching.axis_size == 0 {
            return batching.zero_lane_outputs(program, inputs, |lane| self.run(program, lane));
        }
        batching.check_outputs(program)?;
        let mut lanes: Vec<Vec<Array>> = vec![Vec::new(); program.outputs.len()];
        for lane in 0..batching.axis_size {
            let lane_inputs = inputs
                .iter()
                .zip(&batching.in_axes)
                .map(|(input, axis)| match axis {
                    Some(axis) => input.index_axis(*axis as isize, lane as isize),
                    None => Ok(input.clone()),
                })
                .collect::<Result<Vec<_>>>()?;
            for (j, out) in self.run(program, &lane_inputs)?.into_iter().enumerate() {
                lanes[j].push(out);
            }
        }
        lanes
            .into_iter()
            .zip(&batching.out_axes)
            .map(|(values, axis)| match axis {
                Some(axis) => Array::stack(&values, *axis as isize),
                None => values
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::InvalidValue("no lanes".into())),
            })
            .collect()
    }
}
