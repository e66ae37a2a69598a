//! Lifted control flow (`cond`, `switch`, `while_loop`, `fori_loop`) with the values Flax
//! 0.12.8 and JAX 0.10.2 give (`golden/control.py` writes `golden/control.json`): state
//! updates of the taken branch or of every iteration propagate, objects keep their
//! identity, structure changes are errors that change nothing, derivatives go through
//! (`cond` both ways, `fori_loop` as a scan, `while_loop` forward only), and under `vmap` a
//! batched predicate selects lane by lane. `eval_shape` gives abstract objects and changes
//! nothing.

use std::sync::OnceLock;

use serde_json::Value as Json;

use nnx_core::transforms::{
    Carry, Tangent, cond, eval_shape, fori_loop, jit, jvp, scan, switch, value_and_grad, vmap,
    while_loop,
};
use nnx_core::{Axes, Engine, Error, Object, Param, Path, Result, Tensor, Value, static_tuple};

use super::guide::{Count, golden_sharding, sharded_weights, sharding_of};
use crate::snapshots::snapshot;
use crate::{CaseResult, Failure, Outcome, ensure};

/// `golden/control.json`.
pub(super) fn golden() -> &'static Json {
    static GOLDEN: OnceLock<Json> = OnceLock::new();
    GOLDEN.get_or_init(|| {
        serde_json::from_str(include_str!("../../golden/control.json")).unwrap_or(Json::Null)
    })
}

pub(super) fn floats(json: &Json) -> Vec<f32> {
    (json.as_array().into_iter().flatten())
        .filter_map(Json::as_f64)
        .map(|v| v as f32)
        .collect()
}

pub(super) fn close(got: &[f32], expected: &[f32]) -> bool {
    got.len() == expected.len()
        && (got.iter().zip(expected)).all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs()))
}

/// The probe's `M`: `w = [1, 2, 3]` and a `Count` of 0.
pub(super) fn model() -> Result<Object> {
    Object::new("M")
        .with("w", Param::new(Tensor::from_slice(&[1.0f32, 2.0, 3.0])))?
        .with("count", Count::new(Tensor::scalar(0i32)))
}

/// `m.count += by`.
pub(super) fn bump(m: &Object, by: &Tensor) -> Result<()> {
    m.var("count")?.set_value((&m.value("count")? + by)?)
}

pub(super) fn count(m: &Object) -> Result<i32> {
    m.value("count")?.item::<i32>()
}

/// `nnx.cond` and `nnx.switch` as Flax runs them: the taken branch's value and state
/// update, a clamped index; the same inside `jit`, where the predicate is traced.
pub fn cond_and_switch_match_flax(engine: &dyn Engine) -> CaseResult {
    let g = golden();
    let step = cond(
        |m: &Object, x: &Tensor| -> Result<Tensor> {
            bump(m, &Tensor::scalar(1i32))?;
            m.value("w")?.mul(x)?.sum(Axes::All)
        },
        |m: &Object, x: &Tensor| -> Result<Tensor> {
            bump(m, &Tensor::scalar(-1i32))?;
            m.value("w")?.sub(x)?.sum(Axes::All)
        },
    );
    let x = Tensor::scalar(2.0f32);
    for (pred, key) in [(true, "true"), (false, "false")] {
        let expected = &g["cond"][key];
        let m = model()?;
        let y = step.call(engine, (pred, &m, &x))?.item::<f32>()?;
        ensure!(
            close(&[y], &[expected["y"].as_f64().unwrap_or(f64::NAN) as f32])
                && i64::from(count(&m)?) == expected["count"].as_i64().unwrap_or(-99),
            "cond({pred}): y = {y}, count = {}; Flax: {expected}",
            count(&m)?
        );
        // Inside jit the predicate is a tracer: the same result, one trace per structure.
        let m = model()?;
        let jitted = jit(|m: &Object, x: &Tensor, p: &Tensor| -> Result<Tensor> {
            step.call(engine, (p, m, x))
        });
        let y = jitted
            .call(engine, (&m, &x, &Tensor::scalar(pred)))?
            .item::<f32>()?;
        ensure!(
            close(&[y], &[expected["y"].as_f64().unwrap_or(f64::NAN) as f32])
                && i64::from(count(&m)?) == expected["count"].as_i64().unwrap_or(-99),
            "jit(cond({pred})): y = {y}, count = {}; Flax: {expected}",
            count(&m)?
        );
    }
    let pick = switch(vec![|m: &Object| -> Result<Tensor> {
        m.value("w")?.sum(Axes::All)
    }])
    .branch(|m: &Object| -> Result<Tensor> {
        m.var("count")?.set_value(Tensor::scalar(5i32))?;
        m.value("w")?.min(Axes::All)
    })
    .branch(|m: &Object| -> Result<Tensor> {
        m.var("count")?.set_value(Tensor::scalar(7i32))?;
        m.value("w")?.max(Axes::All)
    });
    for index in [-1, 0, 1, 2, 5] {
        let expected = &g["switch"][index.to_string()];
        let m = model()?;
        let y = pick
            .call(engine, (&Tensor::scalar(index), &m))?
            .item::<f32>()?;
        ensure!(
            close(&[y], &[expected["y"].as_f64().unwrap_or(f64::NAN) as f32])
                && i64::from(count(&m)?) == expected["count"].as_i64().unwrap_or(-99),
            "switch({index}): y = {y}, count = {}; Flax: {expected}",
            count(&m)?
        );
    }
    ensure!(
        pick.trace_count() == 1,
        "switch traced {} times for one structure",
        pick.trace_count()
    );
    Ok(Outcome::Pass)
}

