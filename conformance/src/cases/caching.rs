//! Caching through the one transform pipeline: every transform traces once per structure,
//! abstract values and prefixes; repeated calls on the same unchanged objects take the
//! shortcut; every structure change between calls is seen, and retraces exactly when the
//! structure key differs (as Flax's cache keyed by the GraphDef does); state captured by
//! closure is never baked into a reused trace.

use std::cell::Cell;

use nnx_core::transforms::{Carry, jit, scan, value_and_grad, vmap};
use nnx_core::{Axes, Engine, Object, Param, Result, Tensor, Value};

use super::guide::Count;
use crate::{CaseResult, Outcome, ensure};

fn f32s(t: &Tensor) -> Result<Vec<f32>> {
    t.to_vec::<f32>()
}

/// `vmap`, `scan` and `grad` trace once for repeated calls with the same structure, on the
/// same objects and on new ones, and propagate state every call.
pub fn every_transform_traces_once_per_structure(engine: &dyn Engine) -> CaseResult {
    let stacked = || -> Result<Object> {
        Object::new("Stack")
            .with("w", Param::new(Tensor::ones([3, 2])))?
            .with(
                "count",
                Count::new(Tensor::zeros_of([3], nnx_core::DType::I32)?),
            )
    };
    let v = vmap(|args: &[Value]| {
        let m = args[0].object()?;
        m.var("count")?.update(|c| c + 1)?;
        Ok(Value::from(m.value("w")?.sum(Axes::All)?))
    });
    let s = stacked()?;
    for k in 1..=3 {
        let y = v.call(engine, (&s,))?;
        ensure!(f32s(&y.as_tensor()?)? == [2.0; 3], "vmap output {y:?}");
        ensure!(
            s.value("count")?.to_vec::<i32>()? == [k; 3],
            "vmap state after call {k}: {}",
            s.value("count")?
        );
    }
    v.call(engine, (&stacked()?,))?;
    ensure!(v.trace_count() == 1, "vmap traced {}", v.trace_count());

    let sc = scan(|args: &[Value]| {
        let c = args[0].as_tensor()?;
        let x = args[1].as_tensor()?;
        let c = (&c + &x)?;
        Ok(Value::Tuple(vec![Value::from(c.clone()), Value::from(c)]))
    })
    .in_axes((Carry, 0))
    .out_axes((Carry, 0));
    for _ in 0..3 {
        let out = sc.call(engine, (&Tensor::zeros([2]), &Tensor::ones([4, 2])))?;
        let Value::Tuple(items) = out else {
            return Err(crate::Failure("scan must return a tuple".into()));
        };
        ensure!(f32s(&items[0].as_tensor()?)? == [4.0, 4.0], "scan carry");
    }
    ensure!(sc.trace_count() == 1, "scan traced {}", sc.trace_count());
    sc.call(engine, (&Tensor::zeros([2]), &Tensor::ones([5, 2])))?;
    ensure!(sc.trace_count() == 2, "a new length must retrace");

    let g = value_and_grad(|args: &[Value]| {
        let m = args[0].object()?;
        m.var("count")?.update(|c| c + 1)?;
        Ok(Value::from((&m.value("w")? * 3.0)?.sum(Axes::All)?))
    });
    let m = stacked()?;
    for k in 1..=3 {
        let out = g.call(engine, (&m,))?;
        let grads = out.grads[0].state()?;
        let w = grads
            .iter()
            .next()
            .map(|(_, leaf)| leaf.value())
            .ok_or_else(|| crate::Failure("no gradient".into()))?;
        ensure!(f32s(&w)? == [3.0; 6], "gradient {w}");
        ensure!(
            m.value("count")?.to_vec::<i32>()? == [k; 3],
            "grad state after call {k}"
        );
    }
    ensure!(g.trace_count() == 1, "grad traced {}", g.trace_count());
    // A Param added between calls is differentiated too, after one retrace.
    m.set("extra", Param::new(Tensor::ones([2])))?;
    for _ in 0..2 {
        let out = g.call(engine, (&m,))?;
        let paths: Vec<String> = out.grads[0]
            .state()?
            .iter()
            .map(|(p, _)| p.to_string())
            .collect();
        ensure!(
            paths.len() == 2,
            "gradient paths after the change: {paths:?}"
        );
    }
    ensure!(g.trace_count() == 2, "grad traced {}", g.trace_count());
    Ok(Outcome::Pass)
}

