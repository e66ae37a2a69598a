"""Golden data for lifted control flow and eval_shape (flax 0.12.8, jax 0.10.2): writes
control.json.

Run from this directory with a Python that has flax installed:
    python control.py > control.json
The conformance cases in `src/cases/control.rs` read the JSON.
"""
import json

import jax
import jax.numpy as jnp
from flax import nnx

out = {}


def err(fn):
  try:
    fn()
    return None
  except Exception as e:  # noqa: BLE001
    return type(e).__name__ + ': ' + str(e).split('\n')[0]


class Count(nnx.Variable):
  pass


class M(nnx.Module):
  def __init__(self):
    self.w = nnx.Param(jnp.array([1.0, 2.0, 3.0]))
    self.count = Count(jnp.array(0))


# cond: the taken branch's state update propagates.
def run_cond(pred):
  m = M()
  def tf(m, x):
    m.count[...] += 1
    return (m.w[...] * x).sum()
  def ff(m, x):
    m.count[...] -= 1
    return (m.w[...] - x).sum()
  y = nnx.cond(pred, tf, ff, m, jnp.array(2.0))
  return {'y': float(y), 'count': int(m.count[...])}

out['cond'] = {'true': run_cond(True), 'false': run_cond(jnp.array(False))}


# a structure change in one branch only
def cond_struct():
  m = M()
  def tf(m, x):
    m.extra = nnx.Param(jnp.array(1.0))
    return x + 1
  def ff(m, x):
    return x - 1
  nnx.cond(jnp.array(True), tf, ff, m, jnp.array(1.0))

out['cond_structure_error'] = err(cond_struct)


# switch with clamping
def run_switch(i):
  m = M()
  def b0(m):
    return m.w[...].sum()
  def b1(m):
    m.count[...] = 5
    return m.w[...].min()
  def b2(m):
    m.count[...] = 7
    return m.w[...].max()
  y = nnx.switch(i, [b0, b1, b2], m)
  return {'y': float(y), 'count': int(m.count[...])}

out['switch'] = {str(i): run_switch(jnp.array(i)) for i in [-1, 0, 1, 2, 5]}


# while_loop: the loop value keeps its objects; state updated in place.
def run_while():
  m = M()
  def body(s):
    m, i = s
    m.count[...] += 1
    m.w[...] = m.w[...] * 2.0
    return m, i + 1
  m2, i = nnx.while_loop(lambda s: s[1] < 3, body, (m, jnp.array(0)))
  return {'same': m2 is m, 'count': int(m.count[...]), 'i': int(i), 'w': m.w[...].tolist()}

out['while'] = run_while()


def while_struct():
  m = M()
  def body(s):
    m, i = s
    m.x = Count(jnp.array(1))
    return m, i + 1
  nnx.while_loop(lambda s: s[1] < 3, body, (m, jnp.array(0)))

out['while_structure_error'] = err(while_struct)


# fori_loop
def run_fori():
  m = M()
  def body(i, m):
    m.count[...] += i
    m.w[...] = m.w[...] + i
    return m
  o = nnx.fori_loop(0, 4, body, m)
  return {'same': o is m, 'count': int(m.count[...]), 'w': m.w[...].tolist()}

out['fori'] = run_fori()


# grad through cond (traced predicate) and fori_loop (static bounds, a scan)
class Lin(nnx.Module):
  def __init__(self):
    self.w = nnx.Param(jnp.array([0.5, -1.5, 2.0]))

def loss_cond(m, x):
  return nnx.cond((m.w[...] * x).sum() > 0,
                  lambda m, x: jnp.sin(m.w[...] * x).sum(),
                  lambda m, x: (m.w[...] ** 2 * x).sum(), m, x)

x = jnp.array([1.0, 2.0, 3.0])
g1 = nnx.grad(loss_cond)(Lin(), x)
g2 = nnx.grad(loss_cond)(Lin(), -x)
out['grad_cond'] = {'pos': g1['w'][...].tolist(), 'neg': g2['w'][...].tolist(),
                    'value_pos': float(loss_cond(Lin(), x)), 'value_neg': float(loss_cond(Lin(), -x))}

def loss_fori(m, x):
  def body(i, x):
    return jnp.tanh(m.w[...] * x + i)
  return nnx.fori_loop(0, 3, body, x).sum()

gf = nnx.grad(loss_fori)(Lin(), x)
out['grad_fori'] = {'value': float(loss_fori(Lin(), x)), 'w': gf['w'][...].tolist()}

# jvp through while_loop (forward mode works) and grad through it (an error)
def f_while(x):
  def body(s):
    i, y = s
    return i + 1, jnp.sin(y) * 1.5
  return jax.lax.while_loop(lambda s: s[0] < 4, body, (0, x))[1]

