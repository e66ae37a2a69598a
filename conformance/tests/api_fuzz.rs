//! API-sequence fuzzing: random sequences of public operations applied both to the library
//! and to a plain model of the graph the caller's objects should form (`api_fuzz/model.rs`).
//!
//! The operations (`api_fuzz/ops.rs`): create objects, Variables, containers, raw arrays,
//! statics and `Rngs`; set, delete and share attributes (cycles included); edit Variables'
//! values and metadata; `split`/`split_by` + `merge`, `clone`, `update` with a filtered State
//! or another root's State, `state_by` with filters; `split_rngs`/`fork_rngs` around a closure
//! that succeeds, fails or panics (`api_fuzz/graph_steps.rs`); and `jit`, `vmap`, `scan`,
//! `value_and_grad`, `jvp`, `vmap` in `jit`, `value_and_grad` of `jit` and a `jit` called twice, with
//! random specs (valid and invalid) and closures chosen from a menu (update a Variable, add
//! or delete an attribute, share a Variable, create a sub-object, set a static or metadata,
//! draw a key, keep a tracer, touch a captured object) that then succeed, return an error
//! halfway or panic halfway (`api_fuzz/transforms.rs`, `api_fuzz/specs.rs`).
//!
//! After every step: nothing panicked except the closures that were told to; the caller's
//! objects equal the model (structure, attribute order, identity and sharing, values bit for
//! bit, metadata) — a transform that failed or panicked leaves them exactly as before; the
//! trace level is back to 0, a tracer kept by a closure is reported as escaped, and a fresh
//! transform works; every root prints (`Display`, `Debug`, its State and GraphDef).
//!
//! `NNX_FUZZ_CASES` sets the number of sequences (default 1,000); proptest shrinks a failure
//! to a minimal sequence and records it in `proptest-regressions/api_fuzz.txt`.
//! `NNX_FUZZ_TRACE` prints every step of a replayed sequence, `NNX_FUZZ_STATS` how each
//! transform call ended.

#[path = "api_fuzz/graph_steps.rs"]
mod graph_steps;
#[path = "api_fuzz/model.rs"]
mod model;
#[path = "api_fuzz/ops.rs"]
mod ops;
#[path = "api_fuzz/specs.rs"]
mod specs;
#[path = "api_fuzz/transforms.rs"]
mod transforms;

use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use model::{FlatLeaf, Kind, MFilter, MVal, MVar, Nid, Vid, World, key_order};
use nnx_core::random::{RngStream, Rngs, SplitRngs, fork_rngs_scoped};
use nnx_core::transforms::{
    Carry, DiffState, Grad, ScanAxis, StateAxes, Tangent, jit, jvp, scan, value_and_grad, vmap,
};
use nnx_core::{
    DType, Dict, Error, ErrorKind, Filter, Key, List, Object, Param, Result, State, Static, Tensor,
    Value, Variable, VariableType, graph, lift::Prefix, trace,
};
use nnx_reference::Reference;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use graph_steps::*;
use ops::*;
use specs::*;
use transforms::*;

// ---------------------------------------------------------------------------------------
// Running a sequence
// ---------------------------------------------------------------------------------------

/// The payload of the panics the closures are told to raise.
pub(crate) struct FuzzPanic;

/// Keeps the deliberate panics out of the test output; every other panic is reported.
pub(crate) fn quiet_deliberate_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<FuzzPanic>().is_none() {
                default(info);
            }
        }));
    });
}

pub(crate) fn fail(message: impl Into<String>) -> String {
    message.into()
}

pub(crate) type Step = std::result::Result<(), String>;

pub(crate) fn run(ops: &[Op]) -> std::result::Result<(), TestCaseError> {
    quiet_deliberate_panics();
    let mut w = World::default();
    let root = Object::new("Root");
    let r = w.add_node(Kind::Object("Root".into()), Some(Value::from(&root)));
    w.roots.push(r);
    let verbose = std::env::var("NNX_FUZZ_TRACE").is_ok();
    for (i, op) in ops.iter().enumerate() {
        if verbose {
            for r in 0..w.roots.len() {
                let root = w.root(r);
                eprintln!("roots[{r}] = {root}\n{}", graph::state(&root));
            }
            eprintln!("step {i}: {op:?}");
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| step(&mut w, op)));
        let result = match outcome {
            Ok(r) => r,
            Err(payload) => Err(format!("the library panicked: {}", panic_message(&payload))),
        };
        result
            .and_then(|()| w.check())
            .and_then(|()| print_all(&w))
            .map_err(|e| TestCaseError::fail(format!("step {i} ({op:?}): {e}")))?;
    }
    Ok(())
}

