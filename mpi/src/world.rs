//! The MPI process group and transport.

use std::sync::Arc;

use mpi::Count;
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::{Color, Communicator, SimpleCommunicator};
use mpi::traits::CommunicatorCollectives;
use nnx_core::shard::{self, ProcessGroup, Transport};
use nnx_core::{Array, DType, Error, Result};

/// This process's membership of the MPI job. While it lives, meshes made with
/// [`Mesh::over_processes`](nnx_core::shard::Mesh::over_processes) run one device per
/// process; dropping it removes the process group and finalises MPI.
pub struct Mpi {
    group: Arc<MpiGroup>,
    _universe: Universe,
}

impl Mpi {
    /// Initialises MPI (once per process) and installs its process group.
    ///
    /// # Errors
    /// [`Error::Sharding`] when MPI was already initialised.
    pub fn init() -> Result<Mpi> {
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or_else(|| Error::Sharding("MPI was already initialised".into()))?;
        let world = universe.world();
        let group = Arc::new(MpiGroup {
            rank: usize::try_from(world.rank()).unwrap_or(0),
            size: usize::try_from(world.size()).unwrap_or(1),
        });
        shard::set_process_group(Some(group.clone()));
        Ok(Mpi {
            group,
            _universe: universe,
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.group.rank
    }

    /// The number of processes.
    pub fn size(&self) -> usize {
        self.group.size
    }
}

impl Drop for Mpi {
    fn drop(&mut self) {
        shard::set_process_group(None);
    }
}

/// The processes of the MPI world, one device each.
#[derive(Debug)]
pub struct MpiGroup {
    rank: usize,
    size: usize,
}

impl ProcessGroup for MpiGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(MpiTransport)
    }
}

/// Exchanges collectives' values between processes with `MPI_Allgatherv`.
#[derive(Debug, Clone, Copy)]
pub struct MpiTransport;

fn count(n: usize) -> Result<Count> {
    Count::try_from(n).map_err(|_| Error::Sharding(format!("{n} bytes are too many for MPI")))
}

impl Transport for MpiTransport {
    fn exchange(
        &self,
        _seq: u64,
        _name: &'static str,
        device: usize,
        group: &[usize],
        value: Array,
    ) -> Result<Vec<Array>> {
        let world = SimpleCommunicator::world();
        let size = usize::try_from(world.size()).unwrap_or(1);
        let position = group.iter().position(|&d| d == device).ok_or_else(|| {
            Error::Sharding(format!("device {device} is not in its own group {group:?}"))
        })?;
        // The devices of the group, ranked by their position in it.
        let split;
        let comm = if group.len() == size {
            &world
        } else {
            let color = Color::with_value(count(group.iter().copied().min().unwrap_or(0))?);
            split = world
                .split_by_color_with_key(color, count(position)?)
                .ok_or_else(|| Error::Sharding("MPI did not split the communicator".into()))?;
            &split
        };
        let bytes = shard::encode_array(&value)?;
        let mut counts = vec![0 as Count; group.len()];
        comm.all_gather_into(&count(bytes.len())?, &mut counts[..]);
        let mut displs = Vec::with_capacity(counts.len());
        let mut total: Count = 0;
        for &c in &counts {
            displs.push(total);
            total += c;
        }
        let mut received = vec![0u8; usize::try_from(total).unwrap_or(0)];
        {
            let mut partition = PartitionMut::new(&mut received[..], &counts[..], &displs[..]);
            comm.all_gather_varcount_into(&bytes[..], &mut partition);
        }
        (counts.iter().zip(&displs))
            .map(|(&c, &d)| {
                let (c, d) = (c as usize, d as usize);
                shard::decode_array(&received[d..d + c])
            })
            .collect()
    }

    fn finish(&self, _device: usize) {}

    /// A float32 sum over every process is one `MPI_Allreduce`.
    fn sum(
        &self,
        _seq: u64,
        _device: usize,
        group: &[usize],
        value: &Array,
    ) -> Option<Result<Array>> {
        let world = SimpleCommunicator::world();
        if value.dtype() != DType::F32 || Some(group.len()) != usize::try_from(world.size()).ok() {
            return None;
        }
        Some((|| {
            let send = value.to_vec::<f32>()?;
            let mut total = vec![0.0f32; send.len()];
            world.all_reduce_into(&send[..], &mut total[..], SystemOperation::sum());
            Ok(Array::from_vec(value.shape(), total)?.with_weak(value.is_weak()))
        })())
    }
}
