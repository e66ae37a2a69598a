//! A float64 evaluator of programs: the oracle that finite differences are taken on.
//!
//! Float arithmetic is done here, in `f64`, independently of every engine: elementwise
//! functions, comparisons, `select`, products and reductions. Layout primitives move
//! values without computing, so they run on an array of element *indices* with the
//! reference kernels and the `f64` values are gathered through it. Whatever is not float
//! math (random draws, integer work, keys) runs on the reference kernels as it is; a float
//! operand such a primitive reads (a cast to an integer) is rounded to `f32` first. Loops
//! and calls are unrolled.

use nnx_core::program::{
    AbstractValue, LoopValues, Outputs, Primitive, Program, branch_index, interpret_with,
    lanes_loop, predicate, scan_loop, while_loop,
};
use nnx_core::tensor::ReduceOp;
use nnx_core::tensor::elementwise::{BinaryOp, CompareOp, UnaryOp};
use nnx_core::{Array, DType, Error, Result};

/// A value of the oracle: float data in `f64`, anything else as an array.
#[derive(Clone, Debug)]
pub enum Value64 {
    /// A float array.
    Float {
        /// Its shape.
        shape: Vec<usize>,
        /// Its elements, row-major.
        data: Vec<f64>,
    },
    /// A non-float array (integers, booleans, keys).
    Other(Array),
}

impl Value64 {
    /// A float32 array widened, anything else kept.
    ///
    /// # Errors
    /// None for well-formed arrays.
    pub fn from_array(a: &Array) -> Result<Value64> {
        Ok(match a.dtype() {
            DType::F32 => Value64::Float {
                shape: a.shape().to_vec(),
                data: a.to_vec::<f32>()?.into_iter().map(f64::from).collect(),
            },
            _ => Value64::Other(a.clone()),
        })
    }

    /// The array, floats rounded to `f32`.
    fn to_array(&self) -> Result<Array> {
        match self {
            Value64::Float { shape, data } => {
                Array::from_vec(shape, data.iter().map(|&x| x as f32).collect())
            }
            Value64::Other(a) => Ok(a.clone()),
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Value64::Float { shape, .. } => shape,
            Value64::Other(a) => a.shape(),
        }
    }

    fn aval(&self) -> AbstractValue {
        match self {
            Value64::Float { shape, .. } => AbstractValue::new(shape.clone(), DType::F32, false),
            Value64::Other(a) => a.aval(),
        }
    }

    /// The float data (booleans and integers converted).
    ///
    /// # Errors
    /// Keys, which have no numeric value.
    pub fn floats(&self) -> Result<Vec<f64>> {
        match self {
            Value64::Float { data, .. } => Ok(data.clone()),
            Value64::Other(a) => match a.dtype() {
                DType::Bool => Ok(a.to_vec::<bool>()?.into_iter().map(f64::from).collect()),
                DType::I32 => Ok(a.to_vec::<i32>()?.into_iter().map(f64::from).collect()),
                DType::U32 => Ok(a.to_vec::<u32>()?.into_iter().map(f64::from).collect()),
                _ => Err(Error::Internal {
                    what: "the oracle read a key as a number".into(),
                }),
            },
        }
    }
}

/// A float64 evaluator for finite differences. Values a derivative treats as constants
/// must be held at the point the differences are taken around: what `stop_gradient`
/// returns, and the discrete results of float operands (comparisons, casts to integers:
/// their derivative is zero, but a large float crosses many integer steps within a finite
/// difference's step). The first run records each such value, and later runs
/// ([`Oracle::replaying`]) use the recorded ones (branch indexes and loop predicates are
/// among them, so a replay takes the same branches and iterations and meets them in the
/// same order).
///
/// It also notes whether a `maximum`, `minimum` or max/min reduction met a tie: there the
/// derivative is a convention (JAX's, which differentiation follows) that finite
/// differences need not reproduce.
#[derive(Debug, Default)]
pub struct Oracle {
    stopped: Vec<Value64>,
    replay: Option<usize>,
    tie: bool,
}

impl Oracle {
    /// An oracle that records the values held constant.
    pub fn new() -> Oracle {
        Oracle::default()
    }

    /// Whether a run met a tie of `maximum`, `minimum` or a max/min reduction.
    pub fn met_a_tie(&self) -> bool {
        self.tie
    }

    /// From now on, the values held constant are those the previous runs recorded.
    pub fn replaying(&mut self) {
        self.replay = Some(0);
    }

