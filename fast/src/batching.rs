//! Batching rules: run a program once over a whole batch instead of once per lane.
//!
//! Every value is either unbatched (the same for all lanes) or batched with the batch axis
//! moved to the front. Each primitive with a rule runs once on the batched operands with its
//! parameters shifted past the batch axis; a primitive without one (random draws, higher-order
//! equations, unusual matmul layouts) falls back to a loop over lanes for that equation only.
//! As in JAX, an equation whose operands are all unbatched runs unbatched (so broadcast
//! weights stay a single matrix).

use nnx_core::program::{
    AbstractValue, ArrayLoops, Atom, Batching, Equation, LoopValues, Outputs, Primitive, Program,
    interpret_with, lanes_loop,
};
use nnx_core::tensor::check_allocation;
use nnx_core::{Array, Engine, Error, Result};

use crate::fast_engine::Fast;
use crate::kernels;

/// A value inside a batched interpretation.
#[derive(Clone)]
enum Value {
    /// The same for every lane.
    Unbatched(Array),
    /// One slice per lane along axis 0.
    Batched(Array),
}

impl Value {
    fn array(&self) -> &Array {
        match self {
            Value::Unbatched(a) | Value::Batched(a) => a,
        }
    }

    fn is_batched(&self) -> bool {
        matches!(self, Value::Batched(_))
    }

    /// The rank of one lane.
    fn inner_rank(&self) -> usize {
        match self {
            Value::Unbatched(a) => a.ndim(),
            Value::Batched(a) => a.ndim() - 1,
        }
    }

    /// The batched form: batched values as they are, unbatched ones repeated `size` times.
    fn batched(&self, size: usize) -> Result<Array> {
        match self {
            Value::Batched(a) => Ok(a.clone()),
            Value::Unbatched(a) => {
                let mut shape = vec![size];
                shape.extend_from_slice(a.shape());
                a.expand_dims(0)?.broadcast_to(&shape)
            }
        }
    }

    /// Lane `i`.
    fn lane(&self, i: usize) -> Result<Array> {
        match self {
            Value::Unbatched(a) => Ok(a.clone()),
            Value::Batched(a) => a.index_axis(0, i as isize),
        }
    }
}

/// The per-lane fallback's view of batched values: a lane is an unbatched value, lanes
/// stack along the batch axis.
struct Lanes;

impl LoopValues for Lanes {
    type Value = Value;

    fn index(&mut self, value: &Value, _axis: usize, i: usize) -> Result<Value> {
        value.lane(i).map(Value::Unbatched)
    }

    fn stack(&mut self, values: Vec<Value>, axis: usize) -> Result<Value> {
        let arrays: Vec<Array> = values.iter().map(|v| v.array().clone()).collect();
        Array::stack(&arrays, axis as isize).map(Value::Batched)
    }

    fn zeros(&mut self, aval: &AbstractValue) -> Result<Value> {
        Array::zeros_of(&aval.shape, aval.dtype).map(Value::Unbatched)
    }

    fn aval(&self, value: &Value) -> AbstractValue {
        value.array().aval()
    }
}