pub(crate) fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string payload".to_owned())
}

/// Every root prints; printing twice gives the same text.
pub(crate) fn print_all(w: &World) -> Step {
    for i in 0..w.roots.len() {
        let root = w.root(i);
        let text = format!("{root}");
        if text != format!("{root}") || text.is_empty() {
            return Err(fail("printing a root is not deterministic"));
        }
        let _ = format!("{root:?}");
        let (def, state) = graph::split(&root);
        let _ = format!("{def}{state}");
    }
    Ok(())
}

pub(crate) fn step(w: &mut World, op: &Op) -> Step {
    match op {
        Op::NewRoot => {
            let o = Object::new("Root");
            let n = w.add_node(Kind::Object("Root".into()), Some(Value::from(&o)));
            add_root(w, n);
            Ok(())
        }
        Op::Set { node, key, what } => set(w, *node, *key, what),
        Op::Del { node, key } => del(w, *node, *key),
        Op::SplitMerge { root, filters } => split_merge(w, *root, *filters),
        Op::Clone { root } => {
            let i = root % w.roots.len();
            let c: Object = graph::clone(&w.root(i));
            let n = w.copy_graph(w.roots[i], true);
            bind_new_root(w, n, c);
            Ok(())
        }
        Op::Update { root, filter } => update(w, *root, UPDATE_FILTERS[*filter]),
        Op::UpdateFrom { from, to } => update_from(w, *from, *to),
        Op::State { root, filter } => check_state(w, *root, STATE_FILTERS[*filter]),
        Op::VarEdit { var, edit } => var_edit_step(w, *var, edit),
        Op::SplitRngs {
            root,
            splits,
            fork,
            draw,
            ending,
        } => split_rngs(w, *root, *splits, *fork, *draw, *ending),
        Op::Transform(t) => run_transform(w, t),
    }
}

pub(crate) fn finish(ending: Ending) -> Result<()> {
    match ending {
        Ending::Ok => Ok(()),
        Ending::Err => Err(Error::shape("closure", "the closure fails halfway")),
        Ending::Panic => std::panic::panic_any(FuzzPanic),
    }
}

pub(crate) type Outcome = std::thread::Result<Result<Option<Vec<Grad>>>>;

/// Checks that the call ended as the closure was told to. Returns the gradients on success.
pub(crate) fn check_ending(
    ending: Ending,
    outcome: Outcome,
) -> std::result::Result<Option<Vec<Grad>>, String> {
    match (ending, outcome) {
        (Ending::Panic, Err(payload)) if payload.downcast_ref::<FuzzPanic>().is_some() => Ok(None),
        (_, Err(payload)) => Err(format!("the library panicked: {}", panic_message(&payload))),
        (Ending::Panic, Ok(r)) => Err(format!(
            "a panicking closure did not propagate the panic: {:?}",
            r.map(|_| ())
        )),
        (Ending::Err, Ok(Err(e))) if e == Error::shape("closure", "the closure fails halfway") => {
            Ok(None)
        }
        (Ending::Err, Ok(r)) => Err(format!("a failing closure gave {:?}", r.map(|_| ()))),
        (Ending::Ok, Ok(Ok(g))) => Ok(g),
        (Ending::Ok, Ok(Err(e))) => Err(format!("failed: {e}")),
    }
}

// ---------------------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------------------

fn config() -> ProptestConfig {
    let cases = std::env::var("NNX_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    ProptestConfig {
        cases,
        max_shrink_iters: 10_000,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/proptest-regressions/api_fuzz.txt"
            )),
        )),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_api_sequences_match_the_model(ops in prop::collection::vec(op(), 1..30)) {
        run(&ops)?;
    }
}

// ---------------------------------------------------------------------------------------
// Regressions the fuzzer found, spelled out
// ---------------------------------------------------------------------------------------

