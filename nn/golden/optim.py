"""Writes optim.json: what optax 0.2.8 computes for the optimizers and schedules of nnx-nn —
parameters after each of five steps on fixed gradients, and schedule values — as float32 bit
patterns (uint32).

Run from this directory with a venv that has flax==0.12.8 (and its jax and optax):
    python optim.py   # writes optim.json beside this file
"""

import json
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import optax


def bits(x):
    a = np.asarray(x, dtype=np.float32)
    return {"shape": list(a.shape), "bits": [int(b) for b in a.reshape(-1).view(np.uint32)]}


params0 = {
    "a": jax.random.normal(jax.random.key(0), (3, 2)),
    "b": jax.random.normal(jax.random.key(1), (2,)),
}
grads = [
    {"a": jax.random.normal(jax.random.key(10 + t), (3, 2)) * (1.0 + t),
     "b": jax.random.normal(jax.random.key(20 + t), (2,)) * 0.5}
    for t in range(5)
]

schedules = {
    "warmup_cosine": optax.warmup_cosine_decay_schedule(0.0, 1e-2, 2, 5, end_value=1e-3),
    "exponential_staircase": optax.exponential_decay(1e-2, 2, 0.5, staircase=True),
    "exponential_begin_end": optax.exponential_decay(1e-2, 3, 0.5, transition_begin=1, end_value=4e-3),
    "linear": optax.linear_schedule(1e-2, 0.0, 4),
    "cosine": optax.cosine_decay_schedule(1e-2, 4, alpha=0.1),
    "piecewise": optax.piecewise_constant_schedule(1e-2, {2: 0.5, 4: 0.1}),
}

optimizers = {
    "sgd": optax.sgd(0.1),
    "sgd_momentum": optax.sgd(0.1, momentum=0.9),
    "sgd_nesterov": optax.sgd(0.1, momentum=0.9, nesterov=True),
    "adam": optax.adam(1e-2),
    "adamw": optax.adamw(1e-2, weight_decay=0.1),
    "adamw_masked": optax.adamw(1e-2, weight_decay=0.1, mask={"a": True, "b": False}),
    "rmsprop": optax.rmsprop(1e-2),
    "rmsprop_momentum": optax.rmsprop(1e-2, momentum=0.9),
    "adagrad": optax.adagrad(0.1),
    "lion": optax.lion(1e-3, weight_decay=1e-2),
    "clip_adam": optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2)),
    "adam_warmup_cosine": optax.adam(schedules["warmup_cosine"]),
    "sgd_piecewise": optax.sgd(schedules["piecewise"]),
}

out = {
    "versions": {"jax": jax.__version__, "optax": optax.__version__},
    "params": {k: bits(v) for k, v in params0.items()},
    "grads": [{k: bits(v) for k, v in g.items()} for g in grads],
    "schedules": {name: [float(np.float32(s(jnp.int32(c)))) for c in range(9)]
                  for name, s in schedules.items()},
    "steps": {},
}
for name, tx in optimizers.items():
    params = params0
    state = tx.init(params)
    history = []
    for g in grads:
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        history.append({k: bits(v) for k, v in params.items()})
    out["steps"][name] = history

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim.json"), "w") as f:
    json.dump(out, f, indent=1)
print("wrote optim.json")
