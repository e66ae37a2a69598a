//! Fast kernels for the float32 operations around the GEMMs: comparisons and `select` (the
//! relu mask of a backward pass), sums and means over leading or trailing axes (bias
//! gradients, losses). Each is one contiguous or blocked pass into a pooled buffer. Every
//! kernel computes exactly what the reference computes, in the same order (results are
//! identical); an operand outside a kernel's form falls back to the reference. Layout
//! changes (transposes, broadcasts, slices, a layer out of stacked weights) need no kernel:
//! they are views ([`nnx_core::tensor`]'s `view`), which copy nothing.

use std::sync::Arc;

use nnx_core::program::{AbstractValue, Atom, Equation, Primitive, Program, ProgramRef, VarId};
use nnx_core::tensor::ReduceOp;
use nnx_core::tensor::elementwise::CompareOp;
use nnx_core::tensor::{Windows, pool};

use crate::fuse::{Dataflow, rewritten};
use crate::{along, parallel, solve};
use nnx_core::{Array, DType, Result};

/// The fast kernel for `primitive` on `args`, or `None` when it has none for these operands.
pub(crate) fn eval(primitive: &Primitive, args: &[Array]) -> Option<Result<Array>> {
    match (primitive, args) {
        (Primitive::Compare(op), [a, b]) => compare(*op, a, b),
        (Primitive::Select, [c, t, f]) => select(c, t, f),
        (Primitive::Reduce { op, axes, keepdims }, [x]) => reduce(*op, axes, *keepdims, x),
        (
            Primitive::Pad {
                axis,
                before,
                after,
            },
            [x],
        ) => pad(*axis, *before, *after, x),
        (Primitive::Patches { windows }, [x]) => patches(windows, x),
        (Primitive::PatchesTranspose { windows, spatial }, [x]) => {
            patches_transpose(windows, spatial, x)
        }
        (Primitive::Take { axis, fill }, [table, indices]) => {
            along::take(*axis, *fill, table, indices)
        }
        (Primitive::TakeTranspose { axis, size }, [cotangent, indices]) => {
            along::take_transpose(*axis, *size, cotangent, indices)
        }
        (Primitive::Cumsum { axis, reverse }, [x]) => along::cumsum(*axis, *reverse, x),
        (Primitive::ArgReduce { op, axis }, [x]) => along::arg_reduce(*op, *axis, x),
        (Primitive::DynamicUpdateSlice { axis }, [operand, update, start]) => {
            along::dynamic_update_slice(*axis, operand, update, start)
        }
        (Primitive::TriangularSolve(spec), [a, b]) => solve::triangular_solve(*spec, a, b),
        _ => None,
    }
}

/// A strongly typed float32 operand's elements.
fn strong_f32(x: &Array) -> Option<&[f32]> {
    if x.is_weak() {
        return None;
    }
    x.as_slice::<f32>().ok()
}

/// The one value of a scalar operand that promotes to float32 against a float32 array
/// (a float32 scalar, or a weak integer literal).
pub(crate) fn scalar_f32(x: &Array) -> Option<f32> {
    if x.shape().iter().product::<usize>() != 1 {
        return None;
    }
    match x.dtype() {
        DType::F32 => x.as_slice::<f32>().ok()?.first().copied(),
        DType::I32 if x.is_weak() => x.as_slice::<i32>().ok()?.first().map(|&v| v as f32),
        _ => None,
    }
}

/// The operands of a comparison `a op b`: `a` a float32 array, `b` of its shape or a scalar
/// (one value).
fn comparands<'a>(a: &'a Array, b: &'a Array) -> Option<(&'a [f32], std::borrow::Cow<'a, [f32]>)> {
    let x = strong_f32(a)?;
    let y = if b.shape() == a.shape() && b.dtype() == DType::F32 {
        std::borrow::Cow::Borrowed(b.as_slice::<f32>().ok()?)
    } else if b.ndim() <= a.ndim() {
        std::borrow::Cow::Owned(vec![scalar_f32(b)?])
    } else {
        return None;
    };
    Some((x, y))
}

