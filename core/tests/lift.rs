//! The transform boundary (Flax's four-step recipe) with an identity "engine": values cross
//! unchanged, so these tests isolate the NNX semantics — state and graph-update
//! propagation, identity, aliasing, the closure rule, and failure atomicity.

mod common;

use std::fmt;

use common::{Count, guide_weights, seed_guide};
use nnx_core::lift::{self, Prefix};
use nnx_core::{
    BatchStat, Dict, Error, ErrorKind, Filter, List, Object, Param, Result, Tensor, Value,
    VariableType, static_list, trace,
};

/// A vmap-like prefix leaf: an axis or `None` (broadcast).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Ax(Option<i32>);

impl fmt::Display for Ax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("None"),
        }
    }
}

fn axis(a: i32) -> Prefix<Ax> {
    Prefix::Leaf(Ax(Some(a)))
}

/// Runs `f` across a transform boundary whose engine passes every value through unchanged.
fn call(
    args: &[Value],
    in_axes: &Prefix<Ax>,
    out_axes: &Prefix<Ax>,
    f: impl FnOnce(&[Value]) -> Result<Value>,
) -> Result<Value> {
    let lowered = lift::lower_args(args, in_axes)?;
    let values = lowered.leaves().iter().map(|l| l.value.clone()).collect();
    let (outputs, out_values) = {
        let _inner = trace::enter_level();
        let raised = lift::raise(&lowered, values)?;
        let output = f(&raised.args)?;
        let outputs = lift::lower_outputs(&raised, in_axes, &output, out_axes)?;
        let out_values = outputs.leaves().iter().map(|l| l.value.clone()).collect();
        (outputs, out_values)
    };
    lift::write_back(&lowered, &outputs, out_values)
}

fn obj(v: &Value) -> Object {
    v.as_object().cloned().expect("an object")
}

#[test]
fn state_changes_inside_propagate_to_the_same_outer_objects() {
    let w = guide_weights().unwrap();
    let count = w.var("count").unwrap();
    call(&[Value::from(&w)], &axis(0), &axis(1), |args| {
        let inner = obj(&args[0]);
        assert!(!inner.ptr_eq(&w), "the function sees fresh objects");
        inner.var("count")?.update(|c| c + 1)?;
        Ok(Value::from(Tensor::zeros([3])))
    })
    .unwrap();
    assert!(w.var("count").unwrap().ptr_eq(&count));
    assert_eq!(
        count.value().to_vec::<i32>().unwrap(),
        (1..=10).collect::<Vec<_>>()
    );
}

#[test]
fn graph_updates_propagate_like_crazy_vector_dot() {
    let w = guide_weights().unwrap();
    let kernel = w.var("kernel").unwrap();
    call(&[Value::from(&w)], &axis(0), &axis(1), |args| {
        let weights = obj(&args[0]);
        weights.var("count")?.update(|c| c + 1)?;
        weights.set("some_property", static_list!["a", 2, false])?;
        weights.del("bias")?;
        weights.set("new_param", weights.get("kernel")?)?;
        Ok(Value::from(Tensor::zeros([3])))
    })
    .unwrap();
    let golden = seed_guide();
    assert_eq!(
        w.to_string(),
        golden["graph_updates"]["repr"].as_str().unwrap()
    );
    assert!(w.var("new_param").unwrap().ptr_eq(&kernel));
    assert!(!w.has("bias"));
}

#[test]
fn returned_inputs_keep_identity_and_new_objects_are_new() {
    let m = Object::new("M")
        .with("p", Param::new(Tensor::zeros([1])))
        .unwrap();
    let out = call(&[Value::from(&m)], &axis(0), &axis(0), |args| {
        let wrapper = Object::new("Wrapper").with("inner", args[0].clone())?;
        Ok(Value::tuple(vec![args[0].clone(), Value::from(wrapper)]))
    })
    .unwrap();
    let Value::Tuple(items) = out else {
        panic!("expected a tuple")
    };
    assert!(obj(&items[0]).ptr_eq(&m));
    let wrapper = obj(&items[1]);
    assert!(wrapper.object("inner").unwrap().ptr_eq(&m));
}

