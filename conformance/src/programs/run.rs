//! Building a [`ProgramCase`]'s arguments and running its program as user code.

use nnx_core::lift::Prefix;
use nnx_core::random;
use nnx_core::tensor::elementwise::{BinaryOp, UnaryOp};
use nnx_core::transforms::{Axis, Grad, ScanAxis, jit, scan, value_and_grad, vmap};
use nnx_core::{
    Axes, BatchStat, DType, Dict, Engine, Error, Filter, List, Object, Param, Result, Tensor,
    Value, Variable, VariableType,
};

use super::{
    AxesPick, Body, GradWrt, Level, MatmulForm, ModelSpec, Op, ProgramCase, RandomPick, Reg,
    ScanModel, Src, VmapModel,
};
use crate::cases::guide::Count;

// ---------------------------------------------------------------------------------------
// Building the arguments.

/// The model's Variables in a fixed order, with whether each is a Param and its base
/// (innermost) shape and dtype.
struct Slot {
    param: bool,
    shape: Vec<usize>,
    dtype: DType,
}

impl ModelSpec {
    fn slots(&self) -> Vec<Slot> {
        let d = self.d;
        let mut slots = vec![
            Slot {
                param: true,
                shape: if self.w_matrix { vec![d, d] } else { vec![d] },
                dtype: DType::F32,
            },
            Slot {
                param: false,
                shape: vec![],
                dtype: DType::I32,
            },
            Slot {
                param: false,
                shape: vec![],
                dtype: DType::Key,
            },
            Slot {
                param: true,
                shape: vec![d],
                dtype: DType::F32,
            },
            Slot {
                param: false,
                shape: vec![d],
                dtype: DType::F32,
            },
        ];
        for _ in 0..self.layers {
            slots.push(Slot {
                param: true,
                shape: vec![d],
                dtype: DType::F32,
            });
        }
        slots
    }
}

/// Inserts the mapped axis `axis` (normalised with [`pick_axis`] for the mapped rank, as
/// the transform call does) of `size`.
fn insert_axis(shape: &mut Vec<usize>, axis: i8, size: usize) {
    let n = shape.len() + 1;
    let a = pick_axis(axis, n).unwrap_or(0).rem_euclid(n as isize);
    shape.insert(a as usize, size);
}

/// The shape the caller must pass for something whose innermost shape is `base`, given
/// how each level maps it (`vmap_axis`, `scanned`).
fn outer_shape(level: &Level, base: &[usize], role: Role) -> Vec<usize> {
    match level {
        Level::Body(_) => base.to_vec(),
        Level::Jit(inner) | Level::Grad { inner, .. } | Level::Then(inner, _) => {
            outer_shape(inner, base, role)
        }
        Level::Vmap {
            model,
            x,
            size,
            inner,
            ..
        } => {
            let mut shape = outer_shape(inner, base, role);
            let axis = match role {
                Role::Input => *x,
                Role::Var { param } => match *model {
                    VmapModel::Broadcast => None,
                    VmapModel::All(a) => Some(a),
                    VmapModel::Params(a) => param.then_some(a),
                    VmapModel::NonParams(a) => (!param).then_some(a),
                },
            };
            if let Some(a) = axis {
                insert_axis(&mut shape, a, *size);
            }
            shape
        }
        Level::Scan {
            model,
            x,
            length,
            inner,
            ..
        } => {
            let mut shape = outer_shape(inner, base, role);
            let axis = match role {
                Role::Input if matches!(model, ScanModel::ParamsBroadcast) => None,
                Role::Input => *x,
                Role::Var { .. } => matches!(model, ScanModel::Scanned).then_some(0),
            };
            if let Some(a) = axis {
                insert_axis(&mut shape, a, *length);
            }
            shape
        }
    }
}

#[derive(Clone, Copy)]
enum Role {
    Input,
    Var { param: bool },
}

