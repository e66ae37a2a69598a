//! `shard_map` over a mesh of devices (worker threads) with collectives: each collective
//! against its definition, the tensor-parallel Linear pair against the unsharded one,
//! data-parallel training against one device on the whole batch, gradients through
//! collectives, state updates, and the errors raised before anything runs.

use nnx_core::shard::{
    Mesh, PartitionSpec as P, all_gather, axis_index, pmax, pmean, ppermute, psum, psum_scatter,
};
use nnx_core::transforms::{
    Spec, StateSharding, get_partition_spec, grad, jit, pmap, shard_map, vmap,
};
use nnx_core::{Axes, Engine, Error, Filter, Object, Param, Result, Tensor, Value, VariableType};

use super::guide::Count;
use crate::snapshots::snapshot;
use crate::{CaseResult, Failure, Outcome, ensure};

fn close(a: &Tensor, b: &Tensor, tol: f32) -> Result<bool> {
    let (a, b) = (a.to_vec::<f32>()?, b.to_vec::<f32>()?);
    Ok(a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs())))
}

/// A grid of values that is not symmetric in anything.
fn grid(shape: &[usize], scale: f32) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) * scale)
        .collect();
    Tensor::from_vec(shape, data)
}

/// Every collective over a 2-device axis, on a value split over it, against its definition.
pub fn collectives_match_their_definitions(engine: &dyn Engine) -> CaseResult {
    let mesh = Mesh::new([("data", 2)])?;
    let x = Tensor::from_vec(&[4, 2], (0..8).map(|i| i as f32).collect())?;
    let split = P::new([Some("data")]);
    // Each device holds two rows: [[0, 1], [2, 3]] and [[4, 5], [6, 7]].
    let run = |f: fn(&Tensor) -> Result<Tensor>, out: P| -> Result<Tensor> {
        shard_map(f, &mesh)
            .in_specs((split.clone(),))
            .out_specs(out)
            .call(engine, (&x,))
    };
    let sum = run(|b| psum(b, "data"), P::replicated())?;
    ensure!(sum.to_vec::<f32>()? == [4.0, 6.0, 8.0, 10.0], "psum: {sum}");
    let mean = run(|b| pmean(b, "data"), P::replicated())?;
    ensure!(
        mean.to_vec::<f32>()? == [2.0, 3.0, 4.0, 5.0],
        "pmean: {mean}"
    );
    let max = run(
        |b| {
            pmax(
                &b.unary(nnx_core::tensor::elementwise::UnaryOp::Neg)?,
                "data",
            )
        },
        P::replicated(),
    )?;
    ensure!(
        max.to_vec::<f32>()? == [-0.0, -1.0, -2.0, -3.0],
        "pmax: {max}"
    );
    let gathered = run(|b| all_gather(b, "data", 0, true), P::replicated())?;
    ensure!(
        gathered.to_vec::<f32>()? == x.to_vec::<f32>()?,
        "all_gather tiled: {gathered}"
    );
    let stacked = run(|b| all_gather(b, "data", 0, false), P::replicated())?;
    ensure!(stacked.shape() == [2, 2, 2], "all_gather: {stacked}");
    // Each device keeps its row of the sum: device 0 row 0 of [[4, 6], [8, 10]].
    let scattered = run(|b| psum_scatter(b, "data", 0, true), P::new([Some("data")]))?;
    ensure!(
        scattered.to_vec::<f32>()? == [4.0, 6.0, 8.0, 10.0],
        "psum_scatter: {scattered}"
    );
    let swapped = run(
        |b| ppermute(b, "data", &[(0, 1), (1, 0)]),
        P::new([Some("data")]),
    )?;
    ensure!(
        swapped.to_vec::<f32>()? == [4.0, 5.0, 6.0, 7.0, 0.0, 1.0, 2.0, 3.0],
        "ppermute: {swapped}"
    );
    // A device no pair sends to gets zeros.
    let shifted = run(|b| ppermute(b, "data", &[(0, 1)]), P::new([Some("data")]))?;
    ensure!(
        shifted.to_vec::<f32>()? == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0],
        "ppermute without a source: {shifted}"
    );
    let index = shard_map(
        |b: &Tensor| -> Result<Tensor> {
            &(b * 0.0)? + &axis_index("data")?.astype(nnx_core::DType::F32)?
        },
        &mesh,
    )
    .in_specs((split.clone(),))
    .out_specs(split.clone())
    .call(engine, (&x,))?;
    ensure!(
        index.to_vec::<f32>()? == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0],
        "axis_index: {index}"
    );
    // A 2×2 mesh: a psum over one axis sums the devices that differ only along it.
    let mesh2 = Mesh::new([("x", 2), ("y", 2)])?;
    let m = grid(&[4, 2], 1.0)?;
    let by_x = shard_map(|b: &Tensor| psum(b, "x"), &mesh2)
        .in_specs((P::new([Some("x"), Some("y")]),))
        .out_specs(P::new([None, Some("y")]))
        .call(engine, (&m,))?;
    let rows = m.reshape(&[2, 2, 2])?.sum(0)?;
    ensure!(
        close(&by_x, &rows, 0.0)?,
        "psum over x on a 2×2 mesh: {by_x}; expected {rows}"
    );
    let both = shard_map(|b: &Tensor| psum(&b.sum(Axes::All)?, ["x", "y"]), &mesh2)
        .in_specs((P::new([Some("x"), Some("y")]),))
        .call(engine, (&m,))?;
    ensure!(
        close(&both, &m.sum(Axes::All)?, 1e-6)?,
        "psum over both axes: {both}"
    );
    Ok(Outcome::Pass)
}

