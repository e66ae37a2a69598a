//! `custom_vjp`: Flax's documented example and a function updating its input's state, with
//! the values Flax 0.12.8 gives (`golden/custom_vjp.py` writes `golden/custom_vjp.json`);
//! the user's backward pass used wherever the function is differentiated (also inside
//! `vmap`, `scan` and `jit`); clear errors.

use std::sync::OnceLock;

use serde_json::Value as Json;

use nnx_core::transforms::{
    Carry, Cotangents, Grad, Tangent, custom_vjp, jit, jvp, scan, value_and_grad, vmap,
};
use nnx_core::{Axes, Engine, ErrorKind, Object, Param, Path, Result, State, Tensor, Value};

use super::guide::Count;
use crate::{CaseResult, Failure, Outcome, ensure};

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-6 * (1.0 + b.abs())
}

/// `golden/custom_vjp.json`, entry `section.key`.
fn golden(section: &str, key: &str) -> f32 {
    static GOLDEN: OnceLock<Json> = OnceLock::new();
    let json = GOLDEN.get_or_init(|| {
        serde_json::from_str(include_str!("../../golden/custom_vjp.json")).unwrap_or(Json::Null)
    });
    json[section][key].as_f64().map_or(f32::NAN, |v| v as f32)
}

fn grad_of(grads: &Grad, name: &str) -> Result<f32> {
    grads
        .state()?
        .variable(&Path::from([name]))?
        .value()
        .item::<f32>()
}

/// Flax's `nnx.custom_vjp` example: `f(m) = sin(m.x) · m.y` with the backward pass written
/// out; `grad` gives `x: cos(1)·2`, `y: sin(1)` for `x = 1, y = 2`, as in Flax.
pub fn custom_vjp_flax_example(engine: &dyn Engine) -> CaseResult {
    let m = Object::new("Foo")
        .with("x", Param::new(Tensor::scalar(1.0f32)))?
        .with("y", Param::new(Tensor::scalar(2.0f32)))?;
    let f = custom_vjp(|args: &[Value]| {
        let m = args[0].object()?;
        Ok(Value::from(m.value("x")?.sin()?.mul(&m.value("y")?)?))
    })
    .defvjp(
        |args: &[Value]| {
            let m = args[0].object()?;
            let x = m.value("x")?;
            let out = x.sin()?.mul(&m.value("y")?)?;
            let residuals = Value::tuple(vec![
                Value::from(x.cos()?),
                Value::from(x.sin()?),
                Value::from(m.value("y")?),
            ]);
            Ok((Value::from(out), residuals))
        },
        |residuals: &Value, g: &Cotangents| {
            let Value::Tuple(r) = residuals else {
                return Err(nnx_core::Error::Internal {
                    what: "residuals".into(),
                });
            };
            let (cos_x, sin_x, y) = (r[0].as_tensor()?, r[1].as_tensor()?, r[2].as_tensor()?);
            let out_g = g.output.as_tensor()?;
            let mut m_g = State::new();
            m_g.insert(
                Path::from(["x"]),
                nnx_core::graph::Leaf::Array(cos_x.mul(&out_g)?.mul(&y)?),
            );
            m_g.insert(
                Path::from(["y"]),
                nnx_core::graph::Leaf::Array(sin_x.mul(&out_g)?),
            );
            Ok(vec![Grad::State(m_g)])
        },
    );
    // Outside differentiation, the function itself.
    let value = f.call(engine, (&m,))?.as_tensor()?.item::<f32>()?;
    ensure!(close(value, golden("example", "value")), "f(m) = {value}");
    let out = value_and_grad(|args: &[Value]| f.call(engine, args)).call(engine, (&m,))?;
    let (gx, gy) = (grad_of(&out.grads[0], "x")?, grad_of(&out.grads[0], "y")?);
    ensure!(
        close(gx, golden("example", "x")) && close(gy, golden("example", "y")),
        "grads x {gx}, y {gy}"
    );
    ensure!(
        close(out.value.item::<f32>()?, golden("example", "value")),
        "value {}",
        out.value
    );
    Ok(Outcome::Pass)
}

