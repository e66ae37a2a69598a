//! The float32 buffer pool: large buffers are recycled instead of going back to the
//! operating system, so that a program run again and again (a cached `jit`, a training
//! loop) finds its buffers ready instead of faulting fresh pages in on every call.
//!
//! Every float32 array keeps its elements in a [`PooledVec`]. When the last handle to a buffer
//! of at least [`MIN_POOLED_LEN`] elements is dropped — an intermediate value at its last use
//! inside an engine, or a result the caller lets go — the buffer goes back to the pool instead
//! of to the allocator, up to a byte limit ([`set_limit`], 1 GiB by default). An engine asks
//! for an output buffer with [`take`], which reuses a pooled buffer of exactly that length when
//! one is free. The pool is process-wide because the buffers it recycles are exactly the ones
//! that outlive a single call (results handed to the caller, values written into Variables);
//! within a call, engines also compute in place into dead operands.
//!
//! ```
//! use nnx_core::tensor::pool;
//! let v = pool::take(1 << 16);
//! assert_eq!(v.len(), 1 << 16);
//! pool::release(); // drops every pooled buffer
//! assert_eq!(pool::stats().pooled_bytes, 0);
//! ```

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Buffers shorter than this (16 KiB of float32) are left to the allocator, which serves
/// small sizes from its own caches without page faults.
pub const MIN_POOLED_LEN: usize = 1 << 12;

/// The default limit on the bytes the pool holds.
const DEFAULT_LIMIT: usize = 1 << 30;

static LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_LIMIT);

#[derive(Default)]
struct Free {
    /// Free buffers by length.
    by_len: HashMap<usize, Vec<Vec<f32>>>,
    bytes: usize,
    reused: u64,
}

static FREE: Mutex<Option<Free>> = Mutex::new(None);

fn with_free<R>(f: impl FnOnce(&mut Free) -> R) -> R {
    // A poisoned lock only means a panic elsewhere while holding it; the map is still valid.
    let mut guard = FREE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(guard.get_or_insert_with(Free::default))
}

/// A float32 buffer of `len` elements whose contents are unspecified (stale values of a
/// recycled buffer, or zeros): for a kernel that writes every element before reading any.
pub fn take(len: usize) -> Vec<f32> {
    if len >= MIN_POOLED_LEN
        && let Some(v) = with_free(|free| {
            let v = free.by_len.get_mut(&len)?.pop()?;
            free.bytes -= len * 4;
            free.reused += 1;
            Some(v)
        })
    {
        return v;
    }
    vec![0.0; len]
}

/// A float32 buffer of `len` zeros, recycled when possible.
pub fn take_zeroed(len: usize) -> Vec<f32> {
    let mut v = take(len);
    v.fill(0.0);
    v
}

/// Gives a buffer back (what dropping a [`PooledVec`] does).
fn give(v: Vec<f32>) {
    let len = v.len();
    if len < MIN_POOLED_LEN || len != v.capacity() {
        return;
    }
    let bytes = len * 4;
    let limit = LIMIT.load(Ordering::Relaxed);
    with_free(|free| {
        if free.bytes + bytes <= limit {
            free.bytes += bytes;
            free.by_len.entry(len).or_default().push(v);
        }
    });
}

/// Sets the most bytes the pool keeps (buffers dropped beyond it go back to the allocator);
/// `0` turns recycling off. Buffers already pooled beyond the new limit are released.
pub fn set_limit(bytes: usize) {
    LIMIT.store(bytes, Ordering::Relaxed);
    with_free(|free| {
        while free.bytes > bytes {
            let Some(len) = free.by_len.keys().next().copied() else {
                break;
            };
            if let Some(list) = free.by_len.remove(&len) {
                free.bytes -= list.len() * len * 4;
            }
        }
    });
}

/// Drops every pooled buffer, returning the memory to the allocator.
pub fn release() {
    with_free(|free| {
        free.by_len.clear();
        free.bytes = 0;
    });
}

/// What the pool holds now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes held in free buffers.
    pub pooled_bytes: usize,
    /// The limit ([`set_limit`]).
    pub limit: usize,
    /// How many times [`take`] reused a buffer since the process started.
    pub reused: u64,
}

/// The pool's current size, limit and reuse count.
pub fn stats() -> PoolStats {
    with_free(|free| PoolStats {
        pooled_bytes: free.bytes,
        limit: LIMIT.load(Ordering::Relaxed),
        reused: free.reused,
    })
}

/// The elements of a float32 array: a `Vec<f32>` that goes back to the pool when dropped.
#[doc(hidden)]
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PooledVec(Vec<f32>);

impl From<Vec<f32>> for PooledVec {
    fn from(v: Vec<f32>) -> PooledVec {
        PooledVec(v)
    }
}

impl AsRef<[f32]> for PooledVec {
    fn as_ref(&self) -> &[f32] {
        &self.0
    }
}

impl Deref for PooledVec {
    type Target = Vec<f32>;
    fn deref(&self) -> &Vec<f32> {
        &self.0
    }
}

impl DerefMut for PooledVec {
    fn deref_mut(&mut self) -> &mut Vec<f32> {
        &mut self.0
    }
}

impl Drop for PooledVec {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_buffers_are_reused_up_to_the_limit() {
        // Other tests allocate concurrently, so only this test's own length is inspected.
        let len = MIN_POOLED_LEN * 3 + 7;
        let first = take(len);
        let ptr = first.as_ptr();
        drop(PooledVec::from(first));
        let again = take(len);
        assert_eq!(again.as_ptr(), ptr, "the dropped buffer comes back");
        assert_eq!(again.len(), len);
        // Small buffers never enter the pool.
        drop(PooledVec::from(vec![1.0f32; 8]));
        assert!(with_free(|f| !f.by_len.contains_key(&8)));
        assert_eq!(take_zeroed(len + 1), vec![0.0; len + 1]);
    }
}
