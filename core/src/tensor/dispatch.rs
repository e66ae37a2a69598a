//! [`Tensor`]: the array type user code works with — concrete, or a tracer inside a
//! transform. Every operation runs eagerly on concrete arrays and is recorded as a
//! [`Primitive`] when an operand is traced.

use std::fmt;

use super::elementwise::{BinaryOp, CompareOp, UnaryOp};
use super::reduce::{Axes, ReduceOp};
use super::shape::normalize_axes;
use super::{Array, DType, Element};
use crate::error::{Error, Result};
use crate::program::{AbstractValue, Primitive, Tracer, record};

/// An n-dimensional array as user code sees it: either concrete (an [`Array`]) or, inside a
/// transform, a *tracer* standing for values that do not exist yet.
///
/// Outside transforms every operation runs immediately. Inside a transform's function the
/// same code records operations into a program that the engine runs later (once per trace,
/// as in JAX). Asking a tracer for its contents (`to_vec`, `item`, …) is an
/// [`Error::Concretization`] error; its shape and dtype are always known.
///
/// Cloning is cheap: concrete buffers are shared, tracers are small.
///
/// ```
/// use nnx_core::Tensor;
/// # fn main() -> nnx_core::Result<()> {
/// let x = Tensor::arange(6).reshape(&[2, 3])?;
/// let y = (&x * 2)?.sum(1)?;
/// assert_eq!(y.to_vec::<i32>()?, vec![6, 24]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Tensor(Repr);

#[derive(Clone)]
enum Repr {
    Concrete(Array),
    Traced(Tracer),
    /// A shape and dtype without values (`jax.ShapeDtypeStruct`): what `eval_shape` gives.
    Abstract(AbstractValue),
}

impl From<Array> for Tensor {
    fn from(a: Array) -> Tensor {
        Tensor(Repr::Concrete(a))
    }
}

impl Tensor {
    pub(crate) fn from_tracer(t: Tracer) -> Tensor {
        Tensor(Repr::Traced(t))
    }

    /// An abstract array: a shape and dtype without values (`jax.ShapeDtypeStruct`), what
    /// [`eval_shape`](crate::transforms::eval_shape) gives. Its metadata (shape, dtype) can
    /// be read; anything that needs its values is [`Error::AbstractArray`]. A checkpoint
    /// restored into Variables holding abstract arrays makes them concrete.
    ///
    /// ```
    /// use nnx_core::{DType, Tensor, program::AbstractValue};
    /// let t = Tensor::abstract_of(AbstractValue::new(vec![2, 3], DType::F32, false));
    /// assert_eq!((t.shape(), t.is_abstract()), (&[2, 3][..], true));
    /// assert_eq!(t.repr(), "ShapeDtypeStruct(shape=(2, 3), dtype=float32)");
    /// assert!((&t + 1.0).is_err());
    /// ```
    pub fn abstract_of(aval: AbstractValue) -> Tensor {
        Tensor(Repr::Abstract(aval))
    }

    /// Whether this is an abstract array ([`Tensor::abstract_of`]).
    pub fn is_abstract(&self) -> bool {
        matches!(self.0, Repr::Abstract(_))
    }

    /// The tracer, if this tensor is traced.
    pub fn tracer(&self) -> Option<&Tracer> {
        match &self.0 {
            Repr::Traced(t) => Some(t),
            Repr::Concrete(_) | Repr::Abstract(_) => None,
        }
    }

    /// Whether this tensor is a tracer.
    pub fn is_traced(&self) -> bool {
        self.tracer().is_some()
    }

    /// The concrete array.
    ///
    /// # Errors
    /// [`Error::Concretization`] for a tracer.
    pub fn concrete(&self) -> Result<&Array> {
        match &self.0 {
            Repr::Concrete(a) => Ok(a),
            Repr::Traced(t) => Err(Error::Concretization {
                aval: t.aval().to_string(),
            }),
            Repr::Abstract(aval) => Err(Error::AbstractArray {
                aval: aval.to_string(),
            }),
        }
    }

