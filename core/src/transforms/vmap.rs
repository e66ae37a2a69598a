//! `vmap`: vectorising a function over objects and arrays, with NNX semantics.

use std::fmt;
use std::sync::Arc;

use super::args::IntoArgs;
use super::metadata::{enter_partition, leave_partition};
use super::pipeline::{self, Cache, Rules};
use super::typed::{self, Body, IntoBody};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::graph::{Filter, Path, Value};
use crate::lift::{self, Lowered, Prefix};
use crate::program::{AbstractValue, Batching, Primitive, Program, ProgramRef};

/// A `vmap` axis: `Axis(Some(k))` maps axis `k` (negative counts from the end), `Axis(None)`
/// broadcasts (the same value for every lane).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Axis(pub Option<isize>);

impl fmt::Display for Axis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("None"),
        }
    }
}

/// `in_axes` / `out_axes` of [`vmap`]: a [`Prefix`] of [`Axis`]. Converts from an integer,
/// `None::<i32>` (broadcast), tuples of those, `()`, and [`StateAxes`].
pub type AxisSpec = Prefix<Axis>;

impl From<i32> for Prefix<Axis> {
    fn from(axis: i32) -> AxisSpec {
        Prefix::Leaf(Axis(Some(axis as isize)))
    }
}

impl From<Option<i32>> for Prefix<Axis> {
    fn from(axis: Option<i32>) -> AxisSpec {
        Prefix::Leaf(Axis(axis.map(|a| a as isize)))
    }
}

/// `()`: the prefix of a function of no arguments (`in_axes=()`).
impl From<()> for Prefix<Axis> {
    fn from((): ()) -> AxisSpec {
        Prefix::Tuple(Vec::new())
    }
}

crate::lift::prefix_from_tuples!(Axis);

/// `nnx.StateAxes`: maps the Variables of one object by filter; only valid directly on a
/// graph node. Axis `None` broadcasts that group.
///
/// ```
/// use nnx_core::{VariableType, transforms::StateAxes};
/// let axes = StateAxes::new([(VariableType::PARAM.into(), Some(0)), (VariableType::BATCH_STAT.into(), None)]);
/// assert_eq!(nnx_core::transforms::AxisSpec::from(axes).to_string(), "StateAxes({OfType(Param): 0, OfType(BatchStat): None})");
/// ```
#[derive(Clone, Debug)]
pub struct StateAxes(Vec<(Filter, Axis)>);

impl StateAxes {
    /// Groups in order: each Variable goes with the first filter that matches it.
    pub fn new(groups: impl IntoIterator<Item = (Filter, Option<i32>)>) -> StateAxes {
        StateAxes(
            groups
                .into_iter()
                .map(|(f, a)| (f, Axis(a.map(|a| a as isize))))
                .collect(),
        )
    }
}

impl StateAxes {
    /// `nnx.StateAxes(state)`: axes given per path, as a State whose leaves are axes is in
    /// Flax: one `PathIn` group per distinct axis, holding the paths that have it, in the
    /// order the axes first appear.
    ///
    /// ```
    /// use nnx_core::{Path, Param, Tensor, graph::Leaf, transforms::StateAxes};
    /// let axes = StateAxes::from_paths([
    ///     (Path::parse("w")?, Some(0)),
    ///     (Path::parse("b")?, Some(0)),
    ///     (Path::parse("count")?, None),
    /// ]);
    /// let leaf = Leaf::Variable(Param::new(Tensor::zeros([2])).into());
    /// assert_eq!(axes.map_prefix(&Path::parse("b")?, &leaf)?, Some(0));
    /// assert_eq!(axes.map_prefix(&Path::parse("count")?, &leaf)?, None);
    /// assert!(axes.map_prefix(&Path::parse("other")?, &leaf).is_err());
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    pub fn from_paths(axes: impl IntoIterator<Item = (Path, Option<i32>)>) -> StateAxes {
        let mut groups: Vec<(Option<i32>, Vec<Path>)> = Vec::new();
        for (path, axis) in axes {
            match groups.iter_mut().find(|(a, _)| *a == axis) {
                Some((_, paths)) => paths.push(path),
                None => groups.push((axis, vec![path])),
            }
        }
        StateAxes::new((groups.into_iter()).map(|(axis, paths)| (Filter::PathIn(paths), axis)))
    }

