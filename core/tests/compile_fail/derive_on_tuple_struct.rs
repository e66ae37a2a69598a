use nnx_core::{Module, Param};

#[derive(Module)]
struct Linear(Param, Param);

fn main() {}
