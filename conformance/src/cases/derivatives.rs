//! Forward mode, Jacobians and higher derivatives: `jvp` with NNX arguments, `jacfwd` and
//! `jacrev`, Hessians, Hessian-vector products and `grad` of `grad`, each against derivatives
//! worked out by hand; `jvp` of loops as loops; and, on generated programs, three ways of
//! taking one directional derivative — forward mode, reverse mode and central finite
//! differences on a float64 evaluation of the same program — that must agree.

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

use nnx_core::program::{TracedFunction, trace_fn};
use nnx_core::transforms::{
    Carry, DiffState, Tangent, grad, jacfwd, jacrev, jvp, scan, value_and_grad, vmap,
};
use nnx_core::{
    Axes, DType, Engine, Error, ErrorKind, Filter, Object, Param, Path, Result, State, Tensor,
    Value, VariableType, graph,
};

use super::guide::Count;
use super::loop_grads::{Recorder, ramp};
use crate::oracle::{Oracle, Value64};
use crate::programs::{ProgramCase, Shapes, program_case, with_smooth_products};
use crate::{CaseResult, Failure, Outcome, ensure};

fn vector(values: &[f32]) -> Tensor {
    Tensor::from_slice(values)
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
}

/// `jvp` of a function of a model and an array: the tangent of every output along tangents
/// given as a State (Variables it leaves out have a zero tangent) and an array, state
/// updates propagated out, one trace per structure, and errors for tangents that do not fit.
pub fn jvp_pushes_tangents_through_objects_and_arrays(engine: &dyn Engine) -> CaseResult {
    let m = Object::new("Model")
        .with("w", Param::new(vector(&[0.5, -1.5])))?
        .with("b", Param::new(Tensor::scalar(0.25f32)))?
        .with("count", Count::new(Tensor::scalar(0i32)))?;
    let (w, x) = ([0.5f32, -1.5], [2.0f32, 0.4]);
    let (vw, vx) = ([1.0f32, 0.0], [0.5f32, -1.0]);
    let f = jvp(|args: &[Value]| {
        let m = args[0].object()?;
        m.var("count")?.update(|c| c + 1)?;
        let wx = m.value("w")?.mul(&args[1].as_tensor()?)?;
        let y = wx.tanh()?.sum(Axes::All)?.add(&m.value("b")?)?;
        Ok(Value::tuple(vec![Value::from(y), Value::from(wx)]))
    })
    .argnums(&[0, 1]);
    let tangents_for = |scale: f32| -> Result<[Tangent; 2]> {
        let mut state = State::new();
        let vw = vector(&vw).mul(&Tensor::scalar(scale))?;
        state.insert(Path::from(["w"]), nnx_core::graph::Leaf::Array(vw));
        let vx = vector(&vx).mul(&Tensor::scalar(scale))?;
        Ok([Tangent::State(state), Tangent::Array(vx)])
    };
    // The second call (a cached trace, on the same objects) with other tangents.
    for call in 1..=2 {
        let scale = call as f32;
        let out = f.call(engine, (&m, vector(&x)), &tangents_for(scale)?)?;
        let (Value::Tuple(values), Value::Tuple(tangent)) = (&out.value, &out.tangent) else {
            return Err(Failure(format!("jvp's output {:?}", out.tangent)));
        };
        ensure!(values.len() == 2 && tangent.len() == 2, "two outputs");
        let dwx: Vec<f32> = (0..2)
            .map(|i| scale * (vw[i] * x[i] + w[i] * vx[i]))
            .collect();
        let dy: f32 = (0..2)
            .map(|i| (1.0 - (w[i] * x[i]).tanh().powi(2)) * dwx[i])
            .sum();
        let got_dy = tangent[0].as_tensor()?.item::<f32>()?;
        let got_dwx = tangent[1].as_tensor()?.to_vec::<f32>()?;
        ensure!(close(&[got_dy], &[dy], 1e-5), "dy {got_dy} vs {dy}");
        ensure!(close(&got_dwx, &dwx, 1e-6), "d(wx) {got_dwx:?} vs {dwx:?}");
        ensure!(
            m.value("count")?.item::<i32>()? == call,
            "the count did not propagate"
        );
    }
    let tangents = tangents_for(1.0)?;
    ensure!(f.trace_count() == 1, "traced {} times", f.trace_count());
    let kind = |r: Result<nnx_core::transforms::JvpOutput>| r.err().map(|e| e.kind());
    ensure!(
        kind(f.call(engine, (&m, vector(&x)), &tangents[..1])) == Some(ErrorKind::Value),
        "one tangent for two arguments must fail"
    );
    let wrong_shape = [tangents[0].clone(), Tangent::Array(vector(&[1.0]))];
    let err = f
        .call(engine, (&m, vector(&x)), &wrong_shape)
        .err()
        .ok_or_else(|| Failure("a tangent of the wrong shape must fail".into()))?;
    ensure!(
        err.kind() == ErrorKind::Shape && err.to_string().contains("args[1]"),
        "{err}"
    );
    let err = jvp(|args: &[Value]| Ok(args[0].clone()))
        .argnums(&[0])
        .call(
            engine,
            (Tensor::scalar(1i32),),
            &[Tangent::Array(Tensor::scalar(1.0f32))],
        )
        .err()
        .ok_or_else(|| Failure("jvp of an integer argument must fail".into()))?;
    ensure!(err.kind() == ErrorKind::DType, "{err}");
    let returns_model = jvp(|_: &[Value]| {
        Object::new("Out")
            .with("p", Param::new(vector(&[1.0])))
            .map(Value::from)
    });
    let err = returns_model
        .call(engine, (&m,), &[Tangent::State(State::new())])
        .err()
        .ok_or_else(|| Failure("a module as jvp's output must fail".into()))?;
    ensure!(err.to_string().contains("output of jvp"), "{err}");
    ensure!(
        m.value("count")?.item::<i32>()? == 2,
        "a failed jvp changed the model"
    );
    Ok(Outcome::Pass)
}

