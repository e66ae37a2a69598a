//! Collectives (`jax.lax.psum`, `pmean`, `pmax`, `all_gather`, `psum_scatter`, `ppermute`,
//! `axis_index`) over the named axes of the mesh a `shard_map` runs on: the primitive, its
//! shape rule, its evaluation on a device, and the tensor functions that record it.

use std::cell::RefCell;
use std::fmt;

use super::device;
use super::mesh::{Mesh, PartitionSpec};
use crate::error::{Error, Result};
use crate::program::{AbstractValue, Primitive};
use crate::tensor::elementwise::BinaryOp;
use crate::tensor::{Array, DType, Tensor};

/// One collective over mesh axes, with those axes' total size (known when it is traced).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CollectiveOp {
    /// The sum over the devices along `axes`; every one gets it.
    Psum {
        /// The mesh axes reduced over.
        axes: Vec<String>,
    },
    /// The mean over the devices along `axes`.
    Pmean {
        /// The mesh axes reduced over.
        axes: Vec<String>,
        /// How many devices that is.
        size: usize,
    },
    /// The elementwise maximum over the devices along `axes`.
    Pmax {
        /// The mesh axes reduced over.
        axes: Vec<String>,
    },
    /// Every device's value along `axes`, stacked at `dim` (or concatenated, `tiled`).
    AllGather {
        /// The mesh axes gathered over.
        axes: Vec<String>,
        /// Where the devices' values go.
        dim: usize,
        /// Concatenate instead of stacking.
        tiled: bool,
        /// How many devices that is.
        size: usize,
    },
    /// The sum over the devices along `axes`, split along `dim`: each device keeps its block
    /// (its index along `axes`); not `tiled`, `dim` must have one element per device and is
    /// removed.
    PsumScatter {
        /// The mesh axes reduced over.
        axes: Vec<String>,
        /// The dimension split.
        dim: usize,
        /// Keep the dimension (blocks) rather than removing it (one element each).
        tiled: bool,
        /// How many devices that is.
        size: usize,
    },
    /// Sends each device's value along `axes` to another: `(source, destination)` pairs of
    /// indices along `axes`; a device no pair sends to gets zeros.
    Ppermute {
        /// The mesh axes the indices run along.
        axes: Vec<String>,
        /// The pairs.
        perm: Vec<(usize, usize)>,
    },
    /// The device's index along `axes` (an int32 scalar; no operand).
    AxisIndex {
        /// The mesh axes.
        axes: Vec<String>,
    },
}

