//! GEMM fusion: a matrix product with its transposed operands and its epilogue
//! (`relu(x @ W + b)`, `x @ W + b`, `xᵀ @ g`, `g @ Wᵀ`) as one kernel.
//!
//! A plan rewrites its program so that each float32 product `a @ w` becomes a single `call`
//! of a sub-program holding its chain:
//! - an operand that is a 2-D `transpose` of another value is taken into the chain (the
//!   backward pass's `xᵀ @ g` and `g @ Wᵀ`), so that the product reads nothing computed
//!   just before it and [`pair`](crate::pair) can run it beside another; the kernel reads
//!   the transpose as a view, in place, as it reads any transposed operand;
//! - a row-bias add reading only the product, and an activation reading only the sum
//!   (`maximum(·, 0)` or a unary operation such as `tanh` or `logistic`), are applied in one pass over the product's buffer, with the same float operations in the
//!   same order as the separate equations — so the results are bit-identical — while the
//!   buffer is still in cache.
//!
//! - a relu mask read only from the product (`where(y > 0, g @ Wᵀ, 0)`: the backward pass's
//!   input gradient masked by the layer below's activation, once [`fuse_masks`] has made the
//!   mask one equation) is applied in the same pass ([`fuse_mask_epilogues`]): the separate
//!   mask kernel's pass over the gradient, which ran on one thread, disappears.
//!
//! Small products (a tiny MLP's 4×8·8×8 layer) run as a plain loop; the others as one faer
//! GEMM into a pooled buffer.
//!
//! [`fuse_masks`]: crate::ops::fuse_masks

use std::sync::Arc;

use nnx_core::program::{AbstractValue, Atom, Equation, Primitive, Program, ProgramRef, VarId};
use nnx_core::tensor::elementwise::{BinaryOp, CompareOp, UnaryOp};
use nnx_core::{Array, DType, Result};

use crate::kernels::{self, Layout};
use crate::ops::{mask_in_place, mask_of, scalar_f32};

/// A fused chain's form: which operands are read transposed, whether a row bias is added,
/// which activation follows it and which mask ends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gemm {
    pub(crate) transpose_a: bool,
    pub(crate) transpose_b: bool,
    pub(crate) bias: bool,
    pub(crate) activation: Option<Activation>,
    pub(crate) mask: Option<Mask>,
}

/// `where(y op against, ·, otherwise)` with `y` the chain's last operand, of the result's
/// shape (a backward pass's relu mask: `y > 0`, otherwise `0`). The scalars are kept as
/// their float32 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mask {
    pub(crate) op: CompareOp,
    against: u32,
    otherwise: u32,
}

/// The activation a fused product applies after its bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Activation {
    /// `maximum(·, 0)`.
    Relu,
    /// A unary operation (`tanh`, `logistic`, …).
    Unary(UnaryOp),
}

const TRANSPOSE_2D: [usize; 2] = [1, 0];

/// Per variable of a program: how many reads it has (the program's outputs included), and
/// the equation that defines it (`None` for inputs). What every fusion pass decides on: a
/// value read once can be absorbed into its reader.
pub(crate) struct Dataflow {
    pub(crate) uses: Vec<usize>,
    pub(crate) defined_by: Vec<Option<usize>>,
}

impl Dataflow {
    pub(crate) fn of(program: &Program) -> Dataflow {
        let mut uses = vec![0usize; program.avals.len()];
        let mut defined_by = vec![None; program.avals.len()];
        for (k, eq) in program.equations.iter().enumerate() {
            for v in &eq.outputs {
                defined_by[v.0 as usize] = Some(k);
            }
        }
        for atom in program
            .equations
            .iter()
            .flat_map(|eq| &eq.inputs)
            .chain(&program.outputs)
        {
            if let Atom::Var(v) = atom {
                uses[v.0 as usize] += 1;
            }
        }
        Dataflow { uses, defined_by }
    }
}

