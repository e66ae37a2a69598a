//! `grad` / `value_and_grad`: NNX semantics, nesting, and agreement with finite differences.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use nnx_core::transforms::{DiffState, jit, value_and_grad, vmap};
use nnx_core::{
    Axes, BatchStat, Engine, Error, Filter, Object, Param, Path, Result, Tensor, Value,
    VariableType,
};

use super::guide::Count;
use crate::{CaseResult, Failure, Outcome, ensure};

fn vector(values: &[f32]) -> Tensor {
    Tensor::from_slice(values)
}

/// Default `grad` differentiates the first argument's Params only; every other state update
/// made inside propagates out, and the gradient is a State of Param Variables.
pub fn grad_differentiates_params_and_propagates_state(engine: &dyn Engine) -> CaseResult {
    let m = Object::new("Model")
        .with(
            "w",
            Param::new(vector(&[1.0, 2.0])).with_metadata("sharding", nnx_core::static_tuple!["a"]),
        )?
        .with("stats", BatchStat::new(vector(&[1.0, 1.0])))?
        .with("count", Count::new(Tensor::scalar(0i32)))?
        .with("raw", vector(&[5.0]))?;
    let out = value_and_grad(|args: &[Value]| {
        let m = args[0].object()?;
        m.var("count")?.update(|c| c + 1)?;
        m.var("stats")?.update(|s| s * 2.0)?;
        let w = m.value("w")?;
        w.mul(&w)?
            .sum(Axes::All)?
            .add(&m.value("stats")?.sum(Axes::All)?)
            .map(Value::from)
    })
    .call(engine, &[Value::from(&m)])?;
    ensure!(out.value.item::<f32>()? == 9.0, "value {}", out.value);
    let grads = out.grads[0].state().map_err(Failure::from)?;
    let paths: Vec<String> = grads.paths().map(Path::to_string).collect();
    ensure!(paths == ["('w',)"], "gradient paths {paths:?}");
    let gw = grads.variable(&Path::from(["w"]))?;
    ensure!(
        gw.type_name() == "Param",
        "gradient type {}",
        gw.type_name()
    );
    ensure!(
        gw.metadata_value("sharding") == Some(nnx_core::static_tuple!["a"]),
        "metadata lost"
    );
    ensure!(
        gw.value().to_vec::<f32>()? == vec![2.0, 4.0],
        "dw {}",
        gw.value()
    );
    ensure!(
        m.value("count")?.item::<i32>()? == 1,
        "count did not propagate"
    );
    ensure!(
        m.value("stats")?.to_vec::<f32>()? == vec![2.0, 2.0],
        "stats did not propagate"
    );
    Ok(Outcome::Pass)
}

