//! Dense-layer fusion: `relu(x @ W + b)` (or `x @ W + b`) as one kernel.
//!
//! A plan rewrites its program so that each chain of a small float32 product, a row-bias
//! add and optionally `maximum(·, 0)` whose intermediate values have no other use becomes a
//! single `call` of a sub-program holding the chain. The plan runs such a call as one pass
//! ([`dense`]): the product, then bias and activation row by row in the same buffer, with
//! the same float operations in the same order as the three equations — so the results
//! are bit-identical — and one equation instead of three in the interpreter loop.

use std::sync::Arc;

use nnx_core::program::{AbstractValue, Atom, Equation, Primitive, Program, ProgramRef, VarId};
use nnx_core::tensor::elementwise::BinaryOp;
use nnx_core::{Array, DType, Result};

use crate::kernels::{self, Layout};

/// A fused chain's shape: whether it ends with `maximum(·, 0)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dense {
    pub(crate) relu: bool,
}

/// `program` with every fusable chain replaced by a `call` of the chain, or `None` when it
/// has none.
pub(crate) fn fuse(program: &Program) -> Option<Program> {
    let mut uses = vec![0usize; program.avals.len()];
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
            || !kernels::is_small_product(
                &aa.shape,
                (aa.dtype, aa.weak),
                &aw.shape,
                (aw.dtype, aw.weak),
            )
        {
            continue;
        }
        // The bias add reading the product.
        let Some(k2) = single_use_by(*v1, k1) else {
            continue;
        };
        let add = &program.equations[k2];
        let (Primitive::Binary(BinaryOp::Add), [Atom::Var(x), b], [v2]) = (
            &add.primitive,
            add.inputs.as_slice(),
            add.outputs.as_slice(),
        ) else {
            continue;
        };
        let (a1, ab) = (program.avals[v1.0 as usize].clone(), program.aval_of(b));
        if x != v1
            || removed[k2]
            || Layout::of(
                &a1.shape,
                (a1.dtype, a1.weak),
                &ab.shape,
                (ab.dtype, ab.weak),
            ) != Some(Layout::Row)
            || ab.dtype != DType::F32
        {
            continue;
        }
        // An optional `maximum(·, 0)` reading the sum.
        let relu = single_use_by(*v2, k2).filter(|&k3| {
            let eq = &program.equations[k3];
            matches!((&eq.primitive, eq.inputs.as_slice()), (Primitive::Binary(BinaryOp::Maximum), [Atom::Var(y), Atom::Literal(zero)]) if y == v2 && is_zero_scalar(zero))
        });
        let last = relu.unwrap_or(k2);
        let out = program.equations[last].outputs[0];
        let chain: Vec<&Equation> = [Some(k1), Some(k2), relu]
            .into_iter()
            .flatten()
            .map(|k| &program.equations[k])
            .collect();
        let body = chain_program(program, &chain, &[a.clone(), w.clone(), b.clone()]);
        removed[k1] = true;
        removed[k2] = true;
        if let Some(k3) = relu {
            removed[k3] = true;
        }
        removed[last] = false;
        replaced[last] = Some(Equation {
            primitive: Primitive::Call {
                program: ProgramRef(Arc::new(body)),
            },
            inputs: vec![a.clone(), w.clone(), b.clone()],
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

/// The chain as a program of its own, over inputs `(x, W, b)`.
fn chain_program(program: &Program, chain: &[&Equation], inputs: &[Atom]) -> Program {
    let mut avals: Vec<AbstractValue> = inputs.iter().map(|a| program.aval_of(a)).collect();
    let mut renamed: Vec<(VarId, VarId)> = inputs
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a {
            Atom::Var(v) => Some((*v, VarId(i as u32))),
            Atom::Literal(_) => None,
        })
        .collect();
    // Variables are renamed to the sub-program's; literals stay where they are.
    let rename = |renamed: &[(VarId, VarId)], atom: &Atom| -> Atom {
        match atom {
            Atom::Var(v) => renamed
                .iter()
                .find(|(from, _)| from == v)
                .map_or_else(|| atom.clone(), |(_, to)| Atom::Var(*to)),
            Atom::Literal(_) => atom.clone(),
        }
    };
    let mut equations = Vec::with_capacity(chain.len());
    for eq in chain {
        let inputs = eq.inputs.iter().map(|a| rename(&renamed, a)).collect();
        let out = VarId(avals.len() as u32);
        avals.push(program.avals[eq.outputs[0].0 as usize].clone());
        renamed.push((eq.outputs[0], out));
        equations.push(Equation {
            primitive: eq.primitive.clone(),
            inputs,
            outputs: vec![out],
        });
    }
    let output = equations
        .last()
        .map(|eq: &Equation| eq.outputs[0])
        .unwrap_or(VarId(0));
    Program::new(
        (0..inputs.len()).map(|i| VarId(i as u32)).collect(),
        equations,
        vec![Atom::Var(output)],
        avals,
    )
}

/// The chain a called program holds, if it is one [`fuse`] built.
pub(crate) fn dense_of(program: &Program) -> Option<Dense> {
    let prims: Vec<&Primitive> = program.equations.iter().map(|eq| &eq.primitive).collect();
    let relu = match prims.as_slice() {
        [Primitive::Matmul, Primitive::Binary(BinaryOp::Add)] => false,
        [
            Primitive::Matmul,
            Primitive::Binary(BinaryOp::Add),
            Primitive::Binary(BinaryOp::Maximum),
        ] => true,
        _ => return None,
    };
    (program.inputs.len() == 3).then_some(Dense { relu })
}

/// Runs a fused chain on `(x, W, b)`: the product, then bias and activation in one pass
/// over its buffer. `None` when the operands are not of the chain's form after all.
pub(crate) fn dense(dense: Dense, args: &[Array]) -> Option<Result<Array>> {
    let [x, w, b] = args else { return None };
    let product = match kernels::small_matmul(x, w)? {
        Ok(product) => product,
        Err(e) => return Some(Err(e)),
    };
    let mut product = product;
    let bias = b.as_slice::<f32>().ok()?;
    let out = product.unique_f32_mut()?;
    if bias.is_empty() || out.len() % bias.len() != 0 {
        return None;
    }
    for row in out.chunks_exact_mut(bias.len()) {
        for (o, &q) in row.iter_mut().zip(bias) {
            let sum = BinaryOp::Add.f32(*o, q);
            *o = if dense.relu {
                BinaryOp::Maximum.f32(sum, 0.0)
            } else {
                sum
            };
        }
    }
    Some(Ok(product))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fast;
    use nnx_core::Engine;
    use nnx_core::program::trace_fn;

    fn aval(shape: &[usize]) -> AbstractValue {
        AbstractValue::new(shape.to_vec(), DType::F32, false)
    }

    fn arr(shape: &[usize], seed: f32) -> Array {
        let n: usize = shape.iter().product();
        let data = (0..n).map(|i| ((i as f32 + seed) * 0.37).sin()).collect();
        Array::from_vec(shape, data).unwrap()
    }

    #[test]
    fn dense_chains_fuse_and_agree_bit_for_bit() {
        // Two layers with relu, a last one without, and a product used twice (not fused).
        let traced = trace_fn(&[aval(&[4, 8]), aval(&[8, 8]), aval(&[8])], |xs| {
            let (x, w, b) = (&xs[0], &xs[1], &xs[2]);
            let h = x.matmul(w)?.add(b)?.relu()?;
            let h = h.matmul(w)?.add(b)?.relu()?;
            let y = h.matmul(w)?.add(b)?;
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
            .filter(|eq| matches!(&eq.primitive, Primitive::Call { program } if dense_of(&program.0).is_some()))
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
}
