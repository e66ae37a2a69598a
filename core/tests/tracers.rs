//! Tracers used where they cannot be: after their trace ended, or on another thread.

use nnx_core::program::trace_fn;
use nnx_core::{Error, ErrorKind, Tensor};

fn f32_scalar() -> nnx_core::program::AbstractValue {
    Tensor::scalar(1.0f32).aval()
}

#[test]
fn a_tracer_sent_to_another_thread_says_so() {
    let traced = trace_fn(&[f32_scalar()], |inputs| {
        let x = inputs[0].clone();
        let err = std::thread::scope(|s| {
            s.spawn(move || x.add(&x).err())
                .join()
                .map_err(|_| Error::Internal {
                    what: "the thread panicked".into(),
                })
        })?
        .ok_or_else(|| Error::Internal {
            what: "the other thread recorded an operation".into(),
        })?;
        assert!(matches!(err, Error::TracerOnOtherThread { .. }));
        assert_eq!(err.kind(), ErrorKind::Tracing);
        insta::assert_snapshot!(err.to_string());
        // The trace itself is unaffected and goes on on its own thread.
        Ok((vec![inputs[0].add(&inputs[0])?], ()))
    })
    .unwrap();
    assert_eq!(traced.program.equations.len(), 1);
}

#[test]
fn a_tracer_used_after_its_trace_ended_has_escaped() {
    let mut leaked = None;
    trace_fn(&[f32_scalar()], |inputs| {
        leaked = Some(inputs[0].clone());
        Ok((vec![inputs[0].clone()], ()))
    })
    .unwrap();
    let Some(x) = leaked else {
        panic!("the closure ran")
    };
    let err = x.add(&x).unwrap_err();
    assert!(matches!(err, Error::EscapedTracer { .. }), "{err}");
}
