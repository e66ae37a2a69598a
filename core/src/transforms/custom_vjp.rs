//! `custom_vjp`: a function of objects and arrays with a backward pass the user writes, as
//! `nnx.custom_vjp` has it: the backward function gets the residuals its forward function
//! saved and the cotangents of the output and of the inputs' updated state, and returns one
//! cotangent per input — a State of the input's Variables for a graph node, an array for an
//! array.

use std::sync::Arc;

use super::args::IntoArgs;
use super::grad::Grad;
use super::jit::Whole;
use super::pipeline::{self, Cache, Rules};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::graph::{Key, Leaf, Path, State, Static, Value};
use crate::lift::{self, Lowered, Prefix};
use crate::program::{
    AbstractValue, Atom, Equation, Primitive, Program, ProgramRef, TracedFunction, VarId, trace_fn,
};
use crate::tensor::{DType, Tensor};

/// What the backward function of a [`custom_vjp`] receives besides its residuals (Flax's
/// `g = (input_updates_g, out_g)`).
#[derive(Clone, Debug)]
pub struct Cotangents {
    /// Per argument: for a graph node, a State holding the cotangent of each of its
    /// Variables' values after the call (zeros where the rest of the program does not use
    /// the update); `None` for an array argument.
    pub input_updates: Vec<Option<State>>,
    /// The output's cotangent, in the output's structure.
    pub output: Value,
}

/// `nnx.custom_vjp`: `custom_vjp(f).defvjp(fwd, bwd)` is `f`, except that reverse-mode
/// differentiation runs `fwd` — which returns `f`'s output and the residuals (arrays, in
/// tuples) — and then `bwd(residuals, cotangents)`, which returns one cotangent per argument
/// ([`Grad::State`] for a graph node: by path, Variables it leaves out get zeros;
/// [`Grad::Array`] for an array; [`Grad::Tree`] for a plain tuple or dict, leaves by path).
/// Outside differentiation `f` runs. Forward-mode
/// differentiation through it is an error, as in JAX.
///
/// The output must be arrays (or tuples of them). Residuals are arrays too: where Flax's
/// backward function reads a module from its residuals, put the arrays it needs in them.
///
/// ```
/// use nnx_core::transforms::{Cotangents, Grad, custom_vjp};
/// use nnx_core::{Value, graph::State};
/// // f(x) = x², with the backward pass written out: g ↦ 2·x·g.
/// let square = custom_vjp(|args: &[Value]| {
///     let x = args[0].as_tensor()?;
///     Ok(Value::from(x.mul(&x)?))
/// })
/// .defvjp(
///     |args: &[Value]| {
///         let x = args[0].as_tensor()?;
///         Ok((Value::from(x.mul(&x)?), Value::from(x)))
///     },
///     |x: &Value, g: &Cotangents| {
///         let (x, g) = (x.as_tensor()?, g.output.as_tensor()?);
///         Ok(vec![Grad::Array((&x.mul(&g)? * 2.0f32)?)])
///     },
/// );
/// assert_eq!(square.trace_count(), 0);
/// ```
pub fn custom_vjp<F: Fn(&[Value]) -> Result<Value>>(f: F) -> CustomVjpDef<F> {
    CustomVjpDef { f }
}

/// A function waiting for its forward and backward functions; see [`custom_vjp`].
pub struct CustomVjpDef<F> {
    f: F,
}

impl<F: Fn(&[Value]) -> Result<Value>> CustomVjpDef<F> {
    /// Gives the function its forward and backward functions (`f.defvjp(fwd, bwd)`).
    pub fn defvjp<Fwd, Bwd>(self, fwd: Fwd, bwd: Bwd) -> CustomVjp<F, Fwd, Bwd>
    where
        Fwd: Fn(&[Value]) -> Result<(Value, Value)>,
        Bwd: Fn(&Value, &Cotangents) -> Result<Vec<Grad>>,
    {
        CustomVjp {
            f: self.f,
            fwd,
            bwd,
            cache: Cache::default(),
        }
    }
}

/// A function with a custom backward pass; see [`custom_vjp`].
pub struct CustomVjp<F, Fwd, Bwd> {
    f: F,
    fwd: Fwd,
    bwd: Bwd,
    cache: Cache<Whole, ()>,
}

