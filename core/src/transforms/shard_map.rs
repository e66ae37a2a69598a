//! `shard_map`: a function run once per device of a [`Mesh`] on each argument's block, with
//! collectives between the devices, and NNX objects carried across as `vmap` carries them.

use std::fmt;
use std::sync::Arc;

use super::args::IntoArgs;
use super::pipeline::{self, Cache, Rules};
use super::typed::{self, Body, IntoBody};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::graph::{Filter, Value};
use crate::lift::{Lowered, LoweredLeaf, Prefix};
use crate::program::{AbstractValue, Primitive, Program, ProgramRef};
use crate::shard::{AxisScope, Mesh, PartitionSpec, ShardSpec, bits, varying};
use crate::tensor::Tensor;

/// How `shard_map` places one value on the mesh (a leaf of `in_specs` / `out_specs`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Spec {
    /// Split as this `PartitionSpec` says.
    Partition(PartitionSpec),
    /// Each Variable as its `sharding` metadata says (Flax's `nnx.get_partition_spec`);
    /// replicated when it has none, and for raw arrays.
    FromMetadata,
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::Partition(p) => write!(f, "{p}"),
            Spec::FromMetadata => f.write_str("get_partition_spec"),
        }
    }
}

/// `in_specs` / `out_specs` of [`shard_map`]: a [`Prefix`] of [`Spec`]. Converts from a
/// [`PartitionSpec`] (for everything under it), [`Spec`], tuples of those, and
/// [`StateSharding`].
pub type SpecPrefix = Prefix<Spec>;

impl From<PartitionSpec> for Prefix<Spec> {
    fn from(spec: PartitionSpec) -> SpecPrefix {
        Prefix::Leaf(Spec::Partition(spec))
    }
}

crate::lift::prefix_from_tuples!(Spec);

/// `nnx.StateSharding`: places the Variables of one object by filter (the first that
/// matches); only valid directly on a graph node.
#[derive(Clone, Debug)]
pub struct StateSharding(Vec<(Filter, Spec)>);

impl StateSharding {
    /// Groups in order: each Variable goes with the first filter that matches it.
    pub fn new(groups: impl IntoIterator<Item = (Filter, PartitionSpec)>) -> StateSharding {
        StateSharding(
            groups
                .into_iter()
                .map(|(f, p)| (f, Spec::Partition(p)))
                .collect(),
        )
    }
}

/// `nnx.get_partition_spec(state)`: each Variable's `sharding` metadata as its
/// `PartitionSpec` (replicated without one; raw arrays replicated), grouped by path into a
/// [`StateSharding`] for `in_specs` / `out_specs`. What `Spec::FromMetadata` reads at each
/// call, fixed to the Variables `node` has now.
///
/// ```
/// use nnx_core::{Object, Param, Tensor, static_tuple, Static};
/// use nnx_core::transforms::get_partition_spec;
/// let w = Param::new(Tensor::ones([4, 2]));
/// w.set_metadata("sharding", static_tuple!["data", Static::None])?;
/// let m = Object::new("M").with("w", &w)?.with("b", Param::new(Tensor::zeros([2])))?;
/// let specs = get_partition_spec(&m);
/// assert_eq!(
///     nnx_core::transforms::SpecPrefix::from(specs).to_string(),
///     "StateAxes({PathIn(('b',)): PartitionSpec(), PathIn(('w',)): PartitionSpec('data', None)})"
/// );
/// # Ok::<(), nnx_core::Error>(())
/// ```
pub fn get_partition_spec(node: &impl crate::graph::GraphValue) -> StateSharding {
    let mut groups: Vec<(PartitionSpec, Vec<crate::graph::Path>)> = Vec::new();
    for (path, leaf) in crate::graph::state(node).iter() {
        let spec = (leaf.as_variable())
            .and_then(|v| v.metadata_value("sharding"))
            .and_then(|s| PartitionSpec::from_sharding(&s))
            .unwrap_or_default();
        match groups.iter_mut().find(|(s, _)| *s == spec) {
            Some((_, paths)) => paths.push(path.clone()),
            None => groups.push((spec, vec![path.clone()])),
        }
    }
    StateSharding::new((groups.into_iter()).map(|(spec, paths)| (Filter::PathIn(paths), spec)))
}

impl From<StateSharding> for Prefix<Spec> {
    fn from(sharding: StateSharding) -> SpecPrefix {
        Prefix::StateAxes(sharding.0)
    }
}

