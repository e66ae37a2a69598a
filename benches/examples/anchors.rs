//! Times the anchor workloads ([`nnx_benches::anchors`]) on one engine and prints one line per
//! workload, `key<TAB>seconds per call<TAB>description`, for `benches/anchors.sh` to join with
//! the Flax/JAX side. The criterion bench `anchors` is the measurement with statistics; this
//! is the quick back-to-back one.
//!
//! ```text
//! cargo run --release -p nnx-benches --example anchors -- [fast|reference] [--sequential] [--serve] [key …]
//! ```
//!
//! Each figure is the median of five rounds, as the anchor script measures. With `--serve`
//! the workloads are built and warmed up, `ready` is printed, and then each key read from
//! standard input is answered with one round of that workload (`key<TAB>seconds per call`):
//! `benches/interleave.py` alternates these rounds with the Flax/JAX side's, so that both
//! are measured in the same moments of a noisy machine.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use nnx_benches::anchors::{Workload, workloads};
use nnx_core::{Engine, Result};
use nnx_fast::Fast;
use nnx_reference::Reference;

/// A round lasts at least this long (and has at least three calls).
const ROUND: Duration = Duration::from_millis(300);

/// One round: calls `w` until [`ROUND`] has passed (at least three times); seconds per call.
fn round(w: &mut Workload<'_>) -> Result<f64> {
    let start = Instant::now();
    let mut calls = 0u32;
    while calls < 3 || start.elapsed() < ROUND {
        (w.run)()?;
        calls += 1;
    }
    Ok(start.elapsed().as_secs_f64() / f64::from(calls))
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let engine: &dyn Engine = match args.next().as_deref() {
        Some("reference") => &Reference,
        _ => &Fast,
    };
    let mut only: Vec<String> = args.collect();
    let mut flag = |name: &str| {
        let found = only.iter().position(|a| a == name);
        found.map(|i| only.remove(i)).is_some()
    };
    // `--sequential`: every kernel on the calling thread (the default uses every core).
    if flag("--sequential") {
        Fast::set_parallelism(nnx_fast::Parallelism::Sequential);
    }
    let serve = flag("--serve");
    let mut all = workloads(engine, |key| {
        only.is_empty() || only.iter().any(|k| k == key)
    })?;
    for w in &mut all {
        (w.run)()?;
        (w.run)()?;
    }
    if serve {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready").ok();
        out.flush().ok();
        for line in std::io::stdin().lock().lines() {
            let Ok(key) = line else { break };
            let answer = match all.iter_mut().find(|w| w.key == key.trim()) {
                Some(w) => {
                    let t = round(w)?;
                    format!("{}\t{t:.9}", w.key)
                }
                None => format!("{}\tunknown", key.trim()),
            };
            writeln!(out, "{answer}").ok();
            out.flush().ok();
        }
        return Ok(());
    }
    for mut w in all {
        let mut rounds: Vec<f64> = (0..5).map(|_| round(&mut w)).collect::<Result<_>>()?;
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