/// `DiffState` filters, several argnums (including an array argument), and `has_aux`.
pub fn grad_diffstate_argnums_and_aux(engine: &dyn Engine) -> CaseResult {
    let m = Object::new("Model")
        .with("p", Param::new(vector(&[3.0])))?
        .with("s", BatchStat::new(vector(&[4.0])))?;
    let x = vector(&[2.0]);
    let out = value_and_grad(|args: &[Value]| {
        let m = args[0].object()?;
        let x = args[1].as_tensor()?;
        let loss = m.value("p")?.mul(&m.value("s")?)?.mul(&x)?.sum(Axes::All)?;
        Ok(Value::tuple(vec![Value::from(loss), Value::from("aux")]))
    })
    .wrt([
        DiffState::new(
            0,
            Filter::any([VariableType::PARAM.into(), VariableType::BATCH_STAT.into()]),
        ),
        DiffState::new(1, Filter::Everything),
    ])
    .has_aux(true)
    .call(engine, &[Value::from(&m), Value::from(x)])?;
    ensure!(out.value.item::<f32>()? == 24.0, "value {}", out.value);
    ensure!(
        out.aux.as_ref().and_then(|a| a.as_static().cloned()) == Some("aux".into()),
        "aux {:?}",
        out.aux
    );
    let s = out.grads[0].state().map_err(Failure::from)?;
    ensure!(
        s.variable(&Path::from(["p"]))?.value().to_vec::<f32>()? == vec![8.0],
        "dp"
    );
    ensure!(
        s.variable(&Path::from(["s"]))?.value().to_vec::<f32>()? == vec![6.0],
        "ds"
    );
    ensure!(
        out.grads[1]
            .array()
            .map_err(Failure::from)?
            .to_vec::<f32>()?
            == vec![12.0],
        "dx"
    );
    let err = value_and_grad(|args: &[Value]| Ok(args[0].clone()))
        .argnums(&[0, 0])
        .call(engine, &[Value::from(vector(&[1.0]))])
        .err()
        .ok_or_else(|| Failure("repeated argnums must fail".into()))?;
    crate::snapshots::snapshot("grad_repeated_argnums", &err.to_string());
    let err = value_and_grad(|args: &[Value]| Ok(args[0].clone()))
        .wrt([DiffState::new(0, Filter::Everything)])
        .call(engine, &[Value::from(vector(&[1.0, 2.0]))])
        .err()
        .ok_or_else(|| Failure("a non-scalar loss must fail".into()))?;
    crate::snapshots::snapshot("grad_non_scalar_loss", &err.to_string());
    ensure!(
        err.kind() == nnx_core::ErrorKind::Shape,
        "kind {:?}",
        err.kind()
    );
    // A loss that is not an array at all, with and without aux.
    for has_aux in [false, true] {
        let err = value_and_grad(|_: &[Value]| Ok(Value::from(())))
            .wrt([DiffState::new(0, Filter::Everything)])
            .has_aux(has_aux)
            .call(engine, &[Value::from(vector(&[1.0]))])
            .err()
            .ok_or_else(|| Failure("a function without a loss must fail".into()))?;
        ensure!(
            err == Error::GradLossMissing { has_aux },
            "unexpected error {err:?}"
        );
    }
    // A differentiated tuple argument is a pytree to jax.grad: differentiated whole, its
    // gradient a tuple of the same structure.
    let out = value_and_grad(|args: &[Value]| match &args[0] {
        Value::Tuple(items) => Ok(Value::from(items[0].as_tensor()?.sum(Axes::All)?)),
        other => Ok(other.clone()),
    })
    .argnums(&[0])
    .call(
        engine,
        &[Value::tuple(vec![
            Value::from(vector(&[1.0])),
            Value::from(vector(&[2.0])),
        ])],
    )?;
    let tree = out.grads[0].tree()?;
    let leaves = (tree.entry(0)?.as_tensor()?.to_vec::<f32>()?)
        .into_iter()
        .chain(tree.entry(1)?.as_tensor()?.to_vec::<f32>()?)
        .collect::<Vec<_>>();
    ensure!(leaves == [1.0, 0.0], "the gradient of a tuple: {tree:?}");
    // A static argument has nothing to differentiate.
    let err = value_and_grad(|_: &[Value]| Ok(Value::from(vector(&[1.0]).sum(Axes::All)?)))
        .argnums(&[0])
        .call(engine, &[Value::from(3)])
        .err()
        .ok_or_else(|| Failure("a differentiated static argument must fail".into()))?;
    ensure!(
        err == Error::NoDifferentiableArray { argnum: 0 },
        "unexpected error {err:?}"
    );
    // Empty argnums fail before running anything (JAX fails on them too), so the caller's
    // object keeps its state and attribute order.
    let m = Object::new("M")
        .with("z", Param::new(vector(&[1.0])))?
        .with("a", Param::new(vector(&[2.0])))?;
    let err = value_and_grad(|args: &[Value]| {
        let m = args[0].object()?;
        m.var("z")?.update(|z| z + 1)?;
        Ok(Value::from(m.value("a")?.sum(Axes::All)?))
    })
    .argnums(&[])
    .call(engine, (&m,))
    .err()
    .ok_or_else(|| Failure("empty argnums must fail".into()))?;
    crate::snapshots::snapshot("grad_empty_argnums", &err.to_string());
    ensure!(
        m.attribute_names() == ["z", "a"] && m.value("z")?.to_vec::<f32>()? == vec![1.0],
        "a failed grad changed the caller's object: {:?}",
        m.attribute_names()
    );
    // Integer inputs are not differentiable: the error names the argument.
    let err = value_and_grad(|args: &[Value]| {
        Ok(Value::from(
            args[1]
                .as_tensor()?
                .astype(nnx_core::DType::F32)?
                .sum(Axes::All)?,
        ))
    })
    .argnums(&[1])
    .call(engine, (&m, &Tensor::arange(3)))
    .err()
    .ok_or_else(|| Failure("grad of an int32 argument must fail".into()))?;
    ensure!(
        err.kind() == nnx_core::ErrorKind::DType,
        "kind {:?}",
        err.kind()
    );
    crate::snapshots::snapshot("grad_integer_argument", &err.to_string());
    let ints = Object::new("M").with("w", Param::new(Tensor::arange(2)))?;
    let err = value_and_grad(|args: &[Value]| {
        let w = args[0].object()?.value("w")?;
        Ok(Value::from(w.astype(nnx_core::DType::F32)?.sum(Axes::All)?))
    })
    .call(engine, (&ints,))
    .err()
    .ok_or_else(|| Failure("grad of an int32 Param must fail".into()))?;
    crate::snapshots::snapshot("grad_integer_param", &err.to_string());
    Ok(Outcome::Pass)
}

