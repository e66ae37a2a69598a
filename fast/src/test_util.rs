//! What the unit tests of the kernels and compiler passes share.

use nnx_core::program::{AbstractValue, Primitive};
use nnx_core::{Array, DType, Result};

/// A float32 array of `shape` with deterministic, varied values (`seed` shifts them).
pub(crate) fn arr(shape: &[usize], seed: f32) -> Array {
    let n: usize = shape.iter().product();
    let data = (0..n).map(|i| ((i as f32 + seed) * 0.37).sin()).collect();
    Array::from_vec(shape, data).unwrap()
}

/// The abstract value of a strongly typed float32 array of `shape`.
pub(crate) fn aval(shape: &[usize]) -> AbstractValue {
    AbstractValue::new(shape.to_vec(), DType::F32, false)
}

/// `kernel` (a fast kernel dispatcher such as `ops::eval`) on `primitive` and `args`, on one
/// thread and on two, gives exactly the reference's result.
pub(crate) fn agrees_on_every_split(
    kernel: fn(&Primitive, &[Array]) -> Option<Result<Array>>,
    primitive: &Primitive,
    args: &[Array],
) {
    let reference = primitive.eval(args).unwrap();
    for parallelism in [
        crate::Parallelism::Sequential,
        crate::Parallelism::Threads(2),
    ] {
        let before = crate::Fast::parallelism();
        crate::Fast::set_parallelism(parallelism);
        let fast = kernel(primitive, args);
        crate::Fast::set_parallelism(before);
        let fast = fast.expect("a kernel").unwrap();
        assert!(
            fast.identical(&reference),
            "{primitive:?} {parallelism:?}: {fast:?} vs {reference:?}"
        );
        assert_eq!(fast.is_weak(), reference.is_weak(), "{primitive:?}");
    }
}
