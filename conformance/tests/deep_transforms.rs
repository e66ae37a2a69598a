//! A 10,000-deep chain of objects goes through `jit` (issue 8): lowering, the aliasing
//! check, raising inside the trace, the cache key (hashing and comparing a deep GraphDef)
//! and write-back are all iterative. Before, this aborted with a stack overflow at ~3,000
//! levels in the test profile.

use nnx_core::transforms::jit;
use nnx_core::{Object, Value};
use nnx_reference::Reference;

const DEPTH: usize = 10_000;

/// `Node(w=Param([level; width]), next=Node(...))`.
fn chain(depth: usize, width: usize) -> Object {
    nnx_conformance::graphs::chain(depth, width)
        .unwrap()
        .expect("depth > 0")
}

#[test]
fn jit_of_a_deep_chain_updates_every_level_and_hits_its_cache() {
    let root = chain(DEPTH, 1);
    // Adds 1 to every level's `w`, walking down the chain inside the trace.
    let step = jit(|args: &[Value]| {
        let mut node = args[0].object()?;
        loop {
            let w = node.var("w")?;
            w.set_value((w.value() + 1.0)?)?;
            match node.get("next") {
                Ok(next) => node = next.object()?,
                Err(_) => break,
            }
        }
        Ok(Value::from(()))
    });
    step.call(&Reference, (&root,)).unwrap();
    step.call(&Reference, (&root,)).unwrap();
    assert_eq!(step.trace_count(), 1);
    let mut node = root.clone();
    for level in 0..DEPTH {
        let w = node.value("w").unwrap().to_vec::<f32>().unwrap()[0];
        assert_eq!(w, level as f32 + 2.0);
        if level + 1 < DEPTH {
            node = node.object("next").unwrap();
        }
    }
}

/// `vmap` over a 10,000-deep chain (every level's `w` has 3 lanes): the same boundary.
#[test]
fn vmap_of_a_deep_chain_maps_every_level() {
    let root = chain(DEPTH, 3);
    let step = nnx_core::transforms::vmap(|args: &[Value]| {
        let mut node = args[0].object()?;
        loop {
            let w = node.var("w")?;
            w.set_value((w.value() * 2.0)?)?;
            match node.get("next") {
                Ok(next) => node = next.object()?,
                Err(_) => break,
            }
        }
        Ok(Value::from(()))
    })
    .in_axes(0);
    step.call(&Reference, (&root,)).unwrap();
    let mut node = root.clone();
    for level in 0..DEPTH {
        assert_eq!(
            node.value("w").unwrap().to_vec::<f32>().unwrap(),
            vec![2.0 * level as f32; 3]
        );
        if level + 1 < DEPTH {
            node = node.object("next").unwrap();
        }
    }
}
