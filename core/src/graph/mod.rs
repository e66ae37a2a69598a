//! The NNX object graph: objects, Variables and containers with reference semantics, and
//! the operations that take graphs apart and put them back together.
//!
//! - [`Object`] (alias [`Module`]), [`List`] and [`Dict`] are graph nodes with identity;
//!   [`Variable`] holds a tensor and metadata. All are handles: cloning shares.
//! - [`split`] / [`split_by`] turn a graph into a [`GraphDef`] (structure) and [`State`]s
//!   (leaves by [`Path`]); [`merge`] rebuilds it; [`update`] writes a State back in place;
//!   [`state`], [`graphdef`] and [`clone`] are the usual shorthands.
//! - [`Filter`]s select Variables by type, tag, path or predicate.
//!
//! Traversal is a pre-order walk over children in sorted key order; every graph node and
//! Variable gets an index from one shared counter and is described once, later occurrences
//! being references to that index. That is how shared references and cycles survive.

mod convert;
mod display;
mod filter;
pub(crate) mod graphdef;
pub(crate) mod merge;
mod node;
mod node_id;
mod ops;
pub(crate) mod path;
mod state;
mod static_value;
pub(crate) mod sync;
mod typed_module;
mod typed_nodes;
mod update;
mod value;
mod variable;
mod walk;

pub use convert::{FromValue, ToValue, mismatch};
pub use display::MAX_PRINT_DEPTH;
pub use filter::{Filter, Predicate};
pub use graphdef::{DefEntry, GraphDef, NodeDef, VariableDef};
pub(crate) use node::WeakNode;
pub use node::{Dict, List, Module, NodeKind, Object};
pub use node_id::NodeId;
pub(crate) use node_id::{IdMap, IdSet};
pub use ops::{clone, graphdef, merge, pop, split, split_by, state, state_by, update};
pub use path::{Key, Path};
pub use state::{Leaf, NestedState, State};
pub use static_value::Static;
pub use typed_module::{TypedModule, check_type_name, field_value, read_field};
pub use typed_nodes::{remember_object, typed_object};
pub use value::{GraphValue, Value};
pub(crate) use variable::WeakVariable;
pub use variable::{
    BatchStat, Cache, Intermediate, Param, Perturbation, RngCount, RngKey, RngState, Variable,
    VariableType, VariableTypeDef,
};
pub use walk::{find_duplicates, iter_graph, recursive_map, set_attributes, walk_objects};
