use nnx_core::{Module, Param};

#[derive(Module)]
#[module(rename = "Dense")]
struct Linear {
    kernel: Param,
}

fn main() {}