/// `nnx.while_loop` and `nnx.fori_loop` as Flax runs them: state updated every iteration,
/// the loop value's objects returned as themselves; an empty range or a false predicate
/// leaves everything as it was.
pub fn while_and_fori_loops_match_flax(engine: &dyn Engine) -> CaseResult {
    let g = golden();
    let loop3 = while_loop(
        |_m: &Object, i: &Tensor| i.less(&Tensor::scalar(3i32)),
        |m: &Object, i: &Tensor| -> Result<(Object, Tensor)> {
            bump(m, &Tensor::scalar(1i32))?;
            m.var("w")?.set_value((&m.value("w")? * 2.0)?)?;
            Ok((m.clone(), (i + 1)?))
        },
    );
    let m = model()?;
    let (m2, i) = loop3.call(engine, (&m, &Tensor::scalar(0i32)))?;
    let w = m.value("w")?.to_vec::<f32>()?;
    let expected = &g["while"];
    ensure!(
        m2.ptr_eq(&m)
            && i64::from(count(&m)?) == expected["count"].as_i64().unwrap_or(-1)
            && i64::from(i.item::<i32>()?) == expected["i"].as_i64().unwrap_or(-1)
            && close(&w, &floats(&expected["w"])),
        "while_loop: same object {}, count {}, i {i}, w {w:?}; Flax: {expected}",
        m2.ptr_eq(&m),
        count(&m)?
    );
    // A predicate false from the start runs no iteration.
    let m = model()?;
    let (_, i) = loop3.call(engine, (&m, &Tensor::scalar(7i32)))?;
    ensure!(
        count(&m)? == 0 && i.item::<i32>()? == 7,
        "a while_loop whose predicate is false ran an iteration"
    );

    let fori = fori_loop(0, 4, |i: &Tensor, m: &Object| -> Result<Object> {
        bump(m, i)?;
        m.var("w")?
            .set_value((&m.value("w")? + &i.astype(nnx_core::DType::F32)?)?)?;
        Ok(m.clone())
    });
    let expected = &g["fori"];
    let m = model()?;
    let out = fori.call(engine, (&m,))?;
    let w = m.value("w")?.to_vec::<f32>()?;
    ensure!(
        out.ptr_eq(&m)
            && i64::from(count(&m)?) == expected["count"].as_i64().unwrap_or(-1)
            && close(&w, &floats(&expected["w"])),
        "fori_loop: same object {}, count {}, w {w:?}; Flax: {expected}",
        out.ptr_eq(&m),
        count(&m)?
    );
    let m = model()?;
    fori_loop(3, 3, |_: &Tensor, m: &Object| -> Result<Object> {
        bump(m, &Tensor::scalar(1i32))?;
        Ok(m.clone())
    })
    .call(engine, (&m,))?;
    ensure!(count(&m)? == 0, "an empty fori_loop ran its body");
    Ok(Outcome::Pass)
}

