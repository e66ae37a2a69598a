//! The transforms guide, section by section, as engine-generic cases checked against what
//! real Flax/JAX computed (`conformance/golden/seed_guide.json`).

use nnx_core::graph::TypedModule;
use nnx_core::lift::Prefix;
use nnx_core::random::{self, Rngs};
use nnx_core::transforms::{StateAxes, jit, vmap};
use nnx_core::{
    Dict, Engine, Filter, List, Module, Object, Param, Result, Tensor, Value, VariableType,
    static_list, variable_type,
};

use crate::golden::{assert_close, golden};
use crate::{CaseResult, Failure, Outcome, ensure};

variable_type!(
    /// The guide's `class Count(nnx.Variable): pass`.
    pub Count: nnx_core::Variable
);

/// The guide's `Weights(nnx.Module)`: `kernel` and `bias`.
#[derive(Module, Clone)]
pub struct Weights {
    kernel: Param,
    bias: Param,
}

/// `Weights` with a call counter (state propagation, StateAxes).
#[derive(Module, Clone)]
#[module(name = "Weights")]
pub struct CountedWeights {
    kernel: Param,
    bias: Param,
    count: Count,
}

/// `Weights` with a counter and a `noise` stream (random state, split_rngs).
#[derive(Module, Clone)]
#[module(name = "Weights")]
pub struct NoisyWeights {
    kernel: Param,
    bias: Param,
    count: Count,
    rngs: Rngs,
}

/// The guide's `WeightStack`, built by a `vmap`ped `__init__`.
#[derive(Module, Clone)]
pub struct WeightStack {
    kernel: Param,
    bias: Param,
}

/// `x @ kernel + bias`, checking there are no batch dimensions.
fn dot(kernel: &Param, bias: &Param, x: &Tensor) -> Result<Tensor> {
    if kernel.value().ndim() != 2 || x.ndim() != 1 {
        return Err(nnx_core::Error::shape(
            "vector_dot",
            "Batch dimensions not allowed",
        ));
    }
    x.matmul(&kernel.value()) + &bias.value()
}

fn vector_dot(w: &Weights, x: &Tensor) -> Result<Tensor> {
    dot(&w.kernel, &w.bias, x)
}

fn counted(kernel: Tensor, count: Tensor) -> CountedWeights {
    CountedWeights {
        kernel: Param::new(kernel),
        bias: Param::new(Tensor::zeros([10, 3])),
        count: Count::new(count),
    }
}

fn guide_inputs() -> Result<(Tensor, Tensor)> {
    let kernel = random::uniform(&random::key(0), [10, 2, 3])?;
    let x = random::normal(&random::key(1), [10, 2])?;
    Ok((kernel, x))
}

/// Basic example: `vmap(vector_dot, in_axes=0, out_axes=1)(weights, x)`.
pub fn guide_basic(engine: &dyn Engine) -> CaseResult {
    let (kernel, x) = guide_inputs()?;
    let g = golden();
    assert_close("basic.kernel", &kernel, &g["basic"]["kernel"])?;
    assert_close("basic.x", &x, &g["basic"]["x"])?;
    let w = Weights {
        kernel: Param::new(kernel),
        bias: Param::new(Tensor::zeros([10, 3])),
    };
    let y = vmap(vector_dot)
        .in_axes(0)
        .out_axes(1)
        .call(engine, (&w, &x))?;
    assert_close("basic.y", &y, &g["basic"]["y"])?;
    Ok(Outcome::Pass)
}

fn create_weights(seed: &Tensor) -> Result<Weights> {
    let key = random::key_from_seeds(seed)?;
    Ok(Weights {
        kernel: Param::new(random::uniform(&key, [2, 3])?),
        bias: Param::new(Tensor::zeros([3])),
    })
}

/// Objects as outputs: `vmap(create_weights)(jnp.arange(10))` builds a stack of Weights.
pub fn guide_create_weights(engine: &dyn Engine) -> CaseResult {
    let w = vmap(create_weights).call(engine, (Tensor::arange(10),))?;
    let g = golden();
    assert_close(
        "create_weights.kernel",
        &w.kernel.value(),
        &g["create_weights"]["kernel"],
    )?;
    assert_close(
        "create_weights.bias",
        &w.bias.value(),
        &g["create_weights"]["bias"],
    )?;
    Ok(Outcome::Pass)
}