/// `jacfwd` and `jacrev` (with respect to arrays and to a model's Params), the Hessian as
/// A `scan` of length 0 returns its carries untouched, so their tangents pass through
/// even when the body would overwrite them, inside a `vmap` too (a generated program
/// found forward mode dropping them there).
pub fn jvp_of_an_empty_scan_passes_carries_through(engine: &dyn Engine) -> CaseResult {
    let f = jvp(|x: &Tensor| {
        vmap(|row: &Tensor| {
            scan(|c: &Tensor| Tensor::try_ones(c.shape()))
                .in_axes(Carry)
                .out_axes(Carry)
                .length(0)
                .call(engine, (row,))
        })
        .call(engine, (x,))
    })
    .argnums(&[0]);
    let x = Tensor::from_vec(&[2, 2], vec![1.0f32, 2.0, 3.0, 4.0])?;
    let v = Tensor::from_vec(&[2, 2], vec![0.5f32, -1.0, 2.0, 0.25])?;
    let out = f.call(engine, (&x,), &[Tangent::Array(v.clone())])?;
    ensure!(
        out.value.as_tensor()?.to_vec::<f32>()? == x.to_vec::<f32>()?,
        "the carry changed"
    );
    let tangent = out.tangent.as_tensor()?.to_vec::<f32>()?;
    ensure!(
        tangent == v.to_vec::<f32>()?,
        "the carry's tangent {tangent:?} did not pass through"
    );
    Ok(Outcome::Pass)
}

