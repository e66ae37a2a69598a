//! The compute workloads of the anchor script (`benches/flax/anchors.py`, a copy of the shared
//! `flax_bench.py` that also measures numpy's GEMM), built once and run as closures, so that
//! the criterion bench (`benches/benches/anchors.rs`) and the back-to-back comparison
//! (`benches/examples/anchors.rs`, driven by `benches/anchors.sh`) time the same code.
//!
//! | key | workload |
//! |---|---|
//! | `a` | `vmap` of the guide's `stateful_vector_dot` |
//! | `b` | `jit(vmap(...))` of the same, cached |
//! | `c16` | `jit` tiny MLP, depth 16 (8×8 layers, batch 4) |
//! | `d` | `jit(vmap)` 1024×1024 GEMM + bias, weights broadcast |
//! | `d_batched` | `jit(vmap)` batched 64×(128×256 · 256×256) |
//! | `e` | `jit(vmap)` MLP forward, batch 256, width 256, depth 4 (+ a 256→10 head) |
//! | `f` | `jit(vmap(grad))` per-example gradients of the same MLP |
//! | `g` | `jit` train step: `value_and_grad` + SGD on the same MLP, batch 256 |
//! | `h` | `jit(scan)` over 16 stacked Linear 256×256 + relu, batch 256 |
//! | `i` | `jit` train step through the same scan: `value_and_grad` of the MSE + SGD |
//! | `j` | `jit` forward of Flax's MNIST tutorial CNN ([`crate::cnn`]), batch 64 of 28×28×1 |
//! | `k` | `jit` train step of the same CNN: `value_and_grad` of the cross-entropy + `Optimizer` (SGD) |

use nnx_core::transforms::{Carry, Grad, StateAxes, grad, jit, scan, value_and_grad, vmap};
use nnx_core::{
    Axes, Engine, Filter, List, Object, Param, Result, Tensor, Value, VariableType, graph, random,
};

use crate::{cnn, stateful_vector_dot, weights};
use nnx_core::random::Rngs;

/// One workload: its key, a description, its floating-point operation count (0 when not
/// meaningful) and a closure running it once.
pub struct Workload<'e> {
    /// The short key the ratio script joins on (`e`, `g`, …).
    pub key: &'static str,
    /// What it computes.
    pub what: &'static str,
    /// Floating-point operations per call (0: not reported).
    pub flops: f64,
    /// Runs one call.
    pub run: Box<dyn FnMut() -> Result<()> + 'e>,
}

/// A Flax-style `Linear(fan_in, fan_out)`: lecun-normal kernel, zero bias.
fn linear(seed: i64, fan_in: usize, fan_out: usize) -> Result<Object> {
    let scale = 1.0 / (fan_in as f32).sqrt();
    Object::new("Linear")
        .with(
            "kernel",
            Param::new((random::normal(&random::key(seed), [fan_in, fan_out])? * scale)?),
        )?
        .with("bias", Param::new(Tensor::zeros([fan_out])))
}

fn apply_linear(layer: &Object, x: &Tensor) -> Result<Tensor> {
    x.matmul(&layer.value("kernel")?)?
        .add(&layer.value("bias")?)
}

/// The anchor script's `MLP(din, dh, dout, depth)`: `depth` Linear layers with relu, then an
/// output Linear.
///
/// # Errors
/// None in practice (the shapes are fixed).
pub fn anchor_mlp(din: usize, dh: usize, dout: usize, depth: usize) -> Result<Object> {
    let layers = List::new([]);
    for i in 0..depth {
        layers.push(linear(i as i64, if i == 0 { din } else { dh }, dh)?)?;
    }
    Object::new("MLP")
        .with("layers", layers)?
        .with("out", linear(depth as i64, dh, dout)?)
}

/// The MLP's forward pass on `x` (a vector or a batch).
///
/// # Errors
/// Shape errors.
pub fn anchor_mlp_apply(m: &Object, x: &Tensor) -> Result<Tensor> {
    let mut x = x.clone();
    for layer in m.list("layers")?.items() {
        x = apply_linear(&layer.object()?, &x)?.relu()?;
    }
    apply_linear(&m.object("out")?, &x)
}

/// `mean((m(x) - y)²)`, `args = [m, x, y]`.
fn mse(args: &[Value]) -> Result<Value> {
    let err =
        anchor_mlp_apply(&args[0].object()?, &args[1].as_tensor()?)?.sub(&args[2].as_tensor()?)?;
    Ok(Value::from(err.mul(&err)?.mean(Axes::All)?))
}

fn broadcast_all() -> StateAxes {
    StateAxes::new([(Filter::Everything, None)])
}

