//! Trace levels: the bookkeeping behind the closure rule.
//!
//! Every object and variable records the trace level current when it was created. A
//! transform runs its function one level deeper ([`enter_level`]); objects passed in as
//! arguments are re-created at that level, so they can be mutated there, while objects
//! captured by closure still belong to the outer level, and mutating them is a
//! [`Error::TraceContext`] error (Flax's "Cannot mutate Param from a different trace level").
//! Reading is always allowed.

use std::cell::Cell;

use crate::error::{Error, Result};

/// A trace level: 0 outside every transform, one more inside each nested transform.
pub type TraceLevel = u32;

thread_local! {
    static CURRENT_LEVEL: Cell<TraceLevel> = const { Cell::new(0) };
}

/// The trace level code is running at now.
pub fn current_level() -> TraceLevel {
    CURRENT_LEVEL.with(Cell::get)
}

/// Enters a new, deeper trace level until the returned guard is dropped.
///
/// ```
/// use nnx_core::{Param, Tensor, trace};
/// let p = Param::new(Tensor::zeros(&[1]));
/// {
///     let _inner = trace::enter_level();
///     assert!(p.set_value(Tensor::ones(&[1])).is_err()); // captured from outside
///     let q = Param::new(Tensor::zeros(&[1]));
///     assert!(q.set_value(Tensor::ones(&[1])).is_ok()); // created inside
/// }
/// assert!(p.set_value(Tensor::ones(&[1])).is_ok());
/// ```
#[must_use = "the level ends when the guard is dropped"]
pub fn enter_level() -> TraceLevelGuard {
    let previous = current_level();
    CURRENT_LEVEL.with(|c| c.set(previous + 1));
    TraceLevelGuard { previous }
}

/// Restores the previous trace level when dropped; see [`enter_level`].
#[derive(Debug)]
pub struct TraceLevelGuard {
    previous: TraceLevel,
}

impl Drop for TraceLevelGuard {
    fn drop(&mut self) {
        CURRENT_LEVEL.with(|c| c.set(self.previous));
    }
}

/// `Ok` when an object owned by `owner` may be mutated at the current level.
pub(crate) fn check_can_mutate(type_name: &str, owner: TraceLevel) -> Result<()> {
    let current = current_level();
    if owner == current {
        Ok(())
    } else {
        Err(Error::TraceContext {
            type_name: type_name.to_owned(),
            object_level: owner,
            current_level: current,
        })
    }
}
