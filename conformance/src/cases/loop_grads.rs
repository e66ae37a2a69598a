//! Gradients of loops and checkpoints: `grad` through `vmap` and `scan` is one vectorised
//! backward pass (program size independent of the number of lanes or iterations), with the
//! gradients of the same loops written out by hand; `remat` recomputes in the backward pass
//! what its policy does not save, with the gradients of the function it checkpoints.

use std::sync::{Arc, Mutex};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use nnx_core::program::{Batching, Primitive, Program, RematPolicy, ScanSpec};
use nnx_core::transforms::{Carry, remat, scan, value_and_grad, vmap};
use nnx_core::{Array, Axes, Engine, Error, Object, Param, Path, Plan, Result, Tensor, Value};

use super::grad::{linear_loss, linear_model};
use crate::{CaseResult, Failure, Outcome, ensure};

/// An engine that hands everything to another and remembers the programs it compiles.
pub(super) struct Recorder<'a> {
    inner: &'a dyn Engine,
    programs: Mutex<Vec<Arc<Program>>>,
}

impl<'a> Recorder<'a> {
    pub(super) fn new(inner: &'a dyn Engine) -> Recorder<'a> {
        Recorder {
            inner,
            programs: Mutex::new(Vec::new()),
        }
    }

    /// The equations `which` selects in the programs compiled so far, nested ones included.
    pub(super) fn count(&self, which: &dyn Fn(&Primitive) -> bool) -> usize {
        (self.programs.lock())
            .map(|p| p.iter().map(|p| count(p, which)).sum())
            .unwrap_or(0)
    }

    /// Every equation of the programs compiled so far, nested ones included.
    pub(super) fn equations(&self) -> usize {
        self.count(&|_| true)
    }

    /// Forgets the programs compiled so far.
    pub(super) fn clear(&self) {
        self.programs.lock().map(|mut p| p.clear()).ok();
    }
}

/// `n` values on a small grid (multiples of `scale` from −5 to 5), repeating.
pub(super) fn ramp(n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) * scale)
        .collect()
}

impl Engine for Recorder<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn compile(&self, program: Arc<Program>) -> Result<Plan> {
        if let Ok(mut programs) = self.programs.lock() {
            programs.push(program.clone());
        }
        self.inner.compile(program)
    }

    fn execute(&self, plan: &Plan, inputs: Vec<Array>) -> Result<Vec<Array>> {
        self.inner.execute(plan, inputs)
    }

    fn run(&self, program: &Program, inputs: &[Array]) -> Result<Vec<Array>> {
        self.inner.run(program, inputs)
    }

    fn run_batched(
        &self,
        program: &Program,
        inputs: &[Array],
        batching: &Batching,
    ) -> Result<Vec<Array>> {
        self.inner.run_batched(program, inputs, batching)
    }

    fn eval_eager(&self, primitive: &Primitive, args: &[Array]) -> Result<Array> {
        self.inner.eval_eager(primitive, args)
    }

    fn run_scan(&self, program: &Program, inputs: &[Array], spec: &ScanSpec) -> Result<Vec<Array>> {
        self.inner.run_scan(program, inputs, spec)
    }
}

/// Equations of a program that `which` selects, counting those of nested programs.
fn count(program: &Program, which: &dyn Fn(&Primitive) -> bool) -> usize {
    program
        .equations
        .iter()
        .map(|eq| {
            usize::from(which(&eq.primitive))
                + match &eq.primitive {
                    Primitive::Call { program }
                    | Primitive::Remat { program, .. }
                    | Primitive::Vmap { program, .. }
                    | Primitive::Scan { program, .. } => count(&program.0, which),
                    _ => 0,
                }
        })
        .sum()
}

