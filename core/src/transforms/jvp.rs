//! `jvp`: forward-mode derivatives of functions of objects and arrays, with NNX semantics
//! for everything else (state updates propagate out, the closure rule, aliasing checks).

use std::collections::HashMap;
use std::sync::Arc;

use super::args::IntoArgs;
use super::forward::{Dual, jvp_program};
use super::grad::{Diff, DiffState, Grad, SELECT_FLOATS, check_differentiable, diff_prefix};
use super::pipeline::{self, Cache, Rules, lift_body};
use super::typed::{Body, IntoBody};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::graph::{self, Key, NodeId, Path, Value, VariableType};
use crate::lift::{Lowered, Prefix};
use crate::program::{AbstractValue, Primitive, Program, ProgramRef, trace_fn};
use crate::tensor::{DType, Tensor};

/// A tangent for one differentiated argument: the same shape as its gradient would have
/// (a [`State`](crate::State) of the differentiated Variables by path for a graph node,
/// Variables it does not hold having a zero tangent; an array for an array argument).
pub type Tangent = Grad;

/// What [`JvpFn::call`] returns.
#[derive(Clone, Debug)]
pub struct JvpOutput {
    /// The function's output.
    pub value: Value,
    /// Its tangent: the output's structure (arrays, tuples of them), every array replaced
    /// by its directional derivative.
    pub tangent: Value,
}

/// `jax.jvp` with NNX's arguments: the function's value and its directional derivative
/// along the given tangents, in one forward pass. The differentiated state is chosen as in
/// [`value_and_grad`](super::value_and_grad) (`argnums`, `wrt`; by default argument 0's
/// `Param`s); state updates made inside propagate out, as there. The function's output must
/// be arrays (or tuples of them): their tangents come back in the same structure. A
/// Variable shared by two differentiated arguments takes its tangent from the first.
///
/// Flax's graph mode with graph updates has no `nnx.jvp`; this is `jax.jvp` lifted the
/// way `nnx.grad` lifts `jax.grad`. With [`grad`](super::grad) inside, it gives
/// Hessian-vector products (`jvp` of `grad`, forward over reverse).
///
/// ```
/// use nnx_core::{Value, transforms::jvp};
/// let f = jvp(|args: &[Value]| Ok(Value::Array(args[0].as_tensor()?.tanh()?))).argnums(&[0]);
/// assert_eq!(f.trace_count(), 0);
/// ```
pub fn jvp<M, F: IntoBody<M>>(f: F) -> JvpFn<F::Body> {
    JvpFn {
        f: f.into_body(),
        wrt: vec![DiffState::new(0, VariableType::PARAM)],
        cache: Cache::default(),
    }
}

/// A function differentiated in forward mode; see [`jvp`].
pub struct JvpFn<F> {
    f: F,
    wrt: Vec<DiffState>,
    cache: Cache<Diff, ()>,
}

/// One differentiated input, in the order tangents are passed to the trace: a Variable
/// (by its path in its argument) or a whole array argument.
enum Primal {
    Variable {
        /// The position of its `DiffState` in `wrt` (of its tangent).
        k: usize,
        argnum: usize,
        path: Path,
        variable: crate::graph::Variable,
    },
    Array {
        k: usize,
        argnum: usize,
        value: Tensor,
    },
}

/// The differentiated inputs of `args` under `wrt`, in order.
fn primals(wrt: &[DiffState], args: &[Value]) -> Vec<Primal> {
    let mut out = Vec::new();
    for (k, d) in wrt.iter().enumerate() {
        match &args[d.argnum] {
            Value::Object(_) | Value::List(_) | Value::Dict(_) | Value::Variable(_) => {
                let state = graph::state_by(&args[d.argnum], &d.filter);
                for (path, leaf) in state.iter() {
                    if let Some(variable) = leaf.as_variable() {
                        out.push(Primal::Variable {
                            k,
                            argnum: d.argnum,
                            path: path.clone(),
                            variable: variable.clone(),
                        });
                    }
                }
            }
            Value::Array(value) => out.push(Primal::Array {
                k,
                argnum: d.argnum,
                value: value.clone(),
            }),
            _ => {}
        }
    }
    out
}

/// Where each lowered leaf's tangent is among the lowered leaves (`None`: no tangent).
pub(crate) struct TangentLeaves(Vec<Option<usize>>);

impl<F: Body> Rules for JvpFn<F> {
    type Leaf = Diff;
    type Prepared = TangentLeaves;
    type Extra = ();