/// `program` with every fusable chain replaced by a `call` of the chain, or `None` when it
/// has none.
pub(crate) fn fuse(program: &Program) -> Option<Program> {
    let Dataflow { uses, defined_by } = Dataflow::of(program);
    // The one equation after `k` that reads `v`, when nothing else does.
    let single_use_by = |v: VarId, k: usize| -> Option<usize> {
        if uses[v.0 as usize] != 1 {
            return None;
        }
        (k + 1..program.equations.len()).find(|&j| {
            program.equations[j]
                .inputs
                .iter()
                .any(|a| matches!(a, Atom::Var(x) if *x == v))
        })
    };
    // The value `atom` is the 2-D transpose of, if it is one.
    let transposed_source = |atom: &Atom| -> Option<Atom> {
        let Atom::Var(v) = atom else { return None };
        let eq = &program.equations[defined_by[v.0 as usize]?];
        match (&eq.primitive, eq.inputs.as_slice()) {
            (Primitive::Transpose { perm }, [source]) if perm.as_slice() == TRANSPOSE_2D => {
                Some(source.clone())
            }
            _ => None,
        }
    };
    let f32_strong = |aval: &AbstractValue| aval.dtype == DType::F32 && !aval.weak;
    let mut removed = vec![false; program.equations.len()];
    let mut replaced: Vec<Option<Equation>> = vec![None; program.equations.len()];
    for (k1, eq) in program.equations.iter().enumerate() {
        let (Primitive::Matmul, [a, w], [v1]) =
            (&eq.primitive, eq.inputs.as_slice(), eq.outputs.as_slice())
        else {
            continue;
        };
        let (aa, aw) = (program.aval_of(a), program.aval_of(w));
        if removed[k1]
            || !f32_strong(&aa)
            || !f32_strong(&aw)
            || aw.shape.len() != 2
            || aa.shape.is_empty()
        {
            continue;
        }
        let small = kernels::is_small_product(
            &aa.shape,
            (aa.dtype, aa.weak),
            &aw.shape,
            (aw.dtype, aw.weak),
        );
        // Transposed operands are read in place (large 2-D products only: the small loop
        // reads row-major operands).
        let source_a = (!small && aa.shape.len() == 2)
            .then(|| transposed_source(a))
            .flatten();
        let source_b = (!small).then(|| transposed_source(w)).flatten();
        // The bias add reading the product.
        let add = single_use_by(*v1, k1).filter(|&k2| {
            let add = &program.equations[k2];
            let (Primitive::Binary(BinaryOp::Add), [Atom::Var(x), b], [_]) = (
                &add.primitive,
                add.inputs.as_slice(),
                add.outputs.as_slice(),
            ) else {
                return false;
            };
            let (a1, ab) = (program.avals[v1.0 as usize].clone(), program.aval_of(b));
            x == v1
                && !removed[k2]
                && ab.dtype == DType::F32
                && Layout::of(
                    &a1.shape,
                    (a1.dtype, a1.weak),
                    &ab.shape,
                    (ab.dtype, ab.weak),
                ) == Some(Layout::Row)
        });
        // An optional activation reading the sum: `maximum(·, 0)` or a unary operation.
        let relu = add.and_then(|k2| {
            let v2 = program.equations[k2].outputs[0];
            single_use_by(v2, k2).filter(|&k3| {
                let eq = &program.equations[k3];
                match (&eq.primitive, eq.inputs.as_slice()) {
                    (Primitive::Binary(BinaryOp::Maximum), [Atom::Var(y), Atom::Literal(zero)]) => {
                        *y == v2 && is_zero_scalar(zero)
                    }
                    (Primitive::Unary(_), [Atom::Var(y)]) => *y == v2,
                    _ => false,
                }
            })
        });
        // Nothing to gain: a lone product runs as it is.
        if add.is_none() && source_a.is_none() && source_b.is_none() {
            continue;
        }
        let last = relu.or(add).unwrap_or(k1);
        let out = program.equations[last].outputs[0];
        let mut inputs = vec![
            source_a.clone().unwrap_or_else(|| a.clone()),
            source_b.clone().unwrap_or_else(|| w.clone()),
        ];
        if let Some(k2) = add {
            inputs.push(program.equations[k2].inputs[1].clone());
        }
        let body = chain_program(
            program,
            source_a.is_some(),
            source_b.is_some(),
            [Some(k1), add, relu]
                .into_iter()
                .flatten()
                .map(|k| &program.equations[k]),
            &inputs,
        );
        for k in [Some(k1), add, relu].into_iter().flatten() {
            removed[k] = true;
        }
        removed[last] = false;
        replaced[last] = Some(Equation {
            primitive: Primitive::Call {
                program: ProgramRef(Arc::new(body)),
            },
            inputs,
            outputs: vec![out],
        });
    }
    rewritten(program, replaced, &removed)
}

