//! A cached `jit` call in a loop, for profilers: on the tiny MLP (depth 64), or with the
//! argument `params` on a model of 100,000 one-element Params of which the function reads one,
//! with `vmap` the guide's `jit(vmap(stateful_vector_dot))`, or with `split` a `split` +
//! `merge` of the depth-64 MLP.
//!
//! ```text
//! cargo build --release -p nnx-benches --example profile_jit
//! perf record -g ./target/release/examples/profile_jit [params] && perf report
//! ```
//!
//! Prints the mean time per call; the criterion benches are the measurement of record.

use nnx_core::transforms::jit;
use nnx_core::{Axes, Object, Param, Result, Tensor, Value, random};
use nnx_fast::Fast;

/// `depth` Linear layers of 8×8.
fn mlp(depth: usize) -> Result<Object> {
    let layers = nnx_core::List::new([]);
    for i in 0..depth {
        let key = random::key(i as i64);
        layers.push(
            Object::new("Linear")
                .with("kernel", Param::new(random::normal(&key, &[8, 8])?))?
                .with("bias", Param::new(Tensor::zeros(&[8])))?,
        )?;
    }
    Object::new("MLP").with("layers", layers)
}

/// The MLP's forward pass with relu, summed.
fn apply_mlp(args: &[Value]) -> Result<Value> {
    let m = args[0].object()?;
    let mut x = args[1].as_tensor()?;
    for layer in m.list("layers")?.items() {
        let l = layer.object()?;
        x = x
            .matmul(&l.value("kernel")?)?
            .add(&l.value("bias")?)?
            .relu()?;
    }
    Ok(Value::from(x.sum(Axes::All)?))
}

fn main() -> Result<()> {
    if std::env::args().nth(1).as_deref() == Some("split") {
        let m = mlp(64)?;
        let t = std::time::Instant::now();
        for _ in 0..2000 {
            let (def, state) = nnx_core::graph::split(&m);
            nnx_core::graph::merge::<Object>(&def, [&state])?;
        }
        println!("{:?}/split+merge", t.elapsed() / 2000);
        return Ok(());
    }
    if std::env::args().nth(1).as_deref() == Some("vmap") {
        let w = Object::new("Weights")
            .with(
                "kernel",
                Param::new(random::uniform(&random::key(0), &[10, 2, 3])?),
            )?
            .with("bias", Param::new(Tensor::zeros(&[10, 3])))?
            .with("count", nnx_core::BatchStat::new(Tensor::arange(10)))?;
        let x = random::normal(&random::key(1), &[10, 2])?;
        let f = jit(|args: &[Value]| {
            nnx_core::transforms::vmap(|args: &[Value]| {
                let w = args[0].object()?;
                w.var("count")?.update(|c| c + 1)?;
                let y = args[1]
                    .as_tensor()?
                    .matmul(&w.value("kernel")?)?
                    .add(&w.value("bias")?)?;
                Ok(Value::from(y))
            })
            .in_axes(0)
            .out_axes(1)
            .call(&Fast, args)
        });
        f.call(&Fast, (&w, &x))?;
        let t = std::time::Instant::now();
        for _ in 0..100_000 {
            f.call(&Fast, (&w, &x))?;
        }
        println!("{:?}/call", t.elapsed() / 100_000);
        return Ok(());
    }
    if std::env::args().nth(1).as_deref() == Some("params") {
        let params = (0..100_000).map(|i| Value::from(Param::new(Tensor::full(&[1], i as f32))));
        let m = Object::new("Model").with("params", nnx_core::List::new(params))?;
        let f = jit(|args: &[Value]| {
            let first = args[0].object()?.list("params")?.get(0)?;
            Ok(Value::from(
                first
                    .as_variable()
                    .map(|v| v.value())
                    .unwrap_or_else(|| Tensor::zeros(&[1])),
            ))
        });
        f.call(&Fast, (&m,))?;
        let t = std::time::Instant::now();
        for _ in 0..30 {
            f.call(&Fast, (&m,))?;
        }
        println!("{:?}/call", t.elapsed() / 30);
        return Ok(());
    }
    let m = mlp(64)?;
    let input = Tensor::ones(&[4, 8]);
    let f = jit(apply_mlp);
    f.call(&Fast, &[Value::from(&m), Value::from(input.clone())])?;
    let t = std::time::Instant::now();
    for _ in 0..3000 {
        f.call(&Fast, &[Value::from(&m), Value::from(input.clone())])?;
    }
    println!("{:?}/call", t.elapsed() / 3000);
    Ok(())
}
