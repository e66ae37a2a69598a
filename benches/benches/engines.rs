//! The same workloads on both engines: a vmapped dense layer `x @ W + b` (broadcast weights,
//! mapped inputs) under `jit`, and the guide's `stateful_vector_dot`.
//!
//! `cargo bench -p nnx-benches --bench engines`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nnx_core::transforms::{StateAxes, jit, vmap};
use nnx_core::{Engine, Filter, Object, Param, Result, Tensor, Value, random};
use nnx_fast::Fast;
use nnx_reference::Reference;

fn dense(args: &[Value]) -> Result<Value> {
    let m = args[0].object()?;
    let y = args[1]
        .as_tensor()?
        .matmul(&m.value("w")?)?
        .add(&m.value("b")?)?;
    Ok(Value::from(y))
}

fn layer(d: usize) -> Result<Object> {
    Object::new("Linear")
        .with("w", Param::new(random::normal(&random::key(0), [d, d])?))?
        .with("b", Param::new(Tensor::zeros([d])))
}

fn bench_dense(c: &mut Criterion, engine: &dyn Engine, batch: usize, d: usize) {
    let (Ok(m), Ok(x)) = (layer(d), random::normal(&random::key(1), [batch, d])) else {
        return;
    };
    let f = jit(|args: &[Value]| {
        vmap(dense)
            .in_axes((StateAxes::new([(Filter::Everything, None)]), 0))
            .call(engine, args)
    });
    let mut group = c.benchmark_group(format!("jit(vmap(x @ W + b)) batch {batch} width {d}"));
    group.throughput(Throughput::Elements((2 * batch * d * d) as u64));
    group.bench_function(engine.name(), |b| b.iter(|| f.call(engine, (&m, &x))));
    group.finish();
}

fn bench_engines(c: &mut Criterion) {
    bench_dense(c, &Fast, 256, 256);
    bench_dense(c, &Reference, 256, 256);
    bench_dense(c, &Fast, 1024, 1024);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench_engines
}
criterion_main!(benches);
