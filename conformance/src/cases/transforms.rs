//! `vmap` and `jit` behaviour beyond the guide: errors (with snapshots), metadata with
//! negative axes, retracing, propagation through `jit`, nesting, failure atomicity.

use std::cell::Cell;

use nnx_core::lift::Prefix;
use nnx_core::transforms::{StateAxes, jit, vmap};
use nnx_core::{Engine, Error, Object, Param, Result, Tensor, Value, VariableType, static_tuple};

use super::guide::Count;
use crate::snapshots::snapshot;
use crate::{CaseResult, Failure, Outcome, ensure};

fn expect_err(result: Result<Value>, what: &str) -> std::result::Result<Error, Failure> {
    match result {
        Ok(_) => Err(Failure(format!("{what} must fail"))),
        Err(e) => Ok(e),
    }
}

fn model() -> Result<Object> {
    Object::new("Model")
        .with("kernel", Param::new(Tensor::ones([10, 2, 3])))?
        .with("count", Count::new(Tensor::weak_scalar(0i32)))
}

/// Mapped axes of different sizes: the error names every mapped argument, shape and axis.
pub fn vmap_axis_size_mismatch_names_each_argument(engine: &dyn Engine) -> CaseResult {
    let m = Object::new("Model").with("kernel", Param::new(Tensor::ones([10, 2, 3])))?;
    let before = m.to_string();
    let err = expect_err(
        vmap(|args: &[Value]| Ok(args[1].clone())).call(
            engine,
            &[Value::from(&m), Value::from(Tensor::ones([5, 2]))],
        ),
        "mismatched axis sizes",
    )?;
    snapshot("vmap_axis_size_mismatch", &err.to_string());
    ensure!(m.to_string() == before, "the object changed");
    Ok(Outcome::Pass)
}

/// An axis outside an argument's rank, and no mapped input without `axis_size`.
pub fn vmap_axis_errors(engine: &dyn Engine) -> CaseResult {
    let err = expect_err(
        vmap(|args: &[Value]| Ok(args[0].clone()))
            .in_axes(2)
            .call(engine, &[Value::from(Tensor::ones([4, 2]))]),
        "an out-of-range axis",
    )?;
    snapshot("vmap_out_of_range_axis", &err.to_string());
    let err = expect_err(
        vmap(|_: &[Value]| Ok(Value::from(Tensor::ones([2]))))
            .in_axes(Prefix::Tuple(vec![]))
            .call(engine, &[]),
        "vmap with nothing to map",
    )?;
    snapshot("vmap_needs_axis_size", &err.to_string());
    Ok(Outcome::Pass)
}

/// `StateAxes` used as the prefix of a tuple of objects rather than on an object.
pub fn vmap_state_axes_on_a_tuple_error(engine: &dyn Engine) -> CaseResult {
    let m = model()?;
    let axes = StateAxes::new([
        (VariableType::PARAM.into(), Some(0)),
        (Count::TYPE.into(), None),
    ]);
    let pair = Value::tuple(vec![Value::from(&m), Value::from(&m)]);
    let err = expect_err(
        vmap(|_: &[Value]| Ok(Value::from(())))
            .in_axes((axes,))
            .call(engine, &[pair]),
        "StateAxes on a tuple",
    )?;
    snapshot("vmap_state_axes_on_tuple", &err.to_string());
    Ok(Outcome::Pass)
}

