//! The one error type of the project, shared by every crate.
//!
//! Every fallible public function returns [`Result`]. Each [`Error`] variant carries the data
//! a user needs to fix the problem (shapes, axes, paths), and [`Error::kind`] groups variants
//! into coarse [`ErrorKind`]s for programs that branch on the category.
//!
//! Messages keep Flax's key phrases verbatim where people will search for them
//! ("Non-exhaustive filters", "Cannot mutate Param from a different trace level").

use crate::graph::Path;
use crate::tensor::DType;

mod messages;
use messages::*;

/// `Result` with the project's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Coarse categories of [`Error`], for code that branches on the kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Array shapes that do not fit an operation.
    Shape,
    /// A dtype an operation does not accept.
    DType,
    /// An axis that is out of range or repeated.
    Axis,
    /// A value that is invalid for reasons other than shape, dtype or axis.
    Value,
    /// An attribute, key or path that does not exist.
    NotFound,
    /// Filters that are malformed or do not cover every Variable.
    Filter,
    /// A graph that is malformed for the requested operation.
    Graph,
    /// A `merge` whose states do not match its `GraphDef`.
    Merge,
    /// A mutation of an object from a trace level other than the one that owns it.
    TraceContext,
    /// The same Variable transformed in two different ways.
    Aliasing,
    /// A transform prefix (axes, filters) that does not fit the values.
    Prefix,
    /// A traced value used in a way that needs its contents, or after its trace ended.
    Tracing,
    /// An array too large to represent or to allocate on this machine.
    Resource,
    /// A program (IR) that is not well formed, or inputs that do not match it: an engine's
    /// or a hand-built program's defect, never a user's model.
    Program,
    /// A broken internal invariant: a defect in the library; please report it.
    Internal,
}

/// One Variable reached with different prefixes, for [`Error::InconsistentAliasing`].
#[derive(Debug, Clone, PartialEq)]
pub struct AliasConflict {
    /// The Variable's type name.
    pub type_name: String,
    /// Every occurrence: the full path from the transform's arguments or output, and the
    /// prefix it got there.
    pub occurrences: Vec<(String, String)>,
}