/// Structure changes are errors that change nothing, with Flax's key phrases; a predicate
/// that is not a scalar is an error before anything runs.
pub fn control_flow_errors_change_nothing(engine: &dyn Engine) -> CaseResult {
    let g = golden();
    let m = model()?;
    let err = cond(
        |m: &Object, x: &Tensor| -> Result<Tensor> {
            m.set("extra", Param::new(Tensor::scalar(1.0f32)))?;
            x + 1.0
        },
        |_m: &Object, x: &Tensor| -> Result<Tensor> { x - 1.0 },
    )
    .call(engine, (true, &m, &Tensor::scalar(1.0f32)))
    .err()
    .ok_or_else(|| Failure("a branch adding an attribute was accepted".into()))?;
    let flax = g["cond_structure_error"].as_str().unwrap_or_default();
    let phrase = "cond branch outputs must have the same pytree structure, but they differ";
    ensure!(
        flax.contains(phrase) && err.to_string().contains(phrase) && !m.has("extra"),
        "cond structure change: {err}; Flax: {flax}"
    );
    snapshot("cond_structure_changed", &err.to_string());

    let m = model()?;
    let err = while_loop(
        |_m: &Object, i: &Tensor| i.less(&Tensor::scalar(3i32)),
        |m: &Object, i: &Tensor| -> Result<(Object, Tensor)> {
            m.set("x", Count::new(Tensor::scalar(1i32)))?;
            Ok((m.clone(), (i + 1)?))
        },
    )
    .call(engine, (&m, &Tensor::scalar(0i32)))
    .err()
    .ok_or_else(|| Failure("a while body adding a Variable was accepted".into()))?;
    let flax = g["while_structure_error"].as_str().unwrap_or_default();
    let phrase = "nnx.while_loop requires body function's input and output to have the same \
                  reference and pytree structure, but they differ";
    ensure!(
        flax.contains(phrase) && err.to_string().contains(phrase) && !m.has("x"),
        "while_loop structure change: {err}; Flax: {flax}"
    );
    snapshot("while_loop_structure_changed", &err.to_string());

    let m = model()?;
    let err = cond(
        |m: &Object| -> Result<Tensor> {
            bump(m, &Tensor::scalar(1i32))?;
            m.value("w")
        },
        |m: &Object| m.value("w"),
    )
    .call(engine, (&Tensor::from_slice(&[true, false]), &m))
    .err()
    .ok_or_else(|| Failure("a predicate of shape [2] was accepted".into()))?;
    ensure!(
        matches!(err, Error::ControlFlow(_)) && count(&m)? == 0,
        "a non-scalar predicate: {err}"
    );
    snapshot("cond_predicate_not_scalar", &err.to_string());
    let err = while_loop(|x: &Tensor| Ok(x.clone()), |x: &Tensor| x + 1.0)
        .call(engine, (&Tensor::scalar(0.0f32),))
        .err()
        .ok_or_else(|| Failure("a float predicate was accepted".into()))?;
    ensure!(
        matches!(err, Error::ControlFlow(_)),
        "a float predicate: {err}"
    );
    Ok(Outcome::Pass)
}