impl ProgramCase {
    fn array(&self, shape: &[usize], offset: usize) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let data = (0..n)
            .map(|i| self.values[(i + offset) % self.values.len()])
            .collect();
        Tensor::from_vec(shape, data)
    }

    fn slot_value(&self, slot: &Slot, index: usize) -> Result<Tensor> {
        let shape = outer_shape(&self.root, &slot.shape, Role::Var { param: slot.param });
        match slot.dtype {
            DType::Key => {
                let key = random::key(i64::from(self.seed));
                if shape.is_empty() {
                    Ok(key)
                } else {
                    random::split_shape(&key, &shape)
                }
            }
            DType::I32 => {
                let n: usize = shape.iter().product();
                Tensor::from_vec(&shape, (0..n as i32).collect())
            }
            _ => self.array(&shape, 3 * index + 1),
        }
    }

    /// Builds a fresh model (identical on every call).
    ///
    /// # Errors
    /// Only if the spec is inconsistent (a bug of the generator).
    pub fn build_model(&self) -> Result<Object> {
        let slots = self.model.slots();
        let values = slots
            .iter()
            .enumerate()
            .map(|(i, s)| self.slot_value(s, i))
            .collect::<Result<Vec<_>>>()?;
        let w = Param::new(values[0].clone());
        let sub = Object::new("Sub").with("b", Param::new(values[3].clone()))?;
        let layers = List::new(
            values[5..]
                .iter()
                .map(|v| Value::from(Param::new(v.clone()))),
        );
        let mut model = Object::new("Model")
            .with("w", w.clone())?
            .with("count", Count::new(values[1].clone()))?
            .with(
                "key",
                Variable::new(VariableType::RNG_KEY, values[2].clone()),
            )?
            .with("sub", sub.clone())?
            .with("layers", layers)?
            .with(
                "stats",
                Dict::new().with("mean", BatchStat::new(values[4].clone()))?,
            )?;
        if self.model.tied {
            model = model.with("tied", w)?;
        }
        if self.model.alias {
            model = model.with("alias", sub)?;
        }
        Ok(model)
    }

    /// The input array the caller passes.
    ///
    /// # Errors
    /// Only if the spec is inconsistent.
    pub fn build_input(&self) -> Result<Tensor> {
        let shape = outer_shape(&self.root, &self.x_shape, Role::Input);
        self.array(&shape, 0)
    }

    /// Builds a fresh model and input and runs the program on `engine`: the output, and the
    /// model afterwards (changed by the program, or unchanged if it failed).
    pub fn run(&self, engine: &dyn Engine) -> Result<(Result<Tensor>, Object)> {
        let model = self.build_model()?;
        let x = self.build_input()?;
        let out = run_level(&self.root, engine, &model, &x);
        Ok((out, model))
    }
}

// ---------------------------------------------------------------------------------------
// Running a program.