impl CollectiveOp {
    /// The name as printed in programs.
    pub fn name(&self) -> &'static str {
        match self {
            CollectiveOp::Psum { .. } => "psum",
            CollectiveOp::Pmean { .. } => "pmean",
            CollectiveOp::Pmax { .. } => "pmax",
            CollectiveOp::AllGather { .. } => "all_gather",
            CollectiveOp::PsumScatter { .. } => "psum_scatter",
            CollectiveOp::Ppermute { .. } => "ppermute",
            CollectiveOp::AxisIndex { .. } => "axis_index",
        }
    }

    /// The mesh axes it runs along.
    pub fn axes(&self) -> &[String] {
        match self {
            CollectiveOp::Psum { axes }
            | CollectiveOp::Pmean { axes, .. }
            | CollectiveOp::Pmax { axes }
            | CollectiveOp::AllGather { axes, .. }
            | CollectiveOp::PsumScatter { axes, .. }
            | CollectiveOp::Ppermute { axes, .. }
            | CollectiveOp::AxisIndex { axes } => axes,
        }
    }

    /// The same collective on a value with one more leading (batch) dimension.
    pub fn batched(&self) -> CollectiveOp {
        match self.clone() {
            CollectiveOp::AllGather {
                axes,
                dim,
                tiled,
                size,
            } => CollectiveOp::AllGather {
                axes,
                dim: dim + 1,
                tiled,
                size,
            },
            CollectiveOp::PsumScatter {
                axes,
                dim,
                tiled,
                size,
            } => CollectiveOp::PsumScatter {
                axes,
                dim: dim + 1,
                tiled,
                size,
            },
            other => other,
        }
    }

    /// The shape rule.
    ///
    /// # Errors
    /// [`Error::Sharding`] for a missing operand, a dimension out of range, or a scattered
    /// dimension that does not split evenly.
    pub fn abstract_eval(&self, inputs: &[AbstractValue]) -> Result<AbstractValue> {
        if let CollectiveOp::AxisIndex { .. } = self {
            return Ok(AbstractValue::new(Vec::new(), DType::I32, false));
        }
        let x = inputs
            .first()
            .ok_or_else(|| Error::Sharding(format!("{} takes one operand", self.name())))?;
        let mut out = x.clone();
        match self {
            CollectiveOp::AllGather {
                dim, tiled, size, ..
            } => {
                let rank = x.shape.len();
                match tiled {
                    true if *dim < rank => out.shape[*dim] *= size,
                    false if *dim <= rank => out.shape.insert(*dim, *size),
                    _ => return Err(self.dim_error(*dim, &x.shape)),
                }
            }
            CollectiveOp::PsumScatter {
                dim, tiled, size, ..
            } => {
                let n = *x
                    .shape
                    .get(*dim)
                    .ok_or_else(|| self.dim_error(*dim, &x.shape))?;
                match tiled {
                    true if n % size == 0 => out.shape[*dim] = n / size,
                    false if n == *size => {
                        out.shape.remove(*dim);
                    }
                    _ => {
                        return Err(Error::Sharding(format!(
                            "psum_scatter: dimension {dim} of an operand of shape {:?} has {n} \
                             elements, which does not split over {size} devices{}",
                            x.shape,
                            if *tiled {
                                ""
                            } else {
                                " one each (tiled=False)"
                            }
                        )));
                    }
                }
            }
            _ => {}
        }
        Ok(out)
    }

    fn dim_error(&self, dim: usize, shape: &[usize]) -> Error {
        Error::Sharding(format!(
            "{}: dimension {dim} is out of range for an operand of shape {shape:?}",
            self.name()
        ))
    }

    /// Runs the collective on this device (a `shard_map` worker), exchanging values with
    /// the other devices along its axes.
    ///
    /// # Errors
    /// [`Error::Sharding`] outside a `shard_map` device, or when the devices did not all
    /// reach this collective.
    pub fn eval(&self, inputs: &[Array]) -> Result<Array> {
        device::with_device(self.name(), |dev| {
            let (index, _) = dev.mesh.index_along(&dev.coords, self.axes());
            if let CollectiveOp::AxisIndex { .. } = self {
                return Ok(Array::scalar(index as i32));
            }
            let x = inputs
                .first()
                .ok_or_else(|| Error::Sharding(format!("{} takes one operand", self.name())))?;
            let mean = |total: Array, size: usize| {
                total.binary(
                    BinaryOp::Div,
                    &Array::scalar(size as f32).astype(x.dtype())?,
                )
            };
            if let CollectiveOp::Psum { .. } | CollectiveOp::Pmean { .. } = self
                && let Some(total) = dev.transport_sum(self, x)
            {
                return match self {
                    CollectiveOp::Pmean { size, .. } => mean(total?, *size),
                    _ => total,
                };
            }
            let values = dev.exchange(self, x.clone())?;
            let sum = || combine(&values, BinaryOp::Add);
            match self {
                CollectiveOp::Psum { .. } => sum(),
                CollectiveOp::Pmean { size, .. } => mean(sum()?, *size),
                CollectiveOp::Pmax { .. } => combine(&values, BinaryOp::Maximum),
                CollectiveOp::AllGather { dim, tiled, .. } => match tiled {
                    true => Array::concatenate(&values, *dim as isize),
                    false => Array::stack(&values, *dim as isize),
                },
                CollectiveOp::PsumScatter {
                    dim, tiled, size, ..
                } => {
                    let total = sum()?;
                    let block = total.shape()[*dim] / size;
                    let mine =
                        total.slice_axis(*dim as isize, index * block..(index + 1) * block)?;
                    match tiled {
                        true => Ok(mine),
                        false => mine.squeeze(vec![*dim as isize]),
                    }
                }
                CollectiveOp::Ppermute { perm, .. } => {
                    match perm.iter().find(|(_, to)| *to == index) {
                        Some((from, _)) => values.get(*from).cloned().ok_or_else(|| {
                            Error::Sharding(format!("ppermute: no device {from} to receive from"))
                        }),
                        None => Array::zeros_of(x.shape(), x.dtype()),
                    }
                }
                CollectiveOp::AxisIndex { .. } => Ok(Array::scalar(index as i32)),
            }
        })
    }
}

/// The devices' values combined elementwise by `op`, in device order (every device combines
/// in the same order, so replicas are bit-identical).
fn combine(values: &[Array], op: BinaryOp) -> Result<Array> {
    let (first, rest) = values
        .split_first()
        .ok_or_else(|| Error::internal("a collective over no device"))?;
    rest.iter()
        .try_fold(first.clone(), |acc, v| acc.binary(op, v))
}

