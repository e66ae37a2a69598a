//! The primitive operations a program is made of, with their reference evaluation (their
//! shape/dtype rules are in `shape_rules.rs`).
//!
//! Every rule is an exhaustive `match` over [`Primitive`], so adding a primitive without a
//! rule is a compile error.

use std::fmt;

use std::sync::Arc;

use super::aval::AbstractValue;
use super::ir::Program;
use crate::error::{Error, Result};
use crate::random::RandomOp;
use crate::tensor::elementwise::{BinaryOp, CompareOp, UnaryOp};
use crate::tensor::{ArgOp, Array, DType, ReduceOp, Windows, byte_size, check_allocation};

/// A program held by a higher-order primitive. Equality is identity (two equations call the
/// same program only if they share it).
#[derive(Clone, Debug)]
pub struct ProgramRef(pub Arc<Program>);

impl PartialEq for ProgramRef {
    fn eq(&self, other: &ProgramRef) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// How a batched (vmapped) program maps its inputs and outputs: `in_axes[i]` is the batch
/// axis of input `i` (`None`: the same value for every lane), `out_axes[j]` where output `j`
/// gets the batch axis (`None`: the output must not depend on batched inputs).
#[derive(Clone, Debug, PartialEq)]
pub struct Batching {
    /// Batch axis of each input.
    pub in_axes: Vec<Option<usize>>,
    /// Batch axis of each output.
    pub out_axes: Vec<Option<usize>>,
    /// The number of lanes.
    pub axis_size: usize,
}

/// The avals of `program`'s outputs with an axis of `size` inserted where `axes` says
/// (`None`: the output as it is).
fn stacked_avals(
    program: &Program,
    axes: impl Iterator<Item = Option<usize>>,
    size: usize,
) -> Vec<AbstractValue> {
    program
        .outputs
        .iter()
        .zip(axes)
        .map(|(atom, axis)| {
            let mut aval = program.aval_of(atom);
            if let Some(axis) = axis {
                aval.shape.insert(axis.min(aval.shape.len()), size);
            }
            aval
        })
        .collect()
}

/// Checks that every output can be allocated, before an engine loops over lanes or
/// iterations that a user-given size controls, and returns the avals.
fn check_output_allocations(avals: Vec<AbstractValue>) -> Result<Vec<AbstractValue>> {
    for aval in &avals {
        check_allocation(&aval.shape, aval.dtype)?;
    }
    Ok(avals)
}

impl Batching {
    /// The shapes and dtypes of the batched program's outputs (the per-lane ones with the
    /// batch axis inserted at each out axis).
    pub fn output_avals(&self, program: &Program) -> Vec<AbstractValue> {
        stacked_avals(program, self.out_axes.iter().copied(), self.axis_size)
    }

