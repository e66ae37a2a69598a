//! Optimizers and schedules against optax 0.2.8 (`golden/optim.py` writes
//! `golden/optim.json`): five steps on fixed gradients, eagerly and as one `jit`ted train
//! step on both engines; parameters within 1e-6.

mod common;
use common::tensor;
use std::sync::OnceLock;

use nnx_core::graph::{Filter, Leaf, State};
use nnx_core::transforms::{jit, value_and_grad};
use nnx_core::{Engine, Object, Param, Path, Result, Tensor, Value, VariableType};
use nnx_fast::Fast;
use nnx_nn::optim::{self, Chain, Optimizer, Schedule};
use nnx_reference::Reference;
use serde_json::Value as Json;

fn golden() -> &'static Json {
    static GOLDEN: OnceLock<Json> = OnceLock::new();
    GOLDEN.get_or_init(|| {
        serde_json::from_str(include_str!("../golden/optim.json")).expect("optim.json parses")
    })
}

fn model() -> Result<Object> {
    let p = &golden()["params"];
    Object::new("Model")
        .with("a", Param::new(tensor(&p["a"])))?
        .with("b", Param::new(tensor(&p["b"])))
}

fn grads(t: usize) -> State {
    let g = &golden()["grads"][t];
    let mut state = State::new();
    for name in ["a", "b"] {
        state.insert(Path::from([name]), Leaf::Array(tensor(&g[name])));
    }
    state
}

fn check(name: &str, model: &Object, t: usize) -> Result<()> {
    let want = &golden()["steps"][name][t];
    for p in ["a", "b"] {
        let got = model.value(p)?;
        let expected = tensor(&want[p]);
        assert!(
            got.allclose(&expected, 1e-6, 1e-6)?,
            "{name}, step {}, {p}: {got} vs optax's {expected}",
            t + 1
        );
    }
    Ok(())
}

fn optimizers() -> Vec<(&'static str, Chain)> {
    vec![
        ("sgd", optim::sgd(0.1)),
        ("sgd_momentum", optim::sgd_momentum(0.1, 0.9, false)),
        ("sgd_nesterov", optim::sgd_momentum(0.1, 0.9, true)),
        ("adam", optim::adam(1e-2)),
        ("adamw", optim::adamw(1e-2, 0.1, None)),
        (
            "adamw_masked",
            optim::adamw(1e-2, 0.1, Some(Filter::path_contains("a"))),
        ),
        ("rmsprop", optim::rmsprop(1e-2, None)),
        ("rmsprop_momentum", optim::rmsprop(1e-2, Some(0.9))),
        ("adagrad", optim::adagrad(0.1)),
        ("lion", optim::lion(1e-3, 1e-2)),
        (
            "clip_adam",
            optim::clip_by_global_norm(1.0).then(optim::adam(1e-2)),
        ),
        ("adam_warmup_cosine", optim::adam(warmup_cosine())),
        ("sgd_piecewise", optim::sgd(piecewise())),
    ]
}

fn warmup_cosine() -> Schedule {
    Schedule::WarmupCosineDecay {
        init_value: 0.0,
        peak_value: 1e-2,
        warmup_steps: 2,
        decay_steps: 5,
        end_value: 1e-3,
        exponent: 1.0,
    }
}

fn piecewise() -> Schedule {
    Schedule::PiecewiseConstant {
        init_value: 1e-2,
        boundaries_and_scales: vec![(2, 0.5), (4, 0.1)],
    }
}

#[test]
fn optimizers_step_as_optax() -> Result<()> {
    for (name, tx) in optimizers() {
        let model = model()?;
        let optimizer = Optimizer::new(&model, tx, VariableType::PARAM)?;
        for t in 0..5 {
            optimizer.update(&model, &grads(t))?;
            check(name, &model, t)?;
        }
        assert_eq!(optimizer.step()?.item::<u32>()?, 5);
    }
    Ok(())
}

#[test]
fn jitted_train_steps_match_on_both_engines() -> Result<()> {
    // Σ a·g_a + Σ b·g_b has gradient (g_a, g_b): the golden gradients, through value_and_grad.
    let loss = |m: &Object, ga: &Tensor, gb: &Tensor| {
        let a = (m.value("a")? * ga)?.sum(None)?;
        a + (m.value("b")? * gb)?.sum(None)?
    };
    let engines: [&dyn Engine; 2] = [&Reference, &Fast];
    for engine in engines {
        for (name, tx) in optimizers() {
            let model = model()?;
            let optimizer = Optimizer::new(&model, tx, VariableType::PARAM)?;
            let step = jit(|m: &Object, o: &Optimizer, ga: &Tensor, gb: &Tensor| {
                let out = value_and_grad(loss).call(engine, (m, ga, gb))?;
                o.update(m, out.grads[0].state()?)
            });
            for t in 0..5 {
                let g = &golden()["grads"][t];
                step.call(
                    engine,
                    (&model, &optimizer, &tensor(&g["a"]), &tensor(&g["b"])),
                )?;
                check(name, &model, t)?;
            }
            assert_eq!(step.trace_count(), 1, "{name} retraced");
        }
    }
    Ok(())
}

