//! Scaling out on one machine: a mesh of two devices (worker threads), a tensor-parallel
//! pair of Linear layers under `shard_map` (the first split by columns, the second by rows,
//! the partial products summed with `psum`), and data-parallel training of it over the
//! same devices (`pmean` of the gradients), each checked against the unsharded
//! computation. Run with `cargo run --release --example tensor_parallel`; the same programs
//! run across processes over MPI with `nnx-mpi` (see the README).

use nnx_fast::prelude::*;
use nnx_fast::shard::{pmean, psum};

/// Two Linear layers without biases; their `sharding` metadata says how tensor parallelism
/// splits them over the `model` axis.
#[derive(Module, Clone)]
pub struct Pair {
    /// `[in, hidden]`, split by columns.
    pub w1: Param,
    /// `[hidden, out]`, split by rows.
    pub w2: Param,
}

fn grid(shape: &[usize], scale: f32) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    Tensor::from_vec(
        shape,
        (0..n)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) * scale)
            .collect(),
    )
}

/// `relu(x @ w1) @ w2` on one device's blocks, the partial products summed over `model`.
fn forward(m: &Pair, x: &Tensor) -> Result<Tensor> {
    let h = x.matmul(&m.w1.value())?.relu()?;
    psum(&h.matmul(&m.w2.value())?, "model")
}

/// The largest elementwise difference between `a` and `b`.
fn largest_gap(a: &Tensor, b: &Tensor) -> Result<f32> {
    let (a, b) = (a.to_vec::<f32>()?, b.to_vec::<f32>()?);
    Ok(a.iter()
        .zip(&b)
        .fold(0.0f32, |m, (p, q)| m.max((p - q).abs())))
}

fn main() -> Result<()> {
    let pair = Pair {
        w1: Param::new(grid(&[8, 16], 0.05)?),
        w2: Param::new(grid(&[16, 4], 0.05)?),
    };
    pair.w1
        .set_metadata("sharding", static_tuple![Static::None, "model"])?;
    pair.w2
        .set_metadata("sharding", static_tuple!["model", Static::None])?;
    let x = grid(&[32, 8], 0.1)?;
    let y = grid(&[32, 4], 0.2)?;

    // Tensor parallelism: each device holds half of each weight.
    let tp = Mesh::new([("model", 2)])?;
    let sharded = shard_map(forward, &tp)
        .in_specs((Spec::FromMetadata, PartitionSpec::replicated()))
        .call(&Fast, (&pair, &x))?;
    let unsharded = x
        .matmul(&pair.w1.value())?
        .relu()?
        .matmul(&pair.w2.value())?;
    let gap = largest_gap(&sharded, &unsharded)?;
    println!("tensor-parallel pair on {tp}: largest difference from unsharded {gap:e}");

    // Data parallelism: each device takes half of the batch; the gradients are averaged.
    let loss = |m: &Pair, x: &Tensor, y: &Tensor| -> Result<Tensor> {
        let err = (x.matmul(&m.w1.value())?.relu()?.matmul(&m.w2.value())? - y)?;
        err.mul(&err)?.mean(None)
    };
    let sgd = |m: &Pair, grads: &State| -> Result<()> {
        for (param, name) in [(&m.w1, "w1"), (&m.w2, "w2")] {
            let g = grads.variable(&Path::parse(name)?)?.value();
            param.set_value((param.value() - (g * 0.1)?)?)?;
        }
        Ok(())
    };
    let dp = Mesh::new([("data", 2)])?;
    let step = shard_map(
        |m: &Pair, x: &Tensor, y: &Tensor| -> Result<Tensor> {
            let out = value_and_grad(loss).call(&Fast, (m, x, y))?;
            let grads = out.grads[0].state()?.map(|_, g| pmean(g, "data"))?;
            sgd(m, &grads)?;
            pmean(&out.value, "data")
        },
        &dp,
    )
    .in_specs((
        PartitionSpec::replicated(),
        PartitionSpec::new([Some("data")]),
        PartitionSpec::new([Some("data")]),
    ));
    let single = jit(|m: &Pair, x: &Tensor, y: &Tensor| -> Result<Tensor> {
        let out = value_and_grad(loss).call(&Fast, (m, x, y))?;
        sgd(m, out.grads[0].state()?)?;
        Ok(out.value)
    });
    let copy = Pair {
        w1: Param::new(pair.w1.value()),
        w2: Param::new(pair.w2.value()),
    };
    for epoch in 0..5 {
        let a = step.call(&Fast, (&pair, &x, &y))?.item::<f32>()?;
        let b = single.call(&Fast, (&copy, &x, &y))?.item::<f32>()?;
        println!("step {epoch}: loss {a:.6} on {dp}, {b:.6} on one device");
    }
    let gap = largest_gap(&pair.w1.value(), &copy.w1.value())?;
    println!("after 5 steps the weights differ by at most {gap:e}");
    Ok(())
}