    /// The concrete array, consuming the tensor.
    ///
    /// # Errors
    /// [`Error::Concretization`] for a tracer.
    pub fn into_concrete(self) -> Result<Array> {
        match self.0 {
            Repr::Concrete(a) => Ok(a),
            Repr::Traced(t) => Err(Error::Concretization {
                aval: t.aval().to_string(),
            }),
            Repr::Abstract(aval) => Err(Error::AbstractArray {
                aval: aval.to_string(),
            }),
        }
    }

    /// Shape, dtype and weak type.
    pub fn aval(&self) -> AbstractValue {
        match &self.0 {
            Repr::Concrete(a) => a.aval(),
            Repr::Traced(t) => t.aval().clone(),
            Repr::Abstract(aval) => aval.clone(),
        }
    }

    // ----- constructors (always concrete) -----

    /// See [`Array::from_vec`].
    ///
    /// # Errors
    /// [`Error::DataLength`] when `data.len()` is not the product of `shape`.
    pub fn from_vec<T: Element>(shape: &[usize], data: Vec<T>) -> Result<Tensor> {
        Array::from_vec(shape, data).map(Tensor::from)
    }

    /// A 1-D array holding `data`.
    pub fn from_slice<T: Element>(data: &[T]) -> Tensor {
        Array::from_slice(data).into()
    }

    /// A 0-d array.
    pub fn scalar<T: Element>(value: T) -> Tensor {
        Array::scalar(value).into()
    }

    /// A weakly typed 0-d array (a Rust literal in arithmetic); see [`Array::weak_scalar`].
    pub fn weak_scalar<T: Element>(value: T) -> Tensor {
        Array::weak_scalar(value).into()
    }

    /// An array filled with `value`.
    ///
    /// # Panics
    /// As [`Array::full`]; [`Tensor::try_full`] is the fallible form.
    pub fn full<T: Element>(shape: impl AsRef<[usize]>, value: T) -> Tensor {
        Array::full(shape.as_ref(), value).into()
    }

    /// An array filled with `value`, allocated fallibly.
    ///
    /// # Errors
    /// As [`Array::try_full`].
    pub fn try_full<T: Element>(shape: impl AsRef<[usize]>, value: T) -> Result<Tensor> {
        Array::try_full(shape.as_ref(), value).map(Tensor::from)
    }

    /// float32 zeros. A shape is anything that reads as `&[usize]`: `[2, 3]`, `&[2, 3]`,
    /// `x.shape()`, a `Vec`.
    ///
    /// # Panics
    /// As [`Array::full`]; [`Tensor::try_zeros`] is the fallible form.
    pub fn zeros(shape: impl AsRef<[usize]>) -> Tensor {
        Array::zeros(shape.as_ref()).into()
    }

    /// float32 zeros, allocated fallibly.
    ///
    /// # Errors
    /// As [`Array::try_full`].
    ///
    /// ```
    /// use nnx_core::{ErrorKind, Tensor};
    /// assert_eq!(Tensor::try_zeros(&[2, 3]).unwrap().shape(), &[2, 3]);
    /// let err = Tensor::try_zeros(&[1 << 32, 1 << 32]).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Resource);
    /// ```
    pub fn try_zeros(shape: impl AsRef<[usize]>) -> Result<Tensor> {
        Array::try_zeros(shape.as_ref()).map(Tensor::from)
    }

    /// float32 ones.
    ///
    /// # Panics
    /// As [`Array::full`]; [`Tensor::try_ones`] is the fallible form.
    pub fn ones(shape: impl AsRef<[usize]>) -> Tensor {
        Array::ones(shape.as_ref()).into()
    }

    /// float32 ones, allocated fallibly.
    ///
    /// # Errors
    /// As [`Array::try_full`].
    pub fn try_ones(shape: impl AsRef<[usize]>) -> Result<Tensor> {
        Array::try_ones(shape.as_ref()).map(Tensor::from)
    }

    /// Zeros of any dtype; see [`Array::zeros_of`].
    ///
    /// # Errors
    /// As [`Array::zeros_of`].
    pub fn zeros_of(shape: impl AsRef<[usize]>, dtype: DType) -> Result<Tensor> {
        Array::zeros_of(shape.as_ref(), dtype).map(Tensor::from)
    }