#[test]
fn replaced_variables_and_metadata_changes_propagate() {
    let m = Object::new("M")
        .with("count", Param::new(Tensor::zeros([1])))
        .unwrap()
        .with("p", Param::new(Tensor::zeros([1])))
        .unwrap();
    let old = m.var("count").unwrap();
    call(&[Value::from(&m)], &axis(0), &axis(0), |args| {
        let inner = obj(&args[0]);
        inner.set("count", BatchStat::new(Tensor::scalar(42i32)))?;
        inner.var("p")?.set_metadata("foo", "bar")?; // Flax's jit drops this (§13 item 3)
        Ok(Value::from(()))
    })
    .unwrap();
    assert!(!m.var("count").unwrap().ptr_eq(&old));
    assert_eq!(m.var("count").unwrap().type_name(), "BatchStat");
    assert_eq!(
        m.var("p").unwrap().metadata_value("foo"),
        Some(nnx_core::Static::from("bar"))
    );
}

#[test]
fn aliased_inputs_share_one_inner_object() {
    let m = Object::new("M")
        .with("p", Param::new(Tensor::zeros([1])))
        .unwrap();
    call(
        &[Value::from(&m), Value::from(&m)],
        &axis(0),
        &axis(0),
        |args| {
            assert!(obj(&args[0]).ptr_eq(&obj(&args[1])));
            Ok(Value::from(()))
        },
    )
    .unwrap();
}

fn guide_aliasing_args() -> (Object, Vec<Value>) {
    let m = Object::new("Weights")
        .with("param", Param::new(Tensor::arange(10)))
        .unwrap();
    let inner = Dict::new().with("b", &m).unwrap();
    let arg1 = Dict::new().with("a", inner).unwrap().with("c", &m).unwrap();
    let arg2 = List::new([
        Value::tuple(vec![Value::from(&m), Value::from(&m)]),
        Value::from(&m),
    ]);
    (m, vec![Value::from(arg1), Value::from(arg2)])
}

