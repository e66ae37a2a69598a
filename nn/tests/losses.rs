//! Losses and metrics against optax 0.2.8 and Flax 0.12.8's `nnx.metrics`
//! (`golden/losses.py` writes `golden/losses.json`), on both engines.

mod common;
use common::{ints, tensor};
use std::sync::OnceLock;

use nnx_core::transforms::{grad, jit};
use nnx_core::{Engine, Result, Tensor, graph};
use nnx_fast::Fast;
use nnx_nn::losses;
use nnx_nn::metrics::{Accuracy, Average, MultiMetric, Updates};
use nnx_reference::Reference;
use serde_json::Value as Json;

fn golden() -> &'static Json {
    static GOLDEN: OnceLock<Json> = OnceLock::new();
    GOLDEN.get_or_init(|| {
        serde_json::from_str(include_str!("../golden/losses.json")).expect("losses.json parses")
    })
}

fn assert_close(what: &str, got: &Tensor, expected: &Json) {
    let want = tensor(expected);
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert!(
        got.allclose(&want, 1e-5, 1e-5).expect("comparable"),
        "{what}: {got} vs optax's {want}"
    );
}

fn engines() -> [&'static dyn Engine; 2] {
    [&Reference, &Fast]
}

#[test]
fn losses_are_optaxs() -> Result<()> {
    let g = &golden()["losses"];
    let (logits, labels) = (tensor(&g["logits"]), ints(&g["labels"]));
    for engine in engines() {
        let ce =
            jit(|l: &Tensor, y: &Tensor| losses::softmax_cross_entropy_with_integer_labels(l, y))
                .call(engine, (&logits, &labels))?;
        assert_close("ce with integer labels", &ce, &g["ce_int"]);
        let mean_ce = |l: &Tensor, y: &Tensor| {
            losses::softmax_cross_entropy_with_integer_labels(l, y)?.mean(None)
        };
        let d = grad(mean_ce).call(engine, (&logits, &labels))?;
        assert_close("its gradient", d.grads[0].array()?, &g["ce_int_grad"]);
        let soft = jit(|l: &Tensor, p: &Tensor| losses::softmax_cross_entropy(l, p))
            .call(engine, (&logits, &tensor(&g["soft_labels"])))?;
        assert_close("ce with soft labels", &soft, &g["ce_soft"]);
        let bce = jit(|l: &Tensor, y: &Tensor| losses::sigmoid_binary_cross_entropy(l, y)).call(
            engine,
            (&tensor(&g["binary_logits"]), &tensor(&g["binary_labels"])),
        )?;
        assert_close("sigmoid bce", &bce, &g["bce"]);
        let (p, t) = (tensor(&g["pred"]), tensor(&g["target"]));
        let huber = |p: &Tensor, t: &Tensor| losses::huber_loss(p, t, 0.5)?.sum(None);
        let d = grad(huber).call(engine, (&p, &t))?;
        assert_close("huber gradient", d.grads[0].array()?, &g["huber_grad"]);
    }
    let one_hot = nnx_nn::one_hot(&labels, 5)?;
    assert_close(
        "ce with one-hot labels",
        &losses::softmax_cross_entropy(&logits, &one_hot)?,
        &g["ce_one_hot"],
    );
    let (p, t) = (tensor(&g["pred"]), tensor(&g["target"]));
    assert_close(
        "squared error",
        &losses::squared_error(&p, &t)?,
        &g["squared_error"],
    );
    assert_close("l2 loss", &losses::l2_loss(&p, &t)?, &g["l2_loss"]);
    assert_close("huber", &losses::huber_loss(&p, &t, 1.0)?, &g["huber"]);
    let mse = losses::mean_squared_error(&p, &t)?.item::<f32>()?;
    let want = tensor(&g["squared_error"]).mean(None)?.item::<f32>()?;
    assert!((mse - want).abs() < 1e-6);
    // Out-of-range labels give NaN; wrong dtypes and shapes are errors.
    let bad = losses::softmax_cross_entropy_with_integer_labels(
        &logits,
        &Tensor::from_slice(&[0i32, 5, -1, 1]),
    )?
    .to_vec::<f32>()?;
    assert!(!bad[0].is_nan() && bad[1].is_nan() && bad[2].is_nan());
    assert!(losses::softmax_cross_entropy_with_integer_labels(&logits, &logits).is_err());
    assert!(
        losses::softmax_cross_entropy_with_integer_labels(
            &logits,
            &ints(&g["labels"]).reshape(&[2, 2])?
        )
        .is_err()
    );
    Ok(())
}

