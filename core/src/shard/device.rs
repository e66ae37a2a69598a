//! Devices as worker threads: running a `shard_map`'s per-device program once per device of
//! the mesh, each on its own thread with its block of every input, and the in-process
//! communicator the collectives exchange values through.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use super::collective::CollectiveOp;
use super::mesh::Mesh;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::program::Program;
use crate::tensor::Array;

/// How a `shard_map` equation places its operands and results on the mesh: for each, the
/// mesh axes each leading dimension is split over (empty: not split).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShardSpec {
    /// The mesh.
    pub mesh: Mesh,
    /// Per operand.
    pub in_specs: Vec<Vec<Vec<String>>>,
    /// Per result.
    pub out_specs: Vec<Vec<Vec<String>>>,
    /// `pmap`: a dimension split over mesh axes has one element per device, removed inside
    /// (each device sees its slice) and stacked outside.
    pub mapped: bool,
    /// Over processes: operands and results are this process's blocks, not whole arrays
    /// (`ShardMap::process_local`).
    pub local: bool,
}

impl ShardSpec {
    /// The global shape of a value whose block on one device has `local` shape.
    /// With [`ShardSpec::local`], the block's shape itself.
    pub fn global_shape(&self, local: &[usize], dims: &[Vec<String>]) -> Vec<usize> {
        let mut shape = local.to_vec();
        if self.local {
            return shape;
        }
        for (d, names) in dims.iter().enumerate() {
            if names.is_empty() {
                continue;
            }
            match self.mapped {
                true => shape.insert(d.min(shape.len()), self.mesh.count(names)),
                false => {
                    if let Some(n) = shape.get_mut(d) {
                        *n *= self.mesh.count(names);
                    }
                }
            }
        }
        shape
    }
}

/// How the devices of a `shard_map` run exchange the values of their collectives: in
/// memory between the threads of one process ([`run_sharded`]'s own), or between
/// processes ([`ProcessGroup::transport`], such as `nnx-mpi`'s over MPI).
pub trait Transport: Send + Sync {
    /// Gives `value` as `device`'s part of collective number `seq` (`name`: `psum`, …; the
    /// devices number their collectives alike) and returns the values of the devices in
    /// `group`, in that order, once they have all given theirs. Every device of the mesh
    /// calls it for every collective, each with its own group (the groups partition the
    /// mesh).
    ///
    /// # Errors
    /// [`Error::Sharding`] when devices disagree or a device of the group will never give
    /// its value; the transport's failures.
    fn exchange(
        &self,
        seq: u64,
        name: &'static str,
        device: usize,
        group: &[usize],
        value: Array,
    ) -> Result<Vec<Array>>;

    /// `device`'s program ended (normally or not): a peer waiting for it must not wait
    /// forever.
    fn finish(&self, device: usize);

    /// The elementwise sum of the group's values, when the transport has a reduction of
    /// its own for this value (an `MPI_Allreduce`); `None` to exchange the values and add
    /// them in device order. Provided: `None`.
    ///
    /// # Errors
    /// As [`Transport::exchange`].
    fn sum(
        &self,
        _seq: u64,
        _device: usize,
        _group: &[usize],
        _value: &Array,
    ) -> Option<Result<Array>> {
        None
    }
}

/// The processes of a multi-process run (one device each): what a [`Mesh`] made with
/// [`Mesh::over_processes`] runs on. Installed for the whole process with
/// [`set_process_group`].
pub trait ProcessGroup: Send + Sync {
    /// This process's index.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn size(&self) -> usize;
    /// The exchange between the processes.
    fn transport(&self) -> Arc<dyn Transport>;
}

static PROCESS_GROUP: std::sync::RwLock<Option<Arc<dyn ProcessGroup>>> =
    std::sync::RwLock::new(None);

/// Installs (or with `None` removes) the process group that meshes made with
/// [`Mesh::over_processes`] run on.
pub fn set_process_group(group: Option<Arc<dyn ProcessGroup>>) {
    *PROCESS_GROUP
        .write()
        .unwrap_or_else(PoisonError::into_inner) = group;
}