fn run_level(level: &Level, engine: &dyn Engine, m: &Object, x: &Tensor) -> Result<Tensor> {
    let args = [Value::from(m), Value::from(x.clone())];
    let call_inner = |inner: &Level, args: &[Value]| -> Result<Tensor> {
        run_level(inner, engine, &args[0].object()?, &args[1].as_tensor()?)
    };
    match level {
        Level::Body(body) => run_body(body, m, std::slice::from_ref(x)),
        Level::Then(inner, body) => {
            let y = run_level(inner, engine, m, x)?;
            run_body(body, m, &[y, x.clone()])
        }
        Level::Jit(inner) => jit(|a: &[Value]| Ok(Value::from(call_inner(inner, a)?)))
            .call(engine, &args[..])?
            .as_tensor(),
        Level::Vmap {
            model,
            x: x_axis,
            out,
            size,
            inner,
        } => {
            let leaf = |a: Option<i8>| Prefix::Leaf(Axis(a.map(isize::from)));
            let state_axes = |param: Option<i8>, rest: Option<i8>| {
                Prefix::StateAxes(vec![
                    (
                        Filter::from(VariableType::PARAM),
                        Axis(param.map(isize::from)),
                    ),
                    (Filter::Everything, Axis(rest.map(isize::from))),
                ])
            };
            let model_axes = match *model {
                VmapModel::Broadcast => leaf(None),
                VmapModel::All(a) => leaf(Some(a)),
                VmapModel::Params(a) => state_axes(Some(a), None),
                VmapModel::NonParams(a) => state_axes(None, Some(a)),
            };
            vmap(|a: &[Value]| Ok(Value::from(call_inner(inner, a)?)))
                .in_axes(Prefix::Tuple(vec![
                    model_axes,
                    leaf(x_axis.map(|a| pick_axis(a, x.ndim()).map_or(a, |a| a as i8))),
                ]))
                .out_axes(leaf(*out))
                .axis_size(*size)
                .call(engine, &args[..])?
                .as_tensor()
        }
        Level::Scan {
            model,
            x: x_axis,
            out,
            length,
            reverse,
            inner,
        } => {
            let x_axes = Prefix::Leaf(match (model, x_axis) {
                (ScanModel::ParamsBroadcast, _) => ScanAxis::Carry,
                (_, None) => ScanAxis::Broadcast,
                (_, Some(a)) => ScanAxis::Axis(pick_axis(*a, x.ndim()).unwrap_or(isize::from(*a))),
            });
            let out_leaf = Prefix::Leaf(ScanAxis::Axis(isize::from(*out)));
            let (model_axes, carries) = match model {
                ScanModel::Carry => (Prefix::Leaf(ScanAxis::Carry), true),
                ScanModel::Broadcast => (Prefix::Leaf(ScanAxis::Broadcast), false),
                ScanModel::Scanned => (Prefix::Leaf(ScanAxis::Axis(0)), false),
                ScanModel::ParamsBroadcast => (
                    Prefix::StateAxes(vec![
                        (Filter::from(VariableType::PARAM), ScanAxis::Broadcast),
                        (Filter::Everything, ScanAxis::Carry),
                    ]),
                    true,
                ),
            };
            let f = |a: &[Value]| -> Result<Value> {
                let y = Value::from(call_inner(inner, a)?);
                Ok(if matches!(model, ScanModel::ParamsBroadcast) {
                    // The model's carried state is threaded through the StateAxes; the
                    // carry output is the input, carried unchanged.
                    Value::tuple(vec![a[1].clone(), y])
                } else if carries {
                    Value::tuple(vec![a[0].clone(), y])
                } else {
                    y
                })
            };
            let out_axes = if carries {
                Prefix::Tuple(vec![Prefix::Leaf(ScanAxis::Carry), out_leaf])
            } else {
                out_leaf
            };
            let result = scan(f)
                .in_axes(Prefix::Tuple(vec![model_axes, x_axes]))
                .out_axes(out_axes)
                .length(*length)
                .reverse(*reverse)
                .call(engine, &args[..])?;
            match result {
                Value::Tuple(items) if carries => items
                    .get(1)
                    .ok_or_else(|| Error::InvalidValue("scan returned no ys".into()))?
                    .as_tensor(),
                other => other.as_tensor(),
            }
        }
        Level::Grad { wrt, inner } => {
            let argnums: &[usize] = match wrt {
                GradWrt::Model => &[0],
                GradWrt::Input => &[1],
                GradWrt::Both => &[0, 1],
            };
            let out = value_and_grad(|a: &[Value]| {
                let y = call_inner(inner, a)?;
                Ok(Value::from(y.astype(DType::F32)?.sum(Axes::All)?))
            })
            .argnums(argnums)
            .call(engine, &args[..])?;
            let mut parts = vec![out.value.reshape(&[1])?];
            for g in &out.grads {
                match g {
                    Grad::Array(t) => parts.push(t.reshape(&[-1])?),
                    Grad::State(s) => {
                        for (_, leaf) in s {
                            parts.push(leaf.value().reshape(&[-1])?);
                        }
                    }
                }
            }
            Tensor::concatenate(&parts, 0)
        }
    }
}

/// The model's Variable handles as a body sees them (aliases included, so an update through
/// `tied` or `alias` reaches the shared Variable).
fn handles(m: &Object) -> Result<Vec<Variable>> {
    let mut vars = vec![m.var("w")?, m.var("count")?, m.var("key")?];
    vars.push(m.object("sub")?.var("b")?);
    if let Value::Variable(v) = m.dict("stats")?.get("mean")? {
        vars.push(v);
    }
    for item in m.list("layers")?.items() {
        if let Value::Variable(v) = item {
            vars.push(v);
        }
    }
    if m.has("tied") {
        vars.push(m.var("tied")?);
    }
    if m.has("alias") {
        vars.push(m.object("alias")?.var("b")?);
    }
    Ok(vars)
}

