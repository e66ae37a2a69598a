//! Trains a small MLP with `jit(value_and_grad)` and plain SGD on data it generates, printing
//! the loss per epoch. Run with `cargo run --release --example train_mlp`.

use nnx_fast::prelude::*;

/// A `Linear` layer: `x @ kernel + bias`, initialised like Flax's (lecun normal, zero bias).
#[derive(Module, Clone)]
pub struct Linear {
    kernel: Param,
    bias: Param,
}

impl Linear {
    fn new(key: &Tensor, fan_in: usize, fan_out: usize) -> Result<Linear> {
        let scale = 1.0 / (fan_in as f32).sqrt();
        Ok(Linear {
            kernel: Param::new((random::normal(key, [fan_in, fan_out])? * scale)?),
            bias: Param::new(Tensor::zeros([fan_out])),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.kernel.value()) + &self.bias.value()
    }
}

/// A two-layer MLP `tanh(x @ W1 + b1) @ W2 + b2`.
#[derive(Module, Clone)]
#[module(name = "MLP")]
pub struct Mlp {
    hidden: Linear,
    out: Linear,
}

impl Mlp {
    /// A new MLP with `inputs` inputs, `hidden` hidden units and one output.
    pub fn new(seed: i64, inputs: usize, hidden: usize) -> Result<Mlp> {
        let keys = random::split(&random::key(seed), 2)?;
        Ok(Mlp {
            hidden: Linear::new(&keys.index_axis(0, 0)?, inputs, hidden)?,
            out: Linear::new(&keys.index_axis(0, 1)?, hidden, 1)?,
        })
    }

    /// The predictions for a batch, shape `[n]`.
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.hidden.forward(x).tanh()?;
        self.out.forward(&h)?.squeeze(-1isize)
    }
}

/// Mean squared error of the model on `(x, y)`.
pub fn mse(model: &Mlp, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let err = model.predict(x) - y;
    err.clone().mul(err).mean(None)
}

/// Regression data: `y = sin(2 x0) + 0.5 x1` on uniform inputs in `[-1, 1)`.
pub fn dataset(n: usize) -> Result<(Tensor, Tensor)> {
    let x = random::uniform_range(&random::key(42), [n, 2], -1.0, 1.0)?;
    let x0 = x.index_axis(1, 0)?;
    let x1 = x.index_axis(1, 1)?;
    let y = (&x0 * 2.0).sin() + (&x1 * 0.5)?;
    Ok((x, y?))
}

/// Trains for `epochs` full-batch SGD steps; returns the loss before each step and after the
/// last.
pub fn train(epochs: usize, learning_rate: f32) -> Result<Vec<f32>> {
    let engine = Fast;
    let model = Mlp::new(0, 2, 16)?;
    let (x, y) = dataset(128)?;
    let step = jit(|model: &Mlp, x: &Tensor, y: &Tensor| -> Result<Tensor> {
        let out = value_and_grad(mse).call(&engine, (model, x, y))?;
        let grads = out.grads[0].state()?;
        let params = graph::state_by(model, &VariableType::PARAM.into());
        let stepped =
            params.map(|path, w| w - &(grads.variable(path)?.value() * learning_rate)?)?;
        graph::update(model, &stepped)?;
        Ok(out.value)
    });
    let mut losses = Vec::with_capacity(epochs + 1);
    for _ in 0..epochs {
        losses.push(step.call(&engine, (&model, &x, &y))?.item::<f32>()?);
    }
    losses.push(mse(&model, &x, &y)?.item::<f32>()?);
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
