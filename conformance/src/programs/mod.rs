//! Random *programs* for differential testing: a proptest strategy for [`ProgramCase`] — an
//! object graph, an input array and a tree of nested transforms whose leaves are straight-line
//! user code over [`Tensor`](nnx_core::Tensor) operations — and [`ProgramCase::run`], which builds a fresh graph
//! and runs the program on an engine as a user would.
//!
//! The program is data (an AST with a readable `Debug`), so proptest shrinks it and a failure
//! prints it. Operations pick their operands from a register file by index and adapt to the
//! shapes they find (a product pads a vector, a binary operation whose shapes do not broadcast
//! reduces its second operand), so almost every generated program is valid; the few that are
//! not must fail identically on every engine.
//!
//! Values stay well-conditioned and engine-independent: transcendental operations get
//! bounded arguments (`exp(tanh x)`, `log(|x| + 1)`), and the operands of every matrix
//! product are clamped and snapped to multiples of 1/8 first, so products are exact in
//! float32 whatever the summation order and engines agree bit for bit before gradients.

use std::fmt;

use proptest::collection::vec;
use proptest::prelude::*;

use nnx_core::DType;
use nnx_core::program::RematPolicy;
use nnx_core::tensor::ReduceOp;
use nnx_core::tensor::elementwise::{BinaryOp, CompareOp, UnaryOp};

mod body;
mod run;

pub use body::with_smooth_products;

/// The shape of the object graph passed as the first argument (the model).
///
/// `Model { w: Param, count: Count(i32), key: RngKey, sub: Sub { b: Param },
/// layers: List[Param…], stats: Dict { mean: BatchStat } }`, optionally with `tied` (the same
/// Variable as `w`) and `alias` (the same object as `sub`).
#[derive(Clone, Debug)]
pub struct ModelSpec {
    /// The width `d` of every vector Variable.
    pub d: usize,
    /// `w` is a `[d, d]` matrix (else a `[d]` vector).
    pub w_matrix: bool,
    /// `tied` is a second reference to `w`'s Variable.
    pub tied: bool,
    /// `alias` is a second reference to the `sub` object.
    pub alias: bool,
    /// The number of Params in the `layers` List.
    pub layers: usize,
}

/// An operand: a register counted from the most recent (0 is the last result), modulo the
/// number of registers of the needed kind. Small indices are favoured, so most operations
/// feed into the output.
pub type Reg = u8;

/// How a matrix product is formed from a register and a generated right operand.
#[derive(Clone, Copy, Debug)]
pub enum MatmulForm {
    /// 1-D · 1-D (the register flattened): a scalar.
    VecVec,
    /// 1-D · N-D: the flattened register times a `[2, n, 3]` stack.
    VecMat,
    /// N-D · 1-D.
    MatVec,
    /// N-D · 2-D.
    MatMat,
    /// Batched with broadcasting: the right operand has a batch axis of size 1 or the
    /// register's own batch axes.
    Batched {
        /// Repeat the register's batch axes (else a broadcast axis of size 1).
        same_batch: bool,
    },
}

/// Which axes a reduction reduces.
#[derive(Clone, Copy, Debug)]
pub enum AxesPick {
    /// Every axis.
    All,
    /// One axis (may be negative).
    One(i8),
    /// Two axes (may be negative; a repeat is a user error).
    Two(i8, i8),
}

/// A random operation on a traced key.
#[derive(Clone, Copy, Debug)]
pub enum RandomPick {
    /// `split(key, n)`, keeping lane `i` as a new key.
    Split(u8, u8),
    /// `fold_in(key, data)`.
    FoldIn(u32),
    /// `bits` shaped like a register.
    Bits(Reg),
    /// `uniform` shaped like a register.
    Uniform(Reg),
    /// `normal` shaped like a register.
    Normal(Reg),
    /// `truncated_normal(-1.5, 2)` shaped like a register.
    TruncatedNormal(Reg),
    /// `randint(-3, 5)` shaped like a register.
    Randint(Reg),
    /// `bernoulli(0.3)` shaped like a register.
    Bernoulli(Reg),
    /// `key_from_seeds` of a register cast to int32, `fold_in_each` with `bits`, and the
    /// first of those keys as a new key with a `uniform` draw from it.
    SeedsFoldInEach(Reg),
}

