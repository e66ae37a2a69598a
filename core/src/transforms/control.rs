//! Lifted control flow: `cond`, `switch`, `while_loop` and `fori_loop` over functions of
//! objects and arrays, with NNX semantics (Flax's `nnx.cond`, `nnx.switch`,
//! `nnx.while_loop`, `nnx.fori_loop`).
//!
//! Each runs through the one pipeline as `jit` does (objects lowered, raised fresh for each
//! traced function, state and graph updates written back, the closure rule, caching); what
//! differs is the body: every branch, or the predicate and the loop body, is traced on the
//! same inputs one level deeper and recorded as one [`Primitive::Cond`] or
//! [`Primitive::While`], so that only the taken branch runs and the loop runs as often as
//! its predicate says, inside `jit`, `vmap`, `scan` and `grad` alike.

use std::sync::Arc;

use super::args::IntoArgs;
use super::control_diff::{captured_at, record_cond};
use super::jit::Whole;
use super::pipeline::{self, Cache, OutputChecks, Rules, lift_apply};
use super::scan::{ScanAxis, output_kinds};
use super::typed::{self, Body, IntoBody};
use super::{Carry, Scan, scan};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::graph::{Static, Value};
use crate::lift::{self, Lowered, Prefix};
use crate::program::{
    AbstractValue, Primitive, Program, ProgramRef, ScanInput, ScanOutput, TracedFunction,
    record_multi, trace_fn,
};
use crate::tensor::elementwise::CompareOp;
use crate::tensor::{DType, Tensor};

/// A branch of a [`Switch`]: any [`Body`] with the switch's output type.
type Branch<'f, O> = Box<dyn Body<Output = O> + 'f>;

/// Whether a [`Switch`] takes a predicate (`cond`) or an index (`switch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Selector {
    /// A predicate: `false` takes branch 0, anything else branch 1.
    Predicate,
    /// An index, clamped to the branches.
    Index,
}

/// Runs `true_fn` or `false_fn` on the operands, as `pred` says (`nnx.cond`).
///
/// Call it with the predicate first, then the operands:
/// `cond(true_fn, false_fn).call(engine, (pred, &model, &x))`, where `pred` is a bool (or
/// numeric, non-zero meaning true) scalar tensor, or a `bool`. Both functions take the
/// operands and return outputs of the same structure, shapes and dtypes; objects among the
/// operands may be updated, and the taken branch's updates propagate out, as in Flax. Both
/// branches must leave the graph with the same structure (an attribute added in one branch
/// only is an error, as in Flax). Inside a transform the predicate may be traced: under
/// `vmap` a batched predicate selects lane by lane, and a branch that updates broadcast
/// state is then the vmap's broadcast-state error, naming the path.
///
/// ```
/// use nnx_core::transforms::cond;
/// use nnx_core::{Engine, Object, Param, Result, Tensor};
///
/// // Runs on any engine (`nnx_fast::Fast`, `nnx_reference::Reference`); the user guide's
/// // "Control flow" section runs it.
/// fn example(engine: &impl Engine) -> Result<()> {
///     let m = Object::new("M").with("count", Param::new(Tensor::scalar(0i32)))?;
///     let step = cond(
///         |m: &Object, x: &Tensor| -> Result<Tensor> {
///             m.var("count")?.set_value((&m.value("count")? + 1)?)?;
///             x + 1.0
///         },
///         |m: &Object, x: &Tensor| -> Result<Tensor> {
///             m.var("count")?.set_value((&m.value("count")? - 1)?)?;
///             x - 1.0
///         },
///     );
///     let y = step.call(engine, (true, &m, &Tensor::scalar(1.0f32)))?;
///     assert_eq!(y.item::<f32>()?, 2.0);
///     assert_eq!(m.value("count")?.item::<i32>()?, 1);
///     Ok(())
/// }
/// ```
pub fn cond<'f, M, F, G>(true_fn: F, false_fn: G) -> Switch<'f, <F::Body as Body>::Output>
where
    F: IntoBody<M>,
    G: IntoBody<M>,
    F::Body: 'f,
    G::Body: Body<Output = <F::Body as Body>::Output> + 'f,
{
    Switch {
        branches: vec![
            Box::new(false_fn.into_body()),
            Box::new(true_fn.into_body()),
        ],
        selector: Selector::Predicate,
        cache: Cache::default(),
    }
}