/// `grad(vmap(f))` is a program whose size does not depend on the number of lanes: the
/// backward pass of a `vmap` is one `vmap` of the body's backward pass, not one copy of the
/// body per lane (which made its time and size grow with the batch, and its memory with the
/// batch squared). Also nested: `grad(vmap(vmap(f)))`. Values are checked by
/// [`grad_through_vmap`](super::grad::grad_through_vmap) and
/// [`loop_gradients_match_hand_written_loops`].
pub fn grad_of_vmap_does_not_unroll_lanes(engine: &dyn Engine) -> CaseResult {
    let sizes = |batch: usize| -> Result<(usize, usize)> {
        let recorder = Recorder::new(engine);
        let m = linear_model()?;
        let xs = Tensor::from_vec(&[batch, 2, 3], vec![0.25f32; batch * 6])?;
        let ys = Tensor::from_vec(&[batch, 2, 2], vec![0.5f32; batch * 4])?;
        let flat = value_and_grad(|args: &[Value]| {
            let x = args[1].as_tensor()?.index_axis(1, 0)?;
            let y = args[2].as_tensor()?.index_axis(1, 0)?;
            let losses = vmap(linear_loss)
                .in_axes((None::<i32>, 0, 0))
                .call(&recorder, (args[0].clone(), &x, &y))?
                .as_tensor()?;
            Ok(Value::from(losses.mean(Axes::All)?))
        });
        let nested = value_and_grad(|args: &[Value]| {
            let inner = |args: &[Value]| {
                vmap(linear_loss)
                    .in_axes((None::<i32>, 0, 0))
                    .call(&recorder, args)
            };
            let losses = vmap(inner)
                .in_axes((None::<i32>, 0, 0))
                .call(&recorder, args)?
                .as_tensor()?;
            Ok(Value::from(losses.mean(Axes::All)?))
        });
        let args = [Value::from(&m), Value::from(xs), Value::from(ys)];
        let size = |f: &dyn Fn() -> Result<()>| -> Result<usize> {
            recorder.clear();
            f()?;
            Ok(recorder.equations())
        };
        let flat_size = size(&|| flat.call(&recorder, &args).map(drop))?;
        let nested_size = size(&|| nested.call(&recorder, &args).map(drop))?;
        Ok((flat_size, nested_size))
    };
    let (small, large) = (sizes(2)?, sizes(32)?);
    ensure!(
        small.0 > 0 && small == large,
        "equations in grad(vmap) and grad(vmap(vmap)) with 2 lanes {small:?}, with 32 lanes {large:?}"
    );
    Ok(Outcome::Pass)
}

/// The gradient of a matrix applied to every row of a batch of sequences (a dense layer on
/// `[batch, time, features]`, a convolution's kernel on its patches) is one product over
/// all rows, `xᵀ · g` with the leading axes flattened, as JAX's `dot_general` transposes:
/// no product per batch entry summed afterwards. Its value is the sum over rows.
pub fn grad_of_a_matrix_over_batched_rows_is_one_product(engine: &dyn Engine) -> CaseResult {
    let recorder = Recorder::new(engine);
    let w = Tensor::from_vec(&[3, 2], vec![0.5, -0.25, 1.0, 0.75, -0.5, 0.125])?;
    let m = Object::new("Dense").with("w", Param::new(w.clone()))?;
    let x = Tensor::from_vec(&[2, 4, 3], (0..24).map(|i| i as f32 * 0.1 - 1.0).collect())?;
    let out = value_and_grad(|args: &[Value]| {
        let y = args[1]
            .as_tensor()?
            .matmul(&args[0].object()?.value("w")?)?;
        Ok(Value::from(y.tanh()?.sum(Axes::All)?))
    })
    .call(&recorder, (&m, &x))?;
    let products = recorder.count(&|p| matches!(p, Primitive::Matmul));
    let sums = recorder.count(&|p| matches!(p, Primitive::Reduce { .. }));
    ensure!(
        products == 2 && sums == 1,
        "grad of x[2, 4, 3] @ w[3, 2]: {products} products (expected the forward one and one \
         for the gradient) and {sums} reductions (expected only the loss's sum)"
    );
    // By hand: dL/dw[i, j] = Σ_rows x[r, i] · (1 − tanh²(x[r] · w[:, j])).
    let (xs, ws) = (x.to_vec::<f32>()?, w.to_vec::<f32>()?);
    let mut expected = [0.0f32; 6];
    for row in xs.chunks_exact(3) {
        for j in 0..2 {
            let pre: f32 = (0..3).map(|i| row[i] * ws[i * 2 + j]).sum();
            let slope = 1.0 - pre.tanh().powi(2);
            for i in 0..3 {
                expected[i * 2 + j] += row[i] * slope;
            }
        }
    }
    let got = out.grads[0]
        .state()
        .map_err(Failure::from)?
        .variable(&Path::from(["w"]))?
        .value()
        .to_vec::<f32>()?;
    ensure!(
        got.iter()
            .zip(&expected)
            .all(|(g, e)| (g - e).abs() <= 1e-5 * (1.0 + e.abs())),
        "gradient {got:?}, expected {expected:?}"
    );
    Ok(Outcome::Pass)
}

