// A transformed function returns a `Result`.
use nnx_core::transforms::vmap;
use nnx_core::Tensor;

fn main() {
    let _ = vmap(|x: &Tensor| x.clone());
}