/// Runs the branch an index selects on the operands (`nnx.switch`): the index is clamped to
/// the branches, as `lax.switch` does. `switch(branches)` takes branches of one type (the
/// dynamic form, or `fn` items); [`Switch::branch`] appends a branch of any type.
///
/// Call it with the index first, then the operands:
/// `switch(vec![f0]).branch(f1).call(engine, (index, &model))`, where `index` is an integer
/// scalar tensor or an `i32`. Everything else is as for [`cond`].
///
/// ```
/// use nnx_core::transforms::switch;
/// use nnx_core::{Engine, Result, Tensor};
///
/// fn example(engine: &impl Engine) -> Result<()> {
///     let pick = switch(vec![|x: &Tensor| -> Result<Tensor> { x * 10.0 }])
///         .branch(|x: &Tensor| -> Result<Tensor> { x * 20.0 })
///         .branch(|x: &Tensor| -> Result<Tensor> { x * 30.0 });
///     let x = Tensor::scalar(1.0f32);
///     assert_eq!(pick.call(engine, (1, &x))?.item::<f32>()?, 20.0);
///     assert_eq!(pick.call(engine, (7, &x))?.item::<f32>()?, 30.0); // clamped
///     Ok(())
/// }
/// ```
pub fn switch<'f, M, F>(branches: Vec<F>) -> Switch<'f, <F::Body as Body>::Output>
where
    F: IntoBody<M>,
    F::Body: 'f,
{
    Switch {
        branches: branches
            .into_iter()
            .map(|f| Box::new(f.into_body()) as Branch<_>)
            .collect(),
        selector: Selector::Index,
        cache: Cache::default(),
    }
}

/// A lifted `cond` or `switch`; see [`cond`] and [`switch`].
pub struct Switch<'f, O> {
    branches: Vec<Branch<'f, O>>,
    selector: Selector,
    cache: Cache<Whole, ()>,
}

impl<'f, O: crate::graph::FromValue> Switch<'f, O> {
    /// Appends a branch (taken for the next index).
    pub fn branch<M, F>(mut self, f: F) -> Switch<'f, O>
    where
        F: IntoBody<M>,
        F::Body: Body<Output = O> + 'f,
    {
        self.branches.push(Box::new(f.into_body()));
        self
    }

    /// How many times the branches have been traced (once per structure, as `jit`).
    pub fn trace_count(&self) -> usize {
        self.cache.trace_count()
    }

    /// Runs the selected branch: `args` is the predicate or index, then the operands.
    ///
    /// # Errors
    /// [`Error::ControlFlow`] for a missing or non-scalar predicate or index, no branches,
    /// or branches that leave different structures or output shapes; aliasing and
    /// closure-rule errors; whatever the branches return. On error the caller's objects are
    /// unchanged.
    pub fn call(&self, engine: &(impl Engine + ?Sized), args: impl IntoArgs) -> Result<O> {
        let mut args = args.into_args();
        let what = match self.selector {
            Selector::Predicate => "cond's predicate",
            Selector::Index => "switch's index",
        };
        if self.branches.is_empty() {
            return Err(Error::ControlFlow(
                "switch needs at least one branch".into(),
            ));
        }
        let first = args.first_mut().ok_or_else(|| {
            Error::ControlFlow(format!(
                "{what} is missing: call with it first, then the operands"
            ))
        })?;
        *first = Value::from(selector_tensor(first, what)?);
        let value = pipeline::call(self, &self.cache, engine, &args)?.value;
        O::from_value(&value).map_err(|e| e.within("the output"))
    }
}