/// Transformed methods: `WeightStack.__init__` and `__call__` decorated with `vmap`.
pub fn guide_methods(engine: &dyn Engine) -> CaseResult {
    // __init__(self, seed) under vmap: the method body runs on a fresh object per lane.
    let init = |seed: &Tensor| -> Result<WeightStack> {
        let w = create_weights(seed)?;
        Ok(WeightStack {
            kernel: w.kernel,
            bias: w.bias,
        })
    };
    let stack = vmap(init).call(engine, (Tensor::arange(10),))?;
    let x = random::normal(&random::key(1), [10, 2])?;
    let call = vmap(|s: &WeightStack, x: &Tensor| dot(&s.kernel, &s.bias, x))
        .in_axes(0)
        .out_axes(1);
    let y = call.call(engine, (&stack, &x))?;
    let g = golden();
    assert_close("methods.y", &y, &g["methods"]["y"])?;
    ensure!(
        stack.kernel.value().shape() == [10, 2, 3],
        "kernel shape {:?}",
        stack.kernel.value().shape()
    );
    ensure!(
        stack.to_object().type_name() == "WeightStack",
        "the stack is a WeightStack"
    );
    Ok(Outcome::Pass)
}

fn stateful_vector_dot(w: &CountedWeights, x: &Tensor) -> Result<Tensor> {
    w.count.update(|c| c + 1)?;
    dot(&w.kernel, &w.bias, x)
}

/// State propagation: `count += 1` inside `vmap` updates the caller's Variable.
pub fn guide_state_propagation(engine: &dyn Engine) -> CaseResult {
    let (kernel, x) = guide_inputs()?;
    let w = counted(kernel, Tensor::arange(10));
    let y = vmap(stateful_vector_dot)
        .in_axes(0)
        .out_axes(1)
        .call(engine, (&w, &x))?;
    let g = golden();
    ensure!(
        w.to_object().var("count")?.ptr_eq(&w.count),
        "count was replaced instead of updated"
    );
    assert_close(
        "state_propagation.count",
        &w.count.value(),
        &g["state_propagation"]["count"],
    )?;
    assert_close("state_propagation.y", &y, &g["state_propagation"]["y"])?;
    crate::snapshots::snapshot("guide_state_propagation_count", &w.count.to_string());
    Ok(Outcome::Pass)
}

/// Graph updates propagation: the guide's `crazy_vector_dot`.
pub fn guide_graph_updates(engine: &dyn Engine) -> CaseResult {
    let (kernel, x) = guide_inputs()?;
    // Attributes are added and deleted: a dynamic Module.
    let w = Module::new("Weights")
        .with("kernel", Param::new(kernel))?
        .with("bias", Param::new(Tensor::zeros([10, 3])))?
        .with("count", Count::new(Tensor::arange(10)))?;
    let kernel_var = w.var("kernel")?;
    let crazy_vector_dot = |w: &Module, x: &Tensor| -> Result<Tensor> {
        w.var("count")?.update(|c| c + 1)?;
        let y = x.matmul(&w.value("kernel")?) + &w.value("bias")?;
        w.set("some_property", static_list!["a", 2, false])?;
        w.del("bias")?;
        w.set("new_param", w.get("kernel")?)?;
        y
    };
    let y = vmap(crazy_vector_dot)
        .in_axes(0)
        .out_axes(1)
        .call(engine, (&w, &x))?;
    let g = &golden()["graph_updates"];
    let expected = g["repr"].as_str().unwrap_or_default();
    ensure!(
        w.to_string() == expected,
        "repr:\n{w}\nexpected:\n{expected}"
    );
    ensure!(
        w.var("new_param")?.ptr_eq(&kernel_var),
        "new_param is not the same Variable as kernel"
    );
    ensure!(!w.has("bias"), "bias was not deleted");
    assert_close("graph_updates.count", &w.value("count")?, &g["count"])?;
    ensure!(y.shape() == [3, 10], "y shape {:?}", y.shape());
    Ok(Outcome::Pass)
}

/// StateAxes: Params mapped, Count broadcast (a single counter for all lanes).
pub fn guide_state_axes(engine: &dyn Engine) -> CaseResult {
    let (kernel, x) = guide_inputs()?;
    let w = counted(kernel, Tensor::weak_scalar(0i32));
    let state_axes = StateAxes::new([
        (VariableType::PARAM.into(), Some(0)),
        (Count::TYPE.into(), None),
    ]);
    let y = vmap(stateful_vector_dot)
        .in_axes((state_axes, 0))
        .out_axes(1)
        .call(engine, (&w, &x))?;
    let g = &golden()["state_axes"];
    assert_close("state_axes.count", &w.count.value(), &g["count"])?;
    ensure!(y.shape() == [3, 10], "y shape {:?}", y.shape());
    crate::snapshots::snapshot("guide_state_axes_count", &w.count.to_string());
    Ok(Outcome::Pass)
}

fn noisy_weights(seed: Tensor) -> Result<NoisyWeights> {
    Ok(NoisyWeights {
        kernel: Param::new(random::uniform(&random::key(0), [2, 3])?),
        bias: Param::new(Tensor::zeros([3])),
        count: Count::new(Tensor::weak_scalar(0i32)),
        rngs: Rngs::builder().stream("noise", seed).build()?,
    })
}

