//! Time and peak memory of `value_and_grad` through `scan` over `L` stacked Linear + tanh
//! layers (width 128, batch 32), for `L` = 16, 64, 256: both must grow linearly in `L` (the
//! backward pass is one reverse scan over the saved carries, not the loop unrolled).
//!
//! ```text
//! cargo run --release -p nnx-benches --example grad_scan -- [fast|reference] [--remat] [L …]
//! ```
//!
//! `--remat` checkpoints the layer (`remat(layer)` as the scan's body, `nothing_saveable`).
//!
//! Peak memory is the peak resident set (`VmHWM` of `/proc/self/status`, Linux) of a fresh
//! process that builds the layers and runs the gradient six times: each length runs in its
//! own child process, so one length's memory does not hide the next one's. It includes the
//! layers themselves and their gradients (both linear in `L`) and the process's fixed
//! baseline. Each time is the median of five rounds.

use std::time::Instant;

use nnx_core::transforms::{Carry, remat, scan, value_and_grad};
use nnx_core::{Axes, Engine, Object, Param, Result, Tensor, Value, random};
use nnx_fast::Fast;
use nnx_reference::Reference;

/// A field of `/proc/self/status` in bytes (`None` where there is no such file).
fn status_bytes(field: &str) -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

const WIDTH: usize = 128;
const BATCH: usize = 32;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    let engine: &dyn Engine = match args.peek().map(String::as_str) {
        Some("reference") => {
            args.next();
            &Reference
        }
        Some("fast") => {
            args.next();
            &Fast
        }
        _ => &Fast,
    };
    let mut rest: Vec<String> = args.collect();
    let checkpoint = rest.iter().any(|a| a == "--remat");
    rest.retain(|a| a != "--remat");
    if let [flag, length] = rest.as_slice()
        && flag == "--child"
    {
        return measure(engine, length.parse().unwrap_or(16), checkpoint);
    }
    let lengths: Vec<String> = match rest.is_empty() {
        true => ["16", "64", "256"].map(String::from).to_vec(),
        false => rest,
    };
    println!("engine\tremat\tL\tseconds per call\tpeak resident MiB\tµs per layer");
    for length in lengths {
        // One child process per length; it prints its own line.
        let status = std::env::current_exe()
            .and_then(|exe| {
                std::process::Command::new(exe)
                    .args([engine.name(), "--child", &length])
                    .args(checkpoint.then_some("--remat"))
                    .status()
            })
            .map_err(|e| nnx_core::Error::Internal {
                what: format!("could not run the measurement for L = {length}: {e}"),
            })?;
        if !status.success() {
            eprintln!("the measurement for L = {length} failed");
        }
    }
    Ok(())
}

/// Builds `length` layers, runs the gradient once to compile, then times five calls and
/// prints one line with the process's peak resident set.
fn measure(engine: &dyn Engine, length: usize, checkpoint: bool) -> Result<()> {
    let layers = Object::new("Stack")
        .with(
            "w",
            Param::new(
                (random::normal(&random::key(0), [length, WIDTH, WIDTH])?
                    * (1.0 / (WIDTH as f32).sqrt()))?,
            ),
        )?
        .with("b", Param::new(Tensor::zeros([length, WIDTH])))?;
    let x = random::normal(&random::key(1), [BATCH, WIDTH])?;
    let layer = |inner: &[Value]| -> Result<Value> {
        let (h, layer) = (inner[0].as_tensor()?, inner[1].object()?);
        let h = h
            .matmul(&layer.value("w")?)?
            .add(&layer.value("b")?)?
            .tanh()?;
        Ok(Value::tuple(vec![Value::from(h), Value::from(())]))
    };
    let checkpointed = remat(layer);
    let loss = value_and_grad(|args: &[Value]| {
        let body = |inner: &[Value]| match checkpoint {
            true => checkpointed.call(engine, inner),
            false => layer(inner),
        };
        let out = scan(body)
            .in_axes((Carry, 0))
            .out_axes((Carry, 0))
            .call(engine, &[args[1].clone(), args[0].clone()])?;
        let h = match out {
            Value::Tuple(items) => items[0].as_tensor()?,
            other => other.as_tensor()?,
        };
        Ok(Value::from(h.mul(&h)?.mean(Axes::All)?))
    });
    let call = || loss.call(engine, &[Value::from(&layers), Value::from(x.clone())]);
    call()?;
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        call()?;
        rounds.push(start.elapsed().as_secs_f64());
    }
    rounds.sort_by(f64::total_cmp);
    let t = rounds[2];
    let peak = status_bytes("VmHWM:").map_or_else(
        || "n/a".to_owned(),
        |b| format!("{:.1}", b as f64 / (1 << 20) as f64),
    );
    println!(
        "{}\t{checkpoint}\t{length}\t{t:.6}\t{peak}\t{:.1}",
        engine.name(),
        t * 1e6 / length as f64
    );
    Ok(())
}
