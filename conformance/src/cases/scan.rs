//! `scan`: loops with carried, scanned and broadcast state; errors; nesting; gradients.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use nnx_core::lift::Prefix;
use nnx_core::transforms::{Carry, ScanAxis, jit, scan, value_and_grad, vmap};
use nnx_core::{Axes, Engine, Error, Object, Param, Path, Result, Tensor, Value};

use super::guide::Count;
use crate::snapshots::snapshot;
use crate::{CaseResult, Failure, Outcome, ensure};

/// One step of a random recurrent body: `c' = tanh(c * a + x * b)`, `y = sum(c')`.
fn step(c: &Tensor, x: &Tensor, a: f32, b: f32) -> Result<(Tensor, Tensor)> {
    let next = (c * a)?.add(&(x * b)?)?.tanh()?;
    let y = next.sum(Axes::All)?;
    Ok((next, y))
}

/// `scan` over n steps equals the explicit n-step loop, for random bodies, carries, lengths
/// and directions.
pub fn scan_matches_an_explicit_loop(engine: &dyn Engine) -> CaseResult {
    let strategy = (
        1usize..4,
        0usize..5,
        -1.5f32..1.5,
        -1.5f32..1.5,
        any::<bool>(),
        vec(-1.0f32..1.0, 24),
    );
    let mut runner = TestRunner::new(Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    });
    let fail = |e: Error| TestCaseError::fail(e.to_string());
    let result = runner.run(&strategy, |(d, n, a, b, reverse, values)| {
        let c0 = Tensor::from_vec(&[d], values[..d].to_vec()).map_err(fail)?;
        let xs = Tensor::from_vec(
            &[n, d],
            values.iter().cycle().skip(3).take(n * d).copied().collect(),
        )
        .map_err(fail)?;
        let out = scan(|args: &[Value]| {
            let (next, y) = step(&args[0].as_tensor()?, &args[1].as_tensor()?, a, b)?;
            Ok(Value::tuple(vec![Value::from(next), Value::from(y)]))
        })
        .length(n)
        .reverse(reverse)
        .call(engine, &[Value::from(c0.clone()), Value::from(xs.clone())])
        .map_err(fail)?;
        let Value::Tuple(items) = out else {
            return Err(TestCaseError::fail("expected (carry, ys)"));
        };
        let mut c = c0;
        let mut ys = vec![Tensor::zeros([]); n];
        let order: Vec<usize> = if reverse {
            (0..n).rev().collect()
        } else {
            (0..n).collect()
        };
        for t in order {
            let (next, y) =
                step(&c, &xs.index_axis(0, t as isize).map_err(fail)?, a, b).map_err(fail)?;
            c = next;
            ys[t] = y;
        }
        let carry = items[0].as_tensor().map_err(fail)?;
        prop_assert!(
            carry.allclose(&c, 1e-5, 1e-6).map_err(fail)?,
            "carry {carry} vs {c}"
        );
        let got = items[1].as_tensor().map_err(fail)?;
        prop_assert_eq!(got.shape(), &[n][..]);
        if n > 0 {
            let expected = Tensor::stack(&ys, 0).map_err(fail)?;
            prop_assert!(
                got.allclose(&expected, 1e-5, 1e-6).map_err(fail)?,
                "ys {got} vs {expected}"
            );
        }
        Ok(())
    });
    result
        .map(|()| Outcome::Pass)
        .map_err(|e| Failure(format!("scan_matches_an_explicit_loop: {e}")))
}

/// A carried object's state is threaded; a scanned stack of objects is re-stacked with its
/// per-iteration updates; broadcast Params are shared by every iteration.
pub fn scan_threads_carried_and_scanned_objects(engine: &dyn Engine) -> CaseResult {
    let counter = Object::new("Counter").with("total", Count::new(Tensor::scalar(0i32)))?;
    let layers = Object::new("Layers")
        .with("calls", Count::new(Tensor::arange(4)))?
        .with(
            "scale",
            Param::new(Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0])),
        )?;
    let shared = Object::new("Shared").with("offset", Param::new(Tensor::scalar(0.5f32)))?;
    let out = scan(|args: &[Value]| {
        let (counter, layer, shared) = (args[0].object()?, args[1].object()?, args[2].object()?);
        counter.var("total")?.update(|t| t + 1)?;
        layer.var("calls")?.update(|c| c + 10)?;
        let y = layer.value("scale")?.add(&shared.value("offset")?)?;
        Ok(Value::tuple(vec![Value::from(&counter), Value::from(y)]))
    })
    .in_axes((Carry, 0, None::<i32>))
    .call(
        engine,
        &[
            Value::from(&counter),
            Value::from(&layers),
            Value::from(&shared),
        ],
    )?;
    let Value::Tuple(items) = out else {
        return Err(Failure("expected (carry, ys)".into()));
    };
    ensure!(
        items[0].object()?.ptr_eq(&counter),
        "the carried object lost its identity"
    );
    ensure!(
        counter.value("total")?.item::<i32>()? == 4,
        "total {}",
        counter.value("total")?
    );
    ensure!(
        layers.value("calls")?.to_vec::<i32>()? == vec![10, 11, 12, 13],
        "calls {}",
        layers.value("calls")?
    );
    ensure!(
        items[1].as_tensor()?.to_vec::<f32>()? == vec![1.5, 2.5, 3.5, 4.5],
        "ys {}",
        items[1].as_tensor()?
    );
    Ok(Outcome::Pass)
}