/// `out[i] = x[i] op y[i]` (`y` of one value: the same for every `i`), one loop per
/// comparison so that each vectorises.
fn compare_into(op: CompareOp, out: &mut [bool], x: &[f32], y: &[f32]) {
    macro_rules! each {
        ($f:expr) => {{
            let f = $f;
            match y {
                [q] => out.iter_mut().zip(x).for_each(|(o, &p)| *o = f(p, *q)),
                y => {
                    for ((o, &p), &q) in out.iter_mut().zip(x).zip(y) {
                        *o = f(p, q);
                    }
                }
            }
        }};
    }
    match op {
        CompareOp::Eq => each!(|p: f32, q: f32| p == q),
        CompareOp::Ne => each!(|p: f32, q: f32| p != q),
        CompareOp::Lt => each!(|p: f32, q: f32| p < q),
        CompareOp::Le => each!(|p: f32, q: f32| p <= q),
        CompareOp::Gt => each!(|p: f32, q: f32| p > q),
        CompareOp::Ge => each!(|p: f32, q: f32| p >= q),
    }
}

/// `a op b` for a float32 array `a` and `b` of its shape or a scalar: a bool array.
fn compare(op: CompareOp, a: &Array, b: &Array) -> Option<Result<Array>> {
    let (x, y) = comparands(a, b)?;
    let mut out = vec![false; x.len()];
    compare_into(op, &mut out, x, &y);
    Some(Array::from_vec(a.shape(), out))
}

/// One branch of a `select`: a float32 array of the condition's shape, or a scalar.
#[derive(Clone, Copy)]
enum Branch<'a> {
    Full(&'a [f32]),
    Scalar(f32),
}

impl Branch<'_> {
    fn of<'a>(x: &'a Array, shape: &[usize]) -> Option<Branch<'a>> {
        if x.dtype() != DType::F32 {
            return None;
        }
        if x.shape() == shape {
            return x.as_slice::<f32>().ok().map(Branch::Full);
        }
        if x.ndim() <= shape.len() {
            return scalar_f32(x).map(Branch::Scalar);
        }
        None
    }

    /// The elements `at` of a full branch (a scalar stays itself).
    fn range(self, at: std::ops::Range<usize>) -> Self {
        match self {
            Branch::Full(x) => Branch::Full(&x[at]),
            scalar => scalar,
        }
    }
}

/// `out[i] = if cond[i] { t[i] } else { f[i] }`.
fn select_into(out: &mut [f32], cond: &[bool], on_true: Branch<'_>, on_false: Branch<'_>) {
    match (on_true, on_false) {
        (Branch::Full(t), Branch::Scalar(q)) => {
            for ((o, &c), &p) in out.iter_mut().zip(cond).zip(t) {
                *o = if c { p } else { q };
            }
        }
        (Branch::Scalar(p), Branch::Full(f)) => {
            for ((o, &c), &q) in out.iter_mut().zip(cond).zip(f) {
                *o = if c { p } else { q };
            }
        }
        (Branch::Full(t), Branch::Full(f)) => {
            for (((o, &c), &p), &q) in out.iter_mut().zip(cond).zip(t).zip(f) {
                *o = if c { p } else { q };
            }
        }
        (Branch::Scalar(p), Branch::Scalar(q)) => {
            for (o, &c) in out.iter_mut().zip(cond) {
                *o = if c { p } else { q };
            }
        }
    }
}

/// `where(c, t, f)` for a bool condition of the result's shape and float32 branches of that
/// shape or scalars.
fn select(c: &Array, t: &Array, f: &Array) -> Option<Result<Array>> {
    let cond = c.as_slice::<bool>().ok()?;
    let shape = c.shape();
    let (on_true, on_false) = (Branch::of(t, shape)?, Branch::of(f, shape)?);
    let mut out = pool::take(cond.len());
    select_into(&mut out, cond, on_true, on_false);
    Some(Array::from_vec_like(c, out, t.is_weak() && f.is_weak()))
}

/// Elements per block of a masked select: the block's mask stays on the stack.
const MASK_BLOCK: usize = 1024;