/// Registers: numeric arrays and scalar keys.
struct Regs {
    values: Vec<Tensor>,
    keys: Vec<Tensor>,
}

impl Regs {
    fn get(&self, r: Reg) -> &Tensor {
        let n = self.values.len();
        &self.values[n - 1 - usize::from(r) % n]
    }

    fn key(&self, r: Reg) -> &Tensor {
        let n = self.keys.len();
        &self.keys[n - 1 - usize::from(r) % n]
    }
}

/// Bool arrays as int32, so arithmetic accepts them.
fn numeric(t: &Tensor) -> Result<Tensor> {
    if t.dtype() == DType::Bool {
        t.astype(DType::I32)
    } else {
        Ok(t.clone())
    }
}

fn abs(t: &Tensor) -> Result<Tensor> {
    t.unary(UnaryOp::Abs)
}

fn as_float(t: &Tensor) -> Result<Tensor> {
    if t.dtype() == DType::F32 {
        Ok(t.clone())
    } else {
        t.astype(DType::F32)
    }
}

/// Clamps to [-16, 16] and rounds toward zero to a multiple of 1/8, so that products of
/// snapped values are exact in float32.
fn snap(t: &Tensor) -> Result<Tensor> {
    let t = as_float(t)?
        .maximum(&Tensor::weak_scalar(-16.0f32))?
        .minimum(&Tensor::weak_scalar(16.0f32))?;
    (&t * 8.0)?
        .astype(DType::I32)?
        .astype(DType::F32)?
        .div(&Tensor::weak_scalar(8.0f32))
}

/// A constant of `shape` on the 1/8 grid scaled by a snapped function of `scale`.
fn operand(shape: &[usize], scale: &Tensor, int: bool) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    if int {
        let data = (0..n).map(|i| (i as i32 * 3 + 1) % 5 - 2).collect();
        return Tensor::from_vec(shape, data)?
            .add(&numeric(scale)?.sum(Axes::All)?.astype(DType::I32)?);
    }
    let data = (0..n)
        .map(|i| ((i * 3 + 1) % 9) as f32 / 8.0 - 0.5)
        .collect();
    let grid = Tensor::from_vec(shape, data)?;
    let s = as_float(&numeric(scale)?)?.mean(Axes::All)?.tanh()?;
    snap(&grid.mul(&s)?)
}

/// Normalises a generated axis for an array of rank `n` (`None` for rank 0), keeping its
/// sign so negative axes are exercised.
fn pick_axis(a: i8, n: usize) -> Option<isize> {
    if n == 0 {
        return None;
    }
    let n = n as isize;
    let a = isize::from(a).rem_euclid(2 * n);
    Some(if a >= n { a - 2 * n } else { a })
}

/// `b` broadcast to `shape`, or its sum broadcast when it cannot be.
fn to_shape(b: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let fits = b.ndim() <= shape.len()
        && b.shape()
            .iter()
            .rev()
            .zip(shape.iter().rev())
            .all(|(&x, &y)| x == y || x == 1);
    if fits {
        b.broadcast_to(shape)
    } else {
        b.sum(Axes::All)?.broadcast_to(shape)
    }
}

fn broadcastable(a: &[usize], b: &[usize]) -> bool {
    a.iter()
        .rev()
        .zip(b.iter().rev())
        .all(|(&x, &y)| x == y || x == 1 || y == 1)
}

/// `b` adapted to combine with `a`: itself if the shapes broadcast, else its sum.
fn compatible(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let b = numeric(b)?;
    if broadcastable(a.shape(), b.shape()) {
        Ok(b)
    } else {
        b.sum(Axes::All)
    }
}

