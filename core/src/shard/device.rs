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
}

impl ShardSpec {
    /// The global shape of a value whose block on one device has `local` shape.
    pub fn global_shape(&self, local: &[usize], dims: &[Vec<String>]) -> Vec<usize> {
        let mut shape = local.to_vec();
        for (d, names) in dims.iter().enumerate() {
            if names.is_empty() {
                continue;
            }
            match self.mapped {
                true => shape.insert(d.min(shape.len()), self.count(names)),
                false => {
                    if let Some(n) = shape.get_mut(d) {
                        *n *= self.count(names);
                    }
                }
            }
        }
        shape
    }

    /// How many blocks a dimension split over `names` has.
    pub fn count(&self, names: &[String]) -> usize {
        names.iter().filter_map(|n| self.mesh.size(n)).product()
    }
}

/// The exchange of values between the devices of one `shard_map` run.
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

    fn finish(&self, device: usize) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.finished[device] = true;
        self.changed.notify_all();
    }

    /// Gives `value` as `device`'s part of collective `seq`, and returns the values of the
    /// devices in `group`, in order, once they have all given theirs.
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
    comm: Arc<Comm>,
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
    let devices = mesh.devices();
    let comm = Arc::new(Comm::new(devices));
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
                    let result = engine.run(program, &shard);
                    DEVICE.with(|d| *d.borrow_mut() = None);
                    comm.finish(index);
                    result
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