/// `where(a op b, t, f)` in one pass (split across threads when large), without the bool array (a backward pass's relu mask,
/// `where(pre == post, g, 0)`): the comparison of a block, then the selection of that block.
/// Operands as [`compare`] and [`select`] take them; the same results.
pub(crate) fn masked_select(op: CompareOp, args: &[Array]) -> Option<Result<Array>> {
    let [a, b, t, f] = args else { return None };
    let (x, y) = comparands(a, b)?;
    let shape = a.shape();
    let (on_true, on_false) = (Branch::of(t, shape)?, Branch::of(f, shape)?);
    let mut out = pool::take(x.len());
    parallel::for_each_chunk(&mut out, MASK_BLOCK, |k, block| {
        let mut mask = [false; MASK_BLOCK];
        let at = k * MASK_BLOCK..k * MASK_BLOCK + block.len();
        let ys = if y.len() == 1 { &y[..] } else { &y[at.clone()] };
        let mask = &mut mask[..block.len()];
        compare_into(op, mask, &x[at.clone()], ys);
        select_into(block, mask, on_true.range(at.clone()), on_false.range(at));
    });
    Some(Array::from_vec(shape, out).map(|r| r.with_weak(t.is_weak() && f.is_weak())))
}

/// `out[i] = if y[i] op against { out[i] } else { otherwise }`, block by block: the mask of
/// [`masked_select`] applied in place (a fused product's epilogue), with the same results.
pub(crate) fn mask_in_place(
    op: CompareOp,
    out: &mut [f32],
    y: &[f32],
    against: f32,
    otherwise: f32,
) {
    let mut mask = [false; MASK_BLOCK];
    for (block, ys) in out.chunks_mut(MASK_BLOCK).zip(y.chunks(MASK_BLOCK)) {
        let mask = &mut mask[..block.len()];
        compare_into(op, mask, ys, &[against]);
        for (o, &c) in block.iter_mut().zip(mask.iter()) {
            *o = if c { *o } else { otherwise };
        }
    }
}

/// `program` with each `select` whose condition is a float32 comparison read by nothing else
/// rewritten as one `call` of the pair, which the plan runs as [`masked_select`]; `None` when
/// there is none.
pub(crate) fn fuse_masks(program: &Program) -> Option<Program> {
    let Dataflow { uses, defined_by } = Dataflow::of(program);
    let mut absorbed = vec![false; program.equations.len()];
    let mut replaced: Vec<Option<Equation>> = vec![None; program.equations.len()];
    for (k, eq) in program.equations.iter().enumerate() {
        let (Primitive::Select, [Atom::Var(c), t, f]) = (&eq.primitive, eq.inputs.as_slice())
        else {
            continue;
        };
        let Some(j) = defined_by[c.0 as usize].filter(|_| uses[c.0 as usize] == 1) else {
            continue;
        };
        let compare = &program.equations[j];
        let (Primitive::Compare(op), [a, b]) = (&compare.primitive, compare.inputs.as_slice())
        else {
            continue;
        };
        if program.aval_of(a).dtype != DType::F32 {
            continue;
        }
        let inputs = vec![a.clone(), b.clone(), t.clone(), f.clone()];
        let mut avals: Vec<AbstractValue> = inputs.iter().map(|x| program.aval_of(x)).collect();
        avals.push(program.avals[c.0 as usize].clone());
        avals.push(program.avals[eq.outputs[0].0 as usize].clone());
        let var = |i: u32| Atom::Var(VarId(i));
        let body = Program::new(
            (0..4).map(VarId).collect(),
            vec![
                Equation {
                    primitive: Primitive::Compare(*op),
                    inputs: vec![var(0), var(1)],
                    outputs: vec![VarId(4)],
                },
                Equation {
                    primitive: Primitive::Select,
                    inputs: vec![var(4), var(2), var(3)],
                    outputs: vec![VarId(5)],
                },
            ],
            vec![var(5)],
            avals,
        );
        absorbed[j] = true;
        replaced[k] = Some(Equation {
            primitive: Primitive::Call {
                program: ProgramRef(Arc::new(body)),
            },
            inputs,
            outputs: eq.outputs.clone(),
        });
    }
    rewritten(program, replaced, &absorbed)
}

/// A float32 array with zeros around it along `axis`: one zeroed buffer from the pool and
/// one copy per block of rows (a slice's gradient, scattered back).
fn pad(axis: usize, before: usize, after: usize, x: &Array) -> Option<Result<Array>> {
    let data = strong_f32(x)?;
    let shape = x.shape();
    let n = *shape.get(axis)?;
    let inner: usize = shape[axis + 1..].iter().product();
    let outer: usize = shape[..axis].iter().product();
    let padded = match nnx_core::tensor::padded_shape(shape, axis, before, after) {
        Ok(padded) => padded,
        Err(e) => return Some(Err(e)),
    };
    let m = padded[axis];
    let mut out = pool::take_zeroed(outer * m * inner);
    if n * inner > 0 {
        for (o, rows) in data.chunks_exact(n * inner).enumerate() {
            let at = (o * m + before) * inner;
            out[at..at + n * inner].copy_from_slice(rows);
        }
    }
    Some(Array::from_vec(&padded, out))
}