/// Derivatives through control flow agree with JAX: `grad` through `cond` on a traced
/// predicate (only the taken branch contributes), `grad` through `fori_loop`, `jvp`
/// through `while_loop`; `grad` through `while_loop` is JAX's error.
pub fn control_flow_derivatives_match_jax(engine: &dyn Engine) -> CaseResult {
    let g = golden();
    let loss_cond = |m: &Object, x: &Tensor| -> Result<Tensor> {
        let w = m.value("w")?;
        let positive = w.mul(x)?.sum(Axes::All)?.greater(&Tensor::scalar(0.0f32))?;
        cond(
            |m: &Object, x: &Tensor| -> Result<Tensor> {
                m.value("w")?.mul(x)?.sin()?.sum(Axes::All)
            },
            |m: &Object, x: &Tensor| -> Result<Tensor> {
                let w = m.value("w")?;
                w.mul(&w)?.mul(x)?.sum(Axes::All)
            },
        )
        .call(engine, (&positive, m, x))
    };
    let lin = || Object::new("Lin").with("w", Param::new(Tensor::from_slice(&[0.5f32, -1.5, 2.0])));
    let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
    let dw = |grads: &nnx_core::transforms::Grad| -> Result<Vec<f32>> {
        grads
            .state()?
            .variable(&Path::from(["w"]))?
            .value()
            .to_vec::<f32>()
    };
    for (key, x) in [("pos", x.clone()), ("neg", x.negative()?)] {
        let out = value_and_grad(loss_cond).call(engine, (&lin()?, &x))?;
        let expected = (
            g["grad_cond"][format!("value_{key}")]
                .as_f64()
                .unwrap_or(f64::NAN) as f32,
            floats(&g["grad_cond"][key]),
        );
        let got = (out.value.item::<f32>()?, dw(&out.grads[0])?);
        ensure!(
            close(&[got.0], &[expected.0]) && close(&got.1, &expected.1),
            "grad of cond ({key}): {got:?}; JAX: {expected:?}"
        );
    }

    let loss_fori = |m: &Object, x: &Tensor| -> Result<Tensor> {
        let w = m.value("w")?;
        fori_loop(0, 3, move |i: &Tensor, x: &Tensor| -> Result<Tensor> {
            (w.mul(x)? + &i.astype(nnx_core::DType::F32)?)?.tanh()
        })
        .call(engine, (x,))?
        .sum(Axes::All)
    };
    let out = value_and_grad(loss_fori).call(engine, (&lin()?, &x))?;
    let expected = (
        g["grad_fori"]["value"].as_f64().unwrap_or(f64::NAN) as f32,
        floats(&g["grad_fori"]["w"]),
    );
    let got = (out.value.item::<f32>()?, dw(&out.grads[0])?);
    ensure!(
        close(&[got.0], &[expected.0]) && close(&got.1, &expected.1),
        "grad of fori_loop: {got:?}; JAX: {expected:?}"
    );

    let f_while = |x: &Tensor| -> Result<Tensor> {
        let (_, y) = while_loop(
            |i: &Tensor, _y: &Tensor| i.less(&Tensor::scalar(4i32)),
            |i: &Tensor, y: &Tensor| -> Result<(Tensor, Tensor)> {
                Ok(((i + 1)?, (y.sin()? * 1.5)?))
            },
        )
        .call(engine, (&Tensor::scalar(0i32), x))?;
        Ok(y)
    };
    let x = Tensor::scalar(0.7f32);
    let out = jvp(f_while).argnums(&[0]).call(
        engine,
        (&x,),
        &[Tangent::Array(Tensor::scalar(1.0f32))],
    )?;
    let got = (
        out.value.as_tensor()?.item::<f32>()?,
        out.tangent.as_tensor()?.item::<f32>()?,
    );
    let expected = (
        g["jvp_while"]["primal"].as_f64().unwrap_or(f64::NAN) as f32,
        g["jvp_while"]["tangent"].as_f64().unwrap_or(f64::NAN) as f32,
    );
    ensure!(
        close(&[got.0, got.1], &[expected.0, expected.1]),
        "jvp of while_loop: {got:?}; JAX: {expected:?}"
    );
    let err = value_and_grad(f_while)
        .argnums(&[0])
        .call(engine, (&x,))
        .err()
        .ok_or_else(|| Failure("grad through while_loop was accepted".into()))?;
    ensure!(
        matches!(err, Error::ControlFlow(_))
            && g["grad_while_error"]
                .as_str()
                .unwrap_or_default()
                .contains("Reverse-mode differentiation does not work for lax.while_loop"),
        "grad of while_loop: {err}"
    );
    snapshot("grad_of_while_loop", &err.to_string());
    Ok(Outcome::Pass)
}

