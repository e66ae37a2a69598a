//! Per-example gradients with `vmap(grad(f))`: one gradient per example of a batch, in one
//! call. Run with `cargo run --release --example per_example_grads`.

use nnx_fast::prelude::*;
use nnx_fast::random;
use nnx_fast::transforms::{value_and_grad, vmap};

/// Per-example gradients of a linear model's squared error: the kernel gradient for example
/// `i` is `grads[i]`, shape `[batch, in, out]`.
pub fn per_example_kernel_grads(batch: usize) -> Result<(Tensor, Object, Tensor, Tensor)> {
    let engine = Fast;
    let model = Object::new("Linear")
        .with(
            "kernel",
            Param::new(random::normal(&random::key(0), &[3, 2])?),
        )?
        .with("bias", Param::new(Tensor::zeros(&[2])))?;
    let x = random::normal(&random::key(1), &[batch, 3])?;
    let y = random::normal(&random::key(2), &[batch, 2])?;
    let loss = |args: &[Value]| -> Result<Value> {
        let m = args[0].object()?;
        let pred = args[1]
            .as_tensor()?
            .matmul(&m.value("kernel")?)?
            .add(&m.value("bias")?)?;
        let err = pred.sub(&args[2].as_tensor()?)?;
        Ok(Value::from(err.mul(&err)?.sum(Axes::All)?))
    };
    let grads = vmap(|args: &[Value]| {
        let out = value_and_grad(loss).call(&engine, args)?;
        Ok(Value::from(
            out.grads[0]
                .state()?
                .variable(&Path::from(["kernel"]))?
                .value(),
        ))
    })
    .in_axes((None::<i32>, 0, 0))
    .call(
        &engine,
        &[
            Value::from(&model),
            Value::from(x.clone()),
            Value::from(y.clone()),
        ],
    )?;
    Ok((grads.as_tensor()?, model, x, y))
}

#[allow(dead_code)]
fn main() -> Result<()> {
    let (grads, _, _, _) = per_example_kernel_grads(4)?;
    println!("per-example kernel gradients, shape {:?}:", grads.shape());
    println!("{grads}");
    Ok(())
}