/// `grad(scan(f))` over stacked layers is a program whose size does not depend on the number
/// of iterations (the backward pass is one reverse scan, not one copy of the body per
/// layer), and its gradients equal those of the loop written out by hand.
pub fn grad_of_scan_does_not_unroll_iterations(engine: &dyn Engine) -> CaseResult {
    let width = 3usize;
    let run = |depth: usize| -> Result<(usize, Vec<Tensor>, Vec<Tensor>)> {
        let recorder = Recorder::new(engine);
        let layers = Object::new("Stack")
            .with(
                "w",
                Param::new(Tensor::from_vec(
                    &[depth, width, width],
                    ramp(depth * width * width, 0.08),
                )?),
            )?
            .with(
                "b",
                Param::new(Tensor::from_vec(
                    &[depth, width],
                    ramp(depth * width, 0.05),
                )?),
            )?;
        let x = Tensor::from_vec(&[2, width], ramp(2 * width, 0.3))?;
        let layer = |h: &Tensor, w: &Tensor, b: &Tensor| h.matmul(w)?.add(b)?.tanh();
        let through_scan = value_and_grad(|args: &[Value]| {
            let body = |inner: &[Value]| -> Result<Value> {
                let (h, l) = (inner[0].as_tensor()?, inner[1].object()?);
                let h = layer(&h, &l.value("w")?, &l.value("b")?)?;
                Ok(Value::tuple(vec![Value::from(h), Value::from(())]))
            };
            let out = scan(body)
                .in_axes((Carry, 0))
                .out_axes((Carry, 0))
                .call(&recorder, &[args[1].clone(), args[0].clone()])?;
            let h = match out {
                Value::Tuple(items) => items[0].as_tensor()?,
                other => other.as_tensor()?,
            };
            Ok(Value::from(h.mul(&h)?.mean(Axes::All)?))
        })
        .call(&recorder, &[Value::from(&layers), Value::from(x.clone())])?;
        let size = recorder.equations();
        let unrolled = value_and_grad(|args: &[Value]| {
            let l = args[0].object()?;
            let mut h = args[1].as_tensor()?;
            for d in 0..depth as isize {
                h = layer(
                    &h,
                    &l.value("w")?.index_axis(0, d)?,
                    &l.value("b")?.index_axis(0, d)?,
                )?;
            }
            Ok(Value::from(h.mul(&h)?.mean(Axes::All)?))
        })
        .call(engine, &[Value::from(&layers), Value::from(x)])?;
        let grads = |out: &nnx_core::transforms::GradOutput| -> Result<Vec<Tensor>> {
            let state = out.grads[0].state()?;
            ["w", "b"]
                .iter()
                .map(|name| Ok(state.variable(&Path::from([*name]))?.value()))
                .collect()
        };
        Ok((size, grads(&through_scan)?, grads(&unrolled)?))
    };
    let (small, _, _) = run(2)?;
    let (large, scanned, unrolled) = run(16)?;
    ensure!(
        small > 0 && small == large,
        "equations in grad(scan) over 2 layers: {small}, over 16: {large}"
    );
    for (a, b) in scanned.iter().zip(&unrolled) {
        ensure!(
            a.allclose(b, 1e-5, 1e-6)?,
            "grad through scan {a} vs unrolled {b}"
        );
    }
    Ok(Outcome::Pass)
}

