//! Derivative rules of first-order primitives, shared by reverse mode
//! ([`autodiff`](super::autodiff)) and forward mode ([`forward`](super::forward)): each
//! primitive's vector-Jacobian product, and the slopes both modes multiply by (elementwise
//! functions, `maximum`/`minimum` and their ties, max/min reductions). They are tensor
//! operations, so they record into the enclosing trace.

use crate::error::{Error, Result};
use crate::program::Primitive;
use crate::shard::{self, CollectiveOp};
use crate::tensor::elementwise::{BinaryOp, CompareOp, UnaryOp};
use crate::tensor::{DType, ReduceOp, Tensor};

/// Whether a value of `dtype` takes a derivative (float32).
pub(super) fn differentiable(dtype: DType) -> bool {
    dtype == DType::F32
}

/// Sums `g` down to `shape` (the inverse of numpy broadcasting).
fn unbroadcast(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let extra = g.ndim() - shape.len();
    let mut axes: Vec<isize> = (0..extra as isize).collect();
    for (i, &d) in shape.iter().enumerate() {
        if d == 1 && g.shape()[extra + i] != 1 {
            axes.push((extra + i) as isize);
        }
    }
    let summed = if axes.is_empty() {
        g.clone()
    } else {
        g.sum(axes)?
    };
    let dims: Vec<isize> = shape.iter().map(|&d| d as isize).collect();
    summed.reshape(&dims)
}

/// The slopes of `maximum(a, b)` or `minimum(a, b)` (result `y`) with respect to each
/// operand. Against a constant zero — `relu(x) = maximum(x, 0)` — as `jax.nn.relu`: 1 where
/// `x > 0` (`< 0` for `minimum`), 0 elsewhere, the tie included (one compare-and-select,
/// which the fast engine fuses). Otherwise JAX's balanced rule for `jnp.maximum`: 1 for
/// the operand the result equals, ½ each on a tie (the central difference there).
pub(super) enum ExtremumSlopes {
    /// Against a constant zero: the mask `x op 0`.
    Relu(CompareOp),
    /// The weight of each operand.
    Balanced(Tensor, Tensor),
}

impl ExtremumSlopes {
    pub(super) fn of(op: BinaryOp, a: &Tensor, b: &Tensor, y: &Tensor) -> Result<Self> {
        let zero = !b.is_traced()
            && b.ndim() == 0
            && b.astype(DType::F32).and_then(|z| z.item::<f32>()).ok() == Some(0.0);
        if zero {
            let cmp = match op {
                BinaryOp::Minimum => CompareOp::Lt,
                _ => CompareOp::Gt,
            };
            return Ok(ExtremumSlopes::Relu(cmp));
        }
        let hits_a = a.equal(y)?.astype(DType::F32)?;
        let hits_b = b.equal(y)?.astype(DType::F32)?;
        let wa = hits_a.div(&(&hits_b + 1.0f32)?)?;
        let wb = hits_b.div(&(&hits_a + 1.0f32)?)?;
        Ok(ExtremumSlopes::Balanced(wa, wb))
    }

    /// `t` times operand `i`'s slope, given the result `y`; `None` for the constant zero,
    /// which has no derivative. relu's mask reads its result (`y > 0` exactly where
    /// `x > 0`), so a backward pass that has the result needs nothing before it.
    pub(super) fn chain(&self, i: usize, y: &Tensor, t: &Tensor) -> Result<Option<Tensor>> {
        match (self, i) {
            (ExtremumSlopes::Relu(cmp), 0) => {
                let mask = y.compare(*cmp, &Tensor::from(0.0f32))?;
                mask.select(t, &Tensor::from(0.0f32)).map(Some)
            }
            (ExtremumSlopes::Relu(_), _) => Ok(None),
            (ExtremumSlopes::Balanced(wa, _), 0) => t.mul(wa).map(Some),
            (ExtremumSlopes::Balanced(_, wb), _) => t.mul(wb).map(Some),
        }
    }
}

/// `t` times the derivative of the elementwise function `op` at `a` (where it gave `y`):
/// its JVP and its VJP alike. The slope of `|a|` at 0 is 1, as in JAX.
pub(super) fn unary_chain(op: UnaryOp, a: &Tensor, y: &Tensor, t: &Tensor) -> Result<Tensor> {
    match op {
        UnaryOp::Neg => t.unary(UnaryOp::Neg),
        UnaryOp::Abs => {
            let nonnegative = a.compare(CompareOp::Ge, &Tensor::from(0.0f32))?;
            t.mul(&nonnegative.select(&Tensor::from(1.0f32), &Tensor::from(-1.0f32))?)
        }
        UnaryOp::Exp => t.mul(y),
        UnaryOp::Log => t.div(a),
        UnaryOp::Sqrt => t.div(&(y * 2.0f32)?),
        UnaryOp::Tanh => t.mul(&(1.0f32 - y.mul(y)?)?),
        UnaryOp::Sin => t.mul(&a.unary(UnaryOp::Cos)?),
        UnaryOp::Cos => t.mul(&a.unary(UnaryOp::Sin)?)?.unary(UnaryOp::Neg),
        UnaryOp::Logistic => t.mul(y)?.mul(&(1.0f32 - y)?),
        UnaryOp::Erf => {
            let slope = (a.mul(a)?.unary(UnaryOp::Neg)?.unary(UnaryOp::Exp)?
                * std::f32::consts::FRAC_2_SQRT_PI)?;
            t.mul(&slope)
        }
    }
}