/// The predicate or index argument as a scalar tensor (a static `bool` or integer becomes
/// one).
fn selector_tensor(value: &Value, what: &str) -> Result<Tensor> {
    let tensor = match value {
        Value::Static(Static::Bool(b)) => Tensor::scalar(*b),
        Value::Static(Static::Int(i)) => Tensor::scalar(
            i32::try_from(*i)
                .map_err(|_| Error::ControlFlow(format!("{what} {i} does not fit in an int32")))?,
        ),
        Value::Array(t) => t.clone(),
        other => {
            return Err(Error::ControlFlow(format!(
                "{what} must be a scalar array or a bool, got {}",
                other.kind_name()
            )));
        }
    };
    if tensor.ndim() != 0 || tensor.dtype() == DType::Key {
        return Err(Error::ControlFlow(format!(
            "{what} must be a scalar, got {}",
            tensor.aval()
        )));
    }
    Ok(tensor)
}

impl<O: crate::graph::FromValue> Rules for Switch<'_, O> {
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
        // Not reached: `body` traces every branch itself.
        self.branches[0].apply(args.get(1..).unwrap_or_default())
    }

    fn prepare(
        &self,
        _args: &[Value],
        lowered: &mut Lowered<Whole>,
    ) -> Result<(Vec<AbstractValue>, ())> {
        Ok((lowered.avals(), ()))
    }

    fn body(
        &self,
        lowered: &Lowered<Whole>,
        prefix: &Prefix<Whole>,
        _prepared: &(),
        inputs: Vec<Tensor>,
    ) -> Result<(Vec<Tensor>, Lowered<Whole>)> {
        let selector = inputs
            .first()
            .ok_or_else(|| Error::internal("the selector is lowered first"))?;
        let index = match self.selector {
            Selector::Predicate => {
                selector.compare(CompareOp::Ne, &Tensor::zeros_of([], selector.dtype())?)?
            }
            Selector::Index => selector.clone(),
        }
        .astype(DType::I32)?;
        let avals: Vec<AbstractValue> = inputs.iter().map(Tensor::aval).collect();
        let out_prefix = self.out_prefix();
        let traced: Vec<TracedFunction<Lowered<Whole>>> = self
            .branches
            .iter()
            .map(|branch| {
                trace_fn(&avals, |ins| {
                    lift_apply(
                        lowered,
                        prefix,
                        &out_prefix,
                        ins,
                        OutputChecks::default(),
                        |args| branch.apply(&args[1..]),
                    )
                })
            })
            .collect::<Result<_>>()?;
        check_same_structure(&traced, self.selector)?;
        let results = record_cond(&index, &inputs, &traced)?;
        let outputs = traced
            .into_iter()
            .next()
            .map(|t| t.extra)
            .ok_or_else(|| Error::internal("a switch has branches"))?;
        Ok((results, outputs))
    }

    fn finish(
        &self,
        _prepared: (),
        _lowered: &Lowered<Whole>,
        _outputs: &mut Lowered<Whole>,
        program: &Arc<Program>,
        _captured: usize,
    ) -> Result<(Primitive, ())> {
        Ok((
            Primitive::Call {
                program: ProgramRef(program.clone()),
            },
            (),
        ))
    }
}

/// Every branch must leave the same graph structure and output shapes and dtypes (Flax: a
/// JAX `TypeError`, "cond branch outputs must have the same pytree structure").
fn check_same_structure(
    traced: &[TracedFunction<Lowered<Whole>>],
    selector: Selector,
) -> Result<()> {
    let name = |k: usize| match (selector, k) {
        (Selector::Predicate, 0) => "the false branch".to_owned(),
        (Selector::Predicate, _) => "the true branch".to_owned(),
        (Selector::Index, k) => format!("branch {k}"),
    };
    let Some(first) = traced.first() else {
        return Ok(());
    };
    let describe = |t: &TracedFunction<Lowered<Whole>>| -> Vec<String> {
        (t.extra.leaves().iter())
            .map(|l| format!("{}: {}", l.location(), l.value.aval()))
            .collect()
    };
    let strong = |a: AbstractValue| (a.shape, a.dtype);
    for (k, other) in traced.iter().enumerate().skip(1) {
        let same_avals = (first.extra.leaves().iter().zip(other.extra.leaves()))
            .all(|(a, b)| strong(a.value.aval()) == strong(b.value.aval()));
        if first.extra.graphdef() == other.extra.graphdef() && same_avals {
            continue;
        }
        let (a, b) = (describe(first), describe(other));
        let only = |x: &[String], y: &[String]| -> Vec<String> {
            x.iter().filter(|s| !y.contains(s)).cloned().collect()
        };
        let mut detail = Vec::new();
        for (label, items) in [(0, only(&a, &b)), (k, only(&b, &a))] {
            if !items.is_empty() {
                detail.push(format!("only {} has {}", name(label), items.join(", ")));
            }
        }
        if detail.is_empty() {
            detail.push(
                "their graph structures (attributes, static values or sharing) differ".into(),
            );
        }
        return Err(Error::ControlFlow(format!(
            "cond branch outputs must have the same pytree structure, but they differ: \
             {} and {} leave different structures ({}); every branch must update the same \
             objects in the same way and return outputs of the same shapes and dtypes",
            name(0),
            name(k),
            detail.join("; ")
        )));
    }
    Ok(())
}