/// `relu(x @ W1) @ W2` with W1 split by columns and W2 by rows over a 2-device `model`
/// axis, the partial products summed with `psum`, gives the unsharded result; the Linear
/// pair is an object whose Params carry `sharding` metadata, read by `Spec::FromMetadata`.
pub fn tensor_parallel_linear_pair_matches_unsharded(engine: &dyn Engine) -> CaseResult {
    let mesh = Mesh::new([("model", 2)])?;
    let w1 = Param::new(grid(&[4, 8], 0.1)?);
    w1.set_metadata(
        "sharding",
        nnx_core::static_tuple![nnx_core::Static::None, "model"],
    )?;
    let w2 = Param::new(grid(&[8, 3], 0.2)?);
    w2.set_metadata(
        "sharding",
        nnx_core::static_tuple!["model", nnx_core::Static::None],
    )?;
    let mlp = Object::new("Mlp").with("w1", &w1)?.with("w2", &w2)?;
    let x = grid(&[5, 4], 0.3)?;
    let forward = |m: &Object, x: &Tensor| -> Result<Tensor> {
        let h = x.matmul(&m.value("w1")?)?.relu()?;
        psum(&h.matmul(&m.value("w2")?)?, "model")
    };
    let y = shard_map(forward, &mesh)
        .in_specs((Spec::FromMetadata, P::replicated()))
        .out_specs(P::replicated())
        .call(engine, (&mlp, &x))?;
    let expected = x.matmul(&w1.value())?.relu()?.matmul(&w2.value())?;
    ensure!(
        close(&y, &expected, 1e-5)?,
        "tensor-parallel: {y}; unsharded {expected}"
    );
    // The same with the specs given by filter (`StateSharding`).
    let by_filter = StateSharding::new([
        (
            Filter::PathIn(vec![nnx_core::Path::parse("w1")?]),
            P::new([None, Some("model")]),
        ),
        (Filter::Everything, P::new([Some("model"), None])),
    ]);
    let y2 = shard_map(forward, &mesh)
        .in_specs((by_filter, P::replicated()))
        .call(engine, (&mlp, &x))?;
    ensure!(
        close(&y2, &expected, 1e-5)?,
        "tensor-parallel by filter: {y2}"
    );
    // And with the specs read once into a StateSharding (`nnx.get_partition_spec`).
    let y3 = shard_map(forward, &mesh)
        .in_specs((get_partition_spec(&mlp), P::replicated()))
        .call(engine, (&mlp, &x))?;
    ensure!(
        close(&y3, &expected, 1e-5)?,
        "tensor-parallel by get_partition_spec: {y3}"
    );
    Ok(Outcome::Pass)
}