/// How much of a max or min reduction over `axes` of `a` (which gave `y`) follows each
/// element: the elements that attain it share it equally (JAX's rule), the others get 0.
pub(super) fn extremum_shares(
    a: &Tensor,
    y: &Tensor,
    axes: &[usize],
    keepdims: bool,
) -> Result<Tensor> {
    let hits = a
        .equal(&reinsert_axes(y, axes, keepdims)?)?
        .astype(DType::F32)?;
    let axes: Vec<isize> = axes.iter().map(|&i| i as isize).collect();
    let counts = hits.reduce(ReduceOp::Sum, axes, true)?;
    hits.div(&counts)
}

/// The result of a reduction over `axes` with those axes back as size 1 (unless they were
/// kept), so that it broadcasts against the reduced operand.
fn reinsert_axes(t: &Tensor, axes: &[usize], keepdims: bool) -> Result<Tensor> {
    if keepdims {
        return Ok(t.clone());
    }
    let mut sorted = axes.to_vec();
    sorted.sort_unstable();
    sorted
        .iter()
        .try_fold(t.clone(), |t, &axis| t.expand_dims(axis as isize))
}

/// Zeros with `like`'s shape, float32.
pub(super) fn zeros_like(like: &Tensor) -> Tensor {
    Tensor::zeros(like.shape())
}