    /// A dict-shaped prefix (`in_axes=({'a': 0, 'b': None},)` on a dict argument): each key
    /// maps everything under that key of the `Dict` (or object) it is applied to. A key of
    /// the argument the prefix does not name is [`Error::NoAxisFound`](crate::Error::NoAxisFound).
    ///
    /// ```
    /// use nnx_core::transforms::{AxisSpec, StateAxes};
    /// let axes = StateAxes::by_key([("a", Some(0)), ("b", None)]);
    /// assert_eq!(AxisSpec::from(axes).to_string(), "StateAxes({Predicate('a'): 0, Predicate('b'): None})");
    /// ```
    pub fn by_key<K: Into<crate::graph::Key>>(
        entries: impl IntoIterator<Item = (K, Option<i32>)>,
    ) -> StateAxes {
        StateAxes::new(entries.into_iter().map(|(key, axis)| {
            let key: crate::graph::Key = key.into();
            let name = format!("{key}");
            let filter = Filter::predicate(&name, move |path, _| path.keys().first() == Some(&key));
            (filter, axis)
        }))
    }

    /// `StateAxes(state)` for a State whose leaves are integer scalars, each the axis of the
    /// Variable at its path ([`StateAxes::from_paths`]; give broadcast paths there, as a
    /// State cannot hold `None`).
    ///
    /// # Errors
    /// [`Error::WrongValueKind`](crate::Error::WrongValueKind)-like errors for a leaf that is
    /// not an integer scalar.
    pub fn from_state(state: &crate::graph::State) -> Result<StateAxes> {
        let axes = (state.iter())
            .map(|(path, leaf)| Ok((path.clone(), Some(leaf.value().item::<i32>()?))))
            .collect::<Result<Vec<_>>>()?;
        Ok(StateAxes::from_paths(axes))
    }

    /// The axis of the Variable at `path` (inside the node the mapping applies to): the
    /// first group whose filter matches (`StateAxes.map_prefix`).
    ///
    /// # Errors
    /// [`Error::NoAxisFound`](crate::Error::NoAxisFound) when no filter matches.
    pub fn map_prefix(&self, path: &Path, leaf: &crate::graph::Leaf) -> Result<Option<i32>> {
        (self.0.iter())
            .find(|(filter, _)| filter.matches(path, leaf))
            .map(|(_, axis)| axis.0.map(|a| a as i32))
            .ok_or_else(|| crate::Error::NoAxisFound {
                path: path.clone(),
                variable: match leaf {
                    crate::graph::Leaf::Variable(v) => v.to_string(),
                    crate::graph::Leaf::Array(t) => t.repr(),
                },
            })
    }
}

impl From<StateAxes> for Prefix<Axis> {
    fn from(axes: StateAxes) -> AxisSpec {
        Prefix::StateAxes(axes.0)
    }
}

/// Vectorises `f` (`nnx.vmap`): `vmap(f).call(engine, args)[i] == f(args[i])`, with objects
/// in the arguments and outputs carried across with reference semantics — state updates,
/// graph changes and new objects propagate out, aliases must be mapped consistently, and
/// captured objects cannot be mutated.
///
/// `f` receives the arguments as [`Value`]s: objects rebuilt for the trace (mutate them
/// freely) and tracers for arrays; it runs once per call, while tracing.
///
/// ```
/// use nnx_core::{Value, transforms::vmap};
/// let f = vmap(|args: &[Value]| Ok(args[0].clone())).in_axes(0).out_axes(1);
/// assert_eq!(f.describe(), "vmap(in_axes=0, out_axes=1)");
/// ```
pub fn vmap<M, F: IntoBody<M>>(f: F) -> Vmap<F::Body> {
    Vmap {
        f: f.into_body(),
        in_axes: Prefix::Leaf(Axis(Some(0))),
        out_axes: Prefix::Leaf(Axis(Some(0))),
        axis_size: None,
        partition: None,
        graph_updates: true,
        cache: Cache::default(),
    }
}

/// A vectorised function; see [`vmap`].
pub struct Vmap<F> {
    f: F,
    in_axes: AxisSpec,
    out_axes: AxisSpec,
    axis_size: Option<usize>,
    partition: Option<String>,
    /// `graph_updates(false)` when `false`.
    graph_updates: bool,
    cache: Cache<Axis, ()>,
}

