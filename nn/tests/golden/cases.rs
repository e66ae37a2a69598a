//! The layers and initialisers against what Flax 0.12.8 / JAX 0.10.2 compute
//! (`golden/layers.py` writes `golden/layers.json`): initial values bit for bit, layer
//! outputs to 1e-5, under `jit` and eagerly on the engine the including test binary names
//! (`golden_reference.rs`, `golden_fast.rs`). Initialisers, dense and normalisation layers,
//! functions and embeddings here; convolutions, pooling, attention and recurrent layers in
//! `spatial_and_recurrent.rs`.

use super::common::{floats, tensor};
use std::sync::OnceLock;

use nnx_core::random::{self, sampling};
use nnx_core::transforms::{jit, vmap};
use nnx_core::{Result, Rngs, Tensor};
use nnx_nn::{Linear, initializers, linear::LinearOptions};
use serde_json::Value as Json;

pub(crate) fn golden() -> &'static Json {
    // Every case starts here: the engine takes over eager work first.
    super::engine();
    static GOLDEN: OnceLock<Json> = OnceLock::new();
    GOLDEN.get_or_init(|| {
        serde_json::from_str(include_str!("../../golden/layers.json")).expect("layers.json parses")
    })
}

/// Asserts bit equality, naming the first differing element.
pub(crate) fn assert_bits(what: &str, got: &Tensor, expected: &Json) {
    let (shape, want) = floats(expected);
    assert_eq!(got.shape(), &shape[..], "{what}: shape");
    let got = got.to_vec::<f32>().expect("float32");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{what}[{i}]: {g} vs JAX's {w}");
    }
}

#[test]
fn erf_is_xlas_bit_for_bit() {
    let g = &golden()["erf"];
    let (_, xs) = floats(&g["x"]);
    let (_, ys) = floats(&g["y"]);
    for (x, y) in xs.iter().zip(&ys) {
        let got = sampling::erf_f32(*x);
        assert_eq!(got.to_bits(), y.to_bits(), "erf({x}) = {got}, JAX {y}");
    }
}

#[test]
fn truncated_normal_is_jaxs_bit_for_bit() {
    for case in golden()["truncated_normal"].as_array().expect("cases") {
        let seed = case["seed"].as_i64().expect("seed");
        let (lower, upper) = (
            case["lower"].as_f64().expect("lower"),
            case["upper"].as_f64().expect("upper"),
        );
        let n = case["n"].as_u64().expect("n") as usize;
        let got =
            random::truncated_normal(&random::key(seed), lower as f32, upper as f32, [n]).unwrap();
        assert_bits(&format!("truncated_normal seed {seed}"), &got, &case["y"]);
    }
}

fn initializer(name: &str) -> nnx_nn::Initializer {
    use initializers::{Distribution, FanMode};
    match name {
        "lecun_normal" => initializers::lecun_normal(),
        "lecun_uniform" => initializers::lecun_uniform(),
        "glorot_normal" => initializers::glorot_normal(),
        "glorot_uniform" => initializers::glorot_uniform(),
        "he_normal" => initializers::he_normal(),
        "he_uniform" => initializers::he_uniform(),
        "normal_0.02" => initializers::normal(0.02),
        "uniform_0.05" => initializers::uniform(0.05),
        "truncated_normal_0.1" => initializers::truncated_normal(0.1),
        "variance_scaling_0.5_fan_out_normal" => {
            initializers::variance_scaling(0.5, FanMode::FanOut, Distribution::Normal)
        }
        "variance_scaling_3_fan_geo_avg_uniform" => {
            initializers::variance_scaling(3.0, FanMode::FanGeoAvg, Distribution::Uniform)
        }
        other => panic!("no initializer {other} in the test"),
    }
}

#[test]
fn initializers_are_jaxs_bit_for_bit() {
    let cases = golden()["initializers"].as_object().expect("initializers");
    assert_eq!(cases.len(), 11);
    for (name, shapes) in cases {
        for (shape, expected) in shapes.as_object().expect("shapes") {
            let (dims, _) = floats(expected);
            let got = initializer(name).init(&random::key(0), &dims).unwrap();
            assert_bits(&format!("{name} {shape}"), &got, expected);
        }
    }
}

#[test]
fn initializers_run_on_traced_keys() -> Result<()> {
    // Inside vmap the key is a tracer: each lane draws with its own key, as eagerly.
    let keys = random::split(&random::key(0), 3)?;
    let lanes = vmap(|k: &Tensor| initializers::lecun_normal().init(k, [3, 4]))
        .call(super::engine(), (&keys,))?;
    for i in 0..3 {
        let eager = initializers::lecun_normal().init(&keys.index_axis(0, i)?, [3, 4])?;
        assert!(lanes.index_axis(0, i)?.identical(&eager));
    }
    Ok(())
}

