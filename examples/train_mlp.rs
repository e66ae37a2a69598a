//! Trains a small MLP with `jit(value_and_grad)` and plain SGD on data it generates, printing
//! the loss per epoch. Run with `cargo run --release --example train_mlp`.

use nnx_fast::prelude::*;
use nnx_fast::random;
use nnx_fast::transforms::{jit, value_and_grad};

/// A `Linear` layer: `x @ kernel + bias`, initialised like Flax's (lecun normal, zero bias).
fn linear(key: &Tensor, fan_in: usize, fan_out: usize) -> Result<Object> {
    let scale = 1.0 / (fan_in as f32).sqrt();
    Object::new("Linear")
        .with(
            "kernel",
            Param::new((random::normal(key, &[fan_in, fan_out])? * scale)?),
        )?
        .with("bias", Param::new(Tensor::zeros(&[fan_out])))
}

fn apply_linear(layer: &Object, x: &Tensor) -> Result<Tensor> {
    x.matmul(&layer.value("kernel")?)?
        .add(&layer.value("bias")?)
}

/// A two-layer MLP `tanh(x @ W1 + b1) @ W2 + b2`.
pub fn mlp(seed: i64, inputs: usize, hidden: usize) -> Result<Object> {
    let keys = random::split(&random::key(seed), 2)?;
    Object::new("MLP")
        .with("hidden", linear(&keys.index_axis(0, 0)?, inputs, hidden)?)?
        .with("out", linear(&keys.index_axis(0, 1)?, hidden, 1)?)
}

/// The MLP's predictions for a batch, shape `[n]`.
pub fn predict(model: &Object, x: &Tensor) -> Result<Tensor> {
    let h = apply_linear(&model.object("hidden")?, x)?.tanh()?;
    apply_linear(&model.object("out")?, &h)?.squeeze(-1isize)
}

/// Mean squared error of the model on `(x, y)`: `args = [model, x, y]`.
pub fn mse(args: &[Value]) -> Result<Value> {
    let err = predict(&args[0].object()?, &args[1].as_tensor()?)?.sub(&args[2].as_tensor()?)?;
    Ok(Value::from(err.mul(&err)?.mean(Axes::All)?))
}

/// Regression data: `y = sin(2 x0) + 0.5 x1` on uniform inputs in `[-1, 1)`.
pub fn dataset(n: usize) -> Result<(Tensor, Tensor)> {
    let x = random::uniform_range(&random::key(42), &[n, 2], -1.0, 1.0)?;
    let x0 = x.index_axis(1, 0)?;
    let x1 = x.index_axis(1, 1)?;
    let y = (&x0 * 2.0f32)?
        .unary(nnx_fast::tensor::elementwise::UnaryOp::Sin)?
        .add(&(&x1 * 0.5f32)?)?;
    Ok((x, y))
}

/// Trains for `epochs` full-batch SGD steps; returns the loss before each step and after the
/// last.
pub fn train(epochs: usize, learning_rate: f32) -> Result<Vec<f32>> {
    let engine = Fast;
    let model = mlp(0, 2, 16)?;
    let (x, y) = dataset(128)?;
    let step = jit(|args: &[Value]| {
        let out = value_and_grad(mse).call(&engine, args)?;
        let model = args[0].object()?;
        let grads = out.grads[0].state()?;
        for (path, leaf) in &graph::state_by(&model, &VariableType::PARAM.into()) {
            if let Some(param) = leaf.as_variable() {
                let g = grads.variable(path)?.value();
                param.update(|w| w.sub(&(g * learning_rate)?))?;
            }
        }
        Ok(Value::from(out.value))
    });
    let mut losses = Vec::with_capacity(epochs + 1);
    for _ in 0..epochs {
        let loss = step.call(
            &engine,
            &[
                Value::from(&model),
                Value::from(x.clone()),
                Value::from(y.clone()),
            ],
        )?;
        losses.push(loss.as_tensor()?.item::<f32>()?);
    }
    let final_loss = mse(&[Value::from(&model), Value::from(x), Value::from(y)])?;
    losses.push(final_loss.as_tensor()?.item::<f32>()?);
    if step.trace_count() != 1 {
        return Err(Error::Internal {
            what: format!("the train step traced {} times", step.trace_count()),
        });
    }
    Ok(losses)
}

#[allow(dead_code)]
fn main() -> Result<()> {
    let losses = train(60, 0.2)?;
    for (epoch, loss) in losses.iter().enumerate() {
        println!("epoch {epoch:3}  loss {loss:.5}");
    }
    Ok(())
}