impl fmt::Display for CollectiveOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let axes: Vec<String> = self.axes().iter().map(|a| format!("'{a}'")).collect();
        let axes = axes.join(", ");
        match self {
            CollectiveOp::AllGather { dim, tiled, .. } => {
                write!(f, "all_gather[axes=({axes}), dim={dim}, tiled={tiled}]")
            }
            CollectiveOp::PsumScatter { dim, tiled, .. } => {
                write!(f, "psum_scatter[axes=({axes}), dim={dim}, tiled={tiled}]")
            }
            CollectiveOp::Ppermute { perm, .. } => {
                write!(f, "ppermute[axes=({axes}), perm={perm:?}]")
            }
            _ => write!(f, "{}[axes=({axes})]", self.name()),
        }
    }
}

thread_local! {
    /// The meshes of the `shard_map`s being traced on this thread, innermost last.
    static AXIS_ENV: RefCell<Vec<Mesh>> = const { RefCell::new(Vec::new()) };
}

/// While alive, collectives traced on this thread may name `mesh`'s axes.
pub(crate) struct AxisScope(());

impl AxisScope {
    pub(crate) fn enter(mesh: &Mesh) -> AxisScope {
        AXIS_ENV.with(|env| env.borrow_mut().push(mesh.clone()));
        AxisScope(())
    }
}

impl Drop for AxisScope {
    fn drop(&mut self) {
        AXIS_ENV.with(|env| {
            env.borrow_mut().pop();
        });
    }
}

/// Whether a `shard_map` body is being traced on this thread (its traces read the mesh, so
/// they are not cached for reuse elsewhere).
pub(crate) fn axis_env_active() -> bool {
    AXIS_ENV.with(|env| !env.borrow().is_empty())
}

/// The total size of `axes` in the innermost mesh being traced.
///
/// # Errors
/// [`Error::Sharding`] outside `shard_map` or for an axis its mesh does not have.
fn bound_size(op: &str, axes: &[String]) -> Result<usize> {
    AXIS_ENV.with(|env| {
        let env = env.borrow();
        let mesh = env.last().ok_or_else(|| {
            Error::Sharding(format!(
                "{op} over axis {}: collectives run only inside shard_map, over its mesh's axes",
                quoted(axes)
            ))
        })?;
        if axes.is_empty() {
            return Err(Error::Sharding(format!("{op} names no mesh axis")));
        }
        mesh.check_names(axes, &|| format!("{op} over {}", quoted(axes)))?;
        for (i, a) in axes.iter().enumerate() {
            if axes[..i].contains(a) {
                return Err(Error::Sharding(format!("{op}: axis '{a}' is repeated")));
            }
        }
        Ok(mesh.count(axes))
    })
}

fn quoted(axes: &[String]) -> String {
    let names: Vec<String> = axes.iter().map(|a| format!("'{a}'")).collect();
    names.join(", ")
}

/// Axis names, from one name or several.
pub trait AxisNames {
    /// The names.
    fn names(self) -> Vec<String>;
}

impl AxisNames for &str {
    fn names(self) -> Vec<String> {
        vec![self.to_owned()]
    }
}

impl<const N: usize> AxisNames for [&str; N] {
    fn names(self) -> Vec<String> {
        self.iter().map(|s| (*s).to_owned()).collect()
    }
}

impl AxisNames for &[String] {
    fn names(self) -> Vec<String> {
        self.to_vec()
    }
}

impl AxisNames for &[&str] {
    fn names(self) -> Vec<String> {
        self.iter().map(|s| (*s).to_owned()).collect()
    }
}

fn collective(op: CollectiveOp, x: &Tensor) -> Result<Tensor> {
    crate::program::record_in_innermost(Primitive::Collective(op), &[x])
}

/// `jax.lax.psum(x, axes)`: the sum of `x` over the devices along `axes`, on every one of
/// them.
///
/// # Errors
/// [`Error::Sharding`] outside `shard_map` or for axes its mesh does not have.
pub fn psum(x: &Tensor, axes: impl AxisNames) -> Result<Tensor> {
    let axes = axes.names();
    bound_size("psum", &axes)?;
    collective(CollectiveOp::Psum { axes }, x)
}

/// `jax.lax.pmean(x, axes)`: the mean over the devices along `axes`.
///
/// # Errors
/// As [`psum`].
pub fn pmean(x: &Tensor, axes: impl AxisNames) -> Result<Tensor> {
    let axes = axes.names();
    let size = bound_size("pmean", &axes)?;
    collective(CollectiveOp::Pmean { axes, size }, x)
}

