//! The rest of the graph API (`nnx.iter_graph`, `nnx.find_duplicates`, `nnx.pop`,
//! `nnx.to_pure_dict`, `nnx.recursive_map`) with what Flax 0.12.8 gives for the same graph
//! (`golden/graph_api.py` writes `golden/graph_api.json`); `nnx.reseed` and `Rngs.split`
//! with a mapping.

use std::sync::OnceLock;

use serde_json::Value as Json;

use nnx_core::graph::{self, Filter, GraphDef, Leaf, NestedState, State};
use nnx_core::random::{self, ReseedPolicy};
use nnx_core::transforms::{StateAxes, jit, value_and_grad, vmap};
use nnx_core::{
    BatchStat, Engine, Intermediate, List, Object, Param, Result, Rngs, Static, Tensor, Value,
    VariableType,
};

use crate::{CaseResult, Outcome, ensure};

fn golden() -> &'static Json {
    static GOLDEN: OnceLock<Json> = OnceLock::new();
    GOLDEN.get_or_init(|| {
        serde_json::from_str(include_str!("../../golden/graph_api.json")).unwrap_or(Json::Null)
    })
}

/// The probe's graph: a submodule shared as `a` and `b`, a BatchStat, a List holding a
/// Param and a number, an Intermediate.
fn model() -> Result<Object> {
    let sub = Object::new("Sub")
        .with("w", Param::new(Tensor::ones([2])))?
        .with("n", 3)?;
    Object::new("M")
        .with("b", &sub)?
        .with("a", &sub)?
        .with("v", BatchStat::new(Tensor::zeros([1])))?
        .with(
            "lst",
            List::new([Value::from(Param::new(Tensor::ones([1]))), Value::from(5)]),
        )?
        .with("i", Intermediate::new(Tensor::ones([3])))
}

/// The numbers of a nested JSON array, flattened in order.
fn numbers(json: &Json) -> Vec<f64> {
    let mut out = Vec::new();
    let mut stack = vec![json];
    while let Some(v) = stack.pop() {
        match v {
            Json::Array(items) => stack.extend(items.iter().rev()),
            other => out.extend(other.as_f64()),
        }
    }
    out
}

/// A path as the probe writes it (`a/w`, the root as the empty string).
fn slashed(path: &graph::Path) -> String {
    match path.is_empty() {
        true => String::new(),
        false => path.slashed(),
    }
}

fn type_name(value: &Value) -> String {
    match value {
        Value::Object(o) => o.type_name().to_owned(),
        Value::Variable(v) => v.type_name().to_owned(),
        Value::List(_) => "List".into(),
        Value::Dict(_) => "Dict".into(),
        Value::Tuple(_) => "tuple".into(),
        Value::Map(_) => "dict".into(),
        Value::Array(_) => "Array".into(),
        Value::Static(Static::Int(_)) => "int".into(),
        Value::Static(other) => format!("{other:?}"),
    }
}