/// The error type of every fallible operation in the project.
///
/// `{}` (`Display`) and `{:?}` (`Debug`) both print the readable message, so that
/// `fn main() -> Result<()>` reports what went wrong in words; `{:#?}` adds the
/// [`kind`](Error::kind). Match on the variant for its fields.
///
/// ```
/// use nnx_core::{Error, Tensor};
/// let err = Tensor::zeros(&[2, 3]).matmul(&Tensor::zeros(&[2, 3])).unwrap_err();
/// assert_eq!(format!("{err:?}"), err.to_string());
/// assert!(format!("{err:#?}").contains("kind: Shape"));
/// ```
#[derive(Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Shapes that do not broadcast together (numpy rules).
    #[error("{op}: shapes {lhs:?} and {rhs:?} cannot be broadcast together")]
    Broadcast {
        /// The operation that was attempted.
        op: &'static str,
        /// Shape of the left operand.
        lhs: Vec<usize>,
        /// Shape of the right operand.
        rhs: Vec<usize>,
    },
    /// Matrix multiplication with inner dimensions that do not agree.
    #[error(
        "matmul: contracting dimensions differ: lhs shape {lhs:?} has {lhs_inner} columns, \
         rhs shape {rhs:?} has {rhs_inner} rows"
    )]
    MatmulShape {
        /// Shape of the left operand.
        lhs: Vec<usize>,
        /// Shape of the right operand.
        rhs: Vec<usize>,
        /// Size of the left operand's contracting dimension.
        lhs_inner: usize,
        /// Size of the right operand's contracting dimension.
        rhs_inner: usize,
    },
    /// A shape that does not fit an operation, with an explanation.
    #[error("{op}: {message}")]
    Shape {
        /// The operation that was attempted.
        op: &'static str,
        /// What was wrong, naming the shapes involved.
        message: String,
    },
    /// An axis outside `[-ndim, ndim)`.
    #[error("{op}: axis {axis} is out of bounds for an array of rank {ndim} (shape {shape:?})")]
    AxisOutOfBounds {
        /// The operation that was attempted.
        op: &'static str,
        /// The axis that was given.
        axis: isize,
        /// The rank of the array.
        ndim: usize,
        /// The shape of the array.
        shape: Vec<usize>,
    },
    /// The same axis given twice.
    #[error("{op}: axis {axis} is repeated in {axes:?}")]
    RepeatedAxis {
        /// The operation that was attempted.
        op: &'static str,
        /// The normalised axis that appears more than once.
        axis: usize,
        /// The axes as given.
        axes: Vec<isize>,
    },
    /// An index outside the extent of an axis.
    #[error("{op}: index {index} is out of bounds for axis {axis} with size {size}")]
    IndexOutOfBounds {
        /// The operation that was attempted.
        op: &'static str,
        /// The index that was given.
        index: isize,
        /// The axis indexed.
        axis: usize,
        /// The size of that axis.
        size: usize,
    },
    /// A dtype that the operation does not support.
    #[error("{op}: unsupported dtype {dtype}{}", expected_suffix(.expected))]
    UnsupportedDType {
        /// The operation that was attempted.
        op: &'static str,
        /// The dtype that was given.
        dtype: DType,
        /// What the operation accepts, if it is worth saying.
        expected: Option<&'static str>,
    },
    /// Operands whose dtypes cannot be combined.
    #[error("{op}: dtypes {lhs} and {rhs} cannot be combined")]
    DTypeMismatch {
        /// The operation that was attempted.
        op: &'static str,
        /// The first dtype.
        lhs: DType,
        /// The second dtype.
        rhs: DType,
    },
    /// Data whose length does not match the requested shape.
    #[error("cannot build an array of shape {shape:?} ({expected} elements) from {got} elements")]
    DataLength {
        /// The requested shape.
        shape: Vec<usize>,
        /// The number of elements the shape needs.
        expected: usize,
        /// The number of elements supplied.
        got: usize,
    },
    /// A shape whose element count or byte size does not fit in a `usize`.
    #[error(
        "an array of shape {shape:?} is too large: its size overflows this machine's address \
         space"
    )]
    ArrayTooLarge {
        /// The requested shape.
        shape: Vec<usize>,
    },
    /// An array whose buffer the allocator could not provide.
    #[error("cannot allocate {bytes} bytes for an array of shape {shape:?} and dtype {dtype}")]
    AllocationFailed {
        /// The requested shape.
        shape: Vec<usize>,
        /// The requested dtype.
        dtype: crate::tensor::DType,
        /// The buffer size that could not be allocated.
        bytes: usize,
    },
    /// A differentiated input that is not floating point (JAX's `grad` rejects these too).
    #[error("{transform} requires float32 inputs, but {location} has dtype {dtype}; {hint}")]
    NonDifferentiable {
        /// The transform (`grad`, `jvp`, `jacrev`, `jacfwd`).
        transform: &'static str,
        /// How to fix the call.
        hint: &'static str,
        /// Where the input is (`args[0].count`).
        location: String,
        /// Its dtype.
        dtype: crate::tensor::DType,
    },
    /// A checkpoint that cannot be read or written: truncated or corrupt bytes, an
    /// unsupported dtype, an I/O failure.
    #[error("checkpoint: {reason}")]
    Checkpoint {
        /// What went wrong.
        reason: String,
    },
    /// A checkpoint that does not fit the model: every missing, unexpected or mismatched
    /// entry at once.
    #[error("the checkpoint does not fit the model:\n  {}", .problems.join("\n  "))]
    CheckpointMismatch {
        /// One line per problem, naming the path.
        problems: Vec<String>,
    },
    /// A derivative through a primitive without derivative rules.
    #[error(
        "{primitive} has no derivative rule, so it cannot be differentiated; apply \
         stop_gradient to its input"
    )]
    NoDerivativeRule {
        /// The primitive's name.
        primitive: String,
    },
    /// A value of another kind than the one asked for (an object where an array was
    /// expected, a State gradient where an array gradient was expected, …).
    #[error("expected {expected}, got {found}")]
    WrongValueKind {
        /// What was expected (`"an array"`, `"an Rngs object"`).
        expected: &'static str,
        /// What was found (`"an object"`, `"a 'Model' object"`).
        found: String,
    },
    /// A typed function called with a different number of arguments than it declares.
    #[error(
        "the function takes {expected} argument{} but was called with {found}",
        if *.expected == 1 { "" } else { "s" }
    )]
    ArgumentCount {
        /// How many arguments the function declares.
        expected: usize,
        /// How many it was called with.
        found: usize,
    },
    /// A value that does not convert to the Rust type asked for: an argument of a typed
    /// function, its output, or a field of a typed module.
    #[error("{}expected {expected}, found {found}", context(.at))]
    TypeMismatch {
        /// Where: `argument 1`, `the output`, `argument 0, field kernel`; empty when the
        /// conversion had no context.
        at: String,
        /// The Rust type asked for, as it reads in code (`Tensor`, `Param`, `Linear`).
        expected: String,
        /// What the value was (`a 'Weights' object`, `an array of shape [2, 3]`).
        found: String,
    },
    /// A path in Flax's flat form (`layers/0/kernel`) that does not parse.
    #[error("cannot parse the path {text:?}: {why}")]
    InvalidPath {
        /// The text.
        text: String,
        /// What is wrong with it.
        why: String,
    },
    /// A State leaf that is a raw array where a Variable was asked for.
    #[error("the leaf at {path} is a raw array, not a Variable")]
    LeafNotVariable {
        /// The leaf's path in the State.
        path: Path,
    },
    /// A function given to `grad` whose output has no loss array where the loss should be.
    #[error("{}", grad_loss_missing(*.has_aux))]
    GradLossMissing {
        /// Whether the function was declared to return `(loss, aux)`.
        has_aux: bool,
    },
    /// A loss given to `grad` that is not a float32 scalar. Its kind is
    /// [`ErrorKind::Shape`] when the loss is not a scalar, [`ErrorKind::DType`] otherwise.
    #[error(
        "grad requires a real scalar output (float32, shape ()), got {dtype} of shape {shape:?}"
    )]
    GradLossNotScalar {
        /// The loss's dtype.
        dtype: DType,
        /// The loss's shape.
        shape: Vec<usize>,
    },
    /// A function given to `jacrev` or `jacfwd` whose output is not a float32 array.
    #[error("{transform} requires a float32 array output, got {dtype}")]
    JacobianOutput {
        /// `"jacrev"` or `"jacfwd"`.
        transform: &'static str,
        /// The output's dtype.
        dtype: DType,
    },
    /// A `jvp` called with another number of tangents than it differentiates arguments.
    #[error(
        "jvp takes one tangent per differentiated argument ({expected}, from argnums/wrt), \
         got {found}"
    )]
    TangentCount {
        /// How many arguments are differentiated.
        expected: usize,
        /// How many tangents were given.
        found: usize,
    },
    /// A tangent whose shape or dtype differs from its primal's.
    #[error(
        "the tangent of {location} must have the primal's shape {expected:?} (float32), \
         got {dtype} of shape {found:?}"
    )]
    TangentShape {
        /// Which primal (`args[0]/kernel`).
        location: String,
        /// The primal's shape.
        expected: Vec<usize>,
        /// The tangent's shape.
        found: Vec<usize>,
        /// The tangent's dtype.
        dtype: DType,
    },
    /// A `custom_vjp` function used in a way it does not allow (its backward function's
    /// results do not fit its inputs, forward-mode differentiation through it, …).
    #[error("custom_vjp: {0}")]
    CustomVjp(String),
    /// A transform without graph updates (`graph_updates(false)`) given what it cannot keep
    /// apart: input Variables or objects returned as outputs.
    #[error("{0}")]
    GraphUpdates(String),
    /// Lifted control flow used in a way it does not allow: a predicate or branch index
    /// that is not a scalar of the right dtype, branches that leave different structures,
    /// a `while_loop` body that changes its loop value's structure, or reverse-mode
    /// differentiation through a `while_loop`.
    #[error("{0}")]
    ControlFlow(String),
    /// A mesh, partition spec or collective used in a way it does not allow: an axis name
    /// not in the mesh, a spec that does not fit its argument, a shape that does not split
    /// evenly, a collective outside `shard_map`, devices that disagree on collectives.
    #[error("{0}")]
    Sharding(String),
    /// An argument differentiated by `grad` that is neither a graph node nor an array (a
    /// tuple or a static value), so it has no gradient to return.
    #[error("argument {argnum} has no differentiable array")]
    NoDifferentiableArray {
        /// The argument's position.
        argnum: usize,
    },
    /// An axis-name sequence in a Variable's metadata (such as `sharding`) without the
    /// expected name at the axis a transform removes.
    #[error(
        "Expected to remove '{name}' at index {axis} from {sequence}, but found {found} ({location})"
    )]
    AxisNameMismatch {
        /// The axis name that should be there.
        name: String,
        /// The axis it should be at.
        axis: usize,
        /// The sequence, in Python repr.
        sequence: String,
        /// What is at that index instead (`nothing` when the sequence is too short).
        found: String,
        /// Where the metadata is (`args[0].kernel.sharding`).
        location: String,
    },
    /// `split_rngs` with `squeeze` and a split other than a single one.
    #[error("squeeze=True is only supported for splits=1")]
    SqueezeNeedsOneSplit {
        /// The shape of the requested splits.
        splits: Vec<usize>,
    },
    /// A stream name given more than once when building an `Rngs`.
    #[error("Rngs got more than one seed for the stream '{name}'")]
    DuplicateRngStream {
        /// The stream's name.
        name: String,
    },
    /// A seed that is neither a key array nor uint32 key data.
    #[error("Invalid rng value: {value}, expected a key array (dtype key<fry>) or uint32 key data")]
    InvalidRngSeed {
        /// The seed, in repr.
        value: String,
        /// Its dtype.
        dtype: DType,
    },
    /// An `RngStream` object whose `tag`, `key` or `count` is missing or of the wrong kind.
    #[error("malformed RngStream{}: {problem}", stream_tag(.tag))]
    MalformedRngStream {
        /// The stream's tag (its name in the `Rngs`), when it can be read.
        tag: Option<String>,
        /// What is wrong (`its count holds float32 data, not uint32`).
        problem: String,
    },
    /// A broken internal invariant: a defect in the library, never the caller's input.
    #[error("internal error: {what} (a defect in the library; please report it)")]
    Internal {
        /// The invariant that does not hold.
        what: String,
    },
    /// A program that is not well formed, or inputs that do not match its signature.
    #[error("malformed program: {reason}")]
    MalformedProgram {
        /// What is wrong, naming the variable or equation.
        reason: String,
    },
    /// The contents of a traced array were asked for inside a transform.
    #[error(
        "Attempted to read the contents of a traced array ({aval}) inside a transform. Traced \
         arrays only have a shape and a dtype while the function is being traced; compute with \
         array operations instead of reading values, or move the read outside the transform"
    )]
    Concretization {
        /// The tracer's shape and dtype.
        aval: String,
    },
    /// The values of an abstract array (from `eval_shape`) were asked for.
    #[error(
        "{aval} is an abstract array (from eval_shape): it has a shape and a dtype but no \
         values; restore a checkpoint into it or update it with real arrays first"
    )]
    AbstractArray {
        /// Its shape and dtype.
        aval: String,
    },
    /// A tracer used after its transform finished (it leaked out of the function).
    #[error(
        "Encountered an escaped tracer ({aval}) in {op}: it belongs to a transform that has \
         already finished; return values from the transformed function instead of storing them \
         elsewhere"
    )]
    EscapedTracer {
        /// The tracer's shape and dtype.
        aval: String,
        /// The operation it was used in.
        op: String,
    },
    /// A tracer used on a thread other than the one tracing its function.
    #[error(
        "A tracer ({aval}) was used in {op} on a different thread from the one tracing its \
         function: a transform traces its function on the calling thread, so traced values \
         cannot be sent to other threads; run the computation inside the function on that \
         thread, or return the value and use the result"
    )]
    TracerOnOtherThread {
        /// The tracer's shape and dtype.
        aval: String,
        /// The operation it was used in.
        op: String,
    },
    /// An attribute that does not exist on an object.
    #[error("'{type_name}' object has no attribute '{name}' (it has: {})", list_or_none(.available))]
    AttributeNotFound {
        /// Type name of the object.
        type_name: String,
        /// The attribute asked for.
        name: String,
        /// The attributes the object does have.
        available: Vec<String>,
    },
    /// An attribute holding another kind of value than the one asked for.
    #[error("attribute '{name}' of '{type_name}' is {found}, not {expected}")]
    AttributeType {
        /// Type name of the object.
        type_name: String,
        /// The attribute asked for.
        name: String,
        /// What the caller expected (e.g. "a Variable").
        expected: &'static str,
        /// What the attribute holds.
        found: String,
    },
    /// A container index outside its length.
    #[error("index {index} is out of range for a {container} of length {len}")]
    ContainerIndex {
        /// The container kind ("List", "tuple").
        container: &'static str,
        /// The index that was given.
        index: usize,
        /// The container's length.
        len: usize,
    },
    /// A stream name with no RngStream in an Rngs and no `default` stream to fall back to.
    #[error("No RngStream named '{name}' found in Rngs. {}", rng_streams_hint(.available))]
    RngStreamNotFound {
        /// The stream asked for.
        name: String,
        /// The streams the Rngs has.
        available: Vec<String>,
    },
    /// `set_attributes` (`train()`, `eval()`) with an attribute that no module of the graph
    /// has; Flax's phrase.
    #[error("Could not find at least one instance of the following attributes: {names:?}")]
    AttributesNotFound {
        /// The attributes no module has, sorted.
        names: Vec<String>,
    },
    /// A key that is not present in a mapping (State, Dict).
    #[error("key {key} not found in {container} (keys: {})", list_or_none(.available))]
    KeyNotFound {
        /// The container kind ("State", "Dict").
        container: &'static str,
        /// The key asked for, in Python repr.
        key: String,
        /// The keys that are present.
        available: Vec<String>,
    },
    /// Filters passed to `split` that leave some Variables unmatched.
    #[error(
        "Non-exhaustive filters, got a non-empty remainder: {}.\nUse `Filter::Everything` (`...` in \
         Flax) as the last filter to match all remaining elements.",
        paths_list(.remainder)
    )]
    NonExhaustiveFilters {
        /// Paths of the Variables no filter matched.
        remainder: Vec<Path>,
    },
    /// `Everything` used before the last position in a list of filters.
    #[error(
        "`Everything` (`...` or `True`) can only be used as the last filter, got it at index {index}"
    )]
    EverythingNotLast {
        /// Position of the misplaced filter.
        index: usize,
    },
    /// States given to `merge` whose paths do not match the `GraphDef`.
    #[error("merge: the states do not match the GraphDef: {}", merge_mismatch(.missing, .unexpected))]
    MergeMismatch {
        /// Leaf paths the GraphDef needs that no State provides.
        missing: Vec<Path>,
        /// Paths in the States that the GraphDef has no leaf for.
        unexpected: Vec<Path>,
    },
    /// The same path provided by more than one State given to `merge`.
    #[error("merge: path {path} is provided by more than one State")]
    MergeDuplicate {
        /// The duplicated path.
        path: Path,
    },
    /// `update` found a subgraph where the State has a leaf, or the other way round.
    #[error("{0}")]
    StructureMismatch(String),
    /// The same Variable reached through transform inputs/outputs with different prefixes.
    #[error(
        "Inconsistent aliasing detected. The following nodes have different prefixes:\n{}",
        alias_conflicts(.conflicts)
    )]
    InconsistentAliasing {
        /// Every Variable with more than one prefix, with all its occurrences.
        conflicts: Vec<AliasConflict>,
    },
    /// A Variable that no filter of a `StateAxes` (or similar mapping) matches.
    #[error("No axis found for path={path}, variable={variable}")]
    NoAxisFound {
        /// The Variable's path inside the node the mapping applies to.
        path: Path,
        /// The Variable's repr.
        variable: String,
    },
    /// An object from another trace level passed into or returned from a transform.
    #[error(
        "Cannot extract graph node from a different trace level: {type_name} at {path} belongs to \
         trace level {object_level} but the transform runs at level {current_level}; pass it \
         as an argument of the enclosing transform instead of capturing it"
    )]
    ExtractFromOtherTrace {
        /// Type name of the object or Variable.
        type_name: String,
        /// Whether it is a Variable (else an object, list or dict).
        variable: bool,
        /// Where it was found (`args[0].sub`).
        path: String,
        /// The level that owns it.
        object_level: u32,
        /// The level of the transform.
        current_level: u32,
    },
    /// A transform prefix (`in_axes`, `out_axes`, …) that does not fit the values.
    #[error("{0}")]
    InvalidPrefix(String),
    /// A mutation from a trace level that does not own the object (the closure rule).
    #[error("Cannot mutate {type_name} from a different trace level{}", trace_levels(*.object_level, *.current_level))]
    TraceContext {
        /// Type name of the object or Variable.
        type_name: String,
        /// The level that owns the object.
        object_level: u32,
        /// The level the mutation was attempted from.
        current_level: u32,
    },
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if f.alternate() {
            f.debug_struct("Error")
                .field("kind", &self.kind())
                .field("message", &self.to_string())
                .finish()
        } else {
            std::fmt::Display::fmt(self, f)
        }
    }
}

