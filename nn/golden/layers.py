"""Writes layers.json: what Flax 0.12.8 / JAX 0.10.2 (CPU, float32) compute for the layers and
initialisers of nnx-nn, as float32 bit patterns (uint32), for bit-exact tests.

Run from this directory with a venv that has flax==0.12.8 (and its jax):
    python layers.py   # writes layers.json beside this file
"""

import json
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

jax.config.update("jax_platforms", "cpu")


def bits(x):
    a = np.asarray(x, dtype=np.float32)
    return {"shape": list(a.shape), "bits": [int(b) for b in a.reshape(-1).view(np.uint32)]}


out = {"versions": {"jax": jax.__version__, "flax": nnx.__name__ and __import__("flax").__version__}}

# lax.erf at points across its range (and beyond the saturation point).
xs = np.concatenate([np.linspace(-4.5, 4.5, 181, dtype=np.float32),
                     np.array([0.0, -0.0, 1e-8, 2 / np.sqrt(2), -2 / np.sqrt(2)], dtype=np.float32)])
out["erf"] = {"x": bits(xs), "y": bits(jax.lax.erf(jnp.asarray(xs)))}

# jax.random.truncated_normal for a few keys and bounds.
out["truncated_normal"] = [
    {"seed": seed, "lower": lo, "upper": hi, "n": 64,
     "y": bits(jax.random.truncated_normal(jax.random.key(seed), lo, hi, (64,)))}
    for seed, lo, hi in [(0, -2.0, 2.0), (42, -1.5, 2.0), (7, 0.5, 3.0)]
]

# Initialisers with key(0).
inits = {
    "lecun_normal": jax.nn.initializers.lecun_normal(),
    "lecun_uniform": jax.nn.initializers.lecun_uniform(),
    "glorot_normal": jax.nn.initializers.glorot_normal(),
    "glorot_uniform": jax.nn.initializers.glorot_uniform(),
    "he_normal": jax.nn.initializers.he_normal(),
    "he_uniform": jax.nn.initializers.he_uniform(),
    "normal_0.02": jax.nn.initializers.normal(0.02),
    "uniform_0.05": jax.nn.initializers.uniform(0.05),
    "truncated_normal_0.1": jax.nn.initializers.truncated_normal(0.1),
    "variance_scaling_0.5_fan_out_normal": jax.nn.initializers.variance_scaling(0.5, "fan_out", "normal"),
    "variance_scaling_3_fan_geo_avg_uniform": jax.nn.initializers.variance_scaling(3.0, "fan_geo_avg", "uniform"),
}
out["initializers"] = {
    name: {str(shape): bits(init(jax.random.key(0), shape)) for shape in [(3, 4), (3, 3, 2, 8)]}
    for name, init in inits.items()
}

# nnx.Linear: parameters from Rngs(0) and Rngs(params=3), outputs on a fixed input.
x = (jnp.arange(6, dtype=jnp.float32).reshape(2, 3) - 2.0) / 3.0
linear = nnx.Linear(3, 4, rngs=nnx.Rngs(0))
no_bias = nnx.Linear(3, 5, use_bias=False, rngs=nnx.Rngs(params=3))
out["linear"] = {
    "x": bits(x),
    "default": {"kernel": bits(linear.kernel[...]), "bias": bits(linear.bias[...]), "y": bits(linear(x))},
    "no_bias": {"kernel": bits(no_bias.kernel[...]), "y": bits(no_bias(x))},
}

# Activations and functions.
x1 = np.linspace(-3, 3, 13, dtype=np.float32)
x2 = (np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5) / 2.0
out["functions"] = {
    "x1": bits(x1),
    "x2": bits(x2),
    "relu": bits(jax.nn.relu(x1)),
    "sigmoid": bits(jax.nn.sigmoid(x1)),
    "silu": bits(jax.nn.silu(x1)),
    "gelu_tanh": bits(jax.nn.gelu(x1, approximate=True)),
    "gelu_exact": bits(jax.nn.gelu(x1, approximate=False)),
    "softplus": bits(jax.nn.softplus(x1)),
    "elu": bits(jax.nn.elu(x1)),
    "leaky_relu": bits(jax.nn.leaky_relu(x1, 0.01)),
    "softmax": bits(jax.nn.softmax(x2, axis=-1)),
    "log_softmax": bits(jax.nn.log_softmax(x2, axis=-1)),
    "logsumexp": bits(jax.nn.logsumexp(x2, axis=-1)),
    "standardize": bits(jax.nn.standardize(x2, axis=-1)),
    "one_hot": bits(jax.nn.one_hot(jnp.array([2, 0, 1, 3, 7]), 4)),
    "argmax_rows": [int(v) for v in jnp.argmax(jnp.round(x2 * 0.3), axis=-1)],
    "argmin_cols": [int(v) for v in jnp.argmin(jnp.round(x2 * 0.3), axis=0)],
}