/// `scan` with a carry `(object, array)`: a Param the body adds to the carried object was
/// taken as the new value of the *array* carry (matched by position), so the call
/// succeeded. The carry's structure changed (an added Variable, a dropped array), which is
/// an error, and nothing may change.
#[test]
fn scan_does_not_take_a_variable_added_to_a_carried_object_for_an_array_carry() {
    let m = Object::new("Root");
    let x = Tensor::ones([2]);
    let f = scan(|args: &[Value]| {
        let Value::Tuple(carry) = &args[0] else {
            return Err(nnx_core::Error::Internal {
                what: "the carry is a tuple".into(),
            });
        };
        let o = carry[0].object()?;
        o.set("a", Param::new(Tensor::full([2], 3.0f32)))?;
        o.var("a")?.update(|t| t + 1.0)?;
        Ok(carry[0].clone())
    })
    .in_axes(Carry)
    .out_axes(Carry)
    .length(2);
    let carry = Value::tuple(vec![Value::from(&m), Value::from(x)]);
    let err = f.call(&Reference, (carry,)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Prefix);
    let message = err.to_string();
    assert!(message.contains("added args[0][0].a"), "{message}");
    assert!(message.contains("removed args[0][1]"), "{message}");
    assert!(m.attribute_names().is_empty());
}

/// A carried object whose body moves a Variable to the path of a raw array and puts a new
/// Variable where it was: matched by path alone, the second iteration read the new
/// Variable's value as the old one's (the old one ended at 4.0 instead of 5.0). The carry
/// was replaced at both paths, which is an error, and nothing may change.
#[test]
fn scan_rejects_a_carry_whose_variables_changed_places() {
    let p = Param::new(Tensor::full([2], 3.0f32));
    let m = Object::new("Root")
        .with("new", &p)
        .unwrap()
        .with("sub", Tensor::zeros([2]))
        .unwrap();
    let f = scan(|args: &[Value]| {
        let o = args[0].object()?;
        let v = o.var("new")?;
        v.update(|t| t + 1.0)?;
        o.set("sub", &v)?;
        o.set("new", Param::new(Tensor::full([2], 3.0f32)))?;
        Ok(args[0].clone())
    })
    .in_axes(Carry)
    .out_axes(Carry)
    .length(2);
    let err = f.call(&Reference, (&m,)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Prefix);
    let message = err.to_string();
    assert!(
        message.contains("replaced the Variable or array at args[0].new, args[0].sub"),
        "{message}"
    );
    assert_eq!(m.attribute_names(), ["new", "sub"]);
    assert!(m.var("new").unwrap().ptr_eq(&p));
    assert_eq!(p.value().to_vec::<f32>().unwrap(), [3.0, 3.0]);
    assert_eq!(m.value("sub").unwrap().to_vec::<f32>().unwrap(), [0.0, 0.0]);
}

/// Updating a carried Variable in place is threaded through every iteration.
#[test]
fn scan_threads_a_carried_variable_through_every_iteration() {
    let p = Param::new(Tensor::full([2], 3.0f32));
    let m = Object::new("Root")
        .with("new", &p)
        .unwrap()
        .with("alias", &p)
        .unwrap();
    let f = scan(|args: &[Value]| {
        args[0].object()?.var("alias")?.update(|t| t + 1.0)?;
        Ok(args[0].clone())
    })
    .in_axes(Carry)
    .out_axes(Carry)
    .length(2);
    f.call(&Reference, (&m,)).unwrap();
    assert_eq!(p.value().to_vec::<f32>().unwrap(), [5.0, 5.0]);
    assert!(m.var("alias").unwrap().ptr_eq(&p));
}

/// An array carry may still be replaced by what the body returns.
#[test]
fn scan_matches_a_returned_array_with_an_array_carry() {
    let f = scan(|args: &[Value]| {
        let c = args[0].as_tensor()?;
        Ok(Value::tuple(vec![
            Value::from((&c + 1.0)?),
            Value::from((&c * 2.0)?),
        ]))
    })
    .in_axes((Carry, None::<i32>))
    .length(3);
    let out = f
        .call(&Reference, (Tensor::zeros([2]), Tensor::zeros([1])))
        .unwrap();
    let Value::Tuple(items) = out else {
        panic!("a (carry, ys) tuple")
    };
    assert_eq!(
        items[0].as_tensor().unwrap().to_vec::<f32>().unwrap(),
        [3.0, 3.0]
    );
    assert_eq!(
        items[1].as_tensor().unwrap().to_vec::<f32>().unwrap(),
        [0.0, 0.0, 2.0, 2.0, 4.0, 4.0]
    );
}