/// `jacfwd(jacrev)`, Hessian-vector products as `jvp(grad)` and as `grad` of a `jvp`,
/// second derivatives as `grad(grad)`, and JAX's derivatives at ties.
pub fn jacobians_and_second_derivatives(engine: &dyn Engine) -> CaseResult {
    let x = [0.3f32, -0.7];
    // f(x) = [sin(x0) x1, x0² + x1³, exp(x0)]
    let f = |args: &[Value]| -> Result<Value> {
        let x = args[0].as_tensor()?;
        let (a, b) = (x.index_axis(0, 0)?, x.index_axis(0, 1)?);
        let parts = [
            a.sin()?.mul(&b)?,
            a.mul(&a)?.add(&b.mul(&b)?.mul(&b)?)?,
            a.exp()?,
        ];
        Ok(Value::from(Tensor::stack(&parts, 0)?))
    };
    let want = [
        x[0].cos() * x[1],
        x[0].sin(),
        2.0 * x[0],
        3.0 * x[1] * x[1],
        x[0].exp(),
        0.0,
    ];
    for (name, jac) in [("jacfwd", jacfwd(f)), ("jacrev", jacrev(f))] {
        let out = jac.argnums(&[0]).call(engine, (vector(&x),))?;
        let j = out.grads[0].array()?;
        ensure!(j.shape() == [3, 2], "{name} shape {:?}", j.shape());
        ensure!(
            close(&j.to_vec::<f32>()?, &want, 1e-5),
            "{name} {:?} vs {want:?}",
            j.to_vec::<f32>()?
        );
    }
    // With respect to a model's Params: each leaf has the output's shape, then its own.
    let m = Object::new("Linear")
        .with(
            "w",
            Param::new(Tensor::from_vec(
                &[2, 3],
                vec![0.1f32, 0.2, 0.3, -0.1, 0.5, 0.7],
            )?),
        )?
        .with("b", Param::new(vector(&[0.0, 1.0, -1.0])))?;
    let linear = |args: &[Value]| -> Result<Value> {
        let m = args[0].object()?;
        let y = args[1]
            .as_tensor()?
            .matmul(&m.value("w")?)?
            .add(&m.value("b")?)?;
        Ok(Value::from(y.tanh()?))
    };
    let xin = vector(&[1.0, -2.0]);
    let fwd = jacfwd(linear).call(engine, (&m, xin.clone()))?;
    let rev = jacrev(linear).call(engine, (&m, xin.clone()))?;
    for path in [["w"], ["b"]] {
        let (a, b) = (
            fwd.grads[0].state()?.variable(&Path::from(path))?.value(),
            rev.grads[0].state()?.variable(&Path::from(path))?.value(),
        );
        let param = m.value(path[0])?;
        let shape: Vec<usize> = [3].iter().chain(param.shape()).copied().collect();
        ensure!(a.shape() == shape, "jacfwd {path:?} shape {:?}", a.shape());
        ensure!(
            close(&a.to_vec::<f32>()?, &b.to_vec::<f32>()?, 1e-5),
            "jacfwd and jacrev disagree on {path:?}"
        );
    }
    // g(x) = Σ x³ + x0 x1: ∇g = 3x² + (x1, x0), H = diag(6x) + [[0, 1], [1, 0]].
    let g = |args: &[Value]| -> Result<Value> {
        let x = args[0].as_tensor()?;
        let cubes = x.mul(&x)?.mul(&x)?.sum(Axes::All)?;
        let cross = x.index_axis(0, 0)?.mul(&x.index_axis(0, 1)?)?;
        Ok(Value::from(cubes.add(&cross)?))
    };
    let hessian = [6.0 * x[0], 1.0, 1.0, 6.0 * x[1]];
    let gradient = |args: &[Value]| -> Result<Value> {
        let out = jacrev(g).argnums(&[0]).call(engine, args)?;
        Ok(Value::from(out.grads[0].array()?.clone()))
    };
    let h = jacfwd(gradient).argnums(&[0]).call(engine, (vector(&x),))?;
    let h = h.grads[0].array()?.to_vec::<f32>()?;
    ensure!(close(&h, &hessian, 1e-5), "hessian {h:?} vs {hessian:?}");
    let v = [1.0f32, -2.0];
    let hv = [
        hessian[0] * v[0] + hessian[1] * v[1],
        hessian[2] * v[0] + hessian[3] * v[1],
    ];
    let grad_g = |args: &[Value]| -> Result<Value> {
        let out = grad(g).argnums(&[0]).call(engine, args)?;
        Ok(Value::from(out.grads[0].array()?.clone()))
    };
    let forward_over_reverse =
        jvp(grad_g)
            .argnums(&[0])
            .call(engine, (vector(&x),), &[Tangent::Array(vector(&v))])?;
    let got = forward_over_reverse.tangent.as_tensor()?.to_vec::<f32>()?;
    ensure!(close(&got, &hv, 1e-5), "jvp(grad) {got:?} vs {hv:?}");
    let directional = |args: &[Value]| -> Result<Value> {
        let out = jvp(g)
            .argnums(&[0])
            .call(engine, args, &[Tangent::Array(vector(&v))])?;
        Ok(out.tangent)
    };
    let reverse_over_forward = grad(directional)
        .argnums(&[0])
        .call(engine, (vector(&x),))?;
    let got = reverse_over_forward.grads[0].array()?.to_vec::<f32>()?;
    ensure!(close(&got, &hv, 1e-5), "grad(jvp) {got:?} vs {hv:?}");
    // h(t) = t sin t: h'' = 2 cos t − t sin t.
    let t = 0.8f32;
    let first = |args: &[Value]| -> Result<Value> {
        let inner = grad(|a: &[Value]| {
            let t = a[0].as_tensor()?;
            Ok(Value::from(t.mul(&t.sin()?)?))
        })
        .argnums(&[0])
        .call(engine, args)?;
        Ok(Value::from(inner.grads[0].array()?.clone()))
    };
    let second = grad(first)
        .argnums(&[0])
        .call(engine, (Tensor::scalar(t),))?;
    let got = second.grads[0].array()?.item::<f32>()?;
    let want = 2.0 * t.cos() - t * t.sin();
    ensure!(close(&[got], &[want], 1e-5), "grad(grad) {got} vs {want}");
    // Ties, as in JAX: relu's derivative is 0 at 0 (jax.nn.relu), maximum's is ½ per
    // operand (jnp.maximum), |x|'s is 1 at 0.
    let at = vector(&[0.0, 1.0, -1.0]);
    let relu = grad(|a: &[Value]| Ok(Value::from(a[0].as_tensor()?.relu()?.sum(Axes::All)?)))
        .argnums(&[0])
        .call(engine, (at.clone(),))?;
    let tie = grad(|a: &[Value]| {
        let (p, q) = (a[0].as_tensor()?, a[1].as_tensor()?);
        Ok(Value::from(p.maximum(&q)?.sum(Axes::All)?))
    })
    .argnums(&[0, 1])
    .call(engine, (at.clone(), at.clone()))?;
    let abs = grad(|a: &[Value]| {
        let x = a[0].as_tensor()?;
        Ok(Value::from(
            x.unary(nnx_core::tensor::elementwise::UnaryOp::Abs)?
                .sum(Axes::All)?,
        ))
    })
    .argnums(&[0])
    .call(engine, (at,))?;
    let got = |g: &nnx_core::transforms::Grad| g.array().and_then(|t| t.to_vec::<f32>());
    ensure!(got(&relu.grads[0])? == [0.0, 1.0, 0.0], "relu at ties");
    ensure!(
        got(&tie.grads[0])? == [0.5; 3] && got(&tie.grads[1])? == [0.5; 3],
        "maximum at ties"
    );
    ensure!(got(&abs.grads[0])? == [1.0, 1.0, -1.0], "|x| at 0");
    let err = jacrev(|a: &[Value]| Ok(Value::from(a[0].as_tensor()?.astype(DType::I32)?)))
        .argnums(&[0])
        .call(engine, (vector(&x),))
        .err()
        .ok_or_else(|| Failure("jacrev of an integer output must fail".into()))?;
    ensure!(
        err.to_string().contains("jacrev requires a float32"),
        "{err}"
    );
    Ok(Outcome::Pass)
}

