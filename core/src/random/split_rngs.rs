//! `split_rngs` and `fork_rngs`: temporarily replace the streams of a graph by split
//! (or forked) ones, and restore them afterwards.

use crate::error::{Error, Result};
use crate::graph::{Filter, GraphValue, Leaf, Path};
use crate::tensor::Tensor;

use super::keys::{Splits, py_shape, split_into};
use super::stream::RngStream;
use super::walk::rng_streams;

/// What [`split_rngs`] / [`fork_rngs`] changed: for every stream touched, its original key
/// and its count *after* the draw. [`SplitBackups::restore`] puts them back (Flax's
/// `restore_rngs`), so the net effect on each stream is one draw: the key is unchanged and
/// the count is one higher.
///
/// Dropping a `SplitBackups` does not restore anything (as in Flax, the split state stays
/// until restored); the scoped forms [`split_rngs_scoped`] and [`fork_rngs_scoped`] always
/// restore.
#[derive(Debug)]
#[must_use = "the streams stay split until `restore` is called"]
pub struct SplitBackups {
    backups: Vec<StreamBackup>,
}

#[derive(Debug)]
struct StreamBackup {
    stream: RngStream,
    key: Tensor,
    count: Tensor,
}

impl SplitBackups {
    /// The number of streams changed.
    pub fn len(&self) -> usize {
        self.backups.len()
    }

    /// Whether no stream was changed.
    pub fn is_empty(&self) -> bool {
        self.backups.is_empty()
    }

    /// The streams that were changed, in traversal order.
    pub fn streams(&self) -> impl Iterator<Item = &RngStream> {
        self.backups.iter().map(|b| &b.stream)
    }

    /// Restores every stream's key and count (`nnx.restore_rngs(backups)`). Every stream is
    /// attempted even if one fails.
    ///
    /// # Errors
    /// The first error met, e.g. [`Error::TraceContext`] when called from a trace level
    /// that does not own a stream.
    pub fn restore(self) -> Result<()> {
        restore_all(self.backups)
    }
}