/// `program` with each equation `k` replaced by `replaced[k]` when there is one, else left
/// out when `removed[k]`; `None` when nothing is replaced. How every fusion pass ends.
pub(crate) fn rewritten(
    program: &Program,
    replaced: Vec<Option<Equation>>,
    removed: &[bool],
) -> Option<Program> {
    if replaced.iter().all(Option::is_none) {
        return None;
    }
    let equations = program
        .equations
        .iter()
        .zip(replaced)
        .zip(removed)
        .filter_map(|((eq, new), removed)| match (new, removed) {
            (Some(new), _) => Some(new),
            (None, false) => Some(eq.clone()),
            (None, true) => None,
        })
        .collect();
    Some(Program::new(
        program.inputs.clone(),
        equations,
        program.outputs.clone(),
        program.avals.clone(),
    ))
}

/// `program` with each masked select ([`fuse_masks`](crate::ops::fuse_masks)) of a fused
/// product's result taken into the product's chain as its epilogue's last step — when the
/// result is read by nothing else, the mask compares a strong float32 value of the result's
/// shape with a literal and the other branch is a literal — or `None` when there is none.
pub(crate) fn fuse_mask_epilogues(program: &Program) -> Option<Program> {
    let Dataflow { uses, defined_by } = Dataflow::of(program);
    let mut removed = vec![false; program.equations.len()];
    let mut replaced: Vec<Option<Equation>> = vec![None; program.equations.len()];
    for (k, eq) in program.equations.iter().enumerate() {
        let Primitive::Call { program: mask } = &eq.primitive else {
            continue;
        };
        let (
            Some(op),
            [
                y @ Atom::Var(_),
                against @ Atom::Literal(_),
                Atom::Var(t),
                otherwise @ Atom::Literal(_),
            ],
        ) = (mask_of(&mask.0), eq.inputs.as_slice())
        else {
            continue;
        };
        let Some(g) = defined_by[t.0 as usize].filter(|_| uses[t.0 as usize] == 1) else {
            continue;
        };
        let product = &program.equations[g];
        let Primitive::Call { program: chain } = &product.primitive else {
            continue;
        };
        let (ay, at) = (program.aval_of(y), &program.avals[t.0 as usize]);
        if removed[g]
            || product.outputs.len() != 1
            || ay.dtype != DType::F32
            || ay.weak
            || ay.shape != at.shape
            || gemm_of(&chain.0).is_none_or(|gemm| gemm.mask.is_some())
        {
            continue;
        }
        let body = with_mask(&chain.0, op, against, otherwise, ay, at);
        let mut inputs = product.inputs.clone();
        inputs.push(y.clone());
        removed[g] = true;
        replaced[k] = Some(Equation {
            primitive: Primitive::Call {
                program: ProgramRef(Arc::new(body)),
            },
            inputs,
            outputs: eq.outputs.clone(),
        });
    }
    rewritten(program, replaced, &removed)
}

/// A fused product's chain with `where(y op against, result, otherwise)` after it, `y` a new
/// last input of aval `y_aval`; `out` is the result's aval.
fn with_mask(
    chain: &Program,
    op: CompareOp,
    against: &Atom,
    otherwise: &Atom,
    y_aval: AbstractValue,
    out: &AbstractValue,
) -> Program {
    let mut avals = chain.avals.clone();
    let mut fresh = |aval: AbstractValue| {
        avals.push(aval);
        VarId(avals.len() as u32 - 1)
    };
    let y = fresh(y_aval);
    let condition = fresh(AbstractValue {
        dtype: DType::Bool,
        weak: false,
        ..out.clone()
    });
    let masked = fresh(out.clone());
    let mut inputs = chain.inputs.clone();
    inputs.push(y);
    let mut equations = chain.equations.clone();
    equations.push(Equation {
        primitive: Primitive::Compare(op),
        inputs: vec![Atom::Var(y), against.clone()],
        outputs: vec![condition],
    });
    equations.push(Equation {
        primitive: Primitive::Select,
        inputs: vec![
            Atom::Var(condition),
            chain.outputs[0].clone(),
            otherwise.clone(),
        ],
        outputs: vec![masked],
    });
    Program::new(inputs, equations, vec![Atom::Var(masked)], avals)
}

