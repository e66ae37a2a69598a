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
//! Small products (a tiny MLP's 4×8·8×8 layer) run as a plain loop; the others as one faer
//! GEMM into a pooled buffer.

use std::sync::Arc;

use nnx_core::program::{AbstractValue, Atom, Equation, Primitive, Program, ProgramRef, VarId};
use nnx_core::tensor::elementwise::{BinaryOp, UnaryOp};
use nnx_core::{Array, DType, Result};

use crate::kernels::{self, Layout};

/// A fused chain's form: which operands are read transposed, whether a row bias is added and
/// which activation follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gemm {
    pub(crate) transpose_a: bool,
    pub(crate) transpose_b: bool,
    pub(crate) bias: bool,
    pub(crate) activation: Option<Activation>,
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
    if !replaced.iter().any(Option::is_some) {
        return None;
    }
    let equations = program
        .equations
        .iter()
        .zip(replaced)
        .zip(&removed)
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
    };
    let mut prims = program.equations.iter().peekable();
    while let Some(eq) = prims.next_if(|eq| matches!(eq.primitive, Primitive::Transpose { .. })) {
        match eq.inputs.as_slice() {
            [Atom::Var(VarId(0))] => gemm.transpose_a = true,
            [Atom::Var(VarId(1))] => gemm.transpose_b = true,
            _ => return None,
        }
    }
    let rest: Vec<&Primitive> = prims.map(|eq| &eq.primitive).collect();
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
    (program.inputs.len() == 2 + usize::from(gemm.bias)).then_some(gemm)
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
    // Bias and activation row by row: the separate equations' operations, in their order.
    // One loop per activation, so that each is a fixed operation the compiler vectorises.
    let epilogue = |rows: &mut [f32]| {
        let Some(bias) = bias else { return };
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
    };
    if let Some(product) = kernels::small_matmul_if_small(a, w) {
        let mut product = match product {
            Ok(product) => product,
            Err(e) => return Some(Err(e)),
        };
        let out = product.unique_f32_mut()?;
        if bias.is_some_and(|b| !out.len().is_multiple_of(b.len())) {
            return None;
        }
        epilogue(out);
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
    use nnx_core::Engine;
    use nnx_core::program::trace_fn;

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
        let expected = nnx_reference::Reference.run(&program, &inputs).unwrap();
        let plan = Fast.compile(Arc::new(program)).unwrap();
        for parallelism in [
            crate::Parallelism::Sequential,
            crate::Parallelism::Threads(2),
        ] {
            let before = Fast::parallelism();
            Fast::set_parallelism(parallelism);
            let got = Fast.execute(&plan, inputs.clone());
            Fast::set_parallelism(before);
            for (g, e) in got.unwrap().iter().zip(&expected) {
                assert_eq!(g.shape(), e.shape());
                assert!(g.allclose(e, 1e-4, 1e-4).unwrap(), "{parallelism:?}");
            }
        }
    }
}
