//! A brief training run on the real digits: an MLP with Adam under `jit` must end far above
//! chance (10%) on the held-out digits. (The `digits` example trains a CNN to ~98%.)

use nnx_core::transforms::{jit, value_and_grad};
use nnx_core::{Module, Result, Rngs, Tensor, VariableType};
use nnx_nn::metrics::{Accuracy, Updates};
use nnx_nn::{Linear, datasets, losses, optim};

#[derive(Module, Clone)]
struct Mlp {
    hidden: Linear,
    out: Linear,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let flat = x.reshape(&[x.shape()[0] as isize, -1])?;
        self.out.forward(&self.hidden.forward(&flat)?.relu()?)
    }
}

#[test]
fn a_short_run_learns_the_digits() -> Result<()> {
    let (train, test) = datasets::digits()?.split(5)?;
    assert_eq!((train.len(), test.len()), (1437, 360));
    let rngs = Rngs::new(0)?;
    let model = Mlp {
        hidden: Linear::new(64, 32, &rngs)?,
        out: Linear::new(32, 10, &rngs)?,
    };
    let optimizer = optim::Optimizer::new(&model, optim::adam(1e-2), VariableType::PARAM)?;
    let loss = |m: &Mlp, x: &Tensor, y: &Tensor| {
        losses::softmax_cross_entropy_with_integer_labels(&m.forward(x)?, y)?.mean(None)
    };
    let step = jit(|m: &Mlp, o: &optim::Optimizer, x: &Tensor, y: &Tensor| {
        let out = value_and_grad(loss).call(&nnx_reference::Reference, (m, x, y))?;
        o.update(m, out.grads[0].state()?)
    });
    let indices: Vec<usize> = (0..train.len()).collect();
    for _ in 0..3 {
        for chunk in indices.chunks(128) {
            let batch = train.select(chunk)?;
            step.call(
                &nnx_reference::Reference,
                (&model, &optimizer, &batch.images, &batch.labels),
            )?;
        }
    }
    let accuracy = Accuracy::new();
    accuracy.update(
        &Updates::new()
            .logits(&model.forward(&test.images)?)
            .labels(&test.labels),
    )?;
    let accuracy = accuracy.compute()?.item::<f32>()?;
    assert!(accuracy > 0.8, "test accuracy {accuracy} after a short run");
    Ok(())
}

#[test]
fn sequential_crosses_transforms_and_switches_modes() -> Result<()> {
    use nnx_nn::{Dropout, Layer, Sequential};
    let rngs = Rngs::new(0)?;
    let model = Sequential::new([
        Layer::Flatten,
        Linear::new(64, 16, &rngs)?.into(),
        Layer::Relu,
        Dropout::new(0.5, &rngs)?.into(),
        Linear::new(16, 10, &rngs)?.into(),
    ])?;
    let mut paths: Vec<String> = nnx_core::graph::state(&model)
        .iter()
        .map(|(p, _)| p.slashed())
        .filter(|p| p.ends_with("kernel"))
        .collect();
    paths.sort();
    assert_eq!(paths, ["layers/1/kernel", "layers/4/kernel"]);
    let x = datasets::digits()?.select(&[0, 1, 2])?.images;
    model.eval()?;
    let eager = model.forward(&x)?;
    let jitted = jit(|m: &nnx_nn::Sequential, x: &Tensor| m.forward(x))
        .call(&nnx_fast::Fast, (&model, &x))?;
    assert!(jitted.allclose(&eager, 1e-6, 1e-6)?);
    model.train()?;
    assert!(
        !model.forward(&x)?.allclose(&eager, 1e-6, 1e-6)?,
        "dropout is on again"
    );
    Ok(())
}
