"""Writes layer_options.json: layers built with keyword arguments as Flax 0.12.8 / JAX 0.10.2
(CPU, float32) build and apply them — nnx.Conv and nnx.ConvTranspose (initializers, input
dilation, feature groups with strides, no bias), the normalisation layers (initializers,
no scale or no bias, epsilon; a Linear created after each shows the keys they used) —:
parameters as float32 bit patterns, outputs too (tests compare outputs to 1e-5).

Run from this directory with a venv that has flax==0.12.8 (and its jax):
    python layer_options.py   # writes layer_options.json beside this file
"""

import json
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import numpy as np
from flax import nnx


def bits(x):
    a = np.asarray(x, dtype=np.float32)
    return {"shape": list(a.shape), "bits": [int(b) for b in a.reshape(-1).view(np.uint32)]}


def pattern(shape, shift):
    n = int(np.prod(shape))
    return (np.sin(np.arange(n, dtype=np.float32) * 0.7 + shift) * 1.5).astype(np.float32).reshape(shape)


def record(layer, x):
    entry = {"x": bits(x), "kernel": bits(layer.kernel[...]), "y": bits(layer(x))}
    if layer.bias is not None:
        entry["bias"] = bits(layer.bias[...])
    return entry


out = {}
# Input dilation (explicit padding: JAX refuses 'SAME' and 'VALID' with it), custom
# initializers.
layer = nnx.Conv(2, 3, (3,), input_dilation=2, padding=((2, 1),),
                 kernel_init=nnx.initializers.normal(0.5),
                 bias_init=nnx.initializers.constant(0.25), rngs=nnx.Rngs(0))
out["input_dilation"] = record(layer, pattern((2, 5, 2), 0.0))
try:
    nnx.Conv(2, 3, (3,), input_dilation=2, rngs=nnx.Rngs(0))(pattern((2, 5, 2), 0.0))
except ValueError as e:
    out["input_dilation_string_padding_error"] = str(e)
# Feature groups with strides, kernel dilation and explicit padding, no bias.
layer = nnx.Conv(4, 6, (3, 3), strides=2, padding=((1, 2), (0, 1)), kernel_dilation=(1, 2),
                 feature_group_count=2, use_bias=False, rngs=nnx.Rngs(1))
out["groups_strided"] = record(layer, pattern((1, 7, 8, 4), 1.0))
# A transposed convolution with kernel dilation, no bias, its own initializer.
layer = nnx.ConvTranspose(3, 2, (3, 3), strides=(2, 1), kernel_dilation=(1, 2), use_bias=False,
                          kernel_init=nnx.initializers.uniform(0.4), rngs=nnx.Rngs(2))
out["transpose"] = record(layer, pattern((2, 4, 3, 3), 2.0))

# Normalisation layers with options; the Linear after each shows how many keys it used.
norms = {
    "layer": lambda rngs: nnx.LayerNorm(6, use_bias=False, epsilon=1e-5,
                                        scale_init=nnx.initializers.normal(1.0), rngs=rngs),
    "rms": lambda rngs: nnx.RMSNorm(6, epsilon=1e-3, scale_init=nnx.initializers.normal(0.1),
                                    rngs=rngs),
    "batch": lambda rngs: nnx.BatchNorm(6, use_scale=False,
                                        bias_init=nnx.initializers.constant(0.5), rngs=rngs),
    "group": lambda rngs: nnx.GroupNorm(6, num_groups=3, use_bias=False,
                                        scale_init=nnx.initializers.uniform(2.0), rngs=rngs),
}
x = pattern((4, 6), 3.0)
out["norms"] = {"x": bits(x)}
for name, make in norms.items():
    rngs = nnx.Rngs(3)
    norm = make(rngs)
    after = nnx.Linear(6, 2, rngs=rngs)
    entry = {"y": bits(norm(x)), "after": bits(after.kernel[...])}
    if norm.scale is not None:
        entry["scale"] = bits(norm.scale[...])
    if getattr(norm, "bias", None) is not None:
        entry["bias"] = bits(norm.bias[...])
    out["norms"][name] = entry

# Recurrent cells and Embed with their initializers (the recurrent kernels not orthogonal,
# so every parameter is bit-comparable); one step of each cell from a zero carry.
rngs = nnx.Rngs(4)
lstm = nnx.LSTMCell(3, 4, kernel_init=nnx.initializers.normal(0.3),
                    recurrent_kernel_init=nnx.initializers.lecun_normal(),
                    bias_init=nnx.initializers.constant(0.1), rngs=rngs)
gru = nnx.GRUCell(3, 4, kernel_init=nnx.initializers.uniform(0.5),
                  recurrent_kernel_init=nnx.initializers.glorot_normal(),
                  bias_init=nnx.initializers.normal(0.2), rngs=rngs)
embed = nnx.Embed(5, 3, embedding_init=nnx.initializers.uniform(0.2), rngs=rngs)
x = pattern((2, 3), 4.0)
zeros = np.zeros((2, 4), np.float32)
(c, h), _ = lstm((zeros, zeros), x)
g, _ = gru(zeros, x)
out["cells"] = {
    "x": bits(x),
    "lstm": {name: {"kernel": bits(getattr(lstm, name).kernel[...]),
                    "bias": bits(getattr(lstm, name).bias[...]) if getattr(lstm, name).bias is not None else None}
             for name in ["ii", "if_", "ig", "io", "hi", "hf", "hg", "ho"]},
    "lstm_c": bits(c), "lstm_h": bits(h),
    "gru": {name: {"kernel": bits(getattr(gru, name).kernel[...]),
                   "bias": bits(getattr(gru, name).bias[...]) if getattr(gru, name).bias is not None else None}
            for name in ["dense_i", "dense_h"]},
    "gru_h": bits(g),
    "embedding": bits(embed.embedding[...]),
}

