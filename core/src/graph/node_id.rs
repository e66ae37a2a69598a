//! Identities of graph nodes and variables, from a counter (never from addresses), so that
//! everything printed is deterministic.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// The identity of an object, container or variable. Ids come from one process-wide counter:
/// unique, increasing in creation order, and never derived from memory addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u64);

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl NodeId {
    /// A new, unique id.
    pub(crate) fn fresh() -> NodeId {
        NodeId(NEXT_ID.fetch_add(1, Ordering::Relaxed))
    }
}

/// A hash map keyed by [`NodeId`], with a hash made for counter-issued ids (a multiplicative
/// mix instead of SipHash: ids are not attacker-chosen, and graph traversals hash one per
/// node).
pub(crate) type IdMap<V> = HashMap<NodeId, V, BuildHasherDefault<IdHasher>>;

/// A hash set of [`NodeId`]s; see [`IdMap`].
pub(crate) type IdSet = HashSet<NodeId, BuildHasherDefault<IdHasher>>;

/// The hasher of [`IdMap`]: Fibonacci hashing of the id, so that consecutive ids spread
/// over the table's high bits.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}