/// The im2col of a convolution: every window's rows copied into a pooled buffer (the
/// reference's row map, so the same elements land in the same places), batch entries split
/// across threads.
fn patches(windows: &Windows, x: &Array) -> Option<Result<Array>> {
    let data = strong_f32(x)?;
    let run = || -> Result<Array> {
        let shape = windows.patches_shape(x.shape())?;
        nnx_core::tensor::check_allocation(&shape, DType::F32)?;
        let rows = windows.rows(x.shape())?;
        // Every element is written (padding rows with zeros), batch entries side by side.
        let mut out = pool::take(rows.patch_len());
        parallel::for_each_chunk(&mut out, rows.batch_len(), |b, patches| {
            rows.gather_batch_into(b, data, patches, Some(0.0));
        });
        Array::from_vec(&shape, out)
    };
    Some(run())
}

/// The col2im of a convolution's input gradient: patch rows added back in patch order, as
/// the reference adds them, batch entries split across threads.
fn patches_transpose(windows: &Windows, spatial: &[usize], x: &Array) -> Option<Result<Array>> {
    let data = strong_f32(x)?;
    let run = || -> Result<Array> {
        let input = nnx_core::tensor::patches_input_shape(windows, x.shape(), spatial)?;
        let rows = windows.rows(&input)?;
        // Each batch entry adds into its own part of the input: entries side by side.
        let mut out = pool::take_zeroed(rows.input_len());
        parallel::for_each_chunk(&mut out, rows.input_batch_len(), |b, input| {
            rows.scatter_add_batch_into(b, data, input, |a, b| a + b);
        });
        Array::from_vec(&input, out)
    };
    Some(run())
}

/// The comparison of a masked select [`fuse_masks`] built, if `program` is one.
pub(crate) fn mask_of(program: &Program) -> Option<CompareOp> {
    match program.equations.as_slice() {
        [
            Equation {
                primitive: Primitive::Compare(op),
                ..
            },
            Equation {
                primitive: Primitive::Select,
                ..
            },
        ] if program.inputs.len() == 4 => Some(*op),
        _ => None,
    }
}

