//! split / merge / update / state / graphdef / clone, with Flax's rules and better errors.

mod common;

use common::{Count, guide_weights};
use nnx_core::{
    BatchStat, ErrorKind, Filter, Key, List, Object, Param, Path, RngCount, State, Tensor, Value,
    VariableType, graph, graph::Leaf,
};

fn model() -> Object {
    let sub = Object::new("Linear")
        .with("kernel", Param::new(Tensor::ones([2, 3])))
        .unwrap()
        .with("bias", Param::new(Tensor::zeros([3])))
        .unwrap();
    Object::new("Model")
        .with("sub", sub)
        .unwrap()
        .with("stats", BatchStat::new(Tensor::zeros([3])))
        .unwrap()
        .with("raw", Tensor::arange(2))
        .unwrap()
}

#[test]
fn state_leaves_are_the_graphs_own_variables() {
    let m = model();
    let state = graph::state(&m);
    let paths: Vec<String> = state.paths().map(Path::to_string).collect();
    assert_eq!(
        paths,
        [
            "('raw',)",
            "('stats',)",
            "('sub', 'bias')",
            "('sub', 'kernel')"
        ]
    );
    let kernel = state.variable(&Path::from(["sub", "kernel"])).unwrap();
    assert!(kernel.ptr_eq(&m.object("sub").unwrap().var("kernel").unwrap()));
}

#[test]
fn shared_variable_is_reported_under_its_first_sorted_path() {
    let m = Object::new("M")
        .with("x", Param::new(Tensor::zeros([1])))
        .unwrap();
    m.set("a", m.get("x").unwrap()).unwrap();
    let (def, state) = graph::split(&m);
    assert_eq!(
        state.paths().cloned().collect::<Vec<_>>(),
        vec![Path::from(["a"])]
    );
    assert_eq!(def.num_leaves(), 1);
}