/// A Param shared by two differentiated arguments gets its total gradient in both States
/// (Flax reports it only under the first).
pub fn grad_shared_variable_gets_total_gradient_everywhere(engine: &dyn Engine) -> CaseResult {
    let p = Param::new(vector(&[1.0, 2.0]));
    let a = Object::new("A").with("p", &p)?;
    let b = Object::new("B").with("q", &p)?;
    let out = value_and_grad(|args: &[Value]| {
        let p = args[0].object()?.value("p")?;
        let q = args[1].object()?.value("q")?;
        Ok(Value::from(p.mul(&q)?.sum(Axes::All)?))
    })
    .argnums(&[0, 1])
    .call(engine, &[Value::from(&a), Value::from(&b)])?;
    let ga = out.grads[0]
        .state()
        .map_err(Failure::from)?
        .variable(&Path::from(["p"]))?;
    let gb = out.grads[1]
        .state()
        .map_err(Failure::from)?
        .variable(&Path::from(["q"]))?;
    ensure!(
        ga.value().to_vec::<f32>()? == vec![2.0, 4.0],
        "dA {}",
        ga.value()
    );
    ensure!(
        gb.value().to_vec::<f32>()? == vec![2.0, 4.0],
        "dB {}",
        gb.value()
    );
    Ok(Outcome::Pass)
}

pub(super) fn linear_loss(args: &[Value]) -> Result<Value> {
    let m = args[0].object()?;
    let (x, y) = (args[1].as_tensor()?, args[2].as_tensor()?);
    let pred = x.matmul(&m.value("w")?)?.add(&m.value("b")?)?;
    let err = pred.sub(&y)?;
    Ok(Value::from(err.mul(&err)?.mean(Axes::All)?))
}

pub(super) fn linear_model() -> Result<Object> {
    Object::new("Linear")
        .with(
            "w",
            Param::new(Tensor::from_vec(
                &[3, 2],
                vec![0.1f32, -0.2, 0.3, 0.4, -0.5, 0.6],
            )?),
        )?
        .with("b", Param::new(vector(&[0.05, -0.05])))
}

