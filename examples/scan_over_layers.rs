//! Flax's "scan over layers": a deep MLP whose layers are created at once with `vmap` (one
//! stacked set of parameters) and applied with `scan`, then trained a few steps with `grad`
//! flowing through the scan. Run with `cargo run --release --example scan_over_layers`.

use nnx_fast::prelude::*;

/// A `Linear` layer `width → width`; stacked by `vmap`, each Variable gets a leading axis.
#[derive(Module, Clone)]
pub struct Linear {
    /// `[width, width]`, or `[depth, width, width]` stacked.
    pub kernel: Param,
    /// `[width]`, or `[depth, width]` stacked.
    pub bias: Param,
}

/// `depth` Linear layers of `width → width`, stacked on a leading axis by `vmap`.
pub fn stacked_layers(depth: usize, width: usize) -> Result<Linear> {
    let create = |seed: &Tensor| -> Result<Linear> {
        let key = random::key_from_seeds(seed)?;
        let scale = 1.0 / (width as f32).sqrt();
        Ok(Linear {
            kernel: Param::new((random::normal(&key, [width, width])? * scale)?),
            bias: Param::new(Tensor::zeros([width])),
        })
    };
    vmap(create).call(&Fast, (Tensor::arange(depth),))
}

/// Applies every layer in turn with `scan`: the activations are the carry, the stacked
/// layers are scanned.
pub fn forward(layers: &Linear, x: &Tensor) -> Result<Tensor> {
    let layer = |h: &Tensor, layer: &Linear| -> Result<(Tensor, ())> {
        let h = (h.matmul(&layer.kernel.value()) + &layer.bias.value()).tanh()?;
        Ok((h, ()))
    };
    let (h, ()) = scan(layer)
        .in_axes((Carry, 0))
        .out_axes((Carry, 0))
        .call(&Fast, (x, layers))?;
    Ok(h)
}

/// Mean squared error of the stack on `(x, target)`.
pub fn loss(layers: &Linear, x: &Tensor, target: &Tensor) -> Result<Tensor> {
    let err = forward(layers, x) - target;
    err.clone().mul(err).mean(None)
}

/// Trains the stack to map inputs to `0.5 * x` for a few steps; returns the losses.
pub fn train(depth: usize, width: usize, steps: usize) -> Result<Vec<f32>> {
    let layers = stacked_layers(depth, width)?;
    let x = random::normal(&random::key(7), [16, width])?;
    let target = (&x * 0.5f32)?;
    let step = jit(
        |layers: &Linear, x: &Tensor, target: &Tensor| -> Result<Tensor> {
            let out = value_and_grad(loss).call(&Fast, (layers, x, target))?;
            let grads = out.grads[0].state()?;
            let stepped =
                graph::state(layers).map(|path, w| w - &(grads.variable(path)?.value() * 0.5)?)?;
            graph::update(layers, &stepped)?;
            Ok(out.value)
        },
    );
    (0..steps)
        .map(|_| step.call(&Fast, (&layers, &x, &target))?.item::<f32>())
        .collect()
}

#[allow(dead_code)]
fn main() -> Result<()> {
    let layers = stacked_layers(8, 16)?;
    println!("{}", layers.to_object());
    for (i, loss) in train(8, 16, 20)?.iter().enumerate() {
        println!("step {i:2}  loss {loss:.5}");
    }
    Ok(())
}