/// The workloads, in the anchor script's order, on `engine`: those whose key `keep`
/// accepts (the others' models are not built).
///
/// # Errors
/// None in practice (the models are built from fixed shapes).
pub fn workloads<'e>(
    engine: &'e dyn Engine,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<Workload<'e>>> {
    let mut out = Vec::new();

    let (w, x) = (weights()?, random::normal(&random::key(1), [10, 2])?);
    if keep("a") {
        let (w, x) = (w.clone(), x.clone());
        let f = vmap(stateful_vector_dot).in_axes(0).out_axes(1);
        out.push(Workload {
            key: "a",
            what: "vmap guide stateful_vector_dot",
            flops: 0.0,
            run: Box::new(move || f.call(engine, (&w, &x)).map(drop)),
        });
    }
    if keep("b") {
        let f = jit(move |args: &[Value]| {
            vmap(stateful_vector_dot)
                .in_axes(0)
                .out_axes(1)
                .call(engine, args)
        });
        out.push(Workload {
            key: "b",
            what: "jit(vmap) guide stateful_vector_dot",
            flops: 0.0,
            run: Box::new(move || f.call(engine, (&w, &x)).map(drop)),
        });
    }
    if keep("c16") {
        let (m, x) = (crate::mlp(16)?, Tensor::ones([4, 8]));
        let f = jit(crate::apply_mlp);
        out.push(Workload {
            key: "c16",
            what: "jit tiny MLP depth 16",
            flops: 0.0,
            run: Box::new(move || f.call(engine, (&m, &x)).map(drop)),
        });
    }
    if keep("d") {
        let d = 1024;
        let m = Object::new("Lin")
            .with("w", Param::new(random::normal(&random::key(0), [d, d])?))?
            .with("b", Param::new(Tensor::zeros([d])))?;
        let x = random::normal(&random::key(1), [d, d])?;
        let f = jit(move |args: &[Value]| {
            vmap(|args: &[Value]| {
                let m = args[0].object()?;
                Ok(Value::from(apply_linear_wb(&m, &args[1].as_tensor()?)?))
            })
            .in_axes((broadcast_all(), 0))
            .call(engine, args)
        });
        out.push(Workload {
            key: "d",
            what: "jit(vmap) 1024x1024 @ 1024x1024 + b",
            flops: 2.0 * (d * d * d) as f64,
            run: Box::new(move || f.call(engine, (&m, &x)).map(drop)),
        });
    }
    if keep("d_batched") {
        let m = Object::new("LinB").with(
            "w",
            Param::new(random::normal(&random::key(0), [64, 256, 256])?),
        )?;
        let x = random::normal(&random::key(1), [64, 128, 256])?;
        let f = jit(move |args: &[Value]| {
            vmap(|args: &[Value]| {
                let m = args[0].object()?;
                Ok(Value::from(args[1].as_tensor()?.matmul(&m.value("w")?)?))
            })
            .in_axes((0, 0))
            .call(engine, args)
        });
        out.push(Workload {
            key: "d_batched",
            what: "jit(vmap) batched 64x(128x256 @ 256x256)",
            flops: 2.0 * (64 * 128 * 256 * 256) as f64,
            run: Box::new(move || f.call(engine, (&m, &x)).map(drop)),
        });
    }

    if keep("j") || keep("k") {
        let model = cnn::Cnn::new(&Rngs::new(0)?)?;
        let (images, labels) = cnn::batch(64)?;
        if keep("j") {
            let (model, images) = (model.clone(), images.clone());
            let forward = jit(|m: &cnn::Cnn, x: &Tensor| m.forward(x));
            out.push(Workload {
                key: "j",
                what: "(j) jit CNN forward (Flax MNIST tutorial CNN) b=64 28x28x1",
                flops: 0.0,
                run: Box::new(move || forward.call(engine, (&model, &images)).map(drop)),
            });
        }
        if keep("k") {
            let optimizer = cnn::optimizer(&model)?;
            let step = jit(
                move |m: &cnn::Cnn,
                      opt: &nnx_fast::nn::optim::Optimizer,
                      x: &Tensor,
                      y: &Tensor| {
                    let out = value_and_grad(cnn::loss).call(engine, (m, x, y))?;
                    opt.update(m, out.grads[0].state()?)?;
                    Ok(out.value)
                },
            );
            out.push(Workload {
                key: "k",
                what: "(k) jit CNN train step (value_and_grad + Optimizer sgd) b=64",
                flops: 0.0,
                run: Box::new(move || {
                    step.call(engine, (&model, &optimizer, &images, &labels))
                        .map(drop)
                }),
            });
        }
    }
    if !["e", "f", "g", "h", "i"].iter().any(|k| keep(k)) {
        return Ok(out);
    }
    let m = anchor_mlp(256, 256, 10, 4)?;
    let x = random::normal(&random::key(1), [256, 256])?;
    let y = random::normal(&random::key(2), [256, 10])?;
    if keep("e") {
        let (m, x) = (m.clone(), x.clone());
        let f = jit(move |args: &[Value]| {
            vmap(|args: &[Value]| {
                Ok(Value::from(anchor_mlp_apply(
                    &args[0].object()?,
                    &args[1].as_tensor()?,
                )?))
            })
            .in_axes((broadcast_all(), 0))
            .call(engine, args)
        });
        out.push(Workload {
            key: "e",
            what: "(e) jit(vmap) MLP fwd b=256 w=256 d=4",
            flops: 2.0 * 256.0 * (256.0 * 256.0 * 4.0 + 256.0 * 10.0),
            run: Box::new(move || f.call(engine, (&m, &x)).map(drop)),
        });
    }
    if keep("f") {
        let (m, x, y) = (m.clone(), x.clone(), y.clone());
        let f = jit(move |args: &[Value]| {
            vmap(|args: &[Value]| {
                let grads = grad(mse).call(engine, args)?;
                let state = grads.grads[0].state()?;
                Ok(Value::tuple(
                    state
                        .iter()
                        .filter_map(|(_, leaf)| leaf.as_variable().map(|v| Value::from(v.value())))
                        .collect(),
                ))
            })
            .in_axes((broadcast_all(), 0, 0))
            .call(engine, args)
        });
        out.push(Workload {
            key: "f",
            what: "(f) jit(vmap(grad)) per-example grads b=256 w=256 d=4",
            flops: 0.0,
            run: Box::new(move || f.call(engine, (&m, &x, &y)).map(drop)),
        });
    }
    if keep("g") {
        let (m, x, y) = (anchor_mlp(256, 256, 10, 4)?, x.clone(), y.clone());
        let step = jit(move |args: &[Value]| {
            let out = value_and_grad(mse).call(engine, args)?;
            sgd(&args[0].object()?, &out.grads[0], 1e-3)?;
            Ok(Value::from(out.value))
        });
        out.push(Workload {
            key: "g",
            what: "(g) jit train step (value_and_grad + sgd) b=256 w=256 d=4",
            flops: 0.0,
            run: Box::new(move || step.call(engine, (&m, &x, &y)).map(drop)),
        });
    }
    if keep("h") {
        let stack = stacked_blocks(engine, 16, 256)?;
        let x = x.clone();
        let f = jit(move |args: &[Value]| {
            scan(|args: &[Value]| {
                let (block, h) = (args[0].object()?, args[1].as_tensor()?);
                Ok(Value::from(apply_linear(&block, &h)?.relu()?))
            })
            .in_axes((0, Carry))
            .out_axes(Carry)
            .call(engine, args)
        });
        out.push(Workload {
            key: "h",
            what: "(h) jit(scan over 16 layers) b=256 w=256",
            flops: 2.0 * 256.0 * 256.0 * 256.0 * 16.0,
            run: Box::new(move || f.call(engine, (&stack, &x)).map(drop)),
        });
    }
    if keep("i") {
        let stack = stacked_blocks(engine, 16, 256)?;
        let (x, y) = (x.clone(), random::normal(&random::key(3), [256, 256])?);
        let step = jit(move |args: &[Value]| {
            let out = value_and_grad(|args: &[Value]| {
                let h = scan(|args: &[Value]| {
                    let (block, h) = (args[0].object()?, args[1].as_tensor()?);
                    Ok(Value::from(apply_linear(&block, &h)?.relu()?))
                })
                .in_axes((0, Carry))
                .out_axes(Carry)
                .call(engine, &args[..2])?
                .as_tensor()?;
                let err = h.sub(&args[2].as_tensor()?)?;
                Ok(Value::from(err.mul(&err)?.mean(Axes::All)?))
            })
            .call(engine, args)?;
            sgd(&args[0].object()?, &out.grads[0], 1e-3)?;
            Ok(Value::from(out.value))
        });
        out.push(Workload {
            key: "i",
            what: "(i) jit train step through scan over 16 layers b=256 w=256",
            flops: 0.0,
            run: Box::new(move || step.call(engine, (&stack, &x, &y)).map(drop)),
        });
    }
    Ok(out)
}

