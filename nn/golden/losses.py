"""Writes losses.json: what optax 0.2.8 and Flax 0.12.8's nnx.metrics compute for the losses and
metrics of nnx-nn, as float32 bit patterns (uint32).

Run from this directory with a venv that has flax==0.12.8 (and its jax and optax):
    python losses.py   # writes losses.json beside this file
"""

import json
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx


def bits(x):
    a = np.asarray(x, dtype=np.float32)
    return {"shape": list(a.shape), "bits": [int(b) for b in a.reshape(-1).view(np.uint32)]}


out = {"versions": {"jax": jax.__version__, "optax": optax.__version__,
                    "flax": __import__("flax").__version__}}

logits = jax.random.normal(jax.random.key(0), (4, 5)) * 3.0
labels = jnp.array([0, 3, 4, 1], dtype=jnp.int32)
soft = jax.nn.softmax(jax.random.normal(jax.random.key(1), (4, 5)))
binary_logits = jax.random.normal(jax.random.key(2), (4, 3)) * 4.0
binary_labels = (jax.random.uniform(jax.random.key(3), (4, 3)) > 0.5).astype(jnp.float32)
pred = jax.random.normal(jax.random.key(4), (6,)) * 2.0
target = jax.random.normal(jax.random.key(5), (6,))

def ce_int(l):
    return optax.softmax_cross_entropy_with_integer_labels(l, labels).mean()

out["losses"] = {
    "logits": bits(logits),
    "labels": [int(v) for v in labels],
    "soft_labels": bits(soft),
    "ce_int": bits(optax.softmax_cross_entropy_with_integer_labels(logits, labels)),
    "ce_int_grad": bits(jax.grad(ce_int)(logits)),
    "ce_soft": bits(optax.softmax_cross_entropy(logits, soft)),
    "ce_one_hot": bits(optax.softmax_cross_entropy(logits, jax.nn.one_hot(labels, 5))),
    "binary_logits": bits(binary_logits),
    "binary_labels": bits(binary_labels),
    "bce": bits(optax.sigmoid_binary_cross_entropy(binary_logits, binary_labels)),
    "pred": bits(pred),
    "target": bits(target),
    "squared_error": bits(optax.squared_error(pred, target)),
    "l2_loss": bits(optax.l2_loss(pred, target)),
    "huber": bits(optax.huber_loss(pred, target, delta=1.0)),
    "huber_grad": bits(jax.grad(lambda p: optax.huber_loss(p, target, delta=0.5).sum())(pred)),
}

# nnx.metrics: the MultiMetric docstring's sequence, plus a masked update and a binary
# Accuracy.
metrics = nnx.MultiMetric(accuracy=nnx.metrics.Accuracy(), loss=nnx.metrics.Average())
m_logits = jax.random.normal(jax.random.key(0), (5, 2))
m_labels = jnp.array([0, 1, 1, 1, 0])
m_logits2 = jax.random.normal(jax.random.key(1), (5, 2))
m_labels2 = jnp.array([0, 1, 1, 1, 1])
metrics.update(logits=m_logits, labels=m_labels, values=jnp.array([1, 2, 3, 4]))
first = {k: float(v) for k, v in metrics.compute().items()}
metrics.update(logits=m_logits2, labels=m_labels2, values=jnp.array([3, 2, 1, 0]))
second = {k: float(v) for k, v in metrics.compute().items()}
avg = nnx.metrics.Average()
avg.update(values=jnp.array([1.0, 2.0, 3.0, 10.0]), mask=jnp.array([1, 1, 0, 1]))
binary = nnx.metrics.Accuracy(threshold=0.5)
binary.update(logits=jnp.array([0.2, 0.7, 0.5, 0.9]), labels=jnp.array([0, 1, 0, 0]))
out["metrics"] = {
    "logits": bits(m_logits), "labels": [int(v) for v in m_labels],
    "logits2": bits(m_logits2), "labels2": [int(v) for v in m_labels2],
    "first": first, "second": second,
    "masked_average": float(avg.compute()),
    "binary_accuracy": float(binary.compute()),
    "paths": sorted("/".join(str(k) for k in path) for path, _ in nnx.to_flat_state(nnx.state(metrics))),
}

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "losses.json"), "w") as f:
    json.dump(out, f, indent=1)
print("wrote losses.json")