#[test]
fn split_with_filters_is_first_match_and_exhaustive() {
    let m = model();
    let (_, states) = graph::split_by(
        &m,
        &[
            VariableType::PARAM.into(),
            Filter::Array,
            Filter::Everything,
        ],
    )
    .unwrap();
    let lens: Vec<usize> = states.iter().map(State::len).collect();
    assert_eq!(lens, vec![2, 1, 1]);

    let err = graph::split_by(&m, &[VariableType::PARAM.into()]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Filter);
    insta::assert_snapshot!(err.to_string(), @r"
    Non-exhaustive filters, got a non-empty remainder: [('raw',), ('stats',)].
    Use `Filter::Everything` (`...` in Flax) as the last filter to match all remaining elements.
    ");

    let err = graph::split_by(&m, &[Filter::Everything, Filter::Array]).unwrap_err();
    insta::assert_snapshot!(err.to_string(), @"`Everything` (`...` or `True`) can only be used as the last filter, got it at index 0");
}

#[test]
fn merge_reuses_variables_and_rebuilds_objects() {
    let m = model();
    let (def, params, rest) = {
        let (def, mut states) =
            graph::split_by(&m, &[VariableType::PARAM.into(), Filter::Everything]).unwrap();
        let rest = states.pop().unwrap();
        (def, states.pop().unwrap(), rest)
    };
    // Order of the States does not matter.
    let rebuilt: Object = graph::merge(&def, [&rest, &params]).unwrap();
    assert!(!rebuilt.ptr_eq(&m));
    assert!(
        rebuilt
            .object("sub")
            .unwrap()
            .var("kernel")
            .unwrap()
            .ptr_eq(&m.object("sub").unwrap().var("kernel").unwrap())
    );
    assert_eq!(graph::graphdef(&rebuilt), def);
}

#[test]
fn merge_validates_every_path() {
    let m = model();
    let (def, state) = graph::split(&m);
    let mut renamed = State::new();
    for (path, leaf) in &state {
        let path = if path == &Path::from(["stats"]) {
            Path::from(["statz"])
        } else {
            path.clone()
        };
        renamed.insert(path, leaf.clone());
    }
    let err = graph::merge::<Object>(&def, [&renamed]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Merge);
    insta::assert_snapshot!(err.to_string(), @"merge: the states do not match the GraphDef: missing paths [('stats',)]; unexpected paths [('statz',)]");

    let mut missing = state.clone();
    missing.remove(&Path::from(["raw"]));
    let err = graph::merge::<Object>(&def, [&missing]).unwrap_err();
    insta::assert_snapshot!(err.to_string(), @"merge: the states do not match the GraphDef: missing paths [('raw',)]");

    let err = graph::merge::<Object>(&def, [&state, &state]).unwrap_err();
    insta::assert_snapshot!(err.to_string(), @"merge: path ('raw',) is provided by more than one State");
}

#[test]
fn merge_wraps_raw_arrays_into_variables_of_the_recorded_type() {
    let p = Param::new(Tensor::zeros([2])).with_metadata("sharding", nnx_core::static_tuple!["a"]);
    let m = Object::new("M").with("p", p).unwrap();
    let (def, _) = graph::split(&m);
    let mut pure = State::new();
    pure.insert(["p"], Leaf::Array(Tensor::ones([2])));
    let rebuilt: Object = graph::merge(&def, [&pure]).unwrap();
    let v = rebuilt.var("p").unwrap();
    assert_eq!(v.variable_type(), VariableType::PARAM);
    assert_eq!(
        v.metadata_value("sharding"),
        Some(nnx_core::static_tuple!["a"])
    );
    assert_eq!(v.value().to_vec::<f32>().unwrap(), vec![1.0, 1.0]);
}

#[test]
fn graphdef_includes_statics_and_metadata_but_not_values() {
    let a = guide_weights().unwrap();
    let b = guide_weights().unwrap();
    assert_eq!(graph::graphdef(&a), graph::graphdef(&b));
    b.var("kernel")
        .unwrap()
        .set_value(Tensor::ones([4]))
        .unwrap();
    assert_eq!(graph::graphdef(&a), graph::graphdef(&b));
    b.set("flag", true).unwrap();
    assert_ne!(graph::graphdef(&a), graph::graphdef(&b));
    a.var("count").unwrap().set_metadata("tag", "c").unwrap();
    assert_ne!(
        graph::graphdef(&a),
        graph::graphdef(&guide_weights().unwrap())
    );
}

#[test]
fn update_writes_values_in_place_and_adds_missing_keys() {
    let m = model();
    let kernel = m.object("sub").unwrap().var("kernel").unwrap();
    let mut new = State::new();
    new.insert(["sub", "kernel"], Leaf::Array(Tensor::zeros([2, 3])));
    new.insert(
        ["extra"],
        Leaf::Variable(nnx_core::Variable::from(Count::new(Tensor::arange(1)))),
    );
    graph::update(&m, &new).unwrap();
    assert!(
        m.object("sub")
            .unwrap()
            .var("kernel")
            .unwrap()
            .ptr_eq(&kernel)
    );
    assert_eq!(kernel.value().to_vec::<f32>().unwrap(), vec![0.0; 6]);
    assert_eq!(m.var("extra").unwrap().type_name(), "Count");
}

#[test]
fn update_rejects_leaves_where_the_graph_has_subgraphs() {
    let m = model();
    let mut bad = State::new();
    bad.insert(["sub"], Leaf::Array(Tensor::ones([1])));
    bad.insert(["stats"], Leaf::Array(Tensor::ones([3])));
    let err = graph::update(&m, &bad).unwrap_err();
    insta::assert_snapshot!(err.to_string(), @"Expected a leaf at ('sub',) to match the State, but the graph holds a 'Linear' object there");
    // Nothing was written.
    assert_eq!(
        m.value("stats").unwrap().to_vec::<f32>().unwrap(),
        vec![0.0; 3]
    );
}

#[test]
fn clone_copies_variables_but_keeps_sharing() {
    let m = Object::new("M")
        .with("w", Param::new(Tensor::zeros([1])))
        .unwrap();
    m.set("alias", m.get("w").unwrap()).unwrap();
    m.set("me", &m).unwrap();
    let c: Object = graph::clone(&m);
    assert!(!c.var("w").unwrap().ptr_eq(&m.var("w").unwrap()));
    assert!(c.var("w").unwrap().ptr_eq(&c.var("alias").unwrap()));
    assert!(c.object("me").unwrap().ptr_eq(&c));
}

#[test]
fn containers_keep_their_sharing_through_merge() {
    // Flax loses this (SEMANTICS.md §13 item 10); here the List keeps its identity.
    let shared = List::new([Value::from(Param::new(Tensor::zeros([1])))]);
    let m = Object::new("M")
        .with("a", shared.clone())
        .unwrap()
        .with("b", shared)
        .unwrap();
    let c: Object = graph::clone(&m);
    assert!(c.list("a").unwrap().ptr_eq(&c.list("b").unwrap()));
    c.list("a").unwrap().push(1).unwrap();
    assert_eq!(c.list("b").unwrap().len(), 2);
}

#[test]
fn string_filters_select_by_tag() {
    let stream = Object::new("RngStream")
        .with(
            "count",
            RngCount::new(Tensor::scalar(0u32)).with_metadata("tag", "dropout"),
        )
        .unwrap();
    let m = Object::new("M")
        .with("rng", stream)
        .unwrap()
        .with("w", Param::new(Tensor::zeros([1])))
        .unwrap();
    let selected = graph::state_by(&m, &"dropout".into());
    assert_eq!(
        selected.paths().cloned().collect::<Vec<_>>(),
        vec![Path::from(["rng", "count"])]
    );
    let int_key = Path::from(vec![Key::from("lst"), Key::Int(0)]);
    assert_eq!(int_key.to_string(), "('lst', 0)");
}

#[test]
fn update_rebuilds_tuples_that_hold_arrays() {
    let p = Param::new(Tensor::zeros([1]));
    let m = Object::new("M")
        .with(
            "pair",
            Value::tuple(vec![Value::from(Tensor::zeros([2])), Value::from(&p)]),
        )
        .unwrap();
    let mut new = State::new();
    new.insert(
        vec![Key::from("pair"), Key::Int(0)],
        Leaf::Array(Tensor::ones([2])),
    );
    new.insert(
        vec![Key::from("pair"), Key::Int(1)],
        Leaf::Array(Tensor::ones([1])),
    );
    graph::update(&m, &new).unwrap();
    let state = graph::state(&m);
    let first = state
        .get(&Path::from(vec![Key::from("pair"), Key::Int(0)]))
        .unwrap();
    assert_eq!(first.value().to_vec::<f32>().unwrap(), vec![1.0, 1.0]);
    assert_eq!(p.value().to_vec::<f32>().unwrap(), vec![1.0]);
}

/// A bad checkpoint restore: out-of-range, negative and wrong-kind keys are errors naming
/// the path, and a failed update writes nothing (issue 8).
#[test]
fn update_rejects_keys_a_list_cannot_have() {
    let list = List::new([Value::from(Param::new(Tensor::zeros([1])))]);
    let first = list.get(0).unwrap().as_variable().unwrap().clone();
    for keys in [vec![5i64], vec![-1], vec![2]] {
        let mut state = State::new();
        state.insert([0i64], Leaf::Array(Tensor::ones([1])));
        state.insert(
            Path::from_iter(keys.clone()),
            Leaf::Array(Tensor::ones([1])),
        );
        let err = graph::update(&list, &state).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Graph);
        assert!(err.to_string().contains(&Path::from_iter(keys).to_string()));
        assert_eq!(list.len(), 1);
        assert_eq!(first.value().to_vec::<f32>().unwrap(), vec![0.0]);
        assert!(list.pop().unwrap().is_some());
        list.push(first.clone()).unwrap();
    }
    let mut state = State::new();
    state.insert([5i64], Leaf::Array(Tensor::ones([1])));
    state.insert([-1i64], Leaf::Array(Tensor::ones([1])));
    insta::assert_snapshot!(graph::update(&list, &state).unwrap_err().to_string(), @"cannot update path (-1,): index -1 is out of range for a List of length 1 (elements 0..1 can be replaced, and index 1 appends)");
    let mut state = State::new();
    state.insert(["x"], Leaf::Array(Tensor::ones([1])));
    insta::assert_snapshot!(graph::update(&list, &state).unwrap_err().to_string(), @"cannot update path ('x',): a List is indexed by integers, not by the key 'x'");
    assert_eq!(list.len(), 1);
    // Appending at `len` (and then at `len + 1`) is what Flax's List allows.
    let mut state = State::new();
    state.insert([1i64], Leaf::Array(Tensor::ones([1])));
    state.insert(
        [2i64],
        Leaf::Variable(nnx_core::Variable::from(Param::new(Tensor::ones([2])))),
    );
    graph::update(&list, &state).unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list.get(2).unwrap().as_tensor().unwrap().shape(), vec![2]);
    assert_eq!(
        list.pop().unwrap().map(|v| v.kind_name()),
        Some("a Param variable".to_owned())
    );
}

