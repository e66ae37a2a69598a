//! `grad` / `value_and_grad` with NNX semantics: gradients of the chosen Variables as a
//! `State`, every other state update propagated out.

use std::collections::HashMap;
use std::fmt;

use std::sync::Arc;

use super::args::IntoArgs;
use super::autodiff::{Tape, or_zeros, seed_for};
use super::jacobian::{Mode, jacobian};
use super::pipeline::{self, Cache, Rules};
use super::typed::{Body, IntoBody};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::graph::{self, Filter, GraphDef, Key, Leaf, NodeId, Path, State, Value, VariableType};
use crate::lift::{Lowered, Prefix};
use crate::program::{AbstractValue, Primitive, Program, ProgramRef, trace_fn};
use crate::tensor::Tensor;

/// The prefix leaf of `grad`: whether a leaf is differentiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Diff(pub bool);

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 { "True" } else { "False" })
    }
}

/// `nnx.DiffState(argnum, filter)`: differentiate the Variables of argument `argnum` that the
/// filter selects (array arguments are differentiated whole).
#[derive(Clone, Debug)]
pub struct DiffState {
    /// The argument position.
    pub argnum: usize,
    /// Which Variables of it.
    pub filter: Filter,
}

impl DiffState {
    /// `DiffState(argnum, filter)`.
    pub fn new(argnum: usize, filter: impl Into<Filter>) -> DiffState {
        DiffState {
            argnum,
            filter: filter.into(),
        }
    }
}

/// The gradient for one differentiated argument.
#[derive(Clone, Debug)]
pub enum Grad {
    /// For a graph node: new Variables of the differentiated Variables' types and metadata
    /// holding the gradients, by path — the structure of the differentiated State.
    State(State),
    /// For an array argument.
    Array(Tensor),
    /// For a plain tuple or map argument ([`Value::Tuple`], [`Value::Map`]), differentiated
    /// whole as `jax.grad` differentiates a pytree (every Variable and array in it, whatever
    /// the filter): a value of the same structure holding the gradient in place of each
    /// array, and a new Variable of the same type and metadata holding it in place of each
    /// Variable (Flax's result for a plain dict argument).
    Tree(Value),
}

impl GradOutput {
    /// The auxiliary output as `T` (with `has_aux`).
    ///
    /// # Errors
    /// [`Error::TypeMismatch`] when there is no auxiliary output or it is not a `T`.
    pub fn aux_as<T: crate::graph::FromValue>(&self) -> Result<T> {
        let aux = self
            .aux
            .clone()
            .unwrap_or(Value::Static(crate::graph::Static::None));
        T::from_value(&aux).map_err(|e| e.within("the auxiliary output"))
    }
}

impl Grad {
    /// The State, for a graph-node argument.
    ///
    /// # Errors
    /// [`Error::WrongValueKind`] for an array gradient.
    pub fn state(&self) -> Result<&State> {
        match self {
            Grad::State(s) => Ok(s),
            other => Err(Error::WrongValueKind {
                expected: "a State gradient",
                found: other.kind_name().to_owned(),
            }),
        }
    }

    /// The value, for a plain tuple or map argument.
    ///
    /// # Errors
    /// [`Error::WrongValueKind`] for a State or array gradient.
    pub fn tree(&self) -> Result<&Value> {
        match self {
            Grad::Tree(v) => Ok(v),
            other => Err(Error::WrongValueKind {
                expected: "a tuple or map gradient",
                found: other.kind_name().to_owned(),
            }),
        }
    }

    fn kind_name(&self) -> &'static str {
        match self {
            Grad::State(_) => "a State gradient",
            Grad::Array(_) => "an array gradient",
            Grad::Tree(_) => "a tuple or map gradient",
        }
    }

    /// The array, for an array argument.
    ///
    /// # Errors
    /// [`Error::WrongValueKind`] for a State gradient.
    pub fn array(&self) -> Result<&Tensor> {
        match self {
            Grad::Array(t) => Ok(t),
            other => Err(Error::WrongValueKind {
                expected: "an array gradient",
                found: other.kind_name().to_owned(),
            }),
        }
    }
}