fn noisy_vector_dot(w: &NoisyWeights, x: &Tensor) -> Result<Tensor> {
    w.count.update(|c| c + 1)?;
    let y = dot(&w.kernel, &w.bias, x)?;
    &y + random::normal(&w.rngs.next_key("noise")?, y.shape())?
}

fn rng_state_axes() -> StateAxes {
    StateAxes::new([
        (VariableType::RNG_STATE.into(), Some(0)),
        (
            Filter::any([VariableType::PARAM.into(), Count::TYPE.into()]),
            None,
        ),
    ])
}

fn check_random_section(w: &NoisyWeights, y1: &Tensor, y2: &Tensor, section: &str) -> CaseResult {
    let g = &golden()[section];
    ensure!(
        y1.allclose(y2, 1e-5, 1e-8)? == g["allclose"].as_bool().unwrap_or(true),
        "{section}: y1 and y2 should differ"
    );
    assert_close(&format!("{section}.count"), &w.count.value(), &g["count"])?;
    let stream = w.rngs.stream("noise")?;
    assert_close(
        &format!("{section}.rng_count"),
        &stream.count()?.value(),
        &g["rng_count"],
    )?;
    let key_data = random::key_data(&stream.key()?.value())?;
    assert_close(
        &format!("{section}.rng_key_data"),
        &key_data,
        &g["rng_key_data"],
    )?;
    Ok(Outcome::Pass)
}

/// Random state: `Rngs(noise=split(key(0), 10))` vectorised with StateAxes; two calls give
/// different noise.
pub fn guide_random_state(engine: &dyn Engine) -> CaseResult {
    let w = noisy_weights(random::split(&random::key(0), 10)?)?;
    let x = random::normal(&random::key(1), [10, 2])?;
    let f = vmap(noisy_vector_dot).in_axes((rng_state_axes(), 0));
    let y1 = f.call(engine, (&w, &x))?;
    let y2 = f.call(engine, (&w, &x))?;
    ensure!(y1.shape() == [10, 3], "y1 shape {:?}", y1.shape());
    check_random_section(&w, &y1, &y2, "random_state")
}

/// `split_rngs(splits=10)` around `vmap`: the outer stream stays a single key and its count
/// advances by one per call.
pub fn guide_split_rngs(engine: &dyn Engine) -> CaseResult {
    let w = noisy_weights(random::key(0))?;
    let x = random::normal(&random::key(1), [10, 2])?;
    let f = vmap(noisy_vector_dot).in_axes((rng_state_axes(), 0));
    let call =
        || random::split_rngs_scoped(&w, 10, &Filter::Everything, || f.call(engine, (&w, &x)));
    let y1 = call()?;
    let y2 = call()?;
    check_random_section(&w, &y1, &y2, "split_rngs")
}

/// Mutable objects cannot be passed by closure: mutating a captured object inside `jit`.
pub fn guide_closure_error(engine: &dyn Engine) -> CaseResult {
    let counter = Object::new("Counter").with("count", Param::new(Tensor::scalar(0i32)))?;
    let f = jit(|x: &Tensor| {
        counter.var("count")?.update(|c| c + 1)?;
        x * 2
    });
    let err = match f.call(engine, (Tensor::scalar(3i32),)) {
        Ok(_) => return Err(Failure("mutating a captured object must fail".into())),
        Err(e) => e,
    };
    let flax = golden()["closure"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let phrase = flax.split(" (https").next().unwrap_or_default();
    ensure!(
        err.to_string().starts_with(phrase),
        "message {err} lacks Flax's phrase {phrase}"
    );
    crate::snapshots::snapshot("guide_closure_error", &err.to_string());
    ensure!(
        counter.value("count")?.item::<i32>()? == 0,
        "the captured counter changed"
    );
    Ok(Outcome::Pass)
}

fn aliasing_weights() -> Result<Object> {
    Object::new("Weights").with("param", Param::new(Tensor::arange(10)))
}

/// Consistent aliasing between inputs: `m` mapped on axis 0 in one argument and 1 in another.
pub fn guide_aliasing_inputs_error(engine: &dyn Engine) -> CaseResult {
    let m = aliasing_weights()?;
    let arg1 = Dict::new()
        .with("a", Dict::new().with("b", &m)?)?
        .with("c", &m)?;
    let arg2 = List::new([
        Value::tuple(vec![Value::from(&m), Value::from(&m)]),
        Value::from(&m),
    ]);
    let before = m.to_string();
    let result = vmap(|_: &[Value]| Ok(Value::from(())))
        .in_axes((0, 1))
        .call(engine, &[Value::from(arg1), Value::from(arg2)]);
    let err = result
        .err()
        .ok_or_else(|| Failure("aliasing must be rejected".into()))?;
    let flax = golden()["aliasing_inputs"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let header = flax.lines().take(2).collect::<Vec<_>>().join("\n");
    ensure!(
        err.to_string().starts_with(&header),
        "message:\n{err}\nexpected to start with:\n{header}"
    );
    ensure!(m.to_string() == before, "the object changed");
    crate::snapshots::snapshot("guide_aliasing_inputs_error", &err.to_string());
    Ok(Outcome::Pass)
}

/// Consistent aliasing between inputs and outputs: returned on another axis than it came in.
pub fn guide_aliasing_outputs_error(engine: &dyn Engine) -> CaseResult {
    let m = aliasing_weights()?;
    let result = vmap(|args: &[Value]| Ok(args[0].clone()))
        .in_axes(0)
        .out_axes(1)
        .call(engine, &[Value::from(&m)]);
    let err = result
        .err()
        .ok_or_else(|| Failure("aliasing must be rejected".into()))?;
    crate::snapshots::snapshot("guide_aliasing_outputs_error", &err.to_string());
    ensure!(
        m.value("param")?.to_vec::<i32>()? == (0..10).collect::<Vec<_>>(),
        "the object changed"
    );
    Ok(Outcome::Pass)
}

pub(crate) fn sharded_weights(array: Tensor, sharding: nnx_core::Static) -> Result<Object> {
    Object::new("Weights").with(
        "param",
        Param::new(array).with_metadata("sharding", sharding),
    )
}

pub(crate) fn sharding_of(m: &Object) -> Result<String> {
    Ok(m.var("param")?
        .metadata_value("sharding")
        .map(|s| s.to_string())
        .unwrap_or_default())
}

pub(crate) fn golden_sharding(entry: &serde_json::Value) -> String {
    let parts: Vec<String> = entry
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| {
                    v.as_str()
                        .map_or_else(|| "None".to_owned(), |s| format!("'{s}'"))
                })
                .collect()
        })
        .unwrap_or_default();
    format!("({})", parts.join(", "))
}

