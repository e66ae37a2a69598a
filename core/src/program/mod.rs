//! The program IR and tracing: how a user's closure becomes something an engine can run.
//!
//! Inside a transform the closure runs once on tracers ([`trace_fn`]); each array operation
//! on a tracer is recorded as an [`Equation`] applying a [`Primitive`]. The resulting
//! [`Program`] (JAX's jaxpr) is pure and typed: every variable has an [`AbstractValue`].
//! Every primitive has a shape/dtype rule ([`Primitive::abstract_eval`]) and a reference
//! evaluation ([`Primitive::eval`]).

mod aval;
mod control;
mod interpret;
mod ir;
mod loops;
mod primitive;
mod schedule;
mod shape_rules;
mod tracing;

pub use aval::AbstractValue;
pub use control::{branch_index, cond_depends_on, predicate, while_depends_on, while_loop};
pub use interpret::{Outputs, interpret, interpret_indexed, interpret_owned, interpret_with};
pub use ir::{Atom, Equation, Program, VarId};
pub use loops::{ArrayLoops, LoopValues, lanes_loop, scan_loop};
pub use primitive::Primitive;
pub use primitive::{Batching, ProgramRef, RematPolicy, ScanInput, ScanOutput, ScanSpec};
pub use schedule::{Schedule, Step};
pub use tracing::{TraceId, TracedFunction, Tracer, trace_fn};
pub(crate) use tracing::{note_read, record, record_in_innermost, record_multi, tracing_active};
