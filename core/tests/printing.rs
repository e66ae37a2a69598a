//! Objects, Variables and States print exactly as Flax NNX prints them.

mod common;

use common::{Count, guide_weights, seed_guide};
use nnx_core::{
    BatchStat, Dict, List, Object, Param, Tensor, Value, graph, static_list, static_tuple,
};

#[test]
fn graph_updates_weights_prints_like_flax_golden() {
    // The guide's crazy_vector_dot, applied outside a transform; the transform's outer merge
    // re-sets attributes in sorted order, which graph::clone reproduces.
    let weights = guide_weights().unwrap();
    weights.var("count").unwrap().update(|c| c + 1).unwrap();
    weights
        .set("some_property", static_list!["a", 2, false])
        .unwrap();
    weights.del("bias").unwrap();
    weights
        .set("new_param", weights.get("kernel").unwrap())
        .unwrap();
    let after: Object = graph::clone(&weights);

    let golden = seed_guide();
    let expected = golden["graph_updates"]["repr"].as_str().unwrap();
    assert_eq!(after.to_string(), expected);
    assert_eq!(
        after.attribute_names(),
        golden["graph_updates"]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    );
    assert!(
        after
            .var("new_param")
            .unwrap()
            .ptr_eq(&after.var("kernel").unwrap())
    );
}

#[test]
fn state_propagation_count_prints_like_the_guide() {
    let count = Count::new((Tensor::arange(10) + 1).unwrap());
    insta::assert_snapshot!(count.to_string(), @r"
    Count( # 10 (40 B)
      value=Array([ 1,  2,  3,  4,  5,  6,  7,  8,  9, 10], dtype=int32)
    )
    ");
}

#[test]
fn module_repr_shows_shared_nodes_once_and_summarises_arrays() {
    let linear = Object::new("Linear")
        .with("kernel", Param::new(Tensor::zeros([2, 3])))
        .unwrap()
        .with("bias", Param::new(Tensor::zeros([3])))
        .unwrap()
        .with("in_features", 2)
        .unwrap()
        .with("_private", 1)
        .unwrap();
    let block = Object::new("Block")
        .with("linear", &linear)
        .unwrap()
        .with("count", Count::new(Tensor::weak_scalar(0i32)))
        .unwrap()
        .with("shared", &linear)
        .unwrap()
        .with("act", "relu")
        .unwrap()
        .with("buf", Tensor::zeros_of([4], nnx_core::DType::I32).unwrap())
        .unwrap();
    insta::assert_snapshot!(block.to_string());
}

#[test]
fn cycles_print_as_references() {
    let m = Object::new("Node");
    m.set("me", &m).unwrap();
    m.set("w", Param::new(Tensor::ones([1]))).unwrap();
    insta::assert_snapshot!(m.to_string(), @r"
    Node( # Param: 1 (4 B)
      me=Node(...),
      w=Param( # 1 (4 B)
        value=Array([1.], dtype=float32)
      )
    )
    ");
}

#[test]
fn empty_objects_and_containers() {
    assert_eq!(Object::new("E").to_string(), "E()");
    assert_eq!(List::new([]).to_string(), "List([])");
    let list = List::new([Value::from(1), Value::from(Param::new(Tensor::ones([1])))]);
    insta::assert_snapshot!(list.to_string(), @r"
    List([
      1,
      Param( # 1 (4 B)
        value=Array([1.], dtype=float32)
      )
    ])
    ");
    let dict = Dict::new().with("a", 1).unwrap();
    assert_eq!(dict.to_string(), "Dict({\n  'a': 1\n})");
}

#[test]
fn variable_metadata_and_standalone_values_print_in_full() {
    let p = Param::new(Tensor::ones([10]))
        .with_metadata("note", "x")
        .with_metadata("sharding", static_tuple!["a", ()]);
    insta::assert_snapshot!(p.to_string(), @r"
    Param( # 10 (40 B)
      value=Array([1., 1., 1., 1., 1., 1., 1., 1., 1., 1.], dtype=float32),
      note='x',
      sharding=('a', None)
    )
    ");
    let big = BatchStat::new(Tensor::ones([1000, 1000]));
    insta::assert_snapshot!(big.to_string());
}

#[test]
fn state_prints_nested_with_full_arrays() {
    let sub = Object::new("Sub")
        .with("w", Param::new(Tensor::ones([2, 2])))
        .unwrap();
    let m = Object::new("M")
        .with("bias", Param::new(Tensor::zeros([3])))
        .unwrap()
        .with("sub", sub)
        .unwrap();
    insta::assert_snapshot!(graph::state(&m).to_string(), @r"
    State({
      'bias': Param( # 3 (12 B)
        value=Array([0., 0., 0.], dtype=float32)
      ),
      'sub': {
        'w': Param( # 4 (16 B)
          value=Array([[1., 1.],
                 [1., 1.]], dtype=float32)
        )
      }
    })
    ");
    assert_eq!(nnx_core::State::new().to_string(), "State({})");
}

#[test]
fn rng_variables_are_totalled_as_rng_state() {
    let stream = Object::new("RngStream")
        .with("count", nnx_core::RngCount::new(Tensor::scalar(0u32)))
        .unwrap()
        .with(
            "key",
            nnx_core::RngKey::new(Tensor::from_keys(&[], vec![[0, 0]]).unwrap()),
        )
        .unwrap();
    let rngs = Object::new("Rngs").with("default", stream).unwrap();
    let first_line = rngs.to_string().lines().next().unwrap().to_owned();
    assert_eq!(first_line, "Rngs( # RngState: 2 (12 B)");
}

/// In a cycle every object reaches the same Variables, but the order of the types in its
/// comment is the order of first encounter from that object.
#[test]
fn comments_in_a_cycle_count_everything_in_each_objects_own_order() {
    let a = Object::new("A");
    let b = Object::new("B");
    a.set("b", &b).unwrap();
    a.set("p", Param::new(Tensor::ones([2]))).unwrap();
    b.set("a", &a).unwrap();
    b.set("s", BatchStat::new(Tensor::ones([3]))).unwrap();
    insta::assert_snapshot!(a.to_string(), @r#"
    A( # BatchStat: 3 (12 B), Param: 2 (8 B), Total: 5 (20 B)
      b=B( # Param: 2 (8 B), BatchStat: 3 (12 B), Total: 5 (20 B)
        a=A(...),
        s=BatchStat( # 3 (12 B)
          value=Array(shape=(3,), dtype=dtype('float32'))
        )
      ),
      p=Param( # 2 (8 B)
        value=Array(shape=(2,), dtype=dtype('float32'))
      )
    )
    "#);
}
