//! Per-call overhead of the lifted transforms, on the same workloads as
//! `anchors/flax_bench.py`'s first lines (the guide's `stateful_vector_dot`, a tiny MLP under
//! `jit`, `split` + `merge`), plus a cached `jit` over a model of 100,000 small Params.
//!
//! `cargo bench -p nnx-benches --bench transforms`

use criterion::{Criterion, criterion_group, criterion_main};
use nnx_benches::{apply_mlp, first_param, many_params, mlp, stateful_vector_dot, weights};
use nnx_core::transforms::{jit, vmap};
use nnx_core::{Engine, Object, Tensor, Value, graph, random};
use nnx_fast::Fast;
use nnx_reference::Reference;

fn bench_transforms(c: &mut Criterion) {
    let (Ok(w), Ok(x)) = (weights(), random::normal(&random::key(1), [10, 2])) else {
        return;
    };
    for engine in [&Reference as &dyn Engine, &Fast] {
        let eager = vmap(stateful_vector_dot).in_axes(0).out_axes(1);
        c.bench_function(
            &format!("vmap guide stateful_vector_dot (call, {})", engine.name()),
            |b| b.iter(|| eager.call(engine, (&w, &x))),
        );
        let compiled = jit(|args: &[Value]| {
            vmap(stateful_vector_dot)
                .in_axes(0)
                .out_axes(1)
                .call(engine, args)
        });
        c.bench_function(
            &format!(
                "jit(vmap) guide stateful_vector_dot (cached call, {})",
                engine.name()
            ),
            |b| b.iter(|| compiled.call(engine, (&w, &x))),
        );
    }
    for depth in [2usize, 16, 64, 256] {
        let Ok(m) = mlp(depth) else { return };
        let input = Tensor::ones([4, 8]);
        let f = jit(apply_mlp);
        for engine in [&Reference as &dyn Engine, &Fast] {
            c.bench_function(
                &format!(
                    "jit tiny MLP depth {depth} (cached call, {})",
                    engine.name()
                ),
                |b| b.iter(|| f.call(engine, &[Value::from(&m), Value::from(input.clone())])),
            );
        }
        c.bench_function(&format!("split + merge MLP depth {depth}"), |b| {
            b.iter(|| {
                let (def, state) = graph::split(&m);
                graph::merge::<Object>(&def, [&state])
            })
        });
    }
}

/// A model holding 100,000 Params of one element; the function reads the first.
fn bench_large_model(c: &mut Criterion) {
    let Ok(m) = many_params(100_000) else { return };
    let f = jit(first_param);
    c.bench_function("jit over 100,000 small Params (cached call, fast)", |b| {
        b.iter(|| f.call(&Fast, (&m,)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench_transforms, bench_large_model
}
criterion_main!(benches);