pub(crate) fn run_batched(
    engine: &Fast,
    program: &Program,
    inputs: &[Array],
    batching: &Batching,
) -> Result<Vec<Array>> {
    let size = batching.axis_size;
    if size == 0 {
        // Zero lanes: exactly what the reference engine does (the one per-lane loop).
        let lane_outputs = program.output_avals();
        return lanes_loop(
            &mut ArrayLoops,
            batching,
            &lane_outputs,
            inputs,
            |_, lane| engine.run(program, lane),
        );
    }
    if batching.in_axes.len() != inputs.len() {
        return Err(Error::MalformedProgram {
            reason: format!(
                "vmap got {} inputs for {} in_axes",
                inputs.len(),
                batching.in_axes.len()
            ),
        });
    }
    let mut values = Vec::with_capacity(inputs.len());
    for (input, axis) in inputs.iter().zip(&batching.in_axes) {
        values.push(match axis {
            Some(axis) => {
                batching.check_input(input.shape(), Some(*axis))?;
                Value::Batched(input.moveaxis(*axis as isize, 0)?)
            }
            None => Value::Unbatched(input.clone()),
        });
    }
    batching.check_outputs(program)?;
    let outputs = interpret_with(
        program,
        values,
        |a| Value::Unbatched(a.clone()),
        |_, eq, args| {
            let batched = args.iter().any(Value::is_batched);
            for var in &eq.outputs {
                // A batched result holds `size` lanes of the per-lane value.
                let aval = program.aval_of(&Atom::Var(*var));
                let lanes = if batched { Some(size) } else { None };
                let shape: Vec<usize> = lanes.into_iter().chain(aval.shape).collect();
                check_allocation(&shape, aval.dtype)?;
            }
            Ok(Outputs::Many(if batched {
                match rule(&eq.primitive, args, size)? {
                    Some(out) => vec![Value::Batched(out)],
                    None => per_lane(engine, program, eq, args, size)?,
                }
            } else {
                let arrays: Vec<Array> = args.iter().map(|v| v.array().clone()).collect();
                engine
                    .eval(&eq.primitive, &arrays)?
                    .into_iter()
                    .map(Value::Unbatched)
                    .collect()
            }))
        },
    )?;
    outputs
        .iter()
        .zip(&batching.out_axes)
        .map(|(value, axis)| match axis {
            Some(axis) => value.batched(size)?.moveaxis(0, *axis as isize),
            None => value.lane(0).or_else(|_| Ok(value.array().clone())),
        })
        .collect()
}

