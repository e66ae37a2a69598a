//! The Flax NNX transforms guide, section by section, in Rust.
//!
//! Run with `cargo run --release --example guide`. The sections that need lifted transforms
//! (`vmap`, `jit`) are being built; until they land this prints the object-graph part of the
//! guide: the guide's objects, their state and structure, graph updates, and random state.

use nnx_fast::prelude::*;
use nnx_fast::random::{self, Rngs};

variable_type!(
    /// The guide's `class Count(nnx.Variable): pass`.
    pub Count: Variable
);

fn section(title: &str) {
    println!("\n== {title} ==");
}

/// `Weights(kernel, bias, count)` as in the guide's "State propagation" section.
fn weights(kernel: Tensor, bias: Tensor, count: Tensor) -> Result<Object> {
    Object::new("Weights")
        .with("kernel", Param::new(kernel))?
        .with("bias", Param::new(bias))?
        .with("count", Count::new(count))
}

fn main() -> Result<()> {
    section("Basic example: the guide's Weights and data");
    let kernel = random::uniform(&random::key(0), &[10, 2, 3])?;
    let w = weights(kernel, Tensor::zeros(&[10, 3]), Tensor::arange(10))?;
    let x = random::normal(&random::key(1), &[10, 2])?;
    println!("{w}");
    println!("x.shape = {:?}", x.shape());

    section("State and GraphDef (split / merge)");
    let (graphdef, state) = graph::split(&w);
    println!("{graphdef}");
    let (_, params, rest) = {
        let (def, mut states) =
            graph::split_by(&w, &[VariableType::PARAM.into(), Filter::Everything])?;
        let rest = states.pop().unwrap_or_default();
        let params = states.pop().unwrap_or_default();
        (def, params, rest)
    };
    println!(
        "params: {:?}",
        params.paths().map(|p| p.to_string()).collect::<Vec<_>>()
    );
    println!(
        "rest:   {:?}",
        rest.paths().map(|p| p.to_string()).collect::<Vec<_>>()
    );
    let rebuilt: Object = graph::merge(&graphdef, [&state])?;
    println!(
        "merged object shares the Variables: {}",
        rebuilt.var("kernel")?.ptr_eq(&w.var("kernel")?)
    );

    section("Graph updates (applied directly; under vmap once transforms land)");
    w.var("count")?.update(|c| c + 1)?;
    w.set("some_property", static_list!["a", 2, false])?;
    w.del("bias")?;
    w.set("new_param", w.get("kernel")?)?;
    let after: Object = graph::clone(&w); // a merge re-sets attributes in sorted order
    println!("{after}");
    println!(
        "new_param is kernel: {}",
        after.var("new_param")?.ptr_eq(&after.var("kernel")?)
    );
    println!("{}", after.var("count")?);

    section("Random state");
    let rngs = Rngs::builder()
        .stream("noise", random::split(&random::key(0), 10)?)
        .build()?;
    println!("{rngs}");
    let key = random::key(0);
    let noise_rngs = Rngs::builder().stream("noise", key).build()?;
    let k = noise_rngs.next_key("noise")?;
    println!("noise key data after one draw: {}", random::key_data(&k)?);
    println!("{}", noise_rngs.as_object().object("noise")?.var("count")?);
    Ok(())
}
