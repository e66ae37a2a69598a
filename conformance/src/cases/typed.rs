//! The typed API: `#[derive(Module)]` structs and typed closures through every transform,
//! giving exactly what the same program over dynamic objects gives; wrong arguments as
//! typed errors that change nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use nnx_core::graph::{self, FromValue, TypedModule};
use nnx_core::random;
use nnx_core::transforms::{jit, scan, value_and_grad, vmap};
use nnx_core::{Engine, Error, Module, Object, Param, Path, Result, State, Tensor, TensorResult};

use super::guide::Count;
use crate::{CaseResult, Failure, Outcome, ensure};

/// `nnx.Linear` without its initialisers.
#[derive(Module, Clone)]
pub struct Linear {
    kernel: Param,
    bias: Param,
}

/// Two layers, a call counter and a static field.
#[derive(Module, Clone)]
pub struct Mlp {
    layers: Vec<Linear>,
    count: Count,
    features: usize,
}

impl Linear {
    fn new(key: &Tensor, din: usize, dout: usize) -> Result<Linear> {
        Ok(Linear {
            kernel: Param::new(random::normal(key, [din, dout])?),
            bias: Param::new(random::uniform(&random::fold_in(key, 1)?, [dout])?),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.kernel.value()) + &self.bias.value()
    }
}

impl Mlp {
    fn new(seed: i64) -> Result<Mlp> {
        let key = random::key(seed);
        Ok(Mlp {
            layers: vec![
                Linear::new(&random::fold_in(&key, 0)?, 3, 4)?,
                Linear::new(&random::fold_in(&key, 1)?, 4, 2)?,
            ],
            count: Count::new(Tensor::scalar(0i32)),
            features: 3,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.count.update(|c| c + 1)?;
        let h = self.layers[0].forward(x).relu()?;
        self.layers[1].forward(&h)
    }
}

/// The same forward pass over a dynamic object (`layers` is a List of Objects).
fn dynamic_forward(m: &Object, x: &Tensor) -> Result<Tensor> {
    m.var("count")?.update(|c| c + 1)?;
    let layers: Vec<Object> = FromValue::from_value(&m.get("layers")?)?;
    let mut h = x.clone();
    for (i, layer) in layers.iter().enumerate() {
        h = (h.matmul(&layer.value("kernel")?) + &layer.value("bias")?)?;
        if i == 0 {
            h = h.relu()?;
        }
    }
    Ok(h)
}

fn loss_of(y: Result<Tensor>, target: &Tensor) -> Result<Tensor> {
    let d = y - target;
    d.clone().mul(d).mean(None)
}

fn same_state(a: &State, b: &State) -> std::result::Result<(), Failure> {
    let paths = |s: &State| s.paths().map(Path::slashed).collect::<Vec<_>>();
    ensure!(
        paths(a) == paths(b),
        "paths {:?} vs {:?}",
        paths(a),
        paths(b)
    );
    for (path, leaf) in a.iter() {
        let other = b
            .get(path)
            .ok_or_else(|| Failure(format!("no {}", path.slashed())))?;
        ensure!(
            leaf.value().allclose(&other.value(), 1e-6, 1e-6)?,
            "values differ at {}",
            path.slashed()
        );
    }
    Ok(())
}

/// A typed model through `jit`, `value_and_grad`, `vmap` and `scan` gives what the dynamic
/// program gives, updates its state in place, is one node however it is passed, and takes
/// the cached trace on repeated calls.
pub fn typed_modules_cross_every_transform(engine: &dyn Engine) -> CaseResult {
    let x = random::normal(&random::key(7), [5, 3])?;
    let target = random::normal(&random::key(8), [5, 2])?;

    // jit: the typed program and the dynamic one over a clone of the same model agree.
    let model = Mlp::new(0)?;
    let twin: Object = graph::clone(&model.to_object());
    let forward = jit(|m: &Mlp, x: &Tensor| m.forward(x));
    let dynamic = jit(|m: &Module, x: &Tensor| dynamic_forward(m, x));
    for _ in 0..3 {
        let y = forward.call(engine, (&model, &x))?;
        let expected = dynamic.call(engine, (&twin, &x))?;
        ensure!(y.allclose(&expected, 1e-6, 1e-6)?, "jit: {y} vs {expected}");
    }
    ensure!(
        forward.trace_count() == 1,
        "traced {} times",
        forward.trace_count()
    );
    ensure!(
        model.count.value().item::<i32>()? == 3,
        "count {}",
        model.count.value()
    );
    ensure!(
        model.to_object().ptr_eq(&model.to_object()),
        "a typed model is one node"
    );

    // value_and_grad: the loss and the gradient State, by Flax's paths.
    let loss = |m: &Mlp, x: &Tensor, y: &Tensor| loss_of(m.forward(x), y);
    let out = value_and_grad(loss).call(engine, (&model, &x, &target))?;
    let dynamic_loss = |m: &Module, x: &Tensor, y: &Tensor| loss_of(dynamic_forward(m, x), y);
    let expected = value_and_grad(dynamic_loss).call(engine, (&twin, &x, &target))?;
    ensure!(
        out.value.allclose(&expected.value, 1e-6, 1e-6)?,
        "loss {} vs {}",
        out.value,
        expected.value
    );
    same_state(out.grads[0].state()?, expected.grads[0].state()?)?;
    ensure!(
        out.grads[0]
            .state()?
            .variable(&Path::parse("layers/1/kernel")?)
            .is_ok(),
        "gradient paths are Flax's"
    );
    ensure!(
        model.count.value().item::<i32>()? == 4,
        "grad propagates state"
    );
    // has_aux: (loss, aux) out of a typed closure, the aux read back typed.
    let with_aux = |m: &Mlp, x: &Tensor, y: &Tensor| -> Result<(Tensor, Tensor)> {
        let prediction = m.forward(x)?;
        Ok((loss_of(Ok(prediction.clone()), y)?, prediction))
    };
    let out = value_and_grad(with_aux)
        .has_aux(true)
        .call(engine, (&model, &x, &target))?;
    let prediction: Tensor = out.aux_as()?;
    ensure!(prediction.shape() == [5, 2], "aux {:?}", prediction.shape());

    // vmap: typed modules created inside come out stacked.
    let stack = vmap(|seed: &Tensor| Linear::new(&random::key_from_seeds(seed)?, 3, 3))
        .call(engine, (Tensor::arange(4),))?;
    ensure!(
        stack.kernel.value().shape() == [4, 3, 3],
        "stacked kernel {:?}",
        stack.kernel.value().shape()
    );

    // scan over the stacked layers, each a typed Linear.
    let (h, ys) = scan(|h: &Tensor, layer: &Linear| -> Result<(Tensor, Tensor)> {
        let next = layer.forward(h).tanh()?;
        let norm = next.sum(None)?;
        Ok((next, norm))
    })
    .call(engine, (&x, &stack))?;
    let mut expected = x.clone();
    for i in 0..4 {
        let kernel = stack.kernel.value().index_axis(0, i)?;
        let bias = stack.bias.value().index_axis(0, i)?;
        expected = (expected.matmul(&kernel) + &bias).tanh()?;
    }
    ensure!(
        h.allclose(&expected, 1e-5, 1e-5)?,
        "scan carry {h} vs {expected}"
    );
    ensure!(ys.shape() == [4], "scan outputs {:?}", ys.shape());

    // The same module twice is one node: its Variables are updated once.
    let counter = Mlp::new(1)?;
    let same = AtomicBool::new(false);
    jit(|a: &Mlp, b: &Mlp| {
        same.store(a.count.ptr_eq(&b.count), Ordering::Relaxed);
        a.count.update(|c| c + 1)
    })
    .call(engine, (&counter, &counter))?;
    ensure!(same.into_inner(), "the module passed twice became two");
    let count = model.count.value().item::<i32>()?;
    ensure!(count == 5, "has_aux propagates state: count {count}");
    ensure!(counter.count.value().item::<i32>()? == 1, "one update");
    Ok(Outcome::Pass)
}

/// Wrong argument counts and types are typed errors naming the position and both types,
/// and leave the objects as they were.
pub fn typed_closures_report_wrong_arguments(engine: &dyn Engine) -> CaseResult {
    let model = Mlp::new(0)?;
    let x = Tensor::ones([2, 3]);
    let forward = jit(|m: &Mlp, x: &Tensor| m.forward(x));

    let err = match forward.call(engine, (&x, &model)) {
        Ok(_) => return Err(Failure("swapped arguments were accepted".into())),
        Err(e) => e,
    };
    ensure!(
        err.to_string() == "argument 0: expected Mlp, found an array of shape [2, 3]",
        "{err}"
    );
    let err = match forward.call(engine, (&model,)) {
        Ok(_) => return Err(Failure("a missing argument was accepted".into())),
        Err(e) => e,
    };
    ensure!(
        matches!(
            err,
            Error::ArgumentCount {
                expected: 2,
                found: 1
            }
        ),
        "{err}"
    );
    let weights = Object::new("Weights").with("kernel", Param::new(Tensor::ones([3, 2])))?;
    let xs = Tensor::ones([3, 3]);
    let err = match vmap(|m: &Mlp, x: &Tensor| m.forward(x)).call(engine, (&weights, &xs)) {
        Ok(_) => return Err(Failure("a 'Weights' object was read as an Mlp".into())),
        Err(e) => e,
    };
    ensure!(
        err.to_string() == "argument 0: expected Mlp, found a 'Weights' object",
        "{err}"
    );
    // A field of the wrong kind names the field.
    let broken = graph::clone(&model.to_object());
    broken.set("features", "three")?;
    let err = match forward.call(engine, (&broken, &x)) {
        Ok(_) => return Err(Failure("a string was read as usize".into())),
        Err(e) => e,
    };
    ensure!(
        err.to_string()
            == "argument 0, field features: expected usize, found the static value 'three'",
        "{err}"
    );
    ensure!(
        model.count.value().item::<i32>()? == 0,
        "a failed call changed the model"
    );
    Ok(Outcome::Pass)
}