/// The structure of an output or of residuals: arrays in tuples, and static values.
#[derive(Clone, Debug, PartialEq)]
enum Tree {
    Array,
    Tuple(Vec<Tree>),
    Static(Static),
}

impl Tree {
    /// The structure of `value`, and its arrays in order.
    fn of(value: &Value, what: &str) -> Result<(Tree, Vec<Tensor>)> {
        let mut arrays = Vec::new();
        let tree = Tree::walk(value, &mut arrays, what)?;
        Ok((tree, arrays))
    }

    fn walk(value: &Value, arrays: &mut Vec<Tensor>, what: &str) -> Result<Tree> {
        Ok(match value {
            Value::Array(t) => {
                arrays.push(t.clone());
                Tree::Array
            }
            Value::Tuple(items) => Tree::Tuple(
                items
                    .iter()
                    .map(|v| Tree::walk(v, arrays, what))
                    .collect::<Result<_>>()?,
            ),
            Value::Static(s) => Tree::Static(s.clone()),
            other => {
                return Err(Error::CustomVjp(format!(
                    "{what} must be arrays or tuples of arrays, got {}",
                    other.kind_name()
                )));
            }
        })
    }

    /// A value of this structure with its arrays taken from `arrays`, in order.
    fn build(&self, arrays: &mut impl Iterator<Item = Tensor>) -> Result<Value> {
        Ok(match self {
            Tree::Array => Value::Array(
                arrays
                    .next()
                    .ok_or_else(|| Error::internal("a custom_vjp tree ran out of arrays"))?,
            ),
            Tree::Tuple(items) => Value::Tuple(
                items
                    .iter()
                    .map(|t| t.build(arrays))
                    .collect::<Result<_>>()?,
            ),
            Tree::Static(s) => Value::Static(s.clone()),
        })
    }
}

/// What tracing the forward function found out.
struct Forward {
    program: Program,
    output: Tree,
    residuals: Tree,
}

impl<F, Fwd, Bwd> Rules for CustomVjp<F, Fwd, Bwd>
where
    F: Fn(&[Value]) -> Result<Value>,
    Fwd: Fn(&[Value]) -> Result<(Value, Value)>,
    Bwd: Fn(&Value, &Cotangents) -> Result<Vec<Grad>>,
{
    type Leaf = Whole;
    type Prepared = ();
    type Extra = ();

    fn in_prefix(&self, _args: &[Value]) -> Result<Prefix<Whole>> {
        Ok(Prefix::Leaf(Whole))
    }

    fn out_prefix(&self) -> Prefix<Whole> {
        Prefix::Leaf(Whole)
    }

    fn apply(&self, args: &[Value]) -> Result<Value> {
        (self.f)(args)
    }

    fn prepare(
        &self,
        _args: &[Value],
        lowered: &mut Lowered<Whole>,
    ) -> Result<(Vec<AbstractValue>, ())> {
        Ok((lowered.avals(), ()))
    }

    /// Traces the forward and backward functions over the same inputs as `f`'s program.
    fn finish(
        &self,
        _prepared: (),
        lowered: &Lowered<Whole>,
        outputs: &mut Lowered<Whole>,
        program: &Arc<Program>,
        captured: usize,
    ) -> Result<(Primitive, ())> {
        let forward = self.trace_forward(lowered, outputs, program, captured)?;
        let backward = self.trace_backward(lowered, outputs, &forward, program)?;
        Ok((
            Primitive::CustomVjp {
                program: ProgramRef(program.clone()),
                forward: ProgramRef(Arc::new(forward.program)),
                backward: ProgramRef(Arc::new(backward)),
            },
            (),
        ))
    }
}