/// Under `vmap` a batched predicate selects lane by lane, a `while_loop` runs each lane as
/// long as its predicate holds, and a branch that updates broadcast state is the vmap's
/// broadcast-state error naming the path (Flax's "got axis spec None but output was
/// batched"), changing nothing; unchanged broadcast state is fine.
pub fn control_flow_under_vmap(engine: &dyn Engine) -> CaseResult {
    let g = golden();
    let v = || {
        Object::new("V")
            .with("w", Param::new(Tensor::from_slice(&[1.0f32, 2.0])))?
            .with("count", Count::new(Tensor::scalar(0i32)))
    };
    let xs = Tensor::from_vec(&[3, 2], vec![1.0f32, 1.0, -1.0, -2.0, 3.0, 0.0])?;
    for update in [false, true] {
        let f = vmap(move |m: &Object, x: &Tensor| -> Result<Tensor> {
            let positive = x.sum(Axes::All)?.greater(&Tensor::scalar(0.0f32))?;
            cond(
                move |m: &Object, x: &Tensor| -> Result<Tensor> {
                    if update {
                        bump(m, &Tensor::scalar(1i32))?;
                    }
                    m.value("w")?.mul(x)?.sum(Axes::All)
                },
                |m: &Object, x: &Tensor| -> Result<Tensor> { m.value("w")?.add(x)?.sum(Axes::All) },
            )
            .call(engine, (&positive, m, x))
        })
        .in_axes((None::<i32>, 0));
        let m = v()?;
        match (update, f.call(engine, (&m, &xs))) {
            (false, Ok(y)) => {
                let expected = floats(&g["vmap_cond"]);
                let y = y.to_vec::<f32>()?;
                ensure!(
                    close(&y, &expected),
                    "vmap of cond: {y:?}; Flax: {expected:?}"
                );
            }
            (true, Err(err)) => {
                let flax = g["vmap_cond_broadcast_update_error"]
                    .as_str()
                    .unwrap_or_default();
                ensure!(
                    flax.contains("got axis spec None but output was batched")
                        && err.to_string().contains("count")
                        && count(&m)? == 0,
                    "a batched cond updating broadcast state: {err}; Flax: {flax}"
                );
                snapshot("vmap_cond_updates_broadcast_state", &err.to_string());
            }
            (update, other) => {
                return Err(Failure(format!(
                    "vmap of cond (update broadcast state: {update}) gave {other:?}"
                )));
            }
        }
    }
    let doubling = vmap(|x: &Tensor| -> Result<(Tensor, Tensor)> {
        while_loop(
            |_i: &Tensor, y: &Tensor| y.less(&Tensor::scalar(10.0f32)),
            |i: &Tensor, y: &Tensor| -> Result<(Tensor, Tensor)> { Ok(((i + 1)?, (y * 2.0)?)) },
        )
        .call(engine, (&Tensor::scalar(0i32), x))
    });
    let (i, y) = doubling.call(engine, (&Tensor::from_slice(&[1.0f32, 3.0, 20.0]),))?;
    let expected = &g["vmap_while"];
    let got = (i.to_vec::<i32>()?, y.to_vec::<f32>()?);
    ensure!(
        got.0.iter().map(|&i| i64::from(i)).collect::<Vec<_>>()
            == (expected["i"].as_array().into_iter().flatten())
                .filter_map(Json::as_i64)
                .collect::<Vec<_>>()
            && close(&got.1, &floats(&expected["y"])),
        "vmap of while_loop: {got:?}; JAX: {expected}"
    );
    // The body reads broadcast state it does not change: it stays broadcast.
    let w = Object::new("W").with("w", Param::new(Tensor::scalar(2.0f32)))?;
    let scaled = vmap(|m: &Object, x: &Tensor| -> Result<Tensor> {
        let (_, y) = while_loop(
            |_m: &Object, y: &Tensor| y.less(&Tensor::scalar(10.0f32)),
            |m: &Object, y: &Tensor| -> Result<(Object, Tensor)> {
                Ok((m.clone(), (y * &m.value("w")?)?))
            },
        )
        .call(engine, (m, x))?;
        Ok(y)
    })
    .in_axes((None::<i32>, 0));
    let y = scaled
        .call(engine, (&w, &Tensor::from_slice(&[1.0f32, 3.0, 20.0])))?
        .to_vec::<f32>()?;
    let expected = floats(&g["vmap_while_broadcast_model"]);
    ensure!(
        close(&y, &expected),
        "vmap of a while_loop reading broadcast state: {y:?}; Flax: {expected:?}"
    );
    Ok(Outcome::Pass)
}