p, t = jax.jvp(f_while, (jnp.array(0.7),), (jnp.array(1.0),))
out['jvp_while'] = {'primal': float(p), 'tangent': float(t)}
out['grad_while_error'] = err(lambda: jax.grad(f_while)(jnp.array(0.7)))


# vmap: a batched predicate selects per lane; state that a branch updates must be mapped
class V(nnx.Module):
  def __init__(self):
    self.w = nnx.Param(jnp.array([1.0, 2.0]))
    self.count = Count(jnp.array(0))

def vmapped(update):
  m = V()
  def tf(m, x):
    if update:
      m.count[...] += 1
    return (m.w[...] * x).sum()
  def ff(m, x):
    return (m.w[...] + x).sum()
  @nnx.vmap(in_axes=(None, 0))
  def f(m, x):
    return nnx.cond(x.sum() > 0, tf, ff, m, x)
  xs = jnp.array([[1.0, 1.0], [-1.0, -2.0], [3.0, 0.0]])
  return f(m, xs).tolist()

out['vmap_cond'] = vmapped(False)
out['vmap_cond_broadcast_update_error'] = err(lambda: vmapped(True))

# while_loop under vmap: a different number of iterations per lane
def vwhile():
  def f(x):
    def body(s):
      i, y = s
      return i + 1, y * 2.0
    return nnx.while_loop(lambda s: s[1] < 10.0, body, (jnp.array(0), x))
  i, y = jax.vmap(f)(jnp.array([1.0, 3.0, 20.0]))
  return {'i': i.tolist(), 'y': y.tolist()}

out['vmap_while'] = vwhile()

# while_loop under vmap reading a broadcast model it does not change
class W(nnx.Module):
  def __init__(self):
    self.w = nnx.Param(jnp.array(2.0))

def vwhile_model():
  m = W()
  @nnx.vmap(in_axes=(None, 0))
  def f(m, x):
    def body(s):
      m, y = s
      return m, y * m.w[...]
    return nnx.while_loop(lambda s: s[1] < 10.0, body, (m, x))[1]
  return f(m, jnp.array([1.0, 3.0, 20.0])).tolist()

out['vmap_while_broadcast_model'] = vwhile_model()


# scan details: a whole-Carry input takes one argument; transform_metadata as on vmap
def carry_two_args():
  @nnx.scan(in_axes=nnx.Carry, out_axes=nnx.Carry, length=3)
  def f(c, x):
    return c
  f(jnp.ones(2), jnp.ones(2))

out['scan_carry_two_arguments_error'] = err(carry_two_args)



class Layer(nnx.Module):
  def __init__(self, array, out_sharding):
    self.w = nnx.Param(array, out_sharding=out_sharding)


def scan_metadata():
  seen = {}
  @nnx.scan(in_axes=(0, nnx.Carry), out_axes=nnx.Carry, transform_metadata={nnx.PARTITION_NAME: 'layers'})
  def apply(m, c):
    seen['shape'] = list(m.w.shape)
    seen['sharding'] = list(m.w.out_sharding)
    return c @ m.w[...]
  @nnx.scan(in_axes=nnx.Carry, out_axes=(nnx.Carry, 0), length=3, transform_metadata={nnx.PARTITION_NAME: 'layers'})
  def create(c):
    return c, Layer(jnp.ones((2, 2)), out_sharding=('a', None))
  with nnx.use_eager_sharding(False):
    m = Layer(jnp.ones((3, 2, 2)), out_sharding=('layers', 'a', None))
    apply(m, jnp.ones(2))
    _, made = create(jnp.ones(2))
  return {'inner_shape': seen['shape'], 'inner_sharding': seen['sharding'],
          'outer_sharding': list(m.w.out_sharding), 'created_shape': list(made.w.shape),
          'created_sharding': list(made.w.out_sharding)}

out['scan_metadata'] = scan_metadata()

# numbers assigned inside jit to a Dict entry or an attribute stay Python numbers
class Holder(nnx.Module):
  def __init__(self):
    self.d = nnx.Dict(a=1)
    self.n = 1


def numbers_in_jit():
  h = Holder()
  @nnx.jit
  def f(h):
    h.d['b'] = 3
    h.d['a'] = 5
    h.n = 7
  f(h)
  return {'dict_new': repr(h.d['b']), 'dict_existing': repr(h.d['a']), 'attribute': repr(h.n)}

out['numbers_in_jit'] = numbers_in_jit()

