"""Golden data for the linear-algebra derivatives (jax 0.10.2): writes linalg.json.

`lax.linalg.triangular_solve` under every flag, its gradients with respect to both
operands and its JVP; and the derivatives of the orthogonal initializer's signed `Q`
(`q * sign(diag(r))` for `q, r = jnp.linalg.qr(a)`): gradient, JVP, on a tall matrix and a
batch of square ones, and a second-order derivative.

Run from this directory with a Python that has jax installed:
    python linalg.py > linalg.json
The conformance cases in `src/cases/linalg.rs` read the JSON.
"""
import itertools
import json

import jax
import jax.numpy as jnp
from jax import lax

jax.config.update('jax_default_matmul_precision', 'highest')


def t(x):
  x = jnp.asarray(x)
  return {'shape': list(x.shape), 'dtype': str(x.dtype),
          'values': [float(v) for v in x.ravel()]}


def pattern(shape, scale, shift):
  n = 1
  for d in shape:
    n *= d
  v = jnp.array([((i * 7 + shift) % 11 - 5) * scale for i in range(n)], jnp.float32)
  return v.reshape(shape)


out = {}

# A well-conditioned 3x3 matrix (both triangles used), right-hand sides for either side.
a = pattern((3, 3), 0.25, 3) + 3.0 * jnp.eye(3)
b_left = pattern((3, 2), 0.5, 1)
b_right = pattern((2, 3), 0.5, 2)
w = pattern((3, 2), 0.3, 5)
solves = []
for left_side, lower, transpose_a, unit_diagonal in itertools.product([False, True], repeat=4):
  b = b_left if left_side else b_right
  weights = w if left_side else w.T

  def f(a, b):
    return lax.linalg.triangular_solve(
        a, b, left_side=left_side, lower=lower, transpose_a=transpose_a,
        unit_diagonal=unit_diagonal)

  x = f(a, b)
  ga, gb = jax.grad(lambda a, b: (f(a, b) * weights).sum(), argnums=(0, 1))(a, b)
  tangent_b = pattern(b.shape, 0.2, 6)
  _, tangent = jax.jvp(f, (a, b), (pattern((3, 3), 0.1, 4), tangent_b))
  solves.append({
      'left_side': left_side, 'lower': lower, 'transpose_a': transpose_a,
      'unit_diagonal': unit_diagonal, 'b': t(b), 'weights': t(weights), 'x': t(x),
      'grad_a': t(ga), 'grad_b': t(gb), 'tangent_b': t(tangent_b), 'tangent': t(tangent),
  })
out['a'] = t(a)
out['tangent_a'] = t(pattern((3, 3), 0.1, 4))
out['triangular_solve'] = solves

# A vector right-hand side, and a batch.
out['vector'] = t(lax.linalg.triangular_solve(a, jnp.array([1.0, 2.0, 3.0]), left_side=True,
                                              lower=True))
batch_a = jnp.stack([a, a.T + jnp.eye(3)])
batch_b = pattern((2, 3, 2), 0.5, 7)
out['batched'] = {
    'a': t(batch_a), 'b': t(batch_b),
    'x': t(lax.linalg.triangular_solve(batch_a, batch_b, left_side=True, lower=False)),
}


def signed_q(m):
  q, r = jnp.linalg.qr(m)
  return q * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


qr = {}
for name, shape in [('tall', (4, 3)), ('square_batch', (2, 3, 3))]:
  m = pattern(shape, 0.3, 2) + jnp.eye(shape[-2], shape[-1])
  weights = pattern(shape, 0.2, 9)
  direction = pattern(shape, 0.1, 5)
  loss = lambda m: (signed_q(m) * weights).sum()
  q, tangent = jax.jvp(signed_q, (m,), (direction,))
  qr[name] = {'a': t(m), 'weights': t(weights), 'direction': t(direction), 'q': t(q),
              'grad': t(jax.grad(loss)(m)), 'tangent': t(tangent),
              # forward over reverse: the Hessian of the loss along the direction
              'hvp': t(jax.jvp(jax.grad(loss), (m,), (direction,))[1])}
out['qr'] = qr

print(json.dumps(out, indent=1))