/// `nnx.eval_shape`: the output's arrays abstract (printed as Flax prints them), objects
/// the function built or changed come back as abstract copies, and the arguments are left
/// as they were.
pub fn eval_shape_computes_nothing(_engine: &dyn Engine) -> CaseResult {
    let g = &golden()["eval_shape"];
    let m = model()?;
    let (m2, y) = eval_shape(|m: &Object, x: &Tensor| -> Result<(Object, Tensor)> {
        bump(m, &Tensor::scalar(1i32))?;
        m.set("extra", Param::new((x * 2.0)?))?;
        let y = m.value("w")?.mul(x)?.sum(Axes::All)?;
        Ok((m.clone(), y))
    })
    .call((&m, &Tensor::ones([3])))?;
    let text = |key: &str| g[key].as_str().unwrap_or_default().to_owned();
    ensure!(
        y.is_abstract() && y.repr() == text("y"),
        "eval_shape's output: {}; Flax: {}",
        y.repr(),
        text("y")
    );
    ensure!(
        !m2.ptr_eq(&m) && count(&m)? == 0 && !m.has("extra"),
        "eval_shape changed its argument (count {}, extra {})",
        count(&m)?,
        m.has("extra")
    );
    let printed = m2.to_string();
    ensure!(
        printed == text("repr"),
        "eval_shape's object:\n{printed}\nFlax:\n{}",
        text("repr")
    );
    let err = (&y + 1.0)
        .err()
        .ok_or_else(|| Failure("arithmetic on an abstract array was accepted".into()))?;
    ensure!(
        matches!(err, Error::AbstractArray { .. }),
        "arithmetic on an abstract array: {err}"
    );
    snapshot("abstract_array_used", &err.to_string());
    Ok(Outcome::Pass)
}

/// `scan` details as Flax has them: with `in_axes=Carry` for the whole input the function
/// takes exactly one argument (Flax's phrase, before anything is traced), and
/// `transform_metadata` removes the partition name from scanned Variables' `sharding`
/// inside and inserts it at the stacking axis of stacked outputs.
pub fn scan_details_match_flax(engine: &dyn Engine) -> CaseResult {
    let g = golden();
    let traced = std::cell::Cell::new(false);
    let err = scan(|args: &[Value]| {
        traced.set(true);
        Ok(args[0].clone())
    })
    .in_axes(Carry)
    .out_axes(Carry)
    .length(3)
    .call(engine, (&Tensor::ones([2]), &Tensor::ones([2])))
    .err()
    .ok_or_else(|| Failure("a two-argument call with in_axes=Carry was accepted".into()))?;
    let flax = g["scan_carry_two_arguments_error"]
        .as_str()
        .unwrap_or_default();
    let phrase = "When in_axes=Carry, the function must take exactly one argument, got 2 arguments";
    ensure!(
        flax.contains(phrase) && err.to_string().contains(phrase) && !traced.get(),
        "in_axes=Carry with two arguments: {err}; Flax: {flax}"
    );

    let sharding = |m: &Object| -> Result<String> { sharding_of(m) };
    let m = sharded_weights(Tensor::ones([3, 2, 2]), static_tuple!["layers", "a", ()])?;
    let inner = std::cell::RefCell::new((Vec::new(), String::new()));
    scan(|m: &Object, c: &Tensor| -> Result<Tensor> {
        *inner.borrow_mut() = (m.value("param")?.shape().to_vec(), sharding(m)?);
        c.matmul(&m.value("param")?)
    })
    .in_axes((0, Carry))
    .out_axes(Carry)
    .transform_metadata("layers")
    .call(engine, (&m, &Tensor::ones([2])))?;
    let s = &g["scan_metadata"];
    let (inner_shape, inner_sharding) = inner.into_inner();
    let shape = |j: &Json| -> Vec<usize> {
        (j.as_array().into_iter().flatten())
            .filter_map(Json::as_u64)
            .map(|d| d as usize)
            .collect()
    };
    ensure!(
        inner_shape == shape(&s["inner_shape"])
            && inner_sharding == golden_sharding(&s["inner_sharding"])
            && sharding(&m)? == golden_sharding(&s["outer_sharding"]),
        "scan transform_metadata in: inside {inner_shape:?} {inner_sharding}, outside {}; Flax: {s}",
        sharding(&m)?
    );
    let (_, made) = scan(|c: &Tensor| -> Result<(Tensor, Object)> {
        Ok((
            c.clone(),
            sharded_weights(Tensor::ones([2, 2]), static_tuple!["a", ()])?,
        ))
    })
    .in_axes(Carry)
    .out_axes((Carry, 0))
    .length(3)
    .transform_metadata("layers")
    .call(engine, (&Tensor::ones([2]),))?;
    ensure!(
        made.value("param")?.shape() == shape(&s["created_shape"]).as_slice()
            && sharding(&made)? == golden_sharding(&s["created_sharding"]),
        "scan transform_metadata out: {:?} {}; Flax: {s}",
        made.value("param")?.shape(),
        sharding(&made)?
    );
    Ok(Outcome::Pass)
}