    /// The arguments' prefix, then `Diff(false)` for the tuple of tangents appended to them.
    fn in_prefix(&self, args: &[Value]) -> Result<Prefix<Diff>> {
        let n = args.len().saturating_sub(1);
        match diff_prefix(&self.wrt, &args[..n])? {
            Prefix::Tuple(mut items) => {
                items.push(Prefix::Leaf(Diff(false)));
                Ok(Prefix::Tuple(items))
            }
            _ => Err(Error::internal("an argument prefix that is not a tuple")),
        }
    }

    fn out_prefix(&self) -> Prefix<Diff> {
        Prefix::Leaf(Diff(false))
    }

    fn apply(&self, args: &[Value]) -> Result<Value> {
        self.f.apply(&args[..args.len().saturating_sub(1)])
    }

    /// Checks that differentiated leaves are float, and pairs each with its tangent's leaf.
    fn prepare(
        &self,
        args: &[Value],
        lowered: &mut Lowered<Diff>,
    ) -> Result<(Vec<AbstractValue>, TangentLeaves)> {
        check_differentiable(lowered, "jvp", SELECT_FLOATS)?;
        let n = args.len().saturating_sub(1);
        let leaf_of_variable: HashMap<NodeId, usize> = (lowered.leaves().iter().enumerate())
            .filter_map(|(i, l)| l.variable.as_ref().map(|v| (v.id(), i)))
            .collect();
        let leaf_at = |path: &Path| lowered.leaves().iter().position(|l| &l.path == path);
        let mut tangent_of = vec![None; lowered.leaves().len()];
        for (j, primal) in primals(&self.wrt, &args[..n]).iter().enumerate() {
            let primal_leaf = match primal {
                Primal::Variable { variable, .. } => leaf_of_variable.get(&variable.id()).copied(),
                Primal::Array { argnum, .. } => leaf_at(&Path::from(vec![Key::from(*argnum)])),
            };
            let tangent_leaf = leaf_at(&Path::from(vec![Key::from(n), Key::from(j)]));
            if let (Some(i), Some(t)) = (primal_leaf, tangent_leaf)
                && tangent_of[i].is_none()
            {
                tangent_of[i] = Some(t);
            }
        }
        Ok((lowered.avals(), TangentLeaves(tangent_of)))
    }

    /// Traces the function one level deeper, then evaluates its program on duals here: the
    /// outputs followed by the tangent of each leaf of the function's output.
    fn body(
        &self,
        lowered: &Lowered<Diff>,
        prefix: &Prefix<Diff>,
        tangents: &TangentLeaves,
        inputs: Vec<Tensor>,
    ) -> Result<(Vec<Tensor>, Lowered<Diff>)> {
        let in_avals: Vec<AbstractValue> = inputs.iter().map(Tensor::aval).collect();
        let inner = trace_fn(&in_avals, |ys| lift_body(self, lowered, prefix, ys))?;
        let output_root = Key::from(lowered.num_roots());
        let output_leaves: Vec<usize> = (inner.extra.leaves().iter().enumerate())
            .filter(|(_, l)| l.path.keys().first() == Some(&output_root))
            .map(|(k, l)| match &l.variable {
                Some(v) => Err(Error::WrongValueKind {
                    expected: "arrays or tuples of arrays as the output of jvp",
                    found: format!("a {} variable at {}", v.type_name(), l.path),
                }),
                None => Ok(k),
            })
            .collect::<Result<_>>()?;
        let mut duals: Vec<Dual> = (inputs.iter().zip(&tangents.0))
            .map(|(x, t)| Dual {
                primal: x.clone(),
                tangent: t.map(|t| inputs[t].clone()),
            })
            .collect();
        duals.extend(inner.captured.iter().cloned().map(Dual::constant));
        let outputs = jvp_program(&inner.program, duals)?;
        let mut results: Vec<Tensor> = outputs.iter().map(|d| d.primal.clone()).collect();
        for k in output_leaves {
            results.push(outputs[k].tangent_or_zeros());
        }
        Ok((results, inner.extra))
    }

    fn finish(
        &self,
        _prepared: TangentLeaves,
        _lowered: &Lowered<Diff>,
        _outputs: &mut Lowered<Diff>,
        program: &Arc<Program>,
        _captured: usize,
    ) -> Result<(Primitive, ())> {
        let program = ProgramRef(program.clone());
        Ok((Primitive::Call { program }, ()))
    }
}

