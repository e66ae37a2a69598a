//! Identities of graph nodes and variables, from a counter (never from addresses), so that
//! everything printed is deterministic.

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