fn strings(json: &Json) -> Vec<String> {
    (json.as_array().into_iter().flatten())
        .map(|s| s.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `iter_graph`'s order and values, `find_duplicates`' paths, `pop`, `to_pure_dict` and
/// `recursive_map` as Flax gives them.
pub fn graph_api_matches_flax(_engine: &dyn Engine) -> CaseResult {
    let g = golden();
    let m = model()?;
    let walked: Vec<(String, String)> = (graph::iter_graph(&m)?.iter())
        .map(|(p, v)| (slashed(p), type_name(v)))
        .collect();
    let flax: Vec<(String, String)> = (g["iter_graph"].as_array().into_iter().flatten())
        .map(|pair| {
            let pair = strings(pair);
            (pair[0].clone(), pair[1].clone())
        })
        .collect();
    ensure!(walked == flax, "iter_graph: {walked:?}\nFlax: {flax:?}");

    let dups: Vec<Vec<String>> = (graph::find_duplicates(&m)?.iter())
        .map(|d| d.iter().map(slashed).collect())
        .collect();
    let flax: Vec<Vec<String>> = (g["find_duplicates"].as_array().into_iter().flatten())
        .map(strings)
        .collect();
    ensure!(dups == flax, "find_duplicates: {dups:?}; Flax: {flax:?}");

    let pure = graph::state(&m).to_pure_dict();
    let shapes: Vec<(String, Vec<usize>)> = (State::from_pure_dict(&pure).iter())
        .map(|(p, l)| (slashed(p), l.value().shape().to_vec()))
        .collect();
    let flax: Vec<(String, Vec<usize>)> = (g["pure_dict"].as_object().into_iter().flatten())
        .map(|(k, v)| {
            let shape = (v.as_array().into_iter().flatten())
                .filter_map(Json::as_u64)
                .map(|d| d as usize)
                .collect();
            (k.clone(), shape)
        })
        .collect();
    let all_arrays =
        (State::from_pure_dict(&pure).iter()).all(|(_, l)| matches!(l, Leaf::Array(_)));
    ensure!(
        shapes == flax && all_arrays && matches!(pure, NestedState::Map(_)),
        "to_pure_dict: {shapes:?}; Flax: {flax:?}"
    );

    let popped = graph::pop(&m, &VariableType::INTERMEDIATE.into())?;
    let popped_paths: Vec<String> = popped.iter().map(|(p, _)| slashed(p)).collect();
    let left: Vec<String> = graph::state(&m).iter().map(|(p, _)| slashed(p)).collect();
    ensure!(
        popped_paths == strings(&g["pop"]["popped"]) && left == strings(&g["pop"]["left"]),
        "pop: popped {popped_paths:?}, left {left:?}; Flax: {}",
        g["pop"]
    );

    let m = model()?;
    let mapped = graph::recursive_map(&m, |_, value| match value {
        Value::Variable(v) if v.type_name() == "Param" => {
            Ok(Value::from(Param::new((&v.value() * 2.0)?)))
        }
        other => Ok(other),
    })?
    .object()?;
    let r = &g["recursive_map"];
    let floats = |j: &Json| -> Vec<f32> {
        (j.as_array().into_iter().flatten())
            .filter_map(Json::as_f64)
            .map(|x| x as f32)
            .collect()
    };
    let a = mapped.object("a")?;
    let got = (
        a.value("w")?.to_vec::<f32>()?,
        a.ptr_eq(&mapped.object("b")?),
        m.object("a")?.value("w")?.to_vec::<f32>()?,
        mapped.list("lst")?.get(0)?.as_tensor()?.to_vec::<f32>()?,
    );
    let expected = (
        floats(&r["a_w"]),
        r["shared"].as_bool().unwrap_or(false),
        floats(&r["original_a_w"]),
        floats(&r["lst_0"]),
    );
    ensure!(
        got == expected,
        "recursive_map: {got:?}; Flax: {expected:?}"
    );
    Ok(Outcome::Pass)
}

/// `nnx.reseed` (the first stream of a tag takes `fold_in(key(seed), 0)`, its count zero;
/// a split stream is an error under the default policy and takes the new key split to its
/// shape under `match_shape`) and `Rngs.split` with a `{filter: k}` mapping, as Flax.
pub fn rngs_reseed_and_split_match_flax(_engine: &dyn Engine) -> CaseResult {
    let g = golden();
    let words = |j: &Json| -> Vec<u32> { numbers(j).into_iter().map(|w| w as u32).collect() };
    let module = || -> Result<(Object, Rngs)> {
        let rngs = Rngs::builder()
            .stream("params", 0)
            .stream("dropout", 1)
            .build()?;
        Ok((Object::new("R").with("rngs", &rngs)?, rngs))
    };
    let (m, rngs) = module()?;
    rngs.next_key("dropout")?;
    rngs.next_key("dropout")?;
    random::reseed(&m, [("dropout", 42.into())], ReseedPolicy::ScalarsOnly)?;
    let dropout = rngs.stream("dropout")?;
    let got = (
        dropout.key()?.value().key_data()?.to_vec::<u32>()?,
        dropout.count()?.value().item::<u32>()?,
    );
    let r = &g["reseed"];
    let expected = (words(&r["key"]), r["count"].as_u64().unwrap_or(99) as u32);
    ensure!(got == expected, "reseed: {got:?}; Flax: {expected:?}");

    let (m, rngs) = module()?;
    // Split in place and left split (Flax's `nnx.split_rngs` outside a `with`).
    let _split = random::split_rngs(&m, 3, &Filter::Everything)?;
    let before = rngs
        .stream("dropout")?
        .key()?
        .value()
        .key_data()?
        .to_vec::<u32>()?;
    let err = random::reseed(&m, [("dropout", 3.into())], ReseedPolicy::ScalarsOnly)
        .err()
        .ok_or_else(|| crate::Failure("reseeding a split stream was accepted".into()))?;
    let after = rngs
        .stream("dropout")?
        .key()?
        .value()
        .key_data()?
        .to_vec::<u32>()?;
    let flax = g["reseed_split_error"].as_str().unwrap_or_default();
    ensure!(
        flax.starts_with("Cannot reseed stream at path")
            && err
                .to_string()
                .contains("Cannot reseed stream at path 'rngs/dropout'")
            && before == after,
        "reseeding a split stream: {err}; Flax: {flax}"
    );
    random::reseed(&m, [("dropout", 3.into())], ReseedPolicy::MatchShape)?;
    let dropout = rngs.stream("dropout")?;
    let got = (
        dropout.key()?.value().key_data()?.to_vec::<u32>()?,
        dropout.count()?.value().to_vec::<u32>()?,
    );
    let r = &g["reseed_match_shape"];
    let expected = (words(&r["key"]), words(&r["count"]));
    ensure!(
        got == expected,
        "reseed match_shape: {got:?}; Flax: {expected:?}"
    );

    let split = Rngs::builder()
        .stream("params", 1)
        .stream("dropout", 2)
        .stream("noise", 3)
        .build()?
        .split_by(&[
            (Filter::from("params"), Some(5.into())),
            (Filter::from("dropout"), None),
            (Filter::Everything, Some(vec![2, 5].into())),
        ])?;
    for name in ["params", "dropout", "noise"] {
        let shape = split.stream(name)?.key()?.value().shape().to_vec();
        let expected: Vec<usize> = words(&g["split_mapping"][name])
            .into_iter()
            .map(|d| d as usize)
            .collect();
        ensure!(
            shape == expected,
            "split mapping, {name}: {shape:?}; Flax: {expected:?}"
        );
    }
    Ok(Outcome::Pass)
}

/// The functional style: `jit` over `(graphdef, state)` with `merge` inside, returning the
/// new State, and `grad` with respect to a State argument; values and state propagation as
/// Flax gives them.
pub fn functional_style_matches_flax(engine: &dyn Engine) -> CaseResult {
    let g = &golden()["functional"];
    let floats = |j: &Json| -> Vec<f32> { numbers(j).into_iter().map(|x| x as f32).collect() };
    let lin = Object::new("Lin")
        .with(
            "w",
            Param::new(Tensor::from_vec(
                &[2, 3],
                vec![1.0f32, -2.0, 0.5, 0.25, 3.0, -1.0],
            )?),
        )?
        .with("count", super::guide::Count::new(Tensor::scalar(0i32)))?;
    let apply = |m: &Object, x: &Tensor| -> Result<Tensor> {
        m.var("count")?.update(|c| c + 1)?;
        x.matmul(&m.value("w")?)?.tanh()
    };
    let x = Tensor::from_vec(&[2, 2], vec![0.5f32, -1.0, 2.0, 0.25])?;
    let (graphdef, state) = graph::split(&lin);
    let forward = jit(
        |g: &GraphDef, s: &State, x: &Tensor| -> Result<(Tensor, State)> {
            let m: Object = graph::merge(g, [s])?;
            let y = apply(&m, x)?;
            Ok((y, graph::state(&m)))
        },
    );
    let (y, new_state) = forward.call(engine, (&graphdef, &state, &x))?;
    let params = state.filter(&VariableType::PARAM.into());
    let rest = state.filter(&Filter::Not(Box::new(VariableType::PARAM.into())));
    let loss = |p: &State, r: &State, x: &Tensor| -> Result<Tensor> {
        let m: Object = graph::merge(&graphdef, [p, r])?;
        apply(&m, x)?.sum(nnx_core::Axes::All)
    };
    let out = value_and_grad(loss).call(engine, (&params, &rest, &x))?;
    let count = |s: &State| -> Result<i32> {
        s.variable(&graph::Path::from(["count"]))?
            .value()
            .item::<i32>()
    };
    let grad_w = out.grads[0]
        .state()?
        .variable(&graph::Path::from(["w"]))?
        .value()
        .to_vec::<f32>()?;
    let close = |a: &[f32], b: &[f32]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-5 * (1.0 + y.abs()))
    };
    ensure!(
        close(&y.to_vec::<f32>()?, &floats(&g["y"]))
            && close(&grad_w, &floats(&g["grad_w"]))
            && i64::from(count(&new_state)?) == g["count_out"].as_i64().unwrap_or(-1)
            && i64::from(count(&state)?) == g["count_state"].as_i64().unwrap_or(-1),
        "functional style: y {:?}, grad {grad_w:?}, counts {} {}; Flax: {g}",
        y.to_vec::<f32>()?,
        count(&new_state)?,
        count(&state)?
    );
    ensure!(
        new_state
            .variable(&graph::Path::from(["w"]))?
            .ptr_eq(&lin.var("w")?),
        "the returned State does not hold the model's own Variables"
    );
    Ok(Outcome::Pass)
}

