# The Flax NNX / JAX side of the anchor comparison: the workloads of benches/src/anchors.rs.
# A copy of the project's shared anchor script (flax_bench.py), extended to print one
# machine-readable line per workload (RESULT<TAB>key<TAB>seconds) and to measure numpy's
# float32 GEMM, the practical peak the 1024x1024 vmapped GEMM is compared with.
# benches/anchors.sh runs it right after the Rust side and prints the ratio table.
# With --serve it builds and warms up every workload, prints `ready`, then answers each key read
# from standard input with one round of that workload (key<TAB>seconds per call):
# benches/interleave.py alternates these rounds with the Rust side's.
# Run on the same machine as the Rust benches, one after the other:
#   python3 -m venv .venv-flax && .venv-flax/bin/pip install flax==0.12.8 jax==0.10.2
#   .venv-flax/bin/python -W ignore flax_bench.py
# Numbers measured once on the 2-core development machine (AMD EPYC, AVX-512), for orientation only:
#   nnx.vmap guide stateful_vector_dot 1553 us/call; nnx.jit(nnx.vmap(...)) 140 us/call
#   nnx.jit tiny MLP depth 2/16/64: 424 / 2706 / 9365 us/call (jax.jit on pre-split state: 15 / 87 / 293 us)
#   jit(vmap) 1024x1024 @ 1024x1024 + b: 171.6 GFLOP/s; batched 64x(128x256 @ 256x256): 96.7 GFLOP/s
#   numpy (OpenBLAS) f32 GEMM 1024-2048: ~180 GFLOP/s, the practical peak of this machine
#   (e) jit(vmap) MLP fwd b=256 w=256 depth 4: 1.54 ms (87.8 GFLOP/s)
#   (f) jit(vmap(grad)) per-example gradients, same MLP: 154 ms
#   (g) nnx.jit train step (value_and_grad + SGD), same MLP, batch 256: 3.45 ms
#   (h) jit(scan over 16 stacked Linear 256x256 + relu), batch 256: 4.29 ms (125 GFLOP/s)
import sys, time, jax, numpy as np, optax
SERVE = '--serve' in sys.argv
WORKLOADS = {}
def result(key, t): print('RESULT\t%s\t%.9f' % (key, t))
from jax import numpy as jnp, random
from flax import nnx
def bench(fn, n=200):
    fn(); fn()
    ts=[]
    for _ in range(5):
        t=time.perf_counter()
        for _ in range(n): r=fn()
        jax.block_until_ready(r)
        ts.append((time.perf_counter()-t)/n)
    return sorted(ts)[2]
def one_round(fn):
    # Calls fn for at least 0.3 s (and at least three times): seconds per call.
    t=time.perf_counter(); calls=0
    while calls < 3 or time.perf_counter()-t < 0.3:
        r=fn(); calls+=1
    jax.block_until_ready(r)
    return (time.perf_counter()-t)/calls
def measure(key, fn, n, describe):
    # bench(fn, n), its RESULT line and describe(t); under --serve, fn is warmed up and kept.
    if SERVE:
        fn(); fn(); WORKLOADS[key] = fn
        return
    t = bench(fn, n); print(describe(t)); result(key, t)
class Weights(nnx.Module):
  def __init__(self, kernel, bias, count):
    self.kernel, self.bias = nnx.Param(kernel), nnx.Param(bias)
    self.count = nnx.BatchStat(count)
def stateful_vector_dot(weights, x):
  weights.count[...] += 1
  return x @ weights.kernel + weights.bias
w = Weights(random.uniform(random.key(0),(10,2,3)), jnp.zeros((10,3)), jnp.arange(10))
x = random.normal(random.key(1),(10,2))
vf = nnx.vmap(stateful_vector_dot, in_axes=0, out_axes=1)
measure('a', lambda vf=vf: vf(w,x), 200,
        lambda t: "nnx.vmap seed stateful_vector_dot (eager vmap) us/call: %.1f" % (t*1e6))
jf = nnx.jit(nnx.vmap(stateful_vector_dot, in_axes=0, out_axes=1))
measure('b', lambda: jf(w,x), 200, lambda t: "nnx.jit(nnx.vmap) seed us/call: %.1f" % (t*1e6))
# MLP
class MLP(nnx.Module):
  def __init__(self, din, dh, dout, depth, rngs):
    self.layers = nnx.List([nnx.Linear(din if i==0 else dh, dh, rngs=rngs) for i in range(depth)])
    self.out = nnx.Linear(dh, dout, rngs=rngs)
  def __call__(self, x):
    for l in self.layers: x = nnx.relu(l(x))
    return self.out(x)