fn run_op(op: &Op, regs: &mut Regs) -> Result<()> {
    let value = match *op {
        Op::Binary(o, a, b) => {
            let x = numeric(regs.get(a))?;
            let y = compatible(&x, regs.get(b))?;
            let (x, y) =
                if x.dtype() != y.dtype() && (x.dtype() == DType::U32 || y.dtype() == DType::U32) {
                    (as_float(&x)?, as_float(&y)?)
                } else {
                    (x, y)
                };
            match o {
                BinaryOp::Div => x.div(&(abs(&as_float(&y)?)? + 1.0)?)?,
                BinaryOp::Pow => (abs(&as_float(&x)?)? + 0.5)?.pow(&as_float(&y)?.tanh()?)?,
                o => x.binary(o, &y)?,
            }
        }
        Op::Scalar(o, a, c, int) => {
            let x = numeric(regs.get(a))?;
            let c = if int {
                Tensor::weak_scalar(i32::from(c))
            } else {
                Tensor::weak_scalar(f32::from(c) / 4.0)
            };
            match o {
                BinaryOp::Div => x.div(&(abs(&c)? + 1)?)?,
                BinaryOp::Pow => {
                    (abs(&as_float(&x)?)? + 0.5)?.pow(&c.astype(DType::F32)?.tanh()?)?
                }
                o => x.binary(o, &c)?,
            }
        }
        Op::Compare(o, a, b) => {
            let x = numeric(regs.get(a))?;
            let y = compatible(&x, regs.get(b))?;
            x.compare(o, &y)?
        }
        Op::Select(c, a, b) => {
            let cond = numeric(regs.get(c))?;
            let cond = cond.greater(&Tensor::weak_scalar(0i32))?;
            let t = compatible(&cond, regs.get(a))?;
            let f = compatible(&cond, regs.get(b))?;
            let f = compatible(&t, &f)?;
            cond.select(&t, &f)?
        }
        Op::Unary(o, a) => {
            let x = numeric(regs.get(a))?;
            match o {
                UnaryOp::Exp => x.tanh()?.exp()?,
                UnaryOp::Log => (abs(&as_float(&x)?)? + 1.0)?.log()?,
                UnaryOp::Sqrt => abs(&x)?.sqrt()?,
                o => x.unary(o)?,
            }
        }
        Op::Matmul(form, a, b, int) => {
            let x = if int {
                numeric(regs.get(a))?.astype(DType::I32)?
            } else {
                snap(regs.get(a))?
            };
            let scale = regs.get(b).clone();
            let flat = |t: &Tensor| t.reshape(&[-1]);
            match form {
                MatmulForm::VecVec => {
                    let v = flat(&x)?;
                    v.matmul(&operand(&[v.size()], &scale, int)?)?
                }
                MatmulForm::VecMat => {
                    let v = flat(&x)?;
                    v.matmul(&operand(&[2, v.size(), 3], &scale, int)?)?
                }
                MatmulForm::MatVec | MatmulForm::MatMat => {
                    let x = if x.ndim() == 0 { x.reshape(&[1])? } else { x };
                    let k = x.shape()[x.ndim() - 1];
                    let shape: &[usize] = if matches!(form, MatmulForm::MatVec) {
                        &[k]
                    } else {
                        &[k, 3]
                    };
                    x.matmul(&operand(shape, &scale, int)?)?
                }
                MatmulForm::Batched { same_batch } => {
                    let x = match x.ndim() {
                        0 => x.reshape(&[1, 1])?,
                        1 => x.expand_dims(0)?,
                        _ => x,
                    };
                    let nd = x.ndim();
                    let k = x.shape()[nd - 1];
                    let mut shape: Vec<usize> = if nd == 2 {
                        vec![2]
                    } else if same_batch {
                        x.shape()[..nd - 2].to_vec()
                    } else {
                        vec![1]
                    };
                    shape.extend([k, 2]);
                    x.matmul(&operand(&shape, &scale, int)?)?
                }
            }
        }
        Op::Reduce(o, pick, keepdims, a) => {
            let x = numeric(regs.get(a))?;
            let axes = match pick {
                AxesPick::All => Axes::All,
                AxesPick::One(i) => match pick_axis(i, x.ndim()) {
                    Some(i) => Axes::from(i),
                    None => Axes::All,
                },
                AxesPick::Two(i, j) => match (pick_axis(i, x.ndim()), pick_axis(j, x.ndim())) {
                    (Some(i), Some(j))
                        if i.rem_euclid(x.ndim() as isize) != j.rem_euclid(x.ndim() as isize) =>
                    {
                        Axes::from(vec![i, j])
                    }
                    (Some(i), Some(_)) => Axes::from(i),
                    _ => Axes::All,
                },
            };
            x.reduce(o, axes, keepdims)?
        }
        Op::Reshape(flatten, a) => {
            let x = regs.get(a);
            if flatten {
                x.reshape(&[-1])?
            } else {
                let shape: Vec<isize> = x.shape().iter().rev().map(|&d| d as isize).collect();
                x.reshape(&shape)?
            }
        }
        Op::Transpose(reverse, a) => {
            let x = regs.get(a);
            if reverse {
                x.transpose()?
            } else {
                let n = x.ndim() as isize;
                let perm: Vec<isize> = (0..n).map(|i| (i + 1) % n.max(1)).collect();
                x.permute_axes(&perm)?
            }
        }
        Op::BroadcastTo(n, a) => {
            let x = regs.get(a);
            let mut shape = vec![usize::from(n)];
            shape.extend_from_slice(x.shape());
            x.broadcast_to(&shape)?
        }
        Op::ExpandDims(i, a) => {
            let x = regs.get(a);
            let axis = pick_axis(i, x.ndim() + 1).unwrap_or(0);
            x.expand_dims(axis)?
        }
        Op::Squeeze(i, a) => {
            let x = regs.get(a);
            match i.and_then(|i| pick_axis(i, x.ndim())) {
                Some(axis) => x.squeeze(axis)?,
                None => {
                    let ones: Vec<isize> = (0..x.ndim())
                        .filter(|&k| x.shape()[k] == 1)
                        .map(|k| k as isize)
                        .collect();
                    x.squeeze(ones)?
                }
            }
        }
        Op::Index(i, j, a) => {
            let x = regs.get(a);
            match pick_axis(i, x.ndim()) {
                Some(axis) => {
                    let n = x.shape()[axis.rem_euclid(x.ndim() as isize) as usize] as isize;
                    let index = if n == 0 {
                        0
                    } else {
                        let j = isize::from(j).rem_euclid(2 * n);
                        if j >= n { j - 2 * n } else { j }
                    };
                    x.index_axis(axis, index)?
                }
                None => x.clone(),
            }
        }
        Op::Slice(i, s, e, a) => {
            let x = regs.get(a);
            match pick_axis(i, x.ndim()) {
                Some(axis) => {
                    let n = x.shape()[axis.rem_euclid(x.ndim() as isize) as usize];
                    let start = usize::from(s).min(n);
                    let end = (start + usize::from(e)).min(n);
                    x.slice_axis(axis, start..end)?
                }
                None => x.clone(),
            }
        }
        Op::Concatenate(i, a, b) => {
            let x = numeric(regs.get(a))?;
            let x = if x.ndim() == 0 { x.reshape(&[1])? } else { x };
            let axis = pick_axis(i, x.ndim()).unwrap_or(0);
            let y = to_shape(&numeric(regs.get(b))?, x.shape())?.astype(x.dtype())?;
            Tensor::concatenate(&[x.clone(), y, x], axis)?
        }
        Op::Stack(i, a, b) => {
            let x = numeric(regs.get(a))?;
            let axis = pick_axis(i, x.ndim() + 1).unwrap_or(0);
            let y = to_shape(&numeric(regs.get(b))?, x.shape())?.astype(x.dtype())?;
            Tensor::stack(&[x, y], axis)?
        }
        Op::Astype(d, a) => regs.get(a).astype(d)?,
        Op::Random(pick, k) => {
            // A Variable's key seen outside the vmap that maps it is a key array: use its
            // first key (or a fresh one if it is empty).
            let key = match regs.key(k) {
                k if k.ndim() == 0 => k.clone(),
                k if k.size() > 0 => k.reshape(&[-1])?.index_axis(0, 0)?,
                _ => random::key(0),
            };
            let shape_of = |r: Reg| regs.get(r).shape().to_vec();
            match pick {
                RandomPick::Split(n, i) => {
                    let keys = random::split(&key, usize::from(n))?;
                    let i = isize::from(i) % isize::from(n);
                    regs.keys.push(keys.index_axis(0, i)?);
                    return Ok(());
                }
                RandomPick::FoldIn(data) => {
                    regs.keys.push(random::fold_in(&key, data)?);
                    return Ok(());
                }
                RandomPick::Bits(r) => random::bits(&key, &shape_of(r))?,
                RandomPick::Uniform(r) => random::uniform(&key, &shape_of(r))?,
                RandomPick::Normal(r) => random::normal(&key, &shape_of(r))?,
                RandomPick::Randint(r) => random::randint(&key, &shape_of(r), -3, 5)?,
                RandomPick::Bernoulli(r) => random::bernoulli(&key, 0.3, &shape_of(r))?,
                RandomPick::SeedsFoldInEach(r) => {
                    let seeds = (numeric(regs.get(r))? * 8)?.astype(DType::I32)?;
                    let keys = random::key_from_seeds(&seeds)?;
                    let data = random::bits(&key, seeds.shape())?;
                    let keys = random::fold_in_each(&keys, &data)?;
                    if keys.size() == 0 {
                        random::uniform(&key, seeds.shape())?
                    } else {
                        let first = keys.reshape(&[-1])?.index_axis(0, 0)?;
                        regs.keys.push(first.clone());
                        random::uniform(&first, seeds.shape())?
                    }
                }
            }
        }
    };
    regs.values.push(value);
    Ok(())
}