impl<F: Body> JvpFn<F> {
    /// How many times the function has been traced.
    pub fn trace_count(&self) -> usize {
        self.cache.trace_count()
    }

    /// Differentiate these arguments, each with respect to its `Param`s (`argnums`).
    pub fn argnums(mut self, argnums: &[usize]) -> JvpFn<F> {
        self.wrt = argnums
            .iter()
            .map(|&a| DiffState::new(a, VariableType::PARAM))
            .collect();
        self
    }

    /// Differentiate with respect to these `DiffState`s.
    pub fn wrt(mut self, wrt: impl IntoIterator<Item = DiffState>) -> JvpFn<F> {
        self.wrt = wrt.into_iter().collect();
        self
    }

    /// Calls the function on `args` and pushes `tangents` (one per differentiated argument,
    /// in `argnums` order) through it.
    ///
    /// # Errors
    /// Another number of tangents than differentiated arguments
    /// ([`Error::TangentCount`]), a tangent of the wrong kind ([`Error::WrongValueKind`]),
    /// shape or dtype ([`Error::TangentShape`]), an output that is not arrays, a non-float
    /// differentiated input, empty, repeated or out-of-range argnums, aliasing and
    /// closure-rule errors, and whatever `f` returns. On error the caller's objects are
    /// unchanged.
    pub fn call(
        &self,
        engine: &(impl Engine + ?Sized),
        args: impl IntoArgs,
        tangents: &[Tangent],
    ) -> Result<JvpOutput> {
        let mut args = args.into_args();
        // The argnums are checked before the tangents are read.
        diff_prefix(&self.wrt, &args)?;
        if tangents.len() != self.wrt.len() {
            return Err(Error::TangentCount {
                expected: self.wrt.len(),
                found: tangents.len(),
            });
        }
        let tangent_values = primals(&self.wrt, &args)
            .into_iter()
            .map(|primal| {
                let (primal_value, tangent, location) = match &primal {
                    Primal::Variable {
                        k,
                        argnum,
                        path,
                        variable,
                    } => {
                        let state = tangents[*k].state()?;
                        let tangent = state.get(path).map(|leaf| leaf.value());
                        (variable.value(), tangent, format!("args[{argnum}]/{path}"))
                    }
                    Primal::Array { k, argnum, value } => {
                        let tangent = tangents[*k].array()?.clone();
                        (value.clone(), Some(tangent), format!("args[{argnum}]"))
                    }
                };
                if !primal_value.dtype().is_float() {
                    return Err(Error::NonDifferentiable {
                        transform: "jvp",
                        hint: SELECT_FLOATS,
                        location,
                        dtype: primal_value.dtype(),
                    });
                }
                match tangent {
                    None => Ok(Value::Array(Tensor::zeros_of(
                        primal_value.shape(),
                        DType::F32,
                    )?)),
                    Some(t) if t.shape() == primal_value.shape() && t.dtype() == DType::F32 => {
                        Ok(Value::Array(t))
                    }
                    Some(t) => Err(Error::TangentShape {
                        location,
                        expected: primal_value.shape().to_vec(),
                        found: t.shape().to_vec(),
                        dtype: t.dtype(),
                    }),
                }
            })
            .collect::<Result<Vec<Value>>>()?;
        args.push(Value::Tuple(tangent_values));
        let outcome = pipeline::call(self, &self.cache, engine, &args)?;
        let mut tangents = outcome.rest.into_iter();
        let tangent = mirror(&outcome.value, &mut tangents)?;
        Ok(JvpOutput {
            value: outcome.value,
            tangent,
        })
    }
}

/// `value`'s structure with its arrays taken from `tangents`, in order.
fn mirror(value: &Value, tangents: &mut impl Iterator<Item = Tensor>) -> Result<Value> {
    Ok(match value {
        Value::Array(_) => Value::Array(
            tangents
                .next()
                .ok_or_else(|| Error::internal("jvp returned fewer tangents than arrays"))?,
        ),
        Value::Tuple(items) => Value::Tuple(
            items
                .iter()
                .map(|v| mirror(v, tangents))
                .collect::<Result<_>>()?,
        ),
        Value::Static(s) => Value::Static(s.clone()),
        other => {
            return Err(Error::WrongValueKind {
                expected: "arrays or tuples of arrays as the output of jvp",
                found: other.kind_name(),
            });
        }
    })
}