/// A closure that panics inside any transform: the panic propagates, the caller's objects
/// are untouched, a tracer kept from the abandoned trace is reported as escaped, and the
/// library works afterwards.
#[test]
fn a_panicking_closure_leaves_objects_and_the_library_as_they_were() {
    quiet_deliberate_panics();
    let w = Param::new(Tensor::ones([2]));
    let m = Object::new("Root")
        .with("z", Static::from(1i64))
        .unwrap()
        .with("w", &w)
        .unwrap();
    let before = format!("{m}");
    let kept: RefCell<Option<Tensor>> = RefCell::new(None);
    let body = |args: &[Value]| -> Result<Value> {
        let o = args[0].object()?;
        let v = o.var("w")?;
        v.update(|t| t + 1.0)?;
        *kept.borrow_mut() = Some(v.value());
        o.set("new", Param::new(Tensor::zeros([2])))?;
        o.del("z")?;
        std::panic::panic_any(FuzzPanic)
    };
    let calls: Vec<Box<dyn Fn() -> Result<()>>> = vec![
        Box::new(|| jit(body).call(&Reference, (&m,)).map(drop)),
        Box::new(|| vmap(body).call(&Reference, (&m,)).map(drop)),
        Box::new(|| {
            scan(body)
                .in_axes(Carry)
                .out_axes(Carry)
                .length(2)
                .call(&Reference, (&m,))
                .map(drop)
        }),
        Box::new(|| value_and_grad(body).call(&Reference, (&m,)).map(drop)),
        Box::new(|| {
            jit(|a: &[Value]| {
                vmap(body)
                    .in_axes(None::<i32>)
                    .axis_size(2)
                    .call(&Reference, a)
            })
            .call(&Reference, (&m,))
            .map(drop)
        }),
    ];
    for call in calls {
        let payload = catch_unwind(AssertUnwindSafe(call)).unwrap_err();
        assert!(payload.downcast_ref::<FuzzPanic>().is_some());
        assert_eq!(m.attribute_names(), ["z", "w"]);
        assert!(m.var("w").unwrap().ptr_eq(&w));
        assert_eq!(w.value().to_vec::<f32>().unwrap(), [1.0, 1.0]);
        assert_eq!(format!("{m}"), before);
        after_transform(&kept).unwrap();
    }
}

/// A scan that runs no iteration passes its broadcast state through (the result is the
/// input as it came in); the results after it must still be the program's own outputs.
/// They were taken in order instead, so each was its neighbour's value (the derivative
/// property found it: a key carry where a float output belonged).
#[test]
fn a_zero_length_scan_keeps_every_result_in_place() {
    let m = Object::new("M")
        .with("b", Param::new(Tensor::full([2], 5.0f32)))
        .unwrap();
    let run = |engine: &dyn nnx_core::Engine, m: &Object| -> nnx_core::Result<(Tensor, Tensor)> {
        let f = scan(|args: &[Value]| {
            let (m, c, x) = (
                args[0].object()?,
                args[1].as_tensor()?,
                args[2].as_tensor()?,
            );
            m.var("b")?.update(|b| b * 1.0)?;
            Ok(Value::tuple(vec![
                Value::from((&c + &x)?),
                Value::from(x.sum(nnx_core::Axes::All)?),
            ]))
        })
        .in_axes((None::<i32>, Carry, 0))
        .out_axes((Carry, 0));
        let out = f.call(
            engine,
            (&m, &Tensor::full([3], 1.0f32), &Tensor::zeros([0, 3])),
        )?;
        let Value::Tuple(items) = out else {
            unreachable!("(carry, ys)")
        };
        Ok((items[0].as_tensor()?, items[1].as_tensor()?))
    };
    let (carry, ys) = run(&Reference, &m).unwrap();
    assert_eq!(carry.to_vec::<f32>().unwrap(), [1.0, 1.0, 1.0]);
    assert_eq!(ys.shape(), &[0]);
    assert_eq!(m.value("b").unwrap().to_vec::<f32>().unwrap(), [5.0, 5.0]);
    // Recorded into an enclosing trace, the same.
    let outer = jit(|args: &[Value]| {
        let (carry, ys) = run(&Reference, &args[0].object()?)?;
        Ok(Value::tuple(vec![Value::from(carry), Value::from(ys)]))
    })
    .call(&Reference, (&m,))
    .unwrap();
    let Value::Tuple(items) = outer else {
        unreachable!("(carry, ys)")
    };
    assert_eq!(
        items[0].as_tensor().unwrap().to_vec::<f32>().unwrap(),
        [1.0, 1.0, 1.0]
    );
}
