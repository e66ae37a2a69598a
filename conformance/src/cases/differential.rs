//! Differential cases: random programs (see [`programs`](crate::programs)) run on the engine
//! under test and on [`Reference`], on separate but identical object graphs. Outputs and the
//! caller's final state agree within [`RTOL`]/[`ATOL`] (floats; NaN equals NaN at the same
//! position, infinities must match exactly) or exactly (integers, bools, keys, shapes,
//! dtypes, weak types), the caller's structure (`GraphDef`) is identical, and when one
//! engine fails the other fails with the same [`ErrorKind`](nnx_core::ErrorKind).
//!
//! `NNX_DIFFERENTIAL_CASES` sets the number of generated programs per case (default
//! [`DEFAULT_CASES`]); `NNX_DIFFERENTIAL_SEED` sets the proptest seed (a number, or `random`;
//! default a fixed seed so CI is deterministic). A failure prints the seed and the minimal
//! (shrunk) program.

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

use nnx_core::graph::{self, Object};
use nnx_core::{DType, Engine, Result, Tensor};
use nnx_reference::Reference;

use crate::programs::{ProgramCase, Shapes, program_case};
use crate::{CaseResult, Failure, Outcome};

/// Relative tolerance for float32 values: `|a - b| <= ATOL + RTOL * max(|a|, |b|)`.
/// Forward values are bit-identical by construction (matrix products run on operands
/// snapped to a 1/8 grid, so every summation order is exact); gradients go through
/// unsnapped products and may differ by a few ulps of float32 accumulated over a handful of
/// operations, which `1e-5` covers with room.
pub const RTOL: f64 = 1e-5;

/// Absolute tolerance for float32 values, for results near zero (a gradient that cancels).
pub const ATOL: f64 = 1e-6;

/// Generated programs per differential case when `NNX_DIFFERENTIAL_CASES` is unset.
pub const DEFAULT_CASES: u32 = 256;

const DEFAULT_SEED: u64 = 0x6e6e_785f_6469_6666;

/// The number of cases and the seed, from the environment.
fn settings() -> std::result::Result<(u32, u64), Failure> {
    let cases = match std::env::var("NNX_DIFFERENTIAL_CASES") {
        Ok(n) => n
            .parse()
            .map_err(|_| Failure(format!("NNX_DIFFERENTIAL_CASES={n} is not a number")))?,
        Err(_) => DEFAULT_CASES,
    };
    let seed = match std::env::var("NNX_DIFFERENTIAL_SEED").as_deref() {
        Ok("random") => {
            use std::hash::{BuildHasher, RandomState};
            RandomState::new().hash_one(std::time::SystemTime::now())
        }
        Ok(s) => s
            .parse()
            .map_err(|_| Failure(format!("NNX_DIFFERENTIAL_SEED={s} is not a number")))?,
        Err(_) => DEFAULT_SEED,
    };
    Ok((cases, seed))
}

/// Why two tensors differ, if they do.
fn disagreement(a: &Tensor, b: &Tensor) -> Option<String> {
    if a.shape() != b.shape() || a.dtype() != b.dtype() || a.is_weak() != b.is_weak() {
        return Some(format!(
            "{:?}{}{} vs {:?}{}{}",
            a.shape(),
            a.dtype(),
            if a.is_weak() { " (weak)" } else { "" },
            b.shape(),
            b.dtype(),
            if b.is_weak() { " (weak)" } else { "" },
        ));
    }
    let differ = match a.dtype() {
        DType::Key => a.keys().ok() != b.keys().ok(),
        DType::F32 => match (a.to_vec::<f32>(), b.to_vec::<f32>()) {
            (Ok(x), Ok(y)) => x.iter().zip(&y).any(|(&p, &q)| !close(p, q)),
            _ => true,
        },
        _ => a.to_f64_vec().ok() != b.to_f64_vec().ok(),
    };
    differ.then(|| format!("{a} vs {b}"))
}

/// Float agreement: NaN with NaN, equal values (infinities included), or within tolerance.
fn close(p: f32, q: f32) -> bool {
    if p.is_nan() || q.is_nan() {
        return p.is_nan() && q.is_nan();
    }
    if p == q {
        return true;
    }
    if !p.is_finite() || !q.is_finite() {
        return false;
    }
    let (p, q) = (f64::from(p), f64::from(q));
    (p - q).abs() <= ATOL + RTOL * p.abs().max(q.abs())
}

/// The differences between two models after the same program: structure, then every leaf.
fn model_disagreement(a: &Object, b: &Object) -> Option<String> {
    let (ga, gb) = (graph::graphdef(a), graph::graphdef(b));
    if ga != gb {
        return Some(format!("structure differs:\n{a}\nvs\n{b}"));
    }
    let (sa, sb) = (graph::state(a), graph::state(b));
    for ((pa, la), (pb, lb)) in sa.iter().zip(sb.iter()) {
        if pa != pb {
            return Some(format!("state paths differ: {pa} vs {pb}"));
        }
        if let Some(d) = disagreement(&la.value(), &lb.value()) {
            return Some(format!("state {pa}: {d}"));
        }
    }
    None
}