#[test]
fn update_rejects_integer_keys_on_objects() {
    let m = model();
    let mut state = State::new();
    state.insert(["stats"], Leaf::Array(Tensor::ones([3])));
    state.insert([7i64], Leaf::Array(Tensor::ones([1])));
    let err = graph::update(&m, &state).unwrap_err();
    insta::assert_snapshot!(err.to_string(), @"cannot update path (7,): a 'Model' object has attributes named by strings, not the integer key 7");
    assert_eq!(m.attribute_names(), vec!["sub", "stats", "raw"]);
    assert_eq!(
        m.value("stats").unwrap().to_vec::<f32>().unwrap(),
        vec![0.0; 3]
    );
    // A nested path through a missing integer key is an error too.
    let mut state = State::new();
    state.insert(
        Path::from_iter([Key::from("sub"), Key::Int(3)]),
        Leaf::Array(Tensor::ones([1])),
    );
    insta::assert_snapshot!(graph::update(&m, &state).unwrap_err().to_string(), @"cannot update path ('sub', 3): a 'Linear' object has attributes named by strings, not the integer key 3");
    // A Dict takes both kinds of key.
    let d = nnx_core::Dict::new();
    let mut state = State::new();
    state.insert([7i64], Leaf::Array(Tensor::ones([1])));
    state.insert(["a"], Leaf::Array(Tensor::ones([1])));
    graph::update(&d, &state).unwrap();
    assert_eq!(d.len(), 2);
    assert!(d.get(7i64).is_ok());
}