    /// Runs `program` in `f64` on `inputs`.
    ///
    /// # Errors
    /// A malformed program, a primitive the reference kernels reject, or a replay that
    /// meets more values to hold than were recorded.
    pub fn run(&mut self, program: &Program, inputs: Vec<Value64>) -> Result<Vec<Value64>> {
        if let Some(i) = self.replay.as_mut() {
            *i = 0;
        }
        self.eval(program, inputs)
    }

    fn eval(&mut self, program: &Program, inputs: Vec<Value64>) -> Result<Vec<Value64>> {
        interpret_with(
            program,
            inputs,
            |a| Value64::from_array(a).unwrap_or_else(|_| Value64::Other(a.clone())),
            |_, eq, args| {
                let args = args.to_vec();
                Ok(Outputs::Many(match &eq.primitive {
                    Primitive::Call { program }
                    | Primitive::Remat { program, .. }
                    | Primitive::CustomVjp { program, .. } => self.eval(&program.0, args)?,
                    Primitive::Vmap { program, batching } => {
                        let lane_outputs = program.0.output_avals();
                        lanes_loop(&mut Loops64, batching, &lane_outputs, &args, |_, lane| {
                            self.eval(&program.0, lane.to_vec())
                        })?
                    }
                    Primitive::Scan { program, spec } => {
                        let results = spec.output_avals(&program.0);
                        scan_loop(&mut Loops64, spec, &results, &args, |_, step| {
                            self.eval(&program.0, step.to_vec())
                        })?
                    }
                    // The index and the predicate come from frozen comparisons, so replays
                    // take the same branches and iterations.
                    Primitive::Cond { branches } => {
                        let k = branch_index(&args[0].to_array()?, branches.len())?;
                        self.eval(&branches[k].0, args[1..].to_vec())?
                    }
                    Primitive::While {
                        cond,
                        body,
                        cond_consts,
                        body_consts,
                    } => while_loop(
                        self,
                        *cond_consts,
                        *body_consts,
                        &args,
                        |oracle, a| {
                            let holds = oracle.eval(&cond.0, a.to_vec())?;
                            predicate(&holds[0].to_array()?)
                        },
                        |oracle, a| oracle.eval(&body.0, a.to_vec()),
                    )?,
                    Primitive::StopGradient => vec![self.freeze(&args[0])?],
                    p => {
                        let result = first_order(p, &args, &mut self.tie)?;
                        match !is_float(&result) && args.iter().any(is_float) {
                            true => vec![self.freeze(&result)?],
                            false => vec![result],
                        }
                    }
                }))
            },
        )
    }

    /// `value` now, the value recorded in its place when replaying.
    fn freeze(&mut self, value: &Value64) -> Result<Value64> {
        match self.replay.as_mut() {
            None => {
                self.stopped.push(value.clone());
                Ok(value.clone())
            }
            Some(i) => {
                let recorded = self
                    .stopped
                    .get(*i)
                    .cloned()
                    .ok_or_else(|| Error::Internal {
                        what: "the replay met more constants than were recorded".into(),
                    })?;
                *i += 1;
                Ok(recorded)
            }
        }
    }
}

/// The loops' slicing and stacking, through [`layout`].
struct Loops64;

impl LoopValues for Loops64 {
    type Value = Value64;

    fn index(&mut self, value: &Value64, axis: usize, index: usize) -> Result<Value64> {
        layout(
            &Primitive::IndexAxis { axis, index },
            std::slice::from_ref(value),
        )
    }

    fn stack(&mut self, values: Vec<Value64>, axis: usize) -> Result<Value64> {
        layout(&Primitive::Stack { axis }, &values)
    }

    fn zeros(&mut self, aval: &AbstractValue) -> Result<Value64> {
        Value64::from_array(&Array::zeros_of(&aval.shape, aval.dtype)?)
    }

    fn aval(&self, value: &Value64) -> AbstractValue {
        value.aval()
    }
}

fn float(shape: Vec<usize>, data: Vec<f64>) -> Value64 {
    Value64::Float { shape, data }
}

fn is_float(v: &Value64) -> bool {
    matches!(v, Value64::Float { .. })
}