    /// Checks that an input of `shape` mapped along `axis` (`None`: not mapped) has
    /// `axis_size` elements there.
    ///
    /// # Errors
    /// [`Error::Shape`] naming the shape, the axis and the number of lanes.
    pub fn check_input(&self, shape: &[usize], axis: Option<usize>) -> Result<()> {
        match axis {
            Some(axis) if shape.get(axis) != Some(&self.axis_size) => Err(Error::shape(
                "vmap",
                format!(
                    "input of shape {shape:?} cannot be mapped along axis {axis} with {} lanes",
                    self.axis_size
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Checks, before any lane runs, that the batched outputs can be allocated, and returns
    /// their avals ([`Batching::output_avals`]).
    ///
    /// # Errors
    /// [`Error::ArrayTooLarge`] or [`Error::AllocationFailed`].
    pub fn check_outputs(&self, program: &Program) -> Result<Vec<AbstractValue>> {
        check_output_allocations(self.output_avals(program))
    }
}

/// What a checkpointed function ([`Primitive::Remat`]) saves for its backward pass; the
/// rest of its forward pass is recomputed there (`jax.checkpoint_policies`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RematPolicy {
    /// Nothing: the backward pass re-runs the whole function (`nothing_saveable`, the
    /// default of `jax.checkpoint` and `nnx.remat`).
    #[default]
    NothingSaveable,
    /// The results of matrix products (`dots_saveable`): the backward pass re-runs
    /// everything else, and reads the products the forward pass kept.
    DotsSaveable,
}

/// How a scanned program's inputs are fed on each iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanInput {
    /// Loop state: the initial value, then the previous iteration's result.
    Carry,
    /// Sliced: iteration `t` sees index `t` along this axis.
    Scanned(usize),
    /// The same value every iteration.
    Broadcast,
}

/// What a scanned program's outputs become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanOutput {
    /// The new value of carry input `i`; the result is the final carry.
    Carry(usize),
    /// Stacked over iterations along this axis (in iteration-index order, also when
    /// reversed).
    Stacked(usize),
    /// Iteration-independent: the value of any iteration (the first is used).
    Broadcast,
}

/// The static description of a scan.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanSpec {
    /// The number of iterations.
    pub length: usize,
    /// Iterate from the last index to the first.
    pub reverse: bool,
    /// One entry per program input.
    pub inputs: Vec<ScanInput>,
    /// One entry per program output.
    pub outputs: Vec<ScanOutput>,
}

impl ScanSpec {
    /// The shapes and dtypes of the scan's outputs (stacked ones with the iteration axis
    /// inserted).
    pub fn output_avals(&self, program: &Program) -> Vec<AbstractValue> {
        let axes = self.outputs.iter().map(|kind| match kind {
            ScanOutput::Stacked(axis) => Some(*axis),
            ScanOutput::Carry(_) | ScanOutput::Broadcast => None,
        });
        stacked_avals(program, axes, self.length)
    }