impl<F, Fwd, Bwd> CustomVjp<F, Fwd, Bwd>
where
    F: Fn(&[Value]) -> Result<Value>,
    Fwd: Fn(&[Value]) -> Result<(Value, Value)>,
    Bwd: Fn(&Value, &Cotangents) -> Result<Vec<Grad>>,
{
    /// How many times the function has been traced.
    pub fn trace_count(&self) -> usize {
        self.cache.trace_count()
    }

    /// Calls the function.
    ///
    /// # Errors
    /// A forward function whose output differs from the function's, outputs or residuals
    /// that are not arrays, a backward function whose cotangents do not fit the arguments
    /// ([`Error::CustomVjp`]), aliasing and closure-rule errors, and whatever the functions
    /// return. On error the caller's objects are unchanged.
    pub fn call(&self, engine: &(impl Engine + ?Sized), args: impl IntoArgs) -> Result<Value> {
        Ok(pipeline::call(self, &self.cache, engine, &args.into_args())?.value)
    }

    /// The forward function as a program over `f`'s inputs (those closure capture appended
    /// included, unused): the outputs of `f`'s program, then the residuals.
    fn trace_forward(
        &self,
        lowered: &Lowered<Whole>,
        outputs: &Lowered<Whole>,
        program: &Program,
        captured: usize,
    ) -> Result<Forward> {
        let avals = lowered.avals();
        let traced = trace_fn(&avals, |inputs| {
            let raised = lift::raise(lowered, inputs)?;
            let (output, residuals) = (self.fwd)(&raised.args)?;
            let whole = Prefix::Leaf(Whole);
            let lowered_out = lift::lower_outputs(&raised, &whole, &output, &whole)?;
            let (output, _) = Tree::of(&output, "the function's output")?;
            let (residuals, saved) = Tree::of(&residuals, "the residuals")?;
            let same = lowered_out.graphdef() == outputs.graphdef()
                && lowered_out.avals() == outputs.avals();
            if !same {
                return Err(Error::CustomVjp(
                    "the forward function's output (or its updates of the arguments) differs \
                     from the function's"
                        .into(),
                ));
            }
            let mut values: Vec<Tensor> = lowered_out
                .leaves()
                .iter()
                .map(|l| l.value.clone())
                .collect();
            values.extend(saved);
            Ok((values, (output, residuals)))
        })?;
        let (output, residuals) = traced.extra.clone();
        let mut forward = closed(traced, "forward")?;
        // The same operands as `f`'s program, whose captured inputs it does not read.
        for aval in program
            .input_avals()
            .into_iter()
            .skip(avals.len())
            .take(captured)
        {
            forward.inputs.push(VarId(forward.avals.len() as u32));
            forward.avals.push(aval);
        }
        Ok(Forward {
            program: Program::new(
                forward.inputs,
                forward.equations,
                forward.outputs,
                forward.avals,
            ),
            output,
            residuals,
        })
    }

    /// The backward function as a program: the residuals and one cotangent per output of
    /// `f`'s program, to one cotangent per input of it (zeros for inputs closure capture
    /// appended, and for what the backward function leaves out).
    fn trace_backward(
        &self,
        lowered: &Lowered<Whole>,
        outputs: &Lowered<Whole>,
        forward: &Forward,
        program: &Program,
    ) -> Result<Program> {
        let n_out = program.outputs.len();
        let residual_avals = forward.program.output_avals().split_off(n_out);
        let mut avals = residual_avals.clone();
        avals.extend(
            (outputs.leaves().iter())
                .map(|l| AbstractValue::new(l.value.shape().to_vec(), DType::F32, false)),
        );
        let n_args = lowered.num_roots();
        let traced = trace_fn(&avals, |values| {
            let (saved, cotangents) = values.split_at(residual_avals.len());
            let residuals = forward.residuals.build(&mut saved.iter().cloned())?;
            // The outputs' cotangents: the arguments' updated Variables by argument and
            // path, then the function's output.
            let mut input_updates: Vec<Option<State>> = vec![None; n_args];
            let mut output = Vec::new();
            for (leaf, cotangent) in outputs.leaves().iter().zip(cotangents) {
                let (root, path) = split_root(&leaf.path);
                match (&leaf.variable, root) {
                    (Some(variable), Some(k)) if k < n_args => {
                        let holder = variable.copy();
                        holder.set_value(cotangent.clone())?;
                        input_updates[k]
                            .get_or_insert_with(State::new)
                            .insert(path, Leaf::Variable(holder));
                    }
                    (None, Some(k)) if k == n_args => output.push(cotangent.clone()),
                    _ => {}
                }
            }
            let cotangents = Cotangents {
                input_updates,
                output: forward.output.build(&mut output.into_iter())?,
            };
            let grads = (self.bwd)(&residuals, &cotangents)?;
            if grads.len() != n_args {
                return Err(Error::CustomVjp(format!(
                    "the backward function must return one cotangent per argument ({n_args}), \
                     got {}",
                    grads.len()
                )));
            }
            let mut results = Vec::with_capacity(program.inputs.len());
            for leaf in lowered.leaves() {
                results.push(input_cotangent(
                    &grads,
                    &leaf.path,
                    &leaf.value,
                    &leaf.location(),
                )?);
            }
            for aval in program.input_avals().into_iter().skip(results.len()) {
                results.push(Tensor::zeros_of(&aval.shape, DType::F32)?);
            }
            Ok((results, ()))
        })?;
        closed(traced, "backward")
    }
}

