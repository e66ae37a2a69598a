//! Multi-process `shard_map` over MPI: `Mpi::init` (feature `mpi`) joins the MPI job and installs a
//! [`ProcessGroup`](nnx_core::shard::ProcessGroup) whose processes are the devices of a
//! [`Mesh::over_processes`](nnx_core::shard::Mesh::over_processes); collectives and result
//! blocks travel with MPI's `MPI_Allgatherv` over the world communicator (or a
//! sub-communicator of the devices a collective spans).
//!
//! Everything here is behind the `mpi` cargo feature, which needs an MPI installation (on
//! Debian: `apt-get install libopenmpi-dev openmpi-bin libclang-dev`); without it the crate
//! is empty, so the default build of the workspace needs nothing installed. Run programs
//! with `mpirun -np N`:
//!
//! ```text
//! cargo build --release -p nnx-mpi --features mpi
//! mpirun -np 2 target/release/nnx-mpi-data-parallel
//! ```

#[cfg(feature = "mpi")]
mod world;

#[cfg(feature = "mpi")]
pub use world::{Mpi, MpiGroup, MpiTransport};