impl Error {
    /// Adds where a [`Error::TypeMismatch`] happened, outermost first (`argument 0`, then
    /// `field kernel`); other errors are returned as they are.
    #[must_use]
    pub fn within(self, place: impl std::fmt::Display) -> Error {
        match self {
            Error::TypeMismatch {
                at,
                expected,
                found,
            } => Error::TypeMismatch {
                at: if at.is_empty() {
                    place.to_string()
                } else {
                    format!("{place}, {at}")
                },
                expected,
                found,
            },
            other => other,
        }
    }

    /// The coarse category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Broadcast { .. }
            | Error::MatmulShape { .. }
            | Error::Shape { .. }
            | Error::DataLength { .. } => ErrorKind::Shape,
            Error::AxisOutOfBounds { .. }
            | Error::RepeatedAxis { .. }
            | Error::IndexOutOfBounds { .. } => ErrorKind::Axis,
            Error::UnsupportedDType { .. }
            | Error::DTypeMismatch { .. }
            | Error::NonDifferentiable { .. } => ErrorKind::DType,
            Error::NoDerivativeRule { .. } | Error::Checkpoint { .. } => ErrorKind::Value,
            Error::CheckpointMismatch { .. } => ErrorKind::Merge,
            Error::WrongValueKind { .. }
            | Error::ArgumentCount { .. }
            | Error::TypeMismatch { .. }
            | Error::InvalidPath { .. }
            | Error::LeafNotVariable { .. }
            | Error::GradLossMissing { .. }
            | Error::NoDifferentiableArray { .. }
            | Error::AxisNameMismatch { .. }
            | Error::SqueezeNeedsOneSplit { .. }
            | Error::DuplicateRngStream { .. }
            | Error::MalformedRngStream { .. } => ErrorKind::Value,
            Error::GradLossNotScalar { shape, .. } if !shape.is_empty() => ErrorKind::Shape,
            Error::TangentShape {
                expected, found, ..
            } if expected != found => ErrorKind::Shape,
            Error::GradLossNotScalar { .. }
            | Error::InvalidRngSeed { .. }
            | Error::JacobianOutput { .. }
            | Error::TangentShape { .. } => ErrorKind::DType,
            Error::GraphUpdates(_) => ErrorKind::Aliasing,
            Error::Sharding(_) => ErrorKind::Prefix,
            Error::TangentCount { .. } | Error::CustomVjp(_) | Error::ControlFlow(_) => {
                ErrorKind::Value
            }
            Error::Internal { .. } => ErrorKind::Internal,
            Error::MalformedProgram { .. } => ErrorKind::Program,
            Error::ArrayTooLarge { .. } | Error::AllocationFailed { .. } => ErrorKind::Resource,
            Error::Concretization { .. }
            | Error::AbstractArray { .. }
            | Error::EscapedTracer { .. }
            | Error::TracerOnOtherThread { .. } => ErrorKind::Tracing,
            Error::AttributeNotFound { .. }
            | Error::ContainerIndex { .. }
            | Error::KeyNotFound { .. }
            | Error::AttributesNotFound { .. }
            | Error::RngStreamNotFound { .. } => ErrorKind::NotFound,
            Error::AttributeType { .. } | Error::StructureMismatch(_) => ErrorKind::Graph,
            Error::NonExhaustiveFilters { .. } | Error::EverythingNotLast { .. } => {
                ErrorKind::Filter
            }
            Error::MergeMismatch { .. } | Error::MergeDuplicate { .. } => ErrorKind::Merge,
            Error::TraceContext { .. } | Error::ExtractFromOtherTrace { .. } => {
                ErrorKind::TraceContext
            }
            Error::InconsistentAliasing { .. } => ErrorKind::Aliasing,
            Error::NoAxisFound { .. } | Error::InvalidPrefix(_) => ErrorKind::Prefix,
        }
    }

    /// Shorthand for [`Error::Shape`].
    pub fn shape(op: &'static str, message: impl Into<String>) -> Self {
        Error::Shape {
            op,
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Internal`].
    pub(crate) fn internal(what: impl Into<String>) -> Self {
        Error::Internal { what: what.into() }
    }

    /// Shorthand for [`Error::MalformedProgram`].
    pub(crate) fn malformed_program(reason: impl Into<String>) -> Self {
        Error::MalformedProgram {
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests;