/// `program` without its reshapes to the shape their operand already has (a gradient's
/// reshape back to its operand's shape), every read of such a result reading the operand
/// instead, so that the fusions see what a value really is computed from; `None` when there
/// are none.
pub(crate) fn drop_identity_reshapes(program: &Program) -> Option<Program> {
    let mut same: std::collections::HashMap<VarId, Atom> = std::collections::HashMap::new();
    let resolve = |same: &std::collections::HashMap<VarId, Atom>, atom: &Atom| match atom {
        Atom::Var(v) => same.get(v).cloned().unwrap_or_else(|| atom.clone()),
        literal => literal.clone(),
    };
    let mut equations = Vec::with_capacity(program.equations.len());
    for eq in &program.equations {
        let inputs: Vec<Atom> = eq.inputs.iter().map(|a| resolve(&same, a)).collect();
        if let (Primitive::Reshape { .. }, [x], [out]) =
            (&eq.primitive, inputs.as_slice(), eq.outputs.as_slice())
            && program.aval_of(x) == program.avals[out.0 as usize]
        {
            same.insert(*out, x.clone());
            continue;
        }
        equations.push(Equation {
            inputs,
            ..eq.clone()
        });
    }
    if same.is_empty() {
        return None;
    }
    let outputs = program.outputs.iter().map(|a| resolve(&same, a)).collect();
    Some(Program::new(
        program.inputs.clone(),
        equations,
        outputs,
        program.avals.clone(),
    ))
}

fn is_zero_scalar(a: &Array) -> bool {
    a.shape().iter().product::<usize>() == 1
        && match a.dtype() {
            DType::F32 => a
                .as_slice::<f32>()
                .is_ok_and(|x| x[0] == 0.0 && x[0].is_sign_positive()),
            DType::I32 => a.as_slice::<i32>().is_ok_and(|x| x[0] == 0),
            DType::U32 => a.as_slice::<u32>().is_ok_and(|x| x[0] == 0),
            _ => false,
        }
}

/// The chain as a program of its own over `inputs` (`a` or the value it transposes, `W` or
/// the value it transposes, then the bias if any): the transposes first, then the chain's
/// equations.
fn chain_program<'a>(
    program: &Program,
    transpose_a: bool,
    transpose_b: bool,
    chain: impl Iterator<Item = &'a Equation>,
    inputs: &[Atom],
) -> Program {
    let mut avals: Vec<AbstractValue> = inputs.iter().map(|a| program.aval_of(a)).collect();
    let mut equations = Vec::new();
    let mut operands: Vec<Atom> = (0..inputs.len())
        .map(|i| Atom::Var(VarId(i as u32)))
        .collect();
    for (i, transposed) in [transpose_a, transpose_b].into_iter().enumerate() {
        if transposed {
            let mut aval = avals[i].clone();
            aval.shape.reverse();
            avals.push(aval);
            let out = VarId(avals.len() as u32 - 1);
            equations.push(Equation {
                primitive: Primitive::Transpose {
                    perm: TRANSPOSE_2D.to_vec(),
                },
                inputs: vec![operands[i].clone()],
                outputs: vec![out],
            });
            operands[i] = Atom::Var(out);
        }
    }
    // The chain's equations read the previous one's output and their own literals.
    let mut previous: Option<VarId> = None;
    for eq in chain {
        let args = match (previous, eq.inputs.get(1)) {
            (None, _) => operands[..2].to_vec(),
            (Some(prev), None) => vec![Atom::Var(prev)],
            (Some(prev), Some(second)) => {
                let second = match second {
                    Atom::Literal(_) => second.clone(),
                    Atom::Var(_) => operands[2].clone(),
                };
                vec![Atom::Var(prev), second]
            }
        };
        avals.push(program.avals[eq.outputs[0].0 as usize].clone());
        let out = VarId(avals.len() as u32 - 1);
        equations.push(Equation {
            primitive: eq.primitive.clone(),
            inputs: args,
            outputs: vec![out],
        });
        previous = Some(out);
    }
    Program::new(
        (0..inputs.len()).map(|i| VarId(i as u32)).collect(),
        equations,
        vec![Atom::Var(previous.unwrap_or(VarId(0)))],
        avals,
    )
}

