#!/usr/bin/env bash
# Runs the anchor workloads on the Rust side (Fast, and Reference on workload e) and on the
# Flax/JAX side (benches/flax/anchors.py) back to back, then prints the ratio table that
# docs/performance.md records. Ratio = XLA time / Fast time: above 1, Fast is faster.
#
#   bash benches/anchors.sh            # all workloads
#   NNX_FLAX_VENV=/path/to/venv bash benches/anchors.sh
#   bash benches/anchors.sh --interleaved [ROUNDS] [key ...]   # rounds of both sides in turn
#
# --interleaved (benches/interleave.py) alternates rounds of the two sides instead of running
# one after the other: on a shared machine whose cores change speed for seconds at a time,
# that is the comparison to report. It prints the median of the per-round ratios.
#
# The Python side needs flax 0.12.8 and jax 0.10.2 in a venv; this script creates one in
# .venv-flax (or $NNX_FLAX_VENV) on first use. Nothing here tunes the process environment:
# both sides run with their default allocators and thread settings.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${NNX_FLAX_VENV:-.venv-flax}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet flax==0.12.8 jax==0.10.2
fi
venv="$(cd "$venv" && pwd)"
cargo build --quiet --release -p nnx-benches --example anchors
if [ "${1:-}" = "--interleaved" ]; then
    shift
    rounds="${1:-10}"
    [ $# -gt 0 ] && shift
    exec python3 benches/interleave.py "$PWD/target/release/examples/anchors" \
        "$venv/bin/python" "$PWD/benches/flax/anchors.py" "$rounds" "$@"
fi
out="$(mktemp -d)"
./target/release/examples/anchors fast | tee "$out/fast.tsv"
./target/release/examples/anchors reference e | tee "$out/reference.tsv"
(cd benches/flax && "$venv/bin/python" -W ignore anchors.py) | tee "$out/xla.txt"
grep '^RESULT' "$out/xla.txt" | cut -f2,3 > "$out/xla.tsv"
python3 - "$out" <<'PY'
import sys
d = sys.argv[1]
def load(name, desc=False):
    rows = {}
    for line in open(f"{d}/{name}"):
        parts = line.rstrip("\n").split("\t")
        if len(parts) >= 2:
            rows[parts[0]] = (float(parts[1]), parts[2] if len(parts) > 2 else "")
    return rows
fast, ref, xla = load("fast.tsv"), load("reference.tsv"), load("xla.tsv")
targets = {"e": 1.2, "f": 5.0, "g": 1.2, "h": 1.2, "d_batched": 2.0}
def fmt(t):
    return f"{t * 1e3:.3f} ms" if t >= 1e-3 else f"{t * 1e6:.2f} µs"
print()
print("| workload | Fast | XLA (Flax/JAX) | XLA / Fast | target |")
print("|---|---|---|---|---|")
for key, (t, what) in fast.items():
    x = xla.get(key, (None,))[0]
    ratio = f"{x / t:.2f}x" if x else "—"
    target = ""
    if key in targets and x:
        target = f"≥ {targets[key]}x: " + ("met" if x / t >= targets[key] else "missed")
    if key == "d" and "numpy_gemm" in xla:
        n = xla["numpy_gemm"][0]
        target = f"numpy GEMM {fmt(n)}; Fast at {n / t:.2f}x of numpy (≥ 0.9x: " + (
            "met)" if n / t >= 0.9 else "missed)")
    print(f"| {what} | {fmt(t)} | {fmt(x) if x else '—'} | {ratio} | {target} |")
if "e" in ref and "e" in fast:
    r = ref["e"][0] / fast["e"][0]
    print(f"\nFast / Reference on (e): {r:.1f}x (target ≥ 50x: {'met' if r >= 50 else 'missed'})")
PY