fn restore_all(backups: Vec<StreamBackup>) -> Result<()> {
    let mut first_error = None;
    for b in backups.into_iter().rev() {
        let result = b
            .stream
            .key()
            .and_then(|k| k.set_value(b.key))
            .and_then(|()| b.stream.count().and_then(|c| c.set_value(b.count)));
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// `nnx.split_rngs(node, splits=..., only=..., squeeze=...)` as a value: build it with
/// [`SplitRngs::new`], then [`apply`](SplitRngs::apply) it or run a closure
/// [`scoped`](SplitRngs::scoped).
///
/// For every stream reachable from the node whose key and count both match `only` (called
/// with the paths `(*path, 'key')` and `(*path, 'count')`): `k = stream.next_key()` (the
/// count advances by one), the key and the advanced count are backed up, then
/// `key := split(k, splits)` and `count := zeros(splits + count.shape)`. With `squeeze`
/// (only for `splits = 1`) the key is `split(k, 1)[0]` and the count keeps its shape.
///
/// ```
/// use nnx_core::{Filter, Object, random::{self, Rngs, SplitRngs}};
/// # fn main() -> nnx_core::Result<()> {
/// let model = Object::new("Model").with("rngs", Rngs::builder().stream("noise", 0).build()?)?;
/// let rngs = Rngs::from_object(model.object("rngs")?)?;
/// let lanes = SplitRngs::new(10).only("noise").scoped(&model, || {
///     let s = rngs.stream("noise")?;
///     assert_eq!(s.count()?.value().to_vec::<u32>()?, vec![0; 10]);
///     Ok(s.key()?.value())
/// })?;
/// let k = random::fold_in(&random::key(0), 0)?;
/// assert!(lanes.identical(&random::split(&k, 10)?));
/// // Afterwards the stream has its key back, and its count went up by exactly one.
/// let s = rngs.stream("noise")?;
/// assert!(s.key()?.value().identical(&random::key(0)));
/// assert_eq!(s.count()?.value().to_vec::<u32>()?, vec![1]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct SplitRngs {
    splits: Splits,
    only: Filter,
    squeeze: bool,
}

impl SplitRngs {
    /// Splits every stream into keys of shape `splits` (`only` = everything, no squeeze).
    pub fn new(splits: impl Into<Splits>) -> SplitRngs {
        SplitRngs {
            splits: splits.into(),
            only: Filter::Everything,
            squeeze: false,
        }
    }

    /// Only splits the streams whose key and count match `filter` (a stream name such as
    /// `"dropout"` matches that stream's `tag`).
    pub fn only(mut self, filter: impl Into<Filter>) -> SplitRngs {
        self.only = filter.into();
        self
    }

    /// With `splits = 1`, keeps the one new key as a single key (`squeeze=True`).
    pub fn squeeze(mut self, squeeze: bool) -> SplitRngs {
        self.squeeze = squeeze;
        self
    }

    /// Splits the streams of `node` in place.
    ///
    /// Either every selected stream is split or, on error, none is changed.
    ///
    /// # Errors
    /// [`Error::SqueezeNeedsOneSplit`] for `squeeze` with `splits` other than `1`;
    /// [`Error::MalformedRngStream`] for a malformed stream; [`Error::Shape`] when a selected stream holds a key array (JAX's `split`
    /// needs a single key); [`Error::TraceContext`] when a stream belongs to another trace
    /// level.
    pub fn apply(&self, node: &impl GraphValue) -> Result<SplitBackups> {
        if self.squeeze && self.splits != Splits::Count(1) {
            return Err(Error::SqueezeNeedsOneSplit {
                splits: self.splits.shape(),
            });
        }
        let streams = selected_streams(node, &self.only)?;
        for (path, stream) in &streams {
            let shape = stream.key()?.shape();
            if !shape.is_empty() {
                return Err(Error::shape(
                    "split_rngs",
                    format!(
                        "the RngStream at {path} holds a key array of shape {}, but split \
                         accepts a single key; split the stream inside the transform that \
                         maps over its keys instead",
                        py_shape(&shape)
                    ),
                ));
            }
        }
        replace_streams(streams, |stream, k| {
            let count_shape = stream.count()?.shape();
            if self.squeeze {
                let key = split_into(&k, &self.splits)?.reshape(&[])?;
                Ok((key, count_shape))
            } else {
                let mut shape = self.splits.shape();
                shape.extend(count_shape);
                Ok((split_into(&k, &self.splits)?, shape))
            }
        })
    }

    /// Splits the streams of `node`, runs `f`, and restores the streams — also when `f`
    /// returns an error (or panics). `f`'s error comes first; otherwise a restore error is
    /// returned.
    ///
    /// # Errors
    /// As [`SplitRngs::apply`], `f`'s error, or [`SplitBackups::restore`]'s.
    pub fn scoped<T>(&self, node: &impl GraphValue, f: impl FnOnce() -> Result<T>) -> Result<T> {
        run_scoped(self.apply(node)?, f)
    }
}

/// `nnx.split_rngs(node, splits=splits, only=only)`; see [`SplitRngs`].
///
/// # Errors
/// As [`SplitRngs::apply`].
pub fn split_rngs(
    node: &impl GraphValue,
    splits: impl Into<Splits>,
    only: &Filter,
) -> Result<SplitBackups> {
    SplitRngs::new(splits).only(only.clone()).apply(node)
}

/// `@nnx.split_rngs(splits=splits, only=only)` around `f`: splits, runs `f`, restores
/// (whatever `f` returns); see [`SplitRngs::scoped`].
///
/// # Errors
/// As [`SplitRngs::scoped`].
pub fn split_rngs_scoped<T>(
    node: &impl GraphValue,
    splits: impl Into<Splits>,
    only: &Filter,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    SplitRngs::new(splits).only(only.clone()).scoped(node, f)
}

/// `nnx.fork_rngs(node)` restricted to the streams matching `only`: every selected stream
/// gets the key `stream.next_key()` and a zero count (its count advances by one first).
/// Key-array streams are forked elementwise.
///
/// # Errors
/// [`Error::MalformedRngStream`] for a malformed stream; [`Error::TraceContext`] when a stream
/// belongs to another trace level. On error no stream is changed.
pub fn fork_rngs(node: &impl GraphValue, only: &Filter) -> Result<SplitBackups> {
    let streams = selected_streams(node, only)?;
    replace_streams(streams, |_, k| {
        let shape = k.shape().to_vec();
        Ok((k, shape))
    })
}

/// [`fork_rngs`], then `f`, then restore (also when `f` fails).
///
/// # Errors
/// As [`fork_rngs`], `f`'s error, or [`SplitBackups::restore`]'s.
pub fn fork_rngs_scoped<T>(
    node: &impl GraphValue,
    only: &Filter,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    run_scoped(fork_rngs(node, only)?, f)
}

/// The streams of `node` (with their paths) whose key and count both match `only`.
fn selected_streams(node: &impl GraphValue, only: &Filter) -> Result<Vec<(Path, RngStream)>> {
    let mut selected = Vec::new();
    for (path, stream) in rng_streams(node)? {
        let key = Leaf::Variable(stream.key()?);
        let count = Leaf::Variable(stream.count()?);
        if only.matches(&path.child("key"), &key) && only.matches(&path.child("count"), &count) {
            selected.push((path, stream));
        }
    }
    Ok(selected)
}

/// Draws `k` from each stream and sets `(key, count_shape) = new_state(stream, k)` with a
/// zero count; rolls every stream back to its original state if anything fails.
fn replace_streams(
    streams: Vec<(Path, RngStream)>,
    new_state: impl Fn(&RngStream, Tensor) -> Result<(Tensor, Vec<usize>)>,
) -> Result<SplitBackups> {
    let mut backups = Vec::with_capacity(streams.len());
    let mut originals = Vec::with_capacity(streams.len());
    for (_, stream) in streams {
        let step = snapshot(&stream).and_then(|original| {
            originals.push(original);
            replace_one(&stream, &new_state)
        });
        match step {
            Ok(backup) => backups.push(backup),
            Err(e) => {
                // Best effort: the error that caused the rollback is the one to report.
                let _ = restore_all(originals);
                return Err(e);
            }
        }
    }
    Ok(SplitBackups { backups })
}

/// The stream's current key and count.
fn snapshot(stream: &RngStream) -> Result<StreamBackup> {
    Ok(StreamBackup {
        stream: stream.clone(),
        key: stream.key()?.value(),
        count: stream.count()?.value(),
    })
}

/// Draws from one stream and replaces its state; returns its original key and advanced
/// count.
fn replace_one(
    stream: &RngStream,
    new_state: &impl Fn(&RngStream, Tensor) -> Result<(Tensor, Vec<usize>)>,
) -> Result<StreamBackup> {
    let (key_var, count_var) = (stream.key()?, stream.count()?);
    let key = key_var.value();
    let k = stream.next_key()?;
    let advanced = count_var.value();
    let (new_key, count_shape) = new_state(stream, k)?;
    key_var.set_value(new_key)?;
    count_var.set_value(Tensor::full(&count_shape, 0_u32))?;
    Ok(StreamBackup {
        stream: stream.clone(),
        key,
        count: advanced,
    })
}

/// Restores the backups when dropped, unless [`RestoreGuard::finish`] already did: this is
/// what restores the streams when the scoped closure panics.
struct RestoreGuard(Option<SplitBackups>);

impl RestoreGuard {
    fn finish(mut self) -> Result<()> {
        self.0.take().map_or(Ok(()), SplitBackups::restore)
    }
}

impl Drop for RestoreGuard {
    fn drop(&mut self) {
        if let Some(backups) = self.0.take() {
            // Only reached while unwinding from a panic in the closure; nothing to report to.
            let _ = backups.restore();
        }
    }
}

fn run_scoped<T>(backups: SplitBackups, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let guard = RestoreGuard(Some(backups));
    let out = f();
    let restored = guard.finish();
    let value = out?;
    restored.map(|()| value)
}
