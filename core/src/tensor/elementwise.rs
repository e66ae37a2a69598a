//! Elementwise operations with numpy broadcasting and JAX dtype promotion.
//!
//! Binary arithmetic is [`BinaryOp`], comparisons [`CompareOp`], unary maths [`UnaryOp`]. The
//! operators `+ - * /` and unary `-` are implemented for `Array`, `&Array` and Rust scalars
//! (which act as weakly typed scalars) and return [`Result<Array>`], because shapes may not
//! broadcast.

use std::ops::{Add, Div, Mul, Neg, Sub};

use super::alloc::check_allocation;
use super::shape::{broadcast_shapes, broadcast_strides};
use super::view::copy_strided;
use super::{Array, Buffer, DType, Element, Tensor, promote};
use crate::error::{Error, Result};

/// A binary arithmetic operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`, true division: integers are promoted to float32 first, as in JAX.
    Div,
    /// `a ** b`
    Pow,
    /// Elementwise maximum (NaN propagates).
    Maximum,
    /// Elementwise minimum (NaN propagates).
    Minimum,
}

impl BinaryOp {
    /// The numpy-style name of the operation.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "subtract",
            BinaryOp::Mul => "multiply",
            BinaryOp::Div => "divide",
            BinaryOp::Pow => "power",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
        }
    }

    /// The operation on two float32 values, exactly as the reference kernel computes it
    /// (engines reuse it so that their elementwise results are bit-identical).
    #[inline]
    pub fn f32(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Maximum => {
                if a.is_nan() || b.is_nan() {
                    f32::NAN
                } else {
                    a.max(b)
                }
            }
            BinaryOp::Minimum => {
                if a.is_nan() || b.is_nan() {
                    f32::NAN
                } else {
                    a.min(b)
                }
            }
        }
    }

    fn i32(self, a: i32, b: i32) -> i32 {
        match self {
            BinaryOp::Add => a.wrapping_add(b),
            BinaryOp::Sub => a.wrapping_sub(b),
            BinaryOp::Mul => a.wrapping_mul(b),
            // unreachable in practice: integer division is promoted to float32
            BinaryOp::Div => a.checked_div(b).unwrap_or(0),
            BinaryOp::Pow => int_pow_i32(a, b),
            BinaryOp::Maximum => a.max(b),
            BinaryOp::Minimum => a.min(b),
        }
    }

    fn u32(self, a: u32, b: u32) -> u32 {
        match self {
            BinaryOp::Add => a.wrapping_add(b),
            BinaryOp::Sub => a.wrapping_sub(b),
            BinaryOp::Mul => a.wrapping_mul(b),
            BinaryOp::Div => a.checked_div(b).unwrap_or(0),
            BinaryOp::Pow => a.wrapping_pow(b),
            BinaryOp::Maximum => a.max(b),
            BinaryOp::Minimum => a.min(b),
        }
    }
}

/// Integer power with XLA's conventions: wrapping, and a negative exponent gives 0 unless the
/// base is ±1.
fn int_pow_i32(base: i32, exp: i32) -> i32 {
    if exp >= 0 {
        base.wrapping_pow(exp as u32)
    } else {
        match base {
            1 => 1,
            -1 => {
                if exp % 2 == 0 {
                    1
                } else {
                    -1
                }
            }
            _ => 0,
        }
    }
}

/// An elementwise comparison, giving a bool array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `a == b`
    Eq,
    /// `a != b`
    Ne,
    /// `a < b`
    Lt,
    /// `a <= b`
    Le,
    /// `a > b`
    Gt,
    /// `a >= b`
    Ge,
}

impl CompareOp {
    /// The numpy-style name of the comparison.
    pub fn name(self) -> &'static str {
        match self {
            CompareOp::Eq => "equal",
            CompareOp::Ne => "not_equal",
            CompareOp::Lt => "less",
            CompareOp::Le => "less_equal",
            CompareOp::Gt => "greater",
            CompareOp::Ge => "greater_equal",
        }
    }

    /// The comparison on two float32 values (what every engine's kernel computes).
    #[inline]
    pub fn f32(self, a: f32, b: f32) -> bool {
        self.apply(a, b)
    }

    fn apply<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            CompareOp::Eq => a == b,
            CompareOp::Ne => a != b,
            CompareOp::Lt => a < b,
            CompareOp::Le => a <= b,
            CompareOp::Gt => a > b,
            CompareOp::Ge => a >= b,
        }
    }
}