/// One first-order primitive; sets `tie` when an extremum is attained twice.
fn first_order(p: &Primitive, x: &[Value64], tie: &mut bool) -> Result<Value64> {
    let any_float = x.iter().any(is_float);
    match p {
        Primitive::Binary(op) if any_float => {
            let (shape, v) = broadcast_all(p, x)?;
            if matches!(op, BinaryOp::Maximum | BinaryOp::Minimum) {
                *tie |= v[0].iter().zip(&v[1]).any(|(a, b)| a == b);
            }
            let f = |a: f64, b: f64| match op {
                BinaryOp::Add => a + b,
                BinaryOp::Sub => a - b,
                BinaryOp::Mul => a * b,
                BinaryOp::Div => a / b,
                BinaryOp::Pow => a.powf(b),
                BinaryOp::Maximum => nan_or(a, b, f64::max),
                BinaryOp::Minimum => nan_or(a, b, f64::min),
            };
            Ok(float(shape, zip2(&v[0], &v[1], f)))
        }
        Primitive::Compare(op) if any_float => {
            let (shape, v) = broadcast_all(p, x)?;
            let f = |a: f64, b: f64| f64::from(u8::from(compare(*op, a, b)));
            let bools: Vec<bool> = zip2(&v[0], &v[1], f).iter().map(|&c| c != 0.0).collect();
            Ok(Value64::Other(Array::from_vec(&shape, bools)?))
        }
        Primitive::Unary(op) if any_float => {
            let data = x[0].floats()?;
            let f = |a: f64| match op {
                UnaryOp::Neg => -a,
                UnaryOp::Abs => a.abs(),
                UnaryOp::Exp => a.exp(),
                UnaryOp::Log => a.ln(),
                UnaryOp::Sqrt => a.sqrt(),
                UnaryOp::Tanh => a.tanh(),
                UnaryOp::Sin => a.sin(),
                UnaryOp::Cos => a.cos(),
                UnaryOp::Logistic => 1.0 / (1.0 + (-a).exp()),
                UnaryOp::Erf => libm::erf(a),
            };
            Ok(float(
                x[0].shape().to_vec(),
                data.into_iter().map(f).collect(),
            ))
        }
        Primitive::Select if is_float(&x[1]) || is_float(&x[2]) => {
            let (shape, v) = broadcast_all(p, x)?;
            let data = (0..v[0].len())
                .map(|i| if v[0][i] != 0.0 { v[1][i] } else { v[2][i] })
                .collect();
            Ok(float(shape, data))
        }
        Primitive::Matmul if any_float => matmul(p, x),
        Primitive::Reduce { op, axes, keepdims } if any_float => {
            reduce(*op, axes, *keepdims, &x[0], tie)
        }
        Primitive::Reshape { .. }
        | Primitive::Squeeze { .. }
        | Primitive::ExpandDims { .. }
        | Primitive::Transpose { .. }
        | Primitive::BroadcastTo { .. }
        | Primitive::IndexAxis { .. }
        | Primitive::SliceAxis { .. }
        | Primitive::Pad { .. }
        | Primitive::Patches { .. }
        | Primitive::DynamicSlice { .. }
        | Primitive::DynamicUpdateSlice { .. }
        | Primitive::Concatenate { .. }
        | Primitive::Stack { .. }
            if any_float =>
        {
            layout(p, x)
        }
        Primitive::Cumsum { axis, reverse } if any_float => {
            let shape = x[0].shape().to_vec();
            let mut data = x[0].floats()?;
            let (n, inner) = (shape[*axis], shape[axis + 1..].iter().product::<usize>());
            for o in 0..shape[..*axis].iter().product::<usize>() {
                for i in 0..inner {
                    let mut total = 0.0;
                    for k in 0..n {
                        let at = (o * n + if *reverse { n - 1 - k } else { k }) * inner + i;
                        total += data[at];
                        data[at] = total;
                    }
                }
            }
            Ok(float(shape, data))
        }
        Primitive::QrQ if any_float => {
            let shape = x[0].shape().to_vec();
            let (rows, cols) = nnx_core::tensor::check_tall(&shape)?;
            let data = x[0].floats()?;
            let q = match rows * cols {
                0 => Vec::new(),
                size => (data.chunks_exact(size))
                    .flat_map(|m| nnx_core::tensor::signed_thin_q(m, rows, cols))
                    .collect(),
            };
            Ok(float(shape, q))
        }
        Primitive::TriangularSolve(spec) if any_float => {
            let m = x[0].shape().last().copied().unwrap_or(0);
            let a = x[0].floats()?;
            let mut solution = x[1].floats()?;
            nnx_core::tensor::for_each_matrix(&a, m, &mut solution, |a, block| {
                spec.solve_in_place(a, m, block)
            });
            Ok(float(x[1].shape().to_vec(), solution))
        }
        // col2im: the patches of the input's element indices say where each element goes.
        Primitive::PatchesTranspose { windows, spatial } if any_float => {
            let input = nnx_core::tensor::patches_input_shape(windows, x[0].shape(), spatial)?;
            let sources = indices(&input, 0)?.patches(windows)?;
            scatter_add(input, &sources, &x[0])
        }
        // A gather of the table's element indices (0 where out of range).
        Primitive::Take { axis, fill } if is_float(&x[0]) => {
            let at = x[1].to_array()?;
            let moved = indices(x[0].shape(), 0)?.take_at(&at, *axis as isize, false)?;
            let data = x[0].floats()?;
            let missing = if *fill { f64::NAN } else { 0.0 };
            let gathered = (moved.to_vec::<i32>()?.iter())
                .map(|&i| {
                    if i == 0 {
                        missing
                    } else {
                        data[i as usize - 1]
                    }
                })
                .collect();
            Ok(float(moved.shape().to_vec(), gathered))
        }
        Primitive::TakeTranspose { axis, size } if is_float(&x[0]) => {
            let at = x[1].to_array()?;
            let table =
                nnx_core::tensor::take_transpose_shape(x[0].shape(), at.shape(), *axis, *size)?;
            let sources = indices(&table, 0)?.take_at(&at, *axis as isize, false)?;
            scatter_add(table, &sources, &x[0])
        }
        Primitive::Astype { dtype: DType::F32 } if is_float(&x[0]) => Ok(x[0].clone()),
        // Not float math: the reference kernels, on f32-rounded floats.
        _ => {
            let arrays: Vec<Array> = x.iter().map(Value64::to_array).collect::<Result<_>>()?;
            Value64::from_array(&p.eval(&arrays)?)
        }
    }
}

