//! The operations a sequence is made of, and their strategies.

use super::*;

/// Array shapes: mostly with a leading 2, so that `vmap`/`scan` over axis 0 often agree.
pub(crate) const SHAPES: [&[usize]; 5] = [&[2], &[2, 3], &[2], &[], &[3]];
/// Attribute names set from outside.
pub(crate) const OBJECT_KEYS: [&str; 5] = ["a", "b", "w", "x", "sub"];
/// Attribute names set by closures inside transforms.
pub(crate) const INNER_KEYS: [&str; 5] = ["a", "w", "x", "new", "sub"];
/// How many top-level objects the caller holds at most (merge/clone results replace the
/// last one beyond that).
pub(crate) const MAX_ROOTS: usize = 5;

/// A key as an attribute name.
pub(crate) fn key_text(key: &Key) -> String {
    match key {
        Key::Int(i) => i.to_string(),
        Key::Str(s) => s.clone(),
    }
}

/// Dict keys: strings and integers (integers sort first).
pub(crate) fn dict_key(i: usize) -> Key {
    match i % 4 {
        0 => Key::from("a"),
        1 => Key::from("b"),
        2 => Key::from(0usize),
        _ => Key::from(1usize),
    }
}

/// `[v, v+1, v+2, …]` of the given shape.
pub(crate) fn ramp(shape: &[usize], v: i8) -> Tensor {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|i| f32::from(v) + i as f32).collect();
    Tensor::from_vec(shape, data).expect("the shape fits the data")
}

/// What `Op::Set` stores.
#[derive(Clone, Debug)]
pub(crate) enum What {
    Var {
        batch_stat: bool,
        shape: usize,
        val: i8,
        meta: bool,
    },
    Object,
    List,
    Dict,
    Static(i8),
    Array {
        shape: usize,
        val: i8,
    },
    ShareVar(usize),
    ShareNode(usize),
    Rngs(u8),
}

/// How a closure ends: normally, with an error halfway, or with a panic halfway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    Ok,
    Err,
    Panic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TKind {
    Jit,
    Vmap,
    Scan,
    Grad,
    JitOfVmap,
    /// The same `jit` called twice (the second call may hit the cache).
    JitTwice,
    /// `value_and_grad` of a function that calls a `jit`ted closure.
    GradOfJit,
    /// `jvp` with respect to `args[0]`'s Params, with a zero tangent.
    Jvp,
}

#[derive(Clone, Debug)]
pub(crate) enum Action {
    /// `v.update(|t| t + 1)` on a top-level Variable of `args[0]`.
    Update(usize),
    /// A new `Param` (all 3.0, shape `[2]`).
    AddVar(usize),
    /// Deletes a top-level attribute.
    Del(usize),
    /// Shares a top-level Variable under another name.
    Share(usize, usize),
    /// A new `Child` object holding a new `Param` `p` (all 5.0, shape `[2]`).
    NewSub(usize),
    /// Sets a static attribute.
    Static(usize, i8),
    /// Keeps a tracer (a top-level Variable's value) outside the transform.
    Leak,
    /// Breaks the closure rule with the caller's `args[0]`, captured from outside: mutates
    /// it (`true`) or passes it to a nested transform (`false`). Either is an error.
    Captured(bool),
    /// Draws a key from one of the random streams reachable from `args[0]`.
    Draw(usize),
    /// Sets metadata `METADATA_KEYS[k] = v` on a top-level Variable.
    Meta(usize, usize, i8),
}

#[derive(Clone, Debug)]
pub(crate) struct Transform {
    pub(crate) kind: TKind,
    /// An index into the kind's menu of specs.
    pub(crate) spec: usize,
    /// Root indexes (1 or 2); `args[0]` is the object the closure acts on.
    pub(crate) args: Vec<usize>,
    /// An extra array argument (shape index).
    pub(crate) extra: Option<usize>,
    /// `scan` length where the spec gives one (1..=3).
    pub(crate) length: usize,
    /// `vmap`'s `out_axes` (`2` stands for `None`); with an extra array argument, the
    /// closure returns it, so this moves its batch axis.
    pub(crate) out_axis: i8,
    pub(crate) actions: Vec<Action>,
    pub(crate) ending: Ending,
}

/// One step of a sequence. Indexes pick among what exists (modulo its count), so every
/// sequence is valid and shrinking keeps it so.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    NewRoot,
    Set {
        node: usize,
        key: usize,
        what: What,
    },
    Del {
        node: usize,
        key: usize,
    },
    SplitMerge {
        root: usize,
        filters: usize,
    },
    Clone {
        root: usize,
    },
    Update {
        root: usize,
        filter: usize,
    },
    /// `update(to, state(from))` between two roots, when every path of `from`'s state leads
    /// to the same kind of leaf in `to` (a checkpoint restored into a model of the same shape).
    UpdateFrom {
        from: usize,
        to: usize,
    },
    /// Edits a Variable from outside: its value (any shape) or its metadata.
    VarEdit {
        var: usize,
        edit: VarEdit,
    },
    State {
        root: usize,
        filter: usize,
    },
    SplitRngs {
        root: usize,
        splits: usize,
        fork: bool,
        draw: bool,
        ending: Ending,
    },
    Transform(Box<Transform>),
}

