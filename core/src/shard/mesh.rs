//! `Mesh` (devices arranged along named axes) and `PartitionSpec` (how an array's dimensions
//! are split over them), as `jax.sharding` has them.

use std::fmt;

use crate::error::{Error, Result};

/// A device mesh: devices arranged in a grid whose axes have names (`Mesh(devices, ('data',
/// 'model'))`). On one machine a device is a worker thread: `shard_map` runs one per device.
/// Device `d` sits at the coordinates of `d` in row-major order over the axes.
///
/// ```
/// use nnx_core::shard::Mesh;
/// let mesh = Mesh::new([("data", 2), ("model", 2)])?;
/// assert_eq!(mesh.devices(), 4);
/// assert_eq!(mesh.coords(3), vec![1, 1]);
/// assert_eq!(mesh.to_string(), "Mesh('data': 2, 'model': 2)");
/// # Ok::<(), nnx_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mesh {
    axes: Vec<(String, usize)>,
    /// One device per process of the installed process group, rather than threads.
    over_processes: bool,
}

/// The most devices a mesh may have: each is a thread.
pub const MAX_DEVICES: usize = 256;

impl Mesh {
    /// A mesh with these axes, major first.
    ///
    /// # Errors
    /// [`Error::Sharding`] for no axis, an axis of size 0, a repeated or empty name, or more
    /// than [`MAX_DEVICES`] devices.
    pub fn new<S: Into<String>>(axes: impl IntoIterator<Item = (S, usize)>) -> Result<Mesh> {
        let axes: Vec<(String, usize)> = axes.into_iter().map(|(n, s)| (n.into(), s)).collect();
        if axes.is_empty() {
            return Err(Error::Sharding("a mesh needs at least one axis".into()));
        }
        for (i, (name, size)) in axes.iter().enumerate() {
            if name.is_empty() {
                return Err(Error::Sharding("a mesh axis name is empty".into()));
            }
            if *size == 0 {
                return Err(Error::Sharding(format!("mesh axis '{name}' has size 0")));
            }
            if axes[..i].iter().any(|(n, _)| n == name) {
                return Err(Error::Sharding(format!(
                    "mesh axis name '{name}' is repeated"
                )));
            }
        }
        let devices = axes
            .iter()
            .try_fold(1usize, |n, (_, s)| n.checked_mul(*s))
            .filter(|&n| n <= MAX_DEVICES);
        if devices.is_none() {
            return Err(Error::Sharding(format!(
                "a mesh of {} has more than {MAX_DEVICES} devices",
                Mesh {
                    axes,
                    over_processes: false
                }
                .shape_text()
            )));
        }
        Ok(Mesh {
            axes,
            over_processes: false,
        })
    }

    /// A mesh whose devices are the processes of the installed process group
    /// ([`set_process_group`](super::set_process_group), e.g. `nnx-mpi`'s), one each, in
    /// rank order: `shard_map` over it runs this process's device here and exchanges
    /// collectives and results with the others. Arguments are whole in every process, and
    /// so are results.
    ///
    /// # Errors
    /// As [`Mesh::new`]; [`Error::Sharding`] when no process group is installed or its size
    /// is not the mesh's number of devices.
    pub fn over_processes<S: Into<String>>(
        axes: impl IntoIterator<Item = (S, usize)>,
    ) -> Result<Mesh> {
        let mut mesh = Mesh::new(axes)?;
        mesh.process_group()?;
        mesh.over_processes = true;
        Ok(mesh)
    }

    /// The installed process group, with one process per device of this mesh.
    ///
    /// # Errors
    /// [`Error::Sharding`] when none is installed or its size is not the mesh's number of
    /// devices.
    pub(crate) fn process_group(&self) -> Result<std::sync::Arc<dyn super::ProcessGroup>> {
        let group = super::process_group().ok_or_else(|| {
            Error::Sharding(format!(
                "{self} is over processes but no process group is installed (nnx-mpi's \
                 Mpi::init installs one)"
            ))
        })?;
        if group.size() != self.devices() {
            return Err(Error::Sharding(format!(
                "{self} has {} devices but the process group has {} processes",
                self.devices(),
                group.size()
            )));
        }
        Ok(group)
    }

    /// Whether its devices are processes ([`Mesh::over_processes`]).
    pub fn is_over_processes(&self) -> bool {
        self.over_processes
    }

    /// The axes, major first: `(name, size)`.
    pub fn axes(&self) -> &[(String, usize)] {
        &self.axes
    }

    /// The number of devices.
    pub fn devices(&self) -> usize {
        self.axes.iter().map(|(_, s)| s).product()
    }

    /// The position of the axis `name`.
    pub fn axis(&self, name: &str) -> Option<usize> {
        self.axes.iter().position(|(n, _)| n == name)
    }