/// `jvp` of `vmap` and of `scan` is a program whose size does not depend on the number of
/// lanes or iterations (the tangent of a loop is carried by the same loop), with the
/// tangents of the loop written out by hand.
pub fn jvp_of_loops_does_not_unroll(engine: &dyn Engine) -> CaseResult {
    let width = 3usize;
    let run = |depth: usize| -> Result<(usize, Vec<f32>, Vec<f32>)> {
        let recorder = Recorder::new(engine);
        let layers = Object::new("Stack").with(
            "w",
            Param::new(Tensor::from_vec(
                &[depth, width, width],
                ramp(depth * width * width, 0.08),
            )?),
        )?;
        let x = Tensor::from_vec(&[2, width], ramp(2 * width, 0.3))?;
        let tangent_w =
            Tensor::from_vec(&[depth, width, width], ramp(depth * width * width, 0.01))?;
        let mut tangent = State::new();
        tangent.insert(Path::from(["w"]), nnx_core::graph::Leaf::Array(tangent_w));
        let through_loops = jvp(|args: &[Value]| {
            let body = |inner: &[Value]| -> Result<Value> {
                let (h, l) = (inner[0].as_tensor()?, inner[1].object()?);
                let h = h.matmul(&l.value("w")?)?.tanh()?;
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
            // Each row of h through one more vmapped layer (the first layer's weights).
            let w0 = args[0].object()?.value("w")?.index_axis(0, 0)?;
            let rows = vmap(|a: &[Value]| {
                Ok(Value::from(
                    a[0].as_tensor()?.matmul(&a[1].as_tensor()?)?.sin()?,
                ))
            })
            .in_axes((0, None::<i32>))
            .call(&recorder, (&h, &w0))?
            .as_tensor()?;
            Ok(Value::from(rows))
        })
        .call(
            &recorder,
            (&layers, x.clone()),
            &[Tangent::State(tangent.clone())],
        )?;
        let size = recorder.equations();
        let unrolled = jvp(|args: &[Value]| {
            let w = args[0].object()?.value("w")?;
            let mut h = args[1].as_tensor()?;
            for l in 0..depth {
                h = h.matmul(&w.index_axis(0, l as isize)?)?.tanh()?;
            }
            Ok(Value::from(h.matmul(&w.index_axis(0, 0)?)?.sin()?))
        })
        .call(engine, (&layers, x), &[Tangent::State(tangent)])?;
        Ok((
            size,
            through_loops.tangent.as_tensor()?.to_vec::<f32>()?,
            unrolled.tangent.as_tensor()?.to_vec::<f32>()?,
        ))
    };
    let (short, long) = (run(2)?, run(16)?);
    ensure!(
        short.0 > 0 && short.0 == long.0,
        "equations in jvp(scan, vmap): {} with 2 layers, {} with 16",
        short.0,
        long.0
    );
    for (depth, (_, looped, unrolled)) in [(2, &short), (16, &long)] {
        ensure!(
            close(looped, unrolled, 1e-5),
            "{depth} layers: loop tangents {looped:?} vs unrolled {unrolled:?}"
        );
    }
    Ok(Outcome::Pass)
}

/// How many generated programs [`generated_derivatives_agree`] checks (`NNX_DERIVATIVE_CASES`,
/// default 256).
fn derivative_cases() -> u32 {
    std::env::var("NNX_DERIVATIVE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// What one generated program gave.
enum Verdict {
    /// The three derivatives agree.
    Agree,
    /// Not a test of derivatives, and why: the program fails, is not finite, or is not
    /// smooth at the point (the finite differences at two step sizes disagree).
    Skip(&'static str),
}

/// On generated programs (every primitive, nested `vmap`, `scan`, `jit`, `grad`; matrix
/// products not snapped, so gradients flow through them), the derivative of
/// `s(θ) = ⟨f(θ), u⟩` along a direction `v` — θ the model's Params and the input — computed
/// three ways agrees: `⟨J v, u⟩` by `jvp`, `⟨v, Jᵀ u⟩` by `value_and_grad`, and central
/// finite differences of a float64 evaluation of the traced program ([`crate::oracle`]).
/// Points where the program is not smooth (the finite differences at two step sizes
/// disagree) are skipped; most programs must be checked.
pub fn generated_derivatives_agree(engine: &dyn Engine) -> CaseResult {
    let cases = derivative_cases();
    let seed_value: u64 = std::env::var("NNX_DERIVATIVE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&seed_value.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
    );
    let checked = std::cell::Cell::new(0u32);
    let skipped = std::cell::RefCell::new(std::collections::BTreeMap::<&str, u32>::new());
    let result = runner.run(&program_case(Shapes::Ordinary), |case| {
        match with_smooth_products(|| three_derivatives(&case, engine)) {
            Ok(Verdict::Agree) => checked.set(checked.get() + 1),
            Ok(Verdict::Skip(why)) => *skipped.borrow_mut().entry(why).or_default() += 1,
            Err(message) => return Err(TestCaseError::fail(message)),
        }
        Ok(())
    });
    if std::env::var_os("NNX_DIFFERENTIAL_STATS").is_some() {
        eprintln!(
            "generated derivatives on {}: {} checked, skipped {:?}",
            engine.name(),
            checked.get(),
            skipped.borrow()
        );
    }
    result.map_err(|e| {
        Failure(format!(
            "generated derivatives, seed {seed_value} (replay with NNX_DERIVATIVE_SEED): {e}"
        ))
    })?;
    ensure!(
        checked.get() * 3 >= cases,
        "only {} of {cases} generated programs were smooth and ran; the check lost its power",
        checked.get()
    );
    Ok(Outcome::Pass)
}

/// A deterministic direction with `n` entries in [-1, 1].
fn direction(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i + seed) * 37 % 17) as f32 - 8.0) / 8.0)
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> (f64, f64) {
    let terms = a.iter().zip(b).map(|(&a, &b)| f64::from(a) * f64::from(b));
    terms.fold((0.0, 0.0), |(sum, size), t| (sum + t, size + t.abs()))
}

/// Moves float values off the exact ties generated values often make (there a program's
/// derivative is one-sided and AD picks one side): a generic point.
fn jitter(t: &Tensor, seed: usize) -> Result<Tensor> {
    if t.dtype() != DType::F32 {
        return Ok(t.clone());
    }
    let moved = (t.to_vec::<f32>()?.iter().enumerate())
        .map(|(i, &v)| v + 0.01 * ((i * 7 + seed * 13) as f32 * 0.618).sin())
        .collect();
    Tensor::from_vec(t.shape(), moved)
}

/// A generated program at a generic point θ = (input, Params), with a direction `v` for θ
/// and `u` for the output (set once the output's shape is known).
struct Point<'a> {
    case: &'a ProgramCase,
    engine: &'a dyn Engine,
    x: Tensor,
    params: Vec<(Path, Tensor)>,
    vx: Vec<f32>,
    vp: Vec<Vec<f32>>,
}