# MultiHeadAttention with its keyword arguments; keys and values from their own inputs.
rngs = nnx.Rngs(5)
mha = nnx.MultiHeadAttention(2, 4, qkv_features=6, out_features=3, in_kv_features=5,
                             use_bias=False, normalize_qk=True,
                             kernel_init=nnx.initializers.normal(0.3),
                             out_kernel_init=nnx.initializers.uniform(0.5), decode=False,
                             rngs=rngs)
after = nnx.Linear(2, 2, rngs=rngs)
q, k, v = pattern((2, 3, 4), 5.0), pattern((2, 4, 5), 6.0), pattern((2, 4, 5), 7.0)
out["attention"] = {
    "q": bits(q), "k": bits(k), "v": bits(v),
    "params": {name: bits(getattr(mha, name).kernel[...]) for name in ["query", "key", "value", "out"]},
    "query_ln": bits(mha.query_ln.scale[...]), "key_ln": bits(mha.key_ln.scale[...]),
    "y": bits(mha(q, k, v)), "y_kv": bits(mha(q, k)), "after": bits(after.kernel[...]),
}

# The activations nnx exports, on points across their range, and PReLU with its gradient.
xs = np.concatenate([np.linspace(-9.0, 9.0, 37, dtype=np.float32),
                     np.array([0.0, 1.0, -1.0, 3.0, -3.0, 6.0, 100.0, -100.0], np.float32)])
activations = {name: getattr(nnx, name) for name in [
    "relu6", "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh", "soft_sign", "selu",
    "celu", "log_sigmoid", "swish", "identity", "elu"]}
out["activations"] = {"x": bits(xs), **{name: bits(f(xs)) for name, f in activations.items()}}
glu_x = xs[:44].reshape(4, 11)[:, ::-1].copy().reshape(4, 11) * np.float32(0.5)
glu_x = np.concatenate([xs[:44].reshape(4, 11), glu_x], axis=-1)
out["activations"]["glu_x"] = bits(glu_x)
out["activations"]["glu"] = bits(nnx.glu(glu_x, -1))
# Gradients where a naive formula overflows: elu and selu at large inputs.
out["activations"]["elu_grad"] = bits(jax.grad(lambda x: nnx.elu(x).sum())(xs))
prelu = nnx.PReLU(0.2)
out["prelu"] = {"y": bits(prelu(xs)),
                "grad_slope": bits(nnx.grad(lambda m: m(xs).sum())(prelu).negative_slope[...])}

# Mask helpers, and dot_product_attention's shape errors.
tokens = np.array([[3, 1, 0], [2, 0, 0]], np.float32)
padding = nnx.make_attention_mask(tokens > 0, tokens > 0)
causal = nnx.make_causal_mask(tokens)
def error(f):
    try:
        f()
    except ValueError as e:
        return str(e)
q4 = np.ones((2, 3, 2, 4), np.float32)
out["masks"] = {
    "tokens": bits(tokens),
    "padding": bits(padding),
    "combined": bits(nnx.combine_masks(padding, None, causal)),
    "rank_error": error(lambda: nnx.dot_product_attention(q4, q4[0], q4)),
    "batch_error": error(lambda: nnx.dot_product_attention(q4, q4[:1], q4)),
    "length_error": error(lambda: nnx.dot_product_attention(q4, q4, q4[:, :2])),
}

# Dropout with its keyword arguments: negative broadcast axes, another stream.
x = pattern((4, 3, 5), 8.0)
broadcast = nnx.Dropout(0.5, broadcast_dims=(-1, 0), rngs=nnx.Rngs(dropout=7))
other = nnx.Dropout(0.3, rng_collection="noise", rngs=nnx.Rngs(noise=3))
out["dropout"] = {"x": bits(x), "broadcast": bits(broadcast(x)), "noise": bits(other(x)),
                  "noise_eval": bits(other(x, deterministic=True))}

# The exact (two-pass) variance, on inputs whose mean is large against their spread.
x = pattern((4, 6), 9.0) * np.float32(0.01) + np.float32(300.0)
exact = {
    "layer": nnx.LayerNorm(6, use_fast_variance=False, rngs=nnx.Rngs(0)),
    "batch": nnx.BatchNorm(6, use_fast_variance=False, rngs=nnx.Rngs(0)),
    "group": nnx.GroupNorm(6, num_groups=3, use_fast_variance=False, rngs=nnx.Rngs(0)),
}
out["exact_variance"] = {"x": bits(x), **{name: bits(norm(x)) for name, norm in exact.items()}}
out["exact_variance"]["batch_var"] = bits(exact["batch"].var[...])

# Average pooling without counting the padding.
x = pattern((2, 5, 5, 3), 10.0)
out["avg_pool_excluding_padding"] = {
    "x": bits(x),
    "same": bits(nnx.avg_pool(x, (3, 3), strides=(2, 2), padding="SAME", count_include_pad=False)),
    "explicit": bits(nnx.avg_pool(x, (2, 3), strides=(1, 2), padding=((1, 0), (2, 1)),
                                  count_include_pad=False)),
}

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "layer_options.json"), "w") as f:
    json.dump(out, f)