/// One statement of a body: computes a new register (or a new key).
#[derive(Clone, Debug)]
pub enum Op {
    /// `a op b`, broadcasting (a non-broadcastable `b` is summed to a scalar first).
    Binary(BinaryOp, Reg, Reg),
    /// `a op c` with a weak-typed scalar (`c / 4` for floats).
    Scalar(BinaryOp, Reg, i8, bool),
    /// `a cmp b`.
    Compare(CompareOp, Reg, Reg),
    /// `where(a > 0, b, c)`.
    Select(Reg, Reg, Reg),
    /// A unary function with a safe argument.
    Unary(UnaryOp, Reg),
    /// A matrix product; `int` casts both operands to int32.
    Matmul(MatmulForm, Reg, Reg, bool),
    /// A reduction.
    Reduce(ReduceOp, AxesPick, bool, Reg),
    /// Flatten (`[-1]`), or reverse the shape.
    Reshape(bool, Reg),
    /// Reverse the axes, or rotate them by one.
    Transpose(bool, Reg),
    /// Broadcast to `[n, ...shape]`.
    BroadcastTo(u8, Reg),
    /// Insert a size-1 axis.
    ExpandDims(i8, Reg),
    /// Remove every size-1 axis (or one chosen axis, an error if not size 1).
    Squeeze(Option<i8>, Reg),
    /// `x[..., i, ...]` along an axis.
    Index(i8, i8, Reg),
    /// `x[..., a..b, ...]` along an axis.
    Slice(i8, u8, u8, Reg),
    /// Zeros before and after a register along an axis (a scalar is made a vector first).
    Pad(i8, u8, u8, Reg),
    /// Concatenate a register with itself and another (adapted) along an axis.
    Concatenate(i8, Reg, Reg),
    /// Stack two registers (the second broadcast to the first's shape) along a new axis.
    Stack(i8, Reg, Reg),
    /// The running sum along an axis, forwards or backwards (a scalar is made a vector).
    Cumsum(i8, bool, Reg),
    /// `argmax` (`true`) or `argmin` along an axis (a scalar is made a vector).
    Arg(bool, i8, Reg),
    /// Sliding windows over the register seen as `[batch…, spatial…, features]` (one
    /// spatial axis, two with the flag): size, stride, low and high padding, input and
    /// window dilation from the bytes; with `transpose`, the patches added back (col2im).
    Patches([u8; 6], bool, bool, Reg),
    /// `take(a, indices, axis)` with indices shaped like the second register: a fixed
    /// pattern in `[-1, n - 2]` plus `b > 0` (so they depend on traced values), shifted
    /// past the end with `out_of_range` (a scalar table is made a vector).
    Take(i8, bool, Reg, Reg),
    /// A dynamic slice of up to 2 entries along an axis (a scalar is made a vector),
    /// starting at -1 or 1 as the sum of the second register is positive or not (a start
    /// known only when running; clamped).
    DynamicSlice(i8, u8, Reg, Reg),
    /// The register with a slice of up to 2 entries along an axis overwritten by the
    /// second register (adapted), at a start chosen as [`Op::DynamicSlice`]'s.
    DynamicUpdate(i8, u8, Reg, Reg),
    /// The `Q` of the register seen as `[…, rows, cols]` matrices (transposed when wide; a
    /// vector as a column). With `conditioned`, of `tanh` of it plus 3 on the diagonal
    /// (full column rank, so the derivative is finite and smooth); otherwise of the raw
    /// values (zeros, repeated columns), the input's gradient stopped.
    QrQ(bool, Reg),
    /// `triangular_solve(a, b)` with the flags (`left_side`, `lower`, `transpose_a`,
    /// `unit_diagonal`): `b` the second register (a scalar made a vector), `a` the first
    /// adapted to `b`'s batch axes and solved length, made well conditioned (`tanh` of it
    /// plus 3 on the diagonal).
    TriangularSolve([bool; 4], Reg, Reg),
    /// Cast.
    Astype(DType, Reg),
    /// `stop_gradient(a)`.
    StopGradient(Reg),
    /// A random operation on a key register.
    Random(RandomPick, Reg),
}

