//! The Flax NNX transforms guide, section by section, in Rust.
//!
//! Run with `cargo run --release --example guide`. Every section of the guide runs in order
//! and prints the observables the guide prints (shapes, counts, the object after graph
//! updates, the error messages). `fast/tests/guide_example.rs` snapshots this output.

use std::fmt::Write as _;

use nnx_fast::prelude::*;
use nnx_fast::random::split_rngs_scoped;

variable_type!(
    /// The guide's `class Count(nnx.Variable): pass`.
    pub Count: Variable
);

/// The guide's `Weights(nnx.Module)`: a kernel and a bias.
#[derive(Module, Clone)]
struct Weights {
    kernel: Param,
    bias: Param,
}

/// The guide's `Weights` with a counter (state propagation, `StateAxes`).
#[derive(Module, Clone)]
#[module(name = "Weights")]
struct CountedWeights {
    kernel: Param,
    bias: Param,
    count: Count,
}

/// The guide's `Weights` with a counter and a noise stream (random state).
#[derive(Module, Clone)]
#[module(name = "Weights")]
struct NoisyWeights {
    kernel: Param,
    bias: Param,
    count: Count,
    rngs: Rngs,
}

impl Weights {
    fn new(kernel: Tensor, bias: Tensor) -> Weights {
        Weights {
            kernel: Param::new(kernel),
            bias: Param::new(bias),
        }
    }
}

impl CountedWeights {
    fn new(kernel: Tensor, bias: Tensor, count: Tensor) -> CountedWeights {
        CountedWeights {
            kernel: Param::new(kernel),
            bias: Param::new(bias),
            count: Count::new(count),
        }
    }
}

/// `x @ kernel + bias`, with the guide's "no batch dimensions" asserts.
fn dot(kernel: &Param, bias: &Param, x: &Tensor) -> Result<Tensor> {
    if kernel.value().ndim() != 2 || x.ndim() != 1 {
        return Err(Error::shape("vector_dot", "Batch dimensions not allowed"));
    }
    x.matmul(&kernel.value()) + &bias.value()
}

fn vector_dot(w: &Weights, x: &Tensor) -> Result<Tensor> {
    dot(&w.kernel, &w.bias, x)
}

fn stateful_vector_dot(w: &CountedWeights, x: &Tensor) -> Result<Tensor> {
    w.count.update(|c| c + 1)?;
    dot(&w.kernel, &w.bias, x)
}

fn noisy_vector_dot(w: &NoisyWeights, x: &Tensor) -> Result<Tensor> {
    w.count.update(|c| c + 1)?;
    let y = dot(&w.kernel, &w.bias, x)?;
    &y + random::normal(&w.rngs.next_key("noise")?, y.shape())?
}

/// A shape as Python prints it: `(3, 10)`.
fn shape(dims: &[usize]) -> String {
    match dims {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            dims.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn section(out: &mut String, title: &str) -> Result<()> {
    writeln!(out, "\n== {title} ==").map_err(fmt_error)
}

/// Writing to a `String` fails only if a `Display` impl of the library does.
fn fmt_error(e: std::fmt::Error) -> Error {
    Error::Internal {
        what: e.to_string(),
    }
}

macro_rules! say {
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*).map_err(fmt_error)?
    };
}

