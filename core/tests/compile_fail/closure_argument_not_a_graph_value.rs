// Every argument converts from a graph value.
use nnx_core::transforms::jit;
use nnx_core::{Result, Tensor};

struct Config {
    depth: usize,
}

fn main() {
    let _ = jit(|c: &Config, x: &Tensor| -> Result<Tensor> { x * c.depth as f32 });
}
