"""Golden data for `nnx.custom_vjp` (flax 0.12.8, jax 0.10.2): writes custom_vjp.json.

Run from this directory with a Python that has flax installed:
    python custom_vjp.py > custom_vjp.json
The conformance cases in `src/cases/custom_vjp.rs` read the JSON.
"""
import json

import jax
import jax.numpy as jnp
from flax import nnx

out = {}

# Flax's documented example.
class Foo(nnx.Module):
  def __init__(self, x, y):
    self.x = nnx.Param(x)
    self.y = nnx.Param(y)

@nnx.custom_vjp
def f(m):
  return jnp.sin(m.x[...]) * m.y[...]

def f_fwd(m):
  return f(m), (jnp.cos(m.x[...]), jnp.sin(m.x[...]), m)

def f_bwd(res, g):
  input_updates_g, out_g = g
  cos_x, sin_x, m = res
  (m_updates_g,) = input_updates_g
  m_g = jax.tree.map(lambda x: x, m_updates_g)
  m_g['x'][...] = cos_x * out_g * m.y[...]
  m_g['y'][...] = sin_x * out_g
  return (m_g,)

f.defvjp(f_fwd, f_bwd)
m = Foo(x=jnp.array(1.), y=jnp.array(2.))
grads = nnx.grad(f)(m)
out['example'] = {'value': float(f(m)), 'x': float(grads['x'][...]), 'y': float(grads['y'][...])}

# A function that updates its input's state; the backward pass reads the cotangent of the
# update and is deliberately not the true derivative (25, not 23), to show it is used.
class Count(nnx.Variable):
  pass

class Scale(nnx.Module):
  def __init__(self):
    self.w = nnx.Param(jnp.array(2.0))
    self.count = Count(jnp.array(0))

def scaled(m, x):
  m.count[...] += 1
  w = m.w[...]
  m.w[...] = w * 2
  return w * x, (w,)

@nnx.custom_vjp
def g(m, x):
  return scaled(m, x)[0]

def g_bwd(res, cot):
  (w,) = res
  input_updates_g, out_g = cot
  m_upd, x_upd = input_updates_g
  assert x_upd is None
  m_g = jax.tree.map(lambda a: a, m_upd)
  m_g['w'][...] = out_g * 5 + 2 * m_upd['w'][...]
  return (m_g, out_g * w)

g.defvjp(scaled, g_bwd)
s = Scale()

def loss(m, x):
  return g(m, x) + 10 * m.w[...]

gm, gx = nnx.grad(loss, argnums=(0, 1))(s, jnp.array(3.0))
out['updates'] = {
    'w_grad': float(gm['w'][...]),
    'x_grad': float(gx),
    'w_after': float(s.w[...]),
    'count_after': int(s.count[...]),
}
print(json.dumps(out, indent=1, sort_keys=True))