/// A unary elementwise operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-a` (wrapping for integers).
    Neg,
    /// `|a|`
    Abs,
    /// `e^a` (integers are promoted to float32).
    Exp,
    /// Natural logarithm (integers are promoted to float32).
    Log,
    /// Square root (integers are promoted to float32).
    Sqrt,
    /// Hyperbolic tangent (integers are promoted to float32).
    Tanh,
    /// Sine (integers are promoted to float32).
    Sin,
    /// Cosine (integers are promoted to float32).
    Cos,
    /// `1 / (1 + e^-a)` (integers are promoted to float32).
    Logistic,
    /// The error function, as XLA computes it in float32 (integers are promoted to float32).
    Erf,
}

impl UnaryOp {
    /// The numpy-style name of the operation.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "negative",
            UnaryOp::Abs => "absolute",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Logistic => "logistic",
            UnaryOp::Erf => "erf",
        }
    }

    /// Whether the operation is only defined on floats (so integers are promoted).
    pub(crate) fn is_transcendental(self) -> bool {
        !matches!(self, UnaryOp::Neg | UnaryOp::Abs)
    }

    /// The operation on one float32 value (what every engine's kernel computes).
    #[inline]
    pub fn f32(self, a: f32) -> f32 {
        match self {
            UnaryOp::Neg => -a,
            UnaryOp::Abs => a.abs(),
            UnaryOp::Exp => a.exp(),
            UnaryOp::Log => a.ln(),
            UnaryOp::Sqrt => a.sqrt(),
            UnaryOp::Tanh => a.tanh(),
            UnaryOp::Sin => a.sin(),
            UnaryOp::Cos => a.cos(),
            UnaryOp::Logistic => 1.0 / (1.0 + (-a).exp()),
            UnaryOp::Erf => crate::random::sampling::erf_f32(a),
        }
    }
}

/// `f(a[i], b[i])` over the broadcast of two buffers.
fn zip_broadcast<A: Copy, B: Copy, R>(
    a: &[A],
    a_shape: &[usize],
    b: &[B],
    b_shape: &[usize],
    out_shape: &[usize],
    f: impl Fn(A, B) -> R,
) -> Vec<R> {
    if a_shape == b_shape {
        return a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    }
    let n: usize = out_shape.iter().product();
    if a.len() == n && b.len() == 1 {
        let y = b[0];
        return a.iter().map(|&x| f(x, y)).collect();
    }
    if b.len() == n && a.len() == 1 {
        let x = a[0];
        return b.iter().map(|&y| f(x, y)).collect();
    }
    // Row broadcasting (`x + bias`): the smaller operand repeats along leading axes.
    if a.len() == n && !b.is_empty() && out_shape.ends_with(b_shape) {
        let m = b.len();
        return a
            .chunks(m)
            .flat_map(|row| row.iter().zip(b).map(|(&x, &y)| f(x, y)))
            .collect();
    }
    if b.len() == n && !a.is_empty() && out_shape.ends_with(a_shape) {
        let m = a.len();
        return b
            .chunks(m)
            .flat_map(|row| a.iter().zip(row).map(|(&x, &y)| f(x, y)))
            .collect();
    }
    let (a, b) = (expand(a, a_shape, out_shape), expand(b, b_shape, out_shape));
    a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect()
}

/// The row-major elements of `data` (of `shape`) broadcast to `out_shape`.
fn expand<T: Copy>(data: &[T], shape: &[usize], out_shape: &[usize]) -> Vec<T> {
    let Some(&first) = data.first() else {
        return Vec::new();
    };
    let mut out = vec![first; out_shape.iter().product()];
    copy_strided(
        data,
        0,
        out_shape,
        &broadcast_strides(shape, out_shape),
        &mut out,
    );
    out
}