impl Point<'_> {
    fn new<'a>(case: &'a ProgramCase, engine: &'a dyn Engine) -> Result<Point<'a>> {
        let model = case.build_model()?;
        let x = jitter(&case.build_input()?, 0)?;
        let state = graph::state_by(&model, &Filter::from(VariableType::PARAM));
        let params = (state.iter().enumerate())
            .map(|(k, (path, leaf))| Ok((path.clone(), jitter(&leaf.value(), k + 1)?)))
            .collect::<Result<Vec<_>>>()?;
        let vx = direction(x.size(), 5);
        let vp = (params.iter().enumerate())
            .map(|(k, (_, p))| direction(p.size(), 11 + k))
            .collect();
        Ok(Point {
            case,
            engine,
            x,
            params,
            vx,
            vp,
        })
    }

    /// A fresh model whose Params hold `params` (the point's, or tracers).
    fn model(&self, params: &[Tensor]) -> Result<Object> {
        let model = self.case.build_model()?;
        let state = graph::state_by(&model, &Filter::from(VariableType::PARAM));
        for ((path, _), value) in self.params.iter().zip(params) {
            state.variable(path)?.set_value(value.clone())?;
        }
        Ok(model)
    }

    fn at_point(&self) -> Result<Object> {
        let values: Vec<Tensor> = self.params.iter().map(|(_, p)| p.clone()).collect();
        self.model(&values)
    }

    /// The program's output (as float32) on `[model, x]`.
    fn output(&self, args: &[Value]) -> Result<Tensor> {
        let (model, x) = (args[0].object()?, args[1].as_tensor()?);
        self.case.apply(self.engine, &model, &x)?.astype(DType::F32)
    }

    /// The program as a function of (x, Params…).
    fn trace(&self) -> Result<TracedFunction<()>> {
        let mut avals = vec![self.x.aval()];
        avals.extend(self.params.iter().map(|(_, p)| p.aval()));
        trace_fn(&avals, |inputs| {
            let model = self.model(&inputs[1..])?;
            let y = self.output(&[Value::from(&model), Value::from(inputs[0].clone())])?;
            Ok((vec![y], ()))
        })
    }

    /// `d/dh ⟨f(θ + h v), u⟩` at 0 by central differences on the float64 oracle, or why
    /// it cannot be taken.
    fn finite_differences(
        &self,
        traced: &TracedFunction<()>,
        u: &[f32],
    ) -> std::result::Result<(f64, Vec<f64>), &'static str> {
        let widen = |t: &Tensor, v: &[f32], h: f64| -> Result<Value64> {
            let data = t.to_vec::<f32>()?.into_iter().zip(v);
            Ok(Value64::Float {
                shape: t.shape().to_vec(),
                data: data
                    .map(|(d, &v)| f64::from(d) + h * f64::from(v))
                    .collect(),
            })
        };
        let captured = (traced.captured.iter())
            .map(|t| t.concrete().and_then(Value64::from_array))
            .collect::<Result<Vec<_>>>()
            .map_err(|_| "the oracle fails")?;
        let oracle = std::cell::RefCell::new(Oracle::new());
        let y = |h: f64| -> Result<Vec<f64>> {
            let mut inputs = vec![widen(&self.x, &self.vx, h)?];
            for ((_, p), v) in self.params.iter().zip(&self.vp) {
                inputs.push(widen(p, v, h)?);
            }
            inputs.extend(captured.iter().cloned());
            oracle.borrow_mut().run(&traced.program, inputs)?[0].floats()
        };
        // ⟨Σ_k c_k y_k, u⟩, each output element differenced on its own (so that a huge
        // constant element does not swamp the others' changes).
        let combine = |terms: &[(f64, &[f64])]| -> f64 {
            (0..u.len())
                .map(|k| f64::from(u[k]) * terms.iter().map(|(c, y)| c * y[k]).sum::<f64>())
                .sum()
        };
        // `NNX_DEBUG_ORACLE=1` prints why the oracle failed, with the program.
        let oracle_failed = |e: &nnx_core::Error| {
            if std::env::var_os("NNX_DEBUG_ORACLE").is_some() {
                eprintln!("the oracle fails: {e}\n{}", traced.program);
            }
            "the oracle fails"
        };
        // The point itself first: it records the values held constant (see [`Oracle`]).
        let at = y(0.0).map_err(|e| oracle_failed(&e))?;
        if oracle.borrow().met_a_tie() {
            return Err("a tie of maximum or minimum");
        }
        oracle.borrow_mut().replaying();
        // At two step sizes: where the program is smooth, central differences agree and
        // the one-sided ones differ by O(h); at a kink (a tie of maximum, |0|, a comparison
        // flipping) their difference does not shrink with h.
        let sides = |h: f64| -> Result<(f64, f64)> {
            let (up, down) = (y(h)?, y(-h)?);
            let central = combine(&[(0.5 / h, &up), (-0.5 / h, &down)]);
            let kink = combine(&[(1.0 / h, &up), (-2.0 / h, &at), (1.0 / h, &down)]);
            Ok((central, kink))
        };
        let ((coarse, coarse_kink), (fine, fine_kink)) = match (sides(1e-3), sides(2.5e-4)) {
            (Ok(coarse), Ok(fine)) => (coarse, fine),
            (Err(e), _) | (_, Err(e)) => return Err(oracle_failed(&e)),
        };
        if !coarse.is_finite() || !fine.is_finite() {
            return Err("not finite");
        }
        let noise = 1e-6 * (1.0 + fine.abs());
        // What float64 rounding of the outputs alone can move a difference by: an output
        // far larger than its changes (a huge constant summed with them) hides them.
        let rounding = (u.iter().zip(&at))
            .map(|(&u, &y)| (f64::from(u) * y).abs())
            .sum::<f64>()
            * f64::EPSILON
            / 2.5e-4;
        if rounding > 1e-2 * noise {
            return Err("beyond float64 resolution");
        }
        if (coarse - fine).abs() > noise || fine_kink.abs() > 0.5 * coarse_kink.abs() + noise {
            return Err("not smooth");
        }
        Ok((fine, at))
    }

    fn wrt() -> [DiffState; 2] {
        [
            DiffState::new(0, VariableType::PARAM),
            DiffState::new(1, Filter::Everything),
        ]
    }

    /// `⟨v, Jᵀ u⟩` by reverse mode, and the sum of its terms' magnitudes.
    fn reverse(&self, u: &Tensor) -> Result<(f64, f64)> {
        let out = value_and_grad(|args: &[Value]| {
            Ok(Value::from(self.output(args)?.mul(u)?.sum(Axes::All)?))
        })
        .wrt(Self::wrt())
        .call(self.engine, (&self.at_point()?, self.x.clone()))?;
        let grads = out.grads[0].state()?;
        let (mut sum, mut size) = dot(&self.vx, &out.grads[1].array()?.to_vec::<f32>()?);
        for ((path, _), v) in self.params.iter().zip(&self.vp) {
            let (s, z) = dot(v, &grads.variable(path)?.value().to_vec::<f32>()?);
            sum += s;
            size += z;
        }
        Ok((sum, size))
    }

    /// `⟨J v, u⟩` by forward mode, the sum of its terms' magnitudes, and the output.
    fn forward(&self, u: &Tensor) -> Result<(f64, f64, Vec<f32>)> {
        let mut tangent = State::new();
        for ((path, p), v) in self.params.iter().zip(&self.vp) {
            let t = Tensor::from_vec(p.shape(), v.clone())?;
            tangent.insert(path.clone(), nnx_core::graph::Leaf::Array(t));
        }
        let vx = Tensor::from_vec(self.x.shape(), self.vx.clone())?;
        let out = jvp(|args: &[Value]| Ok(Value::from(self.output(args)?)))
            .wrt(Self::wrt())
            .call(
                self.engine,
                (&self.at_point()?, self.x.clone()),
                &[Tangent::State(tangent), Tangent::Array(vx)],
            )?;
        let (sum, size) = dot(
            &out.tangent.as_tensor()?.to_vec::<f32>()?,
            &u.to_vec::<f32>()?,
        );
        Ok((sum, size, out.value.as_tensor()?.to_vec::<f32>()?))
    }
}

