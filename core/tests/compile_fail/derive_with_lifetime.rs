use nnx_core::{Module, Param};

#[derive(Module)]
struct Linear<'a> {
    kernel: &'a Param,
}

fn main() {}