fn unsupported(op: &'static str, dtype: DType) -> Error {
    Error::UnsupportedDType {
        op,
        dtype,
        expected: Some("int32, uint32 or float32"),
    }
}

impl Array {
    /// Promotes both operands to a common dtype; returns the converted operands and whether
    /// the result is weak.
    fn promoted(&self, other: &Array, op: &'static str) -> Result<(Array, Array, bool)> {
        let (dtype, weak) = promote(self.dtype(), self.is_weak(), other.dtype(), other.is_weak())
            .ok_or(Error::DTypeMismatch {
            op,
            lhs: self.dtype(),
            rhs: other.dtype(),
        })?;
        Ok((self.astype(dtype)?, other.astype(dtype)?, weak))
    }

    /// Applies a binary arithmetic operation with broadcasting and dtype promotion.
    ///
    /// # Errors
    /// [`Error::Broadcast`] when the shapes do not broadcast; [`Error::UnsupportedDType`] for
    /// bool or key operands.
    pub fn binary(&self, op: BinaryOp, other: &Array) -> Result<Array> {
        let name = op.name();
        let out_shape = broadcast_shapes(name, self.shape(), other.shape())?;
        let (mut a, mut b, weak) = self.promoted(other, name)?;
        check_allocation(&out_shape, a.dtype())?;
        if op == BinaryOp::Div && !a.dtype().is_float() {
            a = a.astype(DType::F32)?;
            b = b.astype(DType::F32)?;
        }
        let buffer = match (a.buffer(), b.buffer()) {
            (Buffer::F32(x), Buffer::F32(y)) => f32::into_buffer(zip_broadcast(
                x,
                a.shape(),
                y,
                b.shape(),
                &out_shape,
                |p, q| op.f32(p, q),
            )),
            (Buffer::I32(x), Buffer::I32(y)) => i32::into_buffer(zip_broadcast(
                x,
                a.shape(),
                y,
                b.shape(),
                &out_shape,
                |p, q| op.i32(p, q),
            )),
            (Buffer::U32(x), Buffer::U32(y)) => u32::into_buffer(zip_broadcast(
                x,
                a.shape(),
                y,
                b.shape(),
                &out_shape,
                |p, q| op.u32(p, q),
            )),
            _ => return Err(unsupported(name, a.dtype())),
        };
        Ok(Array::from_parts(out_shape, buffer, weak))
    }

    /// Compares elementwise with broadcasting, giving a bool array.
    ///
    /// # Errors
    /// [`Error::Broadcast`] when the shapes do not broadcast; [`Error::DTypeMismatch`] for
    /// key operands.
    pub fn compare(&self, op: CompareOp, other: &Array) -> Result<Array> {
        let name = op.name();
        let out_shape = broadcast_shapes(name, self.shape(), other.shape())?;
        let (a, b, _) = self.promoted(other, name)?;
        check_allocation(&out_shape, DType::Bool)?;
        let data = match (a.buffer(), b.buffer()) {
            (Buffer::F32(x), Buffer::F32(y)) => {
                zip_broadcast(x, a.shape(), y, b.shape(), &out_shape, |p, q| {
                    op.apply(p, q)
                })
            }
            (Buffer::I32(x), Buffer::I32(y)) => {
                zip_broadcast(x, a.shape(), y, b.shape(), &out_shape, |p, q| {
                    op.apply(p, q)
                })
            }
            (Buffer::U32(x), Buffer::U32(y)) => {
                zip_broadcast(x, a.shape(), y, b.shape(), &out_shape, |p, q| {
                    op.apply(p, q)
                })
            }
            (Buffer::Bool(x), Buffer::Bool(y)) => {
                zip_broadcast(x, a.shape(), y, b.shape(), &out_shape, |p, q| {
                    op.apply(p, q)
                })
            }
            _ => return Err(unsupported(name, a.dtype())),
        };
        Ok(Array::from_parts(out_shape, bool::into_buffer(data), false))
    }

