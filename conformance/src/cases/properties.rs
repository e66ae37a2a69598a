//! Property cases: proptest runs inside a case, so every engine is checked on random
//! programs, axis specs and graphs.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use nnx_core::graph::{self, Leaf};
use nnx_core::transforms::{jit, vmap};
use nnx_core::{Axes, DType, Engine, Object, Param, Result, Tensor, Value};

use super::guide::Count;
use crate::graphs::graph_blueprint;
use crate::{CaseResult, Failure, Outcome};

const CASES: u32 = 48;

/// One step of a random program over a single array.
#[derive(Clone, Debug)]
enum Step {
    AddScalar(f32),
    MulScalar(f32),
    Tanh,
    Square,
    Relu,
    /// `x @ W` with a fixed `W` of shape `[last, 3]`.
    Matmul,
    /// `x - mean(x, axis=-1, keepdims=True)`.
    Center,
    /// Sum over the last axis.
    SumLast,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (-2.0f32..2.0).prop_map(Step::AddScalar),
        (-2.0f32..2.0).prop_map(Step::MulScalar),
        Just(Step::Tanh),
        Just(Step::Square),
        Just(Step::Relu),
        Just(Step::Matmul),
        Just(Step::Center),
        Just(Step::SumLast),
    ]
}

/// Applies a random program to one array, as user code would.
fn apply(steps: &[Step], x: &Tensor) -> Result<Tensor> {
    let mut x = x.clone();
    for s in steps {
        x = match s {
            Step::AddScalar(c) => (&x + *c)?,
            Step::MulScalar(c) => (&x * *c)?,
            Step::Tanh => x.tanh()?,
            Step::Square => x.mul(&x)?,
            Step::Relu => x.relu()?,
            Step::Matmul if x.ndim() >= 1 => {
                let last = x.shape()[x.ndim() - 1];
                let w = (Tensor::arange(last * 3)
                    .reshape(&[last as isize, 3])?
                    .astype(DType::F32)?
                    * 0.1)?;
                x.matmul(&w)?
            }
            Step::Center if x.ndim() >= 1 => {
                let mean = x.reduce(nnx_core::tensor::ReduceOp::Mean, -1isize, true)?;
                x.sub(&mean)?
            }
            Step::SumLast if x.ndim() >= 1 => x.sum(-1isize)?,
            _ => x,
        };
    }
    Ok(x)
}

fn array(shape: &[usize], values: &[f32]) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    Tensor::from_vec(shape, values.iter().cycle().take(n).copied().collect())
}