/// The data-parallel training step: each device takes the gradient on its half of the
/// batch, `pmean` averages them, every device applies the same SGD update to the
/// replicated parameters. After several steps they equal one device's training on the
/// whole batch; a counter updated inside counts the steps once.
pub fn data_parallel_training_matches_one_device(engine: &dyn Engine) -> CaseResult {
    let model = || -> Result<Object> {
        Object::new("Linear")
            .with("w", Param::new(grid(&[3, 2], 0.1)?))?
            .with("b", Param::new(Tensor::zeros([2])))?
            .with("steps", Count::new(Tensor::scalar(0i32)))
    };
    let loss = |m: &Object, x: &Tensor, y: &Tensor| -> Result<Tensor> {
        let pred = (&x.matmul(&m.value("w")?)? + &m.value("b")?)?;
        let err = (&pred - y)?;
        err.mul(&err)?.mean(Axes::All)
    };
    let sgd = |m: &Object, grads: &nnx_core::graph::State, lr: f32| -> Result<()> {
        for name in ["w", "b"] {
            let g = grads
                .get(&nnx_core::Path::parse(name)?)
                .ok_or_else(|| Error::Sharding(format!("no gradient for {name}")))?
                .value();
            let v = m.var(name)?;
            v.set_value((&v.value() - &(&g * lr)?)?)?;
        }
        let steps = m.var("steps")?;
        steps.set_value((&steps.value() + 1)?)
    };
    let x = grid(&[8, 3], 0.25)?;
    let y = grid(&[8, 2], 0.5)?;
    let mesh = Mesh::new([("data", 2)])?;
    let parallel = model()?;
    let step = shard_map(
        |m: &Object, x: &Tensor, y: &Tensor| -> Result<Tensor> {
            let out = nnx_core::transforms::value_and_grad(loss).call(engine_of(), (m, x, y))?;
            let grads = out.grads[0].state()?.map(|_, g| pmean(g, "data"))?;
            sgd(m, &grads, 0.1)?;
            pmean(&out.value, "data")
        },
        &mesh,
    )
    .in_specs((
        P::replicated(),
        P::new([Some("data")]),
        P::new([Some("data")]),
    ));
    let single = model()?;
    let one_step = jit(|m: &Object, x: &Tensor, y: &Tensor| -> Result<Tensor> {
        let out = nnx_core::transforms::value_and_grad(loss).call(engine_of(), (m, x, y))?;
        let grads = out.grads[0].state()?.clone();
        sgd(m, &grads, 0.1)?;
        Ok(out.value)
    });
    for k in 0..4 {
        let a = step.call(engine, (&parallel, &x, &y))?;
        let b = one_step.call(engine, (&single, &x, &y))?;
        ensure!(
            close(&a, &b, 1e-5)?,
            "step {k}: loss {a} on two devices, {b} on one"
        );
    }
    for name in ["w", "b"] {
        ensure!(
            close(&parallel.value(name)?, &single.value(name)?, 1e-5)?,
            "{name} after 4 steps: {} on two devices, {} on one",
            parallel.value(name)?,
            single.value(name)?
        );
    }
    ensure!(
        parallel.value("steps")?.item::<i32>()? == 4,
        "the step counter: {}",
        parallel.value("steps")?
    );
    Ok(Outcome::Pass)
}

/// The engine nested transforms run on inside a traced function (they only record there).
fn engine_of() -> &'static dyn Engine {
    &nnx_reference::Reference
}