/// Where a Variable update takes its new value from.
#[derive(Clone, Copy, Debug)]
pub enum Src {
    /// A register, adapted to the Variable's shape and dtype (summed and broadcast if the
    /// shapes differ).
    Reg(Reg),
    /// The Variable's own value: `v * 0.5 + 1` (`v + 1` for integers, `fold_in_each(v, 1)`
    /// for keys) — never batched when the Variable is not.
    Own,
}

/// A Variable update at the end of a body.
#[derive(Clone, Copy, Debug)]
pub struct Update {
    /// The Variable handle (index into the handles, aliases included), modulo their number.
    pub var: u8,
    /// The new value.
    pub src: Src,
}

/// Straight-line user code: operations, state updates, an output register.
#[derive(Clone, Debug)]
pub struct Body {
    /// The operations, in order.
    pub ops: Vec<Op>,
    /// Updates of the model's Variables.
    pub updates: Vec<Update>,
    /// Adds a new Param attribute `extra` holding this register (a graph change).
    pub add_param: Option<Reg>,
    /// The register returned; when the body computes anything, the output is this register
    /// and then every computed register, flattened to float32 and concatenated.
    pub out: Reg,
}

/// How `vmap` maps the model.
#[derive(Clone, Copy, Debug)]
pub enum VmapModel {
    /// `None`: broadcast.
    Broadcast,
    /// Every Variable along this axis.
    All(i8),
    /// `StateAxes({Param: axis, ...: None})`.
    Params(i8),
    /// `StateAxes({Param: None, ...: axis})`.
    NonParams(i8),
}

/// How `scan` treats the model.
#[derive(Clone, Copy, Debug)]
pub enum ScanModel {
    /// `Carry`: the body returns `(model, y)`.
    Carry,
    /// `None`: broadcast.
    Broadcast,
    /// Scanned along axis 0 (every Variable has a leading axis of the scan's length).
    Scanned,
    /// `StateAxes({Param: None, ...: Carry})`.
    ParamsBroadcast,
}

/// What `value_and_grad` differentiates.
#[derive(Clone, Copy, Debug)]
pub enum GradWrt {
    /// The model's Params (`argnums=0`).
    Model,
    /// The input array (`argnums=1`).
    Input,
    /// Both.
    Both,
}

/// A transform applied to `(model, x)`, or a body.
#[derive(Clone, Debug)]
pub enum Level {
    /// Straight-line code.
    Body(Body),
    /// The inner level, then straight-line code over `[its result, x, Variables…]` in the
    /// same trace (so transforms nest in the middle of computations).
    Then(Box<Level>, Body),
    /// `jit`.
    Jit(Box<Level>),
    /// `remat` (a checkpoint) with this policy.
    Remat(RematPolicy, Box<Level>),
    /// `cond` on whether the input sums to more than zero (traced, so batched under an
    /// enclosing `vmap`): one branch is the inner level, the other the inner level with its
    /// output doubled; `flip` swaps them.
    Cond {
        /// Whether the inner level runs when the sum is positive (`false`) or not (`true`).
        flip: bool,
        /// Both branches' function.
        inner: Box<Level>,
    },
    /// `vmap` with these axes and `axis_size`.
    Vmap {
        /// The model's axes.
        model: VmapModel,
        /// The input's axis (`None`: broadcast).
        x: Option<i8>,
        /// The output's axis (`None`: the output must not depend on a mapped input).
        out: Option<i8>,
        /// The number of lanes (0 is allowed).
        size: usize,
        /// The mapped function.
        inner: Box<Level>,
    },
    /// `scan` with these axes; the output is stacked along `out`.
    Scan {
        /// The model's role.
        model: ScanModel,
        /// The input's scanned axis (`None`: broadcast).
        x: Option<i8>,
        /// The stacking axis of the output.
        out: i8,
        /// The number of iterations (0 is allowed).
        length: usize,
        /// Iterate backwards.
        reverse: bool,
        /// The loop body.
        inner: Box<Level>,
    },
    /// `value_and_grad` of the sum of the inner output; returns the value and the flattened
    /// gradients, concatenated.
    Grad {
        /// What is differentiated.
        wrt: GradWrt,
        /// The function.
        inner: Box<Level>,
    },
}

impl Level {
    /// Whether a transform is involved (else the program runs eagerly, without an engine).
    fn has_transform(&self) -> bool {
        match self {
            Level::Body(_) => false,
            Level::Then(inner, _) => inner.has_transform(),
            _ => true,
        }
    }
}