/// A write the current trace level may not make fails the whole update before anything is
/// written (the raw array sorts first and would otherwise have been replaced already).
#[test]
fn update_checks_every_trace_level_before_writing() {
    let outer = Param::new(Tensor::zeros([1]));
    let _inner = nnx_core::trace::enter_level();
    let inner = Object::new("Inner")
        .with("a", Tensor::zeros([1]))
        .unwrap()
        .with("v", &outer)
        .unwrap();
    let mut state = State::new();
    state.insert(Path::from(["a"]), Leaf::Array(Tensor::ones([1])));
    state.insert(Path::from(["v"]), Leaf::Array(Tensor::ones([1])));
    let err = graph::update(&inner, &state).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TraceContext);
    assert_eq!(
        inner.value("a").unwrap().to_vec::<f32>().unwrap(),
        vec![0.0]
    );
    assert_eq!(outer.value().to_vec::<f32>().unwrap(), vec![0.0]);
}

/// A plain map (`Value::Map`, Flax's plain dict) is a value: described at every occurrence,
/// so split/merge of two occurrences gives two maps that share the Variable inside.
#[test]
fn plain_maps_split_merge_and_print_as_dicts() {
    let w = Param::new(Tensor::ones([2]));
    let d = Value::map([("w", Value::from(&w)), ("raw", Tensor::arange(2).into())]);
    let pair = Value::tuple(vec![d.clone(), d.clone()]);
    let (def, state) = graph::split(&pair);
    let paths: Vec<String> = state.paths().map(Path::slashed).collect();
    // The Variable once (shared), each map's raw array at its own path.
    assert_eq!(paths, ["0/raw", "0/w", "1/raw"]);
    let rebuilt: Value = graph::merge(&def, [&state]).unwrap();
    let (a, b) = (rebuilt.entry(0).unwrap(), rebuilt.entry(1).unwrap());
    assert!(matches!(a, Value::Map(_)) && matches!(b, Value::Map(_)));
    let (wa, wb) = (
        a.entry("w").unwrap().variable().unwrap(),
        b.entry("w").unwrap().variable().unwrap(),
    );
    assert!(wa.ptr_eq(&wb) && wa.ptr_eq(&w));
    insta::assert_snapshot!(d.to_string(), @r"
    {'raw': Array([0, 1], dtype=int32), 'w': Param( # 2 (8 B)
      value=Array([1., 1.], dtype=float32)
    )}
    ");
    let err = d.entry("missing").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    insta::assert_snapshot!(err.to_string(), @"key 'missing' not found in dict (keys: 'raw', 'w')");
}

/// `update` writes through a plain map held by an object: a Variable in place, a raw array
/// by rebuilding the map.
#[test]
fn update_writes_through_a_plain_map_attribute() {
    let w = Param::new(Tensor::ones([2]));
    let m = Object::new("M")
        .with(
            "d",
            Value::map([("w", Value::from(&w)), ("raw", Tensor::zeros([1]).into())]),
        )
        .unwrap();
    let mut new = State::new();
    new.insert(Path::parse("d/w").unwrap(), Leaf::Array(Tensor::zeros([2])));
    new.insert(
        Path::parse("d/raw").unwrap(),
        Leaf::Array(Tensor::ones([1])),
    );
    graph::update(&m, &new).unwrap();
    assert_eq!(w.value().to_vec::<f32>().unwrap(), [0.0, 0.0]);
    let d = m.get("d").unwrap();
    assert_eq!(
        d.entry("raw")
            .unwrap()
            .as_tensor()
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        [1.0]
    );
    assert!(d.entry("w").unwrap().variable().unwrap().ptr_eq(&w));
}
