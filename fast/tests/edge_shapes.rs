//! Regression tests for disagreements the differential suite found between `Fast` and
//! `Reference` on edge shapes: zero-lane `vmap`, zero-length `scan`, empty arrays and size-1
//! axes. Each program runs on both engines and the results must be identical.

use nnx_core::transforms::{Carry, scan, value_and_grad};
use nnx_fast::prelude::*;
use nnx_fast::random;
use nnx_reference::Reference;

/// Runs `f` on both engines and checks they agree exactly: identical results, or errors of
/// the same kind (returned).
fn agree(f: impl Fn(&dyn Engine) -> Result<Tensor>) -> Result<Tensor> {
    match (f(&Fast), f(&Reference)) {
        (Ok(a), Ok(b)) => {
            assert!(a.identical(&b), "fast {a:?} vs reference {b:?}");
            Ok(a)
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.kind(), b.kind(), "fast {a} vs reference {b}");
            Err(a)
        }
        (a, b) => panic!("fast {a:?} vs reference {b:?}"),
    }
}

/// Runs `f` on both engines; both must succeed with identical results.
fn same_on_both(f: impl Fn(&dyn Engine) -> Result<Tensor>) -> Tensor {
    agree(f).expect("both engines succeed")
}

/// The example: `vmap` over a zero-size batch returned shape `[0, 3]` on Reference
/// and an error on Fast (a random draw on a mapped key has no batching rule, and the
/// per-lane fallback refused zero lanes).
#[test]
fn zero_lane_vmap_returns_an_empty_batch_on_both_engines() {
    let y = same_on_both(|engine| {
        let keys = random::split(&random::key(0), 0)?;
        vmap(|args: &[Value]| {
            let noise = random::normal(&args[0].as_tensor()?, [3])?;
            Ok(Value::from(
                noise.add(&args[1].as_tensor()?.sum(Axes::All)?)?,
            ))
        })
        .in_axes((0, 0))
        .call(
            engine,
            &[Value::from(keys), Value::from(Tensor::zeros([0, 2]))],
        )?
        .as_tensor()
    });
    assert_eq!(y.shape(), &[0, 3]);
}

/// With zero lanes, an output that does not depend on the mapped inputs is still computed,
/// as in JAX: broadcast state updated from its own value is written back (it was
/// overwritten with zeros), and an unmapped output is the function's value.
#[test]
fn zero_lane_vmap_computes_unmapped_outputs() {
    for lanes in [0, 2] {
        let (y, w) = {
            let mut results = Vec::new();
            for engine in [&Fast as &dyn Engine, &Reference] {
                let m = Object::new("M")
                    .with("w", Param::new(Tensor::from_slice(&[4.0f32])))
                    .expect("object");
                let y = vmap(|a: &[Value]| {
                    let m = a[0].object()?;
                    m.var("w")?.update(|w| (w * 0.5)? + 1.0)?;
                    let sum = a[1].as_tensor()?.sum(Axes::All)?;
                    Ok(Value::tuple(vec![
                        Value::from(sum),
                        Value::from(m.value("w")?.mul(&m.value("w")?)?),
                    ]))
                })
                .in_axes((None::<i32>, 0))
                .out_axes((0, None::<i32>))
                .call(
                    engine,
                    &[Value::from(&m), Value::from(Tensor::ones([lanes, 3]))],
                )
                .expect("runs");
                let Value::Tuple(items) = y else {
                    panic!("expected a tuple")
                };
                results.push((
                    items[0].as_tensor().expect("tensor"),
                    items[1].as_tensor().expect("tensor"),
                    m.value("w").expect("w"),
                ));
            }
            let (a, b) = (&results[0], &results[1]);
            assert!(a.0.identical(&b.0) && a.1.identical(&b.1) && a.2.identical(&b.2));
            assert_eq!(a.0.shape(), &[lanes]);
            (a.1.clone(), a.2.clone())
        };
        assert_eq!(w.to_vec::<f32>().expect("f32"), vec![3.0]);
        assert_eq!(y.to_vec::<f32>().expect("f32"), vec![9.0]);
    }
}