#[test]
fn linear_is_flaxs() -> Result<()> {
    let g = &golden()["linear"];
    let x = tensor(&g["x"]);
    let layer = Linear::new(3, 4, &Rngs::new(0)?)?;
    assert_bits(
        "Linear kernel",
        &layer.kernel.value(),
        &g["default"]["kernel"],
    );
    let bias = layer.bias.as_ref().expect("a bias");
    assert_bits("Linear bias", &bias.value(), &g["default"]["bias"]);
    let expected = tensor(&g["default"]["y"]);
    assert!(layer.forward(&x)?.allclose(&expected, 1e-5, 1e-5)?);
    let jitted = jit(|m: &Linear, x: &Tensor| m.forward(x)).call(super::engine(), (&layer, &x))?;
    assert!(jitted.allclose(&expected, 1e-5, 1e-5)?);

    let rngs = Rngs::builder().stream("params", 3).build()?;
    let options = LinearOptions {
        use_bias: false,
        ..LinearOptions::default()
    };
    let no_bias = Linear::with(3, 5, options, &rngs)?;
    assert!(no_bias.bias.is_none());
    assert_bits(
        "Linear(use_bias=False) kernel",
        &no_bias.kernel.value(),
        &g["no_bias"]["kernel"],
    );
    assert!(
        no_bias
            .forward(&x)?
            .allclose(&tensor(&g["no_bias"]["y"]), 1e-5, 1e-5)?
    );
    Ok(())
}

/// Asserts closeness to 1e-5 (outputs: engines may sum in another order than XLA).
pub(crate) fn assert_close(what: &str, got: &Tensor, expected: &Json) {
    let want = tensor(expected);
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert!(
        got.allclose(&want, 1e-5, 1e-5).expect("float32"),
        "{what}: {got} vs Flax's {want}"
    );
}

#[test]
fn functions_are_jaxs() -> Result<()> {
    use nnx_nn::functions::*;
    let g = &golden()["functions"];
    let (x1, x2) = (tensor(&g["x1"]), tensor(&g["x2"]));
    assert_close("relu", &relu(&x1)?, &g["relu"]);
    assert_close("sigmoid", &sigmoid(&x1)?, &g["sigmoid"]);
    assert_close("silu", &silu(&x1)?, &g["silu"]);
    assert_close("gelu (tanh)", &gelu(&x1, true)?, &g["gelu_tanh"]);
    assert_close("gelu (exact)", &gelu(&x1, false)?, &g["gelu_exact"]);
    assert_close("softplus", &softplus(&x1)?, &g["softplus"]);
    assert_close("elu", &elu(&x1, 1.0)?, &g["elu"]);
    assert_close("leaky_relu", &leaky_relu(&x1, 0.01)?, &g["leaky_relu"]);
    assert_close("softmax", &softmax(&x2, -1)?, &g["softmax"]);
    assert_close("log_softmax", &log_softmax(&x2, -1)?, &g["log_softmax"]);
    assert_close("logsumexp", &logsumexp(&x2, -1)?, &g["logsumexp"]);
    assert_close(
        "standardize",
        &standardize(&x2, -1, 1e-5)?,
        &g["standardize"],
    );
    let labels = Tensor::from_slice(&[2i32, 0, 1, 3, 7]);
    assert_bits("one_hot", &one_hot(&labels, 4)?, &g["one_hot"]);
    // Ties (rounded values): the first extreme, as jnp.argmax/argmin.
    let rounded: Vec<f32> = x2
        .to_vec::<f32>()?
        .iter()
        .map(|v| (v * 0.3).round_ties_even())
        .collect();
    let rounded = Tensor::from_vec(x2.shape(), rounded)?;
    let ints = |j: &Json| -> Vec<i32> {
        j.as_array()
            .expect("ints")
            .iter()
            .map(|v| v.as_i64().expect("int") as i32)
            .collect()
    };
    assert_eq!(
        argmax(&rounded, -1)?.to_vec::<i32>()?,
        ints(&g["argmax_rows"])
    );
    assert_eq!(
        argmin(&rounded, 0)?.to_vec::<i32>()?,
        ints(&g["argmin_cols"])
    );
    Ok(())
}

