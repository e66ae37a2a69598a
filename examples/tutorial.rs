//! Flax's MLP tutorial in Rust: an MLP with BatchNorm and Dropout, Adam, a `jit`ted
//! `value_and_grad` step, accuracy, and a checkpoint saved and loaded into a fresh model.
//! Run with `cargo run --release --example tutorial`.
use nnx_fast::nn::{self, Layer, Sequential, checkpoint, datasets, losses, metrics::*, optim};
use nnx_fast::prelude::*;

fn mlp(seed: i64) -> Result<Sequential> {
    let rngs = Rngs::new(seed)?;
    Sequential::new([
        Layer::Flatten,
        nn::Linear::new(64, 128, &rngs)?.into(),
        nn::BatchNorm::new(128, &rngs)?.into(),
        Layer::Relu,
        nn::Dropout::new(0.1, &rngs)?.into(),
        nn::Linear::new(128, 10, &rngs)?.into(),
    ])
}

fn accuracy(model: &Sequential, data: &datasets::Digits) -> Result<f32> {
    let (acc, logits) = (Accuracy::new(), model.forward(&data.images)?);
    acc.update(&Updates::new().logits(&logits).labels(&data.labels))?;
    acc.compute()?.item::<f32>()
}

fn main() -> Result<()> {
    let (train, test) = datasets::digits()?.split(5)?;
    let model = mlp(0)?;
    let optimizer = optim::Optimizer::new(&model, optim::adam(5e-3), VariableType::PARAM)?;
    let loss_fn = |m: &Sequential, x: &Tensor, y: &Tensor| {
        losses::softmax_cross_entropy_with_integer_labels(&m.forward(x)?, y)?.mean(None)
    };
    let train_step = jit(
        |m: &Sequential, opt: &optim::Optimizer, x: &Tensor, y: &Tensor| {
            let grads = value_and_grad(loss_fn).call(&Fast, (m, x, y))?.grads;
            opt.update(m, grads[0].state()?)
        },
    );
    for epoch in 0..20 {
        for b in train.batches(64, epoch)? {
            train_step.call(&Fast, (&model, &optimizer, &b.images, &b.labels))?;
        }
    }
    model.eval()?;
    println!("test accuracy {:.3}", accuracy(&model, &test)?);
    checkpoint::save(&graph::state(&model), "tutorial.safetensors")?;
    let restored = mlp(1)?;
    restored.eval()?;
    checkpoint::restore(&restored, &checkpoint::load("tutorial.safetensors")?, None)?;
    println!("restored: test accuracy {:.3}", accuracy(&restored, &test)?);
    Ok(())
}