    /// The size of the axis `name`.
    pub fn size(&self, name: &str) -> Option<usize> {
        self.axis(name).map(|i| self.axes[i].1)
    }

    /// Device `device`'s coordinates, one per axis.
    pub fn coords(&self, device: usize) -> Vec<usize> {
        let mut coords = vec![0; self.axes.len()];
        let mut rest = device;
        for (c, (_, size)) in coords.iter_mut().zip(&self.axes).rev() {
            *c = rest % size;
            rest /= size;
        }
        coords
    }

    /// The device at `coords`.
    pub fn device(&self, coords: &[usize]) -> usize {
        coords
            .iter()
            .zip(&self.axes)
            .fold(0, |d, (c, (_, size))| d * size + c)
    }

    /// The position, among the devices that differ only along `names`, of the device at
    /// `coords` (row-major over `names` in the order given), and how many there are.
    pub fn index_along(&self, coords: &[usize], names: &[String]) -> (usize, usize) {
        names
            .iter()
            .fold((0, 1), |(index, count), name| match self.axis(name) {
                Some(a) => (index * self.axes[a].1 + coords[a], count * self.axes[a].1),
                None => (index, count),
            })
    }

    /// The devices that share `coords` on every axis but `names`, ordered by their
    /// [`Mesh::index_along`] `names`.
    pub fn group(&self, coords: &[usize], names: &[String]) -> Vec<usize> {
        let (_, count) = self.index_along(coords, names);
        let mut group = vec![0; count];
        for device in 0..self.devices() {
            let other = self.coords(device);
            let same_elsewhere = (0..self.axes.len())
                .all(|a| names.contains(&self.axes[a].0) || other[a] == coords[a]);
            if same_elsewhere {
                group[self.index_along(&other, names).0] = device;
            }
        }
        group
    }

    /// Checks that every name is an axis of this mesh.
    ///
    /// # Errors
    /// [`Error::Sharding`] naming the first unknown axis, `what` saying where it was used.
    pub fn check_names(&self, names: &[String], what: &dyn Fn() -> String) -> Result<()> {
        match names.iter().find(|n| self.axis(n).is_none()) {
            Some(name) => Err(Error::Sharding(format!(
                "{}: axis name '{name}' is not in the mesh ({})",
                what(),
                self.shape_text()
            ))),
            None => Ok(()),
        }
    }

    /// The number of devices along `names` (1 for none).
    pub fn count(&self, names: &[String]) -> usize {
        names.iter().filter_map(|n| self.size(n)).product()
    }