/// Sum or mean of a float32 array over any axes (leading, trailing, in the middle — a
/// pooling window's taps —, several apart), accumulating each output element in float32
/// over the reduced elements in the reference's order (the axes as listed, the first the
/// most significant), so the results are identical. Rows of the axes kept after the last
/// reduced one are added as vectors; large outputs are split across threads (by rows, or by
/// columns when only one row is kept).
fn reduce(op: ReduceOp, axes: &[usize], keepdims: bool, x: &Array) -> Option<Result<Array>> {
    if !matches!(op, ReduceOp::Sum | ReduceOp::Mean) || axes.is_empty() {
        return None;
    }
    let data = strong_f32(x)?;
    let shape = x.shape();
    let rank = shape.len();
    let mut sorted = axes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let last = *sorted.last()?;
    if sorted.len() != axes.len() || last >= rank {
        return None;
    }
    let inner: usize = shape[last + 1..].iter().product();
    let reduced: usize = axes.iter().map(|&a| shape[a]).product();
    let kept_before: Vec<usize> = (0..last).filter(|a| !sorted.contains(a)).collect();
    let outer: usize = kept_before.iter().map(|&a| shape[a]).product();
    if reduced == 0 {
        return None;
    }
    let mut out = pool::take(outer * inner);
    let trailing_block = last == rank - 1 && axes.windows(2).all(|w| w[1] == w[0] + 1);
    if trailing_block {
        // The last axes, in order: one sequential sum per contiguous group.
        parallel::for_each_chunk(&mut out, 4096, |i, acc| {
            let groups = data[i * 4096 * reduced..].chunks_exact(reduced);
            for (a, group) in acc.iter_mut().zip(groups) {
                *a = group.iter().fold(0.0f32, |s, &v| s + v);
            }
        });
    } else {
        // Row-major strides; where each reduced element and each kept row starts.
        let mut strides = vec![1usize; rank];
        for a in (0..rank.saturating_sub(1)).rev() {
            strides[a] = strides[a + 1] * shape[a + 1];
        }
        let offsets = |axes: &[usize]| {
            axes.iter().fold(vec![0usize], |offsets, &a| {
                let (n, stride) = (shape[a], strides[a]);
                offsets
                    .iter()
                    .flat_map(|&o| (0..n).map(move |i| o + i * stride))
                    .collect()
            })
        };
        let (terms, rows) = (offsets(axes), offsets(&kept_before));
        let piece = if outer > 1 {
            inner
        } else {
            inner.div_ceil(parallel::threads()).next_multiple_of(16)
        };
        parallel::for_each_chunk(&mut out, piece, |i, acc| {
            let (o, column) = ((i * piece) / inner, (i * piece) % inner);
            acc.fill(0.0);
            for &term in &terms {
                let at = rows[o] + term + column;
                let row = &data[at..at + acc.len()];
                acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
            }
        });
    }
    if op == ReduceOp::Mean {
        out.iter_mut()
            .for_each(|v| *v = (f64::from(*v) / reduced as f64) as f32);
    }
    let shape: Vec<usize> = (0..rank)
        .filter_map(|a| match (sorted.contains(&a), keepdims) {
            (false, _) => Some(shape[a]),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    Some(Array::from_vec(&shape, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{agrees_on_every_split, arr, aval};
    use nnx_core::tensor::elementwise::CompareOp;
    use nnx_core::{Engine, Tensor};

    /// Each kernel gives exactly the reference's result (values, shape, dtype, weak type).
    #[test]
    fn kernels_agree_with_the_reference_bit_for_bit() {
        let x = arr(&[5, 3, 4], 0.0);
        let y = arr(&[5, 3, 4], 1.0);
        let relu = x
            .binary(
                nnx_core::tensor::elementwise::BinaryOp::Maximum,
                &Array::scalar(0.0f32),
            )
            .unwrap();
        let mask = x.compare(CompareOp::Eq, &relu).unwrap();
        let transposed = arr(&[4, 3, 5], 3.0).permute_axes(&[2, 1, 0]).unwrap();
        assert!(!transposed.is_contiguous());
        let cases: Vec<(Primitive, Vec<Array>)> = vec![
            (
                Primitive::Compare(CompareOp::Eq),
                vec![x.clone(), relu.clone()],
            ),
            (
                Primitive::Compare(CompareOp::Gt),
                vec![x.clone(), Array::weak_scalar(0i32)],
            ),
            (
                Primitive::Select,
                vec![mask.clone(), y.clone(), Array::weak_scalar(0.0f32)],
            ),
            (
                Primitive::Select,
                vec![mask.clone(), Array::scalar(2.0f32), y.clone()],
            ),
            (Primitive::Select, vec![mask, x.clone(), y.clone()]),
            (
                Primitive::Reduce {
                    op: ReduceOp::Sum,
                    axes: vec![0],
                    keepdims: false,
                },
                vec![x.clone()],
            ),
            (
                Primitive::Reduce {
                    op: ReduceOp::Sum,
                    axes: vec![0, 1],
                    keepdims: true,
                },
                vec![x.clone()],
            ),
            (
                Primitive::Reduce {
                    op: ReduceOp::Mean,
                    axes: vec![1, 2],
                    keepdims: false,
                },
                vec![x.clone()],
            ),
            (
                Primitive::Reduce {
                    op: ReduceOp::Mean,
                    axes: vec![0, 1, 2],
                    keepdims: false,
                },
                vec![x.clone()],
            ),
            (
                Primitive::Pad {
                    axis: 1,
                    before: 2,
                    after: 1,
                },
                vec![x.clone()],
            ),
            (
                Primitive::Pad {
                    axis: 0,
                    before: 0,
                    after: 3,
                },
                vec![arr(&[0, 2], 1.0)],
            ),
            // Views (a transpose, a broadcast) as operands.
            (
                Primitive::Compare(CompareOp::Lt),
                vec![transposed.clone(), x.clone()],
            ),
            (
                Primitive::Pad {
                    axis: 2,
                    before: 1,
                    after: 1,
                },
                vec![transposed.clone()],
            ),
            (
                Primitive::Reduce {
                    op: ReduceOp::Sum,
                    axes: vec![0],
                    keepdims: false,
                },
                vec![transposed.clone()],
            ),
            (
                Primitive::Select,
                vec![
                    x.compare(CompareOp::Gt, &transposed).unwrap(),
                    transposed,
                    arr(&[4], 2.0).broadcast_to(&[5, 3, 4]).unwrap(),
                ],
            ),
        ];
        for (primitive, args) in cases {
            let fast = eval(&primitive, &args)
                .unwrap_or_else(|| panic!("{primitive:?} has a fast kernel"))
                .unwrap();
            let reference = primitive.eval(&args).unwrap();
            assert!(
                fast.identical(&reference),
                "{primitive:?}: {fast:?} vs {reference:?}"
            );
            assert_eq!(fast.is_weak(), reference.is_weak(), "{primitive:?}");
        }
        // Forms without a kernel fall back.
        let max = Primitive::Reduce {
            op: ReduceOp::Max,
            axes: vec![0],
            keepdims: false,
        };
        assert!(eval(&max, std::slice::from_ref(&x)).is_none());
    }

    #[test]
    fn patches_agree_with_the_reference_bit_for_bit_on_every_split() {
        // Padded windows (their rows are zeros), batch entries split across threads.
        let windows = Windows::new(&[3, 3], &[1, 1], &[(1, 1), (1, 1)], &[1, 1], &[1, 1]).unwrap();
        let x = arr(&[8, 20, 20, 16], 0.25);
        agrees_on_every_split(eval, &Primitive::Patches { windows }, &[x]);
    }

    #[test]
    fn sums_over_any_axes_agree_with_the_reference_bit_for_bit_on_every_split() {
        // A middle block (pooling taps), leading and trailing blocks, small and large
        // enough to be split across threads by rows, by columns and by groups.
        let cases: Vec<(Vec<usize>, Vec<usize>)> = vec![
            (vec![5, 3, 4], vec![1]),
            (vec![2, 3, 4, 5], vec![1, 2]),
            // Axes apart (a 2×2 pooling window on a reshaped image), and listed out of order.
            (vec![2, 3, 2, 4, 2, 5], vec![2, 4]),
            (vec![5, 3, 4], vec![0, 2]),
            (vec![5, 3, 4], vec![2, 1]),
            (vec![5, 3, 4], vec![1, 0]),
            (vec![64, 14, 2, 14, 2, 32], vec![2, 4]),
            (vec![128, 9, 1024], vec![1]),
            (vec![3, 70_000], vec![0]),
            (vec![70_000, 3], vec![1]),
            (vec![0, 3, 4], vec![1]),
        ];
        for (shape, axes) in cases {
            let x = arr(&shape, 0.5);
            for op in [ReduceOp::Sum, ReduceOp::Mean] {
                let reduce = Primitive::Reduce {
                    op,
                    axes: axes.clone(),
                    keepdims: false,
                };
                agrees_on_every_split(eval, &reduce, std::slice::from_ref(&x));
            }
        }
    }

    #[test]
    fn a_relu_mask_fuses_into_one_pass_with_identical_results() {
        use nnx_core::program::trace_fn;
        // The backward pass of relu, and a comparison read twice (not fused).
        let traced = trace_fn(&[aval(&[300, 7]), aval(&[300, 7])], |xs| {
            let (pre, g) = (&xs[0], &xs[1]);
            let post = pre.relu()?;
            let mask = pre
                .compare(CompareOp::Eq, &post)?
                .select(g, &Tensor::zeros([]))?;
            let gt = pre.compare(CompareOp::Gt, g)?;
            let twice = gt.select(pre, g)?.add(&gt.select(g, pre)?)?;
            Ok((vec![mask, twice], ()))
        })
        .unwrap();
        let fused = fuse_masks(&traced.program).expect("a mask to fuse");
        let masks = fused
            .equations
            .iter()
            .filter(|eq| matches!(&eq.primitive, Primitive::Call { program } if mask_of(&program.0).is_some()))
            .count();
        assert_eq!(masks, 1, "{fused}");
        let inputs = vec![arr(&[300, 7], 0.0), arr(&[300, 7], 1.0)];
        let expected = nnx_reference::Reference
            .run(&traced.program, &inputs)
            .unwrap();
        let plan = crate::Fast.compile(Arc::new(traced.program)).unwrap();
        let got = crate::Fast.execute(&plan, inputs).unwrap();
        for (g, e) in got.iter().zip(&expected) {
            assert!(g.identical(e), "{g:?} vs {e:?}");
        }
    }
}