/// The argument a lowered leaf belongs to, and its path within it.
fn split_root(path: &Path) -> (Option<usize>, Path) {
    let keys = path.keys();
    let root = match keys.first() {
        Some(Key::Int(k)) => usize::try_from(*k).ok(),
        _ => None,
    };
    (
        root,
        Path::from(keys.iter().skip(1).cloned().collect::<Vec<_>>()),
    )
}

/// The cotangent the backward function gave the input leaf at `path` (zeros where it gave
/// none), checked against the leaf.
fn input_cotangent(grads: &[Grad], path: &Path, value: &Tensor, location: &str) -> Result<Tensor> {
    let (root, within) = split_root(path);
    let given = match root.and_then(|k| grads.get(k)) {
        Some(Grad::State(state)) => state.get(&within).map(Leaf::value),
        Some(Grad::Tree(tree)) => crate::graph::state(tree).get(&within).map(Leaf::value),
        Some(Grad::Array(t)) if within.keys().is_empty() => Some(t.clone()),
        Some(Grad::Array(_)) => {
            return Err(Error::CustomVjp(format!(
                "the backward function returned an array for {location}'s argument, which is \
                 a graph node: return a State of its Variables' cotangents"
            )));
        }
        None => None,
    };
    match given {
        None => Tensor::zeros_of(value.shape(), DType::F32),
        Some(g) if g.shape() == value.shape() && g.dtype() == DType::F32 => Ok(g),
        Some(g) => Err(Error::CustomVjp(format!(
            "the backward function's cotangent for {location} has dtype {} and shape {:?}; \
             {location} has shape {:?} (cotangents are float32)",
            g.dtype(),
            g.shape(),
            value.shape()
        ))),
    }
}

/// A traced forward or backward function as a program of its declared inputs only: the
/// concrete values it read from outside become literals.
///
/// # Errors
/// [`Error::CustomVjp`] when it read a traced value from an enclosing trace.
fn closed<T>(traced: TracedFunction<T>, which: &str) -> Result<Program> {
    let TracedFunction {
        program, captured, ..
    } = traced;
    if captured.is_empty() {
        return Ok(program);
    }
    let declared = program.inputs.len() - captured.len();
    let mut literal: Vec<Option<Atom>> = vec![None; program.avals.len()];
    for (var, value) in program.inputs[declared..].iter().zip(captured) {
        let array = value.into_concrete().map_err(|_| {
            Error::CustomVjp(format!(
                "the {which} function reads a traced value from outside it; pass it as an \
                 argument (or, for the backward function, as a residual)"
            ))
        })?;
        literal[var.0 as usize] = Some(Atom::Literal(array));
    }
    let substitute = |atom: &Atom| match atom {
        Atom::Var(v) => literal[v.0 as usize]
            .clone()
            .unwrap_or_else(|| atom.clone()),
        other => other.clone(),
    };
    let equations = (program.equations.iter())
        .map(|eq| Equation {
            primitive: eq.primitive.clone(),
            inputs: eq.inputs.iter().map(substitute).collect(),
            outputs: eq.outputs.clone(),
        })
        .collect();
    let outputs = program.outputs.iter().map(substitute).collect();
    Ok(Program::new(
        program.inputs[..declared].to_vec(),
        equations,
        outputs,
        program.avals.clone(),
    ))
}