    /// Checks, before any iteration runs, that the outputs can be allocated, and returns
    /// their avals ([`ScanSpec::output_avals`]).
    ///
    /// # Errors
    /// [`Error::ArrayTooLarge`] or [`Error::AllocationFailed`].
    pub fn check_outputs(&self, program: &Program) -> Result<Vec<AbstractValue>> {
        check_output_allocations(self.output_avals(program))
    }
}

/// One primitive operation with its static parameters. Axes are normalised (non-negative)
/// and shapes resolved (no `-1`) before a primitive is recorded.
#[derive(Clone, Debug, PartialEq)]
pub enum Primitive {
    /// Broadcasting binary arithmetic.
    Binary(BinaryOp),
    /// Broadcasting comparison (bool result).
    Compare(CompareOp),
    /// Elementwise unary maths.
    Unary(UnaryOp),
    /// `where(cond, on_true, on_false)` with broadcasting.
    Select,
    /// numpy `matmul`.
    Matmul,
    /// Reduction over axes.
    Reduce {
        /// The reduction.
        op: ReduceOp,
        /// Reduced axes (normalised).
        axes: Vec<usize>,
        /// Keep reduced axes with size 1.
        keepdims: bool,
    },
    /// Reshape to a resolved shape.
    Reshape {
        /// The new shape.
        shape: Vec<usize>,
    },
    /// Permute axes: output axis `i` is input axis `perm[i]`.
    Transpose {
        /// The permutation.
        perm: Vec<usize>,
    },
    /// Broadcast to a shape.
    BroadcastTo {
        /// The target shape.
        shape: Vec<usize>,
    },
    /// Insert a size-1 axis.
    ExpandDims {
        /// Position in the result.
        axis: usize,
    },
    /// Remove size-1 axes.
    Squeeze {
        /// The axes removed (normalised, each of size 1).
        axes: Vec<usize>,
    },
    /// Take one index along an axis, removing the axis.
    IndexAxis {
        /// The axis.
        axis: usize,
        /// The index (normalised).
        index: usize,
    },
    /// Take a range along an axis.
    SliceAxis {
        /// The axis.
        axis: usize,
        /// First index.
        start: usize,
        /// One past the last index.
        end: usize,
    },
    /// Zeros around the input along an axis: `before` before it, `after` after it. The
    /// transpose of [`Primitive::SliceAxis`], so a slice's (and an `index_axis`'s) gradient
    /// is scattered into zeros in one pass.
    Pad {
        /// The axis.
        axis: usize,
        /// Zeros before the input.
        before: usize,
        /// Zeros after the input.
        after: usize,
    },
    /// Running sums along an axis (`jnp.cumsum`; `lax.cumsum(…, reverse=True)` when
    /// `reverse`).
    Cumsum {
        /// The axis.
        axis: usize,
        /// Sum from the last element backwards.
        reverse: bool,
    },
    /// The int32 position of the first extremum along an axis, which is removed
    /// (`jnp.argmax`, `jnp.argmin`).
    ArgReduce {
        /// Largest or smallest.
        op: ArgOp,
        /// The axis.
        axis: usize,
    },
    /// `jnp.take(table, indices, axis)` (operands: the table, int32 or uint32 indices): a
    /// gather of whole rows along an axis, which the indices' shape replaces. Negative
    /// indices count from the end; out of range reads JAX's fill value (NaN for floats)
    /// when `fill`, zero otherwise (the mode of tangents and transposes).
    Take {
        /// The axis.
        axis: usize,
        /// Out-of-range indices read the fill value (else zero).
        fill: bool,
    },
    /// The transpose of [`Primitive::Take`] (operands: a take's cotangent, the indices):
    /// rows added into zeros of the table's shape at their indices (a scatter-add;
    /// out-of-range rows are dropped). The gradient of an embedding lookup.
    TakeTranspose {
        /// The axis.
        axis: usize,
        /// The table's length along the axis.
        size: usize,
    },
    /// `lax.dynamic_slice_in_dim` (operands: the array, a scalar int32 or uint32 start):
    /// `size` entries along an axis from a start known only when running (negative
    /// counts from the end; clamped so the slice fits).
    DynamicSlice {
        /// The axis.
        axis: usize,
        /// The slice's length.
        size: usize,
    },
    /// `lax.dynamic_update_slice_in_dim` (operands: the array, the update, the start): the
    /// array with the update written along an axis from the start (clamped as
    /// [`Primitive::DynamicSlice`]'s). A decode cache writes its new entries so.
    DynamicUpdateSlice {
        /// The axis.
        axis: usize,
    },
    /// The `Q` factor of each matrix's thin QR, columns signed by `R`'s diagonal (what the
    /// orthogonal initializer draws), differentiated as JAX differentiates `jnp.linalg.qr`.
    QrQ,
    /// `lax.linalg.triangular_solve` (operands: the triangular matrices `a`, the right-hand
    /// sides `b`): `x` with `op(a) @ x = b` or `x @ op(a) = b`, as the flags say.
    TriangularSolve(crate::tensor::TriangularSolve),
    /// The sliding windows of `[batch…, spatial…, features]` (im2col):
    /// `[batch…, windows…, size…, features]`. A convolution is these patches times the
    /// kernel (one GEMM); a pooling, a reduction over the window axes.
    Patches {
        /// The windows.
        windows: Windows,
    },
    /// The transpose of [`Primitive::Patches`] (col2im): every patch element added back to
    /// the input position it came from. The gradient of a convolution's input.
    PatchesTranspose {
        /// The windows.
        windows: Windows,
        /// The input's spatial shape.
        spatial: Vec<usize>,
    },
    /// Join along an existing axis (any number of inputs).
    Concatenate {
        /// The axis.
        axis: usize,
    },
    /// Join along a new axis (any number of inputs).
    Stack {
        /// Position of the new axis.
        axis: usize,
    },
    /// dtype conversion.
    Astype {
        /// The target dtype.
        dtype: DType,
    },
    /// The identity, through which no gradient flows (`jax.lax.stop_gradient`).
    StopGradient,
    /// A random primitive on one scalar key.
    Random(RandomOp),
    /// `fold_in` of each key with the matching uint32 datum (an `Rngs` draw on key arrays).
    FoldInEach,
    /// `jax.random.key(seed)` elementwise on an int32/uint32 array of seeds.
    SeedKeys,
    /// Higher-order: call a program (a `jit` inside another transform).
    Call {
        /// The program.
        program: ProgramRef,
    },
    /// Higher-order: call a program whose intermediates the backward pass recomputes instead
    /// of keeping (`remat`, `jax.checkpoint`). It runs exactly as [`Primitive::Call`].
    Remat {
        /// The program.
        program: ProgramRef,
        /// What its backward pass may keep from the forward pass.
        policy: RematPolicy,
    },
    /// Higher-order: a call of `program` whose backward pass the user wrote (`custom_vjp`).
    /// It runs exactly as [`Primitive::Call`]; reverse-mode differentiation runs `forward`
    /// instead (the same inputs; `program`'s outputs followed by residuals) and then
    /// `backward` (the residuals and one cotangent per output, to one cotangent per input
    /// of `program` that the user's function received).
    CustomVjp {
        /// The function.
        program: ProgramRef,
        /// Its forward pass: the outputs, then the residuals.
        forward: ProgramRef,
        /// Its backward pass.
        backward: ProgramRef,
    },
    /// Higher-order: a program run in a loop (`scan`).
    Scan {
        /// The body.
        program: ProgramRef,
        /// Carry, scanned and broadcast inputs and outputs.
        spec: ScanSpec,
    },
    /// Higher-order: a batched program (a `vmap` inside another transform).
    Vmap {
        /// The per-lane program.
        program: ProgramRef,
        /// How inputs and outputs are batched.
        batching: Batching,
    },
    /// Higher-order: one of several programs, chosen by an index (`lax.switch`, and
    /// `lax.cond` as a switch over `[false, true]`). Operand 0 is an int32 scalar, clamped
    /// to the branches as `lax.switch` does ([`branch_index`](super::branch_index)); the
    /// other operands are every branch's inputs. All branches take and return the same
    /// abstract values.
    Cond {
        /// The branches, at least one.
        branches: Vec<ProgramRef>,
    },
    /// Higher-order: a loop while a predicate holds (`lax.while_loop`). Operands: the
    /// `cond_consts` values the predicate reads besides the loop values, the `body_consts`
    /// values the body reads, then the loop values. `cond` maps (its constants, the loop
    /// values) to a bool scalar; `body` maps (its constants, the loop values) to the next
    /// loop values, with the same abstract values. The outputs are the final loop values.
    While {
        /// The predicate.
        cond: ProgramRef,
        /// The body.
        body: ProgramRef,
        /// How many operands only the predicate reads (they come first).
        cond_consts: usize,
        /// How many operands only the body reads (they follow the predicate's).
        body_consts: usize,
    },
    /// A collective over the named axes of the mesh a `shard_map` runs on (`psum`,
    /// `all_gather`, …): first-order, evaluated on a device that exchanges values with the
    /// others.
    Collective(crate::shard::CollectiveOp),
    /// Higher-order: `shard_map`. The program runs once per device of `spec.mesh` on each
    /// operand's block (split as `spec.in_specs` says); its results are that device's blocks
    /// of the results (`spec.out_specs`).
    ShardMap {
        /// The per-device program.
        program: ProgramRef,
        /// The mesh and how operands and results are split over it.
        spec: crate::shard::ShardSpec,
    },
}

impl Primitive {
    /// The primitive's name as printed in programs.
    pub fn name(&self) -> String {
        match self {
            Primitive::Binary(op) => op.name().to_owned(),
            Primitive::Compare(op) => op.name().to_owned(),
            Primitive::Unary(op) => op.name().to_owned(),
            Primitive::Select => "select".to_owned(),
            Primitive::Matmul => "matmul".to_owned(),
            Primitive::Reduce { op, .. } => format!("reduce_{op:?}").to_lowercase(),
            Primitive::Reshape { .. } => "reshape".to_owned(),
            Primitive::Transpose { .. } => "transpose".to_owned(),
            Primitive::BroadcastTo { .. } => "broadcast_to".to_owned(),
            Primitive::ExpandDims { .. } => "expand_dims".to_owned(),
            Primitive::Squeeze { .. } => "squeeze".to_owned(),
            Primitive::IndexAxis { .. } => "index_axis".to_owned(),
            Primitive::SliceAxis { .. } => "slice_axis".to_owned(),
            Primitive::Pad { .. } => "pad".to_owned(),
            Primitive::Cumsum { .. } => "cumsum".to_owned(),
            Primitive::ArgReduce { op, .. } => op.name().to_owned(),
            Primitive::Patches { .. } => "patches".to_owned(),
            Primitive::Take { .. } => "take".to_owned(),
            Primitive::QrQ => "qr_q".to_owned(),
            Primitive::TriangularSolve(_) => "triangular_solve".to_owned(),
            Primitive::DynamicSlice { .. } => "dynamic_slice".to_owned(),
            Primitive::DynamicUpdateSlice { .. } => "dynamic_update_slice".to_owned(),
            Primitive::TakeTranspose { .. } => "take_transpose".to_owned(),
            Primitive::PatchesTranspose { .. } => "patches_transpose".to_owned(),
            Primitive::Concatenate { .. } => "concatenate".to_owned(),
            Primitive::Stack { .. } => "stack".to_owned(),
            Primitive::Astype { .. } => "convert".to_owned(),
            Primitive::StopGradient => "stop_gradient".to_owned(),
            Primitive::Random(op) => format!("random_{}", op.name()),
            Primitive::FoldInEach => "random_fold_in".to_owned(),
            Primitive::SeedKeys => "random_seed".to_owned(),
            Primitive::Call { .. } => "call".to_owned(),
            Primitive::CustomVjp { .. } => "custom_vjp_call".to_owned(),
            Primitive::Remat { .. } => "remat".to_owned(),
            Primitive::Vmap { .. } => "vmap".to_owned(),
            Primitive::Scan { .. } => "scan".to_owned(),
            Primitive::Cond { .. } => "cond".to_owned(),
            Primitive::While { .. } => "while".to_owned(),
            Primitive::Collective(op) => op.name().to_owned(),
            Primitive::ShardMap { .. } => "shard_map".to_owned(),
        }
    }

