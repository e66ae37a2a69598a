//! Trains a small CNN (Conv, BatchNorm, Dropout) on the 1,797 handwritten digits with
//! `jit(value_and_grad)` and Adam, showing a progress bar and each epoch's loss and test
//! accuracy, then draws the curves to an SVG file whose path it prints.
//! Run with `cargo run --release --example digits [-- plot.svg]`.

use indicatif::{ProgressBar, ProgressStyle};
use nnx_fast::nn::metrics::{Accuracy, Average, MultiMetric, Updates};
use nnx_fast::nn::{datasets, losses, optim};
use nnx_fast::prelude::*;
use plotters::prelude::*;

/// `conv(1→16) → BatchNorm → relu → conv(16→32) → relu → avg_pool → dropout → 512→64→10`.
#[derive(Module, Clone)]
#[module(name = "CNN")]
struct Cnn {
    conv1: nn::Conv,
    bn: nn::BatchNorm,
    conv2: nn::Conv,
    dropout: nn::Dropout,
    hidden: nn::Linear,
    out: nn::Linear,
}

impl Cnn {
    fn new(rngs: &Rngs) -> Result<Cnn> {
        Ok(Cnn {
            conv1: nn::Conv::new(1, 16, &[3, 3], rngs)?,
            bn: nn::BatchNorm::new(16, rngs)?,
            conv2: nn::Conv::new(16, 32, &[3, 3], rngs)?,
            dropout: nn::Dropout::new(0.2, rngs)?,
            hidden: nn::Linear::new(512, 64, rngs)?,
            out: nn::Linear::new(64, 10, rngs)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.bn.forward(&self.conv1.forward(x)?)?.relu()?;
        let h = self.conv2.forward(&h)?.relu()?;
        let h = nn::avg_pool(&h, &[2, 2], Some(&[2, 2]), nn::Padding::Valid)?;
        let h = self
            .dropout
            .forward(&h.reshape(&[h.shape()[0] as isize, -1])?)?;
        self.out.forward(&self.hidden.forward(&h)?.relu()?)
    }
}

fn loss_fn(model: &Cnn, x: &Tensor, y: &Tensor) -> Result<(Tensor, Tensor)> {
    let logits = model.forward(x)?;
    let loss = losses::softmax_cross_entropy_with_integer_labels(&logits, y)?.mean(None)?;
    Ok((loss, logits))
}

fn main() -> Result<()> {
    let (train, test) = datasets::digits()?.split(5)?;
    let rngs = Rngs::new(0)?;
    let mut model = Cnn::new(&rngs)?;

    let metrics = MultiMetric::new([
        ("accuracy", Accuracy::new().into()),
        ("loss", Average::new().into()),
    ])?;

    let train_step = jit(
        |m: &Cnn, opt: &optim::Optimizer, metrics: &MultiMetric, x: &Tensor, y: &Tensor| {
            let out = value_and_grad(loss_fn)
                .has_aux(true)
                .call(&Fast, (m, x, y))?;
            let logits: Tensor = out.aux_as()?;
            metrics.update(&Updates::new().values(&out.value).logits(&logits).labels(y))?;
            opt.update(m, out.grads[0].state()?)
        },
    );
    let eval_step = jit(|m: &Cnn, metrics: &MultiMetric, x: &Tensor, y: &Tensor| {
        let (loss, logits) = loss_fn(m, x, y)?;
        metrics.update(&Updates::new().values(&loss).logits(&logits).labels(y))
    });

    let (epochs, batch) = (30, 64);
    let steps = train.len() / batch;
    // Adam with the learning rate decayed along a cosine to 5% over the run.
    let learning_rate = optim::Schedule::CosineDecay {
        init_value: 3e-3,
        decay_steps: (epochs * steps) as i64,
        alpha: 0.05,
        exponent: 1.0,
    };
    let optimizer = optim::Optimizer::new(&model, optim::adam(learning_rate), VariableType::PARAM)?;
    let bar = ProgressBar::new((epochs * steps) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps {msg}")
            .map_err(|e| Error::shape("progress bar", e.to_string()))?,
    );
    let mut history = Vec::new();
    for epoch in 1..=epochs {
        model.train()?;
        for b in train.batches(batch, epoch as u64)? {
            train_step.call(&Fast, (&model, &optimizer, &metrics, &b.images, &b.labels))?;
            bar.inc(1);
        }
        let train_loss = metrics.compute()?["loss"].item::<f32>()?;
        metrics.reset()?;
        model.eval()?;
        eval_step.call(&Fast, (&model, &metrics, &test.images, &test.labels))?;
        let computed = metrics.compute()?;
        let test_accuracy = computed["accuracy"].item::<f32>()?;
        metrics.reset()?;
        let test_loss = computed["loss"].item::<f32>()?;
        bar.suspend(|| {
            println!(
                "epoch {epoch:2}: train loss {train_loss:.4}, test loss {test_loss:.4}, test accuracy {:.2}%",
                100.0 * test_accuracy
            )
        });
        bar.set_message(format!("test accuracy {:.2}%", 100.0 * test_accuracy));
        history.push((train_loss, test_accuracy));
    }
    bar.finish();

    let path = std::env::args().nth(1).unwrap_or_else(|| {
        std::env::temp_dir()
            .join("digits.svg")
            .display()
            .to_string()
    });
    plot(&path, &history).map_err(|e| Error::shape("plot", e.to_string()))?;
    println!(
        "final test accuracy {:.2}%; curves in {path}",
        100.0 * history[epochs - 1].1
    );
    Ok(())
}

/// Train loss and test accuracy per epoch, side by side.
fn plot(path: &str, history: &[(f32, f32)]) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (900, 360)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(450);
    let epochs = history.len() as f32;
    let max_loss = history.iter().map(|h| h.0).fold(0.0f32, f32::max);
    let mut loss = ChartBuilder::on(&left)
        .caption("train loss", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(45)
        .build_cartesian_2d(1f32..epochs, 0f32..max_loss * 1.05)?;
    loss.configure_mesh().x_desc("epoch").draw()?;
    loss.draw_series(LineSeries::new(
        history
            .iter()
            .enumerate()
            .map(|(i, h)| (i as f32 + 1.0, h.0)),
        &BLUE,
    ))?;
    let mut accuracy = ChartBuilder::on(&right)
        .caption("test accuracy", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(45)
        .build_cartesian_2d(1f32..epochs, 0.8f32..1.0)?;
    accuracy.configure_mesh().x_desc("epoch").draw()?;
    accuracy.draw_series(LineSeries::new(
        history
            .iter()
            .enumerate()
            .map(|(i, h)| (i as f32 + 1.0, h.1)),
        &RED,
    ))?;
    root.present()?;
    Ok(())
}
