use nnx_core::{Module, Param};

#[derive(Module)]
struct Linear {
    kernel: Param,
    activation: fn(f32) -> f32,
}

fn main() {}