/// Numbers assigned inside `jit` to a `Dict` entry or an object attribute stay static
/// numbers, as flax 0.12.8 gives them (`3`, not `Array(3, dtype=int32)`).
pub fn numbers_assigned_inside_jit_stay_static(engine: &dyn Engine) -> CaseResult {
    let g = &golden()["numbers_in_jit"];
    let dict = nnx_core::Dict::new();
    dict.insert("a", 1)?;
    let holder = Object::new("Holder")
        .with("d", dict.clone())?
        .with("n", 1)?;
    jit(|h: &Object| -> Result<()> {
        let d = h.dict("d")?;
        d.insert("b", 3)?;
        d.insert("a", 5)?;
        h.set("n", 7)
    })
    .call(engine, (&holder,))?;
    let text = |v: Value| match v {
        Value::Static(s) => s.to_string(),
        other => other.kind_name(),
    };
    let got = (
        text(dict.get("b")?),
        text(dict.get("a")?),
        text(holder.get("n")?),
    );
    let expected = (
        g["dict_new"].as_str().unwrap_or_default().to_owned(),
        g["dict_existing"].as_str().unwrap_or_default().to_owned(),
        g["attribute"].as_str().unwrap_or_default().to_owned(),
    );
    ensure!(
        got == expected,
        "numbers set inside jit: {got:?}; Flax: {expected:?}"
    );
    Ok(Outcome::Pass)
}

/// A bare Variable given as a `scan` carry may be replaced by a new Variable the body
/// returns in its place (Flax accepts it: the new Variable comes out with the threaded
/// value, the argument is unchanged); a new Module as the carry stays an error with Flax's
/// phrase.
pub fn scan_carry_may_be_a_new_variable(engine: &dyn Engine) -> CaseResult {
    let g = &golden()["scan_new_variable_carry"];
    let v = Param::new(Tensor::zeros([2]));
    let (c2, _ys) = scan(|c: &Param, x: &Tensor| -> Result<(Param, Tensor)> {
        Ok((Param::new((&c.value() + x)?), x.sum(Axes::All)?))
    })
    .call(engine, (&v, &Tensor::ones([3, 2])))?;
    let got = (
        c2.value().to_vec::<f32>()?,
        v.value().to_vec::<f32>()?,
        c2.ptr_eq(&v),
    );
    let expected = (
        floats(&g["new"]),
        floats(&g["input"]),
        g["same"].as_bool().unwrap_or(true),
    );
    ensure!(
        got == expected,
        "a new Variable as the carry: {got:?}; Flax: {expected:?}"
    );

    let m = model()?;
    let err = scan(|_c: &Object, x: &Tensor| -> Result<(Object, Tensor)> {
        Ok((model()?, x.sum(Axes::All)?))
    })
    .call(engine, (&m, &Tensor::ones([3, 2])))
    .err()
    .ok_or_else(|| Failure("a new Module as the carry was accepted".into()))?;
    let flax = g["new_module_error"].as_str().unwrap_or_default();
    let phrase = "Carry references must be the same between iterations";
    ensure!(
        flax.contains(phrase) && err.to_string().contains(phrase),
        "a new Module as the carry: {err}; Flax: {flax}"
    );
    Ok(Outcome::Pass)
}