    /// The abstract values of all outputs (several for higher-order primitives).
    ///
    /// # Errors
    /// As [`Primitive::abstract_eval`], and [`Error::ArrayTooLarge`] for an output whose size
    /// overflows.
    pub fn output_avals(&self, inputs: &[AbstractValue]) -> Result<Vec<AbstractValue>> {
        let avals = self.output_avals_unchecked(inputs)?;
        for aval in &avals {
            byte_size(&aval.shape, aval.dtype)?;
        }
        Ok(avals)
    }

    fn output_avals_unchecked(&self, inputs: &[AbstractValue]) -> Result<Vec<AbstractValue>> {
        match self {
            Primitive::Call { program }
            | Primitive::Remat { program, .. }
            | Primitive::CustomVjp { program, .. } => Ok(program.0.output_avals()),
            Primitive::Scan { program, spec } => Ok(spec.output_avals(&program.0)),
            Primitive::Vmap { program, batching } => Ok(batching.output_avals(&program.0)),
            Primitive::Cond { branches } => branches
                .first()
                .map(|b| b.0.output_avals())
                .ok_or_else(|| Error::malformed_program("cond has no branch")),
            Primitive::While { body, .. } => Ok(body.0.output_avals()),
            Primitive::ShardMap { program, spec } => Ok((program.0.output_avals().into_iter())
                .zip(&spec.out_specs)
                .map(|(mut aval, dims)| {
                    aval.shape = spec.global_shape(&aval.shape, dims);
                    aval
                })
                .collect()),
            _ => Ok(vec![self.abstract_eval(inputs)?]),
        }
    }