/// `nnx.StateAxes(state)`: axes given per path (a State of axes in Flax) map a model's
/// Variables under `vmap`, and `map_prefix` answers for one Variable, as in Flax.
pub fn state_axes_from_paths_match_flax(engine: &dyn Engine) -> CaseResult {
    let g = &golden()["state_axes_from_state"];
    let model = Object::new("Stacked")
        .with(
            "w",
            Param::new(Tensor::from_vec(
                &[3, 2],
                vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0],
            )?),
        )?
        .with("b", Param::new(Tensor::from_slice(&[1.0f32, -1.0, 0.5])))?
        .with("scale", super::guide::Count::new(Tensor::scalar(2.0f32)))?;
    let path = |p: &str| graph::Path::parse(p);
    let axes = StateAxes::from_paths([
        (path("w")?, Some(0)),
        (path("b")?, Some(0)),
        (path("scale")?, None),
    ]);
    let x = Tensor::from_vec(&[3, 2], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])?;
    let y = vmap(|m: &Object, x: &Tensor| -> Result<Tensor> {
        let dot = m.value("w")?.mul(x)?.sum(nnx_core::Axes::All)?;
        dot.mul(&m.value("scale")?)?.add(&m.value("b")?)
    })
    .in_axes((axes.clone(), 0))
    .call(engine, (&model, &x))?
    .to_vec::<f32>()?;
    let expected: Vec<f32> = numbers(&g["y"]).into_iter().map(|v| v as f32).collect();
    let leaf = |name: &str| -> Result<Leaf> { Ok(Leaf::Variable(model.var(name)?)) };
    let got_prefix = (
        axes.map_prefix(&path("b")?, &leaf("b")?)?,
        axes.map_prefix(&path("scale")?, &leaf("scale")?)?,
    );
    let want_prefix = (
        g["map_prefix_b"].as_i64().map(|a| a as i32),
        g["map_prefix_scale"].as_i64().map(|a| a as i32),
    );
    ensure!(
        y == expected && got_prefix == want_prefix,
        "StateAxes from paths: {y:?} {got_prefix:?}; Flax: {expected:?} {want_prefix:?}"
    );
    Ok(Outcome::Pass)
}

