//! Linear-algebra derivatives with the values JAX 0.10.2 gives (`golden/linalg.py` writes
//! `golden/linalg.json`): `lax.linalg.triangular_solve` under every combination of its
//! flags (solution, gradients of both operands, JVP), with a vector right-hand side, over
//! a batch and under `vmap`; and the orthogonal initializer's signed `Q` (`q *
//! sign(diag(r))` of `jnp.linalg.qr`) differentiated in both modes and to second order.

use std::sync::OnceLock;

use serde_json::Value as Json;

use nnx_core::tensor::TriangularSolve;
use nnx_core::tensor::elementwise::UnaryOp;
use nnx_core::transforms::{Grad, grad, jit, jvp, value_and_grad, vmap};
use nnx_core::{Axes, Engine, ErrorKind, Result, Tensor};

use super::control::close;
use crate::{CaseResult, Failure, Outcome, ensure};

/// `golden/linalg.json`.
fn golden() -> &'static Json {
    static GOLDEN: OnceLock<Json> = OnceLock::new();
    GOLDEN.get_or_init(|| {
        serde_json::from_str(include_str!("../../golden/linalg.json")).unwrap_or(Json::Null)
    })
}

/// A golden `{shape, values}` entry as a tensor.
fn tensor(json: &Json) -> Result<Tensor> {
    let shape: Vec<usize> = (json["shape"].as_array().into_iter().flatten())
        .filter_map(Json::as_u64)
        .map(|d| d as usize)
        .collect();
    Tensor::from_vec(&shape, super::control::floats(&json["values"]))
}

/// Checks `got` against the golden entry `expected` (shape and values within 1e-5).
fn agree(what: &str, got: &Tensor, expected: &Json) -> std::result::Result<(), Failure> {
    let want = tensor(expected)?;
    let values = got.to_vec::<f32>()?;
    let wanted = want.to_vec::<f32>()?;
    ensure!(
        got.shape() == want.shape() && close(&values, &wanted),
        "{what}: {:?} {values:?}; JAX: {:?} {wanted:?}",
        got.shape(),
        want.shape()
    );
    Ok(())
}

fn spec_of(case: &Json) -> TriangularSolve {
    let flag = |name: &str| case[name].as_bool().unwrap_or(false);
    TriangularSolve {
        left_side: flag("left_side"),
        lower: flag("lower"),
        transpose_a: flag("transpose_a"),
        unit_diagonal: flag("unit_diagonal"),
    }
}

