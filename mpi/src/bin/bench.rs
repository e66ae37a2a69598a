//! Over MPI, timed on rank 0: all-reduce throughput by message size (`psum` of a float32
//! array inside a `shard_map` over the processes, what a data-parallel step does with its
//! gradients, next to a bare `MPI_Allreduce` of the same buffer), then a data-parallel
//! training step of a two-layer MLP (the batch split over the processes, `pmean` of the
//! gradients) against the same step on the whole batch in one process.
//!
//! ```text
//! cargo build --release -p nnx-mpi --features mpi
//! mpirun -np 2 target/release/nnx-mpi-bench
//! ```

use std::process::ExitCode;
use std::time::Instant;

use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::CommunicatorCollectives;
use nnx_core::graph::State;
use nnx_core::shard::{Mesh, PartitionSpec as P, pmean, psum};
use nnx_core::transforms::{jit, shard_map, value_and_grad};
use nnx_core::{Axes, Object, Param, Result, Tensor};
use nnx_fast::Fast;
use nnx_mpi::Mpi;

fn run() -> Result<()> {
    let mpi = Mpi::init()?;
    let mesh = Mesh::over_processes([("data", mpi.size())])?;
    let all_reduce = shard_map(|x: &Tensor| psum(x, "data"), &mesh);
    if mpi.rank() == 0 {
        println!("elements,bytes,psum_us,psum_GB_per_s,mpi_allreduce_us,ratio");
    }
    for elements in [1_000usize, 10_000, 100_000, 1_000_000, 4_000_000] {
        let x = Tensor::ones([elements]);
        all_reduce.call(&Fast, (&x,))?;
        let calls = (20_000_000 / elements).clamp(5, 2_000);
        let start = Instant::now();
        for _ in 0..calls {
            all_reduce.call(&Fast, (&x,))?;
        }
        let per_call = start.elapsed().as_secs_f64() / calls as f64;
        // The same reduction as one bare MPI call.
        let world = SimpleCommunicator::world();
        let send = vec![1.0f32; elements];
        let mut received = vec![0.0f32; elements];
        let start = Instant::now();
        for _ in 0..calls {
            world.all_reduce_into(&send[..], &mut received[..], SystemOperation::sum());
        }
        let bare = start.elapsed().as_secs_f64() / calls as f64;
        if mpi.rank() == 0 {
            let bytes = elements * 4;
            println!(
                "{elements},{bytes},{:.1},{:.3},{:.1},{:.2}",
                per_call * 1e6,
                bytes as f64 / per_call / 1e9,
                bare * 1e6,
                per_call / bare
            );
        }
    }
    step_bench(&mpi, &mesh)
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

fn mlp() -> Result<Object> {
    Object::new("Mlp")
        .with("w1", Param::new(grid(&[256, 512], 0.01)?))?
        .with("w2", Param::new(grid(&[512, 10], 0.01)?))
}

fn loss(m: &Object, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let h = x.matmul(&m.value("w1")?)?.relu()?;
    let err = (&h.matmul(&m.value("w2")?)? - y)?;
    err.mul(&err)?.mean(Axes::All)
}

fn sgd(m: &Object, grads: &State) -> Result<()> {
    for (path, leaf) in grads.iter() {
        let v = m.var(&path.slashed())?;
        v.set_value((&v.value() - &(&leaf.value() * 0.01)?)?)?;
    }
    Ok(())
}

/// A training step on a batch of 512 split over the processes, against one process on
/// the whole batch.
fn step_bench(mpi: &Mpi, mesh: &Mesh) -> Result<()> {
    let (x, y) = (grid(&[512, 256], 0.1)?, grid(&[512, 10], 0.1)?);
    let parallel = shard_map(
        |m: &Object, x: &Tensor, y: &Tensor| -> Result<Tensor> {
            let out = value_and_grad(loss).call(&Fast, (m, x, y))?;
            let grads = out.grads[0].state()?.map(|_, g| pmean(g, "data"))?;
            sgd(m, &grads)?;
            pmean(&out.value, "data")
        },
        mesh,
    )
    .in_specs((
        P::replicated(),
        P::new([Some("data")]),
        P::new([Some("data")]),
    ));
    let single = jit(|m: &Object, x: &Tensor, y: &Tensor| -> Result<Tensor> {
        let out = value_and_grad(loss).call(&Fast, (m, x, y))?;
        sgd(m, out.grads[0].state()?)?;
        Ok(out.value)
    });
    let time = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        f()?;
        let start = Instant::now();
        for _ in 0..20 {
            f()?;
        }
        Ok(start.elapsed().as_secs_f64() / 20.0)
    };
    let (m1, m2) = (mlp()?, mlp()?);
    let split = time(&mut || parallel.call(&Fast, (&m1, &x, &y)).map(drop))?;
    let whole = time(&mut || single.call(&Fast, (&m2, &x, &y)).map(drop))?;
    if mpi.rank() == 0 {
        println!(
            "\ndata-parallel MLP step (batch 512, 256-512-10): {} processes {:.2} ms, one process {:.2} ms, ratio {:.2}",
            mpi.size(),
            split * 1e3,
            whole * 1e3,
            whole / split
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