/// Equations run lane by lane since the process started ([`Fast::per_lane_runs`]).
static PER_LANE_RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Fast {
    /// How many equations `Fast` has run lane by lane — `vmap`'s fallback for an equation
    /// without a batching rule — since the process started: a diagnostic for finding the
    /// programs that do not run as one batched pass (the suite asserts that none of the
    /// conformance and benchmark workloads do).
    pub fn per_lane_runs() -> u64 {
        PER_LANE_RUNS.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The equation for every lane separately, restacked (the one per-lane loop).
fn per_lane(
    engine: &Fast,
    program: &Program,
    eq: &Equation,
    args: &[Value],
    size: usize,
) -> Result<Vec<Value>> {
    let lane_outputs: Vec<AbstractValue> = eq
        .outputs
        .iter()
        .map(|v| program.aval_of(&Atom::Var(*v)))
        .collect();
    PER_LANE_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let batching = Batching {
        in_axes: args.iter().map(|v| v.is_batched().then_some(0)).collect(),
        out_axes: vec![Some(0); eq.outputs.len()],
        axis_size: size,
    };
    lanes_loop(&mut Lanes, &batching, &lane_outputs, args, |_, lane| {
        let arrays: Vec<Array> = lane.iter().map(|v| v.array().clone()).collect();
        Ok(engine
            .eval(&eq.primitive, &arrays)?
            .into_iter()
            .map(Value::Unbatched)
            .collect())
    })
}

/// Reshapes a batched value so that its lane has rank `rank` (size-1 axes after the batch
/// axis), aligning it for numpy broadcasting against unbatched operands.
fn align(value: &Value, rank: usize) -> Result<Array> {
    match value {
        Value::Unbatched(a) => Ok(a.clone()),
        Value::Batched(a) => {
            let inner = a.ndim() - 1;
            if inner >= rank {
                return Ok(a.clone());
            }
            let mut shape: Vec<isize> = vec![a.shape()[0] as isize];
            shape.extend(std::iter::repeat_n(1, rank - inner));
            shape.extend(a.shape()[1..].iter().map(|&d| d as isize));
            a.reshape(&shape)
        }
    }
}

fn shift(axes: &[usize]) -> Vec<isize> {
    axes.iter().map(|&a| a as isize + 1).collect()
}

/// The batched result of one equation with a batching rule, or `None` to fall back.
fn rule(primitive: &Primitive, args: &[Value], size: usize) -> Result<Option<Array>> {
    let first = || args[0].batched(size);
    Ok(Some(match primitive {
        Primitive::Binary(_) | Primitive::Compare(_) | Primitive::Select => {
            let rank = args.iter().map(Value::inner_rank).max().unwrap_or(0);
            let aligned = args
                .iter()
                .map(|v| align(v, rank))
                .collect::<Result<Vec<_>>>()?;
            primitive.eval(&aligned)?
        }
        Primitive::Unary(_) | Primitive::Astype { .. } | Primitive::StopGradient => {
            primitive.eval(&[first()?])?
        }
        Primitive::Matmul => match matmul_rule(&args[0], &args[1])? {
            Some(out) => out,
            None => return Ok(None),
        },
        Primitive::Reduce { op, axes, keepdims } => first()?.reduce(*op, shift(axes), *keepdims)?,
        Primitive::Reshape { shape } => {
            let mut dims = vec![size as isize];
            dims.extend(shape.iter().map(|&d| d as isize));
            first()?.reshape(&dims)?
        }
        Primitive::Transpose { perm } => {
            let mut full = vec![0isize];
            full.extend(shift(perm));
            first()?.permute_axes(&full)?
        }
        Primitive::BroadcastTo { shape } => {
            let aligned = align(&args[0], shape.len())?;
            let mut full = vec![size];
            full.extend_from_slice(shape);
            aligned.broadcast_to(&full)?
        }
        Primitive::ExpandDims { axis } => first()?.expand_dims(*axis as isize + 1)?,
        Primitive::Squeeze { axes } => first()?.squeeze(shift(axes))?,
        Primitive::IndexAxis { axis, index } => {
            first()?.index_axis(*axis as isize + 1, *index as isize)?
        }
        Primitive::SliceAxis { axis, start, end } => {
            first()?.slice_axis(*axis as isize + 1, *start..*end)?
        }
        Primitive::Pad {
            axis,
            before,
            after,
        } => first()?.pad_axis(*axis as isize + 1, *before, *after)?,
        Primitive::Cumsum { axis, reverse } => first()?.cumsum(*axis as isize + 1, *reverse)?,
        Primitive::ArgReduce { op, axis } => first()?.arg_reduce(*op, *axis as isize + 1)?,
        // Windows and matrices sit on the trailing axes: the batch axis is one more leading
        // axis.
        Primitive::Patches { .. } | Primitive::PatchesTranspose { .. } | Primitive::QrQ => {
            primitive.eval(&[first()?])?
        }
        Primitive::TriangularSolve(_) => primitive.eval(&[first()?, args[1].batched(size)?])?,
        Primitive::Take { axis, fill } => match (&args[0], &args[1]) {
            (Value::Batched(table), Value::Unbatched(indices)) => {
                table.take_at(indices, *axis as isize + 1, *fill)?
            }
            (Value::Unbatched(table), Value::Batched(indices)) => table
                .take_at(indices, *axis as isize, *fill)?
                .moveaxis(*axis as isize, 0)?,
            _ => return Ok(None),
        },
        Primitive::DynamicSlice { axis, size } => match &args[1] {
            Value::Unbatched(start) => {
                first()?.dynamic_slice_in_dim(start, *size, *axis as isize + 1)?
            }
            Value::Batched(_) => return Ok(None),
        },
        Primitive::DynamicUpdateSlice { axis } => match &args[2] {
            Value::Unbatched(start) => first()?.dynamic_update_slice_in_dim(
                &args[1].batched(size)?,
                start,
                *axis as isize + 1,
            )?,
            Value::Batched(_) => return Ok(None),
        },
        Primitive::TakeTranspose { axis, size } => match &args[1] {
            Value::Unbatched(indices) => first()?.take_transpose(indices, axis + 1, *size)?,
            Value::Batched(_) => return Ok(None),
        },
        Primitive::Concatenate { axis } | Primitive::Stack { axis } => {
            let all = args
                .iter()
                .map(|v| v.batched(size))
                .collect::<Result<Vec<_>>>()?;
            if matches!(primitive, Primitive::Stack { .. }) {
                Array::stack(&all, *axis as isize + 1)?
            } else {
                Array::concatenate(&all, *axis as isize + 1)?
            }
        }
        Primitive::SeedKeys => primitive.eval(&[first()?])?,
        Primitive::FoldInEach => match (&args[0], &args[1]) {
            (keys, Value::Unbatched(data)) if data.ndim() == 0 => {
                primitive.eval(&[keys.batched(size)?, data.clone()])?
            }
            (keys, data) if keys.inner_rank() == data.inner_rank() => {
                primitive.eval(&[keys.batched(size)?, data.batched(size)?])?
            }
            _ => return Ok(None),
        },
        // One draw per key of the batch, written in order: what every lane would draw.
        Primitive::Random(op) => match &args[0] {
            Value::Batched(keys) if keys.ndim() == 1 => {
                let draws = keys
                    .keys()?
                    .iter()
                    .map(|&k| op.eval(&Array::from_keys(&[], vec![k])?))
                    .collect::<Result<Vec<_>>>()?;
                Array::stack(&draws, 0)?
            }
            _ => return Ok(None),
        },
        Primitive::Collective(op) => Primitive::Collective(op.batched()).eval(&[first()?])?,
        Primitive::Call { .. }
        | Primitive::Remat { .. }
        | Primitive::CustomVjp { .. }
        | Primitive::Vmap { .. }
        | Primitive::Scan { .. }
        | Primitive::Cond { .. }
        | Primitive::While { .. }
        | Primitive::ShardMap { .. } => {
            return Ok(None);
        }
    }))
}

/// Matrix products of batched operands whose numpy broadcasting already means "per lane".
fn matmul_rule(a: &Value, b: &Value) -> Result<Option<Array>> {
    let (ra, rb) = (a.inner_rank(), b.inner_rank());
    Ok(match (a, b) {
        // x @ W for every lane: one GEMM over (B·…·m, k) × (k, n).
        (Value::Batched(x), Value::Unbatched(w)) if rb == 2 && ra >= 1 => {
            Some(kernels::matmul(x, w)?)
        }
        // W @ X for every lane: numpy broadcasts W over the batch.
        (Value::Unbatched(w), Value::Batched(x)) if rb >= 2 && ra <= 2 && ra <= rb => {
            Some(kernels::matmul(w, x)?)
        }
        // Both batched, same rank of matrices: a batched GEMM.
        (Value::Batched(x), Value::Batched(y)) if ra == rb && ra >= 2 => {
            Some(kernels::matmul(x, y)?)
        }
        // A vector times a matrix in every lane (the guide's `x @ kernel`): a batched GEMM
        // of (B, 1, k) × (B, k, n), the unit axis dropped again.
        (Value::Batched(x), Value::Batched(y)) if ra == 1 && rb == 2 => {
            let out = kernels::matmul(&x.expand_dims(1)?, y)?;
            let shape = [out.shape()[0] as isize, out.shape()[2] as isize];
            Some(out.reshape(&shape)?)
        }
        // A matrix times a vector in every lane: (B, m, k) × (B, k, 1).
        (Value::Batched(x), Value::Batched(y)) if ra == 2 && rb == 1 => {
            let out = kernels::matmul(x, &y.expand_dims(2)?)?;
            let shape = [out.shape()[0] as isize, out.shape()[1] as isize];
            Some(out.reshape(&shape)?)
        }
        _ => None,
    })
}
