//! `graph_updates(false)` (Flax 0.12's tree mode) on `jit`, `vmap`, `scan` and `grad`,
//! with the values flax 0.12.8 gives (`golden/control.py` writes them with the control-flow
//! data): Variables updated in place, structure changes dropped, the mode's own errors.

use nnx_core::transforms::{DiffState, grad, jit, scan, value_and_grad, vmap};
use nnx_core::{Axes, BatchStat, Engine, Error, Object, Param, Path, Result, Tensor, VariableType};

use super::control::{bump, close, count, floats, golden, model};
use crate::snapshots::snapshot;
use crate::{CaseResult, Failure, Outcome, ensure};

/// `graph_updates(false)` on `jit`, `vmap` and `scan` as flax 0.12.8 has it: the inputs'
/// Variables take their new values in place, attributes added or replaced inside are
/// dropped, a new Variable comes out new, returning an input object is an error that
/// changes nothing, and a scan's carry comes out as a new object holding the same
/// Variables.
pub fn graph_updates_false_updates_variables_only(engine: &dyn Engine) -> CaseResult {
    let g = &golden()["graph_updates_false"];
    let m = model()?;
    let w_before = m.var("w")?;
    let step = jit(|m: &Object, x: &Tensor| -> Result<Tensor> {
        bump(m, &Tensor::scalar(1i32))?;
        m.set("extra", 3)?;
        m.set("new", Param::new(Tensor::zeros([1])))?;
        let w0 = m.value("w")?;
        m.set("w", Param::new(Tensor::zeros([3])))?;
        w0.mul(x)?.sum(Axes::All)
    })
    .graph_updates(false);
    let y = step
        .call(engine, (&m, &Tensor::scalar(2.0f32)))?
        .item::<f32>()?;
    let got = (
        y,
        count(&m)?,
        m.has("extra") || m.has("new"),
        m.var("w")?.ptr_eq(&w_before),
        m.value("w")?.to_vec::<f32>()?,
    );
    let expected = (
        g["y"].as_f64().unwrap_or(f64::NAN) as f32,
        g["count"].as_i64().unwrap_or(-1) as i32,
        g["extra"].as_bool().unwrap_or(true),
        g["w_same"].as_bool().unwrap_or(false),
        floats(&g["w"]),
    );
    ensure!(
        got == expected,
        "jit(graph_updates=False): {got:?}; Flax: {expected:?}"
    );

    let m = model()?;
    let err = jit(|m: &Object| -> Result<Object> {
        bump(m, &Tensor::scalar(1i32))?;
        Ok(m.clone())
    })
    .graph_updates(false)
    .call(engine, (&m,))
    .err()
    .ok_or_else(|| Failure("returning an input object was accepted".into()))?;
    ensure!(
        matches!(err, Error::GraphUpdates(_))
            && count(&m)? == 0
            && g["return_input_error"]
                .as_str()
                .unwrap_or_default()
                .starts_with("ValueError: Duplicate"),
        "returning an input without graph updates: {err}"
    );
    snapshot("graph_updates_false_returns_an_input", &err.to_string());

    let m = model()?;
    let doubled = jit(|m: &Object| -> Result<Param> { Ok(Param::new((&m.value("w")? * 2.0)?)) })
        .graph_updates(false)
        .call(engine, (&m,))?;
    let expected = &g["new_variable"];
    ensure!(
        !doubled.ptr_eq(&m.var("w")?)
            && doubled.value().to_vec::<f32>()? == floats(&expected[1])
            && expected[2].as_bool() == Some(false),
        "a new Variable returned without graph updates; Flax: {expected}"
    );

    let per_lane = vmap(|m: &Object, x: &Tensor| m.value("w")?.mul(x)?.sum(Axes::All))
        .in_axes((None::<i32>, 0))
        .graph_updates(false)
        .call(engine, (&model()?, &Tensor::ones([2, 3])))?
        .to_vec::<f32>()?;
    ensure!(
        per_lane == floats(&g["vmap"]),
        "vmap(graph_updates=False): {per_lane:?}; Flax: {}",
        g["vmap"]
    );

    // scan: the carry comes out as a new object holding the input's own Variables.
    let m = model()?;
    let (m2, ys) = scan(|c: &Object, x: &Tensor| -> Result<(Object, Tensor)> {
        bump(c, &Tensor::scalar(1i32))?;
        let y = c.value("w")?.mul(x)?.sum(Axes::All)?;
        Ok((c.clone(), y))
    })
    .graph_updates(false)
    .call(engine, (&m, &Tensor::ones([3])))?;
    let s = &g["scan"];
    let got = (
        count(&m)?,
        m2.ptr_eq(&m),
        m2.var("w")?.ptr_eq(&m.var("w")?),
        ys.to_vec::<f32>()?,
    );
    let expected = (
        s["count"].as_i64().unwrap_or(-1) as i32,
        s["same_object"].as_bool().unwrap_or(true),
        s["same_w"].as_bool().unwrap_or(false),
        floats(&s["ys"]),
    );
    ensure!(
        got == expected,
        "scan(graph_updates=False): {got:?}; Flax: {expected:?}"
    );
    Ok(Outcome::Pass)
}