pub(crate) fn what() -> impl Strategy<Value = What> {
    prop_oneof![
        4 => (any::<bool>(), 0..SHAPES.len(), -8i8..8, any::<bool>()).prop_map(
            |(batch_stat, shape, val, meta)| What::Var { batch_stat, shape, val, meta }
        ),
        2 => Just(What::Object),
        1 => Just(What::List),
        1 => Just(What::Dict),
        1 => (-3i8..3).prop_map(What::Static),
        1 => (0..SHAPES.len(), -8i8..8).prop_map(|(shape, val)| What::Array { shape, val }),
        2 => any::<usize>().prop_map(What::ShareVar),
        1 => any::<usize>().prop_map(What::ShareNode),
        1 => any::<u8>().prop_map(What::Rngs),
    ]
}

pub(crate) fn ending() -> impl Strategy<Value = Ending> {
    prop_oneof![3 => Just(Ending::Ok), 1 => Just(Ending::Err), 1 => Just(Ending::Panic)]
}

pub(crate) fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => any::<usize>().prop_map(Action::Update),
        2 => (0..INNER_KEYS.len()).prop_map(Action::AddVar),
        1 => any::<usize>().prop_map(Action::Del),
        1 => (0..INNER_KEYS.len(), any::<usize>()).prop_map(|(k, i)| Action::Share(k, i)),
        1 => (0..INNER_KEYS.len()).prop_map(Action::NewSub),
        1 => (0..INNER_KEYS.len(), -3i8..3).prop_map(|(k, v)| Action::Static(k, v)),
        1 => Just(Action::Leak),
        1 => any::<bool>().prop_map(Action::Captured),
        2 => any::<usize>().prop_map(Action::Draw),
        1 => (any::<usize>(), 0..METADATA_KEYS.len(), -3i8..3).prop_map(|(i, k, v)| Action::Meta(i, k, v)),
    ]
}

pub(crate) fn transform() -> impl Strategy<Value = Transform> {
    (
        prop_oneof![
            Just(TKind::Jit),
            Just(TKind::Vmap),
            Just(TKind::Scan),
            Just(TKind::Grad),
            Just(TKind::JitOfVmap),
            Just(TKind::GradOfJit),
            Just(TKind::Jvp),
            Just(TKind::JitTwice)
        ],
        0usize..7,
        prop::collection::vec(any::<usize>(), 1..=2),
        prop::option::weighted(0.3, 0..SHAPES.len()),
        1usize..=3,
        -2i8..=2,
        prop::collection::vec(action(), 0..5),
        ending(),
    )
        .prop_map(
            |(kind, spec, args, extra, length, out_axis, actions, ending)| Transform {
                kind,
                spec,
                args,
                extra,
                length,
                out_axis,
                actions,
                ending,
            },
        )
}

pub(crate) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::NewRoot),
        8 => (any::<usize>(), any::<usize>(), what()).prop_map(|(node, key, what)| Op::Set { node, key, what }),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(node, key)| Op::Del { node, key }),
        1 => (any::<usize>(), 0usize..4).prop_map(|(root, filters)| Op::SplitMerge { root, filters }),
        1 => any::<usize>().prop_map(|root| Op::Clone { root }),
        1 => (any::<usize>(), 0..UPDATE_FILTERS.len()).prop_map(|(root, filter)| Op::Update { root, filter }),
        1 => (any::<usize>(), 0..STATE_FILTERS.len()).prop_map(|(root, filter)| Op::State { root, filter }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(from, to)| Op::UpdateFrom { from, to }),
        2 => (any::<usize>(), var_edit()).prop_map(|(var, edit)| Op::VarEdit { var, edit }),
        1 => (any::<usize>(), 1usize..=3, any::<bool>(), any::<bool>(), ending()).prop_map(
            |(root, splits, fork, draw, ending)| Op::SplitRngs { root, splits, fork, draw, ending }
        ),
        5 => transform().prop_map(|t| Op::Transform(Box::new(t))),
    ]
}

/// `update` adds 1 to what these select. RNG state is left out: adding 1.0 to a `uint32`
/// count would make it `float32`, which is legal but makes the model of `split_rngs` moot.
pub(crate) const UPDATE_FILTERS: [MFilter; 4] = [
    MFilter::Param,
    MFilter::BatchStat,
    MFilter::Array,
    MFilter::ParamOrArray,
];
pub(crate) const STATE_FILTERS: [MFilter; 8] = [
    MFilter::Everything,
    MFilter::Param,
    MFilter::BatchStat,
    MFilter::RngState,
    MFilter::Array,
    MFilter::PathW,
    MFilter::ParamOrArray,
    MFilter::NotParam,
];

/// Metadata keys set by the fuzzer.
pub(crate) const METADATA_KEYS: [&str; 2] = ["note", "extra"];

#[derive(Clone, Debug)]
pub(crate) enum VarEdit {
    SetValue { shape: usize, val: i8 },
    SetMeta { key: usize, val: i8 },
    DelMeta { key: usize },
}

pub(crate) fn var_edit() -> impl Strategy<Value = VarEdit> {
    prop_oneof![
        (0..SHAPES.len(), -8i8..8).prop_map(|(shape, val)| VarEdit::SetValue { shape, val }),
        (0..METADATA_KEYS.len(), -3i8..3).prop_map(|(key, val)| VarEdit::SetMeta { key, val }),
        (0..METADATA_KEYS.len()).prop_map(|key| VarEdit::DelMeta { key }),
    ]
}
