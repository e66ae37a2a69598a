//! Running one [`Body`] as user code: operations on a register file holding the input and
//! every Variable's value, then the Variable updates and the new attribute.

use nnx_core::random;
use nnx_core::tensor::elementwise::{BinaryOp, UnaryOp};
use nnx_core::tensor::{TriangularSolve, Windows};
use nnx_core::{Axes, DType, Object, Param, Result, Tensor, Value, Variable};

use super::{AxesPick, Body, MatmulForm, Op, RandomPick, Reg, Src};

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

    /// Key register `r`, if there is any key (a model whose key Variables were all removed
    /// by an earlier transform level has none).
    fn key(&self, r: Reg) -> Option<&Tensor> {
        let n = self.keys.len();
        (n > 0).then(|| &self.keys[n - 1 - usize::from(r) % n])
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

/// A scalar as a one-element vector; anything else as it is.
fn at_least_1d(t: &Tensor) -> Result<Tensor> {
    match t.ndim() {
        0 => t.reshape(&[1]),
        _ => Ok(t.clone()),
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

thread_local! {
    /// Whether [`snap`] is the identity on this thread (see [`with_smooth_products`]).
    static SMOOTH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with matrix products' operands only clamped, not snapped to the 1/8 grid: the
/// programs are then differentiable through their products (engines may then disagree in
/// the last bits, which derivative checks tolerate).
pub fn with_smooth_products<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SMOOTH.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SMOOTH.with(|s| s.replace(true)));
    f()
}

/// Clamps to [-16, 16] and rounds toward zero to a multiple of 1/8, so that products of
/// snapped values are exact in float32 (only clamps inside [`with_smooth_products`]).
fn snap(t: &Tensor) -> Result<Tensor> {
    let t = as_float(t)?
        .maximum(&Tensor::weak_scalar(-16.0f32))?
        .minimum(&Tensor::weak_scalar(16.0f32))?;
    if SMOOTH.with(std::cell::Cell::get) {
        return Ok(t);
    }
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
pub(super) fn pick_axis(a: i8, n: usize) -> Option<isize> {
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

/// `tanh(x) + 3` on the diagonal of each matrix (the last two axes): every square block
/// strictly diagonally dominant for the generator's small matrices, so triangular solves
/// and QRs of it are well conditioned, and smooth in `x`.
fn well_conditioned(x: &Tensor) -> Result<Tensor> {
    let [.., rows, cols] = *x.shape() else {
        return Err(nnx_core::Error::shape("well_conditioned", "takes matrices"));
    };
    let diagonal = (0..rows * cols)
        .map(|e| if e / cols == e % cols { 3.0f32 } else { 0.0 })
        .collect();
    x.tanh()?.add(&Tensor::from_vec(&[rows, cols], diagonal)?)
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
        Op::Pad(i, before, after, a) => {
            let x = at_least_1d(regs.get(a))?;
            let axis = pick_axis(i, x.ndim()).unwrap_or(0);
            x.pad_axis(axis, usize::from(before), usize::from(after))?
        }
        Op::Concatenate(i, a, b) => {
            let x = at_least_1d(&numeric(regs.get(a))?)?;
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
        Op::Take(i, out_of_range, a, b) => {
            let table = at_least_1d(regs.get(a))?;
            let axis = pick_axis(i, table.ndim()).unwrap_or(0);
            let n = table.shape()[axis.rem_euclid(table.ndim() as isize) as usize] as i32;
            let picks = numeric(regs.get(b))?;
            let shift = if out_of_range { n + 1 } else { 0 };
            let pattern: Vec<i32> = (0..picks.size() as i32)
                .map(|k| (k * 5) % n.max(1) - 1 + shift)
                .collect();
            let indices = (Tensor::from_vec(picks.shape(), pattern)?
                + picks
                    .greater(&Tensor::weak_scalar(0i32))?
                    .astype(DType::I32)?)?;
            table.take(&indices, axis)?
        }
        Op::DynamicSlice(i, size, a, b) | Op::DynamicUpdate(i, size, a, b) => {
            let x = at_least_1d(regs.get(a))?;
            let axis = pick_axis(i, x.ndim()).unwrap_or(0);
            let n = x.shape()[axis.rem_euclid(x.ndim() as isize) as usize];
            let size = usize::from(size).min(n);
            let positive = numeric(regs.get(b))?
                .sum(None)?
                .greater(&Tensor::weak_scalar(0i32))?;
            let start = positive.select(&Tensor::scalar(-1i32), &Tensor::scalar(1i32))?;
            if matches!(op, Op::DynamicSlice(..)) {
                x.dynamic_slice_in_dim(&start, size, axis)?
            } else {
                let mut shape = x.shape().to_vec();
                shape[axis.rem_euclid(x.ndim() as isize) as usize] = size;
                let update = to_shape(&numeric(regs.get(b))?, &shape)?.astype(x.dtype())?;
                x.dynamic_update_slice_in_dim(&update, &start, axis)?
            }
        }
        Op::QrQ(conditioned, a) => {
            let x = as_float(&numeric(regs.get(a))?)?;
            let x = match x.ndim() {
                0 => x.reshape(&[1, 1])?,
                1 => x.expand_dims(-1)?,
                _ => x,
            };
            let (rows, cols) = (x.shape()[x.ndim() - 2], x.shape()[x.ndim() - 1]);
            let x = if rows < cols { x.moveaxis(-1, -2)? } else { x };
            match conditioned {
                true => well_conditioned(&x)?.qr_q()?,
                false => x.stop_gradient()?.qr_q()?,
            }
        }
        Op::TriangularSolve([left_side, lower, transpose_a, unit_diagonal], a, b) => {
            let spec = TriangularSolve {
                left_side,
                lower,
                transpose_a,
                unit_diagonal,
            };
            let b = at_least_1d(&as_float(&numeric(regs.get(b))?)?)?;
            let (batch, m) = match (b.ndim(), left_side) {
                (1, _) => (0, b.shape()[0]),
                (n, true) => (n - 2, b.shape()[n - 2]),
                (n, false) => (n - 2, b.shape()[n - 1]),
            };
            let mut shape = b.shape()[..batch].to_vec();
            shape.extend([m, m]);
            let a = to_shape(&as_float(&numeric(regs.get(a))?)?, &shape)?;
            well_conditioned(&a)?.triangular_solve(&b, spec)?
        }
        Op::Cumsum(i, reverse, a) => {
            let x = at_least_1d(&numeric(regs.get(a))?)?;
            x.cumsum(pick_axis(i, x.ndim()).unwrap_or(0), reverse)?
        }
        Op::Arg(max, i, a) => {
            let x = at_least_1d(&numeric(regs.get(a))?)?;
            let axis = pick_axis(i, x.ndim()).unwrap_or(0);
            if max {
                x.argmax(axis)?
            } else {
                x.argmin(axis)?
            }
        }
        Op::Patches(bytes, two, transpose, a) => {
            let x = numeric(regs.get(a))?;
            let rank = if two && x.ndim() >= 3 { 2 } else { 1 };
            let x = match x.ndim() {
                0 => x.reshape(&[1, 1])?,
                1 => x.expand_dims(-1)?,
                _ => x,
            };
            let pick = |b: u8, n: u8| usize::from(b % n);
            let windows = Windows::new(
                &vec![1 + pick(bytes[0], 2); rank],
                &vec![1 + pick(bytes[1], 2); rank],
                &vec![(pick(bytes[2], 2), pick(bytes[3], 3)); rank],
                &vec![1 + pick(bytes[4], 2); rank],
                &vec![1 + pick(bytes[5], 2); rank],
            )?;
            let p = x.patches(&windows)?;
            if transpose {
                let spatial = &x.shape()[x.ndim() - 1 - rank..x.ndim() - 1];
                p.patches_transpose(&windows, spatial)?
            } else {
                p
            }
        }
        Op::Astype(d, a) => regs.get(a).astype(d)?,
        Op::StopGradient(a) => regs.get(a).stop_gradient()?,
        Op::Random(pick, k) => {
            // A Variable's key seen outside the vmap that maps it is a key array: use its
            // first key (or a fresh one if it is empty, or if there is no key at all).
            let key = match regs.key(k) {
                Some(k) if k.ndim() == 0 => k.clone(),
                Some(k) if k.size() > 0 => k.reshape(&[-1])?.index_axis(0, 0)?,
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
                RandomPick::Bits(r) => random::bits(&key, shape_of(r))?,
                RandomPick::Uniform(r) => random::uniform(&key, shape_of(r))?,
                RandomPick::Normal(r) => random::normal(&key, shape_of(r))?,
                RandomPick::TruncatedNormal(r) => {
                    random::truncated_normal(&key, -1.5, 2.0, shape_of(r))?
                }
                RandomPick::Randint(r) => random::randint(&key, shape_of(r), -3, 5)?,
                RandomPick::Bernoulli(r) => random::bernoulli(&key, 0.3, shape_of(r))?,
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
pub(super) fn run_body(body: &Body, m: &Object, inputs: &[Tensor]) -> Result<Tensor> {
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
