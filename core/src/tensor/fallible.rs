//! Arithmetic on `Result<Tensor>`: one `?` per expression.
//!
//! Every tensor operation can fail (shapes, dtypes), so it returns `Result<Tensor>`. So that a
//! chain does not need a `?` after each step, the operators also take a `Result<Tensor>` on
//! the left (with a tensor on the right) and on the right (with a tensor on the left), and
//! [`TensorResult`] gives `Result<Tensor>` the tensor methods, each passing an earlier error
//! through:
//!
//! ```
//! use nnx_core::{Result, Tensor, TensorResult};
//! # fn main() -> Result<()> {
//! let (x, w, b) = (Tensor::ones(&[2, 3]), Tensor::ones(&[3, 4]), Tensor::ones(&[4]));
//! let y = (x.matmul(&w) + &b).relu()?;                 // one `?`
//! assert_eq!(y.to_vec::<f32>()?, vec![4.0; 8]);
//! let z = (&x * 2.0).add(&x * &x).mean(None)?;         // Result with Result: a method
//! assert_eq!(z.item::<f32>()?, 3.0);
//! let e = (x.matmul(&x) + &b).relu();                  // the first error comes out
//! assert!(e.is_err());
//! # Ok(())
//! # }
//! fn negate(x: Result<Tensor>) -> Result<Tensor> {
//!     x.negative()                                       // not `-(x?)`: see below
//! }
//! ```
//!
//! `-(x?)` as a function's tail expression does not compile: rustc checks the operand of a
//! unary operator against the type expected of the whole expression (`Result<Tensor>`), so
//! it reports `x?` as the wrong type. `x.negative()` (on a `Result` or a `Tensor`), or
//! `let y = -(x?); y`, says the same thing.
//!
//! Rust's orphan rule allows an operator between `Result<Tensor>` and a `Tensor`, but not
//! between two `Result`s, with a scalar, or `-` of a `Result`: those are the methods of
//! [`TensorResult`] (`a.add(b)`, `r.mul(2.0)`, `r.negative()`). See
//! `docs/decisions/0008-typed-api.md`.

use std::ops::{Add, Div, Mul, Sub};

use super::{Axes, DType, Tensor};
use crate::error::Result;

/// A right-hand operand of [`TensorResult`]'s binary methods: a tensor, a reference to one,
/// a `Result<Tensor>` (its error passes through), or an `f32`/`i32` scalar (weakly typed, as
/// a Python scalar in JAX).
pub trait Operand {
    /// The operand as a tensor.
    ///
    /// # Errors
    /// The error a `Result` operand holds.
    fn operand(self) -> Result<Tensor>;
}

impl Operand for Tensor {
    fn operand(self) -> Result<Tensor> {
        Ok(self)
    }
}

impl Operand for &Tensor {
    fn operand(self) -> Result<Tensor> {
        Ok(self.clone())
    }
}

impl Operand for Result<Tensor> {
    fn operand(self) -> Result<Tensor> {
        self
    }
}

impl Operand for f32 {
    fn operand(self) -> Result<Tensor> {
        Ok(Tensor::from(self))
    }
}

impl Operand for i32 {
    fn operand(self) -> Result<Tensor> {
        Ok(Tensor::from(self))
    }
}

/// Operators with a `Result<Tensor>` on one side and a tensor on the other.
macro_rules! result_operator {
    ($trait:ident, $method:ident) => {
        impl $trait<&Tensor> for Result<Tensor> {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                self?.$method(rhs)
            }
        }
        impl $trait<Tensor> for Result<Tensor> {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                self?.$method(&rhs)
            }
        }
        impl $trait<Result<Tensor>> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Result<Tensor>) -> Result<Tensor> {
                Tensor::$method(self, &rhs?)
            }
        }
        impl $trait<Result<Tensor>> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Result<Tensor>) -> Result<Tensor> {
                Tensor::$method(&self, &rhs?)
            }
        }
    };
}

