//! Layers built with Flax's keyword arguments (the options structs), the activations and
//! mask helpers, against what Flax 0.12.8 / JAX 0.10.2 compute (`golden/layer_options.py`
//! writes `golden/layer_options.json`); helpers shared with `cases.rs`.

use super::cases::{assert_bits, assert_close};
use super::common::tensor;

use nnx_core::random;
use nnx_core::transforms::jit;
use nnx_core::{Result, Rngs, Tensor};
use nnx_nn::initializers;
use serde_json::Value as Json;

/// `golden/layer_options.json` (`golden/layer_options.py`): layers built with keyword
/// arguments.
fn layer_options() -> &'static Json {
    static GOLDEN: std::sync::OnceLock<Json> = std::sync::OnceLock::new();
    super::engine();
    GOLDEN.get_or_init(|| {
        serde_json::from_str(include_str!("../../golden/layer_options.json"))
            .expect("layer_options.json parses")
    })
}

#[test]
fn convolutions_with_options_are_flaxs() -> Result<()> {
    use nnx_nn::conv::{ConvOptions, Padding};
    use nnx_nn::{Conv, ConvTranspose};
    let g = layer_options();
    let check = |name: &str, kernel: &Tensor, bias: Option<Tensor>, y: Tensor| {
        let case = &g[name];
        assert_bits(&format!("{name} kernel"), kernel, &case["kernel"]);
        match bias {
            Some(bias) => assert_bits(&format!("{name} bias"), &bias, &case["bias"]),
            None => assert!(case["bias"].is_null(), "{name}: Flax has a bias"),
        }
        assert_close(&format!("{name} y"), &y, &case["y"]);
    };

    // Input dilation with explicit padding, custom initializers.
    let options = ConvOptions {
        input_dilation: Some(vec![2]),
        padding: Padding::Explicit(vec![(2, 1)]),
        kernel_init: initializers::normal(0.5),
        bias_init: initializers::constant(0.25),
        ..ConvOptions::default()
    };
    let conv = Conv::with_options(2, 3, &[3], options.clone(), &Rngs::new(0)?)?;
    let x = tensor(&g["input_dilation"]["x"]);
    let y = jit(|c: &Conv, x: &Tensor| c.forward(x)).call(super::engine(), (&conv, &x))?;
    let bias = conv.bias.as_ref().map(|b| b.value());
    check("input_dilation", &conv.kernel.value(), bias, y);
    // JAX refuses string padding with an input dilation, with this message.
    let same = ConvOptions {
        padding: Padding::Same,
        ..options
    };
    let err = Conv::with_options(2, 3, &[3], same, &Rngs::new(0)?).unwrap_err();
    let expected = g["input_dilation_string_padding_error"]
        .as_str()
        .unwrap_or("?");
    assert!(
        err.to_string().contains(expected),
        "{err} vs JAX's {expected}"
    );

    // Feature groups with strides, kernel dilation and explicit padding, no bias.
    let options = ConvOptions {
        strides: Some(vec![2, 2]),
        padding: Padding::Explicit(vec![(1, 2), (0, 1)]),
        kernel_dilation: Some(vec![1, 2]),
        feature_group_count: 2,
        use_bias: false,
        ..ConvOptions::default()
    };
    let conv = Conv::with_options(4, 6, &[3, 3], options, &Rngs::new(1)?)?;
    let y = conv.forward(&tensor(&g["groups_strided"]["x"]))?;
    check("groups_strided", &conv.kernel.value(), None, y);

    // A transposed convolution with kernel dilation, no bias, its own initializer.
    let options = ConvOptions {
        strides: Some(vec![2, 1]),
        kernel_dilation: Some(vec![1, 2]),
        use_bias: false,
        kernel_init: initializers::uniform(0.4),
        ..ConvOptions::default()
    };
    let layer = ConvTranspose::with_options(3, 2, &[3, 3], options, &Rngs::new(2)?)?;
    let y = layer.forward(&tensor(&g["transpose"]["x"]))?;
    check("transpose", &layer.kernel.value(), None, y);
    Ok(())
}