/// A dict-shaped axis prefix (`in_axes=({'a': 0, 'b': None},)`) on a dict argument maps
/// each entry as its key says, as Flax does.
pub fn dict_shaped_axes_match_flax(engine: &dyn Engine) -> CaseResult {
    let expected: Vec<f32> = (numbers(&golden()["dict_prefix"]).into_iter())
        .map(|v| v as f32)
        .collect();
    let d = nnx_core::Dict::new();
    d.insert(
        "a",
        Tensor::from_vec(&[3, 2], vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0])?,
    )?;
    d.insert("b", Tensor::from_slice(&[1.0f32, -2.0]))?;
    let y = vmap(|d: &nnx_core::Dict| -> Result<Tensor> {
        d.get("a")?
            .as_tensor()?
            .mul(&d.get("b")?.as_tensor()?)?
            .sum(nnx_core::Axes::All)
    })
    .in_axes((StateAxes::by_key([("a", Some(0)), ("b", None)]),))
    .call(engine, (&d,))?
    .to_vec::<f32>()?;
    ensure!(y == expected, "dict-shaped axes: {y:?}; Flax: {expected:?}");
    Ok(Outcome::Pass)
}

/// Plain dicts and tuples ([`Value::Map`], [`Value::Tuple`]) are Flax's pytree arguments,
/// against flax 0.12.8: a dict given twice is two dicts holding the same Variable (an
/// update through one is seen through the other and outside), a returned dict is a new one
/// holding the same Variable, a dict-shaped axis prefix maps its entries (an update of a
/// mapped Variable propagates), and `grad` differentiates a plain dict or tuple whole,
/// every Variable and array in it, where an `nnx.Dict` is filtered to its Params.
pub fn plain_dicts_and_tuples_are_pytrees(engine: &dyn Engine) -> CaseResult {
    let g = &golden()["plain_containers"];
    let floats =
        |json: &Json| -> Vec<f32> { numbers(json).into_iter().map(|v| v as f32).collect() };
    let v = Param::new(Tensor::from_slice(&[1.0f32, 2.0]));
    let d = Value::map([
        ("a", Value::from(&v)),
        ("b", Tensor::from_slice(&[3.0f32]).into()),
    ]);
    let twice = jit(|args: &[Value]| -> Result<Value> {
        let (x, y) = (&args[0], &args[1]);
        let same_var = match (x.entry("a")?, y.entry("a")?) {
            (Value::Variable(a), Value::Variable(b)) => a.ptr_eq(&b),
            _ => false,
        };
        let var = x.entry("a")?.variable()?;
        var.set_value((&var.value() + 1.0)?)?;
        let b2 = (&x.entry("b")?.as_tensor()? * 2.0)?;
        Ok(Value::tuple(vec![
            Value::from(x.same_as(y)),
            Value::from(same_var),
            Value::from(b2),
        ]))
    })
    .call(engine, (&d, &d))?;
    let t = &g["twice"];
    let got = (
        twice.entry(0)?.as_static().cloned(),
        twice.entry(1)?.as_static().cloned(),
        v.value().to_vec::<f32>()?,
        d.entry("b")?.as_tensor()?.to_vec::<f32>()?,
        twice.entry(2)?.as_tensor()?.to_vec::<f32>()?,
    );
    let expected = (
        Some(Static::from(t["same_dict"].as_bool().unwrap_or(true))),
        Some(Static::from(t["same_var"].as_bool().unwrap_or(false))),
        floats(&t["v"]),
        floats(&t["b"]),
        floats(&t["b2"]),
    );
    ensure!(
        got == expected,
        "a dict given twice: {got:?}; Flax: {expected:?}"
    );

    let returned =
        jit(|args: &[Value]| -> Result<Value> { Ok(args[0].clone()) }).call(engine, (&d,))?;
    // (A map has no identity to compare: Flax's `out is d` is False.)
    let r = &g["returned"];
    ensure!(
        matches!(returned, Value::Map(_))
            && r["type"] == "dict"
            && r["same_dict"] == false
            && matches!(returned.entry("a")?, Value::Variable(w) if w.ptr_eq(&v))
                == r["same_var"].as_bool().unwrap_or(false),
        "a returned dict: {returned:?}; Flax: {r}"
    );

    let w = Param::new(Tensor::ones([3, 2]));
    let arg = Value::map([
        ("w", Value::from(&w)),
        ("s", Tensor::from_slice(&[1.0f32, 2.0]).into()),
    ]);
    let y = vmap(|args: &[Value]| -> Result<Value> {
        let w = args[0].entry("w")?.variable()?;
        w.set_value((&w.value() * 2.0)?)?;
        Ok(w.value()
            .mul(&args[0].entry("s")?.as_tensor()?)?
            .sum(nnx_core::Axes::All)?
            .into())
    })
    .in_axes((StateAxes::by_key([("w", Some(0)), ("s", None)]),))
    .call(engine, (&arg,))?
    .as_tensor()?
    .to_vec::<f32>()?;
    ensure!(
        y == floats(&g["vmap"]["y"]) && w.value().to_vec::<f32>()? == floats(&g["vmap"]["w"]),
        "vmap over a plain dict: {y:?}, w {:?}; Flax: {}",
        w.value(),
        g["vmap"]
    );

    // grad: a plain dict is differentiated whole (a BatchStat in it too), an nnx.Dict by
    // its Params.
    let loss = |args: &[Value]| -> Result<Value> {
        let x = &args[0];
        let (a, b, c) = (
            x.entry("a")?.as_tensor()?,
            x.entry("b")?.as_tensor()?,
            x.entry("c")?.as_tensor()?,
        );
        let l = (a.mul(&b)?.sum(nnx_core::Axes::All)? + c.sum(nnx_core::Axes::All)?)?;
        Ok(l.into())
    };
    let p = Param::new(Tensor::from_slice(&[1.0f32, 2.0]));
    let bs = BatchStat::new(Tensor::from_slice(&[1.0f32]));
    let plain = Value::map([
        ("a", Value::from(&p)),
        ("b", Tensor::from_slice(&[3.0f32]).into()),
        ("c", Value::from(&bs)),
    ]);
    let out = value_and_grad(loss).call(engine, (&plain,))?;
    let tree = out.grads[0].tree()?;
    let gp = &g["grad_plain"];
    let variable = |key: &str| -> Result<(String, Vec<f32>)> {
        match tree.entry(key)? {
            Value::Variable(v) => Ok((v.type_name().to_owned(), v.value().to_vec::<f32>()?)),
            other => Ok((other.kind_name(), Vec::new())),
        }
    };
    let expected_variable = |json: &Json| -> (String, Vec<f32>) {
        (
            json[0].as_str().unwrap_or_default().to_owned(),
            floats(&json[1]),
        )
    };
    ensure!(
        variable("a")? == expected_variable(&gp["a"])
            && variable("c")? == expected_variable(&gp["c"])
            && tree.entry("b")?.as_tensor()?.to_vec::<f32>()? == floats(&gp["b"])
            && !matches!(tree.entry("a")?, Value::Variable(a) if a.ptr_eq(&p)),
        "grad of a plain dict: {tree:?}; Flax: {gp}"
    );
    let dict = nnx_core::Dict::new();
    dict.insert("a", &p)?;
    dict.insert("b", Tensor::from_slice(&[3.0f32]))?;
    dict.insert("c", &bs)?;
    let out = value_and_grad(loss).call(engine, (&dict,))?;
    let paths: Vec<String> = (out.grads[0].state()?.iter())
        .map(|(path, _)| path.slashed())
        .collect();
    let expected: Vec<String> = (g["grad_dict"].as_array().into_iter().flatten())
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    ensure!(
        paths == expected,
        "grad of an nnx.Dict: {paths:?}; Flax: {expected:?}"
    );

    let pair = Value::tuple(vec![
        Value::map([("a", Value::from(&p))]),
        Tensor::from_slice(&[2.0f32]).into(),
    ]);
    let out = value_and_grad(|args: &[Value]| -> Result<Value> {
        let t = &args[0];
        let a = t.entry(0)?.entry("a")?.as_tensor()?;
        Ok(a.mul(&t.entry(1)?.as_tensor()?)?
            .sum(nnx_core::Axes::All)?
            .into())
    })
    .call(engine, (&pair,))?;
    let tree = out.grads[0].tree()?;
    let gt = &g["grad_tuple"];
    ensure!(
        tree.entry(0)?.entry("a")?.as_tensor()?.to_vec::<f32>()? == floats(&gt["a"])
            && tree.entry(1)?.as_tensor()?.to_vec::<f32>()? == floats(&gt["x"]),
        "grad of a tuple: {tree:?}; Flax: {gt}"
    );
    Ok(Outcome::Pass)
}