result_operator!(Add, add);
result_operator!(Sub, sub);
result_operator!(Mul, mul);
result_operator!(Div, div);

/// `jax.numpy`-named tensor methods on `Result<Tensor>`, so that chains need one `?`:
/// `(x.matmul(&w) + &b).relu()?`. Each passes an earlier error through unchanged.
pub trait TensorResult: Sized {
    /// The tensor, or the error.
    ///
    /// # Errors
    /// The error held.
    fn tensor(self) -> Result<Tensor>;

    /// [`Tensor::add`] with any [`Operand`].
    ///
    /// # Errors
    /// As [`Tensor::add`], or an error passed through.
    fn add(self, rhs: impl Operand) -> Result<Tensor> {
        self.tensor()?.add(&rhs.operand()?)
    }

    /// [`Tensor::sub`] with any [`Operand`].
    ///
    /// # Errors
    /// As [`Tensor::sub`], or an error passed through.
    fn sub(self, rhs: impl Operand) -> Result<Tensor> {
        self.tensor()?.sub(&rhs.operand()?)
    }

    /// [`Tensor::mul`] with any [`Operand`].
    ///
    /// # Errors
    /// As [`Tensor::mul`], or an error passed through.
    fn mul(self, rhs: impl Operand) -> Result<Tensor> {
        self.tensor()?.mul(&rhs.operand()?)
    }

    /// [`Tensor::div`] with any [`Operand`].
    ///
    /// # Errors
    /// As [`Tensor::div`], or an error passed through.
    fn div(self, rhs: impl Operand) -> Result<Tensor> {
        self.tensor()?.div(&rhs.operand()?)
    }

    /// [`Tensor::pow`] with any [`Operand`].
    ///
    /// # Errors
    /// As [`Tensor::pow`], or an error passed through.
    fn pow(self, rhs: impl Operand) -> Result<Tensor> {
        self.tensor()?.pow(&rhs.operand()?)
    }

    /// [`Tensor::maximum`] with any [`Operand`].
    ///
    /// # Errors
    /// As [`Tensor::maximum`], or an error passed through.
    fn maximum(self, rhs: impl Operand) -> Result<Tensor> {
        self.tensor()?.maximum(&rhs.operand()?)
    }

    /// [`Tensor::minimum`] with any [`Operand`].
    ///
    /// # Errors
    /// As [`Tensor::minimum`], or an error passed through.
    fn minimum(self, rhs: impl Operand) -> Result<Tensor> {
        self.tensor()?.minimum(&rhs.operand()?)
    }

    /// [`Tensor::matmul`] with any [`Operand`].
    ///
    /// # Errors
    /// As [`Tensor::matmul`], or an error passed through.
    fn matmul(self, rhs: impl Operand) -> Result<Tensor> {
        self.tensor()?.matmul(&rhs.operand()?)
    }

    /// [`Tensor::negative`].
    ///
    /// # Errors
    /// As [`Tensor::negative`], or an error passed through.
    fn negative(self) -> Result<Tensor> {
        self.tensor()?.negative()
    }

    /// [`Tensor::relu`].
    ///
    /// # Errors
    /// As [`Tensor::relu`], or an error passed through.
    fn relu(self) -> Result<Tensor> {
        self.tensor()?.relu()
    }

    /// [`Tensor::exp`].
    ///
    /// # Errors
    /// As [`Tensor::exp`], or an error passed through.
    fn exp(self) -> Result<Tensor> {
        self.tensor()?.exp()
    }

    /// [`Tensor::log`].
    ///
    /// # Errors
    /// As [`Tensor::log`], or an error passed through.
    fn log(self) -> Result<Tensor> {
        self.tensor()?.log()
    }

    /// [`Tensor::tanh`].
    ///
    /// # Errors
    /// As [`Tensor::tanh`], or an error passed through.
    fn tanh(self) -> Result<Tensor> {
        self.tensor()?.tanh()
    }

    /// [`Tensor::erf`].
    ///
    /// # Errors
    /// As [`Tensor::erf`], or an error passed through.
    fn erf(self) -> Result<Tensor> {
        self.tensor()?.erf()
    }