/// Gradients through collectives inside `shard_map`: `psum`'s transpose is `psum`,
/// `all_gather`'s is `psum_scatter`; and a `vmap` inside the body batches its collectives.
pub fn collectives_differentiate_and_batch(engine: &dyn Engine) -> CaseResult {
    let mesh = Mesh::new([("data", 2)])?;
    let w = grid(&[4], 0.5)?;
    // loss = Σ_devices Σ_i w_i · x_i on every device (psum): d loss_d / d w_d = psum(x)… per
    // device the gradient of the replicated loss with respect to its block is the block of
    // psum over devices of the cotangent 1 times x: 2·x_block (both devices' losses).
    let g = shard_map(
        |w: &Tensor, x: &Tensor| -> Result<Tensor> {
            let out = grad(|w: &Tensor, x: &Tensor| psum(&w.mul(x)?.sum(Axes::All)?, "data"))
                .argnums(&[0])
                .call(engine_of(), (w, x))?;
            Ok(out.grads[0].array()?.clone())
        },
        &mesh,
    )
    .in_specs((P::new([Some("data")]), P::new([Some("data")])))
    .out_specs(P::new([Some("data")]))
    .call(engine, (&w, &grid(&[4], 1.0)?))?;
    let expected = (&grid(&[4], 1.0)? * 2.0)?;
    ensure!(
        close(&g, &expected, 1e-6)?,
        "grad through psum: {g}; expected {expected}"
    );
    // all_gather: loss = Σ gathered² on every device; its gradient on a block is 2·2·block.
    let g = shard_map(
        |w: &Tensor| -> Result<Tensor> {
            let out = grad(|w: &Tensor| {
                let g = all_gather(w, "data", 0, true)?;
                g.mul(&g)?.sum(Axes::All)
            })
            .call(engine_of(), (w,))?;
            Ok(out.grads[0].array()?.clone())
        },
        &mesh,
    )
    .in_specs((P::new([Some("data")]),))
    .out_specs(P::new([Some("data")]))
    .call(engine, (&w,))?;
    let expected = (&w * 4.0)?;
    ensure!(
        close(&g, &expected, 1e-6)?,
        "grad through all_gather: {g}; expected {expected}"
    );
    // vmap inside the body: the psum runs on the batched value.
    let x = grid(&[4, 3], 1.0)?;
    let y = shard_map(
        |x: &Tensor| -> Result<Tensor> {
            vmap(|row: &Tensor| psum(&row.sum(Axes::All)?, "data")).call(engine_of(), (x,))
        },
        &mesh,
    )
    .in_specs((P::new([Some("data")]),))
    .out_specs(P::replicated())
    .call(engine, (&x,))?;
    let rows = x.sum(1)?;
    let expected = (&rows.slice_axis(0, 0..2)? + &rows.slice_axis(0, 2..4)?)?;
    ensure!(
        close(&y, &expected, 1e-6)?,
        "vmap of psum: {y}; expected {expected}"
    );
    Ok(Outcome::Pass)
}

/// Errors before anything runs, each naming the argument and the axis, and nothing changes.
pub fn shard_map_errors_name_the_argument_and_axis(engine: &dyn Engine) -> CaseResult {
    let mesh = Mesh::new([("data", 2)])?;
    let m = Object::new("M")
        .with("w", Param::new(grid(&[3, 2], 1.0)?))?
        .with("steps", Count::new(Tensor::scalar(0i32)))?;
    let bump = |m: &Object| -> Result<Tensor> {
        let s = m.var("steps")?;
        s.set_value((&s.value() + 1)?)?;
        m.value("w")
    };
    // The Params split as given, the counter replicated.
    let params = |spec: P| {
        StateSharding::new([
            (VariableType::PARAM.into(), spec),
            (Filter::Everything, P::replicated()),
        ])
    };
    let mut messages = Vec::new();
    let cases: Vec<(&str, Result<Tensor>)> = vec![
        (
            "an axis the mesh does not have",
            shard_map(bump, &mesh)
                .in_specs((params(P::new([Some("model")])),))
                .call(engine, (&m,)),
        ),
        (
            "a shape that does not split",
            shard_map(bump, &mesh)
                .in_specs((params(P::new([Some("data")])),))
                .call(engine, (&m,)),
        ),
        (
            "a spec longer than the value's rank",
            shard_map(bump, &mesh)
                .in_specs((params(P::new([None, None, Some("data")])),))
                .call(engine, (&m,)),
        ),
        (
            "an axis used twice",
            shard_map(bump, &mesh)
                .in_specs((params(P::new([Some("data"), Some("data")])),))
                .call(engine, (&m,)),
        ),
        (
            "a replicated output that varies",
            shard_map(|x: &Tensor| -> Result<Tensor> { Ok(x.clone()) }, &mesh)
                .in_specs((P::new([Some("data")]),))
                .call(engine, (&Tensor::ones([4]),)),
        ),
        (
            "process-local arguments on a mesh of threads",
            shard_map(|x: &Tensor| -> Result<Tensor> { Ok(x.clone()) }, &mesh)
                .process_local(true)
                .call(engine, (&Tensor::ones([4]),)),
        ),
        (
            "a collective outside shard_map",
            psum(&Tensor::ones([2]), "data"),
        ),
        (
            "a collective over an axis the mesh does not have",
            shard_map(|x: &Tensor| psum(x, "model"), &mesh).call(engine, (&Tensor::ones([2]),)),
        ),
    ];
    for (what, result) in cases {
        let err = result
            .err()
            .ok_or_else(|| Failure(format!("{what} was accepted")))?;
        ensure!(matches!(err, Error::Sharding(_)), "{what}: {err:?}");
        messages.push(format!("{what}: {err}"));
    }
    ensure!(
        m.value("steps")?.item::<i32>()? == 0,
        "a failed shard_map changed the model"
    );
    snapshot("shard_map_errors", &messages.join("\n"));
    Ok(Outcome::Pass)
}

