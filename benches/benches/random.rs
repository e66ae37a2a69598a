//! Throughput of the bit-exact JAX samplers `random::uniform` and `random::normal`.
//!
//! Run with `cargo bench -p nnx-benches --bench random`; the numbers are in
//! `docs/performance.md`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nnx_core::random;

/// Element counts measured: 1e3, 1e5 and 1e6.
const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];

fn samplers(c: &mut Criterion) {
    let key = random::key(0);
    for (name, sample) in [
        (
            "uniform",
            (|k, s| random::uniform(k, s)) as fn(&_, &[usize]) -> _,
        ),
        ("normal", |k, s| random::normal(k, s)),
    ] {
        let mut group = c.benchmark_group(format!("random/{name}"));
        for n in SIZES {
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
                b.iter(|| sample(black_box(&key), black_box(&[n])));
            });
        }
        group.finish();
    }
}

criterion_group!(benches, samplers);
criterion_main!(benches);