/// `jax.shard_map(f, mesh, in_specs, out_specs)` with NNX semantics (`nnx.shard_map`): `f`
/// runs once per device of `mesh` — on one machine each device is a worker thread — on
/// each argument's block as `in_specs` says (default: replicated), and the devices'
/// results are put together as `out_specs` says (default: replicated). Inside, the
/// collectives of [`crate::shard`] (`psum`, `all_gather`, …) name the mesh's axes.
/// Objects cross as they cross `vmap`: their Variables are split as their specs say
/// (`Spec::FromMetadata` reads each Variable's `sharding` metadata), and state and graph
/// updates propagate out, put together with the arguments' specs.
///
/// Before anything runs: axis names the mesh does not have, specs with more entries than
/// their value has dimensions or naming an axis twice, dimensions that do not split evenly
/// (each naming the argument path and the axis), and a result the out specs replicate over
/// an axis it varies along (reduce it with `psum`/`pmean` first, or split it).
///
/// ```
/// use nnx_core::{Tensor, Value, Result, shard::{Mesh, PartitionSpec, psum}, transforms::shard_map};
/// let mesh = Mesh::new([("data", 2)])?;
/// let total = shard_map(|x: &Tensor| -> Result<Tensor> { psum(&x.sum(nnx_core::Axes::All)?, "data") }, &mesh)
///     .in_specs((PartitionSpec::new([Some("data")]),))
///     .out_specs(PartitionSpec::replicated());
/// assert_eq!(total.trace_count(), 0);
/// # Ok::<(), nnx_core::Error>(())
/// ```
pub fn shard_map<M, F: IntoBody<M>>(f: F, mesh: &Mesh) -> ShardMap<F::Body> {
    ShardMap {
        f: f.into_body(),
        devices: Devices::Mesh(mesh.clone()),
        in_specs: PartitionSpec::replicated().into(),
        out_specs: PartitionSpec::replicated().into(),
        local: false,
        invalid: None,
        cache: Cache::default(),
    }
}

/// `jax.pmap(f, axis_name)` in its classic form, with NNX semantics (`nnx.pmap`): one
/// device per element of the mapped arguments' leading axis (a one-axis mesh named
/// `axis_name`), each seeing its slice without that axis; the results are stacked along a
/// new leading axis. `in_axes` / `out_axes` take `0` (mapped) or `None` (replicated) per
/// argument, as [`vmap`](super::vmap)'s do; collectives name `axis_name`.
///
/// ```
/// use nnx_core::{Tensor, Result, shard::psum, transforms::pmap};
/// let normalise = pmap(|x: &Tensor| -> Result<Tensor> { x / &psum(x, "i")? }, "i");
/// assert_eq!(normalise.trace_count(), 0);
/// ```
pub fn pmap<M, F: IntoBody<M>>(f: F, axis_name: &str) -> ShardMap<F::Body> {
    let mapped = PartitionSpec::new([Some(axis_name)]);
    ShardMap {
        f: f.into_body(),
        devices: Devices::Pmap(axis_name.to_owned()),
        in_specs: mapped.clone().into(),
        out_specs: mapped.into(),
        local: false,
        invalid: None,
        cache: Cache::default(),
    }
}

/// The devices a [`ShardMap`] runs on.
enum Devices {
    /// A given mesh.
    Mesh(Mesh),
    /// `pmap`: one axis of this name, as long as the mapped arguments' leading axis.
    Pmap(String),
}

/// A function run per device of a mesh; see [`shard_map`] and [`pmap`].
pub struct ShardMap<F> {
    f: F,
    devices: Devices,
    in_specs: SpecPrefix,
    out_specs: SpecPrefix,
    /// Arguments and results over processes are this process's blocks.
    local: bool,
    /// An `in_axes`/`out_axes` that `pmap` cannot take, reported when called.
    invalid: Option<String>,
    cache: Cache<Spec, ()>,
}

impl<F: Body> ShardMap<F> {
    /// `pmap`'s `in_axes`: `0` maps an argument's leading axis, `None` replicates it.
    pub fn in_axes(mut self, axes: impl Into<super::AxisSpec>) -> ShardMap<F> {
        match self.axes_to_specs(&axes.into()) {
            Ok(specs) => self.in_specs = specs,
            Err(e) => self.invalid = Some(e.to_string()),
        }
        self
    }

    /// `pmap`'s `out_axes`: `0` stacks an output along a new leading axis, `None` takes
    /// it as the same on every device.
    pub fn out_axes(mut self, axes: impl Into<super::AxisSpec>) -> ShardMap<F> {
        match self.axes_to_specs(&axes.into()) {
            Ok(specs) => self.out_specs = specs,
            Err(e) => self.invalid = Some(e.to_string()),
        }
        self
    }