fn golden_shape(entry: &serde_json::Value) -> Vec<usize> {
    entry
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(serde_json::Value::as_u64)
                .map(|d| d as usize)
                .collect()
        })
        .unwrap_or_default()
}

/// Axis metadata on the way in: `vmap(in_axes=1, transform_metadata={PARTITION_NAME: 'b'})`
/// removes `'b'` from `sharding` inside and puts it back outside.
pub fn guide_metadata_in(engine: &dyn Engine) -> CaseResult {
    let m = sharded_weights(
        Tensor::ones([3, 4, 5]),
        nnx_core::static_tuple!["a", "b", ()],
    )?;
    let inner = std::cell::RefCell::new((Vec::new(), String::new()));
    vmap(|args: &[Value]| {
        let m = args[0].object()?;
        *inner.borrow_mut() = (m.value("param")?.shape().to_vec(), sharding_of(&m)?);
        Ok(Value::from(()))
    })
    .in_axes(1)
    .transform_metadata("b")
    .call(engine, &[Value::from(&m)])?;
    let g = &golden()["metadata_in"];
    let (inner_shape, inner_sharding) = inner.into_inner();
    ensure!(
        inner_shape == golden_shape(&g["inner_shape"]),
        "inner shape {inner_shape:?}"
    );
    ensure!(
        inner_sharding == golden_sharding(&g["inner_sharding"]),
        "inner sharding {inner_sharding}"
    );
    ensure!(
        m.value("param")?.shape() == golden_shape(&g["outer_shape"]).as_slice(),
        "outer shape"
    );
    ensure!(
        sharding_of(&m)? == golden_sharding(&g["outer_sharding"]),
        "outer sharding {}",
        sharding_of(&m)?
    );
    Ok(Outcome::Pass)
}

/// Axis metadata on the way out: an object created inside `vmap(out_axes=1, axis_size=4)`
/// gets `'b'` inserted at its new axis.
pub fn guide_metadata_out(engine: &dyn Engine) -> CaseResult {
    let m = vmap(|_: &[Value]| {
        Ok(Value::from(sharded_weights(
            Tensor::ones([3, 5]),
            nnx_core::static_tuple!["a", ()],
        )?))
    })
    .in_axes(Prefix::Tuple(vec![]))
    .out_axes(1)
    .axis_size(4)
    .transform_metadata("b")
    .call(engine, &[])?;
    let m = m.object()?;
    let g = &golden()["metadata_out"];
    ensure!(
        m.value("param")?.shape() == golden_shape(&g["outer_shape"]).as_slice(),
        "outer shape {:?}",
        m.value("param")?.shape()
    );
    ensure!(
        sharding_of(&m)? == golden_sharding(&g["outer_sharding"]),
        "outer sharding {}",
        sharding_of(&m)?
    );
    Ok(Outcome::Pass)
}
