//! Deep graphs: every traversal is iterative and linear in the size of the graph (issue 8).
//!
//! A chain `Node(w=Param, next=Node(w=Param, next=...))` of 100,000 levels splits, merges,
//! clones, updates, prints and drops on the default 2 MiB test-thread stack, in the test
//! profile (workspace crates unoptimised). Before, each of these aborted with a stack
//! overflow past ~3,000 levels, and merge at 3,000 levels took 4 s (quadratic paths).
//!
//! Timings measured (test profile, shared 2-core machine) for the chain at depths 1k / 10k /
//! 100k, showing the cost is linear:
//!
//! | operation | 1,000 | 10,000 | 100,000 |
//! |---|---|---|---|
//! | build the chain | 2 ms | 34 ms | 188 ms |
//! | `split` | 8 ms | 84 ms | 464 ms |
//! | `merge` (State from the same split) | 14 ms | 105 ms | 1.15 s |
//! | `graphdef()` + `state()` + `merge` (separate traversals) | 31 ms | 317 ms | 2.8 s |
//! | `clone` | 19 ms | 190 ms | 2.5 s |
//! | `State::map` | 6 ms | 30 ms | 397 ms |
//! | `update` | 3 ms | 44 ms | 589 ms |
//! | print the object / GraphDef / State | 8 / 2 / 2 ms | 32 / 24 / 23 ms | 389 / 368 / 334 ms |
//! | drop | 5 ms | 11 ms | 128 ms |
//!
//! Before (Vec paths, recursive traversals), `merge` at depth 3,000 took 4 s and every
//! operation aborted past ~3,000 levels.

use nnx_core::graph::{self, Leaf};
use nnx_core::{Object, Path, State, Tensor, Value, random};

/// A chain of `depth` objects, each with a one-element Param `w` holding its level and a
/// `next` child (the last has none).
fn chain(depth: usize) -> Object {
    nnx_conformance::graphs::chain(depth, 1)
        .unwrap()
        .expect("depth > 0")
}

/// The object `levels` steps down the chain.
fn descend(root: &Object, levels: usize) -> Object {
    let mut node = root.clone();
    for _ in 0..levels {
        node = node.object("next").unwrap();
    }
    node
}

fn w(node: &Object) -> f32 {
    node.value("w").unwrap().to_vec::<f32>().unwrap()[0]
}

const DEPTH: usize = 100_000;

#[test]
fn deep_chain_splits_merges_clones_updates_and_drops() {
    let root = chain(DEPTH);
    let (def, state) = graph::split(&root);
    assert_eq!(def.num_leaves(), DEPTH);
    assert_eq!(state.len(), DEPTH);
    let deepest: Path = std::iter::repeat_n("next", DEPTH - 1)
        .chain(["w"])
        .collect();
    assert!(state.variable(&deepest).is_ok());

    // merge reuses the State's Variables and builds new objects.
    let merged: Object = graph::merge(&def, [&state]).unwrap();
    assert!(!merged.ptr_eq(&root));
    let bottom = descend(&merged, DEPTH - 1);
    assert_eq!(w(&bottom), (DEPTH - 1) as f32);
    assert!(
        bottom
            .var("w")
            .unwrap()
            .ptr_eq(&descend(&root, DEPTH - 1).var("w").unwrap())
    );
    assert_eq!(graph::graphdef(&merged), def);
    drop(merged);

    // The GraphDef and State of separate traversals match too (no shared path nodes).
    let state2 = graph::state(&root);
    let def2 = graph::graphdef(&root);
    let _: Object = graph::merge(&def2, [&state2]).unwrap();

    // clone makes new Variables.
    let copy = graph::clone(&root);
    let copy_bottom = descend(&copy, DEPTH - 1);
    assert!(
        !copy_bottom
            .var("w")
            .unwrap()
            .ptr_eq(&descend(&root, DEPTH - 1).var("w").unwrap())
    );
    assert_eq!(w(&copy_bottom), (DEPTH - 1) as f32);
    drop(copy_bottom);
    drop(copy);

    // update writes every level in place.
    let doubled = state.map(|_, t| t * 2.0).unwrap();
    graph::update(&root, &doubled).unwrap();
    assert_eq!(w(&descend(&root, DEPTH - 1)), 2.0 * (DEPTH - 1) as f32);

    // The nested view of the State is as deep as the graph; sub-States re-root paths.
    let nested = state.nested();
    let copy = nested.clone();
    let debug = format!("{copy:?}");
    assert!(debug.starts_with("{'next': {'next': {"), "{}", &debug[..40]);
    assert_eq!(debug.matches("Param#").count(), DEPTH);
    drop((nested, copy));
    let below = state.at(&Path::from(["next", "next"]));
    assert_eq!(below.len(), DEPTH - 2);
    assert!(below.get(&Path::from(["w"])).is_some());
    drop((def, state, doubled, def2, state2));
    drop(root);
}