/// What `value_and_grad` returns.
///
/// ```
/// use nnx_core::{Module, Param, Result, Tensor, TensorResult, transforms::value_and_grad};
/// # use nnx_core::Engine;
/// // Compiled, not run here: the engines live in other crates.
/// # fn run(engine: &dyn Engine) -> Result<()> {
/// #[derive(Module, Clone)]
/// struct Scale { w: Param }
///
/// let m = Scale { w: Param::new(Tensor::from_slice(&[1.0f32, 2.0])) };
/// let loss = |m: &Scale, x: &Tensor| -> Result<(Tensor, Tensor)> {
///     let y = x * &m.w.value();
///     Ok((y.clone().sum(None)?, y?))                        // (loss, aux)
/// };
/// let out = value_and_grad(loss).has_aux(true).call(engine, (&m, &Tensor::ones(&[2])))?;
/// let aux: Tensor = out.aux_as()?;
/// assert_eq!(aux.to_vec::<f32>()?, vec![1.0, 2.0]);
/// # Ok(())
/// # }
/// # fn main() {}
/// ```
#[derive(Clone, Debug)]
pub struct GradOutput {
    /// The function's (scalar) value.
    pub value: Tensor,
    /// The auxiliary output, with `has_aux`.
    pub aux: Option<Value>,
    /// One gradient per entry of `argnums`, in that order.
    pub grads: Vec<Grad>,
}

/// `nnx.value_and_grad`: the value of a scalar function and its gradient with respect to
/// the chosen state. By default argument 0 is differentiated with respect to its `Param`s
/// (`DiffState(0, Param)`); arrays at differentiated positions are differentiated whole.
/// State updates made inside (counters, batch statistics, RNG counts, even Params) propagate
/// out, while the gradient is with respect to the input values.
///
/// A Variable shared by two differentiated arguments gets its total gradient in *both*
/// arguments' States (Flax puts it only under the first).
pub fn value_and_grad<M, F: IntoBody<M>>(f: F) -> GradFn<F::Body> {
    GradFn {
        f: f.into_body(),
        wrt: vec![DiffState::new(0, VariableType::PARAM)],
        wrt_given: false,
        graph_updates: true,
        has_aux: false,
        jacobian: None,
        cache: Cache::default(),
    }
}

/// `nnx.grad`: as [`value_and_grad`]; read the result's `grads`.
pub fn grad<M, F: IntoBody<M>>(f: F) -> GradFn<F::Body> {
    value_and_grad(f)
}

/// `jax.jacrev` with NNX's arguments: the Jacobian of a function whose output is a float32
/// array of any shape, by reverse mode (one backward pass per output element, all in one
/// `vmap`). Chosen as in [`value_and_grad`] (`argnums`, `wrt`, `has_aux`); each gradient
/// leaf has the output's shape followed by its input's shape. Best when the output is
/// smaller than the inputs.
///
/// ```
/// use nnx_core::{Value, transforms::jacrev};
/// // f(x) = x², elementwise: called on [1, 3], the Jacobian is diag(2, 6) (see the guide).
/// let f = jacrev(|args: &[Value]| {
///     let x = args[0].as_tensor()?;
///     Ok(Value::Array(x.mul(&x)?))
/// });
/// assert_eq!(f.trace_count(), 0);
/// ```
pub fn jacrev<M, F: IntoBody<M>>(f: F) -> GradFn<F::Body> {
    GradFn {
        jacobian: Some(Mode::Reverse),
        ..value_and_grad(f)
    }
}