    /// Applies a unary operation elementwise.
    ///
    /// # Errors
    /// [`Error::UnsupportedDType`] for bool or key arrays.
    pub fn unary(&self, op: UnaryOp) -> Result<Array> {
        let name = op.name();
        let source = if op.is_transcendental() && matches!(self.dtype(), DType::I32 | DType::U32) {
            self.astype(DType::F32)?
        } else {
            self.clone()
        };
        let buffer = match source.buffer() {
            Buffer::F32(x) => f32::into_buffer(x.iter().map(|&v| op.f32(v)).collect()),
            Buffer::I32(x) => i32::into_buffer(
                x.iter()
                    .map(|&v| {
                        if op == UnaryOp::Neg {
                            v.wrapping_neg()
                        } else {
                            v.wrapping_abs()
                        }
                    })
                    .collect(),
            ),
            Buffer::U32(x) => u32::into_buffer(
                x.iter()
                    .map(|&v| {
                        if op == UnaryOp::Neg {
                            v.wrapping_neg()
                        } else {
                            v
                        }
                    })
                    .collect(),
            ),
            Buffer::Bool(_) | Buffer::Key(_) => return Err(unsupported(name, self.dtype())),
        };
        Ok(Array::from_parts(
            self.shape().to_vec(),
            buffer,
            self.is_weak(),
        ))
    }