    fn axes_to_specs(&self, axes: &super::AxisSpec) -> Result<SpecPrefix> {
        let Devices::Pmap(name) = &self.devices else {
            return Err(Error::Sharding(
                "in_axes/out_axes are pmap's; shard_map takes in_specs/out_specs".into(),
            ));
        };
        axes.try_map(&|axis: &super::Axis| match axis.0 {
            Some(0) => Ok(Spec::Partition(PartitionSpec::new([Some(name.as_str())]))),
            None => Ok(Spec::Partition(PartitionSpec::replicated())),
            Some(k) => Err(Error::Sharding(format!(
                "pmap maps the leading axis (0) or none, not axis {k}"
            ))),
        })
    }

    /// How each argument is split (default: replicated).
    pub fn in_specs(mut self, specs: impl Into<SpecPrefix>) -> ShardMap<F> {
        self.in_specs = specs.into();
        self
    }

    /// On a mesh over processes ([`Mesh::over_processes`]), with `true`: each process
    /// passes *its* block of every argument split over the mesh (its part of the batch, as
    /// it loaded it) and gets its block of every such result, instead of whole arrays in
    /// every process (`jax.make_array_from_process_local_data`). Replicated values are
    /// whole, as always. Memory per process then shrinks with the number of processes.
    pub fn process_local(mut self, local: bool) -> ShardMap<F> {
        self.local = local;
        self
    }

    /// How each output is put together (default: replicated); arguments' state keeps its
    /// `in_specs`.
    pub fn out_specs(mut self, specs: impl Into<SpecPrefix>) -> ShardMap<F> {
        self.out_specs = specs.into();
        self
    }

    /// Calls the function on every device. It is traced once per structure.
    ///
    /// # Errors
    /// [`Error::Sharding`] for the spec errors above and for devices that disagree on their
    /// collectives; prefix, aliasing and closure-rule errors; whatever `f` returns. On error
    /// the caller's objects are unchanged.
    pub fn call(&self, engine: &(impl Engine + ?Sized), args: impl IntoArgs) -> Result<F::Output> {
        typed::output::<F>(pipeline::call(self, &self.cache, engine, &args.into_args())?.value)
    }

    /// How many times the function has been traced.
    pub fn trace_count(&self) -> usize {
        self.cache.trace_count()
    }

    /// The mesh axes each dimension of `leaf` is split over, checked against the mesh and
    /// the leaf's shape (`what`: `in_specs` or `out_specs`).
    fn dims_of(
        &self,
        mesh: &Mesh,
        leaf: &LoweredLeaf<Spec>,
        what: &str,
        shape: &[usize],
    ) -> Result<Vec<Vec<String>>> {
        let spec = match &leaf.prefix {
            Spec::Partition(p) => p.clone(),
            Spec::FromMetadata => (leaf.variable.as_ref())
                .and_then(|v| v.metadata_value("sharding"))
                .and_then(|s| PartitionSpec::from_sharding(&s))
                .unwrap_or_default(),
        };
        // A pmap output gets its mapped axis added; inputs are split, outputs put together.
        let inputs = what == "in_specs";
        let added = usize::from(self.mapped() && !inputs);
        let split = inputs && !self.mapped() && !self.local;
        mesh.check_spec(&spec, shape, added, split, &|| {
            format!("{what} for {}", leaf.location())
        })?;
        Ok(spec.dims().to_vec())
    }

    fn mapped(&self) -> bool {
        matches!(self.devices, Devices::Pmap(_))
    }

    /// The mesh: the given one, or for `pmap` one axis as long as the mapped leaves'
    /// leading axis.
    fn mesh_for(&self, lowered: &Lowered<Spec>) -> Result<Mesh> {
        let name = match &self.devices {
            Devices::Mesh(mesh) => return Ok(mesh.clone()),
            Devices::Pmap(name) => name,
        };
        let mapped: Vec<(String, Vec<usize>)> = (lowered.leaves().iter())
            .filter(|l| matches!(&l.prefix, Spec::Partition(p) if !p.dims().is_empty()))
            .map(|l| (l.location(), l.value.shape().to_vec()))
            .collect();
        let sizes: Vec<Option<usize>> = mapped.iter().map(|(_, s)| s.first().copied()).collect();
        match sizes.first() {
            None => Err(Error::Sharding(
                "pmap needs at least one argument mapped (in_axes 0)".into(),
            )),
            Some(Some(n)) if sizes.iter().all(|s| *s == Some(*n)) => {
                Mesh::new([(name.as_str(), *n)])
            }
            Some(_) => {
                let lines: Vec<String> = (mapped.iter())
                    .map(|(at, shape)| format!("  {at}: shape {shape:?}"))
                    .collect();
                Err(Error::Sharding(format!(
                    "pmap maps the leading axis of each mapped argument, which must have one \
                     size:\n{}",
                    lines.join("\n")
                )))
            }
        }
    }
}