/// Per-example gradients: `vmap(grad(f))` equals computing each example's gradient alone;
/// `jit(value_and_grad(f))` equals the eager result.
pub fn grad_nests_inside_vmap_and_jit(engine: &dyn Engine) -> CaseResult {
    let m = linear_model()?;
    let xs = Tensor::from_vec(&[4, 3], (0..12).map(|i| i as f32 * 0.1 - 0.5).collect())?;
    let ys = Tensor::from_vec(&[4, 2], (0..8).map(|i| i as f32 * 0.2 - 0.7).collect())?;
    let per_example = vmap(|args: &[Value]| {
        let out = value_and_grad(linear_loss).call(engine, args)?;
        let g = out.grads[0].state()?;
        Ok(Value::tuple(vec![
            Value::from(g.variable(&Path::from(["w"]))?.value()),
            Value::from(g.variable(&Path::from(["b"]))?.value()),
        ]))
    })
    .in_axes((None::<i32>, 0, 0))
    .call(
        engine,
        &[
            Value::from(&m),
            Value::from(xs.clone()),
            Value::from(ys.clone()),
        ],
    )?;
    let Value::Tuple(items) = per_example else {
        return Err(Failure("expected a tuple of gradients".into()));
    };
    let dw = items[0].as_tensor()?;
    ensure!(
        dw.shape() == [4, 3, 2],
        "per-example dw shape {:?}",
        dw.shape()
    );
    for i in 0..4 {
        let single = value_and_grad(linear_loss).call(
            engine,
            &[
                Value::from(&m),
                Value::from(xs.index_axis(0, i)?),
                Value::from(ys.index_axis(0, i)?),
            ],
        )?;
        let expected = single.grads[0]
            .state()
            .map_err(Failure::from)?
            .variable(&Path::from(["w"]))?
            .value();
        ensure!(
            dw.index_axis(0, i)?.allclose(&expected, 1e-5, 1e-6)?,
            "example {i}: {dw} vs {expected}"
        );
    }
    let eager = value_and_grad(linear_loss).call(
        engine,
        &[
            Value::from(&m),
            Value::from(xs.clone()),
            Value::from(ys.clone()),
        ],
    )?;
    let compiled = jit(|args: &[Value]| {
        let out = value_and_grad(linear_loss).call(engine, args)?;
        let g = out.grads[0].state()?;
        Ok(Value::tuple(vec![
            Value::from(out.value),
            Value::from(g.variable(&Path::from(["w"]))?.value()),
        ]))
    });
    let result = compiled.call(engine, &[Value::from(&m), Value::from(xs), Value::from(ys)])?;
    let Value::Tuple(items) = result else {
        return Err(Failure("expected a tuple".into()));
    };
    let expected_w = eager.grads[0]
        .state()
        .map_err(Failure::from)?
        .variable(&Path::from(["w"]))?
        .value();
    ensure!(
        items[0].as_tensor()?.allclose(&eager.value, 1e-6, 1e-7)?,
        "jit value"
    );
    ensure!(
        items[1].as_tensor()?.allclose(&expected_w, 1e-5, 1e-6)?,
        "jit gradient"
    );
    Ok(Outcome::Pass)
}

/// The data of a finite-difference check: inputs `x` (`n × d`), targets `y` (`n`), hidden
/// width `h`.
struct Batch<'a> {
    x: &'a [f64],
    y: &'a [f64],
    d: usize,
    h: usize,
}

/// A random small MLP's loss as plain f64 arithmetic, for finite differences:
/// `mean((tanh(x @ w1 + b1) @ w2 + b2 - y)^2)`.
fn mlp_loss_f64(w1: &[f64], b1: &[f64], w2: &[f64], b2: f64, batch: &Batch<'_>) -> f64 {
    let Batch { x, y, d, h } = *batch;
    let n = y.len();
    let mut total = 0.0;
    for i in 0..n {
        let mut out = b2;
        for j in 0..h {
            let mut a = b1[j];
            for k in 0..d {
                a += x[i * d + k] * w1[k * h + j];
            }
            out += a.tanh() * w2[j];
        }
        total += (out - y[i]).powi(2);
    }
    total / n as f64
}