/// `jax.jacfwd` with NNX's arguments: as [`jacrev`], by forward mode (one Jacobian-vector
/// product per input element, all in one `vmap`). Best when the inputs are smaller than the
/// output; `jacfwd` of `jacrev` is a Hessian.
pub fn jacfwd<M, F: IntoBody<M>>(f: F) -> GradFn<F::Body> {
    GradFn {
        jacobian: Some(Mode::Forward),
        ..value_and_grad(f)
    }
}

/// A differentiated function; see [`value_and_grad`], [`jacrev`] and [`jacfwd`].
pub struct GradFn<F> {
    f: F,
    wrt: Vec<DiffState>,
    /// Whether `wrt` came from [`GradFn::wrt`] (`DiffState`s) rather than argnums.
    wrt_given: bool,
    /// `graph_updates(false)` when `false`.
    graph_updates: bool,
    has_aux: bool,
    /// `None` for a gradient (scalar output), else how the Jacobian is computed.
    jacobian: Option<Mode>,
    cache: Cache<Diff, Targets>,
}

/// What a trace of `grad` knows about where gradients go, decided once per structure: the
/// differentiated lowered leaves (in the order the gradients come back), and for each
/// `DiffState` its gradient's shape: the Variables it selects in that argument, by their
/// path *in that argument* (a Variable shared by two differentiated arguments is in both)
/// and their lowered leaf, or the leaf of a differentiated array argument.
pub(crate) struct Targets {
    diff_leaves: Vec<usize>,
    per_arg: Vec<Target>,
}

pub(crate) enum Target {
    State(Vec<(Path, usize)>),
    Array(usize),
    /// A plain tuple or map argument: its structure, and each of its leaves by path.
    Tree(GraphDef, Vec<(Path, usize)>),
}

impl<F: Body> Rules for GradFn<F> {
    type Leaf = Diff;
    type Prepared = Vec<Target>;
    type Extra = Targets;
    /// Gradient States hold copies of the differentiated Variables.
    const LEAF_VARIABLES: bool = true;

    fn in_prefix(&self, args: &[Value]) -> Result<Prefix<Diff>> {
        diff_prefix(&self.wrt, args)
    }

    fn out_prefix(&self) -> Prefix<Diff> {
        Prefix::Leaf(Diff(false))
    }