/// The vector-Jacobian product of a first-order primitive `y = p(x)`: the cotangent of each
/// operand given the cotangent `g0` of its output; `needed` says which operands take one
/// (a rule may skip the others).
pub(super) fn first_order_vjp(
    p: &Primitive,
    x: &[Tensor],
    y: &Tensor,
    g0: Tensor,
    needed: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let unb = |t: Tensor, like: &Tensor| unbroadcast(&t, like.shape()).map(Some);
    Ok(match p {
        Primitive::Binary(op) => {
            let (a, b) = (&x[0], &x[1]);
            match op {
                BinaryOp::Add => vec![unb(g0.clone(), a)?, unb(g0, b)?],
                BinaryOp::Sub => vec![unb(g0.clone(), a)?, unb(g0.unary(UnaryOp::Neg)?, b)?],
                BinaryOp::Mul => vec![unb(g0.mul(b)?, a)?, unb(g0.mul(a)?, b)?],
                BinaryOp::Div => {
                    let ga = g0.div(b)?;
                    let gb = g0.mul(y)?.div(b)?.unary(UnaryOp::Neg)?;
                    vec![unb(ga, a)?, unb(gb, b)?]
                }
                BinaryOp::Pow => {
                    let ga = g0.mul(b)?.mul(&a.pow(&b.sub(&Tensor::from(1.0f32))?)?)?;
                    let gb = g0.mul(y)?.mul(&a.log()?)?;
                    vec![unb(ga, a)?, unb(gb, b)?]
                }
                BinaryOp::Maximum | BinaryOp::Minimum => {
                    let slopes = ExtremumSlopes::of(*op, a, b, y)?;
                    let (ga, gb) = (slopes.chain(0, y, &g0)?, slopes.chain(1, y, &g0)?);
                    vec![
                        ga.map(|g| unbroadcast(&g, a.shape())).transpose()?,
                        gb.map(|g| unbroadcast(&g, b.shape())).transpose()?,
                    ]
                }
            }
        }
        Primitive::Unary(op) => vec![Some(unary_chain(*op, &x[0], y, &g0)?)],
        Primitive::Compare(_) => vec![None, None],
        Primitive::Select => {
            let c = &x[0];
            let zero = Tensor::from(0.0f32);
            vec![
                None,
                unb(c.select(&g0, &zero)?, &x[1])?,
                unb(c.select(&zero, &g0)?, &x[2])?,
            ]
        }
        Primitive::Matmul => matmul_vjp(&x[0], &x[1], &g0, needed)?,
        Primitive::Reduce { op, axes, keepdims } => {
            let a = &x[0];
            let spread = reinsert_axes(&g0, axes, *keepdims)?.broadcast_to(a.shape())?;
            let ga = match op {
                ReduceOp::Sum => spread,
                ReduceOp::Mean => {
                    let count: usize = axes.iter().map(|&i| a.shape()[i]).product();
                    (spread / count.max(1) as f32)?
                }
                ReduceOp::Max | ReduceOp::Min => {
                    spread.mul(&extremum_shares(a, y, axes, *keepdims)?)?
                }
            };
            vec![Some(ga)]
        }
        Primitive::Reshape { .. } | Primitive::Squeeze { .. } | Primitive::ExpandDims { .. } => {
            let dims: Vec<isize> = x[0].shape().iter().map(|&d| d as isize).collect();
            vec![Some(g0.reshape(&dims)?)]
        }
        Primitive::Transpose { perm } => {
            let mut inverse = vec![0isize; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i as isize;
            }
            vec![Some(g0.permute_axes(&inverse)?)]
        }
        Primitive::BroadcastTo { .. } => vec![unb(g0, &x[0])?],
        // Scatter-adds into zeros: the operand's gradient is zero outside the slice.
        Primitive::IndexAxis { axis, index } => {
            let (g, n) = (g0.expand_dims(*axis as isize)?, x[0].shape()[*axis]);
            vec![Some(g.pad_axis(*axis as isize, *index, n - index - 1)?)]
        }
        Primitive::SliceAxis { axis, start, end } => {
            let n = x[0].shape()[*axis];
            vec![Some(g0.pad_axis(*axis as isize, *start, n - end)?)]
        }
        Primitive::Pad { axis, before, .. } => {
            let n = x[0].shape()[*axis];
            vec![Some(g0.slice_axis(*axis as isize, *before..before + n)?)]
        }
        // A running sum's cotangent is the running sum of the cotangent the other way.
        Primitive::Cumsum { axis, reverse } => {
            vec![Some(g0.cumsum(*axis as isize, !reverse)?)]
        }
        Primitive::ArgReduce { .. } => vec![None],
        Primitive::QrQ => vec![Some(super::linalg_rules::qr_q_vjp(&x[0], y, &g0)?)],
        Primitive::TriangularSolve(spec) => {
            super::linalg_rules::triangular_solve_vjp(*spec, x, y, &g0, needed)?
        }
        Primitive::Patches { windows } => {
            let first = x[0].ndim() - 1 - windows.rank();
            let spatial = &x[0].shape()[first..x[0].ndim() - 1];
            vec![Some(g0.patches_transpose(windows, spatial)?)]
        }
        Primitive::PatchesTranspose { windows, .. } => vec![Some(g0.patches(windows)?)],
        // A gather's cotangent is scattered back; indices take none.
        Primitive::Take { axis, .. } => {
            let size = x[0].shape()[*axis];
            vec![Some(g0.take_transpose(&x[1], *axis, size)?), None]
        }
        Primitive::TakeTranspose { axis, .. } => {
            vec![Some(g0.take_with(&x[1], *axis as isize, false)?), None]
        }
        // The slice's cotangent written into zeros; the overwritten entries' cotangent is
        // zero, the update's is the slice of the cotangent it was written to.
        Primitive::DynamicSlice { axis, .. } => {
            let zeros = zeros_like(&x[0]);
            let g = zeros.dynamic_update_slice_in_dim(&g0, &x[1], *axis as isize)?;
            vec![Some(g), None]
        }
        Primitive::DynamicUpdateSlice { axis } => {
            let a = *axis as isize;
            let size = x[1].shape()[*axis];
            let operand = g0.dynamic_update_slice_in_dim(&zeros_like(&x[1]), &x[2], a)?;
            let update = g0.dynamic_slice_in_dim(&x[2], size, a)?;
            vec![Some(operand), Some(update), None]
        }
        Primitive::Concatenate { axis } => {
            let mut offset = 0;
            x.iter()
                .map(|xi| {
                    let len = xi.shape()[*axis];
                    let piece = g0.slice_axis(*axis as isize, offset..offset + len)?;
                    offset += len;
                    Ok(Some(piece))
                })
                .collect::<Result<_>>()?
        }
        Primitive::Stack { axis } => (0..x.len())
            .map(|i| g0.index_axis(*axis as isize, i as isize).map(Some))
            .collect::<Result<_>>()?,
        Primitive::Astype { .. } => {
            if differentiable(x[0].dtype()) {
                vec![Some(g0.astype(x[0].dtype())?)]
            } else {
                vec![None]
            }
        }
        Primitive::StopGradient
        | Primitive::Random(_)
        | Primitive::FoldInEach
        | Primitive::SeedKeys => vec![None; x.len()],
        Primitive::Collective(op) => collective_vjp(op, x, y, g0)?,
        Primitive::ShardMap { .. } => return Err(no_derivative(p)),
        Primitive::Call { .. }
        | Primitive::Remat { .. }
        | Primitive::CustomVjp { .. }
        | Primitive::Vmap { .. }
        | Primitive::Scan { .. }
        | Primitive::Cond { .. }
        | Primitive::While { .. } => {
            // The tape inlines calls; loops and checkpoints are handled above.
            return Err(Error::internal(format!(
                "{} reached the backward pass without being inlined",
                p.name()
            )));
        }
    })
}