/// Gradients of random small MLPs agree with central finite differences computed in f64
/// (relative tolerance 2e-3, absolute 1e-4: float32 forward and backward passes).
pub fn grad_matches_finite_differences(engine: &dyn Engine) -> CaseResult {
    let strategy = (1usize..4, 1usize..4, 1usize..5, vec(-1.0f64..1.0, 64));
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let fail = |e: Error| TestCaseError::fail(e.to_string());
    let result = runner.run(&strategy, |(d, h, n, r)| {
        let take = |off: usize, len: usize| -> Vec<f64> {
            (0..len).map(|i| r[(off + i) % r.len()]).collect()
        };
        let (w1, b1, w2) = (take(0, d * h), take(7, h), take(13, h));
        let b2 = r[21];
        let (x, y) = (take(23, n * d), take(41, n));
        let f32s = |v: &[f64]| v.iter().map(|&z| z as f32).collect::<Vec<_>>();
        let m = Object::new("MLP")
            .with(
                "w1",
                Param::new(Tensor::from_vec(&[d, h], f32s(&w1)).map_err(fail)?),
            )
            .and_then(|m| m.with("b1", Param::new(Tensor::from_vec(&[h], f32s(&b1))?)))
            .and_then(|m| m.with("w2", Param::new(Tensor::from_vec(&[h], f32s(&w2))?)))
            .and_then(|m| m.with("b2", Param::new(Tensor::scalar(b2 as f32))))
            .map_err(fail)?;
        let xt = Tensor::from_vec(&[n, d], f32s(&x)).map_err(fail)?;
        let yt = Tensor::from_vec(&[n], f32s(&y)).map_err(fail)?;
        let out = value_and_grad(|args: &[Value]| {
            let m = args[0].object()?;
            let hidden = args[1]
                .as_tensor()?
                .matmul(&m.value("w1")?)?
                .add(&m.value("b1")?)?
                .tanh()?;
            let pred = hidden.matmul(&m.value("w2")?)?.add(&m.value("b2")?)?;
            let err = pred.sub(&args[2].as_tensor()?)?;
            Ok(Value::from(err.mul(&err)?.mean(Axes::All)?))
        })
        .call(engine, &[Value::from(&m), Value::from(xt), Value::from(yt)])
        .map_err(fail)?;
        let grads = out.grads[0].state().map_err(fail)?;
        let eps = 1e-6;
        let batch = Batch { x: &x, y: &y, d, h };
        let loss =
            |w1: &[f64], b1: &[f64], w2: &[f64], b2: f64| mlp_loss_f64(w1, b1, w2, b2, &batch);
        let check = |name: &str,
                     analytic: Vec<f32>,
                     numeric: Vec<f64>|
         -> std::result::Result<(), TestCaseError> {
            for (i, (a, e)) in analytic.iter().zip(&numeric).enumerate() {
                let a = *a as f64;
                prop_assert!(
                    (a - e).abs() <= 1e-4 + 2e-3 * e.abs(),
                    "{name}[{i}]: analytic {a} vs finite difference {e}"
                );
            }
            Ok(())
        };
        let fd = |params: &[f64], f: &dyn Fn(&[f64]) -> f64| -> Vec<f64> {
            (0..params.len())
                .map(|i| {
                    let (mut up, mut down) = (params.to_vec(), params.to_vec());
                    up[i] += eps;
                    down[i] -= eps;
                    (f(&up) - f(&down)) / (2.0 * eps)
                })
                .collect()
        };
        let get = |name: &str| -> std::result::Result<Vec<f32>, TestCaseError> {
            grads
                .variable(&Path::from([name]))
                .and_then(|v| v.value().to_vec::<f32>())
                .map_err(fail)
        };
        check("w1", get("w1")?, fd(&w1, &|p| loss(p, &b1, &w2, b2)))?;
        check("b1", get("b1")?, fd(&b1, &|p| loss(&w1, p, &w2, b2)))?;
        check("w2", get("w2")?, fd(&w2, &|p| loss(&w1, &b1, p, b2)))?;
        check("b2", get("b2")?, fd(&[b2], &|p| loss(&w1, &b1, &w2, p[0])))?;
        Ok(())
    });
    result
        .map(|()| Outcome::Pass)
        .map_err(|e| Failure(format!("grad_matches_finite_differences: {e}")))
}

