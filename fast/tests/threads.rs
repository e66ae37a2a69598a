//! Handles are `Send + Sync` (decision record 0004): models, States, GraphDefs, Rngs and
//! compiled transforms move between threads and can be shared, without data races or
//! deadlocks, and a model read while another thread's transform writes it back is seen
//! whole, from before or from after.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use nnx_fast::Rngs;
use nnx_fast::prelude::*;
use nnx_fast::transforms::Jit;

/// A model with `n` Params of 4 elements, each `start`, in `layers`.
fn model(n: usize, start: f32) -> Result<Object> {
    let layers = Object::new("Layers");
    for i in 0..n {
        layers.set(&format!("p{i}"), Param::new(Tensor::full([4], start)))?;
    }
    Object::new("Model").with("layers", layers)
}

/// Adds one to every Param and returns the sum of the first.
fn step() -> Jit<impl Fn(&[Value]) -> Result<Value> + Send + Sync> {
    jit(|args: &[Value]| {
        let m = args[0].object()?;
        let layers = m.object("layers")?;
        for name in layers.attribute_names() {
            layers.var(&name)?.update(|v| &v + 1.0)?;
        }
        Ok(Value::from(layers.value("p0")?.sum(0)?))
    })
}

/// Every Param's value, from a consistent snapshot (a clone).
fn values(m: &Object) -> Result<Vec<f32>> {
    let state = graph::state(&graph::clone(m));
    let mut out = Vec::new();
    for (_, leaf) in &state {
        out.extend(leaf.value().to_vec::<f32>()?);
    }
    Ok(out)
}

#[test]
fn a_model_built_on_one_thread_trains_on_another() -> Result<()> {
    let m = model(3, 0.0)?;
    let rngs = Rngs::new(0)?;
    let (def, _) = graph::split(&m);
    let trained = thread::spawn(move || -> Result<Object> {
        let f = step();
        for _ in 0..3 {
            f.call(&Fast, (&m,))?;
        }
        assert_eq!(f.trace_count(), 1);
        // Rngs moved along, and its stream advances over there.
        rngs.next_key("params")?;
        Ok(m)
    })
    .join()
    .expect("training thread")?;
    assert_eq!(values(&trained)?, vec![3.0; 12]);
    // A GraphDef taken on this thread rebuilds the model from the trained state.
    let copy: Object = graph::merge(&def, [&graph::state(&trained)])?;
    assert_eq!(values(&copy)?, vec![3.0; 12]);
    Ok(())
}

#[test]
fn two_threads_run_one_compiled_function_on_two_models() -> Result<()> {
    let f = Arc::new(step());
    // Traced once here; two threads missing the cache at the same moment would each trace.
    f.call(&Fast, (&model(2, 0.0)?,))?;
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let f = f.clone();
            thread::spawn(move || -> Result<Vec<f32>> {
                let m = model(2, i as f32 * 100.0)?;
                for _ in 0..20 {
                    f.call(&Fast, (&m,))?;
                }
                values(&m)
            })
        })
        .collect();
    let results: Vec<Vec<f32>> = handles
        .into_iter()
        .map(|h| h.join().expect("worker thread"))
        .collect::<Result<_>>()?;
    assert_eq!(results[0], vec![20.0; 8]);
    assert_eq!(results[1], vec![120.0; 8]);
    // Both threads had the same structure: one trace, shared.
    assert_eq!(f.trace_count(), 1);
    Ok(())
}

#[test]
fn a_reader_sees_whole_steps_while_another_thread_trains() -> Result<()> {
    let m = model(16, 0.0)?;
    let done = Arc::new(AtomicBool::new(false));
    let trainer = {
        let (m, done) = (m.clone(), done.clone());
        thread::spawn(move || -> Result<()> {
            let f = step();
            for _ in 0..200 {
                f.call(&Fast, (&m,))?;
            }
            done.store(true, Ordering::Release);
            Ok(())
        })
    };
    let mut snapshots = 0;
    while !done.load(Ordering::Acquire) || snapshots == 0 {
        let seen = values(&m)?;
        // Every Param is written back by one write-back: a snapshot never mixes steps.
        assert!(
            seen.iter().all(|v| *v == seen[0]),
            "a snapshot mixed two steps: {seen:?}"
        );
        snapshots += 1;
    }
    trainer.join().expect("training thread")?;
    assert_eq!(values(&m)?, vec![200.0; 64]);
    Ok(())
}

#[test]
fn a_checkpoint_thread_reads_state_while_the_model_is_updated() -> Result<()> {
    let m = model(4, 1.0)?;
    let writer = {
        let m = m.clone();
        thread::spawn(move || -> Result<()> {
            for k in 0..200 {
                let state = graph::state(&m).map(|_, _| Ok(Tensor::full([4], k as f32)))?;
                graph::update(&m, &state)?;
            }
            Ok(())
        })
    };
    for _ in 0..200 {
        let seen = values(&m)?;
        assert!(seen.iter().all(|v| *v == seen[0]), "torn update: {seen:?}");
    }
    writer.join().expect("writer thread")?;
    Ok(())
}