# Normalisation layers, and a Linear created after them from the same Rngs (key order).
rngs = nnx.Rngs(0)
layer_norm = nnx.LayerNorm(4, rngs=rngs)
rms_norm = nnx.RMSNorm(4, rngs=rngs)
after = nnx.Linear(4, 2, rngs=rngs)
out["normalization"] = {
    "x": bits(x2),
    "layer_norm": {"scale": bits(layer_norm.scale[...]), "bias": bits(layer_norm.bias[...]), "y": bits(layer_norm(x2))},
    "rms_norm": {"scale": bits(rms_norm.scale[...]), "y": bits(rms_norm(x2))},
    "linear_after": {"kernel": bits(after.kernel[...])},
}

# train() / eval(): Linear -> BatchNorm -> Dropout, two training calls (two masks, moving
# statistics), then an evaluation call.
class Model(nnx.Module):
    def __init__(self, rngs):
        self.linear = nnx.Linear(3, 4, rngs=rngs)
        self.bn = nnx.BatchNorm(4, rngs=rngs)
        self.dropout = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x):
        return self.dropout(self.bn(self.linear(x)))


model = Model(nnx.Rngs(params=0, dropout=1))
xb = (jnp.arange(15, dtype=jnp.float32).reshape(5, 3) - 7.0) / 4.0
y1 = model(xb)
y2 = model(xb)
stats = {"mean": bits(model.bn.mean[...]), "var": bits(model.bn.var[...])}
model.eval()
y_eval = model(xb)
out["train_eval"] = {
    "x": bits(xb),
    "kernel": bits(model.linear.kernel[...]),
    "y_train_1": bits(y1),
    "y_train_2": bits(y2),
    "running": stats,
    "y_eval": bits(y_eval),
    "dropout_count": int(model.dropout.rngs.count[...]),
}

# nnx.Embed: the table from Rngs(0), lookups (negative and out-of-range indices included)
# and attend.
embed = nnx.Embed(5, 3, rngs=nnx.Rngs(0))
indices = jnp.array([[0, 4, -1], [2, 5, -6]])
out["embed"] = {
    "embedding": bits(embed.embedding[...]),
    "indices": [[0, 4, -1], [2, 5, -6]],
    "y": bits(embed(indices)),
    "query": bits(x2[:, :3]),
    "attend": bits(embed.attend(x2[:, :3])),
}

# nnx.MultiHeadAttention (no dropout, no decode): parameters from Rngs(0), self-attention
# with and without a causal mask, cross-attention.
mha = nnx.MultiHeadAttention(2, 8, rngs=nnx.Rngs(0), decode=False)
xa = jax.random.normal(jax.random.key(3), (2, 5, 8))
xkv = jax.random.normal(jax.random.key(4), (2, 3, 8))
causal = nnx.make_causal_mask(jnp.ones((2, 5)))
out["attention"] = {
    "x": bits(xa),
    "kv": bits(xkv),
    "params": {name: {"kernel": bits(getattr(mha, name).kernel[...]), "bias": bits(getattr(mha, name).bias[...])}
               for name in ["query", "key", "value", "out"]},
    "y": bits(mha(xa)),
    "y_causal": bits(mha(xa, mask=causal)),
    "y_cross": bits(mha(xa, xkv)),
    "causal_mask": [[int(v) for v in row] for row in np.asarray(causal[0, 0])],
}

# nnx.Conv: 2-D SAME stride 1, 2-D VALID stride 2 with dilation, 1-D explicit padding.
xc = jax.random.normal(jax.random.key(5), (2, 6, 7, 3))
conv_same = nnx.Conv(3, 4, (3, 3), rngs=nnx.Rngs(0))
conv_strided = nnx.Conv(3, 2, (2, 3), strides=(2, 2), padding="VALID", kernel_dilation=(1, 2), rngs=nnx.Rngs(1))
x1d = jax.random.normal(jax.random.key(6), (2, 9, 3))
conv_1d = nnx.Conv(3, 5, (4,), strides=3, padding=[(2, 1)], rngs=nnx.Rngs(2))
out["conv"] = {
    "x": bits(xc),
    "x1d": bits(x1d),
    "same": {"kernel": bits(conv_same.kernel[...]), "bias": bits(conv_same.bias[...]), "y": bits(conv_same(xc))},
    "strided": {"kernel": bits(conv_strided.kernel[...]), "y": bits(conv_strided(xc))},
    "one_d": {"kernel": bits(conv_1d.kernel[...]), "y": bits(conv_1d(x1d))},
}

