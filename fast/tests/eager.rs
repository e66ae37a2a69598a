//! Eager tensor operations (outside any transform) run on `Fast`'s kernels once `Fast` is
//! the eager engine, with the same results and the same errors as the reference kernels.

use nnx_fast::engine::{eager_engine, set_eager_engine};
use nnx_fast::prelude::*;
use nnx_fast::random;

fn eager_engine_name() -> Option<String> {
    eager_engine().map(|e| e.name().to_string())
}

/// One test: the eager engine is process-wide state.
#[test]
fn eager_operations_use_fast_after_fast_runs_and_agree_with_the_reference() -> Result<()> {
    let x = random::normal(&random::key(0), [300, 200])?;
    let w = random::normal(&random::key(1), [200, 100])?;
    let b = random::normal(&random::key(2), [100])?;
    let layer = |x: &Tensor| -> Result<Tensor> { x.matmul(&w)?.add(&b)?.relu()?.sum(0) };

    set_eager_engine(None);
    let reference = layer(&x)?;
    let reference_error = x.matmul(&x).map(drop).unwrap_err().to_string();

    // The first program Fast compiles makes it the eager engine.
    let f = jit(|args: &[Value]| Ok(Value::from((&args[0].as_tensor()? * 2.0f32)?)));
    f.call(&Fast, (&Tensor::ones([2]),))?;
    assert_eq!(eager_engine_name().as_deref(), Some("fast"));

    let fast = layer(&x)?;
    assert!(fast.allclose(&reference, 1e-4, 1e-4)?);
    assert_eq!(fast.shape(), reference.shape());
    // Elementwise kernels are the reference's operations in the same order: identical.
    let y = (&x * 3.0f32)?.add(&x)?.maximum(&Tensor::zeros([200]))?;
    set_eager_engine(None);
    let y_reference = (&x * 3.0f32)?.add(&x)?.maximum(&Tensor::zeros([200]))?;
    assert!(y.identical(&y_reference));

    // Errors are the same typed errors.
    Fast::use_for_eager();
    assert_eq!(
        x.matmul(&x).map(drop).unwrap_err().to_string(),
        reference_error
    );
    // Layout changes and reductions run the array methods on any eager engine: the same
    // results and the same argument checks.
    let t = x.transpose()?.reshape(&[100, 600])?.sum(1)?;
    set_eager_engine(None);
    let t_reference = x.transpose()?.reshape(&[100, 600])?.sum(1)?;
    assert!(t.identical(&t_reference));
    Fast::use_for_eager();
    Ok(())
}