/// `lax.linalg.triangular_solve` as JAX computes it, for each of the 16 combinations of
/// `left_side`, `lower`, `transpose_a` and `unit_diagonal`: the solution inside `jit`, the
/// gradients of `⟨x, w⟩` with respect to `a` (its read triangle only) and `b`, and the JVP
/// along tangents of both. A vector right-hand side, a batch of matrices, `vmap` over
/// either operand and shape errors too.
pub fn triangular_solve_matches_jax(engine: &dyn Engine) -> CaseResult {
    let g = golden();
    let a = tensor(&g["a"])?;
    let ta = tensor(&g["tangent_a"])?;
    let cases = g["triangular_solve"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(cases.len() == 16, "golden data has {} solves", cases.len());
    for case in &cases {
        let spec = spec_of(case);
        let (b, w) = (tensor(&case["b"])?, tensor(&case["weights"])?);
        let solve = jit(move |a: &Tensor, b: &Tensor| a.triangular_solve(b, spec));
        agree(
            &format!("{spec}"),
            &solve.call(engine, (&a, &b))?,
            &case["x"],
        )?;
        let loss = |a: &Tensor, b: &Tensor| a.triangular_solve(b, spec)?.mul(&w)?.sum(Axes::All);
        let grads = value_and_grad(loss)
            .argnums(&[0, 1])
            .call(engine, (&a, &b))?;
        agree(
            &format!("grad a, {spec}"),
            grads.grads[0].array()?,
            &case["grad_a"],
        )?;
        agree(
            &format!("grad b, {spec}"),
            grads.grads[1].array()?,
            &case["grad_b"],
        )?;
        let tb = tensor(&case["tangent_b"])?;
        let out = jvp(move |a: &Tensor, b: &Tensor| a.triangular_solve(b, spec))
            .argnums(&[0, 1])
            .call(
                engine,
                (&a, &b),
                &[Grad::Array(ta.clone()), Grad::Array(tb)],
            )?;
        agree(
            &format!("jvp, {spec}"),
            &out.tangent.as_tensor()?,
            &case["tangent"],
        )?;
    }

    let lower_left = TriangularSolve {
        left_side: true,
        lower: true,
        ..TriangularSolve::default()
    };
    let ones_to_three = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
    let vector = jit(move |a: &Tensor, b: &Tensor| a.triangular_solve(b, lower_left));
    agree(
        "vector b",
        &vector.call(engine, (&a, &ones_to_three))?,
        &g["vector"],
    )?;

    let batched = &g["batched"];
    let (batch_a, batch_b) = (tensor(&batched["a"])?, tensor(&batched["b"])?);
    let upper_left = TriangularSolve {
        left_side: true,
        ..TriangularSolve::default()
    };
    let by_batch = jit(move |a: &Tensor, b: &Tensor| a.triangular_solve(b, upper_left));
    agree(
        "batch",
        &by_batch.call(engine, (&batch_a, &batch_b))?,
        &batched["x"],
    )?;
    // vmap over both operands, over the matrices only, over the right-hand sides only.
    let mapped = vmap(move |a: &Tensor, b: &Tensor| a.triangular_solve(b, upper_left));
    agree(
        "vmap",
        &mapped.call(engine, (&batch_a, &batch_b))?,
        &batched["x"],
    )?;
    let first_b = batch_b.index_axis(0, 0)?;
    let over_a = vmap(move |a: &Tensor, b: &Tensor| a.triangular_solve(b, upper_left))
        .in_axes((0, None::<i32>))
        .call(engine, (&batch_a, &first_b))?;
    let first_x = by_batch.call(
        engine,
        (
            &batch_a,
            &Tensor::stack(&[first_b.clone(), first_b.clone()], 0)?,
        ),
    )?;
    ensure!(
        over_a.to_vec::<f32>()? == first_x.to_vec::<f32>()?,
        "vmap over a alone differs from the batch"
    );
    let first_a = batch_a.index_axis(0, 0)?;
    let over_b = vmap(move |a: &Tensor, b: &Tensor| a.triangular_solve(b, upper_left))
        .in_axes((None::<i32>, 0))
        .call(engine, (&first_a, &batch_b))?;
    let same_a = by_batch.call(
        engine,
        (
            &Tensor::stack(&[first_a.clone(), first_a.clone()], 0)?,
            &batch_b,
        ),
    )?;
    ensure!(
        over_b.to_vec::<f32>()? == same_a.to_vec::<f32>()?,
        "vmap over b alone differs from the batch"
    );

    // Shapes JAX refuses.
    for (a_shape, b_shape) in [
        (vec![2, 3], vec![2, 2]),
        (vec![3, 3], vec![2, 2]),
        (vec![3, 3], vec![2, 3, 2]),
        (vec![2, 3, 3], vec![3, 3, 2]),
    ] {
        let err = jit(move |a: &Tensor, b: &Tensor| a.triangular_solve(b, upper_left))
            .call(engine, (&Tensor::zeros(&a_shape), &Tensor::zeros(&b_shape)));
        ensure!(
            matches!(&err, Err(e) if e.kind() == ErrorKind::Shape),
            "a {a_shape:?}, b {b_shape:?}: {err:?}"
        );
    }
    Ok(Outcome::Pass)
}

/// The orthogonal initializer's `Q` differentiated as JAX differentiates `q *
/// sign(diag(r))` for `q, r = jnp.linalg.qr(a)`, on a tall matrix and a batch of square
/// ones: the gradient of `⟨Q, w⟩`, the JVP along a direction, and the Hessian-vector
/// product (`jvp` of `grad`); and the batch's gradient under `vmap` equals the batched one.
pub fn qr_derivatives_match_jax(engine: &dyn Engine) -> CaseResult {
    for name in ["tall", "square_batch"] {
        let case = &golden()["qr"][name];
        let (a, w, v) = (
            tensor(&case["a"])?,
            tensor(&case["weights"])?,
            tensor(&case["direction"])?,
        );
        let q = jit(|a: &Tensor| a.qr_q()).call(engine, (&a,))?;
        agree(&format!("{name}: q"), &q, &case["q"])?;
        let loss = |a: &Tensor| a.qr_q()?.mul(&w)?.sum(Axes::All);
        let g = grad(loss).argnums(&[0]).call(engine, (&a,))?;
        agree(&format!("{name}: grad"), g.grads[0].array()?, &case["grad"])?;
        let out = jvp(|a: &Tensor| a.qr_q()).argnums(&[0]).call(
            engine,
            (&a,),
            &[Grad::Array(v.clone())],
        )?;
        agree(
            &format!("{name}: jvp"),
            &out.tangent.as_tensor()?,
            &case["tangent"],
        )?;
        let hvp = jvp(|a: &Tensor| -> Result<Tensor> {
            let g = grad(loss).argnums(&[0]).call(engine, (a,))?;
            Ok(g.grads[0].array()?.clone())
        })
        .argnums(&[0])
        .call(engine, (&a,), &[Grad::Array(v.clone())])?;
        agree(
            &format!("{name}: hvp"),
            &hvp.tangent.as_tensor()?,
            &case["hvp"],
        )?;
        if a.ndim() == 3 {
            let per_matrix = vmap(|a: &Tensor, w: &Tensor| -> Result<Tensor> {
                let loss = |a: &Tensor| a.qr_q()?.mul(w)?.sum(Axes::All);
                Ok(grad(loss).argnums(&[0]).call(engine, (a,))?.grads[0]
                    .array()?
                    .clone())
            })
            .call(engine, (&a, &w))?;
            agree(&format!("{name}: vmap of grad"), &per_matrix, &case["grad"])?;
        }
    }
    // What defines the derivative, on a matrix JAX was not asked about: `Q̇` keeps the
    // columns orthonormal (`QᵀQ̇` is skew-symmetric) and `Qᵀ(ȧ − Q̇R)`, the tangent of `R`,
    // is upper triangular.
    let wave = |n: usize, phase: f32| -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 1.7 + phase).sin()).collect()
    };
    let (a, v) = (
        Tensor::from_vec(&[5, 3], wave(15, 0.3))?,
        Tensor::from_vec(&[5, 3], wave(15, 2.0))?,
    );
    let out =
        jvp(|a: &Tensor| a.qr_q())
            .argnums(&[0])
            .call(engine, (&a,), &[Grad::Array(v.clone())])?;
    let (q, dq) = (out.value.as_tensor()?, out.tangent.as_tensor()?);
    let qt = q.transpose()?;
    let skew = qt.matmul(&dq)?.add(&dq.transpose()?.matmul(&q)?)?;
    let dr = qt.matmul(&v.sub(&dq.matmul(&qt.matmul(&a)?)?)?)?;
    let largest =
        |t: &Tensor| -> Result<f32> { t.unary(UnaryOp::Abs)?.max(Axes::All)?.item::<f32>() };
    let (skew, below) = (largest(&skew)?, largest(&dr.tril(-1)?)?);
    ensure!(
        skew < 1e-5 && below < 1e-5,
        "QᵀQ̇ + Q̇ᵀQ up to {skew}, tril(Ṙ, -1) up to {below}"
    );
    Ok(Outcome::Pass)
}