/// Between calls on the same objects: adding, deleting and replacing attributes, new
/// sharing, Variable metadata, a static attribute, a replaced sub-object and a raw array.
/// Each is seen; the trace is reused exactly when the structure is one seen before, and the
/// current values (of new Variables too) are always the ones used and written.
pub fn structure_changes_between_calls_are_seen(engine: &dyn Engine) -> CaseResult {
    let runs = Cell::new(0);
    // Doubles every Param it finds on `m` and `m.sub`, returns the sum of `m.w`.
    let f = jit(|args: &[Value]| {
        runs.set(runs.get() + 1);
        let m = args[0].object()?;
        for o in [m.clone(), m.object("sub")?] {
            for (name, value) in o.attributes() {
                if let Value::Variable(v) = value
                    && v.is_instance(nnx_core::VariableType::PARAM)
                {
                    o.var(&name)?.update(|x| &x * 2.0)?;
                }
            }
        }
        let raw = m.value("raw")?;
        Ok(Value::from(
            (&m.value("w")?.sum(Axes::All)? + &raw.sum(Axes::All)?)?,
        ))
    });
    let sub = Object::new("Sub").with("p", Param::new(Tensor::ones([2])))?;
    let m = Object::new("M")
        .with("w", Param::new(Tensor::ones([2])))?
        .with("sub", sub)?
        .with("raw", Tensor::zeros([1]))?
        .with("tag", "a")?;
    let call = |expected: f32, traces: usize, what: &str| -> CaseResult {
        let y = f.call(engine, (&m,))?.as_tensor()?.item::<f32>()?;
        ensure!(y == expected, "{what}: output {y}, expected {expected}");
        ensure!(
            f.trace_count() == traces,
            "{what}: {} traces, expected {traces}",
            f.trace_count()
        );
        Ok(Outcome::Pass)
    };
    call(4.0, 1, "first call")?;
    call(8.0, 1, "same objects")?;
    // A new Variable in place of the old one: same structure, no retrace, its value used.
    m.set("w", Param::new(Tensor::full([2], 10.0f32)))?;
    call(40.0, 1, "replaced Variable")?;
    ensure!(
        f32s(&m.value("w")?)? == [20.0, 20.0],
        "the new Variable got the result"
    );
    m.set("extra", Param::new(Tensor::ones([3])))?;
    call(80.0, 2, "added attribute")?;
    ensure!(
        f32s(&m.value("extra")?)? == [2.0; 3],
        "the added Param was updated"
    );
    m.del("extra")?;
    call(160.0, 2, "deleted attribute (a structure seen before)")?;
    m.set("alias", m.get("w")?)?;
    call(
        640.0,
        3,
        "new sharing (the shared Param is doubled under both names)",
    )?;
    ensure!(
        m.var("alias")?.ptr_eq(&m.var("w")?),
        "sharing kept by write-back"
    );
    m.del("alias")?;
    m.var("w")?.set_metadata("sharding", "x")?;
    call(1280.0, 4, "Variable metadata")?;
    m.set("tag", "b")?;
    call(2560.0, 5, "static attribute")?;
    let before = m.object("sub")?.value("p")?;
    m.set(
        "sub",
        Object::new("Sub").with("p", Param::new(Tensor::full([2], 5.0f32)))?,
    )?;
    call(5120.0, 5, "replaced sub-object of the same structure")?;
    ensure!(
        f32s(&m.object("sub")?.value("p")?)? == [10.0, 10.0],
        "the new sub-object was updated"
    );
    ensure!(
        f32s(&before)? != [10.0, 10.0],
        "the old sub-object's value is its own"
    );
    m.object("sub")?.set("q", Param::new(Tensor::ones([1])))?;
    call(10240.0, 6, "attribute added to a sub-object")?;
    m.set("raw", Tensor::ones([1]))?;
    call(20481.0, 6, "raw array replaced (same shape)")?;
    m.set("raw", Tensor::ones([2]))?;
    call(40962.0, 7, "raw array of a new shape")?;
    ensure!(runs.get() == 7, "the function ran {} times", runs.get());
    Ok(Outcome::Pass)
}

/// A function that reads state captured by closure (not passed as an argument) sees it as
/// it is at each call: such a trace is never reused.
pub fn captured_state_is_read_at_every_call(engine: &dyn Engine) -> CaseResult {
    let outer = Param::new(Tensor::ones([2]));
    let v = vmap(|args: &[Value]| Ok(Value::from((&args[0].as_tensor()? * &outer.value())?)));
    let j = jit(|args: &[Value]| Ok(Value::from((&args[0].as_tensor()? * &outer.value())?)));
    let x = Tensor::ones([3, 2]);
    v.call(engine, (&x,))?;
    j.call(engine, (&x,))?;
    outer.set_value(Tensor::full([2], 7.0f32))?;
    let y = v.call(engine, (&x,))?.as_tensor()?;
    ensure!(f32s(&y)? == [7.0; 6], "vmap used a stale capture: {y}");
    let y = j.call(engine, (&x,))?.as_tensor()?;
    ensure!(f32s(&y)? == [7.0; 6], "jit used a stale capture: {y}");
    Ok(Outcome::Pass)
}