/// One generated differential case.
#[derive(Clone)]
pub struct ProgramCase {
    /// The model's structure.
    pub model: ModelSpec,
    /// The shape of one lane of the input as the innermost body sees it.
    pub x_shape: Vec<usize>,
    /// The program.
    pub root: Level,
    /// Values cycled to fill the model's and the input's float arrays.
    pub values: Vec<f32>,
    /// Seed of the model's key.
    pub seed: u32,
}

impl fmt::Debug for ProgramCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "ProgramCase {{")?;
        writeln!(f, "  model: {:?},", self.model)?;
        writeln!(f, "  x_shape (innermost): {:?},", self.x_shape)?;
        writeln!(f, "  values: {:?}, seed: {},", self.values, self.seed)?;
        writeln!(f, "  root: {:#?}", self.root)?;
        write!(f, "}}")
    }
}

// ---------------------------------------------------------------------------------------
// Strategies.

fn reg() -> impl Strategy<Value = Reg> {
    prop_oneof![3 => 0u8..2, 1 => 0u8..16]
}

fn axis() -> impl Strategy<Value = i8> {
    -3i8..3
}

fn binary_op() -> impl Strategy<Value = BinaryOp> {
    prop_oneof![
        Just(BinaryOp::Add),
        Just(BinaryOp::Sub),
        Just(BinaryOp::Mul),
        Just(BinaryOp::Div),
        Just(BinaryOp::Pow),
        Just(BinaryOp::Maximum),
        Just(BinaryOp::Minimum),
    ]
}

fn compare_op() -> impl Strategy<Value = CompareOp> {
    prop_oneof![
        Just(CompareOp::Eq),
        Just(CompareOp::Ne),
        Just(CompareOp::Lt),
        Just(CompareOp::Le),
        Just(CompareOp::Gt),
        Just(CompareOp::Ge),
    ]
}

fn unary_op() -> impl Strategy<Value = UnaryOp> {
    prop_oneof![
        Just(UnaryOp::Neg),
        Just(UnaryOp::Abs),
        Just(UnaryOp::Exp),
        Just(UnaryOp::Log),
        Just(UnaryOp::Sqrt),
        Just(UnaryOp::Tanh),
        Just(UnaryOp::Sin),
        Just(UnaryOp::Cos),
        Just(UnaryOp::Logistic),
        Just(UnaryOp::Erf),
    ]
}

fn reduce_op() -> impl Strategy<Value = ReduceOp> {
    prop_oneof![
        Just(ReduceOp::Sum),
        Just(ReduceOp::Mean),
        Just(ReduceOp::Max),
        Just(ReduceOp::Min),
    ]
}

fn dtype() -> impl Strategy<Value = DType> {
    prop_oneof![
        Just(DType::F32),
        Just(DType::I32),
        Just(DType::U32),
        Just(DType::Bool),
    ]
}

fn matmul_form() -> impl Strategy<Value = MatmulForm> {
    prop_oneof![
        Just(MatmulForm::VecVec),
        Just(MatmulForm::VecMat),
        Just(MatmulForm::MatVec),
        Just(MatmulForm::MatMat),
        any::<bool>().prop_map(|same_batch| MatmulForm::Batched { same_batch }),
    ]
}

fn axes_pick() -> impl Strategy<Value = AxesPick> {
    prop_oneof![
        Just(AxesPick::All),
        axis().prop_map(AxesPick::One),
        (axis(), axis()).prop_map(|(a, b)| AxesPick::Two(a, b)),
    ]
}