/// `jax.lax.pmax(x, axes)`: the elementwise maximum over the devices along `axes`.
///
/// # Errors
/// As [`psum`].
pub fn pmax(x: &Tensor, axes: impl AxisNames) -> Result<Tensor> {
    let axes = axes.names();
    bound_size("pmax", &axes)?;
    collective(CollectiveOp::Pmax { axes }, x)
}

/// `jax.lax.all_gather(x, axes, axis=dim, tiled=tiled)`: every device's `x` along `axes`,
/// stacked at `dim` (concatenated along it with `tiled`).
///
/// # Errors
/// As [`psum`], and a `dim` out of range.
pub fn all_gather(x: &Tensor, axes: impl AxisNames, dim: usize, tiled: bool) -> Result<Tensor> {
    let axes = axes.names();
    let size = bound_size("all_gather", &axes)?;
    collective(
        CollectiveOp::AllGather {
            axes,
            dim,
            tiled,
            size,
        },
        x,
    )
}

/// `jax.lax.psum_scatter(x, axes, scatter_dimension=dim, tiled=tiled)`: the sum over the
/// devices along `axes`, of which each keeps its block of dimension `dim`.
///
/// # Errors
/// As [`psum`], and a dimension that does not split over the devices.
pub fn psum_scatter(x: &Tensor, axes: impl AxisNames, dim: usize, tiled: bool) -> Result<Tensor> {
    let axes = axes.names();
    let size = bound_size("psum_scatter", &axes)?;
    collective(
        CollectiveOp::PsumScatter {
            axes,
            dim,
            tiled,
            size,
        },
        x,
    )
}

/// `jax.lax.ppermute(x, axes, perm)`: device `source` (its index along `axes`) sends `x` to
/// device `destination` for each pair; a device no pair sends to gets zeros.
///
/// # Errors
/// As [`psum`], an index out of range, or a device sending or receiving twice.
pub fn ppermute(x: &Tensor, axes: impl AxisNames, perm: &[(usize, usize)]) -> Result<Tensor> {
    let axes = axes.names();
    let size = bound_size("ppermute", &axes)?;
    for (k, &(from, to)) in perm.iter().enumerate() {
        if from >= size || to >= size {
            return Err(Error::Sharding(format!(
                "ppermute: the pair ({from}, {to}) is out of range for {size} devices along {}",
                quoted(&axes)
            )));
        }
        if perm[..k].iter().any(|&(f, t)| f == from || t == to) {
            return Err(Error::Sharding(format!(
                "ppermute: the permutation sends from or to a device twice at ({from}, {to})"
            )));
        }
    }
    collective(
        CollectiveOp::Ppermute {
            axes,
            perm: perm.to_vec(),
        },
        x,
    )
}

/// `jax.lax.axis_index(axes)`: this device's index along `axes` (an int32 scalar).
///
/// # Errors
/// As [`psum`].
pub fn axis_index(axes: impl AxisNames) -> Result<Tensor> {
    let axes = axes.names();
    bound_size("axis_index", &axes)?;
    crate::program::record_in_innermost(
        Primitive::Collective(CollectiveOp::AxisIndex { axes }),
        &[],
    )
}

/// `jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))`: says how `x` should be
/// laid out over `mesh`. Here layouts are decided by `shard_map`'s specs (there is no
/// compiler to propagate shardings), so it returns `x` unchanged after checking that the
/// constraint could hold: the axes are the mesh's, each used once, the spec has no more
/// entries than `x` has dimensions, and each split dimension divides evenly.
///
/// ```
/// use nnx_core::{Tensor, shard::{Mesh, PartitionSpec, with_sharding_constraint}};
/// let mesh = Mesh::new([("data", 2)])?;
/// let x = Tensor::ones([4, 3]);
/// assert!(with_sharding_constraint(&x, &mesh, &PartitionSpec::new([Some("data")])).is_ok());
/// assert!(with_sharding_constraint(&x, &mesh, &PartitionSpec::new([None, Some("data")])).is_err());
/// # Ok::<(), nnx_core::Error>(())
/// ```
///
/// # Errors
/// [`Error::Sharding`] when the constraint cannot hold.
pub fn with_sharding_constraint(x: &Tensor, mesh: &Mesh, spec: &PartitionSpec) -> Result<Tensor> {
    mesh.check_spec(spec, x.shape(), 0, true, &|| {
        format!("with_sharding_constraint({spec})")
    })?;
    Ok(x.clone())
}
