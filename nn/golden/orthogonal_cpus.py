"""Writes orthogonal_cpus.json: jax.nn.initializers.orthogonal() (JAX 0.10.2, CPU, float32)
for the shapes nnx-nn's golden tests use, computed once per OpenBLAS kernel family, as float32
bit patterns (uint32).

JAX's CPU QR is LAPACK's sgeqrf/sorgqr from the OpenBLAS that scipy ships, and OpenBLAS picks
its BLAS kernels (sgemv, sger, snrm2, ...) for the CPU at run time: the summation order, and so
the last bits of the result, depend on the machine. This script asks OpenBLAS for each kernel
family in turn (OPENBLAS_CORETYPE, which it honours on any x86-64 machine) to show that Flax's
own orthogonal initialisation differs from one machine to another, and by how much. The Rust
test `orthogonal_is_flaxs_up_to_the_cpu_dependent_last_bits` reads the copy.

Run from this directory with a venv that has flax==0.12.8 (and its jax, scipy):
    python orthogonal_cpus.py   # writes orthogonal_cpus.json beside this file
"""

import json
import os
import subprocess
import sys

SHAPES = [(0, (4, 6)), (1, (7, 3)), (2, (3, 3, 2)), (3, (8, 8)), (4, (16, 32))]
CORES = ["SkylakeX", "Haswell", "Sandybridge"]


def one_core():
    # In a child process whose OPENBLAS_CORETYPE is set: the initialisations as bit patterns.
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import jax.numpy as jnp
    import numpy as np

    def bits(x):
        a = np.asarray(x, dtype=np.float32)
        return {"shape": list(a.shape), "bits": [int(b) for b in a.reshape(-1).view(np.uint32)]}

    init = jax.nn.initializers.orthogonal()
    out = {f"{seed}": bits(init(jax.random.key(seed), shape, jnp.float32)) for seed, shape in SHAPES}
    json.dump({"jax": jax.__version__, "arrays": out}, sys.stdout)


def main():
    results = {}
    for core in CORES:
        env = dict(os.environ, OPENBLAS_CORETYPE=core)
        done = subprocess.run([sys.executable, __file__, "--one"], env=env, check=True,
                              capture_output=True, text=True)
        results[core] = json.loads(done.stdout)
    out = {
        "jax": results[CORES[0]]["jax"],
        "shapes": [{"seed": seed, "shape": list(shape)} for seed, shape in SHAPES],
        "by_core": {core: r["arrays"] for core, r in results.items()},
    }
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "orthogonal_cpus.json"), "w") as f:
        json.dump(out, f)
    for seed, shape in SHAPES:
        same = len({json.dumps(results[c]["arrays"][f"{seed}"]) for c in CORES}) == 1
        print(f"seed {seed} shape {shape}: {'identical' if same else 'differs'} across {CORES}")


if __name__ == "__main__":
    one_core() if "--one" in sys.argv else main()
