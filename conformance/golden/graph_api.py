"""Golden data for the graph API (flax 0.12.8, jax 0.10.2): writes graph_api.json.

Run from this directory with a Python that has flax installed:
    python graph_api.py > graph_api.json
The conformance case `graph_api_matches_flax` in `src/cases/graph_api.rs` reads the JSON.
Flax's own bookkeeping attributes (`_pytree__nodes`, `_pytree__state`, a List's `_length`)
are left out of `iter_graph`'s paths: they are implementation details with no counterpart.
"""
import json

import jax
import jax.numpy as jnp
from flax import nnx


class Sub(nnx.Module):
  def __init__(self):
    self.w = nnx.Param(jnp.ones(2))
    self.n = 3


class M(nnx.Module):
  def __init__(self):
    s = Sub()
    self.b = s
    self.a = s
    self.v = nnx.BatchStat(jnp.zeros(1))
    self.lst = nnx.List([nnx.Param(jnp.ones(1)), 5])
    self.i = nnx.Intermediate(jnp.ones(3))


def slashed(path):
  return '/'.join(str(k) for k in path)


internal = ('_pytree__nodes', '_pytree__state', '_length')
out = {}
m = M()
out['iter_graph'] = [[slashed(p), type(v).__name__] for p, v in nnx.iter_graph(m)
                     if not any(k in internal for k in p)]
out['find_duplicates'] = [[slashed(p) for p in d] for d in nnx.find_duplicates(m)]
pure = nnx.to_pure_dict(nnx.state(m))
out['pure_dict'] = {slashed(p): list(v.shape)
                    for p, v in jax.tree_util.tree_flatten_with_path(pure)[0]
                    for p in [tuple(getattr(k, 'key', getattr(k, 'idx', None)) for k in p)]}
popped = nnx.pop(m, nnx.Intermediate)
out['pop'] = {'popped': sorted(slashed(p) for p, _ in nnx.to_flat_state(popped)),
              'left': sorted(slashed(p) for p, _ in nnx.to_flat_state(nnx.state(m)))}


def double(path, node):
  if isinstance(node, nnx.Param):
    return nnx.Param(node[...] * 2)
  return node


m = M()
m2 = nnx.recursive_map(double, m)
out['recursive_map'] = {'a_w': m2.a.w[...].tolist(), 'shared': m2.a is m2.b,
                        'same_root': m2 is m, 'original_a_w': m.a.w[...].tolist(),
                        'lst_0': m2.lst[0][...].tolist()}


# Rngs: reseed (scalars_only, match_shape) and split with a mapping
class R(nnx.Module):
  def __init__(self):
    self.rngs = nnx.Rngs(params=0, dropout=1)


def data(key):
  return jax.random.key_data(key).tolist()


r = R()
r.rngs.dropout()
r.rngs.dropout()
nnx.reseed(r, dropout=42)
out['reseed'] = {'key': data(r.rngs.dropout.key[...]), 'count': int(r.rngs.dropout.count[...]),
                 'params_count': int(r.rngs.params.count[...])}
r = R()
nnx.split_rngs(r, splits=3)
try:
  nnx.reseed(r, dropout=3)
  out['reseed_split_error'] = None
except ValueError as e:
  out['reseed_split_error'] = str(e).split('\n')[0]
nnx.reseed(r, policy='match_shape', dropout=3)
out['reseed_match_shape'] = {'key': data(r.rngs.dropout.key[...]),
                             'count': r.rngs.dropout.count[...].tolist()}


# the functional style: transforms over (graphdef, state) with merge inside
class Count(nnx.Variable):
  pass


class Lin(nnx.Module):
  def __init__(self):
    self.w = nnx.Param(jnp.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]]))
    self.count = Count(jnp.array(0))

  def __call__(self, x):
    self.count[...] += 1
    return jnp.tanh(x @ self.w[...])


graphdef, state = nnx.split(Lin())
x = jnp.array([[0.5, -1.0], [2.0, 0.25]])


@nnx.jit
def forward(graphdef, state, x):
  m = nnx.merge(graphdef, state)
  y = m(x)
  return y, nnx.state(m)


y, new_state = forward(graphdef, state, x)
params, rest = nnx.split_state(state, nnx.Param, ...)


def loss(params, rest, x):
  m = nnx.merge(graphdef, params, rest)
  return m(x).sum()