# graph_updates=False: Variables updated in place, structure changes dropped, outputs new
def graph_updates_false():
  res = {}
  m = M()
  @nnx.jit(graph_updates=False)
  def f(m, x):
    m.count[...] += 1
    m.extra = 3
    m.new = nnx.Param(jnp.zeros(1))
    w0 = m.w
    m.w = nnx.Param(jnp.zeros(3))
    return (w0[...] * x).sum()
  w_before = m.w
  res['y'] = float(f(m, 2.0))
  res['count'] = int(m.count[...])
  res['extra'] = hasattr(m, 'extra') or hasattr(m, 'new')
  res['w_same'] = m.w is w_before
  res['w'] = m.w[...].tolist()
  @nnx.jit(graph_updates=False)
  def g(m):
    return m
  res['return_input_error'] = err(lambda: g(M()))
  @nnx.jit(graph_updates=False)
  def h(m):
    return nnx.Param(m.w[...] * 2)
  m = M()
  p = h(m)
  res['new_variable'] = [type(p).__name__, p[...].tolist(), p is m.w]
  @nnx.vmap(in_axes=(None, 0), graph_updates=False)
  def v(m, x):
    return (m.w[...] * x).sum()
  res['vmap'] = v(M(), jnp.ones((2, 3))).tolist()
  @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0), graph_updates=False)
  def s(c, x):
    c.count[...] += 1
    return c, (c.w[...] * x).sum()
  m = M()
  m2, ys = s(m, jnp.ones((3,)))
  res['scan'] = {'count': int(m.count[...]), 'same_object': m2 is m, 'same_w': m2.w is m.w,
                 'extra': hasattr(m, 'extra'), 'ys': ys.tolist()}
  return res

out['graph_updates_false'] = graph_updates_false()

# grad(graph_updates=False), Flax's tree mode: every Variable of a differentiated argument
# is differentiated; updates in place, structure changes dropped; its own errors.
class F(nnx.Module):
  def __init__(self):
    self.w = nnx.Param(jnp.array([1.0, 2.0, 3.0]))
    self.s = nnx.BatchStat(jnp.array([0.5]))

def grad_graph_updates_false():
  res = {}
  def loss(m, x):
    m.s[...] = m.s[...] + 1.0
    m.extra = nnx.Param(jnp.zeros(1))
    w0 = m.w
    m.w = nnx.Param(w0[...] * 10)
    return (w0[...] * x).sum() + (m.s[...] * m.s[...]).sum()
  m = F()
  w_before = m.w
  value, g = nnx.value_and_grad(loss, graph_updates=False)(m, 2.0)
  res['value'] = float(value)
  res['grads'] = {k: v[...].tolist() for k, v in nnx.state(g).flat_state()
                  for k in ['.'.join(map(str, k))]}
  res['s'] = m.s[...].tolist()
  res['w'] = m.w[...].tolist()
  res['w_same'] = m.w is w_before
  res['extra'] = hasattr(m, 'extra')
  res['int_error'] = err(lambda: nnx.grad(lambda m: m.w[...].sum(), graph_updates=False)(M()))
  res['diffstate_error'] = err(lambda: nnx.grad(
      lambda m: m.w[...].sum(), argnums=nnx.DiffState(0, nnx.Param), graph_updates=False)(F()))
  captured = nnx.Param(jnp.array([1.0]))
  res['aux_captured_error'] = err(lambda: nnx.grad(
      lambda m: (m.w[...].sum(), captured), has_aux=True, graph_updates=False)(F()))
  res['aux_input_error'] = err(lambda: nnx.grad(
      lambda m: (m.w[...].sum(), m.w), has_aux=True, graph_updates=False)(F()))
  m = F()
  _, aux = nnx.grad(lambda m: (m.w[...].sum(), m.w), has_aux=True)(m)
  res['aux_input_default_same'] = aux is m.w
  res['jit_captured_error'] = err(lambda: nnx.jit(lambda x: captured, graph_updates=False)(1.0))
  res['jit_captured_default_error'] = err(lambda: nnx.jit(lambda x: captured)(1.0))
  return res

out['grad_graph_updates_false'] = grad_graph_updates_false()

# scan: a new bare Variable as the carry is accepted; a new Module is an error
def scan_new_variable_carry():
  v = nnx.Param(jnp.zeros(2))
  @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0))
  def f(c, x):
    return nnx.Param(c[...] + x), x.sum()
  c2, _ = f(v, jnp.ones((3, 2)))
  def module_carry():
    m = M()
    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0))
    def g(c, x):
      return M(), x.sum()
    g(m, jnp.ones((3, 2)))
  return {'new': c2[...].tolist(), 'input': v[...].tolist(), 'same': c2 is v,
          'new_module_error': err(module_carry)}

out['scan_new_variable_carry'] = scan_new_variable_carry()

# eval_shape: abstract outputs, nothing propagates to the arguments
def run_eval_shape():
  m = M()
  def f(m, x):
    m.count[...] = m.count[...] + jnp.ones((), jnp.int32)
    m.extra = nnx.Param(x * 2)
    return m, (m.w[...] * x).sum()
  m2, y = nnx.eval_shape(f, m, jnp.ones((3,)))
  return {'y': repr(y), 'same': m2 is m, 'count': int(m.count[...]),
          'has_extra': hasattr(m, 'extra'), 'repr': repr(m2)}

out['eval_shape'] = run_eval_shape()

print(json.dumps(out, indent=1, sort_keys=True))
