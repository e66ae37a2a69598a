//! safetensors checkpoints: Flax's file into a Rust model (`golden/checkpoint.py` writes it
//! with Python's safetensors), Rust's bytes equal to Python's for the same arrays, partial
//! and full restores with every problem reported, and mutated files as errors, never
//! panics.

mod common;
use common::tensor;
use nnx_core::graph::{self, Filter, Leaf, State};
use nnx_core::transforms::{eval_shape, jit};
use nnx_core::{ErrorKind, Module, Path, Result, Rngs, Tensor, VariableType};
use nnx_nn::{Linear, checkpoint};
use proptest::prelude::*;
use serde_json::Value as Json;

#[derive(Module, Clone, Debug)]
struct Mlp {
    hidden: Linear,
    out: Linear,
}

impl Mlp {
    fn new(seed: i64) -> Result<Mlp> {
        let rngs = Rngs::new(seed)?;
        Ok(Mlp {
            hidden: Linear::new(3, 4, &rngs)?,
            out: Linear::new(4, 2, &rngs)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.out.forward(&self.hidden.forward(x)?.relu()?)
    }
}

const FLAX_MLP: &[u8] = include_bytes!("../golden/flax_mlp.safetensors");

#[test]
fn a_flax_checkpoint_loads_into_the_same_rust_model() -> Result<()> {
    let golden: Json =
        serde_json::from_str(include_str!("../golden/checkpoint.json")).expect("json");
    let saved = checkpoint::from_bytes(FLAX_MLP)?;
    let mut keys: Vec<String> = saved.iter().map(|(p, _)| p.slashed()).collect();
    keys.sort();
    let want: Vec<&str> = (golden["keys"].as_array().expect("keys").iter())
        .map(|k| k.as_str().expect("key"))
        .collect();
    assert_eq!(keys, want);
    let model = Mlp::new(0)?;
    checkpoint::restore(&model, &saved, None)?;
    let y = jit(|m: &Mlp, x: &Tensor| m.forward(x))
        .call(&nnx_fast::Fast, (&model, &tensor(&golden["x"])))?;
    let want = tensor(&golden["y"]);
    assert!(y.allclose(&want, 1e-6, 1e-6)?, "{y} vs Flax's {want}");
    Ok(())
}

#[test]
fn rust_writes_what_python_writes() -> Result<()> {
    let mut state = State::new();
    let kernel: Vec<f32> = (0..6).map(|i| i as f32 / 4.0).collect();
    state.insert(
        Path::parse("layers/0/kernel")?,
        Leaf::Array(Tensor::from_vec(&[2, 3], kernel)?),
    );
    state.insert(
        Path::parse("count")?,
        Leaf::Array(Tensor::from_slice(&[1i32, -2, 3])),
    );
    state.insert(
        Path::parse("flags")?,
        Leaf::Array(Tensor::from_slice(&[true, false])),
    );
    state.insert(
        Path::parse("seen")?,
        Leaf::Array(Tensor::from_slice(&[7u32])),
    );
    let ours = checkpoint::to_bytes(&state)?;
    assert_eq!(ours, include_bytes!("../golden/interop.safetensors"));
    // And through a file.
    let file =
        std::env::temp_dir().join(format!("nnx-checkpoint-{}.safetensors", std::process::id()));
    checkpoint::save(&state, &file)?;
    let back = checkpoint::load(&file)?;
    std::fs::remove_file(&file).ok();
    assert_eq!(back.len(), 4);
    assert!(back.get(&Path::parse("layers/0/kernel")?).is_some());
    Ok(())
}

#[test]
fn restores_check_everything_first() -> Result<()> {
    let trained = Mlp::new(1)?;
    let full = graph::state(&trained);
    // Keys (an Rngs-free model has none here) and every dtype round-trip.
    let bytes = checkpoint::to_bytes(&full)?;
    let fresh = Mlp::new(2)?;
    checkpoint::restore(&fresh, &checkpoint::from_bytes(&bytes)?, None)?;
    assert!(
        fresh
            .out
            .kernel
            .value()
            .identical(&trained.out.kernel.value())
    );

    // Partial restore by filter: only the kernels.
    let other = Mlp::new(3)?;
    let kernels = Filter::path_contains("kernel");
    checkpoint::restore(&other, &checkpoint::from_bytes(&bytes)?, Some(&kernels))?;
    assert!(
        other
            .hidden
            .kernel
            .value()
            .identical(&trained.hidden.kernel.value())
    );

    // A mismatched checkpoint: every problem at once, nothing written.
    let mut wrong = checkpoint::from_bytes(&bytes)?;
    let hidden_bias = Path::parse("hidden/bias")?;
    wrong.insert(hidden_bias, Leaf::Array(Tensor::zeros([5])));
    wrong.insert(
        Path::parse("out/kernel")?,
        Leaf::Array(Tensor::from_slice(&[1i32])),
    );
    wrong.insert(Path::parse("extra")?, Leaf::Array(Tensor::zeros([1])));
    let mut missing = State::new();
    for (p, l) in wrong.iter() {
        if p.slashed() != "out/bias" {
            missing.insert(p.clone(), l.clone());
        }
    }
    let target = Mlp::new(4)?;
    let before = target.hidden.kernel.value();
    let err = checkpoint::restore(&target, &missing, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Merge);
    let text = err.to_string();
    for part in [
        "shape: 'hidden/bias' is [5] in the checkpoint, [4] in the model",
        "dtype: 'out/kernel' is int32 in the checkpoint, float32 in the model",
        "missing: 'out/bias'",
        "unexpected: 'extra'",
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
    assert!(
        target.hidden.kernel.value().identical(&before),
        "a failed restore wrote"
    );
    Ok(())
}

#[test]
fn rng_keys_round_trip() -> Result<()> {
    let rngs = Rngs::new(5)?;
    rngs.next_key("default")?;
    let state = graph::state(&rngs);
    let back = checkpoint::from_bytes(&checkpoint::to_bytes(&state)?)?;
    let fresh = Rngs::new(0)?;
    checkpoint::restore(&fresh, &back, None)?;
    assert!(
        fresh
            .next_key("default")?
            .identical(&rngs.next_key("default")?)
    );
    let params = graph::state_by(&Mlp::new(0)?, &VariableType::PARAM.into());
    assert_eq!(
        checkpoint::from_bytes(&checkpoint::to_bytes(&params)?)?.len(),
        4
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Truncated, corrupted or extended files are errors (or, rarely, still valid files),
    /// never panics; a restore from whatever loads is checked as any other.
    #[test]
    fn mutated_files_never_panic(
        cut in prop::option::of(0usize..FLAX_MLP.len()),
        flips in prop::collection::vec((0usize..FLAX_MLP.len(), any::<u8>()), 0..6),
        tail in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut bytes = FLAX_MLP.to_vec();
        for (at, byte) in flips {
            bytes[at] ^= byte;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut);
        }
        bytes.extend(tail);
        if let Ok(state) = checkpoint::from_bytes(&bytes) {
            let model = Mlp::new(0).expect("a model");
            let _ = checkpoint::restore(&model, &state, None);
        }
    }
}

#[test]
fn a_checkpoint_restores_into_an_abstract_model() -> Result<()> {
    let model = Mlp::new(0)?;
    let bytes = checkpoint::to_bytes(&graph::state(&model))?;
    // The model's structure without running its initialisers (`nnx.eval_shape`).
    let shaped = eval_shape(|| Mlp::new(7)).call(())?;
    let kernel = shaped.hidden.kernel.value();
    assert!(kernel.is_abstract());
    assert_eq!(
        kernel.repr(),
        "ShapeDtypeStruct(shape=(3, 4), dtype=float32)"
    );
    let forward = jit(|m: &Mlp, x: &Tensor| m.forward(x));
    let x = Tensor::from_vec(&[2, 3], vec![0.5f32, -1.0, 2.0, 0.0, 1.5, -0.5])?;
    let err = forward.call(&nnx_fast::Fast, (&shaped, &x)).unwrap_err();
    assert!(
        matches!(err, nnx_core::Error::AbstractArray { .. }),
        "{err}"
    );
    checkpoint::restore(&shaped, &checkpoint::from_bytes(&bytes)?, None)?;
    let y = forward.call(&nnx_fast::Fast, (&shaped, &x))?;
    let want = forward.call(&nnx_fast::Fast, (&model, &x))?;
    assert!(y.allclose(&want, 0.0, 0.0)?, "{y} vs {want}");
    Ok(())
}