# nnx.GroupNorm(6 features, 3 groups) on [2, 4, 5, 6].
xg = jax.random.normal(jax.random.key(8), (2, 4, 5, 6)) * 2.0 + 1.0
group_norm = nnx.GroupNorm(6, num_groups=3, rngs=nnx.Rngs(0))
out["group_norm"] = {"x": bits(xg), "y": bits(group_norm(xg))}

# Pooling.
out["pooling"] = {
    "x": bits(xc),
    "max_2x2": bits(nnx.max_pool(xc, (2, 2), strides=(2, 2))),
    "max_3x3_same": bits(nnx.max_pool(xc, (3, 3), strides=(2, 2), padding="SAME")),
    "avg_2x3": bits(nnx.avg_pool(xc, (2, 3), strides=(1, 2))),
    "avg_3x3_same": bits(nnx.avg_pool(xc, (3, 3), padding="SAME")),
    "min_2x2": bits(nnx.min_pool(xc, (2, 2))),
}

# Gradients: a convolution's input and kernel gradients (the patches' transpose), and
# pooling gradients where windows tie (after relu, whole windows are 0): JAX's max_pool
# sends each window's gradient to its first maximum.
conv_g = nnx.Conv(3, 4, (3, 2), strides=(2, 1), padding="SAME", kernel_dilation=(1, 2), rngs=nnx.Rngs(9))
upstream = jax.random.normal(jax.random.key(11), conv_g(xc).shape)
g_model, g_x = nnx.grad(lambda m, x: jnp.sum(m(x) * upstream), argnums=(0, 1))(conv_g, xc)
g_kernel = g_model["kernel"][...]
xt = jnp.round(xc * 2.0) / 2.0
out["gradients"] = {
    "conv": {"kernel": bits(conv_g.kernel[...]), "upstream": bits(upstream),
             "d_kernel": bits(g_kernel), "d_x": bits(g_x)},
    "x_ties": bits(xt),
    "max_pool": bits(jax.grad(lambda x: jnp.sum(nnx.max_pool(jax.nn.relu(x), (2, 2), strides=(2, 2)) * jnp.arange(1.0, 4.0 * 3 * 3 * 2 + 1).reshape(2, 3, 3, 4)[..., :3]))(xt)),
    "max_pool_same": bits(jax.grad(lambda x: jnp.sum(nnx.max_pool(jax.nn.relu(x), (3, 3), strides=(2, 2), padding="SAME")))(xt)),
    "min_pool": bits(jax.grad(lambda x: jnp.sum(nnx.min_pool(x, (2, 2))))(xt)),
    "avg_pool_same": bits(jax.grad(lambda x: jnp.sum(nnx.avg_pool(x, (3, 3), padding="SAME") ** 2))(xt)),
}

# Attention dropout: the layer forks 'dropout' after its projections; two training calls,
# then eval().
mha_drop = nnx.MultiHeadAttention(2, 8, dropout_rate=0.3, rngs=nnx.Rngs(params=0, dropout=5), decode=False)
yd1 = mha_drop(xa, deterministic=False)
yd2 = mha_drop(xa, deterministic=False)
mha_drop.eval()
out["attention_dropout"] = {"y1": bits(yd1), "y2": bits(yd2), "y_eval": bits(mha_drop(xa))}

# Grouped convolution and transposed convolutions.
conv_grouped = nnx.Conv(4, 6, (3, 3), feature_group_count=2, rngs=nnx.Rngs(3))
xg4 = jax.random.normal(jax.random.key(10), (2, 5, 5, 4))
convt_same = nnx.ConvTranspose(3, 2, (3, 3), strides=(2, 2), rngs=nnx.Rngs(4))
convt_valid = nnx.ConvTranspose(3, 4, (2, 3), strides=(2, 1), padding="VALID", rngs=nnx.Rngs(5))
out["conv_more"] = {
    "x4": bits(xg4),
    "grouped": {"kernel": bits(conv_grouped.kernel[...]), "y": bits(conv_grouped(xg4))},
    "transpose_same": {"kernel": bits(convt_same.kernel[...]), "y": bits(convt_same(xc))},
    "transpose_valid": {"kernel": bits(convt_valid.kernel[...]), "y": bits(convt_valid(xc))},
}