/// `grad(vmap(f))`: differentiating through a vectorised per-example loss equals
/// differentiating the batched computation.
pub fn grad_through_vmap(engine: &dyn Engine) -> CaseResult {
    let m = linear_model()?;
    let xs = Tensor::from_vec(&[4, 3], (0..12).map(|i| i as f32 * 0.1 - 0.5).collect())?;
    let ys = Tensor::from_vec(&[4, 2], (0..8).map(|i| i as f32 * 0.2 - 0.7).collect())?;
    let through_vmap = value_and_grad(|args: &[Value]| {
        let losses = vmap(linear_loss)
            .in_axes((None::<i32>, 0, 0))
            .call(engine, args)?
            .as_tensor()?;
        Ok(Value::from(losses.mean(Axes::All)?))
    })
    .call(
        engine,
        &[
            Value::from(&m),
            Value::from(xs.clone()),
            Value::from(ys.clone()),
        ],
    )?;
    let batched = value_and_grad(linear_loss)
        .call(engine, &[Value::from(&m), Value::from(xs), Value::from(ys)])?;
    ensure!(
        through_vmap.value.allclose(&batched.value, 1e-5, 1e-6)?,
        "loss {} vs {}",
        through_vmap.value,
        batched.value
    );
    for name in ["w", "b"] {
        let a = through_vmap.grads[0]
            .state()
            .map_err(Failure::from)?
            .variable(&Path::from([name]))?
            .value();
        let b = batched.grads[0]
            .state()
            .map_err(Failure::from)?
            .variable(&Path::from([name]))?
            .value();
        ensure!(a.allclose(&b, 1e-5, 1e-6)?, "grad {name}: {a} vs {b}");
    }
    Ok(Outcome::Pass)
}

/// `stop_gradient`: the value passes, the gradient does not — at top level, inside `vmap`
/// and `jit`, and for a target computed from the very parameters being trained (the
/// pattern of a target network or a moving average).
pub fn stop_gradient_blocks_gradients(engine: &dyn Engine) -> CaseResult {
    let x = vector(&[3.0, -2.0, 0.5]);
    // d/dx Σ x·stop_gradient(x) = stop_gradient(x) = x (not 2x).
    let product = |x: &Tensor| -> Result<Tensor> { x.mul(&x.stop_gradient()?) };
    let direct =
        value_and_grad(|a: &[Value]| Ok(Value::from(product(&a[0].as_tensor()?)?.sum(Axes::All)?)))
            .argnums(&[0]);
    let mapped = value_and_grad(|a: &[Value]| {
        let y = vmap(|l: &[Value]| Ok(Value::from(product(&l[0].as_tensor()?)?)))
            .call(engine, a)?
            .as_tensor()?;
        Ok(Value::from(y.sum(Axes::All)?))
    })
    .argnums(&[0]);
    let jitted = value_and_grad(|a: &[Value]| {
        let y = jit(|l: &[Value]| Ok(Value::from(product(&l[0].as_tensor()?)?)))
            .call(engine, a)?
            .as_tensor()?;
        Ok(Value::from(y.sum(Axes::All)?))
    })
    .argnums(&[0]);
    for (what, out) in [
        ("grad", direct.call(engine, &[Value::from(x.clone())])?),
        (
            "grad(vmap)",
            mapped.call(engine, &[Value::from(x.clone())])?,
        ),
        ("grad(jit)", jitted.call(engine, &[Value::from(x.clone())])?),
    ] {
        let g = out.grads[0]
            .array()
            .map_err(Failure::from)?
            .to_vec::<f32>()?;
        ensure!(g == [3.0, -2.0, 0.5], "{what}: gradient {g:?}, expected x");
        ensure!(
            out.value.item::<f32>()? == 13.25,
            "{what}: value {}",
            out.value
        );
    }
    // A target from the same weights: loss = Σ (x·w - stop_gradient(x·w / 2))², so the
    // residual is x·w / 2 and d/dw = 2 · (x·w / 2) · x = (x·w) · x.
    let m = Object::new("Model").with("w", Param::new(vector(&[0.5, 1.0, -1.0])))?;
    let out = value_and_grad(|a: &[Value]| {
        let w = a[0].object()?.value("w")?;
        let pred = a[1].as_tensor()?.mul(&w)?.sum(Axes::All)?;
        let target = (&pred.stop_gradient()? * 0.5f32)?;
        let r = pred.sub(&target)?;
        Ok(Value::from(r.mul(&r)?))
    })
    .call(engine, &[Value::from(&m), Value::from(x.clone())])?;
    let dw = out.grads[0]
        .state()
        .map_err(Failure::from)?
        .variable(&Path::from(["w"]))?
        .value();
    // x·w = 1.5 - 2 - 0.5 = -1.
    ensure!(
        dw.allclose(&vector(&[-3.0, 2.0, -0.5]), 1e-6, 1e-6)?,
        "gradient through a stopped target {dw}"
    );
    Ok(Outcome::Pass)
}