#[test]
fn inconsistent_aliasing_between_inputs_lists_every_occurrence() {
    let (m, args) = guide_aliasing_args();
    let before = m.to_string();
    let err = call(
        &args,
        &Prefix::Tuple(vec![axis(0), axis(1)]),
        &axis(0),
        |_| panic!("must not run"),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Aliasing);
    let message = err.to_string();
    assert!(message.starts_with(
        "Inconsistent aliasing detected. The following nodes have different prefixes:\nNode: Param"
    ));
    insta::assert_snapshot!(message, @r"
    Inconsistent aliasing detected. The following nodes have different prefixes:
    Node: Param
      args[0]['a']['b'].param: 0
      args[0]['c'].param: 0
      args[1][0][0].param: 1
      args[1][0][1].param: 1
      args[1][1].param: 1
    ");
    assert_eq!(m.to_string(), before);
}

#[test]
fn inconsistent_aliasing_between_inputs_and_outputs() {
    let m = Object::new("Weights")
        .with("param", Param::new(Tensor::arange(10)))
        .unwrap();
    let err = call(&[Value::from(&m)], &axis(0), &axis(1), |args| {
        Ok(args[0].clone())
    })
    .unwrap_err();
    insta::assert_snapshot!(err.to_string(), @r"
    Inconsistent aliasing detected. The following nodes have different prefixes:
    Node: Param
      args[0].param: 0
      output.param: 1
    ");
}

/// A raw array held by a node reached with two prefixes is inconsistent like a Variable: it
/// would come in broadcast and be written back stacked (Flax accepts this silently; after
/// `args[0].sub` is detached inside, `b.sub` comes back as `[[0, 1], [0, 1]]`).
#[test]
fn arrays_in_shared_nodes_must_have_one_prefix() {
    let b = Object::new("Child")
        .with("sub", Tensor::from_slice(&[0.0f32, 1.0]))
        .unwrap();
    let a = Object::new("Root")
        .with("sub", &b)
        .unwrap()
        .with("p", Param::new(Tensor::zeros([2])))
        .unwrap();
    let params_only = Prefix::StateAxes(vec![
        (Filter::from(VariableType::PARAM), Ax(Some(0))),
        (Filter::Everything, Ax(None)),
    ]);
    let in_axes = Prefix::Tuple(vec![params_only, axis(0)]);
    let err = call(
        &[Value::from(&a), Value::from(&b)],
        &in_axes,
        &Prefix::Leaf(Ax(None)),
        |args| {
            obj(&args[0]).set("sub", 0)?;
            Ok(Value::from(()))
        },
    )
    .unwrap_err();
    insta::assert_snapshot!(err.to_string(), @r"
    Inconsistent aliasing detected. The following nodes have different prefixes:
    Node: Array
      args[0].sub.sub: None
      args[1].sub: 0
    ");
    assert!(obj(&Value::from(&a)).object("sub").unwrap().ptr_eq(&b));
    assert_eq!(b.value("sub").unwrap().shape(), &[2]);
    // Arrays of unshared nodes, and shared nodes reached with one prefix, are fine.
    call(
        &[Value::from(&a), Value::from(&b)],
        &Prefix::Tuple(vec![axis(0), axis(0)]),
        &Prefix::Leaf(Ax(None)),
        |_| Ok(Value::from(())),
    )
    .unwrap();
}

#[test]
fn mutating_a_captured_object_is_a_trace_context_error() {
    let counter = Object::new("Counter")
        .with("count", Param::new(Tensor::scalar(0i32)))
        .unwrap();
    let err = call(&[], &Prefix::Tuple(vec![]), &axis(0), |_| {
        counter.var("count")?.update(|c| c + 1)?;
        Ok(Value::from(()))
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TraceContext);
    let golden = seed_guide();
    let flax = golden["closure"]["message"].as_str().unwrap();
    let key_phrase = flax.split(" (https").next().unwrap();
    assert!(err.to_string().starts_with(key_phrase), "{err}");
    // Reading a captured object is fine.
    call(&[], &Prefix::Tuple(vec![]), &axis(0), |_| {
        Ok(Value::from(counter.value("count")?))
    })
    .unwrap();
}

#[test]
fn returning_a_captured_object_is_an_error() {
    let captured = Object::new("Counter");
    let err = call(&[], &Prefix::Tuple(vec![]), &axis(0), |_| {
        Ok(Value::from(&captured))
    })
    .unwrap_err();
    assert!(matches!(err, Error::ExtractFromOtherTrace { .. }));
    insta::assert_snapshot!(err.to_string(), @"Cannot extract graph node from a different trace level: Counter at output belongs to trace level 0 but the transform runs at level 1; pass it as an argument of the enclosing transform instead of capturing it");
}

#[test]
fn state_axes_map_variables_by_filter() {
    let w = guide_weights().unwrap();
    let state_axes = Prefix::state_axes([
        (Filter::from(VariableType::PARAM), Ax(Some(0))),
        (Filter::from(Count::TYPE), Ax(None)),
    ]);
    let lowered = lift::lower_args(&[Value::from(&w)], &Prefix::Tuple(vec![state_axes])).unwrap();
    let prefixes: Vec<(String, String)> = lowered
        .leaves()
        .iter()
        .map(|l| (l.location(), l.prefix.to_string()))
        .collect();
    assert_eq!(
        prefixes,
        [
            ("args[0].bias".to_owned(), "0".to_owned()),
            ("args[0].count".to_owned(), "None".to_owned()),
            ("args[0].kernel".to_owned(), "0".to_owned()),
        ]
    );
}

#[test]
fn state_axes_errors_name_the_variable_and_the_position() {
    let w = guide_weights().unwrap();
    let only_params = Prefix::state_axes([(Filter::from(VariableType::PARAM), Ax(Some(0)))]);
    let err = lift::lower_args(
        &[Value::from(&w)],
        &Prefix::Tuple(vec![only_params.clone()]),
    )
    .err()
    .unwrap();
    insta::assert_snapshot!(err.to_string(), @r"
    No axis found for path=('count',), variable=Count( # 10 (40 B)
      value=Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], dtype=int32)
    )
    ");
    let on_tuple = Prefix::Tuple(vec![only_params.clone()]);
    // StateAxes inside a tuple prefix, directly on the object: fine (Count is unmatched, so
    // this reports the Count again, from inside the tuple).
    let nested = lift::lower_args(
        &[Value::tuple(vec![Value::from(&w)])],
        &Prefix::Tuple(vec![on_tuple]),
    );
    assert_eq!(nested.err().map(|e| e.kind()), Some(ErrorKind::Prefix));
    let err = lift::lower_args(
        &[Value::from(Tensor::zeros([2]))],
        &Prefix::Tuple(vec![only_params]),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::Prefix);
    insta::assert_snapshot!(err.to_string(), @"Cannot use StateAxes on non-graph nodes, found StateAxes({OfType(Param): 0}) for an array of shape [2] at args[0]; StateAxes can only be used directly on objects, lists, dicts or Variables, not as a prefix of a tuple of them");
}

#[test]
fn a_failing_function_leaves_the_callers_objects_untouched() {
    let w = guide_weights().unwrap();
    let before = w.to_string();
    let count_before = w.value("count").unwrap();
    let err = call(&[Value::from(&w)], &axis(0), &axis(0), |args| {
        let inner = obj(&args[0]);
        inner.var("count")?.update(|c| c + 100)?;
        inner.del("kernel")?;
        Err(Error::shape("f", "user failure"))
    })
    .unwrap_err();
    assert_eq!(err, Error::shape("f", "user failure"));
    assert_eq!(w.to_string(), before);
    assert!(w.value("count").unwrap().identical(&count_before));
}

#[test]
fn prefix_arity_mismatch_is_reported() {
    let err = lift::lower_args(
        &[Value::from(Tensor::zeros([1]))],
        &Prefix::Tuple(vec![axis(0), axis(1)]),
    )
    .err()
    .unwrap();
    insta::assert_snapshot!(err.to_string(), @"in_axes has 2 entries but the function takes 1 arguments: in_axes=(0, 1)");
}

/// Locations name every step: `.attr` for object attributes, `['key']` and `[i]` for dict
/// keys, list items and tuple items, `[i]` for tuple positions of the prefix.
#[test]
fn error_locations_print_every_kind_of_step() {
    let m = Object::new("Weights")
        .with("param", Param::new(Tensor::arange(4)))
        .unwrap();
    let shared = Object::new("Shared")
        .with("raw", Value::tuple(vec![Value::from(Tensor::arange(2))]))
        .unwrap()
        .with("w", &m)
        .unwrap();
    let dict = Dict::new()
        .with(
            "k",
            Value::tuple(vec![Value::from(&m), Value::from(&shared)]),
        )
        .unwrap()
        .with(3, &m)
        .unwrap();
    let holder = Object::new("Holder")
        .with("items", List::new([Value::from(dict)]))
        .unwrap();
    let args = [Value::tuple(vec![
        Value::from(&holder),
        Value::from(&shared),
    ])];
    let in_axes = Prefix::Tuple(vec![Prefix::Tuple(vec![axis(0), axis(1)])]);
    let err = call(&args, &in_axes, &axis(0), |_| panic!("must not run")).unwrap_err();
    insta::assert_snapshot!(err.to_string(), @r"
    Inconsistent aliasing detected. The following nodes have different prefixes:
    Node: Param
      args[0][0].items[0][3].param: 0
      args[0][0].items[0]['k'][0].param: 0
      args[0][0].items[0]['k'][1].w.param: 0
      args[0][1].w.param: 1
    Node: Array
      args[0][0].items[0]['k'][1].raw[0]: 0
      args[0][1].raw[0]: 1
    ");

    // The leaves' own locations (used by the transforms' errors).
    let lowered = lift::lower_args(
        &[Value::tuple(vec![
            Value::from(&holder),
            Value::from(Tensor::arange(3)),
        ])],
        &Prefix::Tuple(vec![Prefix::Tuple(vec![axis(0), axis(0)])]),
    )
    .unwrap();
    let locations: Vec<String> = lowered.leaves().iter().map(|l| l.location()).collect();
    assert_eq!(
        locations,
        [
            "args[0][0].items[0][3].param",
            "args[0][0].items[0].k[1].raw[0]",
            "args[0][1]"
        ]
    );

    // A captured object deep in the output.
    let captured = Object::new("Counter");
    let err = call(&[], &Prefix::Tuple(vec![]), &axis(0), |_| {
        let out = Object::new("Out").with(
            "items",
            List::new([Value::from(Dict::new().with(
                "k",
                Value::tuple(vec![Value::from(Tensor::arange(1)), Value::from(&captured)]),
            )?)]),
        )?;
        Ok(Value::from(out))
    })
    .unwrap_err();
    insta::assert_snapshot!(err.to_string(), @"Cannot extract graph node from a different trace level: Counter at output.items[0]['k'][1] belongs to trace level 0 but the transform runs at level 1; pass it as an argument of the enclosing transform instead of capturing it");
}