/// One SGD step on `model`'s Params: `p ← p − lr · g`, the gradient by path in `grads`.
fn sgd(model: &Object, grads: &Grad, lr: f32) -> Result<()> {
    let grads = grads.state()?;
    for (path, leaf) in &graph::state_by(model, &VariableType::PARAM.into()) {
        if let Some(param) = leaf.as_variable() {
            let g = grads.variable(path)?.value();
            param.update(|w| w.sub(&(g * lr)?))?;
        }
    }
    Ok(())
}

fn apply_linear_wb(m: &Object, x: &Tensor) -> Result<Tensor> {
    x.matmul(&m.value("w")?)?.add(&m.value("b")?)
}

/// `depth` Linear(width, width) layers created at once under `vmap` (one stacked set of
/// parameters), as the anchor script's `make`.
///
/// # Errors
/// None in practice.
pub fn stacked_blocks(engine: &dyn Engine, depth: usize, width: usize) -> Result<Object> {
    vmap(|args: &[Value]| {
        let key = random::key_from_seeds(&args[0].as_tensor()?)?;
        let scale = 1.0 / (width as f32).sqrt();
        Ok(Value::from(
            Object::new("Linear")
                .with(
                    "kernel",
                    Param::new((random::normal(&key, [width, width])? * scale)?),
                )?
                .with("bias", Param::new(Tensor::zeros([width])))?,
        ))
    })
    .call(engine, &[Value::from(Tensor::arange(depth))])?
    .object()
}
