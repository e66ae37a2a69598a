// Arguments are taken by reference.
use nnx_core::transforms::jit;
use nnx_core::{Result, Tensor};

fn main() {
    let _ = jit(|x: Tensor| -> Result<Tensor> { Ok(x) });
}