/// Runs `body_fn` while `cond_fn` holds (`nnx.while_loop`). The loop value is the call's
/// arguments: `while_loop(cond_fn, body_fn).call(engine, (&model, &i))`. Both functions
/// take the loop value; `cond_fn` returns a bool scalar tensor, `body_fn` the next loop
/// value (the single value, or a tuple of as many items as there are arguments) with the
/// same structure, shapes and dtypes and referencing the same objects; objects in it are
/// updated in place and come out as the same objects, as in Flax. Changes `cond_fn` makes
/// to objects are not kept (Flax drops them too).
///
/// The number of iterations may depend on traced values, so the loop cannot be
/// differentiated in reverse mode (as in JAX; use [`fori_loop`] or `scan`), but `jvp`
/// goes through it.
///
/// ```
/// use nnx_core::transforms::while_loop;
/// use nnx_core::{Engine, Object, Param, Result, Tensor};
///
/// fn example(engine: &impl Engine) -> Result<()> {
///     let m = Object::new("M").with("count", Param::new(Tensor::scalar(0i32)))?;
///     let (m2, i) = while_loop(
///         |_m: &Object, i: &Tensor| i.less(&Tensor::scalar(3i32)),
///         |m: &Object, i: &Tensor| -> Result<(Object, Tensor)> {
///             m.var("count")?.set_value((&m.value("count")? + 1)?)?;
///             Ok((m.clone(), (i + 1)?))
///         },
///     )
///     .call(engine, (&m, &Tensor::scalar(0i32)))?;
///     assert!(m2.ptr_eq(&m));
///     assert_eq!((m.value("count")?.item::<i32>()?, i.item::<i32>()?), (3, 3));
///     Ok(())
/// }
/// ```
pub fn while_loop<M1, M2, C, B>(cond_fn: C, body_fn: B) -> WhileLoop<C::Body, B::Body>
where
    C: IntoBody<M1>,
    B: IntoBody<M2>,
{
    WhileLoop {
        cond: cond_fn.into_body(),
        body: body_fn.into_body(),
        cache: Cache::default(),
    }
}

/// A lifted `while_loop`; see [`while_loop`].
pub struct WhileLoop<C, B> {
    cond: C,
    body: B,
    cache: Cache<ScanAxis, ()>,
}

impl<C: Body, B: Body> WhileLoop<C, B> {
    /// How many times the functions have been traced (once per structure, as `jit`).
    pub fn trace_count(&self) -> usize {
        self.cache.trace_count()
    }

    /// Runs the loop from the loop value `args`.
    ///
    /// # Errors
    /// [`Error::ControlFlow`] for a predicate that is not a bool scalar, or a body that
    /// changes the loop value's structure, shapes or dtypes (Flax's "requires body
    /// function's input and output to have the same reference and pytree structure");
    /// aliasing and closure-rule errors; whatever the functions return. On error the
    /// caller's objects are unchanged.
    pub fn call(&self, engine: &(impl Engine + ?Sized), args: impl IntoArgs) -> Result<B::Output> {
        typed::output::<B>(pipeline::call(self, &self.cache, engine, &args.into_args())?.value)
    }
}

impl<C: Body, B: Body> Rules for WhileLoop<C, B> {
    type Leaf = ScanAxis;
    type Prepared = ();
    type Extra = ();