/// `f(a, b)`, or NaN if either is (as numpy's `maximum`/`minimum` propagate NaN, where
/// `f64::max` ignores it).
fn nan_or(a: f64, b: f64, f: fn(f64, f64) -> f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        f(a, b)
    }
}

fn compare(op: CompareOp, a: f64, b: f64) -> bool {
    match op {
        CompareOp::Eq => a == b,
        CompareOp::Ne => a != b,
        CompareOp::Lt => a < b,
        CompareOp::Le => a <= b,
        CompareOp::Gt => a > b,
        CompareOp::Ge => a >= b,
    }
}

fn zip2(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    a.iter().zip(b).map(|(&a, &b)| f(a, b)).collect()
}

/// The element indices of an array of `shape`, counted from `offset + 1` (0 stands for the
/// zeros a pad inserts), as int32.
fn indices(shape: &[usize], offset: usize) -> Result<Array> {
    let n: usize = shape.iter().product();
    let data = (0..n).map(|i| (i + offset + 1) as i32).collect();
    Array::from_vec(shape, data)
}

/// A transpose of a gather: each element of `values` added into zeros of `shape` at its
/// source (1-based element indices in `sources`, 0 for none).
fn scatter_add(shape: Vec<usize>, sources: &Array, values: &Value64) -> Result<Value64> {
    let mut out = vec![0.0; shape.iter().product()];
    for (&s, v) in sources.to_vec::<i32>()?.iter().zip(values.floats()?) {
        if s > 0 {
            out[s as usize - 1] += v;
        }
    }
    Ok(float(shape, out))
}

/// A layout primitive: run on index arrays, then gather.
fn layout(p: &Primitive, x: &[Value64]) -> Result<Value64> {
    if !x.iter().any(is_float) {
        let arrays: Vec<Array> = x.iter().map(Value64::to_array).collect::<Result<_>>()?;
        return Ok(Value64::Other(p.eval(&arrays)?));
    }
    let mut offset = 0;
    let mut index_arrays = Vec::with_capacity(x.len());
    let mut data = Vec::new();
    for v in x {
        // Float operands move; others (a dynamic slice's start) steer as they are.
        if !is_float(v) {
            index_arrays.push(v.to_array()?);
            continue;
        }
        index_arrays.push(indices(v.shape(), offset)?);
        offset += v.shape().iter().product::<usize>();
        data.extend(v.floats()?);
    }
    let moved = p.eval(&index_arrays)?;
    let gathered = (moved.to_vec::<i32>()?.iter())
        .map(|&i| match i {
            0 => 0.0,
            i => data[i as usize - 1],
        })
        .collect();
    Ok(float(moved.shape().to_vec(), gathered))
}

/// Every operand broadcast to the output's shape (as numpy broadcasts).
fn broadcast_all(p: &Primitive, x: &[Value64]) -> Result<(Vec<usize>, Vec<Vec<f64>>)> {
    let avals: Vec<AbstractValue> = x.iter().map(Value64::aval).collect();
    let shape = p.output_avals(&avals)?[0].shape.clone();
    let values = x
        .iter()
        .map(|v| {
            let spread = layout(
                &Primitive::BroadcastTo {
                    shape: shape.clone(),
                },
                &[float(v.shape().to_vec(), v.floats()?)],
            )?;
            spread.floats()
        })
        .collect::<Result<_>>()?;
    Ok((shape, values))
}