fn run<T: std::fmt::Debug>(
    name: &str,
    f: impl FnMut(&mut TestRunner) -> std::result::Result<(), proptest::test_runner::TestError<T>>,
) -> CaseResult {
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let mut f = f;
    match f(&mut runner) {
        Ok(()) => Ok(Outcome::Pass),
        Err(e) => Err(Failure(format!("{name}: {e}"))),
    }
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// `vmap(f, in_axes=k, out_axes=j)(x)` equals stacking `f(x[i])` along `j`, for random
/// programs `f`, shapes and axes.
pub fn vmap_matches_the_per_example_loop(engine: &dyn Engine) -> CaseResult {
    let strategy = (
        vec(1usize..4, 1..3),
        1usize..4,
        any::<prop::sample::Index>(),
        any::<bool>(),
        vec(step(), 1..5),
        vec(-1.0f32..1.0, 16),
    );
    run("vmap_matches_the_per_example_loop", |runner| {
        runner.run(
            &strategy,
            |(inner, batch, in_pick, out_last, steps, values)| {
                let k = in_pick.index(inner.len() + 1);
                let mut shape = inner.clone();
                shape.insert(k, batch);
                let x = array(&shape, &values).map_err(fail)?;
                let out_axis: i32 = if out_last { -1 } else { 0 };
                let got =
                    vmap(|args: &[Value]| Ok(Value::from(apply(&steps, &args[0].as_tensor()?)?)))
                        .in_axes(k as i32)
                        .out_axes(out_axis)
                        .call(engine, &[Value::from(x.clone())])
                        .and_then(|v| v.as_tensor())
                        .map_err(fail)?;
                let lanes = (0..batch)
                    .map(|i| apply(&steps, &x.index_axis(k as isize, i as isize)?))
                    .collect::<Result<Vec<_>>>()
                    .map_err(fail)?;
                let expected = Tensor::stack(&lanes, out_axis as isize).map_err(fail)?;
                let close = got.allclose(&expected, 1e-5, 1e-5).map_err(fail)?;
                prop_assert!(
                    close,
                    "steps {steps:?} in_axes={k} out_axes={out_axis}: got {got} expected {expected}"
                );
                Ok(())
            },
        )
    })
}

/// `shard_map` over a mesh of 1–3 devices, rows split over them, of a random row-wise
/// program equals the program on the whole array; a `psum` of each device's total equals
/// the whole total, and an `all_gather` of the blocks is the whole result.
pub fn shard_map_matches_the_unsharded_program(engine: &dyn Engine) -> CaseResult {
    use nnx_core::shard::{Mesh, PartitionSpec, all_gather, psum};
    use nnx_core::transforms::shard_map;
    let strategy = (
        1usize..4,
        1usize..3,
        1usize..4,
        vec(step(), 1..5),
        vec(-1.0f32..1.0, 16),
    );
    run("shard_map_matches_the_unsharded_program", |runner| {
        runner.run(&strategy, |(devices, rows, d, steps, values)| {
            // Every step but a sum over the last axis acts row by row.
            let steps: Vec<Step> = (steps.into_iter())
                .filter(|s| !matches!(s, Step::SumLast))
                .collect();
            let x = array(&[devices * rows, d], &values).map_err(fail)?;
            let mesh = Mesh::new([("data", devices)]).map_err(fail)?;
            let split = PartitionSpec::new([Some("data")]);
            let expected = apply(&steps, &x).map_err(fail)?;
            let blocks = shard_map(|b: &Tensor| apply(&steps, b), &mesh)
                .in_specs((split.clone(),))
                .out_specs(split.clone())
                .call(engine, (&x,))
                .map_err(fail)?;
            let total = shard_map(
                |b: &Tensor| psum(&apply(&steps, b)?.sum(Axes::All)?, "data"),
                &mesh,
            )
            .in_specs((split.clone(),))
            .call(engine, (&x,))
            .map_err(fail)?;
            let gathered = shard_map(
                |b: &Tensor| all_gather(&apply(&steps, b)?, "data", 0, true),
                &mesh,
            )
            .in_specs((split,))
            .call(engine, (&x,))
            .map_err(fail)?;
            let whole_total = expected.sum(Axes::All).map_err(fail)?;
            let ok = blocks.allclose(&expected, 1e-5, 1e-5).map_err(fail)?
                && gathered.allclose(&expected, 1e-5, 1e-5).map_err(fail)?
                && total.allclose(&whole_total, 1e-4, 1e-4).map_err(fail)?;
            prop_assert!(
                ok,
                "steps {steps:?} on {devices} devices: {blocks} / {gathered} / {total}; \
                 expected {expected} / {whole_total}"
            );
            Ok(())
        })
    })
}

/// `jit(f)` gives `f`'s outputs and state changes, call after call.
pub fn jit_matches_eager_results_and_state(engine: &dyn Engine) -> CaseResult {
    let strategy = (
        1usize..5,
        vec(step(), 1..5),
        vec(-1.0f32..1.0, 8),
        1usize..4,
    );
    run("jit_matches_eager_results_and_state", |runner| {
        runner.run(&strategy, |(d, steps, values, calls)| {
            let body = |args: &[Value]| -> Result<Value> {
                let m = args[0].object()?;
                m.var("count")?.update(|c| c + 1)?;
                let y = apply(&steps, &m.value("w")?)?;
                m.var("w")?
                    .update(|w| (w * 0.5)?.add(&args[1].as_tensor()?))?;
                Ok(Value::from(y.sum(Axes::All)?))
            };
            let make = || -> Result<Object> {
                Object::new("M")
                    .with("w", Param::new(array(&[d], &values)?))?
                    .with("count", Count::new(Tensor::scalar(0i32)))
            };
            let (eager_m, jit_m) = (make().map_err(fail)?, make().map_err(fail)?);
            let x = array(&[d], &values[1..]).map_err(fail)?;
            let compiled = jit(body);
            for _ in 0..calls {
                let a = body(&[Value::from(&eager_m), Value::from(x.clone())])
                    .and_then(|v| v.as_tensor())
                    .map_err(fail)?;
                let b = compiled
                    .call(engine, &[Value::from(&jit_m), Value::from(x.clone())])
                    .and_then(|v| v.as_tensor())
                    .map_err(fail)?;
                prop_assert!(
                    a.allclose(&b, 1e-5, 1e-5).map_err(fail)?,
                    "outputs {a} vs {b}"
                );
            }
            let (ew, jw) = (
                eager_m.value("w").map_err(fail)?,
                jit_m.value("w").map_err(fail)?,
            );
            prop_assert!(
                ew.allclose(&jw, 1e-5, 1e-5).map_err(fail)?,
                "state {ew} vs {jw}"
            );
            prop_assert_eq!(
                jit_m
                    .value("count")
                    .map_err(fail)?
                    .item::<i32>()
                    .map_err(fail)?,
                calls as i32
            );
            prop_assert_eq!(compiled.trace_count(), 1);
            Ok(())
        })
    })
}

/// A random graph passed as two arguments (the whole graph and one of its children) is one
/// graph inside: updating every Variable once reaches every alias outside, once.
pub fn shared_variables_update_every_alias(engine: &dyn Engine) -> CaseResult {
    run("shared_variables_update_every_alias", |runner| {
        runner.run(&graph_blueprint(), |bp| {
            let g = bp.build();
            let before: Vec<(nnx_core::Path, Tensor)> = graph::state(&g)
                .iter()
                .filter_map(|(p, l)| l.as_variable().map(|v| (p.clone(), v.value())))
                .collect();
            let second = g
                .attributes()
                .into_iter()
                .map(|(_, v)| v)
                .find(|v| matches!(v, Value::Object(_) | Value::List(_) | Value::Dict(_)))
                .unwrap_or_else(|| Value::from(()));
            jit(|args: &[Value]| {
                for (_, leaf) in &graph::state(&args[0]) {
                    if let Leaf::Variable(v) = leaf {
                        v.update(|t| t + 1)?;
                    }
                }
                Ok(Value::from(()))
            })
            .call(engine, &[Value::from(&g), second])
            .map_err(fail)?;
            let after = graph::state(&g);
            for (path, old) in before {
                let new = after.variable(&path).map_err(fail)?.value();
                let expected = (&old + 1).map_err(fail)?;
                prop_assert!(
                    new.identical(&expected),
                    "{path}: {new} expected {expected}"
                );
            }
            Ok(())
        })
    })
}