/// Broadcast (`None`) state changed by a value that depends on mapped inputs differs per lane:
/// an error naming the Variable, and the caller's objects are untouched.
pub fn vmap_broadcast_state_changed_by_batched_value_error(engine: &dyn Engine) -> CaseResult {
    let m = model()?;
    let axes = StateAxes::new([
        (VariableType::PARAM.into(), Some(0)),
        (Count::TYPE.into(), None),
    ]);
    let err = expect_err(
        vmap(|args: &[Value]| {
            let m = args[0].object()?;
            let kernel_sum = m.value("kernel")?.sum(nnx_core::Axes::All)?;
            m.var("count")?
                .update(|c| c.add(&kernel_sum.astype(nnx_core::DType::I32)?))?;
            Ok(Value::from(()))
        })
        .in_axes((axes,))
        .call(engine, &[Value::from(&m)]),
        "a batched update of broadcast state",
    )?;
    snapshot("vmap_broadcast_state_batched", &err.to_string());
    ensure!(m.value("count")?.item::<i32>()? == 0, "count changed");
    Ok(Outcome::Pass)
}

/// A failing function leaves the caller's objects exactly as they were.
pub fn vmap_failure_leaves_objects_unchanged(engine: &dyn Engine) -> CaseResult {
    let m = Object::new("Model")
        .with("kernel", Param::new(Tensor::ones([4, 2])))?
        .with("count", Count::new(Tensor::arange(4)))?;
    let before = m.to_string();
    let count = m.value("count")?;
    let err = expect_err(
        vmap(|args: &[Value]| {
            let m = args[0].object()?;
            m.var("count")?.update(|c| c + 1)?;
            m.del("kernel")?;
            Err(Error::shape("f", "boom"))
        })
        .call(engine, &[Value::from(&m)]),
        "a failing function",
    )?;
    ensure!(err == Error::shape("f", "boom"), "unexpected error {err}");
    ensure!(m.to_string() == before, "the object changed:\n{m}");
    ensure!(m.value("count")?.identical(&count), "count changed");
    Ok(Outcome::Pass)
}

/// A Variable created inside a module mapped on axis 1 comes out with the batch axis at 1.
pub fn vmap_new_variable_in_mapped_object_is_stacked(engine: &dyn Engine) -> CaseResult {
    let m = Object::new("Model").with("w", Param::new(Tensor::ones([5, 3])))?;
    vmap(|args: &[Value]| {
        let m = args[0].object()?;
        m.set("fresh", Count::new(Tensor::zeros([5])))?;
        Ok(Value::from(()))
    })
    .in_axes(1)
    .call(engine, &[Value::from(&m)])?;
    ensure!(
        m.value("fresh")?.shape() == [5, 3],
        "fresh shape {:?}",
        m.value("fresh")?.shape()
    );
    Ok(Outcome::Pass)
}

/// Negative axes with `transform_metadata` insert the axis name where the axis really is
/// (Flax gets this wrong, SEMANTICS.md §13 item 2).
pub fn vmap_metadata_with_negative_axes(engine: &dyn Engine) -> CaseResult {
    let m = Object::new("M").with(
        "p",
        Param::new(Tensor::ones([2, 3, 4])).with_metadata("sharding", static_tuple![(), "a", "b"]),
    )?;
    vmap(|_: &[Value]| Ok(Value::from(())))
        .in_axes(-1)
        .out_axes(-1)
        .transform_metadata("b")
        .call(engine, &[Value::from(&m)])?;
    let sharding = m.var("p")?.metadata_value("sharding");
    ensure!(
        sharding == Some(static_tuple![(), "a", "b"]),
        "round trip gave {sharding:?}"
    );
    let created = vmap(|_: &[Value]| {
        Ok(Value::from(Object::new("M").with(
            "p",
            Param::new(Tensor::ones([3, 5])).with_metadata("sharding", static_tuple!["a", ()]),
        )?))
    })
    .in_axes(Prefix::Tuple(vec![]))
    .out_axes(-1)
    .axis_size(4)
    .transform_metadata("b")
    .call(engine, &[])?;
    let p = created.object()?.var("p")?;
    ensure!(p.shape() == [3, 5, 4], "shape {:?}", p.shape());
    ensure!(
        p.metadata_value("sharding") == Some(static_tuple!["a", (), "b"]),
        "created sharding {:?}",
        p.metadata_value("sharding")
    );
    Ok(Outcome::Pass)
}