/// Broadcast state: an iteration-independent change is written back (once); one that
/// depends on the iteration is an error (Flax drops both silently).
pub fn scan_broadcast_state_rules(engine: &dyn Engine) -> CaseResult {
    let m = Object::new("M").with("seen", Count::new(Tensor::scalar(0i32)))?;
    scan(|args: &[Value]| {
        args[1].object()?.var("seen")?.update(|s| s + 1)?;
        Ok(Value::tuple(vec![
            args[0].clone(),
            Value::from(args[0].as_tensor()?),
        ]))
    })
    .in_axes((Carry, None::<i32>))
    .length(3)
    .call(
        engine,
        &[Value::from(Tensor::scalar(0.0f32)), Value::from(&m)],
    )?;
    ensure!(
        m.value("seen")?.item::<i32>()? == 1,
        "seen {}",
        m.value("seen")?
    );
    let err = scan(|args: &[Value]| {
        let c = args[0].as_tensor()?;
        args[1]
            .object()?
            .var("seen")?
            .update(|s| s.add(&c.astype(nnx_core::DType::I32)?))?;
        Ok(Value::tuple(vec![
            Value::from((&c + 1.0f32)?),
            Value::from(c),
        ]))
    })
    .in_axes((Carry, None::<i32>))
    .length(3)
    .call(
        engine,
        &[Value::from(Tensor::scalar(0.0f32)), Value::from(&m)],
    )
    .err()
    .ok_or_else(|| Failure("an iteration-dependent broadcast update must fail".into()))?;
    snapshot(
        "scan_broadcast_state_depends_on_iteration",
        &err.to_string(),
    );
    ensure!(
        m.value("seen")?.item::<i32>()? == 1,
        "the object changed on error"
    );
    Ok(Outcome::Pass)
}

/// Carry rules: adding state to the carry is an error naming the path; `Carry` placement and
/// `None` in `out_axes` are checked.
pub fn scan_carry_errors(engine: &dyn Engine) -> CaseResult {
    let m = Object::new("M").with("w", Param::new(Tensor::ones([2])))?;
    let err = scan(|args: &[Value]| {
        let m = args[0].object()?;
        m.set("extra", Count::new(Tensor::scalar(0i32)))?;
        Ok(Value::tuple(vec![
            args[0].clone(),
            Value::from(args[1].as_tensor()?),
        ]))
    })
    .call(engine, &[Value::from(&m), Value::from(Tensor::ones([3]))])
    .err()
    .ok_or_else(|| Failure("changing the carry structure must fail".into()))?;
    snapshot("scan_carry_structure_changed", &err.to_string());
    ensure!(!m.has("extra"), "the object changed on error");
    let identity = |args: &[Value]| Ok(Value::tuple(vec![args[0].clone(), args[0].clone()]));
    let err = scan(identity)
        .in_axes((Carry, Carry))
        .call(
            engine,
            &[
                Value::from(Tensor::ones([1])),
                Value::from(Tensor::ones([1])),
            ],
        )
        .err()
        .ok_or_else(|| Failure("two carries must fail".into()))?;
    snapshot("scan_multiple_carries", &err.to_string());
    let err = scan(identity)
        .out_axes((Carry, None::<i32>))
        .call(
            engine,
            &[
                Value::from(Tensor::ones([1])),
                Value::from(Tensor::ones([2])),
            ],
        )
        .err()
        .ok_or_else(|| Failure("None in out_axes must fail".into()))?;
    snapshot("scan_broadcast_output", &err.to_string());
    let err = scan(identity)
        .in_axes((Carry, 0))
        .out_axes(Prefix::Tuple(vec![
            Prefix::Leaf(ScanAxis::Axis(0)),
            Prefix::Leaf(ScanAxis::Axis(0)),
        ]))
        .call(
            engine,
            &[
                Value::from(Tensor::ones([1])),
                Value::from(Tensor::ones([2])),
            ],
        )
        .err()
        .ok_or_else(|| Failure("Carry on one side only must fail".into()))?;
    snapshot("scan_carry_on_one_side", &err.to_string());
    Ok(Outcome::Pass)
}