#[test]
fn normalization_layers_with_options_are_flaxs() -> Result<()> {
    use nnx_nn::{BatchNorm, GroupNorm, LayerNorm, Linear, NormOptions, RMSNorm};
    let g = &layer_options()["norms"];
    let x = tensor(&g["x"]);
    let options = |f: fn(&mut NormOptions)| {
        let mut options = NormOptions::default();
        f(&mut options);
        options
    };
    /// A layer built from the key streams: its output on `x`, its scale and bias.
    type Build<'a> = &'a dyn Fn(&Rngs) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)>;
    let cases: [(&str, Build); 4] = [
        ("layer", &|rngs| {
            let o = options(|o| {
                o.use_bias = false;
                o.epsilon = Some(1e-5);
                o.scale_init = initializers::normal(1.0);
            });
            let n = LayerNorm::with_options(6, o, rngs)?;
            Ok((
                n.forward(&x)?,
                n.scale.map(|p| p.value()),
                n.bias.map(|p| p.value()),
            ))
        }),
        ("rms", &|rngs| {
            let o = options(|o| {
                o.epsilon = Some(1e-3);
                o.scale_init = initializers::normal(0.1);
            });
            let n = RMSNorm::with_options(6, o, rngs)?;
            Ok((n.forward(&x)?, n.scale.map(|p| p.value()), None))
        }),
        ("batch", &|rngs| {
            let o = options(|o| {
                o.use_scale = false;
                o.bias_init = initializers::constant(0.5);
            });
            let n = BatchNorm::with_options(6, o, rngs)?;
            Ok((
                n.forward(&x)?,
                n.scale.map(|p| p.value()),
                n.bias.map(|p| p.value()),
            ))
        }),
        ("group", &|rngs| {
            let o = options(|o| {
                o.use_bias = false;
                o.scale_init = initializers::uniform(2.0);
            });
            let n = GroupNorm::with_options(6, 3, o, rngs)?;
            Ok((
                n.forward(&x)?,
                n.scale.map(|p| p.value()),
                n.bias.map(|p| p.value()),
            ))
        }),
    ];
    for (name, build) in cases {
        let case = &g[name];
        let rngs = Rngs::new(3)?;
        let (y, scale, bias) = build(&rngs)?;
        for (what, param) in [("scale", scale), ("bias", bias)] {
            match param {
                Some(p) => assert_bits(&format!("{name} {what}"), &p, &case[what]),
                None => assert!(case[what].is_null(), "{name}: Flax has a {what}"),
            }
        }
        assert_close(&format!("{name} y"), &y, &case["y"]);
        // The keys the layer drew: a Linear created after it is Flax's.
        let after = Linear::new(6, 2, &rngs)?;
        assert_bits(
            &format!("{name}: the Linear after it"),
            &after.kernel.value(),
            &case["after"],
        );
    }
    Ok(())
}

#[test]
fn recurrent_cells_and_embed_with_initializers_are_flaxs() -> Result<()> {
    use nnx_nn::{CellOptions, Embed, GRUCell, LSTMCell, Linear};
    let g = &layer_options()["cells"];
    let rngs = Rngs::new(4)?;
    let lstm = LSTMCell::with_options(
        3,
        4,
        CellOptions {
            kernel_init: initializers::normal(0.3),
            recurrent_kernel_init: initializers::lecun_normal(),
            bias_init: initializers::constant(0.1),
        },
        &rngs,
    )?;
    let gru = GRUCell::with_options(
        3,
        4,
        CellOptions {
            kernel_init: initializers::uniform(0.5),
            recurrent_kernel_init: initializers::glorot_normal(),
            bias_init: initializers::normal(0.2),
        },
        &rngs,
    )?;
    let embed = Embed::with_init(5, 3, &initializers::uniform(0.2), &rngs)?;
    let check = |what: String, layer: &Linear, expected: &Json| {
        assert_bits(
            &format!("{what} kernel"),
            &layer.kernel.value(),
            &expected["kernel"],
        );
        match &layer.bias {
            Some(bias) => assert_bits(&format!("{what} bias"), &bias.value(), &expected["bias"]),
            None => assert!(expected["bias"].is_null(), "{what}: Flax has no bias"),
        }
    };
    let gates = [
        ("ii", &lstm.ii),
        ("if_", &lstm.if_),
        ("ig", &lstm.ig),
        ("io", &lstm.io),
        ("hi", &lstm.hi),
        ("hf", &lstm.hf),
        ("hg", &lstm.hg),
        ("ho", &lstm.ho),
    ];
    for (name, layer) in gates {
        check(format!("lstm {name}"), layer, &g["lstm"][name]);
    }
    check("gru dense_i".into(), &gru.dense_i, &g["gru"]["dense_i"]);
    check("gru dense_h".into(), &gru.dense_h, &g["gru"]["dense_h"]);
    assert_bits("embedding", &embed.embedding.value(), &g["embedding"]);
    let x = tensor(&g["x"]);
    let zeros = Tensor::zeros([2, 4]);
    let ((c, h), _) = lstm.forward(&(zeros.clone(), zeros.clone()), &x)?;
    assert_close("lstm c", &c, &g["lstm_c"]);
    assert_close("lstm h", &h, &g["lstm_h"]);
    let (h, _) = gru.forward(&zeros, &x)?;
    assert_close("gru h", &h, &g["gru_h"]);
    Ok(())
}

