//! The `Fast` engine: compiled plans over faer GEMMs, batched bodies and fused kernels.

use std::sync::Arc;

use nnx_core::engine::{eager_engine, set_eager_engine};
use nnx_core::program::{Batching, Primitive, Program, interpret};
use nnx_core::{Array, Engine, Error, Plan, Result};

use crate::batching;
use crate::kernels;
use crate::ops;
use crate::plan::Top;

/// The production engine. Each program is compiled once: `vmap` bodies become batched
/// programs (a vmapped `x @ W + b` is one GEMM over `(B·m, k) × (k, n)` with the bias added in
/// the same pass), products are fused with their transposed operands and bias/activation,
/// elementwise chains run as one loop, scans run their compiled body natively, and large
/// work is split over the cores ([`Fast::set_parallelism`]). Buffers are recycled across
/// calls ([`tensor::pool`](nnx_core::tensor::pool)). `Fast` also runs eager tensor
/// operations once it has compiled a program ([`Fast::use_for_eager`]). Results agree with
/// [`Reference`](https://docs.rs/nnx-reference) up to floating-point reassociation in
/// GEMMs; the conformance suite checks it.
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
            Primitive::Binary(op) => match args {
                [a, b] => {
                    let dtype = |x: &Array| (x.dtype(), x.is_weak());
                    let fast = kernels::Layout::of(a.shape(), dtype(a), b.shape(), dtype(b))
                        .and_then(|layout| kernels::f32_binary(*op, a, b, layout));
                    match fast {
                        Some(result) => Ok(vec![result?]),
                        None => Ok(vec![primitive.eval(args)?]),
                    }
                }
                _ => Ok(vec![primitive.eval(args)?]),
            },
            Primitive::Call { program }
            | Primitive::Remat { program, .. }
            | Primitive::CustomVjp { program, .. } => self.run(&program.0, args),
            Primitive::Vmap { program, batching } => self.run_batched(&program.0, args, batching),
            Primitive::Scan { program, spec } => self.run_scan(&program.0, args, spec),
            control @ (Primitive::Cond { .. } | Primitive::While { .. }) => {
                self.run_control(control, args)
            }
            Primitive::ShardMap { program, spec } => self.run_shard_map(&program.0, args, spec),
            other => match ops::eval(other, args) {
                Some(result) => Ok(vec![result?]),
                None => Ok(vec![other.eval(args)?]),
            },
        }
    }
}

impl Fast {
    /// Makes `Fast` the engine of eager tensor operations (outside any transform) for the
    /// whole process: an eager matmul, an optimizer update outside `jit`, a model's
    /// initialisation then run on these kernels. `Fast` does this itself the first time it
    /// compiles a program; call it first to cover eager work done before any transform.
    ///
    /// ```
    /// use nnx_fast::Fast;
    /// use nnx_fast::engine::eager_engine;
    /// Fast::use_for_eager();
    /// assert_eq!(eager_engine().map(|e| e.name().to_string()).as_deref(), Some("fast"));
    /// ```
    pub fn use_for_eager() {
        set_eager_engine(Some(Arc::new(Fast)));
    }
}

impl Engine for Fast {
    fn name(&self) -> &str {
        "fast"
    }

    fn eval_eager(&self, primitive: &Primitive, args: &[Array]) -> Result<Array> {
        let outputs = self.eval(primitive, args)?;
        let count = outputs.len();
        <[Array; 1]>::try_from(outputs)
            .map(|[output]| output)
            .map_err(|_| Error::Internal {
                what: format!("{} gave {count} results eagerly, not one", primitive.name()),
            })
    }

    /// Chooses a kernel for every equation once (elementwise layouts, small products as
    /// plain loops, nested calls compiled too).
    fn compile(&self, program: Arc<Program>) -> Result<Plan> {
        // The first program Fast compiles makes it the eager engine too (unless another
        // engine was chosen explicitly).
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            if eager_engine().is_none() {
                Fast::use_for_eager();
            }
        });
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
