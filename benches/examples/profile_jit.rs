//! Transform calls in a loop, for profilers. With no argument: a cached `jit` on the tiny MLP
//! (depth 64); `params`: a cached `jit` on a model of 100,000 one-element Params of which the
//! function reads one; `vmap`: the guide's `jit(vmap(stateful_vector_dot))`; `split`:
//! `split` + `merge` of the depth-64 MLP.
//!
//! ```text
//! cargo build --release -p nnx-benches --example profile_jit
//! perf record -g ./target/release/examples/profile_jit [params|vmap|split] && perf report
//! ```
//!
//! Prints the mean time per call; the criterion benches are the measurement of record.

use std::time::Instant;

use nnx_benches::{apply_mlp, first_param, many_params, mlp, stateful_vector_dot, weights};
use nnx_core::transforms::{jit, vmap};
use nnx_core::{Object, Result, Tensor, Value, graph, random};
use nnx_fast::Fast;

/// Runs `f` `n` times after one warm-up call and prints the mean.
fn time(what: &str, n: u32, mut f: impl FnMut() -> Result<()>) -> Result<()> {
    f()?;
    let start = Instant::now();
    for _ in 0..n {
        f()?;
    }
    println!("{what}: {:?}/call", start.elapsed() / n);
    Ok(())
}

fn main() -> Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("split") => {
            let m = mlp(64)?;
            time("split + merge, depth 64", 2000, || {
                let (def, state) = graph::split(&m);
                graph::merge::<Object>(&def, [&state]).map(drop)
            })
        }
        Some("vmap") => {
            let (w, x) = (weights()?, random::normal(&random::key(1), [10, 2])?);
            let f = jit(|args: &[Value]| {
                vmap(stateful_vector_dot)
                    .in_axes(0)
                    .out_axes(1)
                    .call(&Fast, args)
            });
            time("jit(vmap(stateful_vector_dot))", 100_000, || {
                f.call(&Fast, (&w, &x)).map(drop)
            })
        }
        Some("params") => {
            let m = many_params(100_000)?;
            let f = jit(first_param);
            time("jit over 100,000 Params", 30, || {
                f.call(&Fast, (&m,)).map(drop)
            })
        }
        _ => {
            let (m, x) = (mlp(64)?, Tensor::ones([4, 8]));
            let f = jit(apply_mlp);
            time("jit tiny MLP, depth 64", 3000, || {
                f.call(&Fast, (&m, &x)).map(drop)
            })
        }
    }
}