/// A reduction over `axes`.
fn reduce(
    op: ReduceOp,
    axes: &[usize],
    keepdims: bool,
    x: &Value64,
    tie: &mut bool,
) -> Result<Value64> {
    let shape = x.shape().to_vec();
    let data = x.floats()?;
    let kept: Vec<usize> = (shape.iter().enumerate())
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let out_n: usize = kept.iter().product();
    let mut acc: Vec<Vec<f64>> = vec![Vec::new(); out_n];
    for (flat, &value) in data.iter().enumerate() {
        // The output position: the input's coordinates with the reduced ones set to 0.
        let (mut rest, mut out, mut stride) = (flat, 0, 1);
        for axis in (0..shape.len()).rev() {
            let coord = rest % shape[axis];
            rest /= shape[axis];
            if !axes.contains(&axis) {
                out += coord * stride;
            }
            stride *= kept[axis];
        }
        acc[out].push(value);
    }
    let result: Vec<f64> = acc
        .iter()
        .map(|vals| match op {
            ReduceOp::Sum => vals.iter().sum(),
            ReduceOp::Mean => vals.iter().sum::<f64>() / vals.len() as f64,
            ReduceOp::Max => {
                (vals.iter().copied()).fold(f64::NEG_INFINITY, |a, b| nan_or(a, b, f64::max))
            }
            ReduceOp::Min => {
                (vals.iter().copied()).fold(f64::INFINITY, |a, b| nan_or(a, b, f64::min))
            }
        })
        .collect();
    if matches!(op, ReduceOp::Max | ReduceOp::Min) {
        *tie |=
            (acc.iter().zip(&result)).any(|(vals, y)| vals.iter().filter(|v| *v == y).count() > 1);
    }
    let out_shape = match keepdims {
        true => kept,
        false => (shape.iter().enumerate())
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect(),
    };
    Ok(float(out_shape, result))
}

/// `a @ b` with numpy's rules (1-D operands, broadcast batch axes).
fn matmul(p: &Primitive, x: &[Value64]) -> Result<Value64> {
    let (a, b) = (&x[0], &x[1]);
    let avals: Vec<AbstractValue> = x.iter().map(Value64::aval).collect();
    let out_shape = p.output_avals(&avals)?[0].shape.clone();
    // Promote 1-D operands to matrices, as the output shape already accounts for.
    let a_shape: Vec<usize> = match a.shape().len() {
        1 => vec![1, a.shape()[0]],
        _ => a.shape().to_vec(),
    };
    let b_shape: Vec<usize> = match b.shape().len() {
        1 => vec![b.shape()[0], 1],
        _ => b.shape().to_vec(),
    };
    let (m, k, n) = (
        a_shape[a_shape.len() - 2],
        a_shape[a_shape.len() - 1],
        b_shape[b_shape.len() - 1],
    );
    let batch_a = &a_shape[..a_shape.len() - 2];
    let batch_b = &b_shape[..b_shape.len() - 2];
    let rank = batch_a.len().max(batch_b.len());
    let pad = |s: &[usize]| -> Vec<usize> {
        std::iter::repeat_n(1, rank - s.len())
            .chain(s.iter().copied())
            .collect()
    };
    let batch: Vec<usize> = (pad(batch_a).iter().zip(pad(batch_b)))
        .map(|(&p, q)| if p == 1 { q } else { p })
        .collect();
    let spread = |v: &Value64, s: &[usize], rows: usize, cols: usize| -> Result<Vec<f64>> {
        let full: Vec<usize> = batch.iter().copied().chain([rows, cols]).collect();
        let as_matrix = float(s.to_vec(), v.floats()?);
        layout(&Primitive::BroadcastTo { shape: full }, &[as_matrix])?.floats()
    };
    let (av, bv) = (spread(a, &a_shape, m, k)?, spread(b, &b_shape, k, n)?);
    let count: usize = batch.iter().product();
    let mut out = vec![0.0; count * m * n];
    for t in 0..count {
        for i in 0..m {
            for j in 0..n {
                out[t * m * n + i * n + j] = (0..k)
                    .map(|l| av[t * m * k + i * k + l] * bv[t * k * n + l * n + j])
                    .sum();
            }
        }
    }
    Ok(float(out_shape, out))
}