/// The cotangents of a collective's operand: each linear collective's transpose (`psum`'s
/// is `psum`, `all_gather`'s is `psum_scatter` and back, `ppermute`'s the inverse
/// permutation), and for `pmax` the summed cotangent shared by the devices that attain the
/// maximum.
fn collective_vjp(
    op: &CollectiveOp,
    x: &[Tensor],
    y: &Tensor,
    g0: Tensor,
) -> Result<Vec<Option<Tensor>>> {
    let axes = op.axes();
    Ok(vec![Some(match op {
        CollectiveOp::AxisIndex { .. } => return Ok(Vec::new()),
        CollectiveOp::Psum { .. } => shard::psum(&g0, axes)?,
        CollectiveOp::Pmean { .. } => shard::pmean(&g0, axes)?,
        CollectiveOp::Pmax { .. } => {
            let (shares, _) = pmax_shares(&x[0], y, axes)?;
            shard::psum(&g0, axes)?.mul(&shares)?
        }
        CollectiveOp::AllGather { dim, tiled, .. } => shard::psum_scatter(&g0, axes, *dim, *tiled)?,
        CollectiveOp::PsumScatter { dim, tiled, .. } => shard::all_gather(&g0, axes, *dim, *tiled)?,
        CollectiveOp::Ppermute { perm, .. } => {
            let inverse: Vec<(usize, usize)> = perm.iter().map(|&(a, b)| (b, a)).collect();
            shard::ppermute(&g0, axes, &inverse)?
        }
    })])
}

/// The share of `pmax`'s result `y` each device's `x` gets: 1/k on the k devices that
/// attain the maximum, 0 elsewhere (as the VJP of `max` shares a tie); and the mask.
pub(super) fn pmax_shares(x: &Tensor, y: &Tensor, axes: &[String]) -> Result<(Tensor, Tensor)> {
    let mask = x.compare(CompareOp::Eq, y)?.astype(DType::F32)?;
    let count = shard::psum(&mask, axes)?;
    Ok((mask.div(&count)?, mask))
}

/// The error for a derivative through a primitive that has no derivative rule.
pub(super) fn no_derivative(p: &Primitive) -> Error {
    Error::NoDerivativeRule {
        primitive: p.name(),
    }
}

/// Cotangents of `a @ b` (numpy semantics, including 1-D operands and batch broadcasting),
/// each computed only when `needed`.
fn matmul_vjp(a: &Tensor, b: &Tensor, g: &Tensor, needed: &[bool]) -> Result<Vec<Option<Tensor>>> {
    let a2 = if a.ndim() == 1 {
        a.expand_dims(0)?
    } else {
        a.clone()
    };
    let b2 = if b.ndim() == 1 {
        b.expand_dims(-1)?
    } else {
        b.clone()
    };
    let mut g2 = g.clone();
    if a.ndim() == 1 {
        g2 = g2.expand_dims(if b.ndim() == 1 { 0 } else { -2 })?;
    }
    if b.ndim() == 1 {
        g2 = g2.expand_dims(-1)?;
    }
    let swap = |t: &Tensor| t.moveaxis(-1, -2);
    let want = |k: usize| needed.get(k).copied().unwrap_or(true);
    let ga = match want(0) {
        true => Some(unbroadcast(&g2.matmul(&swap(&b2)?)?, a2.shape())?.reshape(&dims(a))?),
        false => None,
    };
    let gb = match want(1) {
        // A matrix `b` (a dense layer's kernel, a convolution's kernel over patches): every
        // leading axis of `a` is a row of one product, `aᵀ · g` over the rows flattened
        // (JAX's `dot_general` transpose), instead of a batch of products summed after.
        true if b2.ndim() == 2 && a2.ndim() > 2 => {
            let (k, n) = (b2.shape()[0] as isize, b2.shape()[1] as isize);
            // The row count spelled out: `-1` is ambiguous for empty arrays.
            let m = a2.shape()[..a2.ndim() - 1].iter().product::<usize>() as isize;
            let rows = a2.reshape(&[m, k])?;
            Some(
                rows.transpose()?
                    .matmul(&g2.reshape(&[m, n])?)?
                    .reshape(&dims(b))?,
            )
        }
        true => Some(unbroadcast(&swap(&a2)?.matmul(&g2)?, b2.shape())?.reshape(&dims(b))?),
        false => None,
    };
    Ok(vec![ga, gb])
}

fn dims(t: &Tensor) -> Vec<isize> {
    t.shape().iter().map(|&d| d as isize).collect()
}