/// The chain a called program holds, if it is one [`fuse`] built.
pub(crate) fn gemm_of(program: &Program) -> Option<Gemm> {
    let mut gemm = Gemm {
        transpose_a: false,
        transpose_b: false,
        bias: false,
        activation: None,
        mask: None,
    };
    let mut prims = program.equations.iter().peekable();
    while let Some(eq) = prims.next_if(|eq| matches!(eq.primitive, Primitive::Transpose { .. })) {
        match eq.inputs.as_slice() {
            [Atom::Var(VarId(0))] => gemm.transpose_a = true,
            [Atom::Var(VarId(1))] => gemm.transpose_b = true,
            _ => return None,
        }
    }
    let mut rest: Vec<&Equation> = prims.collect();
    // A mask at the end: `compare(y, a)` then `select(·, product, b)`, literals `a` and `b`.
    // `y` is the last input, the selected value the step before, the result the select's.
    if let [.., before, compare, select] = rest.as_slice()
        && let (Primitive::Compare(op), [Atom::Var(y), Atom::Literal(against)]) =
            (&compare.primitive, compare.inputs.as_slice())
        && let (Primitive::Select, [Atom::Var(c), Atom::Var(x), Atom::Literal(otherwise)]) =
            (&select.primitive, select.inputs.as_slice())
        && program.inputs.last() == Some(y)
        && compare.outputs.as_slice() == [*c]
        && before.outputs.as_slice() == [*x]
        && matches!(program.outputs.as_slice(), [Atom::Var(out)] if select.outputs.as_slice() == [*out])
    {
        gemm.mask = Some(Mask {
            op: *op,
            against: scalar_f32(against)?.to_bits(),
            otherwise: scalar_f32(otherwise)?.to_bits(),
        });
        rest.truncate(rest.len() - 2);
    }
    let rest: Vec<&Primitive> = rest.into_iter().map(|eq| &eq.primitive).collect();
    match rest.as_slice() {
        [Primitive::Matmul] => {}
        [Primitive::Matmul, Primitive::Binary(BinaryOp::Add)] => gemm.bias = true,
        [
            Primitive::Matmul,
            Primitive::Binary(BinaryOp::Add),
            Primitive::Binary(BinaryOp::Maximum),
        ] => {
            gemm.bias = true;
            gemm.activation = Some(Activation::Relu);
        }
        [
            Primitive::Matmul,
            Primitive::Binary(BinaryOp::Add),
            Primitive::Unary(op),
        ] => {
            gemm.bias = true;
            gemm.activation = Some(Activation::Unary(*op));
        }
        _ => return None,
    }
    let inputs = 2 + usize::from(gemm.bias) + usize::from(gemm.mask.is_some());
    (program.inputs.len() == inputs).then_some(gemm)
}

