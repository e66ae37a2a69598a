use nnx_core::{Module, Param};

#[derive(Module)]
enum Layer {
    Dense(Param),
}

fn main() {}