fn mlp_layer(args: &[Value]) -> Result<Value> {
    let (x, layer) = (args[0].as_tensor()?, args[1].object()?);
    let y = x
        .matmul(&layer.value("w")?)?
        .add(&layer.value("b")?)?
        .relu()?;
    Ok(Value::tuple(vec![Value::from(y), Value::from(())]))
}

/// Scan over layers: layers created with `vmap`, applied with `scan`; equal to applying the
/// layers one by one; `jit(scan)`, `scan(vmap)` and `grad` through `scan` agree with the
/// unrolled computation.
pub fn scan_over_layers_nests_with_vmap_jit_and_grad(engine: &dyn Engine) -> CaseResult {
    let (depth, width) = (3usize, 4usize);
    let layers = vmap(|args: &[Value]| {
        let key = nnx_core::random::key_from_seeds(&args[0].as_tensor()?)?;
        let w = (nnx_core::random::normal(&key, [width, width])? * 0.5f32)?;
        Ok(Value::from(
            Object::new("Linear")
                .with("w", Param::new(w))?
                .with("b", Param::new(Tensor::full([width], 0.1f32)))?,
        ))
    })
    .call(engine, &[Value::from(Tensor::arange(depth))])?;
    let layers = layers.object()?;
    ensure!(
        layers.value("w")?.shape() == [depth, width, width],
        "stacked shape {:?}",
        layers.value("w")?.shape()
    );
    let x = Tensor::from_vec(
        &[2, width],
        (0..2 * width).map(|i| i as f32 * 0.1 - 0.3).collect(),
    )?;
    let forward = scan(mlp_layer).in_axes((Carry, 0)).out_axes((Carry, 0));
    let apply = |x: &Tensor| -> Result<Tensor> {
        match forward.call(engine, &[Value::from(x.clone()), Value::from(&layers)])? {
            Value::Tuple(items) => items[0].as_tensor(),
            other => other.as_tensor(),
        }
    };
    let y = apply(&x)?;
    let mut expected = x.clone();
    for l in 0..depth {
        let w = layers.value("w")?.index_axis(0, l as isize)?;
        let b = layers.value("b")?.index_axis(0, l as isize)?;
        expected = expected.matmul(&w)?.add(&b)?.relu()?;
    }
    ensure!(
        y.allclose(&expected, 1e-5, 1e-6)?,
        "scan {y} vs loop {expected}"
    );

    let jitted = jit(|args: &[Value]| forward.call(engine, args));
    let jy = match jitted.call(engine, &[Value::from(x.clone()), Value::from(&layers)])? {
        Value::Tuple(items) => items[0].as_tensor()?,
        other => other.as_tensor()?,
    };
    ensure!(jy.allclose(&expected, 1e-5, 1e-6)?, "jit(scan) {jy}");

    let per_row = vmap(|args: &[Value]| {
        let row = args[0].as_tensor()?;
        match forward.call(engine, &[Value::from(row), args[1].clone()])? {
            Value::Tuple(items) => Ok(items[0].clone()),
            other => Ok(other),
        }
    })
    .in_axes((0, None::<i32>));
    let vy = per_row
        .call(engine, &[Value::from(x.clone()), Value::from(&layers)])?
        .as_tensor()?;
    ensure!(vy.allclose(&expected, 1e-5, 1e-6)?, "vmap(scan) {vy}");

    let scan_of_vmap = scan(|args: &[Value]| {
        let layer = args[1].clone();
        let y = vmap(|inner: &[Value]| match mlp_layer(inner)? {
            Value::Tuple(items) => Ok(items[0].clone()),
            other => Ok(other),
        })
        .in_axes((0, None::<i32>))
        .call(engine, &[args[0].clone(), layer])?;
        Ok(Value::tuple(vec![y, Value::from(())]))
    });
    let sy = match scan_of_vmap.call(engine, &[Value::from(x.clone()), Value::from(&layers)])? {
        Value::Tuple(items) => items[0].as_tensor()?,
        other => other.as_tensor()?,
    };
    ensure!(sy.allclose(&expected, 1e-5, 1e-6)?, "scan(vmap) {sy}");

    let loss = |args: &[Value]| -> Result<Value> {
        let y = match forward.call(engine, &[args[1].clone(), args[0].clone()])? {
            Value::Tuple(items) => items[0].as_tensor()?,
            other => other.as_tensor()?,
        };
        Ok(Value::from(y.mul(&y)?.mean(Axes::All)?))
    };
    let through_scan =
        value_and_grad(loss).call(engine, &[Value::from(&layers), Value::from(x.clone())])?;
    let unrolled = value_and_grad(|args: &[Value]| {
        let layers = args[0].object()?;
        let mut h = args[1].as_tensor()?;
        for l in 0..depth {
            let w = layers.value("w")?.index_axis(0, l as isize)?;
            let b = layers.value("b")?.index_axis(0, l as isize)?;
            h = h.matmul(&w)?.add(&b)?.relu()?;
        }
        Ok(Value::from(h.mul(&h)?.mean(Axes::All)?))
    })
    .call(engine, &[Value::from(&layers), Value::from(x)])?;
    ensure!(
        through_scan.value.allclose(&unrolled.value, 1e-5, 1e-6)?,
        "loss"
    );
    for name in ["w", "b"] {
        let a = through_scan.grads[0]
            .state()
            .map_err(Failure::from)?
            .variable(&Path::from([name]))?
            .value();
        let b = unrolled.grads[0]
            .state()
            .map_err(Failure::from)?
            .variable(&Path::from([name]))?
            .value();
        ensure!(a.allclose(&b, 1e-5, 1e-6)?, "grad {name}: {a} vs {b}");
    }
    Ok(Outcome::Pass)
}