/// A gradient-clipping identity (`f(x) = x`, backward `g ↦ clip(g, -1, 1)`): `grad` uses
/// the user's backward pass, also per example under `vmap`, through `scan` iterations and
/// inside `jit`; it sees the cotangents of the inputs' updated state; the forward function
/// runs under differentiation; `jvp` through it is an error.
pub fn custom_vjp_backward_pass_is_used_everywhere(engine: &dyn Engine) -> CaseResult {
    let clip = custom_vjp(|args: &[Value]| Ok(args[0].clone())).defvjp(
        |args: &[Value]| Ok((args[0].clone(), Value::from(()))),
        |_: &Value, g: &Cotangents| {
            let g = g.output.as_tensor()?;
            let clipped = g
                .maximum(&Tensor::from(-1.0f32))?
                .minimum(&Tensor::from(1.0f32))?;
            Ok(vec![Grad::Array(clipped)])
        },
    );
    // d/dx Σ 3·clip(x)  = 3 without clipping, 1 with.
    let x = Tensor::from_slice(&[0.5f32, -2.0]);
    let loss = |args: &[Value]| -> Result<Value> {
        let y = clip.call(engine, args)?.as_tensor()?;
        Ok(Value::from((&y * 3.0f32)?.sum(Axes::All)?))
    };
    let out = value_and_grad(loss)
        .argnums(&[0])
        .call(engine, (x.clone(),))?;
    let g = out.grads[0].array()?.to_vec::<f32>()?;
    ensure!(g == vec![1.0, 1.0], "clipped gradient {g:?}");
    let jitted = value_and_grad(|args: &[Value]| jit(loss).call(engine, args))
        .argnums(&[0])
        .call(engine, (x.clone(),))?;
    ensure!(
        jitted.grads[0].array()?.to_vec::<f32>()? == vec![1.0, 1.0],
        "under jit"
    );
    // Per example: the gradient of Σ 3·clip(x_i) for each row.
    let rows = Tensor::from_vec(&[2, 2], vec![0.1f32, 0.2, 0.3, 0.4])?;
    let per_example = vmap(|args: &[Value]| {
        let out = value_and_grad(loss).argnums(&[0]).call(engine, args)?;
        Ok(Value::from(out.grads[0].array()?.clone()))
    })
    .call(engine, (rows,))?
    .as_tensor()?;
    ensure!(
        per_example.to_vec::<f32>()? == vec![1.0; 4],
        "per-example gradients {:?}",
        per_example.to_vec::<f32>()?
    );
    // Through a scan: h ← 3·clip(h), two iterations; the gradient of the final h.
    let through_scan = value_and_grad(|args: &[Value]| {
        let body = |inner: &[Value]| -> Result<Value> {
            let h = clip.call(engine, &inner[..1])?.as_tensor()?;
            Ok(Value::tuple(vec![
                Value::from((&h * 3.0f32)?),
                Value::from(()),
            ]))
        };
        let out = scan(body)
            .in_axes((Carry, None::<i32>))
            .out_axes((Carry, 0))
            .length(2)
            .call(engine, (args[0].clone(), Tensor::scalar(0.0f32)))?;
        let Value::Tuple(items) = out else {
            return Err(nnx_core::Error::Internal {
                what: "scan output".into(),
            });
        };
        Ok(Value::from(items[0].as_tensor()?.sum(Axes::All)?))
    })
    .argnums(&[0])
    .call(engine, (Tensor::from_slice(&[0.1f32]),))?;
    // d h2 / d h0 = clip(3 · clip(1)) = clip(3)·... : each step's cotangent is clipped to 1
    // before the factor 3 of the next step is applied: 1 (last step) then clip(3·1) = 1.
    ensure!(
        through_scan.grads[0].array()?.to_vec::<f32>()? == vec![1.0],
        "through scan {:?}",
        through_scan.grads[0].array()?.to_vec::<f32>()?
    );
    let err = jvp(|args: &[Value]| clip.call(engine, args))
        .argnums(&[0])
        .call(
            engine,
            (x,),
            &[Tangent::Array(Tensor::from_slice(&[1.0f32, 1.0]))],
        )
        .err()
        .ok_or_else(|| Failure("jvp through custom_vjp must fail".into()))?;
    ensure!(
        err.kind() == ErrorKind::Value && err.to_string().contains("forward-mode"),
        "{err}"
    );
    Ok(Outcome::Pass)
}