g = nnx.grad(loss)(params, rest, x)
out['functional'] = {'y': y.tolist(), 'count_out': int(new_state['count'][...]),
                     'count_state': int(state['count'][...]), 'grad_w': g['w'][...].tolist()}
# StateAxes from a State whose leaves are axes (nnx.StateAxes(state)), and map_prefix
class Stacked(nnx.Module):
  def __init__(self):
    self.w = nnx.Param(jnp.arange(6.0).reshape(3, 2))
    self.b = nnx.Param(jnp.array([1.0, -1.0, 0.5]))
    self.scale = Count(jnp.array(2.0))


axes = nnx.StateAxes(nnx.State({'w': 0, 'b': 0, 'scale': None}))


@nnx.vmap(in_axes=(axes, 0))
def per_lane(m, x):
  return (m.w[...] * x).sum() * m.scale[...] + m.b[...]


sm = Stacked()
out['state_axes_from_state'] = {
    'y': per_lane(sm, jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])).tolist(),
    'map_prefix_b': axes.map_prefix(('b',), sm.b),
    'map_prefix_scale': axes.map_prefix(('scale',), sm.scale),
}
# a dict-shaped axis prefix on a dict argument
@nnx.vmap(in_axes=({'a': 0, 'b': None},))
def dict_lanes(d):
  return (d['a'] * d['b']).sum()


out['dict_prefix'] = dict_lanes({'a': jnp.arange(6.0).reshape(3, 2),
                                 'b': jnp.array([1.0, -2.0])}).tolist()
s = nnx.Rngs(params=1, dropout=2, noise=3).split({'params': 5, 'dropout': None, ...: (2, 5)})
out['split_mapping'] = {name: list(getattr(s, name).key.shape) for name in ['params', 'dropout', 'noise']}


# plain dicts and tuples (pytrees, no identity): a dict given twice is two dicts holding the
# same Variable; structure changes inside stay inside; grad differentiates them whole.
def plain_containers():
  res = {}
  v = nnx.Param(jnp.array([1.0, 2.0]))
  d = {'a': v, 'b': jnp.array([3.0])}

  @nnx.jit
  def f(x, y):
    same = {'same_dict': x is y, 'same_var': x['a'] is y['a']}
    x['a'][...] = x['a'][...] + 1
    x['c'] = jnp.array(5.0)
    return same, x['b'] * 2
  same, b2 = f(d, d)
  res['twice'] = {'same_dict': bool(same['same_dict']), 'same_var': bool(same['same_var']),
                  'keys': sorted(d.keys()), 'v': v[...].tolist(), 'b': d['b'].tolist(),
                  'b2': b2.tolist()}
  out_d = nnx.jit(lambda x: x)(d)
  res['returned'] = {'type': type(out_d).__name__, 'same_dict': out_d is d,
                     'same_var': out_d['a'] is v}
  w = nnx.Param(jnp.ones((3, 2)))

  @nnx.vmap(in_axes=({'w': 0, 's': None},))
  def lanes(x):
    x['w'][...] = x['w'][...] * 2
    return (x['w'][...] * x['s']).sum()
  res['vmap'] = {'y': lanes({'w': w, 's': jnp.array([1.0, 2.0])}).tolist(),
                 'w': w[...].tolist()}

  def loss(x):
    return (x['a'][...] * x['b']).sum() + x['c'][...].sum()
  p = nnx.Param(jnp.array([1.0, 2.0]))
  bs = nnx.BatchStat(jnp.array([1.0]))
  g = nnx.grad(loss)({'a': p, 'b': jnp.array([3.0]), 'c': bs})
  res['grad_plain'] = {'a': [type(g['a']).__name__, g['a'][...].tolist()],
                       'b': g['b'].tolist(), 'c': [type(g['c']).__name__, g['c'][...].tolist()]}
  g = nnx.grad(loss)(nnx.Dict(a=p, b=jnp.array([3.0]), c=bs))
  res['grad_dict'] = sorted('/'.join(map(str, k)) for k, _ in g.flat_state())
  g = nnx.grad(lambda t: (t[0]['a'][...] * t[1]).sum())(({'a': p}, jnp.array([2.0])))
  res['grad_tuple'] = {'a': g[0]['a'][...].tolist(), 'x': g[1].tolist()}
  return res


out['plain_containers'] = plain_containers()
print(json.dumps(out, indent=1, sort_keys=True))