/// The three directional derivatives of one program, or why it does not count.
fn three_derivatives(
    case: &ProgramCase,
    engine: &dyn Engine,
) -> std::result::Result<Verdict, String> {
    let point = Point::new(case, engine).map_err(|e| format!("building the arguments: {e}"))?;
    if point.x.dtype() != DType::F32 {
        return Ok(Verdict::Skip("integer input"));
    }
    let Ok(traced) = point.trace() else {
        return Ok(Verdict::Skip("the program fails"));
    };
    let out_shape = traced.program.output_avals()[0].shape.clone();
    let u = direction(out_shape.iter().product(), 3);
    let (fine, at) = match point.finite_differences(&traced, &u) {
        Ok(found) => found,
        Err(why) => return Ok(Verdict::Skip(why)),
    };
    let u = Tensor::from_vec(&out_shape, u).map_err(|e| e.to_string())?;
    let describe = |what: &str, e: Error| {
        format!(
            "{what} failed where the program runs: {e} ({:?})\n{case:?}",
            e.kind()
        )
    };
    let (reverse, reverse_size) = point
        .reverse(&u)
        .map_err(|e| describe("value_and_grad", e))?;
    let (forward, forward_size, value) = point.forward(&u).map_err(|e| describe("jvp", e))?;
    // The oracle computes what the engine computes: else float32 and float64 fall on two
    // sides of a discontinuity (a cast to an integer, a comparison) at this point.
    let differs = (value.iter().zip(&at)).any(|(&got, &want)| {
        want.is_finite() && (f64::from(got) - want).abs() > 1e-3 * (1.0 + want.abs())
    });
    if differs {
        return Ok(Verdict::Skip("float32 and float64 values differ"));
    }
    if !reverse.is_finite() || !forward.is_finite() {
        return Ok(Verdict::Skip("not finite"));
    }
    // float32 rounding scales with the terms summed, not with their (cancelling) total.
    let tolerance = 2e-3 * (1.0 + reverse_size.max(forward_size).max(fine.abs()));
    if (reverse - fine).abs() > tolerance || (forward - fine).abs() > tolerance {
        return Err(format!(
            "directional derivative: jvp {forward}, vjp {reverse}, finite differences {fine} \
             (tolerance {tolerance})\n{case:?}\nThe traced program:\n{}",
            listing(&traced.program)
        ));
    }
    Ok(Verdict::Agree)
}

/// A program's listing followed by those of the programs it calls, maps and scans.
fn listing(program: &nnx_core::program::Program) -> String {
    use nnx_core::program::Primitive;
    let mut out = program.to_string();
    for eq in &program.equations {
        if let Primitive::Call { program }
        | Primitive::Remat { program, .. }
        | Primitive::Vmap { program, .. }
        | Primitive::Scan { program, .. } = &eq.primitive
        {
            out.push_str(&format!(
                "\nwhere {} is\n{}",
                eq.primitive.name(),
                listing(&program.0)
            ));
        }
    }
    out
}