/// A function that updates its input's state: the backward function receives the
/// cotangent of the updated Variable (`input_updates`), and the update propagates out. Its
/// mistakes are errors that leave the model unchanged: another number of cotangents than
/// arguments, a cotangent of the wrong shape.
pub fn custom_vjp_state_updates_and_errors(engine: &dyn Engine) -> CaseResult {
    let m = Object::new("Scale")
        .with("w", Param::new(Tensor::scalar(2.0f32)))?
        .with("count", Count::new(Tensor::scalar(0i32)))?;
    let scaled = |args: &[Value]| -> Result<(Value, Value)> {
        let m = args[0].object()?;
        m.var("count")?.update(|c| c + 1)?;
        let w = m.value("w")?;
        // The update of w: w ← 2w (its new value is an output too).
        m.var("w")?.set_value(w.mul(&Tensor::from(2.0f32))?)?;
        let y = w.mul(&args[1].as_tensor()?)?;
        Ok((Value::from(y), Value::from(w)))
    };
    let f = |bad: usize| {
        custom_vjp(move |args: &[Value]| scaled(args).map(|(y, _)| y)).defvjp(
            scaled,
            move |w: &Value, g: &Cotangents| {
                let w = w.as_tensor()?;
                let out_g = g.output.as_tensor()?;
                // The cotangent of w's new value 2w, as the rest of the program gives it.
                let update_g = match &g.input_updates[0] {
                    Some(state) => state.variable(&Path::from(["w"]))?.value(),
                    None => Tensor::scalar(0.0f32),
                };
                let mut m_g = State::new();
                let gw = out_g
                    .mul(&Tensor::scalar(5.0f32))?
                    .add(&(&update_g * 2.0f32)?)?;
                let gw = if bad == 2 { gw.reshape(&[1])? } else { gw };
                m_g.insert(Path::from(["w"]), nnx_core::graph::Leaf::Array(gw));
                let mut grads = vec![Grad::State(m_g), Grad::Array(out_g.mul(&w)?)];
                if bad == 1 {
                    grads.pop();
                }
                Ok(grads)
            },
        )
    };
    let good = f(0);
    // loss = y + 10 · w_after, y = w·x: the backward pass says ∂/∂w = 5·1 + 2·10 = 25
    // (the true derivative is 23; Flax gives 25 too).
    let loss = |f: &nnx_core::transforms::CustomVjp<_, _, _>, args: &[Value]| -> Result<Value> {
        let y = f.call(engine, args)?.as_tensor()?;
        let w_after = args[0].object()?.value("w")?;
        Ok(Value::from(y.add(&(&w_after * 10.0f32)?)?))
    };
    let out = value_and_grad(|args: &[Value]| loss(&good, args))
        .argnums(&[0, 1])
        .call(engine, (&m, Tensor::scalar(3.0f32)))?;
    let gw = grad_of(&out.grads[0], "w")?;
    ensure!(gw == golden("updates", "w_grad"), "∂/∂w {gw}");
    let gx = out.grads[1].array()?.item::<f32>()?;
    ensure!(gx == golden("updates", "x_grad"), "∂/∂x {gx}");
    let after = || -> Result<(f32, f32)> {
        Ok((
            m.value("count")?.item::<i32>()? as f32,
            m.value("w")?.item::<f32>()?,
        ))
    };
    let want = (
        golden("updates", "count_after"),
        golden("updates", "w_after"),
    );
    ensure!(after()? == want, "state after the call {:?}", after()?);
    for (bad, phrase) in [(1, "one cotangent per argument"), (2, "has shape [] ")] {
        let broken = f(bad);
        let err = value_and_grad(|args: &[Value]| loss(&broken, args))
            .argnums(&[0, 1])
            .call(engine, (&m, Tensor::scalar(3.0f32)))
            .err()
            .ok_or_else(|| Failure(format!("broken backward function {bad} must fail")))?;
        ensure!(
            err.kind() == ErrorKind::Value && err.to_string().contains(phrase),
            "{err}"
        );
    }
    ensure!(after()? == want, "a failed call changed the model");
    Ok(Outcome::Pass)
}