    /// Evaluates the primitive on concrete arrays with the reference (naive) kernels.
    ///
    /// # Errors
    /// The kernels' shape and dtype errors; [`Error::ArrayTooLarge`] or
    /// [`Error::AllocationFailed`] for a result the machine cannot hold (every kernel whose
    /// result can be larger than its operands checks before allocating);
    /// [`Error::MalformedProgram`] for a missing operand, or a higher-order primitive (an
    /// engine evaluates those).
    pub fn eval(&self, inputs: &[Array]) -> Result<Array> {
        let arg = |i: usize| {
            inputs.get(i).ok_or_else(|| {
                Error::malformed_program(format!("{} is missing operand {i}", self.name()))
            })
        };
        match self {
            Primitive::Binary(op) => arg(0)?.binary(*op, arg(1)?),
            Primitive::Compare(op) => arg(0)?.compare(*op, arg(1)?),
            Primitive::Unary(op) => arg(0)?.unary(*op),
            Primitive::Select => arg(0)?.select(arg(1)?, arg(2)?),
            Primitive::Matmul => arg(0)?.matmul(arg(1)?),
            Primitive::Reduce { op, axes, keepdims } => {
                let axes: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
                arg(0)?.reduce(*op, axes, *keepdims)
            }
            Primitive::Reshape { shape } => {
                let shape: Vec<isize> = shape.iter().map(|&d| d as isize).collect();
                arg(0)?.reshape(&shape)
            }
            Primitive::Transpose { perm } => {
                let perm: Vec<isize> = perm.iter().map(|&p| p as isize).collect();
                arg(0)?.permute_axes(&perm)
            }
            Primitive::BroadcastTo { shape } => arg(0)?.broadcast_to(shape),
            Primitive::ExpandDims { axis } => arg(0)?.expand_dims(*axis as isize),
            Primitive::Squeeze { axes } => {
                let axes: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
                arg(0)?.squeeze(axes)
            }
            Primitive::IndexAxis { axis, index } => {
                arg(0)?.index_axis(*axis as isize, *index as isize)
            }
            Primitive::SliceAxis { axis, start, end } => {
                arg(0)?.slice_axis(*axis as isize, *start..*end)
            }
            Primitive::Pad {
                axis,
                before,
                after,
            } => arg(0)?.pad_axis(*axis as isize, *before, *after),
            Primitive::Cumsum { axis, reverse } => arg(0)?.cumsum(*axis as isize, *reverse),
            Primitive::ArgReduce { op, axis } => arg(0)?.arg_reduce(*op, *axis as isize),
            Primitive::Take { axis, fill } => arg(0)?.take_at(arg(1)?, *axis as isize, *fill),
            Primitive::TakeTranspose { axis, size } => {
                arg(0)?.take_transpose(arg(1)?, *axis, *size)
            }
            Primitive::DynamicSlice { axis, size } => {
                arg(0)?.dynamic_slice_in_dim(arg(1)?, *size, *axis as isize)
            }
            Primitive::DynamicUpdateSlice { axis } => {
                arg(0)?.dynamic_update_slice_in_dim(arg(1)?, arg(2)?, *axis as isize)
            }
            Primitive::QrQ => arg(0)?.qr_q(),
            Primitive::TriangularSolve(spec) => arg(0)?.triangular_solve(arg(1)?, *spec),
            Primitive::Patches { windows } => arg(0)?.patches(windows),
            Primitive::PatchesTranspose { windows, spatial } => {
                arg(0)?.patches_transpose(windows, spatial)
            }
            Primitive::Concatenate { axis } => Array::concatenate(inputs, *axis as isize),
            Primitive::Stack { axis } => Array::stack(inputs, *axis as isize),
            Primitive::Astype { dtype } => arg(0)?.astype(*dtype),
            Primitive::StopGradient => Ok(arg(0)?.clone()),
            Primitive::Random(op) => op.eval(arg(0)?),
            Primitive::FoldInEach => crate::random::fold_in_each_array(arg(0)?, arg(1)?),
            Primitive::SeedKeys => crate::random::seed_keys_array(arg(0)?),
            Primitive::Collective(op) => op.eval(inputs),
            Primitive::ShardMap { .. }
            | Primitive::Call { .. }
            | Primitive::Remat { .. }
            | Primitive::CustomVjp { .. }
            | Primitive::Vmap { .. }
            | Primitive::Scan { .. }
            | Primitive::Cond { .. }
            | Primitive::While { .. } => Err(Error::malformed_program(format!(
                "{} is a higher-order primitive: an engine evaluates it",
                self.name()
            ))),
        }
    }
}

impl fmt::Display for Primitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Primitive::Reduce { axes, keepdims, .. } => {
                write!(f, "{}[axes={axes:?}, keepdims={keepdims}]", self.name())
            }
            Primitive::Reshape { shape } | Primitive::BroadcastTo { shape } => {
                write!(f, "{}[shape={shape:?}]", self.name())
            }
            Primitive::Transpose { perm } => write!(f, "transpose[perm={perm:?}]"),
            Primitive::ExpandDims { axis }
            | Primitive::Concatenate { axis }
            | Primitive::Stack { axis } => {
                write!(f, "{}[axis={axis}]", self.name())
            }
            Primitive::Squeeze { axes } => write!(f, "squeeze[axes={axes:?}]"),
            Primitive::IndexAxis { axis, index } => {
                write!(f, "index_axis[axis={axis}, index={index}]")
            }
            Primitive::SliceAxis { axis, start, end } => {
                write!(f, "slice_axis[axis={axis}, {start}..{end}]")
            }
            Primitive::Pad {
                axis,
                before,
                after,
            } => write!(f, "pad[axis={axis}, before={before}, after={after}]"),
            Primitive::Cumsum { axis, reverse } => {
                write!(f, "cumsum[axis={axis}, reverse={reverse}]")
            }
            Primitive::ArgReduce { axis, .. } => write!(f, "{}[axis={axis}]", self.name()),
            Primitive::Take { axis, fill } => write!(f, "take[axis={axis}, fill={fill}]"),
            Primitive::DynamicSlice { axis, size } => {
                write!(f, "dynamic_slice[axis={axis}, size={size}]")
            }
            Primitive::DynamicUpdateSlice { axis } => {
                write!(f, "dynamic_update_slice[axis={axis}]")
            }
            Primitive::TakeTranspose { axis, size } => {
                write!(f, "take_transpose[axis={axis}, size={size}]")
            }
            Primitive::Patches { windows } => write!(f, "patches[{windows}]"),
            Primitive::TriangularSolve(spec) => write!(f, "triangular_solve[{spec}]"),
            Primitive::PatchesTranspose { windows, spatial } => {
                write!(f, "patches_transpose[{windows}, spatial={spatial:?}]")
            }
            Primitive::Astype { dtype } => write!(f, "convert[{dtype}]"),
            Primitive::Remat { policy, .. } => write!(f, "remat[policy={policy:?}]"),
            Primitive::Random(op) => write!(f, "{op:?}"),
            Primitive::Scan { spec, .. } => write!(
                f,
                "scan[length={}, reverse={}, inputs={:?}, outputs={:?}]",
                spec.length, spec.reverse, spec.inputs, spec.outputs
            ),
            Primitive::Vmap { batching, .. } => write!(
                f,
                "vmap[axis_size={}, in_axes={:?}, out_axes={:?}]",
                batching.axis_size, batching.in_axes, batching.out_axes
            ),
            Primitive::Cond { branches } => write!(f, "cond[branches={}]", branches.len()),
            Primitive::Collective(op) => write!(f, "{op}"),
            Primitive::ShardMap { spec, .. } => write!(
                f,
                "shard_map[mesh={}, in_specs={:?}, out_specs={:?}]",
                spec.mesh, spec.in_specs, spec.out_specs
            ),
            Primitive::While {
                cond_consts,
                body_consts,
                ..
            } => write!(
                f,
                "while[cond_consts={cond_consts}, body_consts={body_consts}]"
            ),
            _ => f.write_str(&self.name()),
        }
    }
}
