//! Per-example gradients with `vmap(grad(f))`: one gradient per example of a batch, in one
//! call. Run with `cargo run --release --example per_example_grads`.

use nnx_fast::prelude::*;

/// A linear model `x @ kernel + bias`.
#[derive(Module, Clone)]
pub struct Linear {
    /// `[in, out]`.
    pub kernel: Param,
    /// `[out]`.
    pub bias: Param,
}

/// The squared error of the model on one example (or a batch), summed.
pub fn loss(m: &Linear, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let err = (x.matmul(&m.kernel.value()) + &m.bias.value()) - y;
    err.clone().mul(err).sum(None)
}

/// The gradient of [`loss`] with respect to the kernel.
pub fn kernel_grad(m: &Linear, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let out = value_and_grad(loss).call(&Fast, (m, x, y))?;
    Ok(out.grads[0]
        .state()?
        .variable(&Path::parse("kernel")?)?
        .value())
}

/// Per-example gradients of a linear model's squared error: the kernel gradient for example
/// `i` is `grads[i]`, shape `[batch, in, out]`.
pub fn per_example_kernel_grads(batch: usize) -> Result<(Tensor, Linear, Tensor, Tensor)> {
    let model = Linear {
        kernel: Param::new(random::normal(&random::key(0), [3, 2])?),
        bias: Param::new(Tensor::zeros([2])),
    };
    let x = random::normal(&random::key(1), [batch, 3])?;
    let y = random::normal(&random::key(2), [batch, 2])?;
    let grads = vmap(kernel_grad)
        .in_axes((None::<i32>, 0, 0))
        .call(&Fast, (&model, &x, &y))?;
    Ok((grads, model, x, y))
}

#[allow(dead_code)]
fn main() -> Result<()> {
    let (grads, _, _, _) = per_example_kernel_grads(4)?;
    println!("per-example kernel gradients, shape {:?}:", grads.shape());
    println!("{grads}");
    Ok(())
}
