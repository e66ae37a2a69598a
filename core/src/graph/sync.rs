//! The locks behind graph handles, and the graph-wide consistency lock.
//!
//! Every [`Object`](super::Object), [`List`](super::List), [`Dict`](super::Dict) and
//! [`Variable`](super::Variable) is an `Arc` over its identity and an [`RwLock`] over its
//! mutable part (decision record 0004). Library code holds a node's lock only for the
//! duration of one read or write of that node and never takes a second lock while holding
//! one, so lock order cannot deadlock, cycles included.
//!
//! Operations that touch many nodes — a whole-graph read (`split`, `state`, printing) and a
//! whole-graph write (a transform's write-back, `update`) — additionally take the
//! process-wide [`consistency`] lock, shared for reads and exclusive for writes, so that a
//! thread reading a model while another thread's transform writes it back sees every
//! Variable from before or every one from after, never a mix. The lock is re-entrant per
//! thread: an operation that already holds it (in either mode) runs nested ones without
//! taking it again.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Reads a lock. A panic while the lock was held cannot leave a node half-written (every
/// write is one assignment), so poisoning is ignored.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Writes a lock; see [`read`] on poisoning.
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

static CONSISTENCY: RwLock<()> = RwLock::new(());

thread_local! {
    /// Whether this thread holds the consistency lock (in either mode).
    static HOLDING: Cell<bool> = const { Cell::new(false) };
}

/// A held consistency lock (or nothing, when this thread already held it).
pub(crate) struct Consistency {
    _guard: Option<Guard>,
}

enum Guard {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

impl Drop for Consistency {
    fn drop(&mut self) {
        if self._guard.is_some() {
            HOLDING.with(|h| h.set(false));
        }
    }
}

/// Takes the consistency lock: shared for a whole-graph read, exclusive for a whole-graph
/// write. Nested calls on a thread that holds it already return at once.
pub(crate) fn consistency(exclusive: bool) -> Consistency {
    if HOLDING.with(Cell::get) {
        return Consistency { _guard: None };
    }
    let guard = if exclusive {
        Guard::Exclusive(write(&CONSISTENCY))
    } else {
        Guard::Shared(read(&CONSISTENCY))
    };
    HOLDING.with(|h| h.set(true));
    Consistency {
        _guard: Some(guard),
    }
}

/// Bumped by every change of structure anywhere (each node's and Variable's own version is
/// bumped too): a transform's shortcut that saw no change since its last check skips
/// checking each node.
static STRUCTURE_EPOCH: AtomicU64 = AtomicU64::new(0);

/// The current structure epoch.
pub(crate) fn structure_epoch() -> u64 {
    STRUCTURE_EPOCH.load(Ordering::Acquire)
}

/// Records a change of structure (called by every version bump).
pub(crate) fn structure_changed() {
    STRUCTURE_EPOCH.fetch_add(1, Ordering::AcqRel);
}