/// Gradients through `vmap` and `scan` — each recorded whole and differentiated as one
/// vectorised backward pass — equal those of the same computation written by hand as a loop
/// over `index_axis` and `stack`: random sizes, mapped and stacked axes, both scan
/// directions, a broadcast weight shared by every lane or iteration.
pub fn loop_gradients_match_hand_written_loops(engine: &dyn Engine) -> CaseResult {
    let strategy = (
        1usize..5,
        1usize..4,
        0usize..2,
        0usize..2,
        any::<bool>(),
        vec(-1.0f32..1.0, 48),
    );
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let fail = |e: Error| TestCaseError::fail(e.to_string());
    let result = runner.run(&strategy, |(n, d, in_axis, out_axis, reverse, r)| {
        let take = |off: usize, shape: &[usize]| -> Result<Tensor> {
            let len = shape.iter().product();
            Tensor::from_vec(shape, (0..len).map(|i| r[(off + i) % r.len()]).collect())
        };
        let across = |axis: usize| if axis == 0 { [n, d] } else { [d, n] };
        let (x, w, h0, cw) = (|| -> Result<_> {
            Ok((
                take(0, &across(in_axis))?,
                take(5, &[d, d])?,
                take(11, &[d])?,
                take(17, &across(out_axis))?,
            ))
        })()
        .map_err(fail)?;
        let (ia, oa) = (in_axis as isize, out_axis as isize);
        let lane = |x: &Tensor, w: &Tensor| -> Result<Tensor> { x.matmul(w)?.tanh()?.mul(x) };
        let step = |h: &Tensor, x: &Tensor, w: &Tensor| -> Result<(Tensor, Tensor)> {
            let h = h.matmul(w)?.add(x)?.tanh()?;
            let y = h.mul(x)?;
            Ok((h, y))
        };
        let weighted = |y: &Tensor| -> Result<Tensor> { y.mul(&cw)?.sum(Axes::All) };
        let arrays = |out: &nnx_core::transforms::GradOutput| -> Result<Vec<Tensor>> {
            out.grads.iter().map(|g| Ok(g.array()?.clone())).collect()
        };
        let compare = |what: &str,
                       a: Result<nnx_core::transforms::GradOutput>,
                       b: Result<nnx_core::transforms::GradOutput>|
         -> std::result::Result<(), TestCaseError> {
            let (a, b) = (a.map_err(fail)?, b.map_err(fail)?);
            let close = |p: &Tensor, q: &Tensor| p.allclose(q, 1e-5, 1e-6).map_err(fail);
            prop_assert!(
                close(&a.value, &b.value)?,
                "{what}: value {} vs {}",
                a.value,
                b.value
            );
            for (k, (p, q)) in arrays(&a)
                .map_err(fail)?
                .iter()
                .zip(&arrays(&b).map_err(fail)?)
                .enumerate()
            {
                prop_assert!(close(p, q)?, "{what}: gradient {k}: {p} vs {q}");
            }
            Ok(())
        };
        let vmapped = value_and_grad(|a: &[Value]| {
            let y =
                vmap(|l: &[Value]| Ok(Value::from(lane(&l[0].as_tensor()?, &l[1].as_tensor()?)?)))
                    .in_axes((in_axis as i32, None::<i32>))
                    .out_axes(out_axis as i32)
                    .call(engine, a)?
                    .as_tensor()?;
            Ok(Value::from(weighted(&y)?))
        })
        .argnums(&[0, 1])
        .call(engine, &[Value::from(x.clone()), Value::from(w.clone())]);
        let by_hand = value_and_grad(|a: &[Value]| {
            let (x, w) = (a[0].as_tensor()?, a[1].as_tensor()?);
            let ys = (0..n as isize)
                .map(|i| lane(&x.index_axis(ia, i)?, &w))
                .collect::<Result<Vec<_>>>()?;
            Ok(Value::from(weighted(&Tensor::stack(&ys, oa)?)?))
        })
        .argnums(&[0, 1])
        .call(engine, &[Value::from(x.clone()), Value::from(w.clone())]);
        compare("vmap", vmapped, by_hand)?;
        let args = [
            Value::from(h0.clone()),
            Value::from(x.clone()),
            Value::from(w.clone()),
        ];
        let scanned = value_and_grad(|a: &[Value]| {
            let body = |l: &[Value]| -> Result<Value> {
                let (h, y) = step(&l[0].as_tensor()?, &l[1].as_tensor()?, &l[2].as_tensor()?)?;
                Ok(Value::tuple(vec![Value::from(h), Value::from(y)]))
            };
            let out = scan(body)
                .in_axes((Carry, in_axis as i32, None::<i32>))
                .out_axes((Carry, out_axis as i32))
                .reverse(reverse)
                .call(engine, a)?;
            let (h, ys) = match out {
                Value::Tuple(items) if items.len() == 2 => {
                    (items[0].as_tensor()?, items[1].as_tensor()?)
                }
                other => {
                    return Err(Error::WrongValueKind {
                        expected: "a (carry, stacked) tuple",
                        found: other.kind_name(),
                    });
                }
            };
            Ok(Value::from(
                h.mul(&h)?.sum(Axes::All)?.add(&weighted(&ys)?)?,
            ))
        })
        .argnums(&[0, 1, 2])
        .call(engine, &args);
        let by_hand = value_and_grad(|a: &[Value]| {
            let (mut h, x, w) = (a[0].as_tensor()?, a[1].as_tensor()?, a[2].as_tensor()?);
            let mut ys: Vec<Option<Tensor>> = vec![None; n];
            let order: Vec<usize> = match reverse {
                true => (0..n).rev().collect(),
                false => (0..n).collect(),
            };
            for t in order {
                let (next, y) = step(&h, &x.index_axis(ia, t as isize)?, &w)?;
                h = next;
                ys[t] = Some(y);
            }
            let ys: Vec<Tensor> = ys.into_iter().flatten().collect();
            Ok(Value::from(
                h.mul(&h)?
                    .sum(Axes::All)?
                    .add(&weighted(&Tensor::stack(&ys, oa)?)?)?,
            ))
        })
        .argnums(&[0, 1, 2])
        .call(engine, &args);
        compare("scan", scanned, by_hand)
    });
    result
        .map(|_| Outcome::Pass)
        .map_err(|e| Failure(format!("{e}")))
}