    /// `[0, 1, …, n-1]` as int32.
    ///
    /// # Panics
    /// As [`Array::arange`]; [`Tensor::try_arange`] is the fallible form.
    pub fn arange(n: usize) -> Tensor {
        Array::arange(n).into()
    }

    /// `[0, 1, …, n-1]` as int32, allocated fallibly.
    ///
    /// # Errors
    /// As [`Array::try_arange`].
    pub fn try_arange(n: usize) -> Result<Tensor> {
        Array::try_arange(n).map(Tensor::from)
    }

    /// A key array from `[k0, k1]` words.
    ///
    /// # Errors
    /// [`Error::DataLength`] when `keys.len()` is not the product of `shape`.
    pub fn from_keys(shape: &[usize], keys: Vec<[u32; 2]>) -> Result<Tensor> {
        Array::from_keys(shape, keys).map(Tensor::from)
    }

    // ----- metadata (known for tracers too) -----

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match &self.0 {
            Repr::Concrete(a) => a.shape(),
            Repr::Traced(t) => &t.aval().shape,
            Repr::Abstract(aval) => &aval.shape,
        }
    }

    /// The number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape().len()
    }

    /// The number of elements.
    pub fn size(&self) -> usize {
        match &self.0 {
            Repr::Concrete(a) => a.size(),
            Repr::Traced(t) => t.aval().size(),
            Repr::Abstract(aval) => aval.size(),
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match &self.0 {
            Repr::Concrete(a) => a.dtype(),
            Repr::Traced(t) => t.aval().dtype,
            Repr::Abstract(aval) => aval.dtype,
        }
    }

    /// Bytes held by the elements.
    pub fn nbytes(&self) -> usize {
        self.size() * self.dtype().size_in_bytes()
    }

    /// JAX's `weak_type`.
    pub fn is_weak(&self) -> bool {
        match &self.0 {
            Repr::Concrete(a) => a.is_weak(),
            Repr::Traced(t) => t.aval().weak,
            Repr::Abstract(aval) => aval.weak,
        }
    }

    // ----- contents (concrete only) -----

    /// The elements as a slice; see [`Array::as_slice`].
    ///
    /// # Errors
    /// [`Error::Concretization`] for a tracer; [`Error::DTypeMismatch`].
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        self.concrete()?.as_slice()
    }

    /// The elements copied into a `Vec`.
    ///
    /// # Errors
    /// [`Error::Concretization`] for a tracer; [`Error::DTypeMismatch`].
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.concrete()?.to_vec()
    }

    /// The elements as `f64`.
    ///
    /// # Errors
    /// [`Error::Concretization`] for a tracer; [`Error::UnsupportedDType`] for keys.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        self.concrete()?.to_f64_vec()
    }

    /// The single element of a size-1 array.
    ///
    /// # Errors
    /// [`Error::Concretization`] for a tracer; [`Error::Shape`]; [`Error::DTypeMismatch`].
    pub fn item<T: Element>(&self) -> Result<T> {
        self.concrete()?.item()
    }

    /// The keys of a key array.
    ///
    /// # Errors
    /// [`Error::Concretization`] for a tracer; [`Error::DTypeMismatch`].
    pub fn keys(&self) -> Result<&[[u32; 2]]> {
        self.concrete()?.keys()
    }

    /// The raw words of a key array (`shape + [2]`, uint32).
    ///
    /// # Errors
    /// [`Error::Concretization`] for a tracer; [`Error::DTypeMismatch`].
    pub fn key_data(&self) -> Result<Tensor> {
        self.concrete()?.key_data().map(Tensor::from)
    }

    /// Whether two tensors are the same concrete array bit for bit, or the same tracer.
    pub fn identical(&self, other: &Tensor) -> bool {
        match (&self.0, &other.0) {
            (Repr::Concrete(a), Repr::Concrete(b)) => a.identical(b),
            (Repr::Traced(a), Repr::Traced(b)) => a.trace == b.trace && a.var == b.var,
            _ => false,
        }
    }

    /// `numpy.allclose`.
    ///
    /// # Errors
    /// [`Error::Concretization`] for tracers; [`Error::UnsupportedDType`] for keys.
    pub fn allclose(&self, other: &Tensor, rtol: f64, atol: f64) -> Result<bool> {
        self.concrete()?.allclose(other.concrete()?, rtol, atol)
    }

    /// JAX's repr (`Array([1, 2], dtype=int32)`), `Traced<f32[2,3]>` for a tracer, or
    /// `ShapeDtypeStruct(shape=(2, 3), dtype=float32)` for an abstract array.
    pub fn repr(&self) -> String {
        match &self.0 {
            Repr::Concrete(a) => a.repr(),
            Repr::Traced(t) => format!("Traced<{}>with<level {}>", t.aval(), t.level()),
            Repr::Abstract(aval) => {
                let dims: Vec<String> = aval.shape.iter().map(usize::to_string).collect();
                let shape = match dims.len() {
                    1 => format!("({},)", dims[0]),
                    _ => format!("({})", dims.join(", ")),
                };
                let weak = if aval.weak { ", weak_type=True" } else { "" };
                format!(
                    "ShapeDtypeStruct(shape={shape}, dtype={}{weak})",
                    aval.dtype.name()
                )
            }
        }
    }

    /// Flax's repr inside a Module (shape summary for more than one element).
    pub fn summary_repr(&self) -> String {
        match &self.0 {
            Repr::Concrete(a) => a.summary_repr(),
            Repr::Traced(_) | Repr::Abstract(_) => self.repr(),
        }
    }

    // ----- operations -----

    /// Applies `primitive`: eagerly when every input is concrete (on the eager engine when
    /// one is set, [`set_eager_engine`](crate::engine::set_eager_engine)), else recorded.
    pub(crate) fn apply(primitive: Primitive, inputs: &[&Tensor]) -> Result<Tensor> {
        if inputs.iter().any(|t| t.is_traced()) {
            return record(primitive, inputs);
        }
        // A collective belongs to the trace being made (a `shard_map` body), whatever its
        // operands.
        if matches!(primitive, Primitive::Collective(_)) && crate::program::tracing_active() {
            return crate::program::record_in_innermost(primitive, inputs);
        }
        let arrays: Vec<Array> = inputs
            .iter()
            .map(|t| t.concrete().cloned())
            .collect::<Result<_>>()?;
        match crate::engine::eager_engine() {
            Some(engine) => engine.eval_eager(&primitive, &arrays).map(Tensor::from),
            None => primitive.eval(&arrays).map(Tensor::from),
        }
    }

    /// The same values, through which no gradient flows (`jax.lax.stop_gradient`): under
    /// `grad` the result is a constant, so that, for example, a target computed from the
    /// parameters being trained does not move with them (`grad` of `x · stop_gradient(x)`
    /// is `x`, not `2x`).
    ///
    /// ```
    /// use nnx_core::Tensor;
    /// let x = Tensor::from_slice(&[3.0f32, -2.0]);
    /// assert_eq!(x.stop_gradient()?.to_vec::<f32>()?, vec![3.0, -2.0]);
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// None for a concrete tensor; recording errors for a traced one.
    pub fn stop_gradient(&self) -> Result<Tensor> {
        self.unary_op(|a| Ok(a.clone()), |_| Ok(Primitive::StopGradient))
    }

    /// Runs `eager` on the concrete array, or records the primitive `traced` builds from
    /// this tensor's shape.
    pub(super) fn unary_op(
        &self,
        eager: impl FnOnce(&Array) -> Result<Array>,
        traced: impl FnOnce(&[usize]) -> Result<Primitive>,
    ) -> Result<Tensor> {
        // Layout changes and reductions run the array method eagerly on any eager engine:
        // their argument checks (axes, shapes) and errors belong to the method.
        match &self.0 {
            Repr::Concrete(a) => eager(a).map(Tensor::from),
            Repr::Traced(_) => record(traced(self.shape())?, &[self]),
            Repr::Abstract(aval) => Err(Error::AbstractArray {
                aval: aval.to_string(),
            }),
        }
    }

    /// Binary arithmetic with broadcasting and promotion; see [`Array::binary`].
    ///
    /// # Errors
    /// As [`Array::binary`].
    pub fn binary(&self, op: BinaryOp, other: &Tensor) -> Result<Tensor> {
        Tensor::apply(Primitive::Binary(op), &[self, other])
    }

    /// Comparison; see [`Array::compare`].
    ///
    /// # Errors
    /// As [`Array::compare`].
    pub fn compare(&self, op: CompareOp, other: &Tensor) -> Result<Tensor> {
        Tensor::apply(Primitive::Compare(op), &[self, other])
    }

    /// Unary maths; see [`Array::unary`].
    ///
    /// # Errors
    /// As [`Array::unary`].
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        Tensor::apply(Primitive::Unary(op), &[self])
    }

    /// `where(self, on_true, on_false)`; see [`Array::select`].
    ///
    /// # Errors
    /// As [`Array::select`].
    pub fn select(&self, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        Tensor::apply(Primitive::Select, &[self, on_true, on_false])
    }

    /// `self @ other`; see [`Array::matmul`].
    ///
    /// # Errors
    /// As [`Array::matmul`].
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        Tensor::apply(Primitive::Matmul, &[self, other])
    }

    /// dtype conversion; see [`Array::astype`].
    ///
    /// # Errors
    /// As [`Array::astype`].
    pub fn astype(&self, dtype: DType) -> Result<Tensor> {
        self.unary_op(|a| a.astype(dtype), |_| Ok(Primitive::Astype { dtype }))
    }

    /// The same values, strongly typed.
    pub fn strong(self) -> Tensor {
        if !self.is_weak() {
            return self;
        }
        let dtype = self.dtype();
        match self.astype(dtype) {
            Ok(t) => t,
            Err(_) => self,
        }
    }

    /// Reduction; see [`Array::reduce`].
    ///
    /// # Errors
    /// As [`Array::reduce`].
    pub fn reduce(&self, op: ReduceOp, axes: impl Into<Axes>, keepdims: bool) -> Result<Tensor> {
        let axes = axes.into();
        self.unary_op(
            |a| a.reduce(op, axes.clone(), keepdims),
            |shape| {
                let axes = match &axes {
                    Axes::All => (0..shape.len()).collect(),
                    Axes::Some(list) => normalize_axes(op.name(), list, shape)?,
                };
                if matches!(op, ReduceOp::Max | ReduceOp::Min)
                    && axes.iter().any(|&a| shape[a] == 0)
                {
                    return Err(Error::shape(
                        op.name(),
                        "zero-size array to reduction operation which has no identity",
                    ));
                }
                Ok(Primitive::Reduce { op, axes, keepdims })
            },
        )
    }

    /// Sum over `axes`.
    ///
    /// # Errors
    /// As [`Array::reduce`].
    pub fn sum(&self, axes: impl Into<Axes>) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, axes, false)
    }

    /// Mean over `axes` (float32).
    ///
    /// # Errors
    /// As [`Array::reduce`].
    pub fn mean(&self, axes: impl Into<Axes>) -> Result<Tensor> {
        self.reduce(ReduceOp::Mean, axes, false)
    }

    /// Maximum over `axes`.
    ///
    /// # Errors
    /// As [`Array::reduce`].
    pub fn max(&self, axes: impl Into<Axes>) -> Result<Tensor> {
        self.reduce(ReduceOp::Max, axes, false)
    }

    /// Minimum over `axes`.
    ///
    /// # Errors
    /// As [`Array::reduce`].
    pub fn min(&self, axes: impl Into<Axes>) -> Result<Tensor> {
        self.reduce(ReduceOp::Min, axes, false)
    }
}

impl From<f32> for Tensor {
    /// A weakly typed float scalar.
    fn from(value: f32) -> Tensor {
        Tensor::weak_scalar(value)
    }
}

impl From<i32> for Tensor {
    /// A weakly typed int scalar.
    fn from(value: i32) -> Tensor {
        Tensor::weak_scalar(value)
    }
}

impl From<bool> for Tensor {
    /// A weakly typed bool scalar.
    fn from(value: bool) -> Tensor {
        Tensor::weak_scalar(value)
    }
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr())
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr())
    }
}