    /// [`Tensor::sin`].
    ///
    /// # Errors
    /// As [`Tensor::sin`], or an error passed through.
    fn sin(self) -> Result<Tensor> {
        self.tensor()?.sin()
    }

    /// [`Tensor::cos`].
    ///
    /// # Errors
    /// As [`Tensor::cos`], or an error passed through.
    fn cos(self) -> Result<Tensor> {
        self.tensor()?.cos()
    }

    /// [`Tensor::sqrt`].
    ///
    /// # Errors
    /// As [`Tensor::sqrt`], or an error passed through.
    fn sqrt(self) -> Result<Tensor> {
        self.tensor()?.sqrt()
    }

    /// [`Tensor::sum`].
    ///
    /// # Errors
    /// As [`Tensor::sum`], or an error passed through.
    fn sum(self, axes: impl Into<Axes>) -> Result<Tensor> {
        self.tensor()?.sum(axes)
    }

    /// [`Tensor::mean`].
    ///
    /// # Errors
    /// As [`Tensor::mean`], or an error passed through.
    fn mean(self, axes: impl Into<Axes>) -> Result<Tensor> {
        self.tensor()?.mean(axes)
    }

    /// [`Tensor::max`].
    ///
    /// # Errors
    /// As [`Tensor::max`], or an error passed through.
    fn max(self, axes: impl Into<Axes>) -> Result<Tensor> {
        self.tensor()?.max(axes)
    }

    /// [`Tensor::min`].
    ///
    /// # Errors
    /// As [`Tensor::min`], or an error passed through.
    fn min(self, axes: impl Into<Axes>) -> Result<Tensor> {
        self.tensor()?.min(axes)
    }

    /// [`Tensor::reshape`].
    ///
    /// # Errors
    /// As [`Tensor::reshape`], or an error passed through.
    fn reshape(self, shape: &[isize]) -> Result<Tensor> {
        self.tensor()?.reshape(shape)
    }

    /// [`Tensor::transpose`].
    ///
    /// # Errors
    /// As [`Tensor::transpose`], or an error passed through.
    fn transpose(self) -> Result<Tensor> {
        self.tensor()?.transpose()
    }

    /// [`Tensor::astype`].
    ///
    /// # Errors
    /// As [`Tensor::astype`], or an error passed through.
    fn astype(self, dtype: DType) -> Result<Tensor> {
        self.tensor()?.astype(dtype)
    }

    /// [`Tensor::stop_gradient`].
    ///
    /// # Errors
    /// As [`Tensor::stop_gradient`], or an error passed through.
    fn stop_gradient(self) -> Result<Tensor> {
        self.tensor()?.stop_gradient()
    }
}

impl TensorResult for Result<Tensor> {
    fn tensor(self) -> Result<Tensor> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::{Result, Tensor, TensorResult};
    use crate::Error;

    #[test]
    fn operators_mix_tensors_and_results() {
        let a = Tensor::ones([2]);
        let r: Result<Tensor> = &a * 3.0;
        let s = ((r + &a) - Tensor::ones([2])) / &a;
        assert_eq!(s.unwrap().to_vec::<f32>().unwrap(), vec![3.0, 3.0]);
        let t = &a + (&a * &a);
        assert_eq!(t.unwrap().to_vec::<f32>().unwrap(), vec![2.0, 2.0]);
        let u = (&a * 2.0).mul(&a + &a).sub(1.0).negative();
        assert_eq!(u.unwrap().to_vec::<f32>().unwrap(), vec![-3.0, -3.0]);
    }

    #[test]
    fn the_first_error_passes_through() {
        let bad = Tensor::ones([2]).matmul(&Tensor::ones([3]));
        let first = bad.clone().unwrap_err();
        let chained = ((bad + &Tensor::ones([2])).relu().sum(None)).unwrap_err();
        assert_eq!(chained, first);
        assert!(matches!(first, Error::MatmulShape { .. }));
    }
}
