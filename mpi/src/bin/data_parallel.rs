//! Data-parallel training over MPI processes, checked against one process on the whole
//! batch: every process takes the gradient on its part of the batch inside a `shard_map`
//! over a mesh of the processes, `pmean` averages the gradients, and every process applies
//! the same SGD update. Twice: with the whole batch given to every process, and with each
//! process given only its own rows (`process_local`). After the steps, both agree with a
//! single process's full-batch training to 1e-5 (each process also computes that reference
//! itself).
//!
//! ```text
//! cargo build --release -p nnx-mpi --features mpi
//! mpirun -np 2 target/release/nnx-mpi-data-parallel
//! ```

use std::process::ExitCode;

use nnx_core::shard::{Mesh, PartitionSpec as P, pmean};
use nnx_core::transforms::{jit, shard_map, value_and_grad};
use nnx_core::{Axes, Engine, Error, Object, Param, Path, Result, Tensor, graph::State};
use nnx_fast::Fast;
use nnx_mpi::Mpi;

const STEPS: usize = 5;
const LEARNING_RATE: f32 = 0.1;

fn grid(shape: &[usize], scale: f32) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    Tensor::from_vec(
        shape,
        (0..n)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) * scale)
            .collect(),
    )
}

fn model() -> Result<Object> {
    Object::new("Linear")
        .with("w", Param::new(grid(&[3, 2], 0.1)?))?
        .with("b", Param::new(Tensor::zeros([2])))
}

fn loss(m: &Object, x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let err = (&(&x.matmul(&m.value("w")?)? + &m.value("b")?)? - y)?;
    err.mul(&err)?.mean(Axes::All)
}

fn sgd(m: &Object, grads: &State) -> Result<()> {
    for name in ["w", "b"] {
        let g = (grads.get(&Path::parse(name)?))
            .ok_or_else(|| Error::Sharding(format!("no gradient for {name}")))?
            .value();
        let v = m.var(name)?;
        v.set_value((&v.value() - &(&g * LEARNING_RATE)?)?)?;
    }
    Ok(())
}

fn run(engine: &dyn Engine) -> Result<String> {
    let mpi = Mpi::init()?;
    let mesh = Mesh::over_processes([("data", mpi.size())])?;
    let batch = 4 * mpi.size();
    let (x, y) = (grid(&[batch, 3], 0.25)?, grid(&[batch, 2], 0.5)?);
    let step = |local: bool| {
        shard_map(
            |m: &Object, x: &Tensor, y: &Tensor| -> Result<Tensor> {
                let out = value_and_grad(loss).call(engine, (m, x, y))?;
                let grads = out.grads[0].state()?.map(|_, g| pmean(g, "data"))?;
                sgd(m, &grads)?;
                pmean(&out.value, "data")
            },
            &mesh,
        )
        .in_specs((
            P::replicated(),
            P::new([Some("data")]),
            P::new([Some("data")]),
        ))
        .process_local(local)
    };
    let (whole_batch, local_batch) = (step(false), step(true));
    // Process-local data: this process's rows only, as it would load them.
    let rows = 4 * mpi.rank()..4 * (mpi.rank() + 1);
    let (x_local, y_local) = (x.slice_axis(0, rows.clone())?, y.slice_axis(0, rows)?);
    let one_process = jit(|m: &Object, x: &Tensor, y: &Tensor| -> Result<Tensor> {
        let out = value_and_grad(loss).call(engine, (m, x, y))?;
        sgd(m, out.grads[0].state()?)?;
        Ok(out.value)
    });
    let (parallel, local, single) = (model()?, model()?, model()?);
    let mut worst = 0.0f32;
    for _ in 0..STEPS {
        let a = whole_batch
            .call(engine, (&parallel, &x, &y))?
            .item::<f32>()?;
        let b = local_batch
            .call(engine, (&local, &x_local, &y_local))?
            .item::<f32>()?;
        let c = one_process.call(engine, (&single, &x, &y))?.item::<f32>()?;
        worst = worst.max((a - c).abs()).max((b - c).abs());
    }
    for name in ["w", "b"] {
        let c = single.value(name)?.to_vec::<f32>()?;
        for m in [&parallel, &local] {
            for (p, q) in m.value(name)?.to_vec::<f32>()?.iter().zip(&c) {
                worst = worst.max((p - q).abs());
            }
        }
    }
    if worst > 1e-5 {
        return Err(Error::Sharding(format!(
            "rank {}: {} processes and one disagree by {worst} after {STEPS} steps",
            mpi.rank(),
            mpi.size()
        )));
    }
    Ok(format!(
        "rank {} of {}: parameters agree with one process after {STEPS} steps, whole or process-local batches (max difference {worst:e})",
        mpi.rank(),
        mpi.size()
    ))
}

fn main() -> ExitCode {
    match run(&Fast) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