/// Sharded state: a Variable split over the mesh is updated block by block and put back
/// together; a replicated counter is updated once.
pub fn shard_map_updates_sharded_and_replicated_state(engine: &dyn Engine) -> CaseResult {
    let mesh = Mesh::new([("data", 2)])?;
    let m = Object::new("M")
        .with("w", Param::new(grid(&[4, 2], 1.0)?))?
        .with("steps", Count::new(Tensor::scalar(0i32)))?;
    let before = m.value("w")?;
    shard_map(
        |m: &Object| -> Result<()> {
            let w = m.var("w")?;
            let scaled =
                (&w.value() * &(&axis_index("data")?.astype(nnx_core::DType::F32)? + 1.0)?)?;
            w.set_value(scaled)?;
            let s = m.var("steps")?;
            s.set_value((&s.value() + 1)?)
        },
        &mesh,
    )
    .in_specs((StateSharding::new([
        (VariableType::PARAM.into(), P::new([Some("data")])),
        (Filter::Everything, P::replicated()),
    ]),))
    .call(engine, (&m,))?;
    let expected = Tensor::concatenate(
        &[
            before.slice_axis(0, 0..2)?,
            (&before.slice_axis(0, 2..4)? * 2.0)?,
        ],
        0,
    )?;
    ensure!(
        close(&m.value("w")?, &expected, 0.0)?,
        "sharded update: {}",
        m.value("w")?
    );
    ensure!(
        m.value("steps")?.item::<i32>()? == 1,
        "replicated update: {}",
        m.value("steps")?
    );
    let _ = Value::from(&m);
    Ok(Outcome::Pass)
}

/// `pmap`: one device per element of the leading axis, each seeing its slice; results
/// stacked (`out_axes 0`) or taken as replicated (`None`, checked); objects mapped whole
/// are updated slice by slice.
pub fn pmap_maps_the_leading_axis(engine: &dyn Engine) -> CaseResult {
    let x = grid(&[4, 3], 1.0)?;
    let normalised =
        pmap(|x: &Tensor| -> Result<Tensor> { x - &pmean(x, "i")? }, "i").call(engine, (&x,))?;
    let expected = (&x - &x.mean(0)?)?;
    ensure!(
        close(&normalised, &expected, 1e-6)?,
        "pmap with pmean: {normalised}"
    );
    let w = grid(&[3, 2], 0.5)?;
    let rows = pmap(|x: &Tensor, w: &Tensor| x.matmul(w), "i")
        .in_axes((0, None::<i32>))
        .call(engine, (&x, &w))?;
    ensure!(
        close(&rows, &x.matmul(&w)?, 1e-6)?,
        "pmap with a replicated argument: {rows}"
    );
    let total = pmap(|x: &Tensor| psum(&x.sum(Axes::All)?, "i"), "i")
        .out_axes(None::<i32>)
        .call(engine, (&x,))?;
    ensure!(
        close(&total, &x.sum(Axes::All)?, 1e-6)?,
        "pmap out_axes None: {total}"
    );
    let err = pmap(|x: &Tensor| x.sum(Axes::All), "i")
        .out_axes(None::<i32>)
        .call(engine, (&x,))
        .err()
        .ok_or_else(|| Failure("a varying output with out_axes None was accepted".into()))?;
    ensure!(matches!(err, Error::Sharding(_)), "{err:?}");
    // A stacked model: each device updates its own slice of the Variable.
    let m = Object::new("Stacked").with("w", Param::new(grid(&[4, 2], 1.0)?))?;
    let before = m.value("w")?;
    pmap(
        |m: &Object| -> Result<()> {
            let w = m.var("w")?;
            w.set_value((&w.value() + &axis_index("i")?.astype(nnx_core::DType::F32)?)?)
        },
        "i",
    )
    .out_axes(None::<i32>)
    .call(engine, (&m,))?;
    let offsets = Tensor::from_vec(&[4, 1], vec![0.0f32, 1.0, 2.0, 3.0])?;
    ensure!(
        close(&m.value("w")?, &(&before + &offsets)?, 0.0)?,
        "pmap over a stacked model: {}",
        m.value("w")?
    );
    Ok(Outcome::Pass)
}