#[test]
fn l2_regularization_sums_squares_of_a_state() -> Result<()> {
    let layer = nnx_nn::Linear::new(2, 3, &nnx_core::Rngs::new(0)?)?;
    let state = graph::state(&layer);
    let kernel = layer.kernel.value();
    let want = (&kernel * &kernel)?.sum(None)?.item::<f32>()?; // the bias is zero
    let got = losses::l2_regularization(&state)?.item::<f32>()?;
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    Ok(())
}

#[test]
fn metrics_are_flaxs() -> Result<()> {
    let g = &golden()["metrics"];
    for engine in engines() {
        let metrics = MultiMetric::new([
            ("accuracy", Accuracy::new().into()),
            ("loss", Average::new().into()),
        ])?;
        let nan = metrics.compute()?;
        assert!(nan["accuracy"].item::<f32>()?.is_nan() && nan["loss"].item::<f32>()?.is_nan());
        // Updated under jit, as a training loop does: the totals are Variables.
        let step = jit(
            |m: &MultiMetric, logits: &Tensor, labels: &Tensor, values: &Tensor| {
                m.update(&Updates::new().logits(logits).labels(labels).values(values))
            },
        );
        let batches = [
            ("logits", "labels", [1i32, 2, 3, 4], "first"),
            ("logits2", "labels2", [3, 2, 1, 0], "second"),
        ];
        for (logits, labels, values, expected) in batches {
            step.call(
                engine,
                (
                    &metrics,
                    &tensor(&g[logits]),
                    &ints(&g[labels]),
                    &Tensor::from_slice(&values),
                ),
            )?;
            let computed = metrics.compute()?;
            for name in ["accuracy", "loss"] {
                let want = g[expected][name].as_f64().expect("value") as f32;
                assert_eq!(
                    computed[name].item::<f32>()?,
                    want,
                    "{name} after {expected}"
                );
            }
        }
        metrics.reset()?;
        assert!(metrics.compute()?["loss"].item::<f32>()?.is_nan());
    }
    // The state's paths are Flax's.
    let metrics = MultiMetric::new([
        ("accuracy", Accuracy::new().into()),
        ("loss", Average::new().into()),
    ])?;
    let mut paths: Vec<String> = graph::state(&metrics)
        .iter()
        .map(|(p, _)| p.slashed())
        .collect();
    paths.sort();
    let want: Vec<String> = (g["paths"].as_array().expect("paths").iter())
        .map(|p| p.as_str().expect("path").to_owned())
        .collect();
    assert_eq!(paths, want);

    let average = Average::new();
    let mask = Tensor::from_slice(&[1i32, 1, 0, 1]);
    average.update(
        &Updates::new()
            .values(&Tensor::from_slice(&[1.0f32, 2.0, 3.0, 10.0]))
            .mask(&mask),
    )?;
    assert_eq!(
        average.compute()?.item::<f32>()?,
        g["masked_average"].as_f64().expect("v") as f32
    );
    let binary = Accuracy::binary(0.5);
    let logits = Tensor::from_slice(&[0.2f32, 0.7, 0.5, 0.9]);
    binary.update(
        &Updates::new()
            .logits(&logits)
            .labels(&Tensor::from_slice(&[0i32, 1, 0, 0])),
    )?;
    assert_eq!(
        binary.compute()?.item::<f32>()?,
        g["binary_accuracy"].as_f64().expect("v") as f32
    );
    // Flax's errors.
    let err = Average::new().update(&Updates::new()).unwrap_err();
    assert!(
        err.to_string()
            .contains("Expected keyword argument 'values'"),
        "{err}"
    );
    let err = Accuracy::new()
        .update(
            &Updates::new()
                .logits(&logits)
                .labels(&Tensor::from_slice(&[0i32, 1, 0, 0])),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("expected logits.ndim==labels.ndim+1"),
        "{err}"
    );
    Ok(())
}