/// `jit` traces once per structure: same structure and shapes reuse the trace, new shapes
/// and a structure change made inside retrace; state propagates every call.
pub fn jit_traces_once_per_structure(engine: &dyn Engine) -> CaseResult {
    let calls = Cell::new(0);
    let f = jit(|args: &[Value]| {
        calls.set(calls.get() + 1);
        let m = args[0].object()?;
        m.var("count")?.update(|c| c + 1)?;
        Ok(Value::from(m.value("w")?.sum(nnx_core::Axes::All)?))
    });
    let m = Object::new("M")
        .with("w", Param::new(Tensor::ones([3])))?
        .with("count", Count::new(Tensor::scalar(0i32)))?;
    for _ in 0..3 {
        f.call(engine, &[Value::from(&m)])?;
    }
    ensure!(
        f.trace_count() == 1,
        "traced {} times for one structure",
        f.trace_count()
    );
    ensure!(calls.get() == 1, "the function ran {} times", calls.get());
    ensure!(
        m.value("count")?.item::<i32>()? == 3,
        "count {}",
        m.value("count")?
    );
    let other = Object::new("M")
        .with("w", Param::new(Tensor::ones([3])))?
        .with("count", Count::new(Tensor::scalar(0i32)))?;
    f.call(engine, &[Value::from(&other)])?;
    ensure!(
        f.trace_count() == 1,
        "a new instance with the same structure retraced"
    );
    m.var("w")?.set_value(Tensor::ones([4]))?;
    f.call(engine, &[Value::from(&m)])?;
    ensure!(f.trace_count() == 2, "a new shape did not retrace");

    let grows = jit(|args: &[Value]| {
        let m = args[0].object()?;
        let n = m.attribute_names().len();
        m.set(&format!("attr{n}"), n as i64)?;
        Ok(Value::from(()))
    });
    let g = Object::new("G");
    for _ in 0..3 {
        grows.call(engine, &[Value::from(&g)])?;
    }
    ensure!(
        grows.trace_count() == 3,
        "structure changes must retrace: {}",
        grows.trace_count()
    );
    ensure!(
        g.attribute_names() == ["attr0", "attr1", "attr2"],
        "attributes {:?}",
        g.attribute_names()
    );
    Ok(Outcome::Pass)
}

/// Graph updates and metadata changes inside `jit` propagate (Flax drops metadata
/// changes, SEMANTICS.md §13 item 3), and a returned input keeps its identity.
pub fn jit_propagates_graph_and_metadata_updates(engine: &dyn Engine) -> CaseResult {
    let m = Object::new("M")
        .with("p", Param::new(Tensor::ones([2])))?
        .with("old", Count::new(Tensor::scalar(0i32)))?;
    let out = jit(|args: &[Value]| {
        let m = args[0].object()?;
        m.var("p")?.set_metadata("foo", "bar")?;
        m.var("p")?.update(|p| p * 3.0)?;
        m.del("old")?;
        m.set("alias", m.get("p")?)?;
        m.set(
            "child",
            Object::new("Child").with("c", Count::new(Tensor::scalar(7i32)))?,
        )?;
        Ok(args[0].clone())
    })
    .call(engine, &[Value::from(&m)])?;
    ensure!(
        out.object()?.ptr_eq(&m),
        "the returned input is a new object"
    );
    ensure!(
        m.var("p")?.metadata_value("foo") == Some("bar".into()),
        "metadata change lost"
    );
    ensure!(
        m.value("p")?.to_vec::<f32>()? == vec![3.0, 3.0],
        "value {}",
        m.value("p")?
    );
    ensure!(!m.has("old"), "deleted attribute came back");
    ensure!(
        m.var("alias")?.ptr_eq(&m.var("p")?),
        "new shared reference lost"
    );
    ensure!(
        m.object("child")?.value("c")?.item::<i32>()? == 7,
        "new sub-object lost"
    );
    Ok(Outcome::Pass)
}