#[test]
fn schedules_are_optaxs() -> Result<()> {
    let schedules = [
        ("warmup_cosine", warmup_cosine()),
        (
            "exponential_staircase",
            Schedule::Exponential {
                init_value: 1e-2,
                transition_steps: 2,
                decay_rate: 0.5,
                transition_begin: 0,
                staircase: true,
                end_value: None,
            },
        ),
        (
            "exponential_begin_end",
            Schedule::Exponential {
                init_value: 1e-2,
                transition_steps: 3,
                decay_rate: 0.5,
                transition_begin: 1,
                staircase: false,
                end_value: Some(4e-3),
            },
        ),
        (
            "linear",
            Schedule::Linear {
                init_value: 1e-2,
                end_value: 0.0,
                transition_steps: 4,
                transition_begin: 0,
            },
        ),
        (
            "cosine",
            Schedule::CosineDecay {
                init_value: 1e-2,
                decay_steps: 4,
                alpha: 0.1,
                exponent: 1.0,
            },
        ),
        ("piecewise", piecewise()),
    ];
    for (name, schedule) in schedules {
        let want = golden()["schedules"][name].as_array().expect("values");
        for (count, w) in want.iter().enumerate() {
            let got = schedule
                .value(&Tensor::scalar(count as i32))?
                .item::<f32>()?;
            let w = w.as_f64().expect("value") as f32;
            assert!(
                (got - w).abs() <= 1e-6 * (1.0 + w.abs()),
                "{name}({count}) = {got}, optax {w}"
            );
        }
        // Round trip through the static form the optimizer stores.
        assert_eq!(Schedule::from_static(&schedule.to_static())?, schedule);
    }
    Ok(())
}

#[test]
fn optimizer_state_and_errors() -> Result<()> {
    let model = model()?;
    let optimizer = Optimizer::new(&model, optim::adam(1e-3), VariableType::PARAM)?;
    let state = nnx_core::graph::state(&optimizer);
    let mut paths: Vec<String> = state.iter().map(|(p, _)| p.slashed()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "opt_state/0/count",
            "opt_state/0/mu/a",
            "opt_state/0/mu/b",
            "opt_state/0/nu/a",
            "opt_state/0/nu/b",
            "step"
        ]
    );
    let mut missing = State::new();
    missing.insert(Path::from(["a"]), Leaf::Array(Tensor::zeros([3, 2])));
    let err = optimizer.update(&model, &missing).unwrap_err();
    assert!(
        err.to_string().contains("grads have no entry for 'b'"),
        "{err}"
    );
    let mut wrong = grads(0);
    wrong.insert(Path::from(["b"]), Leaf::Array(Tensor::zeros([3])));
    let err = optimizer.update(&model, &wrong).unwrap_err();
    assert!(err.to_string().contains("shape [3]"), "{err}");
    assert_eq!(optimizer.step()?.item::<u32>()?, 0);
    let no_params = Object::new("Empty").with("x", Value::from(1i64))?;
    assert!(Optimizer::new(&no_params, optim::sgd(0.1), VariableType::PARAM).is_err());
    Ok(())
}

/// `nnx.ModelAndOptimizer`: the state's paths are Flax's (`model/…`, `opt_state/…`,
/// `step`; printed by flax 0.12.8 for `ModelAndOptimizer(Linear(2, 3), optax.adam(1e-2),
/// wrt=nnx.Param)`), the model is the one given, and a step gives what `Optimizer` gives.
#[test]
fn model_and_optimizer_holds_its_model() -> Result<()> {
    use nnx_core::{Rngs, graph};
    use nnx_nn::Linear;
    use nnx_nn::optim::ModelAndOptimizer;

    let model = Linear::new(2, 3, &Rngs::new(0)?)?;
    let both = ModelAndOptimizer::new(&model, optim::adam(1e-2), VariableType::PARAM)?;
    let mut paths: Vec<String> = graph::state(&both)
        .iter()
        .map(|(p, _)| p.slashed())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "model/bias",
            "model/kernel",
            "opt_state/0/count",
            "opt_state/0/mu/bias",
            "opt_state/0/mu/kernel",
            "opt_state/0/nu/bias",
            "opt_state/0/nu/kernel",
            "step"
        ]
    );
    let twin = graph::clone(&model);
    let separate = Optimizer::new(&twin, optim::adam(1e-2), VariableType::PARAM)?;
    let x = Tensor::from_vec(&[2, 2], vec![0.5f32, -1.0, 2.0, 0.25])?;
    let loss = |m: &Linear, x: &Tensor| m.forward(x)?.tanh()?.sum(None);
    for _ in 0..3 {
        let g = value_and_grad(loss).call(&Reference, (&both.model::<Linear>()?, &x))?;
        both.update(g.grads[0].state()?)?;
        let g = value_and_grad(loss).call(&Reference, (&twin, &x))?;
        separate.update(&twin, g.grads[0].state()?)?;
    }
    assert_eq!(both.step()?.item::<u32>()?, 3);
    assert!(both.model::<Linear>()?.kernel.ptr_eq(&model.kernel));
    assert_eq!(
        model.kernel.value().to_vec::<f32>()?,
        twin.kernel.value().to_vec::<f32>()?
    );
    Ok(())
}