/// What one engine did with a program.
type Run = (Result<Tensor>, Object);

/// Runs `case` on both engines and describes any disagreement.
fn compare(case: &ProgramCase, engine: &dyn Engine) -> std::result::Result<Option<String>, String> {
    let run = |e: &dyn Engine| -> std::result::Result<Run, String> {
        case.run(e)
            .map_err(|err| format!("building the arguments failed: {err}"))
    };
    let (got, got_model) = run(engine)?;
    let (want, want_model) = run(&Reference)?;
    let ok = match (&got, &want) {
        (Ok(a), Ok(b)) => {
            if let Some(d) = disagreement(a, b) {
                return Err(format!(
                    "outputs differ: {} gives {d} (reference second)",
                    engine.name()
                ));
            }
            None
        }
        (Err(a), Err(b)) => {
            if a.kind() != b.kind() {
                return Err(format!(
                    "both fail, with different kinds: {} {:?} ({a}) vs reference {:?} ({b})",
                    engine.name(),
                    a.kind(),
                    b.kind()
                ));
            }
            Some(format!("{:?}: {b}", b.kind()))
        }
        (Ok(a), Err(b)) => {
            return Err(format!(
                "{} returns {a} but the reference fails: {b}",
                engine.name()
            ));
        }
        (Err(a), Ok(b)) => {
            return Err(format!(
                "{} fails ({a}) but the reference returns {b}",
                engine.name()
            ));
        }
    };
    if let Some(d) = model_disagreement(&got_model, &want_model) {
        return Err(format!(
            "final state differs ({} first): {d}",
            engine.name()
        ));
    }
    Ok(ok)
}

/// Runs the generated programs and requires agreement, and that at least `min_valid` of
/// every 8 programs succeed (so the generator keeps exercising the engines, not just their
/// error paths).
fn differential(name: &str, engine: &dyn Engine, shapes: Shapes, min_valid: u32) -> CaseResult {
    let (cases, seed) = settings()?;
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: 2048,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed)),
    );
    let valid = std::cell::Cell::new(0u32);
    let total = std::cell::Cell::new(0u32);
    let errors = std::cell::RefCell::new(std::collections::BTreeMap::<String, u32>::new());
    let started = std::time::Instant::now();
    let fail_on = std::env::var("NNX_DIFFERENTIAL_FAIL_ON").ok();
    let result = runner.run(&program_case(shapes), |case| {
        total.set(total.get() + 1);
        match compare(&case, engine) {
            Ok(None) => {
                valid.set(valid.get() + 1);
                Ok(())
            }
            Ok(Some(error)) if fail_on.as_ref().is_some_and(|f| error.contains(f.as_str())) => {
                Err(TestCaseError::fail(format!("both engines fail: {error}")))
            }
            Ok(Some(error)) => {
                let short: String = error.chars().take(90).collect();
                *errors.borrow_mut().entry(short).or_default() += 1;
                Ok(())
            }
            Err(message) => Err(TestCaseError::fail(message)),
        }
    });
    if std::env::var_os("NNX_DIFFERENTIAL_STATS").is_some() {
        eprintln!(
            "{name} on {}: {} programs ({} ran, the rest failed identically) in {:.1?}",
            engine.name(),
            total.get(),
            valid.get(),
            started.elapsed()
        );
        let mut errors: Vec<(String, u32)> = errors.into_inner().into_iter().collect();
        errors.sort_by_key(|e| std::cmp::Reverse(e.1));
        for (error, n) in errors.iter().take(25) {
            eprintln!("  {n:6} × {error}");
        }
    }
    match result {
        Err(e) => Err(Failure(format!(
            "{name} on {}: seed {seed} (replay with NNX_DIFFERENTIAL_SEED={seed}): {e}",
            engine.name()
        ))),
        Ok(()) if valid.get() * 8 < total.get() * min_valid => Err(Failure(format!(
            "{name}: only {} of {} generated programs ran without error; the generator has \
             drifted towards invalid programs",
            valid.get(),
            total.get()
        ))),
        Ok(()) => Ok(Outcome::Pass),
    }
}

fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&seed.wrapping_add(i as u64).to_le_bytes());
    }
    bytes
}

/// Random programs over every primitive, with nested `jit`/`vmap`/`scan`/`grad` and random
/// graph arguments, agree with the reference engine.
pub fn differential_programs_agree_with_reference(engine: &dyn Engine) -> CaseResult {
    differential(
        "differential_programs_agree_with_reference",
        engine,
        Shapes::Ordinary,
        3,
    )
}

/// The same on edge shapes: zero-lane `vmap`, zero-length `scan`, empty arrays and size-1
/// axes everywhere.
pub fn differential_edge_shapes_agree_with_reference(engine: &dyn Engine) -> CaseResult {
    differential(
        "differential_edge_shapes_agree_with_reference",
        engine,
        Shapes::Edge,
        2,
    )
}
