//! Flax's "scan over layers": a deep MLP whose layers are created at once with `vmap` (one
//! stacked set of parameters) and applied with `scan`, then trained a few steps with `grad`
//! flowing through the scan. Run with `cargo run --release --example scan_over_layers`.

use nnx_fast::prelude::*;
use nnx_fast::random;
use nnx_fast::transforms::{Carry, jit, scan, value_and_grad, vmap};

/// `depth` Linear layers of `width → width`, stacked on a leading axis by `vmap`.
pub fn stacked_layers(depth: usize, width: usize) -> Result<Object> {
    vmap(|args: &[Value]| {
        let key = random::key_from_seeds(&args[0].as_tensor()?)?;
        let scale = 1.0 / (width as f32).sqrt();
        Ok(Value::from(
            Object::new("Linear")
                .with(
                    "kernel",
                    Param::new((random::normal(&key, &[width, width])? * scale)?),
                )?
                .with("bias", Param::new(Tensor::zeros(&[width])))?,
        ))
    })
    .call(&Fast, &[Value::from(Tensor::arange(depth))])?
    .object()
}

/// Applies every layer in turn with `scan`: the activations are the carry, the stacked
/// layers are scanned.
pub fn forward(layers: &Object, x: &Tensor) -> Result<Tensor> {
    let out = scan(|args: &[Value]| {
        let (h, layer) = (args[0].as_tensor()?, args[1].object()?);
        let h = h
            .matmul(&layer.value("kernel")?)?
            .add(&layer.value("bias")?)?
            .tanh()?;
        Ok(Value::tuple(vec![Value::from(h), Value::from(())]))
    })
    .in_axes((Carry, 0))
    .out_axes((Carry, 0))
    .call(&Fast, &[Value::from(x.clone()), Value::from(layers)])?;
    match out {
        Value::Tuple(items) => items[0].as_tensor(),
        other => other.as_tensor(),
    }
}

/// Trains the stack to map inputs to `0.5 * x` for a few steps; returns the losses.
pub fn train(depth: usize, width: usize, steps: usize) -> Result<Vec<f32>> {
    let layers = stacked_layers(depth, width)?;
    let x = random::normal(&random::key(7), &[16, width])?;
    let target = (&x * 0.5f32)?;
    let loss = |args: &[Value]| -> Result<Value> {
        let err = forward(&args[0].object()?, &args[1].as_tensor()?)?.sub(&args[2].as_tensor()?)?;
        Ok(Value::from(err.mul(&err)?.mean(Axes::All)?))
    };
    let step = jit(|args: &[Value]| {
        let out = value_and_grad(loss).call(&Fast, args)?;
        let layers = args[0].object()?;
        let grads = out.grads[0].state()?;
        for (path, leaf) in &graph::state_by(&layers, &VariableType::PARAM.into()) {
            if let Some(p) = leaf.as_variable() {
                let g = grads.variable(path)?.value();
                p.update(|w| w.sub(&(g * 0.5f32)?))?;
            }
        }
        Ok(Value::from(out.value))
    });
    (0..steps)
        .map(|_| {
            step.call(
                &Fast,
                &[
                    Value::from(&layers),
                    Value::from(x.clone()),
                    Value::from(target.clone()),
                ],
            )?
            .as_tensor()?
            .item::<f32>()
        })
        .collect()
}

#[allow(dead_code)]
fn main() -> Result<()> {
    let layers = stacked_layers(8, 16)?;
    println!("{layers}");
    for (i, loss) in train(8, 16, 20)?.iter().enumerate() {
        println!("step {i:2}  loss {loss:.5}");
    }
    Ok(())
}