#[test]
fn multi_head_attention_with_options_is_flaxs() -> Result<()> {
    use nnx_nn::attention::AttentionOptions;
    use nnx_nn::{Linear, MultiHeadAttention};
    let g = &layer_options()["attention"];
    let rngs = Rngs::new(5)?;
    let options = AttentionOptions {
        qkv_features: Some(6),
        out_features: Some(3),
        in_kv_features: Some(5),
        use_bias: false,
        normalize_qk: true,
        kernel_init: initializers::normal(0.3),
        out_kernel_init: Some(initializers::uniform(0.5)),
        ..AttentionOptions::default()
    };
    let mha = MultiHeadAttention::with_options(2, 4, options, &rngs)?;
    let after = Linear::new(2, 2, &rngs)?;
    for (name, layer) in [
        ("query", &mha.query),
        ("key", &mha.key),
        ("value", &mha.value),
        ("out", &mha.out),
    ] {
        assert_bits(name, &layer.kernel.value(), &g["params"][name]);
        assert!(layer.bias.is_none(), "{name} has no bias");
    }
    fn scale(ln: &Option<nnx_nn::LayerNorm>) -> Tensor {
        let param = ln.as_ref().and_then(|l| l.scale.as_ref());
        param.expect("a LayerNorm with a scale").value()
    }
    assert_bits("query_ln", &scale(&mha.query_ln), &g["query_ln"]);
    assert_bits("key_ln", &scale(&mha.key_ln), &g["key_ln"]);
    assert_bits("the Linear after it", &after.kernel.value(), &g["after"]);
    let (q, k, v) = (tensor(&g["q"]), tensor(&g["k"]), tensor(&g["v"]));
    let y = jit(
        |m: &MultiHeadAttention, q: &Tensor, k: &Tensor, v: &Tensor| m.attend_qkv(q, k, v, None),
    )
    .call(super::engine(), (&mha, &q, &k, &v))?;
    assert_close("y", &y, &g["y"]);
    assert_close(
        "y, values from the keys' input",
        &mha.attend(&q, &k, None)?,
        &g["y_kv"],
    );
    Ok(())
}

#[test]
fn activations_and_prelu_are_jaxs() -> Result<()> {
    use nnx_nn::functions as f;
    let g = &layer_options()["activations"];
    let x = tensor(&g["x"]);
    type Activation = fn(&Tensor) -> Result<Tensor>;
    let cases: [(&str, Activation); 12] = [
        ("relu6", f::relu6),
        ("hard_sigmoid", f::hard_sigmoid),
        ("hard_silu", f::hard_silu),
        ("hard_swish", f::hard_swish),
        ("hard_tanh", f::hard_tanh),
        ("soft_sign", f::soft_sign),
        ("selu", f::selu),
        ("celu", |x| f::celu(x, 1.0)),
        ("log_sigmoid", f::log_sigmoid),
        ("swish", f::swish),
        ("identity", f::identity),
        ("elu", |x| f::elu(x, 1.0)),
    ];
    for (name, activation) in cases {
        let y = jit(move |x: &Tensor| activation(x)).call(super::engine(), (&x,))?;
        assert_close(name, &y, &g[name]);
    }
    assert_close("glu", &f::glu(&tensor(&g["glu_x"]), -1)?, &g["glu"]);
    // No NaN where the exponential of a large input overflows.
    let grad = nnx_core::transforms::grad(|x: &Tensor| f::elu(x, 1.0)?.sum(None))
        .call(super::engine(), (&x,))?;
    assert_close("elu gradient", grad.grads[0].array()?, &g["elu_grad"]);

    let p = &layer_options()["prelu"];
    let prelu = nnx_nn::PReLU::new(0.2);
    assert_close("prelu", &prelu.forward(&x)?, &p["y"]);
    let grad = nnx_core::transforms::grad(|m: &nnx_nn::PReLU| m.forward(&x)?.sum(None))
        .call(super::engine(), (&prelu,))?;
    let slope = grad.grads[0]
        .state()?
        .variable(&nnx_core::Path::from(["negative_slope"]))?
        .value();
    assert_close("prelu slope gradient", &slope, &p["grad_slope"]);
    Ok(())
}