fn random_pick() -> impl Strategy<Value = RandomPick> {
    prop_oneof![
        (1u8..4, 0u8..4).prop_map(|(n, i)| RandomPick::Split(n, i)),
        any::<u32>().prop_map(RandomPick::FoldIn),
        reg().prop_map(RandomPick::Bits),
        reg().prop_map(RandomPick::Uniform),
        reg().prop_map(RandomPick::Normal),
        reg().prop_map(RandomPick::TruncatedNormal),
        reg().prop_map(RandomPick::Randint),
        reg().prop_map(RandomPick::Bernoulli),
        reg().prop_map(RandomPick::SeedsFoldInEach),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (binary_op(), reg(), reg()).prop_map(|(o, a, b)| Op::Binary(o, a, b)),
        2 => (binary_op(), reg(), -8i8..8, any::<bool>()).prop_map(|(o, a, c, i)| Op::Scalar(o, a, c, i)),
        1 => (compare_op(), reg(), reg()).prop_map(|(o, a, b)| Op::Compare(o, a, b)),
        1 => (reg(), reg(), reg()).prop_map(|(a, b, c)| Op::Select(a, b, c)),
        2 => (unary_op(), reg()).prop_map(|(o, a)| Op::Unary(o, a)),
        3 => (matmul_form(), reg(), reg(), prop::bool::weighted(0.2)).prop_map(|(f, a, b, i)| Op::Matmul(f, a, b, i)),
        2 => (reduce_op(), axes_pick(), any::<bool>(), reg()).prop_map(|(o, x, k, a)| Op::Reduce(o, x, k, a)),
        1 => (any::<bool>(), reg()).prop_map(|(f, a)| Op::Reshape(f, a)),
        1 => (any::<bool>(), reg()).prop_map(|(r, a)| Op::Transpose(r, a)),
        1 => (1u8..3, reg()).prop_map(|(n, a)| Op::BroadcastTo(n, a)),
        1 => (axis(), reg()).prop_map(|(x, a)| Op::ExpandDims(x, a)),
        1 => (prop::option::weighted(0.2, axis()), reg()).prop_map(|(x, a)| Op::Squeeze(x, a)),
        1 => (axis(), -3i8..3, reg()).prop_map(|(x, i, a)| Op::Index(x, i, a)),
        1 => (axis(), 0u8..3, 0u8..4, reg()).prop_map(|(x, s, e, a)| Op::Slice(x, s, e, a)),
        1 => (axis(), 0u8..3, 0u8..3, reg()).prop_map(|(x, b, e, a)| Op::Pad(x, b, e, a)),
        1 => (axis(), reg(), reg()).prop_map(|(x, a, b)| Op::Concatenate(x, a, b)),
        1 => (axis(), reg(), reg()).prop_map(|(x, a, b)| Op::Stack(x, a, b)),
        2 => (axis(), prop::bool::weighted(0.2), reg(), reg()).prop_map(|(x, o, a, b)| Op::Take(x, o, a, b)),
        1 => (axis(), 0u8..3, reg(), reg()).prop_map(|(x, n, a, b)| Op::DynamicSlice(x, n, a, b)),
        1 => (axis(), 0u8..3, reg(), reg()).prop_map(|(x, n, a, b)| Op::DynamicUpdate(x, n, a, b)),
        1 => (any::<bool>(), reg()).prop_map(|(c, a)| Op::QrQ(c, a)),
        1 => (any::<[bool; 4]>(), reg(), reg()).prop_map(|(f, a, b)| Op::TriangularSolve(f, a, b)),
        1 => (axis(), any::<bool>(), reg()).prop_map(|(x, r, a)| Op::Cumsum(x, r, a)),
        1 => (any::<bool>(), axis(), reg()).prop_map(|(m, x, a)| Op::Arg(m, x, a)),
        2 => (any::<[u8; 6]>(), any::<bool>(), any::<bool>(), reg()).prop_map(|(w, two, t, a)| Op::Patches(w, two, t, a)),
        1 => (dtype(), reg()).prop_map(|(d, a)| Op::Astype(d, a)),
        1 => reg().prop_map(Op::StopGradient),
        2 => (random_pick(), reg()).prop_map(|(p, k)| Op::Random(p, k)),
    ]
}

/// A body. Half the updates depend only on the Variable itself, so they stay valid inside a
/// `vmap` or `scan` that broadcasts the model (the others must fail identically there).
fn body() -> impl Strategy<Value = Body> {
    let src = prop_oneof![Just(Src::Own), reg().prop_map(Src::Reg)];
    (
        vec(op(), 0..10),
        vec(
            (0u8..16, src).prop_map(|(var, src)| Update { var, src }),
            0..3,
        ),
        prop::option::weighted(0.1, reg()),
        reg(),
    )
        .prop_map(|(ops, updates, add_param, out)| Body {
            ops,
            updates,
            add_param,
            out,
        })
}