for depth in (2, 16, 64):
  m = MLP(8, 8, 8, depth, nnx.Rngs(0))
  f = nnx.jit(lambda m, x: m(x))
  xx = jnp.ones((4,8))
  measure('c%d' % depth, lambda f=f, m=m, xx=xx: f(m, xx), 200,
          lambda t: "nnx.jit MLP depth=%d tiny us/call: %.1f" % (depth, t*1e6))
  if not SERVE:
    g = jax.jit(lambda gd, st, x: nnx.merge(gd, st)(x))
    gd, st = nnx.split(m)
    print("  jax.jit pure (split once) us/call: %.1f" % (bench(lambda: g(gd, st, xx))*1e6))
    print("  nnx.split+merge us: %.1f" % (bench(lambda: nnx.merge(*nnx.split(m)), 50)*1e6))
# big vmapped GEMM throughput
B, D = 1024, 1024
W = random.normal(random.key(0), (D, D))
bias = jnp.zeros((D,))
X = random.normal(random.key(1), (B, D))
class Lin(nnx.Module):
  def __init__(self): self.w = nnx.Param(W); self.b = nnx.Param(bias)
lin = Lin()
sa = nnx.StateAxes({nnx.Param: None})
vf = nnx.jit(nnx.vmap(lambda m, x: x @ m.w + m.b, in_axes=(sa, 0)))
measure('d', lambda vf=vf, X=X: vf(lin, X), 20,
        lambda t: "jit(vmap) 1024x1024 @ 1024x1024 + b: %.2f ms, %.1f GFLOP/s" % (t*1e3, 2*B*D*D/t/1e9))
# per-example weights batched gemm
Wb = random.normal(random.key(0), (64, 256, 256)); Xb = random.normal(random.key(1), (64, 128, 256))
class LinB(nnx.Module):
  def __init__(self): self.w = nnx.Param(Wb)
lb = LinB()
vf2 = nnx.jit(nnx.vmap(lambda m, x: x @ m.w, in_axes=(0, 0)))
measure('d_batched', lambda: vf2(lb, Xb), 20,
        lambda t: "jit(vmap) batched 64x(128x256 @ 256x256): %.2f ms, %.1f GFLOP/s" % (t*1e3, 2*64*128*256*256/t/1e9))
# (e) vmapped MLP forward b=256 w=256 depth 4, per-example (vmap over x only)
m = MLP(256, 256, 10, 4, nnx.Rngs(0))
X = random.normal(random.key(1), (256, 256))
sa = nnx.StateAxes({...: None})
f = nnx.jit(nnx.vmap(lambda m, x: m(x), in_axes=(sa, 0)))
fl = 2*256*(256*256*4 + 256*10)
measure('e', lambda f=f, m=m, X=X: f(m, X), 50,
        lambda t: "(e) jit(vmap) MLP fwd b=256 w=256 d=4: %.3f ms, %.1f GFLOP/s" % (t*1e3, fl/t/1e9))
# (f) per-example gradients vmap(grad) b=256 w=256 d=4
def loss(m, x, y): return jnp.mean((m(x) - y)**2)
Y = random.normal(random.key(2), (256, 10))
pg = nnx.jit(nnx.vmap(nnx.grad(loss), in_axes=(sa, 0, 0)))
measure('f', lambda m=m, X=X: pg(m, X, Y), 20,
        lambda t: "(f) jit(vmap(grad)) per-example grads b=256 w=256 d=4: %.3f ms" % (t*1e3))
# (g) train step jit(value_and_grad) + SGD update, batch 256
opt = nnx.Optimizer(m, optax.sgd(1e-3), wrt=nnx.Param)
@nnx.jit
def step(m, opt, x, y):
  l, g = nnx.value_and_grad(lambda m: loss(m, x, y))(m)
  opt.update(m, g)
  return l
measure('g', lambda m=m, X=X: step(m, opt, X, Y), 50,
        lambda t: "(g) nnx.jit train step (value_and_grad + sgd) b=256 w=256 d=4: %.3f ms" % (t*1e3))
# (h) scan over layers: 16 stacked Linear(256,256) created with vmap, applied with scan, b=256
class Block(nnx.Module):
  def __init__(self, rngs): self.lin = nnx.Linear(256, 256, rngs=rngs)
  def __call__(self, x): return nnx.relu(self.lin(x))