    fn in_prefix(&self, _args: &[Value]) -> Result<Prefix<ScanAxis>> {
        Ok(Prefix::Leaf(ScanAxis::Carry))
    }

    fn out_prefix(&self) -> Prefix<ScanAxis> {
        Prefix::Leaf(ScanAxis::Carry)
    }

    fn apply(&self, args: &[Value]) -> Result<Value> {
        self.body.apply(args)
    }

    fn prepare(
        &self,
        _args: &[Value],
        lowered: &mut Lowered<ScanAxis>,
    ) -> Result<(Vec<AbstractValue>, ())> {
        Ok((lowered.avals(), ()))
    }

    fn body(
        &self,
        lowered: &Lowered<ScanAxis>,
        prefix: &Prefix<ScanAxis>,
        _prepared: &(),
        inputs: Vec<Tensor>,
    ) -> Result<(Vec<Tensor>, Lowered<ScanAxis>)> {
        let n = inputs.len();
        let avals: Vec<AbstractValue> = inputs.iter().map(Tensor::aval).collect();
        let holds = trace_fn(&avals, |ins| {
            let raised = lift::raise(lowered, ins)?;
            let out = self.cond.apply(&raised.args)?;
            let holds = match &out {
                Value::Array(t) if t.ndim() == 0 && t.dtype() == DType::Bool => t.clone(),
                Value::Array(t) => {
                    return Err(Error::ControlFlow(format!(
                        "while_loop's cond_fn must return a bool scalar, got {}",
                        t.aval()
                    )));
                }
                other => {
                    return Err(Error::ControlFlow(format!(
                        "while_loop's cond_fn must return a bool scalar, got {}",
                        other.kind_name()
                    )));
                }
            };
            Ok((vec![holds], ()))
        })?;
        let out_prefix = self.out_prefix();
        let body = trace_fn(&avals, |ins| {
            lift_apply(
                lowered,
                prefix,
                &out_prefix,
                ins,
                OutputChecks::default(),
                |args| self.body.apply(args),
            )
        })?;
        let (kinds, _) = output_kinds(
            lowered.num_roots(),
            lowered,
            &body.extra,
            &body.program,
            &vec![ScanInput::Carry; n],
            false,
        )
        .map_err(|e| {
            Error::ControlFlow(format!(
                "nnx.while_loop requires body function's input and output to have the same \
                 reference and pytree structure, but they differ: {}",
                match e {
                    Error::InvalidPrefix(detail) => match detail.split_once(", but ") {
                        Some((_, what)) => what.to_owned(),
                        None => detail,
                    },
                    other => other.to_string(),
                }
            ))
        })?;
        // Output j is the next value of loop value `carried[j]`; every one is matched once.
        let carried: Vec<usize> = kinds
            .iter()
            .map(|kind| match kind {
                ScanOutput::Carry(i) => Ok(*i),
                _ => Err(Error::internal(
                    "a while_loop output that is not a loop value",
                )),
            })
            .collect::<Result<_>>()?;
        let mut next = vec![None; n];
        for (j, &i) in carried.iter().enumerate() {
            next[i] = Some(body.program.outputs[j].clone());
        }
        let next: Vec<_> = next
            .into_iter()
            .map(|o| o.ok_or_else(|| Error::internal("a loop value without a next value")))
            .collect::<Result<_>>()?;
        let p = body.program;
        let body_program = Program::new(p.inputs, p.equations, next, p.avals);
        let primitive = Primitive::While {
            cond: ProgramRef(Arc::new(captured_at(holds.program, n, 0))),
            body: ProgramRef(Arc::new(captured_at(body_program, n, 0))),
            cond_consts: holds.captured.len(),
            body_consts: body.captured.len(),
        };
        let mut operands: Vec<&Tensor> = holds.captured.iter().collect();
        operands.extend(&body.captured);
        operands.extend(&inputs);
        let finals = record_multi(primitive, &operands)?;
        let results = carried.iter().map(|&i| finals[i].clone()).collect();
        Ok((results, body.extra))
    }