/// What `prepare` finds: the mesh, and each leaf's split dimensions.
pub(crate) struct Placed {
    mesh: Mesh,
    in_dims: Vec<Vec<Vec<String>>>,
}

impl<F: Body> Rules for ShardMap<F> {
    type Leaf = Spec;
    type Prepared = Placed;
    type Extra = ();

    fn in_prefix(&self, _args: &[Value]) -> Result<SpecPrefix> {
        match &self.invalid {
            Some(e) => Err(Error::Sharding(e.clone())),
            None => Ok(self.in_specs.clone()),
        }
    }

    fn out_prefix(&self) -> SpecPrefix {
        self.out_specs.clone()
    }

    fn apply(&self, args: &[Value]) -> Result<Value> {
        self.f.apply(args)
    }

    /// Checks each argument's spec and gives its per-device block's shape.
    fn prepare(
        &self,
        _args: &[Value],
        lowered: &mut Lowered<Spec>,
    ) -> Result<(Vec<AbstractValue>, Placed)> {
        let mesh = self.mesh_for(lowered)?;
        if self.local && (self.mapped() || !mesh.is_over_processes()) {
            return Err(Error::Sharding(format!(
                "process_local(true) needs a shard_map over a mesh over processes, not {}",
                match self.mapped() {
                    true => "pmap".to_owned(),
                    false => mesh.to_string(),
                }
            )));
        }
        let mut in_dims = Vec::with_capacity(lowered.leaves().len());
        let mut avals = Vec::with_capacity(lowered.leaves().len());
        for leaf in lowered.leaves() {
            let mut aval = leaf.value.aval();
            let dims = self.dims_of(&mesh, leaf, "in_specs", &aval.shape)?;
            for (d, names) in dims.iter().enumerate().rev() {
                if names.is_empty() {
                    continue;
                }
                if self.mapped() {
                    aval.shape.remove(d);
                    continue;
                }
                // A process-local argument is its block already.
                if self.local {
                    continue;
                }
                let count = mesh.count(names);
                aval.shape[d] /= count;
            }
            in_dims.push(dims);
            avals.push(aval);
        }
        Ok((avals, Placed { mesh, in_dims }))
    }

    /// Traces the function on the blocks, with the mesh's axes bound for collectives.
    fn body(
        &self,
        lowered: &Lowered<Spec>,
        prefix: &Prefix<Spec>,
        placed: &Placed,
        inputs: Vec<Tensor>,
    ) -> Result<(Vec<Tensor>, Lowered<Spec>)> {
        let _axes = AxisScope::enter(&placed.mesh);
        pipeline::lift_body(self, lowered, prefix, inputs)
    }

    /// Places the outputs, checks that replicated ones do not vary between devices, and
    /// builds the `shard_map` equation.
    fn finish(
        &self,
        placed: Placed,
        _lowered: &Lowered<Spec>,
        outputs: &mut Lowered<Spec>,
        program: &Arc<Program>,
        captured: usize,
    ) -> Result<(Primitive, ())> {
        let mesh = &placed.mesh;
        let out_dims = (outputs.leaves().iter())
            .map(|leaf| self.dims_of(mesh, leaf, "out_specs", &leaf.value.aval().shape))
            .collect::<Result<Vec<_>>>()?;
        let in_masks: Vec<u64> = (placed.in_dims.iter())
            .map(|dims| bits(mesh, &dims.concat()))
            .chain(std::iter::repeat_n(0, captured))
            .collect();
        let out_masks = varying(program, &in_masks, mesh);
        for ((leaf, dims), mask) in outputs.leaves().iter().zip(&out_dims).zip(&out_masks) {
            let unsplit = mask & !bits(mesh, &dims.concat());
            if unsplit != 0 {
                let names: Vec<String> = (mesh.axes().iter().enumerate())
                    .filter(|(a, _)| unsplit & (1 << a) != 0)
                    .map(|(_, (n, _))| format!("'{n}'"))
                    .collect();
                return Err(Error::Sharding(format!(
                    "shard_map: {} varies along mesh axis {} but out_specs {} does not split it \
                     there, so the devices would disagree on its value: reduce it first (psum, \
                     pmean, all_gather) or give it a PartitionSpec naming the axis",
                    leaf.location(),
                    names.join(", "),
                    leaf.prefix
                )));
            }
        }
        let spec = ShardSpec {
            mesh: mesh.clone(),
            mapped: self.mapped(),
            local: self.local,
            in_specs: (placed.in_dims.into_iter())
                .chain(std::iter::repeat_n(Vec::new(), captured))
                .collect(),
            out_specs: out_dims,
        };
        Ok((
            Primitive::ShardMap {
                program: ProgramRef(program.clone()),
                spec,
            },
            (),
        ))
    }
}
