//! Named shorthands on [`Tensor`] (`add`, `exp`, `relu`, …) for the primitive operations.

use super::Tensor;
use super::elementwise::{BinaryOp, CompareOp, UnaryOp};
use crate::error::Result;

macro_rules! forward_binary {
    ($($(#[$doc:meta])* $name:ident => $op:expr),* $(,)?) => {
        impl Tensor {
            $(
                $(#[$doc])*
                ///
                /// # Errors
                /// As [`Tensor::binary`].
                pub fn $name(&self, other: &Tensor) -> Result<Tensor> {
                    self.binary($op, other)
                }
            )*
        }
    };
}

forward_binary! {
    /// `self + other`.
    add => BinaryOp::Add,
    /// `self - other`.
    sub => BinaryOp::Sub,
    /// `self * other`.
    mul => BinaryOp::Mul,
    /// `self / other` (true division).
    div => BinaryOp::Div,
    /// `self ** other`.
    pow => BinaryOp::Pow,
    /// Elementwise maximum.
    maximum => BinaryOp::Maximum,
    /// Elementwise minimum.
    minimum => BinaryOp::Minimum,
}

impl Tensor {
    /// `self == other` elementwise.
    ///
    /// # Errors
    /// As [`Tensor::compare`].
    pub fn equal(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(CompareOp::Eq, other)
    }

    /// `self < other` elementwise.
    ///
    /// # Errors
    /// As [`Tensor::compare`].
    pub fn less(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(CompareOp::Lt, other)
    }

    /// `self > other` elementwise.
    ///
    /// # Errors
    /// As [`Tensor::compare`].
    pub fn greater(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(CompareOp::Gt, other)
    }

    /// `-self` (`jnp.negative`; the `-` operator does the same).
    ///
    /// # Errors
    /// As [`Tensor::unary`].
    pub fn negative(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg)
    }

    /// `e^self`.
    ///
    /// # Errors
    /// As [`Tensor::unary`].
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }

    /// Natural logarithm.
    ///
    /// # Errors
    /// As [`Tensor::unary`].
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }

    /// Hyperbolic tangent.
    ///
    /// # Errors
    /// As [`Tensor::unary`].
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }

    /// The error function (`jax.lax.erf`), bit for bit as XLA computes it in float32.
    ///
    /// # Errors
    /// As [`Tensor::unary`].
    pub fn erf(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Erf)
    }

    /// Sine.
    ///
    /// # Errors
    /// As [`Tensor::unary`].
    pub fn sin(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sin)
    }

    /// Cosine.
    ///
    /// # Errors
    /// As [`Tensor::unary`].
    pub fn cos(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Cos)
    }

    /// Square root.
    ///
    /// # Errors
    /// As [`Tensor::unary`].
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }

    /// `max(self, 0)`.
    ///
    /// # Errors
    /// As [`Tensor::binary`].
    pub fn relu(&self) -> Result<Tensor> {
        self.maximum(&Tensor::from(0))
    }
}