    fn without_graph_updates(&self) -> Option<&'static str> {
        (!self.graph_updates).then_some("grad")
    }

    /// An input Variable returned in the auxiliary output comes out as it is (Flax).
    fn checks_output_aliasing(&self) -> bool {
        false
    }

    fn apply(&self, args: &[Value]) -> Result<Value> {
        self.f.apply(args)
    }

    /// Checks that differentiated leaves are float, and decides where each gradient goes.
    fn prepare(
        &self,
        args: &[Value],
        lowered: &mut Lowered<Diff>,
    ) -> Result<(Vec<AbstractValue>, Vec<Target>)> {
        let hint = if self.graph_updates {
            SELECT_FLOATS
        } else {
            "with graph_updates(false) every Variable of a differentiated argument is \
             differentiated: pass integer Variables in an argument that is not"
        };
        check_differentiable(lowered, self.jacobian.map_or("grad", Mode::name), hint)?;
        let leaf_of_variable: HashMap<NodeId, usize> = (lowered.leaves().iter().enumerate())
            .filter_map(|(i, l)| l.variable.as_ref().map(|v| (v.id(), i)))
            .collect();
        let per_arg = self
            .wrt
            .iter()
            .map(|d| match &args[d.argnum] {
                Value::Object(_) | Value::List(_) | Value::Dict(_) | Value::Variable(_) => {
                    let state = graph::state_by(&args[d.argnum], &d.filter);
                    let selected = state.iter().filter_map(|(path, leaf)| {
                        let v = leaf.as_variable()?;
                        let i = *leaf_of_variable.get(&v.id())?;
                        Some((path.clone(), i))
                    });
                    Ok(Target::State(selected.collect()))
                }
                Value::Tuple(_) | Value::Map(_) => {
                    let (def, state) = graph::split(&args[d.argnum]);
                    let leaves = state.iter().filter_map(|(path, leaf)| {
                        let i = match leaf.as_variable() {
                            Some(v) => *leaf_of_variable.get(&v.id())?,
                            None => {
                                let keys = std::iter::once(Key::from(d.argnum)).chain(path.keys());
                                let at = Path::from(keys.collect::<Vec<_>>());
                                lowered.leaves().iter().position(|l| l.path == at)?
                            }
                        };
                        Some((path.clone(), i))
                    });
                    Ok(Target::Tree(def, leaves.collect()))
                }
                _ => {
                    let root = Path::from(vec![Key::from(d.argnum)]);
                    (lowered.leaves().iter().position(|l| l.path == root))
                        .map(Target::Array)
                        .ok_or(Error::NoDifferentiableArray { argnum: d.argnum })
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((lowered.avals(), per_arg))
    }

    /// Traces the function one level deeper, then evaluates its program on a tape here and
    /// sweeps back: the outputs followed by one gradient per differentiated leaf.
    fn body(
        &self,
        lowered: &Lowered<Diff>,
        prefix: &Prefix<Diff>,
        _prepared: &Vec<Target>,
        inputs: Vec<Tensor>,
    ) -> Result<(Vec<Tensor>, Lowered<Diff>)> {
        let in_avals: Vec<AbstractValue> = inputs.iter().map(Tensor::aval).collect();
        let inner = trace_fn(&in_avals, |ys| {
            pipeline::lift_body(self, lowered, prefix, ys)
        })?;
        let n_args = lowered.num_roots();
        let loss_path = if self.has_aux {
            Path::root().child(n_args).child(0usize)
        } else {
            Path::root().child(n_args)
        };
        let loss_index = (inner.extra.leaves().iter())
            .position(|l| l.path == loss_path)
            .ok_or(Error::GradLossMissing {
                has_aux: self.has_aux,
            })?;
        let mut tape_inputs = inputs.clone();
        tape_inputs.extend(inner.captured.iter().cloned());
        let tape = Tape::forward(&inner.program, &tape_inputs)?;
        let mut results = tape.outputs();
        let wanted: Vec<usize> = (lowered.leaves().iter().enumerate())
            .filter(|(_, leaf)| leaf.prefix.0)
            .map(|(i, _)| i)
            .collect();
        match self.jacobian {
            None => {
                let seed = seed_for(&results[loss_index])?;
                let cotangents = tape.backward(&[(loss_index, seed)], &wanted)?;
                for &i in &wanted {
                    results.push(or_zeros(cotangents[i].clone(), &inputs[i]));
                }
            }
            Some(mode) => results.extend(jacobian(
                mode,
                &inner.program,
                &tape_inputs,
                loss_index,
                &wanted,
            )?),
        }
        Ok((results, inner.extra))
    }

    fn finish(
        &self,
        per_arg: Vec<Target>,
        lowered: &Lowered<Diff>,
        _outputs: &mut Lowered<Diff>,
        program: &Arc<Program>,
        _captured: usize,
    ) -> Result<(Primitive, Targets)> {
        let diff_leaves = (lowered.leaves().iter().enumerate())
            .filter(|(_, l)| l.prefix.0)
            .map(|(i, _)| i)
            .collect();
        let primitive = Primitive::Call {
            program: ProgramRef(program.clone()),
        };
        Ok((
            primitive,
            Targets {
                diff_leaves,
                per_arg,
            },
        ))
    }
}

impl<F: Body> GradFn<F> {
    /// How many times the function has been traced.
    pub fn trace_count(&self) -> usize {
        self.cache.trace_count()
    }

    /// Differentiate these arguments, each with respect to its `Param`s (`argnums`); with
    /// [`graph_updates(false)`](GradFn::graph_updates), with respect to all its Variables.
    pub fn argnums(mut self, argnums: &[usize]) -> GradFn<F> {
        self.wrt = argnums
            .iter()
            .map(|&a| DiffState::new(a, self.argnum_filter()))
            .collect();
        self.wrt_given = false;
        self
    }

    /// Differentiate with respect to these `DiffState`s.
    pub fn wrt(mut self, wrt: impl IntoIterator<Item = DiffState>) -> GradFn<F> {
        self.wrt = wrt.into_iter().collect();
        self.wrt_given = true;
        self
    }

    /// `nnx.grad(f, graph_updates=False)` with `false`, Flax 0.12's tree mode: each argument
    /// in `argnums` is differentiated with respect to *every* Variable it holds (an integer
    /// one is an error, as in `jax.grad`; `DiffState`s are refused), the inputs' Variables
    /// take their new values in place while structural changes made inside are dropped,
    /// and the output (the auxiliary value) may not return input or captured Variables.
    /// The gradient of an argument is a `State` of all its Variables (Flax returns a copy
    /// of the argument holding them; `nnx.state` of it is this State).
    ///
    /// ```
    /// use nnx_core::transforms::grad;
    /// use nnx_core::Value;
    /// let g = grad(|args: &[Value]| Ok(args[0].clone())).graph_updates(false);
    /// assert_eq!(g.trace_count(), 0);
    /// ```
    pub fn graph_updates(mut self, graph_updates: bool) -> GradFn<F> {
        self.graph_updates = graph_updates;
        if !self.wrt_given {
            let filter = self.argnum_filter();
            for d in &mut self.wrt {
                d.filter = filter.clone();
            }
        }
        self
    }

    /// What an argnum differentiates: `Param`s, or everything without graph updates.
    fn argnum_filter(&self) -> Filter {
        if self.graph_updates {
            VariableType::PARAM.into()
        } else {
            Filter::Everything
        }
    }

    /// The function returns `(loss, aux)` (a tuple value); `aux` is passed through.
    pub fn has_aux(mut self, has_aux: bool) -> GradFn<F> {
        self.has_aux = has_aux;
        self
    }

    /// Calls the function and differentiates it.
    ///
    /// # Errors
    /// An output without a loss array ([`Error::GradLossMissing`]), a non-scalar or
    /// non-float loss ([`Error::GradLossNotScalar`]), a non-float differentiated input
    /// ([`Error::NonDifferentiable`]), a differentiated argument that is neither a graph
    /// node nor an array ([`Error::NoDifferentiableArray`]), empty, repeated or
    /// out-of-range argnums, aliasing and closure-rule errors, and whatever `f` returns. On error the caller's objects are
    /// unchanged.
    pub fn call(&self, engine: &(impl Engine + ?Sized), args: impl IntoArgs) -> Result<GradOutput> {
        if self.wrt_given && !self.graph_updates {
            return Err(Error::InvalidPrefix(
                "argnums cannot contain DiffState objects with graph_updates(false): give \
                 argument positions (argnums), or use graph updates (the default)"
                    .into(),
            ));
        }
        let args = &args.into_args()[..];
        let outcome = pipeline::call(self, &self.cache, engine, args)?;
        let targets = &outcome.entry.extra;
        let (value, aux) = if self.has_aux {
            match outcome.value {
                Value::Tuple(mut items) if items.len() == 2 => {
                    let aux = items.pop();
                    let loss = items.pop().map(|v| v.as_tensor()).transpose()?;
                    (loss, aux)
                }
                other => (Some(other.as_tensor()?), None),
            }
        } else {
            (Some(outcome.value.as_tensor()?), None)
        };
        let value = value.ok_or_else(|| Error::internal("grad's output has no loss"))?;
        // The gradient of each lowered leaf, in the order the differentiated leaves come.
        let mut gradient: Vec<Option<Tensor>> = vec![None; outcome.leaf_variables.len()];
        // (`leaf_variables` has one entry per lowered leaf: grad asks for them.)
        for (&i, g) in targets.diff_leaves.iter().zip(outcome.rest) {
            if let Some(slot) = gradient.get_mut(i) {
                *slot = Some(g);
            }
        }
        let grads = targets
            .per_arg
            .iter()
            .map(|target| match target {
                Target::State(selected) => {
                    let mut state = State::new();
                    for (path, i) in selected {
                        if let (Some(g), Some(Some(v))) =
                            (&gradient[*i], outcome.leaf_variables.get(*i))
                        {
                            let holder = v.copy();
                            holder.set_value(g.clone())?;
                            state.insert(path.clone(), Leaf::Variable(holder));
                        }
                    }
                    Ok(Grad::State(state))
                }
                Target::Tree(def, leaves) => {
                    let mut state = State::new();
                    for (path, i) in leaves {
                        let g = gradient[*i].clone().ok_or_else(|| {
                            Error::internal("a differentiated tree leaf has no gradient")
                        })?;
                        state.insert(path.clone(), Leaf::Array(g));
                    }
                    Ok(Grad::Tree(graph::merge(def, [&state])?))
                }
                Target::Array(i) => gradient[*i]
                    .clone()
                    .map(Grad::Array)
                    .ok_or_else(|| Error::internal("a differentiated array has no gradient")),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GradOutput { value, aux, grads })
    }
}

/// The usual fix for a non-float differentiated input.
pub(super) const SELECT_FLOATS: &str = "select only float Variables with DiffState or argnums";

/// The prefix of differentiated arguments: per `DiffState`, its filter's Variables (or the
/// whole array) are `Diff(true)`, everything else `Diff(false)`.
///
/// # Errors
/// Empty, repeated or out-of-range argnums.
pub(super) fn diff_prefix(wrt: &[DiffState], args: &[Value]) -> Result<Prefix<Diff>> {
    if wrt.is_empty() {
        // JAX fails here too (`max()` of the empty argnums), before running anything.
        return Err(Error::InvalidPrefix(
            "argnums is empty: grad needs at least one argument to differentiate".into(),
        ));
    }
    let mut seen = Vec::new();
    for d in wrt {
        if seen.contains(&d.argnum) {
            return Err(Error::InvalidPrefix(format!(
                "argnum {} is repeated in argnums",
                d.argnum
            )));
        }
        if d.argnum >= args.len() {
            return Err(Error::InvalidPrefix(format!(
                "argnum {} is out of range for a function called with {} arguments",
                d.argnum,
                args.len()
            )));
        }
        seen.push(d.argnum);
    }
    Ok(Prefix::Tuple(
        args.iter()
            .enumerate()
            .map(|(k, arg)| match (wrt.iter().find(|d| d.argnum == k), arg) {
                (None, _) => Prefix::Leaf(Diff(false)),
                (
                    Some(d),
                    Value::Object(_) | Value::List(_) | Value::Dict(_) | Value::Variable(_),
                ) => Prefix::StateAxes(vec![
                    (d.filter.clone(), Diff(true)),
                    (Filter::Everything, Diff(false)),
                ]),
                (Some(_), _) => Prefix::Leaf(Diff(true)),
            })
            .collect(),
    ))
}

/// Checks that every differentiated leaf is float.
///
/// # Errors
/// [`Error::NonDifferentiable`] naming the first that is not.
pub(super) fn check_differentiable(
    lowered: &Lowered<Diff>,
    transform: &'static str,
    hint: &'static str,
) -> Result<()> {
    match (lowered.leaves().iter()).find(|l| l.prefix.0 && !l.value.dtype().is_float()) {
        Some(leaf) => Err(Error::NonDifferentiable {
            transform,
            hint,
            location: leaf.location(),
            dtype: leaf.value.dtype(),
        }),
        None => Ok(()),
    }
}