/// Runs every section, writing what the guide prints.
pub fn run(out: &mut String) -> Result<()> {
    let engine = Fast;
    let x = random::normal(&random::key(1), [10, 2])?;

    section(out, "Basic example")?;
    let w = Weights::new(
        random::uniform(&random::key(0), [10, 2, 3])?,
        Tensor::zeros([10, 3]),
    );
    let y = vmap(vector_dot)
        .in_axes(0)
        .out_axes(1)
        .call(&engine, (&w, &x))?;
    say!(out, "y.shape = {}", shape(y.shape()));

    section(out, "Objects as outputs: create_weights")?;
    let create_weights = |seed: &Tensor| -> Result<Weights> {
        let key = random::key_from_seeds(seed)?;
        Ok(Weights::new(
            random::uniform(&key, [2, 3])?,
            Tensor::zeros([3]),
        ))
    };
    let stack = vmap(create_weights).call(&engine, (Tensor::arange(10),))?;
    say!(out, "{}", stack.to_object());

    section(out, "Transforming methods: WeightStack")?;
    // WeightStack(jnp.arange(10)) builds the same stack; its method is vmap(vector_dot).
    let y = vmap(vector_dot)
        .in_axes(0)
        .out_axes(1)
        .call(&engine, (&stack, &x))?;
    say!(out, "y.shape = {}", shape(y.shape()));

    section(out, "State propagation")?;
    let w = CountedWeights::new(
        random::uniform(&random::key(0), [10, 2, 3])?,
        Tensor::zeros([10, 3]),
        Tensor::arange(10),
    );
    vmap(stateful_vector_dot)
        .in_axes(0)
        .out_axes(1)
        .call(&engine, (&w, &x))?;
    say!(out, "{}", w.count.variable());

    section(out, "Graph updates propagation")?;
    // Attributes added, deleted and shared inside: a dynamic `Module` (an `Object`).
    let w = Module::new("Weights")
        .with(
            "kernel",
            Param::new(random::uniform(&random::key(0), [10, 2, 3])?),
        )?
        .with("bias", Param::new(Tensor::zeros([10, 3])))?
        .with("count", Count::new(Tensor::arange(10)))?;
    let crazy_vector_dot = |w: &Module, x: &Tensor| -> Result<Tensor> {
        w.var("count")?.update(|c| c + 1)?;
        let y = x.matmul(&w.value("kernel")?) + &w.value("bias")?;
        w.set("some_property", static_list!["a", 2, false])?; // add attribute
        w.del("bias")?; // delete attribute
        w.set("new_param", w.get("kernel")?)?; // share reference
        y
    };
    vmap(crazy_vector_dot)
        .in_axes(0)
        .out_axes(1)
        .call(&engine, (&w, &x))?;
    say!(out, "{w}");
    say!(
        out,
        "new_param is kernel: {}",
        w.var("new_param")?.ptr_eq(&w.var("kernel")?)
    );

    section(out, "Transforming sub-states: StateAxes")?;
    let w = CountedWeights::new(
        random::uniform(&random::key(0), [10, 2, 3])?,
        Tensor::zeros([10, 3]),
        Tensor::weak_scalar(0i32),
    );
    let state_axes = StateAxes::new([
        (VariableType::PARAM.into(), Some(0)),
        (Count::TYPE.into(), None),
    ]);
    vmap(stateful_vector_dot)
        .in_axes((state_axes, 0))
        .out_axes(1)
        .call(&engine, (&w, &x))?;
    say!(out, "{}", w.count.variable());

    let rng_axes = || {
        StateAxes::new([
            (VariableType::RNG_STATE.into(), Some(0)),
            (
                Filter::any([VariableType::PARAM.into(), Count::TYPE.into()]),
                None,
            ),
        ])
    };
    let noisy_weights = |seed: Tensor| -> Result<NoisyWeights> {
        Ok(NoisyWeights {
            kernel: Param::new(random::uniform(&random::key(0), [2, 3])?),
            bias: Param::new(Tensor::zeros([3])),
            count: Count::new(Tensor::weak_scalar(0i32)),
            rngs: Rngs::builder().stream("noise", seed).build()?,
        })
    };
    let noise_count = |w: &NoisyWeights| -> Result<Variable> { w.rngs.stream("noise")?.count() };

    section(out, "Random state")?;
    let w = noisy_weights(random::split(&random::key(0), 10)?)?;
    let f = vmap(noisy_vector_dot).in_axes((rng_axes(), 0));
    let y1 = f.call(&engine, (&w, &x))?;
    let y2 = f.call(&engine, (&w, &x))?;
    say!(out, "allclose(y1, y2) = {}", y1.allclose(&y2, 1e-5, 1e-8)?);
    say!(out, "{}", noise_count(&w)?);

    section(out, "Random state with split_rngs")?;
    let w = noisy_weights(random::key(0))?;
    let call = || split_rngs_scoped(&w, 10, &Filter::Everything, || f.call(&engine, (&w, &x)));
    let y1 = call()?;
    let y2 = call()?;
    say!(out, "allclose(y1, y2) = {}", y1.allclose(&y2, 1e-5, 1e-8)?);
    say!(out, "{}", noise_count(&w)?);

    section(out, "Rules: mutable objects cannot be passed by closure")?;
    let counter = Object::new("Counter").with("count", Param::new(Tensor::scalar(0i32)))?;
    let f = jit(|x: &Tensor| {
        counter.var("count")?.update(|c| c + 1)?;
        x * 2
    });
    match f.call(&engine, (Tensor::scalar(3i32),)) {
        Ok(_) => say!(out, "unexpected success"),
        Err(e) => say!(out, "Error: {e}"),
    }

    section(out, "Rules: consistent aliasing")?;
    let m = Object::new("Weights").with("param", Param::new(Tensor::arange(10)))?;
    let arg1 = Dict::new()
        .with("a", Dict::new().with("b", &m)?)?
        .with("c", &m)?;
    let arg2 = List::new([
        Value::tuple(vec![Value::from(&m), Value::from(&m)]),
        Value::from(&m),
    ]);
    match vmap(|_: &[Value]| Ok(Value::from(())))
        .in_axes((0, 1))
        .call(&engine, &[Value::from(arg1.clone()), Value::from(arg2)])
    {
        Ok(_) => say!(out, "unexpected success"),
        Err(e) => say!(out, "{e}"),
    }
    match vmap(|args: &[Value]| Ok(args[0].clone()))
        .in_axes(0)
        .out_axes(1)
        .call(&engine, &[Value::from(arg1)])
    {
        Ok(_) => say!(out, "unexpected success"),
        Err(e) => say!(out, "{e}"),
    }

    section(out, "Axis metadata")?;
    let m = Object::new("Weights").with(
        "param",
        Param::new(Tensor::ones([3, 4, 5])).with_metadata("sharding", static_tuple!["a", "b", ()]),
    )?;
    let inner = std::cell::RefCell::new(String::new());
    vmap(|args: &[Value]| {
        let m = args[0].object()?;
        let p = m.var("param")?;
        let sharding = p
            .metadata_value("sharding")
            .map(|s| s.to_string())
            .unwrap_or_default();
        *inner.borrow_mut() = format!(
            "Inner m.param.shape = {}\nInner m.param.sharding = {sharding}",
            shape(&p.shape())
        );
        Ok(Value::from(()))
    })
    .in_axes(1)
    .transform_metadata("b")
    .call(&engine, &[Value::from(&m)])?;
    say!(out, "{}", inner.into_inner());
    let sharding = |m: &Object| -> Result<String> {
        Ok(m.var("param")?
            .metadata_value("sharding")
            .map(|s| s.to_string())
            .unwrap_or_default())
    };
    say!(
        out,
        "Outer m.param.shape = {}",
        shape(m.value("param")?.shape())
    );
    say!(out, "Outer m.param.sharding = {}", sharding(&m)?);
    let created = vmap(|_: &[Value]| {
        Ok(Value::from(Object::new("Weights").with(
            "param",
            Param::new(Tensor::ones([3, 5])).with_metadata("sharding", static_tuple!["a", ()]),
        )?))
    })
    .in_axes(nnx_fast::lift::Prefix::Tuple(vec![]))
    .out_axes(1)
    .axis_size(4)
    .transform_metadata("b")
    .call(&engine, &[])?;
    let m = created.object()?;
    say!(
        out,
        "Outer m.param.shape = {}",
        shape(m.value("param")?.shape())
    );
    say!(out, "Outer m.param.sharding = {}", sharding(&m)?);
    Ok(())
}

#[allow(dead_code)]
fn main() -> Result<()> {
    let mut out = String::new();
    run(&mut out)?;
    print!("{out}");
    Ok(())
}