/// `value` adapted to a Variable's shape and dtype.
fn fit(value: &Tensor, var: &Variable) -> Result<Tensor> {
    let target = var.value();
    if target.dtype() == DType::Key {
        return random::fold_in_each(&target, &Tensor::scalar(1u32));
    }
    let mut v = numeric(value)?;
    if v.shape() != target.shape() {
        v = v.sum(Axes::All)?.broadcast_to(target.shape())?;
    }
    if v.dtype() != target.dtype() {
        v = v.astype(target.dtype())?;
    }
    Ok(v)
}

/// Runs a body whose registers start as the Variables' values and then `inputs` in reverse
/// (so `inputs[0]` is the most recent register, operand 0).
fn run_body(body: &Body, m: &Object, inputs: &[Tensor]) -> Result<Tensor> {
    let vars = handles(m)?;
    let mut regs = Regs {
        values: Vec::new(),
        keys: Vec::new(),
    };
    for v in &vars {
        let value = v.value();
        if value.dtype() == DType::Key {
            regs.keys.push(value);
        } else {
            regs.values.push(value);
        }
    }
    regs.values.extend(inputs.iter().rev().cloned());
    let start = regs.values.len();
    for op in &body.ops {
        run_op(op, &mut regs)?;
    }
    // Every result is observed: the output is the chosen register followed by everything
    // the body computed, flattened and concatenated.
    let mut observed = vec![numeric(regs.get(body.out))?];
    if regs.values.len() > start {
        observed[0] = as_float(&observed[0])?.reshape(&[-1])?;
        for r in &regs.values[start..] {
            observed.push(as_float(&numeric(r)?)?.reshape(&[-1])?);
        }
    }
    for update in &body.updates {
        let var = &vars[usize::from(update.var) % vars.len()];
        let new = match update.src {
            Src::Reg(r) => fit(regs.get(r), var)?,
            Src::Own => {
                let own = var.value();
                match own.dtype() {
                    DType::Key => random::fold_in_each(&own, &Tensor::scalar(1u32))?,
                    DType::F32 => ((&own * 0.5)? + 1.0)?,
                    _ => (&own + 1)?,
                }
            }
        };
        var.set_value(new)?;
    }
    if let Some(r) = body.add_param {
        m.set("extra", Param::new(regs.get(r).clone()))?;
    }
    if observed.len() == 1 {
        return Ok(observed.swap_remove(0));
    }
    Tensor::concatenate(&observed, 0)
}