#[test]
fn normalization_layers_are_flaxs() -> Result<()> {
    let g = &golden()["normalization"];
    let x = tensor(&g["x"]);
    let rngs = Rngs::new(0)?;
    let layer_norm = nnx_nn::LayerNorm::new(4, &rngs)?;
    let rms_norm = nnx_nn::RMSNorm::new(4, &rngs)?;
    let after = Linear::new(4, 2, &rngs)?;
    let scale = layer_norm.scale.as_ref().expect("a scale");
    assert_bits("LayerNorm scale", &scale.value(), &g["layer_norm"]["scale"]);
    let bias = layer_norm.bias.as_ref().expect("a bias");
    assert_bits("LayerNorm bias", &bias.value(), &g["layer_norm"]["bias"]);
    assert_close("LayerNorm", &layer_norm.forward(&x)?, &g["layer_norm"]["y"]);
    assert_close("RMSNorm", &rms_norm.forward(&x)?, &g["rms_norm"]["y"]);
    // The layers drew their keys as Flax's do: the next layer's kernel is Flax's.
    assert_bits(
        "Linear after the norms",
        &after.kernel.value(),
        &g["linear_after"]["kernel"],
    );
    let on_engine = jit(|m: &nnx_nn::LayerNorm, x: &Tensor| m.forward(x))
        .call(super::engine(), (&layer_norm, &x))?;
    assert_close("LayerNorm under jit", &on_engine, &g["layer_norm"]["y"]);
    Ok(())
}

/// Linear → BatchNorm → Dropout, as the golden script's `Model`.
#[derive(nnx_core::Module, Clone)]
#[module(name = "Model")]
struct Model {
    linear: Linear,
    bn: nnx_nn::BatchNorm,
    dropout: nnx_nn::Dropout,
}

impl Model {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.dropout
            .forward(&self.bn.forward(&self.linear.forward(x)?)?)
    }
}

#[test]
fn train_and_eval_are_flaxs() -> Result<()> {
    use nnx_core::graph::TypedModule;
    let g = &golden()["train_eval"];
    let x = tensor(&g["x"]);
    let rngs = Rngs::builder()
        .stream("params", 0)
        .stream("dropout", 1)
        .build()?;
    let mut model = Model {
        linear: Linear::new(3, 4, &rngs)?,
        bn: nnx_nn::BatchNorm::new(4, &rngs)?,
        dropout: nnx_nn::Dropout::new(0.5, &rngs)?,
    };
    assert_bits("kernel", &model.linear.kernel.value(), &g["kernel"]);
    // Two training steps under jit: two masks, the running statistics moved twice.
    let step = jit(|m: &Model, x: &Tensor| m.forward(x));
    assert_close(
        "train 1",
        &step.call(super::engine(), (&model, &x))?,
        &g["y_train_1"],
    );
    assert_close(
        "train 2",
        &step.call(super::engine(), (&model, &x))?,
        &g["y_train_2"],
    );
    assert_close(
        "running mean",
        &model.bn.mean.value(),
        &g["running"]["mean"],
    );
    assert_close("running var", &model.bn.var.value(), &g["running"]["var"]);
    let stream = model.dropout.rngs.as_ref().expect("a stream");
    assert_eq!(
        stream.count()?.value().item::<u32>()? as u64,
        g["dropout_count"].as_u64().expect("count")
    );
    model.eval()?;
    assert!(model.dropout.deterministic && model.bn.use_running_average);
    assert_close(
        "eval",
        &step.call(super::engine(), (&model, &x))?,
        &g["y_eval"],
    );
    model.train()?;
    assert!(!model.dropout.deterministic && !model.bn.use_running_average);
    Ok(())
}

#[test]
fn embed_is_flaxs() -> Result<()> {
    let g = &golden()["embed"];
    let embed = nnx_nn::Embed::new(5, 3, &Rngs::new(0)?)?;
    assert_bits("Embed table", &embed.embedding.value(), &g["embedding"]);
    let indices = Tensor::from_vec(&[2, 3], vec![0i32, 4, -1, 2, 5, -6])?;
    let y = embed.forward(&indices)?;
    // Rows of NaN for the out-of-range indices, as jnp.take.
    let (_, want) = floats(&g["y"]);
    let got = y.to_vec::<f32>()?;
    assert_eq!(y.shape(), &[2, 3, 3]);
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!(
            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            "[{i}] {a} vs {b}"
        );
    }
    let query = tensor(&g["query"]);
    assert_close("attend", &embed.attend(&query)?, &g["attend"]);
    assert!(embed.forward(&Tensor::ones([2])).is_err());
    Ok(())
}

#[test]
fn embed_gradients_count_lookups() -> Result<()> {
    use nnx_core::transforms::value_and_grad;
    let embed = nnx_nn::Embed::new(4, 2, &Rngs::new(0)?)?;
    let indices = Tensor::from_slice(&[1i32, 1, 3]);
    let loss = |m: &nnx_nn::Embed, i: &Tensor| m.forward(i)?.sum(None);
    let out = value_and_grad(loss).call(super::engine(), (&embed, &indices))?;
    let grad = out.grads[0]
        .state()?
        .variable(&nnx_core::Path::parse("embedding")?)?
        .value();
    assert_eq!(
        grad.to_vec::<f32>()?,
        vec![0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 1.0, 1.0]
    );
    Ok(())
}