/// The installed process group.
pub fn process_group() -> Option<Arc<dyn ProcessGroup>> {
    PROCESS_GROUP
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The exchange of values between the devices (threads) of one in-process `shard_map` run.
struct Comm {
    state: Mutex<CommState>,
    changed: Condvar,
    devices: usize,
}

#[derive(Default)]
struct CommState {
    /// Per collective (by sequence number): its name, each device's value, how many have
    /// read the values.
    slots: HashMap<u64, (&'static str, Vec<Option<Array>>, usize)>,
    /// Devices whose program ended (normally or not).
    finished: Vec<bool>,
}

impl Comm {
    fn new(devices: usize) -> Comm {
        Comm {
            state: Mutex::new(CommState {
                slots: HashMap::new(),
                finished: vec![false; devices],
            }),
            changed: Condvar::new(),
            devices,
        }
    }
}

impl Transport for Comm {
    fn finish(&self, device: usize) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.finished[device] = true;
        self.changed.notify_all();
    }

    /// Waits on a condition variable until every device of the group has given its value.
    fn exchange(
        &self,
        seq: u64,
        name: &'static str,
        device: usize,
        group: &[usize],
        value: Array,
    ) -> Result<Vec<Array>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let devices = self.devices;
        let slot = state
            .slots
            .entry(seq)
            .or_insert_with(|| (name, vec![None; devices], 0));
        if slot.0 != name {
            return Err(mismatch(seq, slot.0, name));
        }
        slot.1[device] = Some(value);
        self.changed.notify_all();
        loop {
            let slot = state
                .slots
                .get(&seq)
                .ok_or_else(|| Error::internal("a collective's values were freed early"))?;
            if slot.0 != name {
                return Err(mismatch(seq, slot.0, name));
            }
            if group.iter().all(|&d| slot.1[d].is_some()) {
                let values = group
                    .iter()
                    .filter_map(|&d| slot.1[d].clone())
                    .collect::<Vec<_>>();
                let slot = state
                    .slots
                    .get_mut(&seq)
                    .ok_or_else(|| Error::internal("a collective's values were freed early"))?;
                slot.2 += 1;
                if slot.2 == devices {
                    state.slots.remove(&seq);
                }
                return Ok(values);
            }
            if group
                .iter()
                .any(|&d| state.finished[d] && slot.1[d].is_none())
            {
                return Err(Error::Sharding(format!(
                    "{name}: not every device of the group reached this collective (a device \
                     finished or failed first; collectives must not depend on device-varying \
                     control flow)"
                )));
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

fn mismatch(seq: u64, first: &str, second: &str) -> Error {
    Error::Sharding(format!(
        "devices disagree on collective number {seq}: {first} on one, {second} on another \
         (collectives must not depend on device-varying control flow)"
    ))
}

/// One device of a running `shard_map`: what its thread's collectives need.
pub(crate) struct Device {
    pub(crate) mesh: Mesh,
    pub(crate) coords: Vec<usize>,
    index: usize,
    comm: Arc<dyn Transport>,
    seq: u64,
}

impl Device {
    /// This device's part of `op` on `value`: the values of its group (the devices that
    /// differ from it only along `op`'s axes), ordered by their index along them.
    pub(crate) fn exchange(&mut self, op: &CollectiveOp, value: Array) -> Result<Vec<Array>> {
        let group = self.mesh.group(&self.coords, op.axes());
        let seq = self.seq;
        self.seq += 1;
        self.comm
            .exchange(seq, op.name(), self.index, &group, value)
    }

    /// The sum of the group's values by the transport's own reduction, if it has one
    /// ([`Transport::sum`]); the collective number is used either way.
    pub(crate) fn transport_sum(
        &mut self,
        op: &CollectiveOp,
        value: &Array,
    ) -> Option<Result<Array>> {
        let group = self.mesh.group(&self.coords, op.axes());
        let result = self.comm.sum(self.seq, self.index, &group, value);
        if result.is_some() {
            self.seq += 1;
        }
        result
    }
}

thread_local! {
    static DEVICE: RefCell<Option<Device>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's device.
///
/// # Errors
/// [`Error::Sharding`] when this thread is not a `shard_map` device; `f`'s errors.
pub(crate) fn with_device<T>(op: &str, f: impl FnOnce(&mut Device) -> Result<T>) -> Result<T> {
    DEVICE.with(|d| match d.borrow_mut().as_mut() {
        Some(device) => f(device),
        None => Err(Error::Sharding(format!(
            "{op} ran outside shard_map: collectives run only on a mesh's devices"
        ))),
    })
}

/// Device `device`'s block of `array` placed as `dims` says (with `mapped`, the split
/// dimensions removed).
fn block(
    mesh: &Mesh,
    coords: &[usize],
    array: &Array,
    dims: &[Vec<String>],
    mapped: bool,
) -> Result<Array> {
    let mut out = array.clone();
    for (d, names) in dims.iter().enumerate().rev() {
        if names.is_empty() {
            continue;
        }
        let (index, count) = mesh.index_along(coords, names);
        let n = out.shape()[d] / count;
        out = match mapped {
            true => out.index_axis(d as isize, index as isize)?,
            false => out.slice_axis(d as isize, index * n..(index + 1) * n)?,
        };
    }
    Ok(out)
}

/// The global array from the devices' blocks (`blocks[device]`), placed as `dims` says
/// (with `mapped`, stacked along the split dimensions): along an axis no dimension names
/// the devices hold replicas, and the first is taken.
fn assemble(mesh: &Mesh, blocks: &[Array], dims: &[Vec<String>], mapped: bool) -> Result<Array> {
    // Concatenate the last split dimension first: devices that differ only along its axes
    // give one array, and so on outwards.
    let named: Vec<String> = dims.iter().flatten().cloned().collect();
    // The representative devices: coordinate 0 on every axis no dimension names.
    let mut current: HashMap<Vec<usize>, Array> = HashMap::new();
    for (device, b) in blocks.iter().enumerate() {
        let coords = mesh.coords(device);
        let replica = (mesh.axes().iter().zip(&coords))
            .any(|((name, _), c)| !named.contains(name) && *c != 0);
        if !replica {
            let mut b = b.clone();
            if mapped {
                for (d, names) in dims.iter().enumerate() {
                    if !names.is_empty() {
                        b = b.expand_dims(d as isize)?;
                    }
                }
            }
            current.insert(coords, b);
        }
    }
    for (d, names) in dims.iter().enumerate().rev() {
        if names.is_empty() {
            continue;
        }
        let mut next: HashMap<Vec<usize>, Vec<(usize, Array)>> = HashMap::new();
        for (coords, a) in current {
            let (index, _) = mesh.index_along(&coords, names);
            let mut key = coords.clone();
            for name in names {
                if let Some(axis) = mesh.axis(name) {
                    key[axis] = 0;
                }
            }
            next.entry(key).or_default().push((index, a));
        }
        current = next
            .into_iter()
            .map(|(key, mut parts)| {
                parts.sort_by_key(|(i, _)| *i);
                let arrays: Vec<Array> = parts.into_iter().map(|(_, a)| a).collect();
                Array::concatenate(&arrays, d as isize).map(|a| (key, a))
            })
            .collect::<Result<_>>()?;
    }
    current
        .into_values()
        .next()
        .ok_or_else(|| Error::internal("shard_map assembled no block"))
}

/// Runs `program` once per device of `spec.mesh`, each on its own thread with its block of
/// every input, and assembles the results. What an engine's
/// [`run_shard_map`](crate::Engine::run_shard_map) does by default.
///
/// # Errors
/// The first device's error (a device that fails makes the others' collectives fail
/// rather than wait), and inputs that do not split as `spec` says.
pub fn run_sharded(
    engine: &(impl Engine + ?Sized),
    program: &Program,
    spec: &ShardSpec,
    inputs: &[Array],
) -> Result<Vec<Array>> {
    let mesh = &spec.mesh;
    if mesh.is_over_processes() {
        return run_in_processes(engine, program, spec, inputs);
    }
    let devices = mesh.devices();
    let comm: Arc<dyn Transport> = Arc::new(Comm::new(devices));
    let shards = (0..devices)
        .map(|device| {
            let coords = mesh.coords(device);
            (inputs.iter().zip(&spec.in_specs))
                .map(|(a, dims)| block(mesh, &coords, a, dims, spec.mapped))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    let results: Vec<Result<Vec<Array>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shards
            .into_iter()
            .enumerate()
            .map(|(index, shard)| {
                let comm = comm.clone();
                let mesh = mesh.clone();
                scope.spawn(move || {
                    run_device(engine, program, &shard, mesh, index, comm).map(|(out, _)| out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Internal {
                        what: "a shard_map device panicked".into(),
                    })
                })
            })
            .collect()
    });
    // A device's own error before the errors it caused on the others.
    let mut per_device = Vec::with_capacity(devices);
    let mut caused = None;
    for result in results {
        match result {
            Ok(outputs) => per_device.push(outputs),
            Err(e @ Error::Sharding(_)) => caused = caused.or(Some(e)),
            Err(e) => return Err(e),
        }
    }
    if let Some(e) = caused {
        return Err(e);
    }
    (0..spec.out_specs.len())
        .map(|j| {
            let blocks: Vec<Array> = (per_device.iter())
                .map(|outs| outs.get(j).cloned())
                .collect::<Option<_>>()
                .ok_or_else(|| Error::malformed_program("a device gave too few results"))?;
            assemble(mesh, &blocks, &spec.out_specs[j], spec.mapped)
        })
        .collect()
}

/// Runs `program` as device `index` on this thread, its collectives going through `comm`;
/// returns the outputs and the device's next collective number.
fn run_device(
    engine: &(impl Engine + ?Sized),
    program: &Program,
    inputs: &[Array],
    mesh: Mesh,
    index: usize,
    comm: Arc<dyn Transport>,
) -> Result<(Vec<Array>, u64)> {
    let nested = DEVICE.with(|d| d.borrow().is_some());
    if nested {
        comm.finish(index);
        return Err(Error::Sharding(
            "a shard_map over processes inside a shard_map body is not supported".into(),
        ));
    }
    let coords = mesh.coords(index);
    DEVICE.with(|d| {
        *d.borrow_mut() = Some(Device {
            mesh,
            coords,
            index,
            comm: comm.clone(),
            seq: 0,
        })
    });
    let result = engine.run(program, inputs);
    let seq = DEVICE.with(|d| d.borrow_mut().take().map_or(0, |d| d.seq));
    comm.finish(index);
    result.map(|out| (out, seq))
}

/// [`run_sharded`] over the processes of the installed [`ProcessGroup`]: this process runs
/// its device on this thread, then the devices exchange their result blocks so that every
/// process gets the whole results (the arguments are whole in every process too) — or,
/// with [`ShardSpec::local`], arguments and results are this process's blocks.
fn run_in_processes(
    engine: &(impl Engine + ?Sized),
    program: &Program,
    spec: &ShardSpec,
    inputs: &[Array],
) -> Result<Vec<Array>> {
    let mesh = &spec.mesh;
    let group = mesh.process_group()?;
    let index = group.rank();
    let coords = mesh.coords(index);
    let shard = match spec.local {
        true => inputs.to_vec(),
        false => (inputs.iter().zip(&spec.in_specs))
            .map(|(a, dims)| block(mesh, &coords, a, dims, spec.mapped))
            .collect::<Result<Vec<_>>>()?,
    };
    let transport = group.transport();
    // Every process says whether its device succeeded before any result moves, so that a
    // failure on one is an error on all rather than a wait.
    let (outputs, mut seq) = match run_device(
        engine,
        program,
        &shard,
        mesh.clone(),
        index,
        transport.clone(),
    ) {
        Ok((outputs, seq)) => (Ok(outputs), seq),
        Err(e) => (Err(e), u64::MAX / 2),
    };
    let everyone: Vec<usize> = (0..mesh.devices()).collect();
    let ok = Array::scalar(i32::from(outputs.is_ok()));
    let status = transport.exchange(u64::MAX / 2, "status", index, &everyone, ok)?;
    let outputs = outputs?;
    if status
        .iter()
        .any(|s| s.to_vec::<i32>().map_or(true, |v| v != [1]))
    {
        return Err(Error::Sharding(
            "shard_map failed on another process".into(),
        ));
    }
    seq = seq.max(u64::MAX / 2 + 1);
    (outputs.into_iter().zip(&spec.out_specs))
        .map(|(block_j, dims)| {
            // Replicated (checked when traced): every process already has it; process-local
            // results stay this process's blocks.
            if spec.local || dims.iter().all(Vec::is_empty) {
                return Ok(block_j);
            }
            let blocks = transport.exchange(seq, "gather", index, &everyone, block_j)?;
            seq += 1;
            assemble(mesh, &blocks, dims, spec.mapped)
        })
        .collect()
}

/// An array as bytes (dtype, shape, little-endian data), for transports between processes.
///
/// # Errors
/// [`Error::Sharding`] for a dtype that does not travel (PRNG keys).
pub fn encode_array(array: &Array) -> Result<Vec<u8>> {
    use crate::tensor::DType;
    let (tag, data): (u8, Vec<u8>) = match array.dtype() {
        DType::F32 => (0, le_bytes(&array.to_vec::<f32>()?, f32::to_le_bytes)),
        DType::I32 => (1, le_bytes(&array.to_vec::<i32>()?, i32::to_le_bytes)),
        DType::U32 => (2, le_bytes(&array.to_vec::<u32>()?, u32::to_le_bytes)),
        DType::Bool => (
            3,
            array
                .to_vec::<bool>()?
                .iter()
                .map(|&v| u8::from(v))
                .collect(),
        ),
        other => {
            return Err(Error::Sharding(format!(
                "arrays of dtype {other} cannot be sent between processes"
            )));
        }
    };
    let mut out = vec![tag, u8::from(array.is_weak())];
    out.extend((array.shape().len() as u64).to_le_bytes());
    for &d in array.shape() {
        out.extend((d as u64).to_le_bytes());
    }
    out.extend(data);
    Ok(out)
}

fn le_bytes<T: Copy>(values: &[T], bytes: fn(T) -> [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 4);
    for &v in values {
        out.extend_from_slice(&bytes(v));
    }
    out
}

/// The array [`encode_array`] encoded.
///
/// # Errors
/// [`Error::Sharding`] for bytes that are not an encoded array.
pub fn decode_array(bytes: &[u8]) -> Result<Array> {
    let bad = || Error::Sharding("a transport delivered bytes that are not an array".into());
    let word = |at: usize| -> Result<u64> {
        let b: [u8; 8] = bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        Ok(u64::from_le_bytes(b))
    };
    let (&tag, &weak) = (
        bytes.first().ok_or_else(bad)?,
        bytes.get(1).ok_or_else(bad)?,
    );
    let ndim = usize::try_from(word(2)?).map_err(|_| bad())?;
    let shape = (0..ndim)
        .map(|i| word(10 + 8 * i).and_then(|d| usize::try_from(d).map_err(|_| bad())))
        .collect::<Result<Vec<_>>>()?;
    let data = bytes.get(10 + 8 * ndim..).ok_or_else(bad)?;
    fn words<T>(data: &[u8], from: fn([u8; 4]) -> T) -> Vec<T> {
        data.chunks_exact(4)
            .map(|c| from([c[0], c[1], c[2], c[3]]))
            .collect()
    }
    let array = match tag {
        0 => Array::from_vec(&shape, words(data, f32::from_le_bytes))?,
        1 => Array::from_vec(&shape, words(data, i32::from_le_bytes))?,
        2 => Array::from_vec(&shape, words(data, u32::from_le_bytes))?,
        3 => Array::from_vec(&shape, data.iter().map(|&b| b != 0).collect::<Vec<bool>>())?,
        _ => return Err(bad()),
    };
    Ok(array.with_weak(weak != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_survive_encoding() -> Result<()> {
        let arrays = [
            Array::from_vec(&[2, 2], vec![1.5f32, -2.0, 0.0, 3.25])?,
            Array::from_vec(&[3], vec![1i32, -7, 9])?,
            Array::from_vec(&[2], vec![true, false])?,
            Array::weak_scalar(2.0f32),
        ];
        for a in arrays {
            let back = decode_array(&encode_array(&a)?)?;
            assert_eq!(
                (back.shape(), back.dtype(), back.is_weak()),
                (a.shape(), a.dtype(), a.is_weak())
            );
            assert!(back.identical(&a) || back.to_f64_vec()? == a.to_f64_vec()?);
        }
        assert!(decode_array(&[9, 0]).is_err());
        Ok(())
    }

    #[test]
    fn blocks_are_split_and_put_back_together() -> Result<()> {
        let mesh = Mesh::new([("x", 2), ("y", 2)])?;
        let a = Array::from_vec(&[4, 2], (0..8).map(|i| i as f32).collect())?;
        let dims = vec![vec!["x".to_owned()], vec!["y".to_owned()]];
        let blocks = (0..4)
            .map(|d| block(&mesh, &mesh.coords(d), &a, &dims, false))
            .collect::<Result<Vec<_>>>()?;
        assert_eq!(blocks[1].to_vec::<f32>()?, vec![1.0, 3.0]);
        let whole = assemble(&mesh, &blocks, &dims, false)?;
        assert_eq!(whole.to_vec::<f32>()?, a.to_vec::<f32>()?);
        // Replicated along y: the first replica is taken.
        let rows = vec![vec!["x".to_owned()]];
        let blocks = (0..4)
            .map(|d| block(&mesh, &mesh.coords(d), &a, &rows, false))
            .collect::<Result<Vec<_>>>()?;
        assert_eq!(assemble(&mesh, &blocks, &rows, false)?.shape(), &[4, 2]);
        Ok(())
    }
}
