//! The anchor workloads (a)–(h) of `benches/flax/anchors.py` on `Fast` and `Reference`
//! ([`nnx_benches::anchors`]): criterion's statistics for the numbers that
//! `benches/anchors.sh` compares with Flax/JAX back to back.
//!
//! `cargo bench -p nnx-benches --bench anchors`
//!
//! `Reference` skips (f), the per-example gradients: its naive loops take seconds a call.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nnx_benches::anchors::workloads;
use nnx_core::Engine;
use nnx_fast::Fast;
use nnx_reference::Reference;

fn bench_anchors(c: &mut Criterion) {
    for engine in [&Fast as &dyn Engine, &Reference] {
        let keep = |key: &str| engine.name() == "fast" || key != "f";
        let Ok(all) = workloads(engine, keep) else {
            return;
        };
        for mut w in all {
            let mut group = c.benchmark_group(format!("{} {}", w.key, w.what));
            if w.flops > 0.0 {
                group.throughput(Throughput::Elements(w.flops as u64));
            }
            group.bench_function(engine.name(), |b| b.iter(|| (w.run)()));
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench_anchors
}
criterion_main!(benches);
