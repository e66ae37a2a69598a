//! Invariants of the graph operations over random graphs.

use nnx_conformance::graphs::graph_blueprint;
use nnx_conformance::{VariableIdentity, check_isomorphic};
use nnx_core::{ErrorKind, Filter, Key, Object, Path, State, Value, VariableType, graph};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/proptest-regressions/graph_properties.txt"
            )),
        )),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn merge_of_split_is_isomorphic_and_shares_the_variables(bp in graph_blueprint()) {
        let g = bp.build();
        let (def, state) = graph::split(&g);
        let merged: Object = graph::merge(&def, [&state]).unwrap();
        prop_assert!(!merged.ptr_eq(&g));
        if let Err(e) = check_isomorphic(&Value::Object(g.clone()), &Value::Object(merged.clone()), VariableIdentity::Same) {
            prop_assert!(false, "{}", e);
        }
        prop_assert_eq!(graph::graphdef(&merged), def);
    }

    #[test]
    fn clone_is_isomorphic_with_new_variables(bp in graph_blueprint()) {
        let g = bp.build();
        let c: Object = graph::clone(&g);
        if let Err(e) = check_isomorphic(&Value::Object(g), &Value::Object(c), VariableIdentity::Distinct) {
            prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn update_with_own_state_changes_nothing(bp in graph_blueprint()) {
        let g = bp.build();
        let before: Object = graph::clone(&g);
        let def = graph::graphdef(&g);
        let leaves_before: Vec<_> = graph::state(&g).iter().map(|(p, _)| p.clone()).collect();
        graph::update(&g, &graph::state(&g)).unwrap();
        prop_assert_eq!(graph::graphdef(&g), def);
        let leaves_after: Vec<_> = graph::state(&g).iter().map(|(p, _)| p.clone()).collect();
        prop_assert_eq!(leaves_before, leaves_after);
        if let Err(e) = check_isomorphic(&Value::Object(before), &Value::Object(g), VariableIdentity::Any) {
            prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn filtered_split_puts_every_leaf_in_exactly_one_state(
        bp in graph_blueprint(),
        first in 0usize..4,
    ) {
        let g = bp.build();
        let filters = [
            Filter::from(VariableType::PARAM),
            Filter::from("params"),
            Filter::from(VariableType::RNG_STATE),
            Filter::path_contains("kernel"),
        ];
        let chosen = vec![filters[first].clone(), filters[(first + 1) % 4].clone(), Filter::Everything];
        let (def, states) = graph::split_by(&g, &chosen).unwrap();
        let all = graph::state(&g);
        let total: usize = states.iter().map(State::len).sum();
        prop_assert_eq!(total, all.len());
        for (path, _) in &all {
            let holders = states.iter().filter(|s| s.get(path).is_some()).count();
            prop_assert_eq!(holders, 1, "{} is in {} states", path, holders);
        }
        // And each leaf is in the state of the first filter that matches it.
        for (i, s) in states.iter().enumerate() {
            for (path, leaf) in s {
                let first_match = chosen.iter().position(|f| f.matches(path, leaf));
                prop_assert_eq!(first_match, Some(i));
            }
        }
        let merged: Object = graph::merge(&def, &states).unwrap();
        prop_assert_eq!(graph::graphdef(&merged), def);
    }

    #[test]
    fn merge_with_a_renamed_or_missing_path_is_an_error(bp in graph_blueprint(), pick in any::<prop::sample::Index>()) {
        let g = bp.build();
        let (def, state) = graph::split(&g);
        prop_assume!(!state.is_empty());
        let victim = state.paths().nth(pick.index(state.len())).cloned().unwrap();

        let mut missing = state.clone();
        missing.remove(&victim);
        let err = graph::merge::<Object>(&def, [&missing]).unwrap_err();
        prop_assert_eq!(err.kind(), ErrorKind::Merge);

        let mut renamed = state.clone();
        let leaf = renamed.remove(&victim).unwrap();
        let mut new_path: Vec<Key> = victim.keys().to_vec();
        new_path.pop();
        new_path.push(Key::from("zz_renamed"));
        renamed.insert(Path::from(new_path), leaf);
        let err = graph::merge::<Object>(&def, [&renamed]).unwrap_err();
        prop_assert_eq!(err.kind(), ErrorKind::Merge);
    }
}

/// Guards the strategy itself: random graphs must actually contain the features the
/// properties are about.
#[test]
fn random_graphs_cover_sharing_cycles_and_statics() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut shared, mut cyclic, mut statics, mut containers) = (0, 0, 0, 0);
    for _ in 0..200 {
        let g = graph_blueprint()
            .new_tree(&mut runner)
            .unwrap()
            .current()
            .build();
        let def = format!("{}", graph::graphdef(&g));
        let refs = def.matches("Ref[").count();
        if refs > 0 {
            shared += 1;
        }
        if def.contains("Ref[0]") {
            cyclic += 1;
        }
        if def
            .lines()
            .any(|l| l.contains(": '") || l.contains(": None") || l.contains(": True"))
        {
            statics += 1;
        }
        if def.contains("List[") || def.contains("Dict[") {
            containers += 1;
        }
    }
    assert!(
        shared > 20 && cyclic > 5 && statics > 20 && containers > 20,
        "{shared} {cyclic} {statics} {containers}"
    );
}