    fn finish(
        &self,
        _prepared: (),
        _lowered: &Lowered<ScanAxis>,
        _outputs: &mut Lowered<ScanAxis>,
        program: &Arc<Program>,
        _captured: usize,
    ) -> Result<(Primitive, ())> {
        Ok((
            Primitive::Call {
                program: ProgramRef(program.clone()),
            },
            (),
        ))
    }
}

/// Runs `body_fn(i, value)` for `i` from `lower` to `upper` (excluded), threading the loop
/// value (`nnx.fori_loop`): `fori_loop(0, 4, body_fn).call(engine, (&model,))`. The loop value
/// is the call's arguments, as for [`while_loop`]; `body_fn` takes the index (an int32
/// scalar tensor) and then the loop value, and returns the next loop value. The bounds are
/// static, so the loop is a `scan` (as JAX makes it): it is differentiated in both modes
/// without unrolling, batched under `vmap`, and an empty range returns the value as it is.
///
/// ```
/// use nnx_core::transforms::fori_loop;
/// use nnx_core::{Engine, Object, Param, Result, Tensor};
///
/// fn example(engine: &impl Engine) -> Result<()> {
///     let m = Object::new("M").with("total", Param::new(Tensor::scalar(0i32)))?;
///     let out = fori_loop(0, 4, |i: &Tensor, m: &Object| -> Result<Object> {
///         m.var("total")?.set_value((&m.value("total")? + i)?)?;
///         Ok(m.clone())
///     })
///     .call(engine, (&m,))?;
///     assert!(out.ptr_eq(&m));
///     assert_eq!(m.value("total")?.item::<i32>()?, 6);
///     Ok(())
/// }
/// ```
pub fn fori_loop<M, B: IntoBody<M>>(lower: i32, upper: i32, body_fn: B) -> ForiLoop<B::Body> {
    ForiLoop {
        scan: scan(IndexFirst(body_fn.into_body()))
            .in_axes((Carry, 0))
            .out_axes(Carry),
        lower,
        upper,
    }
}

/// A lifted `fori_loop`; see [`fori_loop`].
pub struct ForiLoop<B> {
    scan: Scan<IndexFirst<B>>,
    lower: i32,
    upper: i32,
}

/// A `fori_loop` body as a `scan` body: the loop value (one tuple, the carry) and the index
/// (scanned) in, `body(index, values…)` called, its result as the carry tuple.
struct IndexFirst<B>(B);

impl<B: Body> Body for IndexFirst<B> {
    type Output = Value;

    fn apply(&self, args: &[Value]) -> Result<Value> {
        let [Value::Tuple(values), index] = args else {
            return Err(Error::internal(
                "fori_loop passes its values as one tuple and the index",
            ));
        };
        let mut call = vec![index.clone()];
        call.extend(values.iter().cloned());
        let out = self.0.apply(&call)?;
        Ok(match values.len() {
            1 => Value::Tuple(vec![out]),
            _ => out,
        })
    }
}

/// The marker of [`IndexFirst`] as a body of its own.
enum Internal {}

impl<B: Body> IntoBody<Internal> for IndexFirst<B> {
    type Body = IndexFirst<B>;

    fn into_body(self) -> IndexFirst<B> {
        self
    }
}

impl<B: Body> ForiLoop<B> {
    /// How many times the body has been traced (once per structure, as `scan`).
    pub fn trace_count(&self) -> usize {
        self.scan.trace_count()
    }

    /// Runs the loop from the loop value `args`.
    ///
    /// # Errors
    /// A body that changes the loop value's structure (`scan`'s carry error), aliasing and
    /// closure-rule errors, and whatever the body returns. On error the caller's objects are
    /// unchanged.
    pub fn call(&self, engine: &(impl Engine + ?Sized), args: impl IntoArgs) -> Result<B::Output> {
        let values = args.into_args();
        let n = values.len();
        let count = usize::try_from(i64::from(self.upper) - i64::from(self.lower)).unwrap_or(0);
        let indices = (&Tensor::arange(count) + self.lower)?;
        let out = self.scan.call(engine, (Value::Tuple(values), indices))?;
        let value = match out {
            Value::Tuple(mut items) if n == 1 && items.len() == 1 => items.remove(0),
            other => other,
        };
        typed::output::<B>(value)
    }
}