#[test]
fn attention_masks_and_shape_errors_are_flaxs() -> Result<()> {
    use nnx_nn::attention::{combine_masks, make_attention_mask};
    let g = &layer_options()["masks"];
    let present = tensor(&g["tokens"]).greater(&Tensor::scalar(0.0f32))?;
    let padding = make_attention_mask(&present, &present)?;
    assert_bits("padding mask", &padding, &g["padding"]);
    let causal = nnx_nn::make_causal_mask(&tensor(&g["tokens"]))?;
    let combined = combine_masks(&[Some(&padding), None, Some(&causal)])?.expect("a mask");
    assert_bits("combined mask", &combined, &g["combined"]);
    assert!(combine_masks(&[None, None])?.is_none());

    let q = Tensor::ones([2, 3, 2, 4]);
    let attend = |k: &Tensor, v: &Tensor| nnx_nn::dot_product_attention(&q, k, v, None);
    for (key, result) in [
        ("rank_error", attend(&q.index_axis(0, 0)?, &q)),
        ("batch_error", attend(&q.slice_axis(0, 0..1)?, &q)),
        ("length_error", attend(&q, &q.slice_axis(1, 0..2)?)),
    ] {
        let expected = g[key].as_str().expect("a message");
        let err = result.expect_err(key).to_string();
        assert!(err.contains(expected), "{key}: {err}; Flax: {expected}");
    }
    Ok(())
}

#[test]
fn dropout_with_options_is_flaxs() -> Result<()> {
    use nnx_nn::{Dropout, DropoutOptions};
    let g = &layer_options()["dropout"];
    let x = tensor(&g["x"]);
    let rngs = Rngs::builder().stream("dropout", 7).build()?;
    let options = DropoutOptions {
        broadcast_dims: vec![-1, 0],
        ..DropoutOptions::default()
    };
    let broadcast = Dropout::with_options(0.5, options, Some(&rngs))?;
    assert_bits("broadcast", &broadcast.forward(&x)?, &g["broadcast"]);
    let rngs = Rngs::builder().stream("noise", 3).build()?;
    let options = DropoutOptions {
        rng_collection: "noise".into(),
        ..DropoutOptions::default()
    };
    let noise = Dropout::with_options(0.3, options, Some(&rngs))?;
    let y = jit(|d: &Dropout, x: &Tensor| d.forward(x)).call(super::engine(), (&noise, &x))?;
    assert_bits("noise", &y, &g["noise"]);
    assert_bits(
        "eval",
        &noise.forward_deterministic(&x, true)?,
        &g["noise_eval"],
    );
    // A broadcast axis past the input's rank is an error, as Python's index error.
    let options = DropoutOptions {
        broadcast_dims: vec![3],
        ..DropoutOptions::default()
    };
    let out_of_range = Dropout::with_options(0.5, options, None)?;
    assert!(
        out_of_range
            .forward_with(&x, Some(&random::key(0)))
            .is_err()
    );
    Ok(())
}

#[test]
fn normalization_with_the_exact_variance_is_flaxs() -> Result<()> {
    use nnx_nn::{BatchNorm, GroupNorm, LayerNorm, NormOptions};
    let g = &layer_options()["exact_variance"];
    let x = tensor(&g["x"]);
    let exact = || NormOptions {
        use_fast_variance: false,
        ..NormOptions::default()
    };
    let rngs = || Rngs::new(0);
    let layer = LayerNorm::with_options(6, exact(), &rngs()?)?;
    assert_close("layer", &layer.forward(&x)?, &g["layer"]);
    let batch = BatchNorm::with_options(6, exact(), &rngs()?)?;
    assert_close("batch", &batch.forward(&x)?, &g["batch"]);
    assert_close("batch running var", &batch.var.value(), &g["batch_var"]);
    let group = GroupNorm::with_options(6, 3, exact(), &rngs()?)?;
    assert_close("group", &group.forward(&x)?, &g["group"]);
    // The one-pass variance loses these inputs' spread: the flag matters here.
    let fast = LayerNorm::new(6, &rngs()?)?.forward(&x)?;
    assert!(!fast.allclose(&tensor(&g["layer"]), 1e-5, 1e-5)?);
    Ok(())
}

#[test]
fn average_pooling_without_the_padding_is_flaxs() -> Result<()> {
    use nnx_nn::{avg_pool_with, conv::Padding};
    let g = &layer_options()["avg_pool_excluding_padding"];
    let x = tensor(&g["x"]);
    let same = jit(|x: &Tensor| avg_pool_with(x, &[3, 3], Some(&[2, 2]), Padding::Same, false))
        .call(super::engine(), (&x,))?;
    assert_close("same", &same, &g["same"]);
    let explicit = Padding::Explicit(vec![(1, 0), (2, 1)]);
    let y = avg_pool_with(&x, &[2, 3], Some(&[1, 2]), explicit, false)?;
    assert_close("explicit", &y, &g["explicit"]);
    Ok(())
}