/// `remat`: gradients through a checkpointed function equal those through the function
/// itself (alone and as `scan`'s body), state updates made inside propagate out as with
/// `jit`, and the backward pass recomputes what the policy does not save: with
/// `NothingSaveable` both products of a two-layer block run again, with `DotsSaveable` none.
pub fn remat_recomputes_in_the_backward_pass(engine: &dyn Engine) -> CaseResult {
    let values = |n: usize, scale: f32| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 5 % 13) as f32 - 6.0) * scale)
            .collect()
    };
    let model = || -> Result<Object> {
        Object::new("Block")
            .with(
                "w1",
                Param::new(Tensor::from_vec(&[3, 4], values(12, 0.1))?),
            )?
            .with(
                "w2",
                Param::new(Tensor::from_vec(&[4, 3], values(12, 0.07))?),
            )?
            .with("calls", super::guide::Count::new(Tensor::scalar(0i32)))
    };
    let block = |args: &[Value]| -> Result<Value> {
        let m = args[0].object()?;
        m.set("calls", m.value("calls")?.add(&Tensor::from(1))?)?;
        let h = args[1].as_tensor()?.matmul(&m.value("w1")?)?.tanh()?;
        Ok(Value::from(h.matmul(&m.value("w2")?)?.tanh()?))
    };
    let x = Tensor::from_vec(&[2, 3], values(6, 0.2))?;
    // (loss, gradients, calls counted, matmuls in the compiled gradient program)
    let run = |policy: Option<RematPolicy>| -> Result<(Tensor, Vec<Tensor>, i32, usize)> {
        let recorder = Recorder::new(engine);
        let checkpointed = policy.map(|p| remat(block).policy(p));
        let m = model()?;
        let out = value_and_grad(|args: &[Value]| {
            let y = match &checkpointed {
                Some(f) => f.call(&recorder, args)?,
                None => block(args)?,
            }
            .as_tensor()?;
            Ok(Value::from(y.mul(&y)?.sum(Axes::All)?))
        })
        .call(&recorder, &[Value::from(&m), Value::from(x.clone())])?;
        let state = out.grads[0].state()?;
        let grads = ["w1", "w2"]
            .iter()
            .map(|n| Ok(state.variable(&Path::from([*n]))?.value()))
            .collect::<Result<Vec<_>>>()?;
        let products = recorder.count(&|q| *q == Primitive::Matmul);
        let calls = m.value("calls")?.item::<i32>()?;
        Ok((out.value, grads, calls, products))
    };
    let plain = run(None)?;
    for (policy, extra) in [
        (RematPolicy::NothingSaveable, 2),
        (RematPolicy::DotsSaveable, 0),
    ] {
        let (value, grads, calls, products) = run(Some(policy))?;
        ensure!(
            value.allclose(&plain.0, 1e-6, 1e-6)?,
            "{policy:?}: loss {value} vs {}",
            plain.0
        );
        for (a, b) in grads.iter().zip(&plain.1) {
            ensure!(
                a.allclose(b, 1e-6, 1e-6)?,
                "{policy:?}: gradient {a} vs {b}"
            );
        }
        ensure!(
            calls == 1,
            "{policy:?}: the state update inside counted {calls}"
        );
        ensure!(
            products == plain.3 + extra,
            "{policy:?}: {products} products in the gradient program, {} without remat",
            plain.3
        );
    }
    // As `scan`'s body: the same gradients as the plain body.
    let stacked = Object::new("Stack").with(
        "w",
        Param::new(Tensor::from_vec(&[3, 3, 3], values(27, 0.1))?),
    )?;
    let through = |checkpoint: bool| -> Result<Tensor> {
        let layer = |args: &[Value]| -> Result<Value> {
            let (h, l) = (args[0].as_tensor()?, args[1].object()?);
            let h = h.matmul(&l.value("w")?)?.tanh()?;
            Ok(Value::tuple(vec![Value::from(h), Value::from(())]))
        };
        let out = value_and_grad(|args: &[Value]| {
            let body = |inner: &[Value]| match checkpoint {
                true => remat(layer).call(engine, inner),
                false => layer(inner),
            };
            let out = scan(body)
                .in_axes((Carry, 0))
                .out_axes((Carry, 0))
                .call(engine, &[args[1].clone(), args[0].clone()])?;
            let h = match out {
                Value::Tuple(items) => items[0].as_tensor()?,
                other => other.as_tensor()?,
            };
            Ok(Value::from(h.mul(&h)?.sum(Axes::All)?))
        })
        .call(engine, &[Value::from(&stacked), Value::from(x.clone())])?;
        Ok(out.grads[0].state()?.variable(&Path::from(["w"]))?.value())
    };
    let (a, b) = (through(true)?, through(false)?);
    ensure!(a.allclose(&b, 1e-6, 1e-6)?, "scan(remat): {a} vs {b}");
    Ok(Outcome::Pass)
}
