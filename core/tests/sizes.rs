//! Shapes from user input never panic, wrap around or abort: an element count that overflows
//! is `Error::ArrayTooLarge`, a buffer the allocator cannot provide is
//! `Error::AllocationFailed`, eagerly and while tracing.

use nnx_core::program::{Program, trace_fn};
use nnx_core::{Array, Error, ErrorKind, Tensor, random};

const HUGE: usize = 1 << 32; // HUGE * HUGE overflows a 64-bit usize
// 256 TiB of float32: fits a usize, not any machine's address space (so not even an
// overcommitting allocator grants it).
const TOO_BIG: usize = 1 << 46;

fn kind<T: std::fmt::Debug>(r: nnx_core::Result<T>) -> (ErrorKind, String) {
    let e = r.unwrap_err();
    (e.kind(), e.to_string())
}

#[test]
fn constructors_have_fallible_forms() {
    let (k, msg) = kind(Tensor::try_zeros([HUGE, HUGE]));
    assert_eq!(k, ErrorKind::Resource);
    assert_eq!(
        msg,
        "an array of shape [4294967296, 4294967296] is too large: its size overflows this \
         machine's address space"
    );
    let (k, msg) = kind(Tensor::try_zeros([TOO_BIG]));
    assert_eq!(k, ErrorKind::Resource);
    assert_eq!(
        msg,
        "cannot allocate 281474976710656 bytes for an array of shape [70368744177664] and \
         dtype float32"
    );
    assert!(Tensor::try_ones([TOO_BIG]).is_err());
    assert!(Tensor::try_full([HUGE, HUGE], 1i32).is_err());
    assert!(Tensor::try_arange(TOO_BIG).is_err());
    assert!(Tensor::zeros_of([TOO_BIG], nnx_core::DType::Key).is_err());
    assert!(Array::try_zeros(&[TOO_BIG]).is_err());
    // The element count of an empty shape is 0 however large the other dimensions are.
    assert_eq!(Tensor::try_zeros([HUGE, HUGE, 0]).unwrap().size(), 0);
    let (k, _) = kind(Tensor::from_vec(&[HUGE, HUGE], vec![0.0f32]));
    assert_eq!(k, ErrorKind::Resource);
}

#[test]
#[should_panic(expected = "too large")]
fn infallible_constructors_panic_like_vec_instead_of_wrapping() {
    let _ = Tensor::zeros([HUGE, HUGE]);
}

#[test]
fn reshape_to_an_overflowing_shape_is_an_error() {
    let empty = Tensor::try_zeros([0]).unwrap();
    let (k, msg) = kind(empty.reshape(&[HUGE as isize, HUGE as isize]));
    assert_eq!(k, ErrorKind::Resource);
    assert!(msg.contains("its size overflows"), "{msg}");
    assert!(
        Tensor::arange(6)
            .reshape(&[HUGE as isize, HUGE as isize, -1])
            .is_err()
    );
}

#[test]
fn operations_whose_results_cannot_exist_are_errors() {
    let scalar = Tensor::scalar(1.0f32);
    assert_eq!(
        kind(scalar.broadcast_to(&[HUGE, HUGE])).0,
        ErrorKind::Resource
    );
    assert!(matches!(
        scalar.broadcast_to(&[TOO_BIG]).unwrap_err(),
        Error::AllocationFailed { .. }
    ));
    // Two small operands whose broadcast is 2^46 elements.
    let col = Tensor::try_zeros([1 << 23, 1]).unwrap();
    let row = Tensor::try_zeros([1, 1 << 23]).unwrap();
    assert!(matches!(
        col.add(&row).unwrap_err(),
        Error::AllocationFailed { .. }
    ));
    assert!(col.less(&row).is_err());
    assert!(col.matmul(&row).is_err());
    let key = random::key(0);
    assert!(random::uniform(&key, [TOO_BIG]).is_err());
    assert!(random::normal(&key, [HUGE, HUGE]).is_err());
}

#[test]
fn tracing_rejects_overflowing_shapes_and_engines_reject_impossible_buffers() {
    let traced = trace_fn(&[Tensor::scalar(1.0f32).aval()], |inputs| {
        let y = inputs[0].broadcast_to(&[HUGE, HUGE])?;
        Ok((vec![y], ()))
    });
    assert_eq!(kind(traced.map(|_| ())).0, ErrorKind::Resource);

    // A program whose output fits a usize but not the machine fails when interpreted.
    let traced = trace_fn(&[Tensor::scalar(1.0f32).aval()], |inputs| {
        let y = inputs[0].broadcast_to(&[TOO_BIG])?;
        Ok((vec![y], ()))
    })
    .unwrap();
    let program: &Program = &traced.program;
    let result = nnx_core::program::interpret(program, &[Array::scalar(1.0f32)], |p, args| {
        Ok(vec![p.eval(args)?])
    });
    assert!(matches!(
        result.unwrap_err(),
        Error::AllocationFailed { .. }
    ));
}