/// `StateAxes` on a scanned object: Params broadcast, BatchStats carried (Flax's S4 example),
/// with `split_rngs` giving each iteration its own key.
pub fn scan_state_axes_and_split_rngs(engine: &dyn Engine) -> CaseResult {
    let m = Object::new("Block")
        .with("w", Param::new(Tensor::from_slice(&[2.0f32])))?
        .with(
            "stats",
            nnx_core::BatchStat::new(Tensor::from_slice(&[0.0f32])),
        )?;
    let state_axes = Prefix::StateAxes(vec![
        (nnx_core::VariableType::PARAM.into(), ScanAxis::Broadcast),
        (nnx_core::VariableType::BATCH_STAT.into(), ScanAxis::Carry),
    ]);
    let out = scan(|args: &[Value]| {
        let m = args[0].object()?;
        let w = m.value("w")?;
        m.var("stats")?.update(|s| s.add(&w))?;
        let h = args[1].as_tensor()?;
        Ok(Value::tuple(vec![Value::from(h.add(&w)?), Value::from(h)]))
    })
    .in_axes(Prefix::Tuple(vec![
        state_axes,
        Prefix::Leaf(ScanAxis::Carry),
    ]))
    .out_axes((Carry, 0))
    .length(3)
    .call(
        engine,
        &[Value::from(&m), Value::from(Tensor::from_slice(&[0.0f32]))],
    )?;
    let Value::Tuple(items) = out else {
        return Err(Failure("expected (carry, ys)".into()));
    };
    ensure!(
        items[0].as_tensor()?.to_vec::<f32>()? == vec![6.0],
        "h {}",
        items[0].as_tensor()?
    );
    ensure!(
        m.value("stats")?.to_vec::<f32>()? == vec![6.0],
        "stats {}",
        m.value("stats")?
    );
    ensure!(
        m.value("w")?.to_vec::<f32>()? == vec![2.0],
        "w {}",
        m.value("w")?
    );

    let holder = Object::new("Holder").with(
        "rngs",
        nnx_core::Rngs::builder().stream("noise", 0).build()?,
    )?;
    let draws =
        nnx_core::random::split_rngs_scoped(&holder, 4, &nnx_core::Filter::Everything, || {
            scan(|args: &[Value]| {
                let rngs = nnx_core::Rngs::from_object(args[0].object()?.object("rngs")?)?;
                let noise = nnx_core::random::normal(&rngs.next_key("noise")?, [])?;
                Ok(Value::from(noise))
            })
            .in_axes((0,))
            .out_axes(0)
            .call(engine, &[Value::from(&holder)])
        });
    let ys = draws?.as_tensor()?.to_vec::<f32>()?;
    ensure!(ys.len() == 4, "{ys:?}");
    ensure!(
        ys.windows(2).all(|w| w[0] != w[1]),
        "iterations drew the same noise: {ys:?}"
    );
    let count = holder.object("rngs")?.object("noise")?.value("count")?;
    ensure!(
        count.item::<u32>()? == 1,
        "the outer stream advanced by {count}"
    );
    Ok(Outcome::Pass)
}