/// `grad(..).graph_updates(false)`, Flax 0.12's tree mode, against flax 0.12.8: every
/// Variable of the differentiated argument is differentiated (a float `BatchStat` too, an
/// integer one is an error), Variables take their new values in place while structural
/// changes are dropped (the gradient is with respect to the Variable that came in), and the
/// mode's own errors: `DiffState`s refused, an input or captured Variable returned in the
/// auxiliary output; `jit` returning a captured Variable says so too.
pub fn grad_without_graph_updates_differentiates_every_variable(engine: &dyn Engine) -> CaseResult {
    let g = &golden()["grad_graph_updates_false"];
    let float_model = || -> Result<Object> {
        Object::new("F")
            .with("w", Param::new(Tensor::from_slice(&[1.0f32, 2.0, 3.0])))?
            .with("s", BatchStat::new(Tensor::from_slice(&[0.5f32])))
    };
    let m = float_model()?;
    let w_before = m.var("w")?;
    let out = value_and_grad(|m: &Object, x: &Tensor| -> Result<Tensor> {
        let s = (&m.value("s")? + 1.0)?;
        m.var("s")?.set_value(s.clone())?;
        m.set("extra", Param::new(Tensor::zeros([1])))?;
        let w0 = m.value("w")?;
        m.set("w", Param::new((&w0 * 10.0)?))?;
        w0.mul(x)?.sum(Axes::All)? + s.mul(&s)?.sum(Axes::All)?
    })
    .graph_updates(false)
    .call(engine, (&m, &Tensor::scalar(2.0f32)))?;
    let grads = out.grads[0].state()?;
    let grad_of = |name: &str| -> Result<Vec<f32>> {
        let path = Path::parse(name)?;
        match grads.get(&path).and_then(|l| l.as_variable()) {
            Some(v) => v.value().to_vec::<f32>(),
            None => Ok(Vec::new()),
        }
    };
    ensure!(
        close(
            &[out.value.item::<f32>()?],
            &[g["value"].as_f64().unwrap_or(f64::NAN) as f32]
        ) && grads.len() == 2
            && close(&grad_of("w")?, &floats(&g["grads"]["w"]))
            && close(&grad_of("s")?, &floats(&g["grads"]["s"]))
            && close(&m.value("s")?.to_vec::<f32>()?, &floats(&g["s"]))
            && m.value("w")?.to_vec::<f32>()? == floats(&g["w"])
            && m.var("w")?.ptr_eq(&w_before) == g["w_same"].as_bool().unwrap_or(false)
            && m.has("extra") == g["extra"].as_bool().unwrap_or(true),
        "value_and_grad(graph_updates=False): {} {grads:?}, s {:?}; Flax: {g}",
        out.value,
        m.value("s")?
    );

    // An integer Variable in the differentiated argument: jax.grad's error, nothing runs.
    let m = model()?;
    let err = grad(|m: &Object| m.value("w")?.sum(Axes::All))
        .graph_updates(false)
        .call(engine, (&m,))
        .err()
        .ok_or_else(|| Failure("an integer Variable was differentiated".into()))?;
    ensure!(
        matches!(err, Error::NonDifferentiable { .. })
            && g["int_error"]
                .as_str()
                .unwrap_or_default()
                .starts_with("TypeError: grad requires real"),
        "an integer Variable without graph updates: {err}"
    );
    snapshot(
        "grad_graph_updates_false_integer_variable",
        &err.to_string(),
    );

    let err = grad(|m: &Object| m.value("w")?.sum(Axes::All))
        .wrt([DiffState::new(0, VariableType::PARAM)])
        .graph_updates(false)
        .call(engine, (&float_model()?,))
        .err()
        .ok_or_else(|| Failure("a DiffState was accepted without graph updates".into()))?;
    ensure!(
        matches!(err, Error::InvalidPrefix(_))
            && g["diffstate_error"]
                .as_str()
                .unwrap_or_default()
                .contains("cannot contain `DiffState`"),
        "a DiffState without graph updates: {err}"
    );

    // The auxiliary output may not return an input Variable, nor a captured one.
    let m = float_model()?;
    let err = grad(|m: &Object| -> Result<(Tensor, nnx_core::Variable)> {
        m.var("s")?.set_value(Tensor::from_slice(&[9.0f32]))?;
        Ok((m.value("w")?.sum(Axes::All)?, m.var("w")?))
    })
    .has_aux(true)
    .graph_updates(false)
    .call(engine, (&m,))
    .err()
    .ok_or_else(|| Failure("an input Variable returned as aux was accepted".into()))?;
    ensure!(
        matches!(err, Error::GraphUpdates(_))
            && m.value("s")?.to_vec::<f32>()? == [0.5]
            && g["aux_input_error"]
                .as_str()
                .unwrap_or_default()
                .starts_with("ValueError: Duplicate"),
        "an input Variable as aux without graph updates: {err}"
    );
    // With graph updates (the default) it comes out as it is.
    let m = float_model()?;
    let out = grad(|m: &Object| -> Result<(Tensor, nnx_core::Variable)> {
        Ok((m.value("w")?.sum(Axes::All)?, m.var("w")?))
    })
    .has_aux(true)
    .call(engine, (&m,))?;
    let aux: nnx_core::Variable = out.aux_as()?;
    ensure!(
        aux.ptr_eq(&m.var("w")?) == g["aux_input_default_same"].as_bool().unwrap_or(false),
        "an input Variable as aux with graph updates; Flax: {}",
        g["aux_input_default_same"]
    );
    let captured = Param::new(Tensor::from_slice(&[1.0f32]));
    let err = grad(|m: &Object| -> Result<(Tensor, Param)> {
        Ok((m.value("w")?.sum(Axes::All)?, captured.clone()))
    })
    .has_aux(true)
    .graph_updates(false)
    .call(engine, (&float_model()?,))
    .err()
    .ok_or_else(|| Failure("a captured Variable returned as aux was accepted".into()))?;
    let phrase = "Cannot return captured Variable of type Param from ";
    ensure!(
        matches!(err, Error::GraphUpdates(_))
            && err.to_string().starts_with(phrase)
            && (g["aux_captured_error"].as_str().unwrap_or_default()).contains(phrase),
        "a captured Variable as aux without graph updates: {err}"
    );
    snapshot("grad_graph_updates_false_captured_aux", &err.to_string());
    let err = jit(|_x: &Tensor| -> Result<Param> { Ok(captured.clone()) })
        .graph_updates(false)
        .call(engine, (&Tensor::scalar(1.0f32),))
        .err()
        .ok_or_else(|| Failure("jit returned a captured Variable".into()))?;
    ensure!(
        err.to_string().starts_with(phrase)
            && (g["jit_captured_error"].as_str().unwrap_or_default()).contains(phrase),
        "jit(graph_updates=False) returning a captured Variable: {err}"
    );
    // With graph updates it is the closure rule's error, as in Flax.
    let err = jit(|_x: &Tensor| -> Result<Param> { Ok(captured.clone()) })
        .call(engine, (&Tensor::scalar(1.0f32),))
        .err()
        .ok_or_else(|| Failure("jit returned a captured Variable".into()))?;
    ensure!(
        matches!(err, Error::ExtractFromOtherTrace { .. })
            && (g["jit_captured_default_error"].as_str().unwrap_or_default())
                .contains("Cannot extract graph node from different trace level"),
        "jit returning a captured Variable: {err}"
    );
    Ok(Outcome::Pass)
}
