//! `nnx-benches`: criterion benchmarks (run with `cargo bench -p nnx-benches`), and the
//! workloads they share with `examples/profile_jit.rs` and with Flax's side
//! (`benches/flax/transforms_overhead.py`).

use nnx_core::{Axes, BatchStat, List, Object, Param, Result, Tensor, Value, random};

pub mod anchors;
pub mod cnn;

/// The guide's `Weights`: a kernel of 10 stacked 2×3 matrices, a bias and a counter.
///
/// # Errors
/// None in practice (the shapes are fixed).
pub fn weights() -> Result<Object> {
    Object::new("Weights")
        .with(
            "kernel",
            Param::new(random::uniform(&random::key(0), [10, 2, 3])?),
        )?
        .with("bias", Param::new(Tensor::zeros([10, 3])))?
        .with("count", BatchStat::new(Tensor::arange(10)))
}

/// The guide's `stateful_vector_dot`: counts the call and computes `x @ kernel + bias`.
///
/// # Errors
/// Shape errors for arguments other than `(weights, x)`.
pub fn stateful_vector_dot(args: &[Value]) -> Result<Value> {
    let w = args[0].object()?;
    w.var("count")?.update(|c| c + 1)?;
    let y = args[1]
        .as_tensor()?
        .matmul(&w.value("kernel")?)?
        .add(&w.value("bias")?)?;
    Ok(Value::from(y))
}

/// A tiny MLP: `depth` Linear layers of 8×8 in a `List`.
///
/// # Errors
/// None in practice (the shapes are fixed).
pub fn mlp(depth: usize) -> Result<Object> {
    let layers = List::new([]);
    for i in 0..depth {
        let key = random::key(i as i64);
        layers.push(
            Object::new("Linear")
                .with("kernel", Param::new(random::normal(&key, [8, 8])?))?
                .with("bias", Param::new(Tensor::zeros([8])))?,
        )?;
    }
    Object::new("MLP").with("layers", layers)
}

/// The MLP's forward pass: `relu(x @ W + b)` per layer, summed.
///
/// # Errors
/// Shape errors for arguments other than `(mlp, x)`.
pub fn apply_mlp(args: &[Value]) -> Result<Value> {
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

/// A model holding `n` one-element Params in a `List` named `params`.
///
/// # Errors
/// None in practice.
pub fn many_params(n: usize) -> Result<Object> {
    let params = (0..n).map(|i| Value::from(Param::new(Tensor::full([1], i as f32))));
    Object::new("Model").with("params", List::new(params))
}

/// Reads the first Param of a [`many_params`] model and sums it.
///
/// # Errors
/// When the argument is not such a model.
pub fn first_param(args: &[Value]) -> Result<Value> {
    let first = args[0].object()?.list("params")?.get(0)?;
    match first.as_variable() {
        Some(v) => Ok(Value::from(v.value().sum(Axes::All)?)),
        None => Ok(Value::from(first.as_tensor()?.sum(Axes::All)?)),
    }
}