impl<F: Body> Vmap<F> {
    /// `nnx.vmap(f, graph_updates=False)` with `false`: as [`Jit::graph_updates`]
    /// (only Variables' values propagate; returning input Variables or objects is an
    /// error).
    ///
    /// [`Jit::graph_updates`]: super::Jit::graph_updates
    pub fn graph_updates(mut self, graph_updates: bool) -> Vmap<F> {
        self.graph_updates = graph_updates;
        self
    }

    /// How each argument is mapped (default `0`).
    pub fn in_axes(mut self, axes: impl Into<AxisSpec>) -> Vmap<F> {
        self.in_axes = axes.into();
        self
    }

    /// Where each output (and each argument's state, which keeps its `in_axes`) gets the
    /// batch axis (default `0`).
    pub fn out_axes(mut self, axes: impl Into<AxisSpec>) -> Vmap<F> {
        self.out_axes = axes.into();
        self
    }

    /// The number of lanes, required when no input is mapped (e.g. initialisers).
    pub fn axis_size(mut self, size: usize) -> Vmap<F> {
        self.axis_size = Some(size);
        self
    }

    /// `transform_metadata={nnx.PARTITION_NAME: name}`: inside, the axis name `name` is
    /// removed from each mapped Variable's `sharding` metadata at its mapped axis; outside, it
    /// is inserted at the output axis — also for Variables created inside. Negative axes are
    /// normalised first (Flax inserts at the wrong place for them, SEMANTICS.md §13 item 2).
    pub fn transform_metadata(mut self, partition_name: &str) -> Vmap<F> {
        self.partition = Some(partition_name.to_owned());
        self
    }

    /// `vmap(in_axes=…, out_axes=…)`.
    pub fn describe(&self) -> String {
        format!("vmap(in_axes={}, out_axes={})", self.in_axes, self.out_axes)
    }

    /// Calls the vectorised function. It is traced once per structure and abstract values
    /// ([`Vmap::trace_count`]).
    ///
    /// # Errors
    /// Prefix and aliasing errors ([`Error::InvalidPrefix`], [`Error::InconsistentAliasing`],
    /// [`Error::NoAxisFound`]), axis sizes that disagree (naming each argument path, shape and
    /// axis), broadcast state changed by batched values, the closure rule, and whatever `f`
    /// returns. On error the caller's objects are unchanged.
    pub fn call(&self, engine: &(impl Engine + ?Sized), args: impl IntoArgs) -> Result<F::Output> {
        typed::output::<F>(pipeline::call(self, &self.cache, engine, &args.into_args())?.value)
    }

    /// How many times the function has been traced.
    pub fn trace_count(&self) -> usize {
        self.cache.trace_count()
    }

    /// The number of lanes: every mapped axis and `axis_size` must agree.
    /// `mapped` holds each mapped leaf (its location is built only for the error).
    fn lanes<L>(
        &self,
        mapped: &[(&lift::LoweredLeaf<L>, Vec<usize>, isize, usize)],
    ) -> Result<usize> {
        let sizes: Vec<usize> = mapped.iter().map(|m| m.3).chain(self.axis_size).collect();
        match sizes.first() {
            None => Err(Error::InvalidPrefix(
                "vmap must have at least one non-None value in in_axes, or be given axis_size"
                    .into(),
            )),
            Some(&n) if sizes.iter().all(|&s| s == n) => Ok(n),
            Some(_) => {
                let mut lines: Vec<String> = mapped
                    .iter()
                    .map(|(leaf, shape, axis, size)| {
                        let location = leaf.location();
                        format!("  {location}: shape {shape:?}, axis {axis} has size {size}")
                    })
                    .collect();
                if let Some(n) = self.axis_size {
                    lines.push(format!("  axis_size={n}"));
                }
                Err(Error::InvalidPrefix(format!(
                    "vmap got inconsistent sizes for array axes to be mapped:\n{}",
                    lines.join("\n")
                )))
            }
        }
    }
}

/// What `prepare` finds: each leaf's mapped axis (normalised) and the number of lanes.
pub(crate) struct Mapped {
    in_axes: Vec<Option<usize>>,
    axis_size: usize,
}

impl<F: Body> Rules for Vmap<F> {
    type Leaf = Axis;
    type Prepared = Mapped;
    type Extra = ();