# Autoregressive decoding with the cache: three positions one at a time.
mha_dec = nnx.MultiHeadAttention(2, 8, rngs=nnx.Rngs(0), decode=True)
mha_dec.init_cache((2, 4, 8))
steps = [mha_dec(xa[:, i:i + 1, :]) for i in range(3)]
out["attention_decode"] = {
    "steps": [bits(s) for s in steps],
    "cached_key": bits(mha_dec.cached_key[...]),
    "cache_index": int(mha_dec.cache_index[...]),
}

# Orthogonal initialisation and recurrent cells (three steps from the initial carry).
xs_seq = jax.random.normal(jax.random.key(11), (2, 3, 4))
lstm_rngs = nnx.Rngs(0)
lstm = nnx.LSTMCell(4, 5, rngs=lstm_rngs)
carry = lstm.initialize_carry((2, 4), lstm_rngs)
lstm_out = []
for t in range(3):
    carry, y = lstm(carry, xs_seq[:, t])
    lstm_out.append(bits(y))
gru = nnx.GRUCell(4, 5, rngs=nnx.Rngs(1))
h = gru.initialize_carry((2, 4), nnx.Rngs(2))
gru_out = []
for t in range(3):
    h, y = gru(h, xs_seq[:, t])
    gru_out.append(bits(y))
out["recurrent"] = {
    "orthogonal_4x6": bits(jax.nn.initializers.orthogonal()(jax.random.key(0), (4, 6))),
    "orthogonal_7x3": bits(jax.nn.initializers.orthogonal()(jax.random.key(1), (7, 3))),
    "orthogonal_3x3x2": bits(jax.nn.initializers.orthogonal()(jax.random.key(2), (3, 3, 2))),
    "x": bits(xs_seq),
    "lstm_ii": bits(lstm.ii.kernel[...]),
    "lstm_hi": bits(lstm.hi.kernel[...]),
    "lstm_ho": bits(lstm.ho.kernel[...]),
    "lstm_y": lstm_out,
    "lstm_count": int(lstm_rngs.default.count[...]),
    "gru_dense_i": bits(gru.dense_i.kernel[...]),
    "gru_dense_h": bits(gru.dense_h.kernel[...]),
    "gru_y": gru_out,
}

# nnx.RNN over an LSTMCell and a GRUCell: forwards, reversed with seq_lengths and
# keep_order (returning the carry), time-major; the RNN's own 'carry' stream count.
xr = jax.random.normal(jax.random.key(12), (2, 5, 3))
rnn = nnx.RNN(nnx.LSTMCell(3, 4, rngs=nnx.Rngs(0)))
rnn_y = rnn(xr)
rnn_carry, rnn_y2 = rnn(xr, return_carry=True)
lengths = jnp.array([3, 5])
rnn_rev = nnx.RNN(nnx.GRUCell(3, 4, rngs=nnx.Rngs(1)), reverse=True, keep_order=True)
rev_carry, rev_y = rnn_rev(xr, seq_lengths=lengths, return_carry=True)
rnn_tm = nnx.RNN(nnx.GRUCell(3, 4, rngs=nnx.Rngs(1)), time_major=True)
tm_y = rnn_tm(jnp.transpose(xr, (1, 0, 2)))
fwd_carry, fwd_y = nnx.RNN(nnx.GRUCell(3, 4, rngs=nnx.Rngs(1)))(xr, seq_lengths=lengths, return_carry=True)
out["rnn"] = {
    "x": bits(xr),
    "lstm_y": bits(rnn_y),
    "lstm_carry_c": bits(rnn_carry[0]),
    "lstm_carry_h": bits(rnn_carry[1]),
    "lstm_count": int(rnn.rngs.count[...]),
    "reverse_y": bits(rev_y),
    "reverse_carry": bits(rev_carry),
    "time_major_y": bits(tm_y),
    "lengths_carry": bits(fwd_carry),
    "lengths_y": bits(fwd_y),
}

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "layers.json"), "w") as f:
    json.dump(out, f, indent=1)
print("wrote layers.json")