fn vmap_model() -> impl Strategy<Value = VmapModel> {
    prop_oneof![
        2 => Just(VmapModel::Broadcast),
        1 => prop_oneof![Just(0i8), Just(-1)].prop_map(VmapModel::All),
        1 => prop_oneof![Just(0i8), Just(-1)].prop_map(VmapModel::Params),
        1 => prop_oneof![Just(0i8), Just(-1)].prop_map(VmapModel::NonParams),
    ]
}

fn scan_model() -> impl Strategy<Value = ScanModel> {
    prop_oneof![
        Just(ScanModel::Carry),
        Just(ScanModel::Broadcast),
        Just(ScanModel::Scanned),
        Just(ScanModel::ParamsBroadcast),
    ]
}

/// Which sizes the generator favours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shapes {
    /// Sizes 1 to 3, with an occasional 0 (empty arrays, zero lanes, zero iterations).
    Ordinary,
    /// Sizes 0, 1 and 2 only: empty arrays, size-1 axes, zero-lane `vmap`, zero-length
    /// `scan`.
    Edge,
}

impl Shapes {
    fn size(self) -> BoxedStrategy<usize> {
        match self {
            Shapes::Ordinary => prop_oneof![8 => 1usize..4, 1 => Just(0usize)].boxed(),
            Shapes::Edge => prop_oneof![Just(0usize), Just(1), Just(2)].boxed(),
        }
    }
}

/// A transform tree of at most `depth` transforms around a body.
fn level(depth: u32, shapes: Shapes) -> BoxedStrategy<Level> {
    let leaf = body().prop_map(Level::Body).boxed();
    if depth == 0 {
        return leaf;
    }
    let inner = || level(depth - 1, shapes);
    prop_oneof![
        1 => leaf,
        1 => (inner(), body()).prop_map(|(l, b)| Level::Then(Box::new(l), b)),
        2 => inner().prop_map(|l| Level::Jit(Box::new(l))),
        1 => (
            prop_oneof![Just(RematPolicy::NothingSaveable), Just(RematPolicy::DotsSaveable)],
            inner(),
        )
            .prop_map(|(policy, l)| Level::Remat(policy, Box::new(l))),
        1 => (any::<bool>(), inner()).prop_map(|(flip, l)| Level::Cond { flip, inner: Box::new(l) }),
        3 => (
            vmap_model(),
            prop::option::weighted(0.85, axis()),
            prop::option::weighted(0.95, prop_oneof![3 => Just(0i8), 3 => Just(-1), 1 => Just(1)]),
            shapes.size(),
            inner(),
        )
            .prop_map(|(model, x, out, size, inner)| Level::Vmap {
                model,
                x,
                out,
                size,
                inner: Box::new(inner),
            }),
        2 => (
            scan_model(),
            prop::option::weighted(0.8, prop_oneof![Just(0i8), Just(-1), Just(1)]),
            prop_oneof![Just(0i8), Just(-1)],
            shapes.size(),
            any::<bool>(),
            inner(),
        )
            .prop_map(|(model, x, out, length, reverse, inner)| Level::Scan {
                model,
                x,
                out,
                length,
                reverse,
                inner: Box::new(inner),
            }),
        2 => (
            prop_oneof![Just(GradWrt::Model), Just(GradWrt::Input), Just(GradWrt::Both)],
            inner(),
        )
            .prop_map(|(wrt, inner)| Level::Grad { wrt, inner: Box::new(inner) }),
    ]
    .boxed()
}

/// The strategy for whole cases: up to three nested transforms (the outermost is always a
/// transform, so the engine runs the program).
pub fn program_case(shapes: Shapes) -> impl Strategy<Value = ProgramCase> {
    let widths = match shapes {
        Shapes::Ordinary => 1usize..4,
        Shapes::Edge => 1usize..3,
    };
    let model = (
        widths,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0usize..3,
    )
        .prop_map(|(d, w_matrix, tied, alias, layers)| ModelSpec {
            d,
            w_matrix,
            tied,
            alias,
            layers,
        });
    (
        model,
        vec(shapes.size(), 0..4),
        level(3, shapes).prop_filter("the outermost level is a transform", |l| l.has_transform()),
        vec((-16i8..16).prop_map(|v| f32::from(v) / 8.0), 1..12),
        any::<u32>(),
    )
        .prop_map(|(model, x_shape, root, values, seed)| ProgramCase {
            model,
            x_shape,
            root,
            values,
            seed,
        })
}
