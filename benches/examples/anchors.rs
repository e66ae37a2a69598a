//! Times the anchor workloads ([`nnx_benches::anchors`]) on one engine and prints one line per
//! workload, `key<TAB>seconds per call<TAB>description`, for `benches/anchors.sh` to join with
//! the Flax/JAX side. The criterion bench `anchors` is the measurement with statistics; this
//! is the quick back-to-back one.
//!
//! ```text
//! cargo run --release -p nnx-benches --example anchors -- [fast|reference] [--sequential] [key …]
//! ```
//!
//! Each figure is the median of five rounds, as the anchor script measures.

use std::time::{Duration, Instant};

use nnx_benches::anchors::workloads;
use nnx_core::{Engine, Result};
use nnx_fast::Fast;
use nnx_reference::Reference;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let engine: &dyn Engine = match args.next().as_deref() {
        Some("reference") => &Reference,
        _ => &Fast,
    };
    let mut only: Vec<String> = args.collect();
    // `--sequential`: every kernel on the calling thread (the default uses every core).
    if let Some(i) = only.iter().position(|a| a == "--sequential") {
        only.remove(i);
        Fast::set_parallelism(nnx_fast::Parallelism::Sequential);
    }
    for mut w in workloads(engine, |key| {
        only.is_empty() || only.iter().any(|k| k == key)
    })? {
        (w.run)()?;
        (w.run)()?;
        // As many calls per round as fit in about 0.3 s (at least 3).
        let start = Instant::now();
        (w.run)()?;
        let one = start.elapsed().max(Duration::from_nanos(1));
        let n = (0.3 / one.as_secs_f64()).clamp(3.0, 100_000.0) as u32;
        let mut rounds: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..n {
                    (w.run)()?;
                }
                Ok(start.elapsed().as_secs_f64() / f64::from(n))
            })
            .collect::<Result<_>>()?;
        rounds.sort_by(f64::total_cmp);
        let t = rounds[2];
        let rate = if w.flops > 0.0 {
            format!(" ({:.1} GFLOP/s)", w.flops / t / 1e9)
        } else {
            String::new()
        };
        println!("{}\t{:.9}\t{}{}", w.key, t, w.what, rate);
    }
    Ok(())
}