    fn in_prefix(&self, _args: &[Value]) -> Result<AxisSpec> {
        Ok(self.in_axes.clone())
    }

    fn out_prefix(&self) -> AxisSpec {
        self.out_axes.clone()
    }

    fn apply(&self, args: &[Value]) -> Result<Value> {
        self.f.apply(args)
    }

    fn prepare(
        &self,
        _args: &[Value],
        lowered: &mut Lowered<Axis>,
    ) -> Result<(Vec<AbstractValue>, Mapped)> {
        let mut in_axes = Vec::with_capacity(lowered.leaves().len());
        let mut in_avals = Vec::with_capacity(lowered.leaves().len());
        let mut mapped = Vec::new();
        for leaf in lowered.leaves() {
            let aval = leaf.value.aval();
            match leaf.prefix.0 {
                None => {
                    in_axes.push(None);
                    in_avals.push(aval);
                }
                Some(axis) => {
                    let a =
                        normalize(axis, aval.shape.len(), || leaf.location(), &aval, "in_axes")?;
                    mapped.push((leaf, aval.shape.clone(), axis, aval.shape[a]));
                    let mut inner = aval;
                    inner.shape.remove(a);
                    in_axes.push(Some(a));
                    in_avals.push(inner);
                }
            }
        }
        let axis_size = self.lanes(&mapped)?;
        if let Some(name) = &self.partition {
            enter_partition(lowered, &in_axes, name)?;
        }
        Ok((in_avals, Mapped { in_axes, axis_size }))
    }

    fn without_graph_updates(&self) -> Option<&'static str> {
        (!self.graph_updates).then_some("vmap")
    }

    fn finish(
        &self,
        mapped: Mapped,
        _lowered: &Lowered<Axis>,
        outputs: &mut Lowered<Axis>,
        program: &Arc<Program>,
        captured: usize,
    ) -> Result<(Primitive, ())> {
        let mut out_axes = Vec::with_capacity(outputs.leaves().len());
        for leaf in outputs.leaves() {
            let aval = leaf.value.aval();
            out_axes.push(match leaf.prefix.0 {
                None => None,
                Some(axis) => Some(normalize(
                    axis,
                    aval.shape.len() + 1,
                    || leaf.location(),
                    &aval,
                    "out_axes",
                )?),
            });
        }
        if let Some(name) = &self.partition {
            leave_partition(outputs, &out_axes, name)?;
        }
        let batched_inputs: Vec<bool> = mapped
            .in_axes
            .iter()
            .map(Option::is_some)
            .chain(std::iter::repeat_n(false, captured))
            .collect();
        let depends = program.depends_on(&batched_inputs);
        let leaked: Vec<String> = outputs
            .leaves()
            .iter()
            .zip(&out_axes)
            .zip(&depends)
            .filter(|((_, axis), dep)| axis.is_none() && **dep)
            .map(|((leaf, _), _)| leaf.location())
            .collect();
        if !leaked.is_empty() {
            return Err(Error::InvalidPrefix(format!(
                "vmap: these values have axis None (broadcast) but were computed from mapped inputs, so they differ per lane: {}. Map them (give them an axis in in_axes/out_axes or StateAxes) or do not change them with batched values",
                leaked.join(", ")
            )));
        }
        let batching = Batching {
            in_axes: mapped
                .in_axes
                .into_iter()
                .chain(std::iter::repeat_n(None, captured))
                .collect(),
            out_axes,
            axis_size: mapped.axis_size,
        };
        let primitive = Primitive::Vmap {
            program: ProgramRef(program.clone()),
            batching,
        };
        Ok((primitive, ()))
    }
}

fn normalize(
    axis: isize,
    ndim: usize,
    location: impl FnOnce() -> String,
    aval: &AbstractValue,
    which: &str,
) -> Result<usize> {
    let n = ndim as isize;
    let a = if axis < 0 { axis + n } else { axis };
    if (0..n).contains(&a) {
        Ok(a as usize)
    } else {
        let location = location();
        Err(Error::InvalidPrefix(format!(
            "vmap {which} {axis} is out of bounds for {location} of shape {:?} (rank {}{})",
            aval.shape,
            aval.shape.len(),
            if which == "out_axes" {
                ", plus the batch axis"
            } else {
                ""
            }
        )))
    }
}
