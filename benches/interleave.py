"""Interleaved comparison of the anchor workloads: Fast and Flax/JAX, round by round.

On a shared machine the speed of a core changes for seconds at a time (the same workload
measured 2.6 ms and 4.1 ms in one process, minutes apart), so two sides measured one after
the other can each land in a different phase. This driver starts both sides as servers
(`anchors fast --serve`, `anchors.py --serve`), then asks them in turn for one round
(at least 0.3 s) of each workload, alternating which side goes first, so that every Fast
round has an XLA round next to it. It prints, per workload, the median time of each side
and the median of the per-round ratios (XLA / Fast) with their range.

    python3 benches/interleave.py RUST_BINARY PYTHON ANCHORS_PY ROUNDS [key ...]

`benches/anchors.sh --interleaved [ROUNDS]` builds the binary and runs this.
"""

import statistics
import subprocess
import sys

TARGETS = {"e": 1.2, "f": 5.0, "g": 1.2, "h": 1.2, "d_batched": 2.0}


def start(argv):
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    for line in proc.stdout:
        if line.strip() == "ready":
            return proc
    sys.exit(f"{argv[0]} stopped before it was ready")


def ask(proc, key):
    proc.stdin.write(key + "\n")
    proc.stdin.flush()
    got_key, seconds = proc.stdout.readline().rstrip("\n").split("\t")
    if got_key != key or seconds == "unknown":
        sys.exit(f"no workload {key!r}")
    return float(seconds)


def fmt(t):
    return f"{t * 1e3:.3f} ms" if t >= 1e-3 else f"{t * 1e6:.2f} µs"


def main():
    rust, python, anchors_py, rounds, *keys = sys.argv[1:]
    rounds = int(rounds)
    keys = keys or ["e", "f", "g", "h", "i"]
    fast = start([rust, "fast", "--serve", *keys])
    xla = start([python, "-W", "ignore", anchors_py, "--serve"])
    times = {k: ([], []) for k in keys}
    for r in range(rounds):
        for key in keys:
            order = [(0, fast), (1, xla)] if r % 2 == 0 else [(1, xla), (0, fast)]
            for side, proc in order:
                times[key][side].append(ask(proc, key))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    for proc in (fast, xla):
        proc.stdin.close()
        proc.wait()
    print(f"\n{rounds} interleaved rounds per workload (each at least 0.3 s per side)\n")
    print("| workload | Fast (median) | XLA (median) | XLA / Fast: median of rounds | range | target |")
    print("|---|---|---|---|---|---|")
    for key in keys:
        f, x = times[key]
        ratios = sorted(xi / fi for fi, xi in zip(f, x))
        median = statistics.median(ratios)
        target = ""
        if key in TARGETS:
            target = f"≥ {TARGETS[key]}x: " + ("met" if median >= TARGETS[key] else "missed")
        print(
            f"| {key} | {fmt(statistics.median(f))} | {fmt(statistics.median(x))} | "
            f"{median:.2f}x | {ratios[0]:.2f}–{ratios[-1]:.2f}x | {target} |"
        )


if __name__ == "__main__":
    main()