#[test]
fn deep_chain_prints_with_bounded_nesting() {
    let root = chain(DEPTH);
    let printed = root.to_string();
    // Nesting deeper than 64 levels prints as `TypeName(...)`; the output is small.
    assert!(printed.len() < 200_000, "{} bytes", printed.len());
    assert_eq!(printed.matches("Node(...)").count(), 1);
    insta::assert_snapshot!(around(&printed, "Node(...)"));
    let def = graph::graphdef(&root).to_string();
    assert!(def.len() < 200_000);
    insta::assert_snapshot!(around(&def, "..."));
    let state = graph::state(&root).to_string();
    assert!(state.len() < 200_000);
    insta::assert_snapshot!(around(&state, "{...}"));
    // A Value prints the same way.
    assert_eq!(Value::from(root.clone()).to_string(), printed);
}

/// The first lines of `s`, and the lines around the first one containing `marker`.
fn around(s: &str, marker: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("{marker} not printed"));
    format!(
        "{}\n[... lines {}..{} ...]\n{}",
        lines[..3].join("\n"),
        3,
        at - 3,
        lines[at - 3..(at + 4).min(lines.len())].join("\n")
    )
}

#[test]
fn a_million_deep_chain_drops() {
    let mut next: Option<Object> = None;
    for _ in 0..1_000_000 {
        let node = Object::new("Link");
        if let Some(child) = next.take() {
            node.set("next", child).unwrap();
        }
        next = Some(node);
    }
    drop(next);
}

#[test]
fn deep_cycle_splits_merges_clones_and_prints() {
    let root = chain(DEPTH);
    let bottom = descend(&root, DEPTH - 1);
    bottom.set("next", root.clone()).unwrap(); // close the cycle
    drop(bottom);
    let (def, state) = graph::split(&root);
    assert_eq!(state.len(), DEPTH);
    let merged: Object = graph::merge(&def, [&state]).unwrap();
    assert!(descend(&merged, DEPTH).ptr_eq(&merged));
    let copy = graph::clone(&root);
    assert!(descend(&copy, DEPTH).ptr_eq(&copy));
    assert!(!copy.ptr_eq(&root));
    // Every printed object of the cycle reaches all the Params (one component).
    let printed = root.to_string();
    assert!(printed.len() < 200_000);
    assert_eq!(
        printed.matches("Node( # Param: 100,000 (400.0 KB)").count(),
        nnx_core::graph::MAX_PRINT_DEPTH
    );
    assert_eq!(graph::graphdef(&copy), def);
    // Break the cycles so that the objects are freed.
    for o in [root, merged, copy] {
        descend(&o, DEPTH - 1).del("next").unwrap();
    }
}

#[test]
fn deep_chain_random_streams_are_found() {
    let root = chain(10_000);
    descend(&root, 9_999)
        .set("rngs", random::Rngs::new(0).unwrap())
        .unwrap();
    let found = random::rng_streams(&root).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0.len(), 10_001);
    let backups = random::split_rngs(&root, 4, &nnx_core::Filter::Everything).unwrap();
    assert_eq!(backups.len(), 1);
    backups.restore().unwrap();
}

#[test]
fn update_with_a_deep_state_built_by_hand() {
    let root = chain(2_000);
    let mut state = State::new();
    let path: Path = std::iter::repeat_n("next", 1_999).chain(["w"]).collect();
    state.insert(path, Leaf::Array(Tensor::ones([1])));
    graph::update(&root, &state).unwrap();
    assert_eq!(w(&descend(&root, 1_999)), 1.0);
}