fn row_stats(args: &[Value]) -> Result<Value> {
    let x = args[0].as_tensor()?;
    Ok(Value::from(x.mul(&x)?.sum(nnx_core::Axes::All)?))
}

/// Transforms nest: `jit(vmap(f))`, `vmap(jit(f))` and `vmap(vmap(f))` equal the plain
/// per-element computation.
pub fn transforms_nest(engine: &dyn Engine) -> CaseResult {
    let x = Tensor::arange(12)
        .reshape(&[3, 4])?
        .astype(nnx_core::DType::F32)?;
    let expected = x.mul(&x)?.sum(1)?;
    let inner = vmap(row_stats);
    let jit_of_vmap = jit(|args: &[Value]| inner.call(engine, args));
    let a = jit_of_vmap
        .call(engine, &[Value::from(x.clone())])?
        .as_tensor()?;
    ensure!(a.allclose(&expected, 1e-6, 0.0)?, "jit(vmap(f)) gave {a}");
    let jitted = jit(row_stats);
    let b = vmap(|args: &[Value]| jitted.call(engine, args))
        .call(engine, &[Value::from(x.clone())])?
        .as_tensor()?;
    ensure!(b.allclose(&expected, 1e-6, 0.0)?, "vmap(jit(f)) gave {b}");
    let per_element = vmap(|args: &[Value]| {
        let v = args[0].as_tensor()?;
        Ok(Value::from(v.mul(&v)?))
    });
    let c = vmap(|args: &[Value]| per_element.call(engine, args))
        .call(engine, &[Value::from(x.clone())])?
        .as_tensor()?;
    ensure!(
        c.allclose(&x.mul(&x)?, 1e-6, 0.0)?,
        "vmap(vmap(f)) gave {c}"
    );
    Ok(Outcome::Pass)
}

/// State updates made by an inner transform reach the outer transform's objects and then
/// the caller's.
pub fn nested_state_updates_propagate(engine: &dyn Engine) -> CaseResult {
    let m = Object::new("M").with("count", Count::new(Tensor::arange(3)))?;
    let inner = jit(|args: &[Value]| {
        args[0].object()?.var("count")?.update(|c| c + 10)?;
        Ok(Value::from(()))
    });
    vmap(|args: &[Value]| inner.call(engine, args)).call(engine, &[Value::from(&m)])?;
    ensure!(
        m.value("count")?.to_vec::<i32>()? == vec![10, 11, 12],
        "count {}",
        m.value("count")?
    );
    Ok(Outcome::Pass)
}

/// Reading a tracer's contents inside a transform is a clear error, and the function runs
/// once per trace, not once per lane.
pub fn reading_a_tracer_is_an_error(engine: &dyn Engine) -> CaseResult {
    let runs = Cell::new(0);
    let err = expect_err(
        vmap(|args: &[Value]| {
            runs.set(runs.get() + 1);
            let values = args[0].as_tensor()?.to_vec::<f32>()?;
            Ok(Value::from(Tensor::from_slice(&values)))
        })
        .call(engine, &[Value::from(Tensor::ones([4, 2]))]),
        "reading a tracer",
    )?;
    ensure!(
        err.kind() == nnx_core::ErrorKind::Tracing,
        "kind {:?}",
        err.kind()
    );
    snapshot("reading_a_tracer", &err.to_string());
    let ok = vmap(|args: &[Value]| {
        runs.set(runs.get() + 1);
        Ok(Value::from((&args[0].as_tensor()? * 2.0)?))
    })
    .call(engine, &[Value::from(Tensor::ones([4, 2]))])?;
    ensure!(
        runs.get() == 2,
        "the functions ran {} times for 2 traces",
        runs.get()
    );
    ensure!(
        ok.as_tensor()?.to_vec::<f32>()? == vec![2.0; 8],
        "values {}",
        ok.as_tensor()?
    );
    Ok(Outcome::Pass)
}