    /// Picks `on_true` where `self` is true and `on_false` elsewhere, with broadcasting
    /// (`jnp.where(cond, on_true, on_false)`).
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`] when `self` is not bool; [`Error::Broadcast`] when the three
    /// shapes do not broadcast.
    pub fn select(&self, on_true: &Array, on_false: &Array) -> Result<Array> {
        if self.dtype() != DType::Bool {
            return Err(Error::DTypeMismatch {
                op: "select",
                lhs: self.dtype(),
                rhs: DType::Bool,
            });
        }
        let (t, f, weak) = on_true.promoted(on_false, "select")?;
        let value_shape = broadcast_shapes("select", t.shape(), f.shape())?;
        let out_shape = broadcast_shapes("select", self.shape(), &value_shape)?;
        check_allocation(&out_shape, t.dtype())?;
        let cond = self.broadcast_to(&out_shape)?;
        let n = cond.size();
        // Gather from [on_true…, on_false…] laid end to end: index i or n + i.
        let indices: Vec<usize> = cond
            .as_slice::<bool>()?
            .iter()
            .enumerate()
            .map(|(i, &c)| if c { i } else { n + i })
            .collect();
        let both = Array::concatenate(
            &[
                t.broadcast_to(&out_shape)?.reshape(&[-1])?,
                f.broadcast_to(&out_shape)?.reshape(&[-1])?,
            ],
            0,
        )?;
        let buffer = both.buffer().gather(&indices);
        Ok(Array::from_parts(out_shape, buffer, weak))
    }

    /// `self + other`; see [`Array::binary`].
    ///
    /// # Errors
    /// As [`Array::binary`].
    pub fn add(&self, other: &Array) -> Result<Array> {
        self.binary(BinaryOp::Add, other)
    }

    /// `self - other`; see [`Array::binary`].
    ///
    /// # Errors
    /// As [`Array::binary`].
    pub fn sub(&self, other: &Array) -> Result<Array> {
        self.binary(BinaryOp::Sub, other)
    }

    /// `self * other`; see [`Array::binary`].
    ///
    /// # Errors
    /// As [`Array::binary`].
    pub fn mul(&self, other: &Array) -> Result<Array> {
        self.binary(BinaryOp::Mul, other)
    }

    /// `self / other` (true division); see [`Array::binary`].
    ///
    /// # Errors
    /// As [`Array::binary`].
    pub fn div(&self, other: &Array) -> Result<Array> {
        self.binary(BinaryOp::Div, other)
    }

    /// `self ** other`; see [`Array::binary`].
    ///
    /// # Errors
    /// As [`Array::binary`].
    pub fn pow(&self, other: &Array) -> Result<Array> {
        self.binary(BinaryOp::Pow, other)
    }

    /// Elementwise maximum; see [`Array::binary`].
    ///
    /// # Errors
    /// As [`Array::binary`].
    pub fn maximum(&self, other: &Array) -> Result<Array> {
        self.binary(BinaryOp::Maximum, other)
    }

    /// Elementwise minimum; see [`Array::binary`].
    ///
    /// # Errors
    /// As [`Array::binary`].
    pub fn minimum(&self, other: &Array) -> Result<Array> {
        self.binary(BinaryOp::Minimum, other)
    }

    /// `self == other` elementwise.
    ///
    /// # Errors
    /// As [`Array::compare`].
    pub fn equal(&self, other: &Array) -> Result<Array> {
        self.compare(CompareOp::Eq, other)
    }

    /// `self < other` elementwise.
    ///
    /// # Errors
    /// As [`Array::compare`].
    pub fn less(&self, other: &Array) -> Result<Array> {
        self.compare(CompareOp::Lt, other)
    }

    /// `self > other` elementwise.
    ///
    /// # Errors
    /// As [`Array::compare`].
    pub fn greater(&self, other: &Array) -> Result<Array> {
        self.compare(CompareOp::Gt, other)
    }

    /// `e^self` elementwise.
    ///
    /// # Errors
    /// As [`Array::unary`].
    pub fn exp(&self) -> Result<Array> {
        self.unary(UnaryOp::Exp)
    }

    /// Natural logarithm elementwise.
    ///
    /// # Errors
    /// As [`Array::unary`].
    pub fn log(&self) -> Result<Array> {
        self.unary(UnaryOp::Log)
    }

    /// Hyperbolic tangent elementwise.
    ///
    /// # Errors
    /// As [`Array::unary`].
    pub fn tanh(&self) -> Result<Array> {
        self.unary(UnaryOp::Tanh)
    }

    /// The error function elementwise (`jax.lax.erf`).
    ///
    /// # Errors
    /// As [`Array::unary`].
    pub fn erf(&self) -> Result<Array> {
        self.unary(UnaryOp::Erf)
    }

    /// Square root elementwise.
    ///
    /// # Errors
    /// As [`Array::unary`].
    pub fn sqrt(&self) -> Result<Array> {
        self.unary(UnaryOp::Sqrt)
    }

    /// `max(self, 0)` elementwise.
    ///
    /// # Errors
    /// As [`Array::binary`].
    pub fn relu(&self) -> Result<Array> {
        self.maximum(&Array::from(0))
    }
}

macro_rules! impl_binary_operator {
    ($ty:ident, $trait:ident, $method:ident, $op:expr) => {
        impl $trait<&$ty> for &$ty {
            type Output = Result<$ty>;
            fn $method(self, rhs: &$ty) -> Result<$ty> {
                self.binary($op, rhs)
            }
        }
        impl $trait<$ty> for &$ty {
            type Output = Result<$ty>;
            fn $method(self, rhs: $ty) -> Result<$ty> {
                self.binary($op, &rhs)
            }
        }
        impl $trait<&$ty> for $ty {
            type Output = Result<$ty>;
            fn $method(self, rhs: &$ty) -> Result<$ty> {
                self.binary($op, rhs)
            }
        }
        impl $trait<$ty> for $ty {
            type Output = Result<$ty>;
            fn $method(self, rhs: $ty) -> Result<$ty> {
                self.binary($op, &rhs)
            }
        }
        impl_binary_operator!(@scalar $ty, $trait, $method, $op, f32);
        impl_binary_operator!(@scalar $ty, $trait, $method, $op, i32);
    };
    (@scalar $ty:ident, $trait:ident, $method:ident, $op:expr, $t:ty) => {
        impl $trait<$t> for &$ty {
            type Output = Result<$ty>;
            fn $method(self, rhs: $t) -> Result<$ty> {
                self.binary($op, &$ty::from(rhs))
            }
        }
        impl $trait<$t> for $ty {
            type Output = Result<$ty>;
            fn $method(self, rhs: $t) -> Result<$ty> {
                self.binary($op, &$ty::from(rhs))
            }
        }
        impl $trait<&$ty> for $t {
            type Output = Result<$ty>;
            fn $method(self, rhs: &$ty) -> Result<$ty> {
                $ty::from(self).binary($op, rhs)
            }
        }
        impl $trait<$ty> for $t {
            type Output = Result<$ty>;
            fn $method(self, rhs: $ty) -> Result<$ty> {
                $ty::from(self).binary($op, &rhs)
            }
        }
    };
}

macro_rules! impl_operators {
    ($ty:ident) => {
        impl_binary_operator!($ty, Add, add, BinaryOp::Add);
        impl_binary_operator!($ty, Sub, sub, BinaryOp::Sub);
        impl_binary_operator!($ty, Mul, mul, BinaryOp::Mul);
        impl_binary_operator!($ty, Div, div, BinaryOp::Div);

        impl Neg for &$ty {
            type Output = Result<$ty>;
            fn neg(self) -> Result<$ty> {
                self.unary(UnaryOp::Neg)
            }
        }

        impl Neg for $ty {
            type Output = Result<$ty>;
            fn neg(self) -> Result<$ty> {
                self.unary(UnaryOp::Neg)
            }
        }
    };
}

impl_operators!(Array);
impl_operators!(Tensor);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_add() {
        let a = Array::arange(6).reshape(&[2, 3]).unwrap();
        let b = Array::from_slice(&[10i32, 20, 30]);
        let c = (&a + &b).unwrap();
        assert_eq!(c.shape(), &[2, 3]);
        assert_eq!(c.to_vec::<i32>().unwrap(), vec![10, 21, 32, 13, 24, 35]);
        let col = Array::from_vec(&[2, 1], vec![1i32, 2]).unwrap();
        assert_eq!(
            (&a * &col).unwrap().to_vec::<i32>().unwrap(),
            vec![0, 1, 2, 6, 8, 10]
        );
    }

    #[test]
    fn scalars_are_weak() {
        let x = Array::from_slice(&[1.0f32, 2.0]);
        let y = (&x + 1).unwrap();
        assert_eq!(y.dtype(), DType::F32);
        assert!(!y.is_weak());
        let i = (Array::arange(3) + 1.5f32).unwrap();
        assert_eq!(i.dtype(), DType::F32);
        assert!(i.is_weak());
    }

    #[test]
    fn integer_division_is_true_division() {
        let q = (Array::arange(3) / 2).unwrap();
        assert_eq!(q.dtype(), DType::F32);
        assert_eq!(q.to_vec::<f32>().unwrap(), vec![0.0, 0.5, 1.0]);
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        let err = (Array::zeros(&[3]) + Array::zeros(&[4])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "add: shapes [3] and [4] cannot be broadcast together"
        );
    }

    #[test]
    fn bool_and_key_arithmetic_is_rejected() {
        let b = Array::from_slice(&[true]);
        assert!((&b + &b).is_err());
        let k = Array::from_keys(&[], vec![[0, 0]]).unwrap();
        assert!((&k + 1).is_err());
    }

    #[test]
    fn comparisons_and_select() {
        let x = Array::from_slice(&[-1.0f32, 0.5, 2.0]);
        let mask = x.greater(&Array::from(0.0f32)).unwrap();
        assert_eq!(mask.to_vec::<bool>().unwrap(), vec![false, true, true]);
        let y = mask.select(&x, &Array::from(0.0f32)).unwrap();
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![0.0, 0.5, 2.0]);
        assert_eq!(
            x.relu().unwrap().to_vec::<f32>().unwrap(),
            vec![0.0, 0.5, 2.0]
        );
    }

    #[test]
    fn unary_promotes_integers_for_transcendentals() {
        let e = Array::arange(2).exp().unwrap();
        assert_eq!(e.dtype(), DType::F32);
        assert_eq!(
            (-Array::arange(2)).unwrap().to_vec::<i32>().unwrap(),
            vec![0, -1]
        );
    }
}