    /// Checks that `spec` can place a value of shape `shape` on this mesh: its axes are the
    /// mesh's, each named once; it has at most `shape.len() + extra` entries (`extra`: a
    /// `pmap` output's axis, added outside); with `split`, each split dimension divides
    /// evenly. `what` names the value in the error (`in_specs for args[0].w`).
    ///
    /// # Errors
    /// [`Error::Sharding`] naming the value, the spec and the axis.
    pub fn check_spec(
        &self,
        spec: &PartitionSpec,
        shape: &[usize],
        extra: usize,
        split: bool,
        what: &dyn Fn() -> String,
    ) -> Result<()> {
        let names = spec.names();
        self.check_names(&names, what)?;
        if let Some(name) =
            (names.iter().enumerate()).find_map(|(i, n)| names[..i].contains(n).then_some(n))
        {
            return Err(Error::Sharding(format!(
                "{}: {spec} uses mesh axis '{name}' twice",
                what()
            )));
        }
        if spec.dims().len() > shape.len() + extra {
            return Err(Error::Sharding(format!(
                "{}: {spec} has {} entries but the value has shape {shape:?} ({} dimensions)",
                what(),
                spec.dims().len(),
                shape.len()
            )));
        }
        for (d, dim) in spec.dims().iter().enumerate().filter(|_| split) {
            let count = self.count(dim);
            if !shape[d].is_multiple_of(count) {
                let axes: Vec<String> = dim.iter().map(|n| format!("'{n}'")).collect();
                return Err(Error::Sharding(format!(
                    "{}: dimension {d} of shape {shape:?} has {} elements, which do not split \
                     evenly over the {count} devices along {}",
                    what(),
                    shape[d],
                    axes.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn shape_text(&self) -> String {
        let parts: Vec<String> = (self.axes.iter())
            .map(|(n, s)| format!("'{n}': {s}"))
            .collect();
        parts.join(", ")
    }
}

impl fmt::Display for Mesh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mesh({})", self.shape_text())
    }
}

/// How an array's dimensions are split over mesh axes (`jax.sharding.PartitionSpec`): one
/// entry per leading dimension, naming the mesh axes it is split over (none: replicated
/// along it). Dimensions past the entries, and mesh axes no entry names, are replicated.
///
/// ```
/// use nnx_core::shard::PartitionSpec;
/// let p = PartitionSpec::new([Some("data"), None]);
/// assert_eq!(p.to_string(), "PartitionSpec('data', None)");
/// assert_eq!(PartitionSpec::replicated().to_string(), "PartitionSpec()");
/// let both = PartitionSpec::from_dims(vec![vec!["x".into(), "y".into()]]);
/// assert_eq!(both.to_string(), "PartitionSpec(('x', 'y'),)");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PartitionSpec(Vec<Vec<String>>);

impl PartitionSpec {
    /// `P('data', None)`: each dimension split over at most one axis.
    pub fn new<'a>(dims: impl IntoIterator<Item = Option<&'a str>>) -> PartitionSpec {
        PartitionSpec(
            dims.into_iter()
                .map(|d| d.map(|n| vec![n.to_owned()]).unwrap_or_default())
                .collect(),
        )
    }

    /// `P()`: replicated on every device.
    pub fn replicated() -> PartitionSpec {
        PartitionSpec(Vec::new())
    }

    /// Each dimension split over any number of axes (`P(('x', 'y'), None)`), major first.
    pub fn from_dims(dims: Vec<Vec<String>>) -> PartitionSpec {
        PartitionSpec(dims)
    }

    /// The axes each leading dimension is split over.
    pub fn dims(&self) -> &[Vec<String>] {
        &self.0
    }

    /// The spec read from a Variable's `sharding` metadata (Flax's
    /// `nnx.get_partition_spec`): a tuple of axis names and `None`s.
    pub fn from_sharding(sharding: &crate::graph::Static) -> Option<PartitionSpec> {
        use crate::graph::Static;
        let items = sharding.as_sequence()?;
        let dims = items
            .iter()
            .map(|item| match item {
                Static::None => Some(Vec::new()),
                Static::Str(name) => Some(vec![name.clone()]),
                other => (other.as_sequence()?.iter())
                    .map(|s| match s {
                        Static::Str(name) => Some(name.clone()),
                        _ => None,
                    })
                    .collect(),
            })
            .collect::<Option<Vec<_>>>()?;
        Some(PartitionSpec(dims))
    }

    /// Every axis name it uses, in order.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().flatten().cloned().collect()
    }
}

impl fmt::Display for PartitionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = (self.0.iter())
            .map(|d| match d.as_slice() {
                [] => "None".to_owned(),
                [one] => format!("'{one}'"),
                many => {
                    let names: Vec<String> = many.iter().map(|n| format!("'{n}'")).collect();
                    format!("({})", names.join(", "))
                }
            })
            .collect();
        match parts.as_slice() {
            [one] if self.0[0].len() > 1 => write!(f, "PartitionSpec({one},)"),
            _ => write!(f, "PartitionSpec({})", parts.join(", ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meshes_check_their_axes() {
        assert!(Mesh::new(Vec::<(&str, usize)>::new()).is_err());
        assert!(Mesh::new([("x", 0)]).is_err());
        assert!(Mesh::new([("x", 2), ("x", 2)]).is_err());
        assert!(Mesh::new([("", 2)]).is_err());
        assert!(Mesh::new([("x", 1 << 20)]).is_err());
        // No process group is installed in unit tests.
        assert!(Mesh::over_processes([("x", 2)]).is_err());
    }

    #[test]
    fn groups_are_the_devices_that_differ_along_the_named_axes() -> Result<()> {
        let mesh = Mesh::new([("x", 2), ("y", 3)])?;
        assert_eq!(mesh.coords(4), vec![1, 1]);
        assert_eq!(mesh.device(&[1, 1]), 4);
        let y = vec!["y".to_owned()];
        assert_eq!(mesh.group(&[1, 1], &y), vec![3, 4, 5]);
        assert_eq!(mesh.group(&[1, 1], &["x".to_owned()]), vec![1, 4]);
        let both = vec!["y".to_owned(), "x".to_owned()];
        // y major, x minor: (y, x) = (1, 1) is index 3 of 6.
        assert_eq!(mesh.index_along(&[1, 1], &both), (3, 6));
        assert_eq!(mesh.count(&both), 6);
        Ok(())
    }

    #[test]
    fn specs_check_rank_names_and_splits() -> Result<()> {
        let mesh = Mesh::new([("data", 2)])?;
        let what = || "x".to_owned();
        let p = PartitionSpec::new([Some("data")]);
        assert!(mesh.check_spec(&p, &[4, 3], 0, true, &what).is_ok());
        assert!(mesh.check_spec(&p, &[3], 0, true, &what).is_err());
        assert!(mesh.check_spec(&p, &[3], 0, false, &what).is_ok());
        assert!(mesh.check_spec(&p, &[], 0, true, &what).is_err());
        assert!(mesh.check_spec(&p, &[], 1, false, &what).is_ok());
        let unknown = PartitionSpec::new([Some("model")]);
        assert!(mesh.check_spec(&unknown, &[4], 0, true, &what).is_err());
        Ok(())
    }
}