/// A maximum inside a zero-lane `vmap` runs nothing on either engine; a maximum over an
/// empty lane axis fails alike on both (while tracing, as in JAX).
#[test]
fn reductions_in_zero_lane_vmap_agree() {
    let run = |shape: [usize; 2]| {
        agree(move |engine| {
            vmap(|args: &[Value]| Ok(Value::from(args[0].as_tensor()?.max(0)?)))
                .in_axes(1)
                .call(engine, &[Value::from(Tensor::zeros(shape))])?
                .as_tensor()
        })
    };
    assert_eq!(run([2, 0]).expect("runs").shape(), &[0]);
    assert!(run([0, 0]).is_err());
}

/// A zero-lane `vmap` that outputs keys (here a mapped model's RNG key carried through a
/// scan) gives empty key arrays: zeros of dtype key used to fail to convert.
#[test]
fn zero_lane_vmap_and_zero_length_scan_give_empty_keys() {
    for (lanes, length) in [(0, 1), (1, 0), (0, 0)] {
        let y = same_on_both(|engine| {
            let keys = random::split(&random::key(3), lanes)?;
            vmap(|args: &[Value]| {
                let out = scan(|args: &[Value]| {
                    let k = random::fold_in(&args[0].as_tensor()?, 1)?;
                    Ok(Value::tuple(vec![Value::from(k.clone()), Value::from(k)]))
                })
                .in_axes((Carry,))
                .out_axes((Carry, 0))
                .length(length)
                .call(engine, &[args[0].clone()])?;
                match out {
                    Value::Tuple(items) => items[1].as_tensor().map(Value::from),
                    other => Ok(other),
                }
            })
            .call(engine, &[Value::from(keys)])?
            .as_tensor()
        });
        assert_eq!(y.shape(), &[lanes, length]);
        assert_eq!(y.dtype(), DType::Key);
    }
}

/// Size-1 and size-0 axes through batching rules: squeeze, reductions and products on a
/// batch of one and on empty lanes.
#[test]
fn size_one_and_empty_axes_agree() {
    for shape in [[1usize, 1, 3], [2, 0, 3], [1, 3, 1]] {
        same_on_both(|engine| {
            let x = Tensor::from_vec(
                &shape,
                (0..shape.iter().product::<usize>())
                    .map(|i| i as f32)
                    .collect(),
            )?;
            vmap(|args: &[Value]| {
                let x = args[0].as_tensor()?;
                let w = Tensor::ones([x.shape()[1], 2]);
                Ok(Value::from(x.matmul(&w)?.sum(0)?))
            })
            .call(engine, &[Value::from(x)])?
            .as_tensor()
        });
    }
}

/// A zero-length `scan` runs no iteration, so broadcast state it would update keeps its
/// value, on both engines and under `grad` (it was overwritten with zeros, and `grad` of such
/// a scan failed with "a scan of length 0 has no broadcast outputs").
#[test]
fn zero_length_scan_leaves_broadcast_state_unchanged() {
    let body = |a: &[Value]| -> Result<Value> {
        let m = a[0].object()?;
        m.var("w")?.update(|w| (w * 0.5)? + 1.0)?;
        Ok(Value::from(m.value("w")?))
    };
    for length in [0, 2] {
        let expected = if length == 0 { 4.0 } else { 3.0 };
        let after_scan = same_on_both(|engine| {
            let m = Object::new("M").with("w", Param::new(Tensor::from_slice(&[4.0f32])))?;
            scan(body)
                .in_axes((None::<i32>,))
                .out_axes(0)
                .length(length)
                .call(engine, &[Value::from(&m)])?;
            m.value("w")
        });
        assert_eq!(after_scan.to_vec::<f32>().expect("f32"), vec![expected]);
        let after_grad = same_on_both(|engine| {
            let m = Object::new("M").with("w", Param::new(Tensor::from_slice(&[4.0f32])))?;
            value_and_grad(|a: &[Value]| {
                let ys = scan(body)
                    .in_axes((None::<i32>,))
                    .out_axes(0)
                    .length(length)
                    .call(engine, a)?;
                Ok(Value::from(ys.as_tensor()?.sum(Axes::All)?))
            })
            .call(engine, &[Value::from(&m)])?;
            m.value("w")
        });
        assert_eq!(after_grad.to_vec::<f32>().expect("f32"), vec![expected]);
    }
}
