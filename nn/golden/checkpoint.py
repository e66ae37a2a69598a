"""Writes the checkpoint interop files: `flax_mlp.safetensors` (a Flax model's `nnx.state(model,
nnx.Param)` with Flax's flat paths as keys, written by Python's safetensors) with
`checkpoint.json` (an input and the model's output on it), and `interop.safetensors` (fixed
arrays Python writes, which the Rust writer must reproduce byte for byte).

Run from this directory with a venv that has flax==0.12.8 and safetensors==0.8.0:
    python checkpoint.py
"""

import json
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import numpy as np
from flax import nnx
from safetensors.numpy import save_file

here = os.path.dirname(os.path.abspath(__file__))


def bits(x):
    a = np.asarray(x, dtype=np.float32)
    return {"shape": list(a.shape), "bits": [int(b) for b in a.reshape(-1).view(np.uint32)]}


class Mlp(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(3, 4, rngs=rngs)
        self.out = nnx.Linear(4, 2, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x)))


model = Mlp(nnx.Rngs(42))
flat = {"/".join(str(k) for k in path): np.asarray(v[...])
        for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
save_file(flat, os.path.join(here, "flax_mlp.safetensors"))
x = jax.random.normal(jax.random.key(7), (5, 3))
with open(os.path.join(here, "checkpoint.json"), "w") as f:
    json.dump({"x": bits(x), "y": bits(model(x)), "keys": sorted(flat)}, f, indent=1)

save_file(
    {
        "layers/0/kernel": (np.arange(6, dtype=np.float32).reshape(2, 3) / 4),
        "count": np.array([1, -2, 3], dtype=np.int32),
        "flags": np.array([True, False]),
        "seen": np.array([7], dtype=np.uint32),
    },
    os.path.join(here, "interop.safetensors"),
)
print("wrote flax_mlp.safetensors, checkpoint.json, interop.safetensors")
