# The Flax NNX / JAX side of `benches/benches/transforms.rs`: per-call overhead of the lifted
# transforms on small workloads, where the cost is the transform machinery, not arithmetic.
# The first part of `anchors/flax_bench.py` (the project's shared anchor script), extended with
# the depths and the large model the Rust benches measure. Run it right after the Rust benches,
# on the same machine:
#   python3 -m venv .venv-flax && .venv-flax/bin/pip install flax==0.12.8 jax==0.10.2
#   .venv-flax/bin/python -W ignore benches/flax/transforms_overhead.py
import time, jax
from jax import numpy as jnp, random
from flax import nnx

def bench(fn, n=200):
    fn(); fn()
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n): r = fn()
        jax.block_until_ready(r)
        ts.append((time.perf_counter() - t) / n)
    return sorted(ts)[2]

class Weights(nnx.Module):
  def __init__(self, kernel, bias, count):
    self.kernel, self.bias = nnx.Param(kernel), nnx.Param(bias)
    self.count = nnx.BatchStat(count)

def stateful_vector_dot(weights, x):
  weights.count[...] += 1
  return x @ weights.kernel + weights.bias

w = Weights(random.uniform(random.key(0), (10, 2, 3)), jnp.zeros((10, 3)), jnp.arange(10))
x = random.normal(random.key(1), (10, 2))
vf = nnx.vmap(stateful_vector_dot, in_axes=0, out_axes=1)
print("nnx.vmap guide stateful_vector_dot (eager) us/call: %.1f" % (bench(lambda: vf(w, x)) * 1e6))
jf = nnx.jit(nnx.vmap(stateful_vector_dot, in_axes=0, out_axes=1))
print("nnx.jit(nnx.vmap) guide stateful_vector_dot us/call: %.1f" % (bench(lambda: jf(w, x)) * 1e6))

class MLP(nnx.Module):
  def __init__(self, depth, rngs):
    self.layers = nnx.List([nnx.Linear(8, 8, rngs=rngs) for _ in range(depth)])
  def __call__(self, x):
    for l in self.layers: x = nnx.relu(l(x))
    return x.sum()

for depth in (2, 16, 64, 256):
  m = MLP(depth, nnx.Rngs(0))
  f = nnx.jit(lambda m, x: m(x))
  xx = jnp.ones((4, 8))
  n = 200 if depth <= 64 else 50
  print("nnx.jit tiny MLP depth=%d us/call: %.1f" % (depth, bench(lambda: f(m, xx), n) * 1e6))
  g = jax.jit(lambda gd, st, x: nnx.merge(gd, st)(x))
  gd, st = nnx.split(m)
  print("  jax.jit on pre-split state us/call: %.1f" % (bench(lambda: g(gd, st, xx), n) * 1e6))
  print("  nnx.split + nnx.merge us: %.1f" % (bench(lambda: nnx.merge(*nnx.split(m)), 20) * 1e6))

class Many(nnx.Module):
  def __init__(self, n):
    self.params = nnx.List([nnx.Param(jnp.full((1,), float(i))) for i in range(n)])

# Building 100,000 Params takes about a minute in Flax and each call seconds: opt in with
# FLAX_BIG=1 (the count can be given, e.g. FLAX_BIG=10000).
import os
if os.environ.get("FLAX_BIG"):
  n = int(os.environ["FLAX_BIG"]) if os.environ["FLAX_BIG"] != "1" else 100_000
  big = Many(n)
  h = nnx.jit(lambda m: m.params[0][...].sum())
  print("nnx.jit over %d small Params ms/call: %.1f" % (n, bench(lambda: h(big), 3) * 1e3))