/// Runs a fused chain on `(a, W[, b])`: the product (a plain loop when small, else a GEMM
/// reading its operands in place, transposed ones as views), then bias and activation in
/// one pass over its buffer. `None` when the operands are not of the chain's form after all.
pub(crate) fn gemm(gemm: Gemm, args: &[Array]) -> Option<Result<Array>> {
    let (a, w) = (args.first()?, args.get(1)?);
    let transposed = |x: &Array, flag: bool| match flag {
        true if x.ndim() == 2 => Some(x.transpose()),
        true => None,
        false => Some(x.clone()),
    };
    let (a, w) = (
        &transposed(a, gemm.transpose_a)?,
        &transposed(w, gemm.transpose_b)?,
    );
    let bias = match gemm.bias {
        true => Some(args.get(2)?.as_slice::<f32>().ok()?),
        false => None,
    };
    if bias.is_some_and(<[f32]>::is_empty) {
        return None;
    }
    // The mask's operand: strong float32 of the result's shape (checked against the
    // result's length below).
    let masked = match gemm.mask {
        Some(mask) => {
            let y = args.get(2 + usize::from(gemm.bias))?;
            (!y.is_weak()).then_some(())?;
            Some((mask, y.as_slice::<f32>().ok()?))
        }
        None => None,
    };
    // Bias and activation row by row, then the mask: the separate equations' operations, in
    // their order. One loop per activation, so that each is a fixed operation the compiler
    // vectorises.
    let epilogue = |first: usize, rows: &mut [f32]| {
        if let Some(bias) = bias {
            macro_rules! each {
                ($f:expr) => {{
                    let f = $f;
                    for row in rows.chunks_exact_mut(bias.len()) {
                        for (o, &q) in row.iter_mut().zip(bias) {
                            *o = f(BinaryOp::Add.f32(*o, q));
                        }
                    }
                }};
            }
            match gemm.activation {
                None => each!(|x: f32| x),
                Some(Activation::Relu) => each!(|x: f32| BinaryOp::Maximum.f32(x, 0.0)),
                Some(Activation::Unary(op)) => each!(|x: f32| op.f32(x)),
            }
        }
        if let Some((mask, y)) = masked {
            let (against, otherwise) =
                (f32::from_bits(mask.against), f32::from_bits(mask.otherwise));
            mask_in_place(
                mask.op,
                rows,
                &y[first..first + rows.len()],
                against,
                otherwise,
            );
        }
    };
    let out_len = |a: &Array| {
        a.shape().iter().rev().skip(1).product::<usize>() * w.shape().get(1).copied().unwrap_or(0)
    };
    if masked.is_some_and(|(_, y)| y.len() != out_len(a)) {
        return None;
    }
    if let Some(product) = kernels::small_matmul_if_small(a, w) {
        let mut product = match product {
            Ok(product) => product,
            Err(e) => return Some(Err(e)),
        };
        let out = product.unique_f32_mut()?;
        if bias.is_some_and(|b| !out.len().is_multiple_of(b.len())) {
            return None;
        }
        epilogue(0, out);
        return Some(Ok(product));
    }
    // The bias must line up with the result's rows (the caller checked the layout).
    if let Some(bias) = bias {
        (*w.shape().get(1)? == bias.len()).then_some(())?;
    }
    kernels::matmul_matrix(a, w, Some(&epilogue))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fast;
    use crate::test_util::{arr, aval};
    use nnx_core::program::trace_fn;
    use nnx_core::{Engine, Tensor};

    #[test]
    fn dense_chains_fuse_and_agree_bit_for_bit() {
        // Two layers with relu, a last one without, and a product used twice (not fused).
        let traced = trace_fn(&[aval(&[4, 8]), aval(&[8, 8]), aval(&[8])], |xs| {
            let (x, w, b) = (&xs[0], &xs[1], &xs[2]);
            let h = x.matmul(w)?.add(b)?.relu()?;
            let h = h.matmul(w)?.add(b)?.relu()?;
            let y = h.matmul(w)?.add(b)?.tanh()?;
            let shared = y.matmul(w)?;
            let z = (&shared.add(b)? + &shared)?;
            Ok((vec![y, z], ()))
        })
        .unwrap();
        let program = traced.program;
        let fused = fuse(&program).expect("chains to fuse");
        let calls = fused
            .equations
            .iter()
            .filter(|eq| matches!(&eq.primitive, Primitive::Call { program } if gemm_of(&program.0).is_some()))
            .count();
        assert_eq!(calls, 3, "{fused}");
        let inputs = vec![arr(&[4, 8], 0.0), arr(&[8, 8], 1.0), arr(&[8], 2.0)];
        let expected = nnx_reference::Reference.run(&program, &inputs).unwrap();
        let plan = Fast.compile(Arc::new(program)).unwrap();
        let got = Fast.execute(&plan, inputs).unwrap();
        for (g, e) in got.iter().zip(&expected) {
            assert!(g.identical(e), "{g:?} vs {e:?}");
        }
    }

    #[test]
    fn a_relu_mask_of_a_product_becomes_its_epilogue_and_agrees_with_the_reference() {
        use nnx_core::tensor::elementwise::CompareOp;
        // A backward pass's input gradient, reshaped to its own shape (as a gradient is),
        // masked by the activation below; and a product read twice (its mask not fused).
        let traced = trace_fn(
            &[aval(&[300, 64]), aval(&[64, 64]), aval(&[300, 64])],
            |xs| {
                let (g, w, y) = (&xs[0], &xs[1], &xs[2]);
                let dx = g.matmul(&w.transpose()?)?.reshape(&[300, 64])?;
                let masked = y
                    .compare(CompareOp::Gt, &Tensor::zeros([]))?
                    .select(&dx, &Tensor::zeros([]))?;
                let shared = g.matmul(&w.transpose()?)?;
                let twice = y
                    .compare(CompareOp::Gt, &Tensor::zeros([]))?
                    .select(&shared, &Tensor::zeros([]))?
                    .add(&shared)?;
                Ok((vec![masked, twice], ()))
            },
        )
        .unwrap();
        let program = traced.program;
        let plan = Fast.compile(Arc::new(program.clone())).unwrap();
        let top = plan.compiled_as::<crate::plan::Top>().unwrap();
        let masked_products = top
            .program
            .equations
            .iter()
            .filter(|eq| matches!(&eq.primitive, Primitive::Call { program } if gemm_of(&program.0).is_some_and(|g| g.mask.is_some())))
            .count();
        assert_eq!(masked_products, 1, "{}", top.program);
        let mut inputs = vec![
            arr(&[300, 64], 0.0),
            arr(&[64, 64], 1.0),
            arr(&[300, 64], -0.5),
        ];
        // Some activations exactly zero: the mask's boundary.
        let y: Vec<f32> = (0..300 * 64)
            .map(|i| [0.0, 1.0, -2.0, 0.5][i % 4])
            .collect();
        inputs[2] = Array::from_vec(&[300, 64], y).unwrap();
        agrees_on_one_and_two_threads(&program, &plan, &inputs);
    }

    #[test]
    fn large_products_with_transposes_and_epilogues_agree_with_the_reference() {
        // Large enough to be split across threads; transposed operands on both sides, as a
        // backward pass has them; the epilogue applied block by block.
        let traced = trace_fn(
            &[aval(&[384, 200]), aval(&[200, 160]), aval(&[160])],
            |xs| {
                let (x, w, b) = (&xs[0], &xs[1], &xs[2]);
                let h = x.matmul(w)?.add(b)?.relu()?;
                let dw = x.transpose()?.matmul(&h)?;
                let dx = h.matmul(&w.transpose()?)?;
                Ok((vec![h, dw, dx], ()))
            },
        )
        .unwrap();
        let program = traced.program;
        let fused = fuse(&program).expect("products to fuse");
        assert_eq!(
            fused
                .equations
                .iter()
                .filter(|eq| matches!(&eq.primitive, Primitive::Call { program } if gemm_of(&program.0).is_some()))
                .count(),
            3,
            "{fused}"
        );
        let inputs = vec![
            arr(&[384, 200], 0.0),
            arr(&[200, 160], 1.0),
            arr(&[160], 2.0),
        ];
        let plan = Fast.compile(Arc::new(program.clone())).unwrap();
        agrees_on_one_and_two_threads(&program, &plan, &inputs);
    }

    /// `plan` (compiled from `program`) on `inputs`, on one thread and on two, agrees with the
    /// reference.
    fn agrees_on_one_and_two_threads(program: &Program, plan: &nnx_core::Plan, inputs: &[Array]) {
        let expected = nnx_reference::Reference.run(program, inputs).unwrap();
        for parallelism in [
            crate::Parallelism::Sequential,
            crate::Parallelism::Threads(2),
        ] {
            let before = Fast::parallelism();
            Fast::set_parallelism(parallelism);
            let got = Fast.execute(plan, inputs.to_vec());
            Fast::set_parallelism(before);
            for (g, e) in got.unwrap().iter().zip(&expected) {
                assert_eq!(g.shape(), e.shape());
                assert!(g.allclose(e, 1e-4, 1e-4).unwrap(), "{parallelism:?}");
            }
        }
    }
}