/// Differentiating through a `shard_map` from outside: its backward pass is a `shard_map`
/// of the body's (a replicated output's cotangent shared by its devices, a replicated
/// operand's cotangent the `psum` of theirs), so the gradient equals the unsharded one;
/// forward mode pushes tangents through the same way.
pub fn shard_map_differentiates_from_outside(engine: &dyn Engine) -> CaseResult {
    let mesh = Mesh::new([("model", 2)])?;
    let (w1, w2, x) = (
        grid(&[4, 6], 0.1)?,
        grid(&[6, 3], 0.2)?,
        grid(&[5, 4], 0.3)?,
    );
    // The tensor-parallel pair, its loss taken outside the shard_map.
    let sharded = |w1: &Tensor, w2: &Tensor, x: &Tensor| -> Result<Tensor> {
        let y = shard_map(
            |w1: &Tensor, w2: &Tensor, x: &Tensor| -> Result<Tensor> {
                psum(&x.matmul(w1)?.relu()?.matmul(w2)?, "model")
            },
            &mesh,
        )
        .in_specs((
            P::new([None, Some("model")]),
            P::new([Some("model"), None]),
            P::replicated(),
        ))
        .call(engine_of(), (w1, w2, x))?;
        y.mul(&y)?.sum(Axes::All)
    };
    let plain = |w1: &Tensor, w2: &Tensor, x: &Tensor| -> Result<Tensor> {
        let y = x.matmul(w1)?.relu()?.matmul(w2)?;
        y.mul(&y)?.sum(Axes::All)
    };
    let through = grad(sharded)
        .argnums(&[0, 1, 2])
        .call(engine, (&w1, &w2, &x))?;
    let expected = grad(plain)
        .argnums(&[0, 1, 2])
        .call(engine, (&w1, &w2, &x))?;
    ensure!(
        close(&through.value, &expected.value, 1e-5)?,
        "loss {} vs {}",
        through.value,
        expected.value
    );
    for (k, (a, b)) in through.grads.iter().zip(&expected.grads).enumerate() {
        ensure!(
            close(a.array()?, b.array()?, 1e-4)?,
            "gradient {k} through shard_map: {}; unsharded {}",
            a.array()?,
            b.array()?
        );
    }
    let tangent = grid(&[5, 4], 0.05)?;
    let pushed = nnx_core::transforms::jvp(sharded).argnums(&[2]).call(
        engine,
        (&w1, &w2, &x),
        &[nnx_core::transforms::Tangent::Array(tangent.clone())],
    )?;
    let reference = nnx_core::transforms::jvp(plain).argnums(&[2]).call(
        engine,
        (&w1, &w2, &x),
        &[nnx_core::transforms::Tangent::Array(tangent)],
    )?;
    let (a, b) = (pushed.tangent.as_tensor()?, reference.tangent.as_tensor()?);
    ensure!(
        close(&a, &b, 1e-4)?,
        "jvp through shard_map: {a}; unsharded {b}"
    );
    Ok(Outcome::Pass)
}