@nnx.split_rngs(splits=16)
@nnx.vmap(in_axes=(0,), out_axes=0)
def make(rngs): return Block(rngs)
stack = make(nnx.Rngs(0))
@nnx.jit
def fwd(stack, x):
  @nnx.scan(in_axes=(0, nnx.Carry), out_axes=nnx.Carry)
  def body(b, x): return b(x)
  return body(stack, x)
measure('h', lambda X=X: fwd(stack, X), 50,
        lambda t: "(h) jit(scan over 16 layers) b=256 w=256: %.3f ms, %.1f GFLOP/s" % (t*1e3, 2*256*256*256*16/t/1e9))
# (i) train step through the same scan: value_and_grad of the MSE + SGD, batch 256
Yi = random.normal(random.key(3), (256, 256))
opt_i = nnx.Optimizer(stack, optax.sgd(1e-3), wrt=nnx.Param)
@nnx.jit
def step_i(stack, opt, x, y):
  def loss_i(stack):
    @nnx.scan(in_axes=(0, nnx.Carry), out_axes=nnx.Carry)
    def body(b, x): return b(x)
    return jnp.mean((body(stack, x) - y)**2)
  l, g = nnx.value_and_grad(loss_i)(stack)
  opt.update(stack, g)
  return l
measure('i', lambda X=X: step_i(stack, opt_i, X, Yi), 50,
        lambda t: "(i) nnx.jit train step through scan over 16 layers b=256 w=256: %.3f ms" % (t*1e3))
# (j), (k): the CNN of Flax NNX's MNIST tutorial, batch 64 of 28x28x1 (benches/src/cnn.rs)
from functools import partial
class CNN(nnx.Module):
  def __init__(self, *, rngs):
    self.conv1 = nnx.Conv(1, 32, kernel_size=(3, 3), rngs=rngs)
    self.conv2 = nnx.Conv(32, 64, kernel_size=(3, 3), rngs=rngs)
    self.avg_pool = partial(nnx.avg_pool, window_shape=(2, 2), strides=(2, 2))
    self.linear1 = nnx.Linear(3136, 256, rngs=rngs)
    self.linear2 = nnx.Linear(256, 10, rngs=rngs)
  def __call__(self, x):
    x = self.avg_pool(nnx.relu(self.conv1(x)))
    x = self.avg_pool(nnx.relu(self.conv2(x)))
    x = x.reshape(x.shape[0], -1)
    x = nnx.relu(self.linear1(x))
    return self.linear2(x)
cnn = CNN(rngs=nnx.Rngs(0))
images = random.normal(random.key(4), (64, 28, 28, 1))
labels = jnp.array([i * 7 % 10 for i in range(64)], dtype=jnp.int32)
cnn_forward = nnx.jit(lambda m, x: m(x))
measure('j', lambda: cnn_forward(cnn, images), 20,
        lambda t: "(j) jit CNN forward (Flax MNIST tutorial CNN) b=64 28x28x1: %.3f ms" % (t*1e3))
cnn_opt = nnx.Optimizer(cnn, optax.sgd(1e-3), wrt=nnx.Param)
@nnx.jit
def cnn_step(m, opt, x, y):
  def loss_fn(m):
    return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()
  l, g = nnx.value_and_grad(loss_fn)(m)
  opt.update(m, g)
  return l
measure('k', lambda: cnn_step(cnn, cnn_opt, images, labels), 20,
        lambda t: "(k) jit CNN train step (value_and_grad + Optimizer sgd) b=64: %.3f ms" % (t*1e3))
# numpy (OpenBLAS) float32 GEMM at the size of workload d: the practical peak
A = np.asarray(random.normal(random.key(0), (1024, 1024)), dtype=np.float32)
Bm = np.asarray(random.normal(random.key(1), (1024, 1024)), dtype=np.float32)
measure('numpy_gemm', lambda: A @ Bm, 20,
        lambda t: "numpy f32 GEMM 1024x1024: %.2f ms, %.1f GFLOP/s" % (t*1e3, 2*1024**3/t/1e9))
if SERVE:
  print('ready', flush=True)
  for line in sys.stdin:
    key = line.strip()
    fn = WORKLOADS.get(key)
    print('%s\t%s' % (key, '%.9f' % one_round(fn) if fn else 'unknown'), flush=True)
