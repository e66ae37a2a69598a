//! Scaling out: a [`Mesh`] of devices with named axes, [`PartitionSpec`]s saying how arrays
//! are split over them, the collectives (`psum`, `pmean`, `pmax`, `all_gather`,
//! `psum_scatter`, `ppermute`, `axis_index`) and the machinery that runs a
//! [`shard_map`](crate::transforms::shard_map) once per device. On one machine a device is
//! a worker thread; collectives exchange values through memory.

mod collective;
mod device;
mod mesh;
mod varying;

pub use collective::{
    AxisNames, CollectiveOp, all_gather, axis_index, pmax, pmean, ppermute, psum, psum_scatter,
    with_sharding_constraint,
};
pub(crate) use collective::{AxisScope, axis_env_active};
pub use device::{
    ProcessGroup, ShardSpec, Transport, decode_array, encode_array, process_group, run_sharded,
    set_process_group,
};
pub use mesh::{MAX_DEVICES, Mesh, PartitionSpec};
pub(crate) use varying::{bits, varying};
