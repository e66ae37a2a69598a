//! n-dimensional arrays: [`Tensor`] (what user code handles: concrete or traced) and
//! [`Array`] (concrete, immutable, cheap to clone).
//!
//! Arrays have value semantics exactly as in JAX; the *reference* semantics of the project
//! live in [`Variable`](crate::graph::Variable)s, which hold tensors. Operations follow numpy:
//! broadcasting elementwise arithmetic ([`elementwise`]), matmul, reductions, layout changes.
//! Shape and dtype mistakes are [`Error`] values that name the shapes involved;
//! nothing panics on user input. [`Array`]'s methods are the reference kernels; [`Tensor`]'s
//! run them eagerly or record them when tracing.
//!
//! # Views
//!
//! Transposes, broadcasts, slices, `index_axis`, `expand_dims`, `squeeze` and reshapes of
//! contiguous arrays copy nothing: the result is a *view* that reads the original buffer
//! through an offset and per-axis strides (0 on broadcast axes), as numpy's and XLA's layouts
//! do. A view is an ordinary [`Array`] with value semantics (arrays are immutable, and no
//! kernel writes into a buffer a view reads). Kernels that understand strides read it in
//! place ([`Array::strided`]: `Fast`'s GEMMs take transposed operands and layers sliced out
//! of stacked weights this way, its elementwise kernels read a broadcast's one row);
//! everything else reads the elements in row-major order through [`Array::as_slice`], which
//! borrows a contiguous view's range directly and otherwise copies the view once (the copy
//! is kept and shared by the view's clones). A view keeps the array it reads alive;
//! [`Array::compact`] gives the elements a buffer of their own.
//!
//! ```
//! use nnx_core::Tensor;
//! # fn main() -> nnx_core::Result<()> {
//! let x = Tensor::arange(6).reshape(&[2, 3])?;
//! let y = (&x + 1)?;
//! assert_eq!(y.to_vec::<i32>()?, vec![1, 2, 3, 4, 5, 6]);
//! assert_eq!(format!("{}", Tensor::arange(3)), "Array([0, 1, 2], dtype=int32)");
//! # Ok(())
//! # }
//! ```

mod alloc;
mod along_axis;
mod dispatch;
mod display;
mod dtype;
pub mod elementwise;
mod fallible;
mod indexing;
mod layer_ops;
mod layout;
mod linalg;
mod matmul;
mod named_ops;
pub mod pool;
mod reduce;
mod shape;
mod tensor_layout;
mod view;
mod windows;

use std::sync::Arc;

pub use alloc::check_allocation;
pub(crate) use alloc::{byte_size, element_count};
pub(crate) use alloc::{needs_probe, probe};
pub use along_axis::ArgOp;
pub use dispatch::Tensor;
pub use dtype::DType;
pub(crate) use dtype::promote;
pub use fallible::{Operand, TensorResult};
pub(crate) use indexing::check_indices;
pub use indexing::{
    check_slice_window, check_start, check_update, take_rows, take_shape, take_transpose_shape,
    window_start,
};
pub use linalg::{TriangularSolve, check_tall, for_each_matrix, signed_thin_q};
pub(crate) use matmul::matmul_shape;
pub use reduce::{Axes, ReduceOp};
pub(crate) use shape::broadcast_shapes;
pub use shape::padded_shape;
pub use view::Strided;
pub use windows::{PatchRows, Windows, patches_input_shape};

use crate::error::{Error, Result};

/// A concrete, immutable n-dimensional array with a [`DType`], stored row-major. Engines
/// compute on these; user code usually holds [`Tensor`]s.
///
/// Cloning shares the buffer. A tensor may be *weakly typed* (JAX's `weak_type=True`): Rust
/// literals used in arithmetic (`&x + 1`) are weak, so they adopt the other operand's dtype.
#[derive(Clone)]
pub struct Array {
    /// Shared: cloning an array (which every engine does per operand) does not allocate.
    shape: Arc<[usize]>,
    /// The buffer the elements are read from: all of it, row-major, unless `view` says
    /// otherwise.
    base: Buffer,
    /// For a view ([`view`]): where in `base` the elements lie.
    view: Option<Arc<view::View>>,
    weak: bool,
}

/// The typed storage behind a tensor (an implementation detail, public only because the
/// sealed [`Element`] trait mentions it).
#[doc(hidden)]
#[derive(Clone, Debug)]
pub enum Buffer {
    Bool(Arc<Vec<bool>>),
    I32(Arc<Vec<i32>>),
    U32(Arc<Vec<u32>>),
    F32(Arc<pool::PooledVec>),
    Key(Arc<Vec<[u32; 2]>>),
}

/// Applies the same generic expression to whichever variant a [`Buffer`] holds.
macro_rules! map_buffer {
    ($buffer:expr, $data:ident => $body:expr) => {
        match $buffer {
            Buffer::Bool($data) => Buffer::Bool(std::sync::Arc::new($body)),
            Buffer::I32($data) => Buffer::I32(std::sync::Arc::new($body)),
            Buffer::U32($data) => Buffer::U32(std::sync::Arc::new($body)),
            Buffer::F32($data) => Buffer::F32(std::sync::Arc::new($body.into())),
            Buffer::Key($data) => Buffer::Key(std::sync::Arc::new($body)),
        }
    };
}
pub(crate) use map_buffer;

impl Buffer {
    fn dtype(&self) -> DType {
        match self {
            Buffer::Bool(_) => DType::Bool,
            Buffer::I32(_) => DType::I32,
            Buffer::U32(_) => DType::U32,
            Buffer::F32(_) => DType::F32,
            Buffer::Key(_) => DType::Key,
        }
    }

    fn len(&self) -> usize {
        match self {
            Buffer::Bool(d) => d.len(),
            Buffer::I32(d) => d.len(),
            Buffer::U32(d) => d.len(),
            Buffer::F32(d) => d.len(),
            Buffer::Key(d) => d.len(),
        }
    }

    /// A new buffer holding `self[indices[0]], self[indices[1]], …`.
    pub(crate) fn gather(&self, indices: &[usize]) -> Buffer {
        map_buffer!(self, data => indices.iter().map(|&i| data[i]).collect::<Vec<_>>())
    }
}

/// A Rust type that can be the element of a [`Array`]: `f32`, `i32`, `u32` or `bool`.
pub trait Element: Copy + PartialEq + std::fmt::Debug + private::Sealed + 'static {
    /// The dtype this type stores as.
    const DTYPE: DType;
    #[doc(hidden)]
    fn into_buffer(data: Vec<Self>) -> Buffer;
    #[doc(hidden)]
    fn from_buffer(buffer: &Buffer) -> Option<&[Self]>;
    #[doc(hidden)]
    fn to_f64(self) -> f64;
    #[doc(hidden)]
    fn from_f64(value: f64) -> Self;
}

mod private {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for i32 {}
    impl Sealed for u32 {}
    impl Sealed for bool {}
}

macro_rules! impl_element {
    ($t:ty, $variant:ident, $dtype:expr, |$x:ident| $to:expr, |$v:ident| $from:expr) => {
        impl Element for $t {
            const DTYPE: DType = $dtype;
            fn into_buffer(data: Vec<Self>) -> Buffer {
                Buffer::$variant(Arc::new(data.into()))
            }
            fn from_buffer(buffer: &Buffer) -> Option<&[Self]> {
                match buffer {
                    Buffer::$variant(d) => Some(d.as_slice()),
                    _ => None,
                }
            }
            fn to_f64(self) -> f64 {
                let $x = self;
                $to
            }
            fn from_f64(value: f64) -> Self {
                let $v = value;
                $from
            }
        }
    };
}

impl_element!(f32, F32, DType::F32, |x| x as f64, |v| v as f32);
impl_element!(i32, I32, DType::I32, |x| x as f64, |v| v as i32);
impl_element!(u32, U32, DType::U32, |x| x as f64, |v| v as u32);
impl_element!(
    bool,
    Bool,
    DType::Bool,
    |x| if x { 1.0 } else { 0.0 },
    |v| v != 0.0
);

impl Array {
    pub(crate) fn from_parts(shape: Vec<usize>, buffer: Buffer, weak: bool) -> Array {
        debug_assert_eq!(alloc::element_count(&shape).ok(), Some(buffer.len()));
        Array {
            shape: shape.into(),
            base: buffer,
            view: None,
            weak,
        }
    }

    /// Moves the array out, leaving an empty float32 array (of shape `[0]`, which allocates
    /// nothing) in its place: how a kernel takes ownership of an operand it may compute in.
    pub fn take(&mut self) -> Array {
        static EMPTY: std::sync::OnceLock<Array> = std::sync::OnceLock::new();
        let empty = EMPTY.get_or_init(|| Array {
            shape: Arc::from([0usize]),
            base: Buffer::F32(Arc::new(pool::PooledVec::default())),
            view: None,
            weak: false,
        });
        std::mem::replace(self, empty.clone())
    }

    /// The float32 elements, mutably, when this array is the only handle to its buffer (no
    /// clone of it exists anywhere, and no view reads it): a kernel may then compute in
    /// place. `None` otherwise, for a view, or for another dtype.
    ///
    /// ```
    /// use nnx_core::Array;
    /// let mut x = Array::ones(&[3]);
    /// x.unique_f32_mut().unwrap()[0] = 5.0;
    /// let alias = x.clone();
    /// assert!(x.unique_f32_mut().is_none());
    /// assert_eq!(alias.to_vec::<f32>()?, vec![5.0, 1.0, 1.0]);
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    pub fn unique_f32_mut(&mut self) -> Option<&mut [f32]> {
        match (&mut self.base, &self.view) {
            (Buffer::F32(data), None) => Arc::get_mut(data).map(|d| d.as_mut_slice()),
            _ => None,
        }
    }

    /// An array of `like`'s shape (shared with it, not copied) holding `data`: how an
    /// engine's elementwise kernel builds its result without allocating a shape.
    ///
    /// # Errors
    /// [`Error::DataLength`] when `data` does not have one element per element of `like`.
    ///
    /// ```
    /// use nnx_core::Array;
    /// let x = Array::ones(&[2, 3]);
    /// let y = Array::from_vec_like(&x, vec![2.0f32; 6], false)?;
    /// assert_eq!(y.shape(), &[2, 3]);
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    pub fn from_vec_like<T: Element>(like: &Array, data: Vec<T>, weak: bool) -> Result<Array> {
        if data.len() != like.size() {
            return Err(Error::DataLength {
                shape: like.shape.to_vec(),
                expected: like.size(),
                got: data.len(),
            });
        }
        Ok(Array {
            shape: like.shape.clone(),
            base: T::into_buffer(data),
            view: None,
            weak,
        })
    }

    /// An array of the given shape from row-major data.
    ///
    /// # Errors
    /// [`Error::DataLength`] when `data.len()` is not the product of `shape`;
    /// [`Error::ArrayTooLarge`] when that product overflows.
    ///
    /// ```
    /// # use nnx_core::Array;
    /// let t = Array::from_vec(&[2, 2], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
    /// assert_eq!(t.shape(), &[2, 2]);
    /// assert!(Array::from_vec(&[3], vec![1i32]).is_err());
    /// ```
    pub fn from_vec<T: Element>(shape: &[usize], data: Vec<T>) -> Result<Array> {
        let expected = alloc::element_count(shape)?;
        if expected != data.len() {
            return Err(Error::DataLength {
                shape: shape.to_vec(),
                expected,
                got: data.len(),
            });
        }
        Ok(Array::from_parts(
            shape.to_vec(),
            T::into_buffer(data),
            false,
        ))
    }

    /// The same array (sharing its buffer) with its weak-type flag set to `weak`: how a
    /// kernel that builds its result from a plain buffer keeps the reference's weak type.
    ///
    /// ```
    /// # use nnx_core::Array;
    /// let x = Array::from_vec(&[2], vec![1.0f32, 2.0])?.with_weak(true);
    /// assert!(x.is_weak());
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    pub fn with_weak(mut self, weak: bool) -> Array {
        self.weak = weak;
        self
    }

    /// A 1-D array holding `data`.
    pub fn from_slice<T: Element>(data: &[T]) -> Array {
        Array::from_parts(vec![data.len()], T::into_buffer(data.to_vec()), false)
    }

    /// A 0-d (scalar) array.
    pub fn scalar<T: Element>(value: T) -> Array {
        Array::from_parts(Vec::new(), T::into_buffer(vec![value]), false)
    }

    /// A weakly typed 0-d array, the equivalent of a Python scalar in JAX: in arithmetic it
    /// takes the dtype of the other operand. `From<f32>`/`From<i32>` build these too.
    pub fn weak_scalar<T: Element>(value: T) -> Array {
        Array::from_parts(Vec::new(), T::into_buffer(vec![value]), true)
    }

    /// An array of the given shape filled with `value`.
    ///
    /// # Panics
    /// Like `vec![value; n]`: when the shape's size overflows or the buffer cannot be
    /// allocated. [`Array::try_full`] returns those as errors; use it for shapes that come
    /// from input.
    pub fn full<T: Element>(shape: &[usize], value: T) -> Array {
        infallible(Array::try_full(shape, value))
    }

    /// An array of the given shape filled with `value`, allocated fallibly.
    ///
    /// # Errors
    /// [`Error::ArrayTooLarge`] when the size overflows; [`Error::AllocationFailed`] when the
    /// allocator cannot provide the buffer.
    ///
    /// ```
    /// # use nnx_core::Array;
    /// assert_eq!(Array::try_full(&[2, 3], 7i32).unwrap().size(), 6);
    /// assert!(Array::try_full(&[1 << 32, 1 << 32], 0.0f32).is_err()); // overflows
    /// assert!(Array::try_full(&[1 << 46], 0.0f32).is_err()); // 256 TiB
    /// ```
    pub fn try_full<T: Element>(shape: &[usize], value: T) -> Result<Array> {
        let data = alloc::try_filled(shape, T::DTYPE, value)?;
        Ok(Array::from_parts(
            shape.to_vec(),
            T::into_buffer(data),
            false,
        ))
    }

    /// A float32 array of zeros.
    ///
    /// # Panics
    /// As [`Array::full`]; [`Array::try_zeros`] is the fallible form.
    pub fn zeros(shape: &[usize]) -> Array {
        Array::full(shape, 0.0f32)
    }

    /// A float32 array of zeros, allocated fallibly.
    ///
    /// # Errors
    /// As [`Array::try_full`].
    pub fn try_zeros(shape: &[usize]) -> Result<Array> {
        Array::try_full(shape, 0.0f32)
    }

    /// A float32 array of ones.
    ///
    /// # Panics
    /// As [`Array::full`]; [`Array::try_ones`] is the fallible form.
    pub fn ones(shape: &[usize]) -> Array {
        Array::full(shape, 1.0f32)
    }

    /// A float32 array of ones, allocated fallibly.
    ///
    /// # Errors
    /// As [`Array::try_full`].
    pub fn try_ones(shape: &[usize]) -> Result<Array> {
        Array::try_full(shape, 1.0f32)
    }

    /// An array of zeros of any dtype, allocated fallibly: `false` for bool, and for
    /// [`DType::Key`] keys whose data words are zero (`jax.random.wrap_key_data` of zeros).
    ///
    /// # Errors
    /// As [`Array::try_full`].
    pub fn zeros_of(shape: &[usize], dtype: DType) -> Result<Array> {
        match dtype {
            DType::F32 => Array::try_full(shape, 0.0f32),
            DType::I32 => Array::try_full(shape, 0i32),
            DType::U32 => Array::try_full(shape, 0u32),
            DType::Bool => Array::try_full(shape, false),
            DType::Key => Array::from_keys(shape, alloc::try_filled(shape, dtype, [0u32; 2])?),
        }
    }

    /// `[0, 1, …, n-1]` as int32, like `jnp.arange(n)`.
    ///
    /// # Panics
    /// When the buffer cannot be allocated; [`Array::try_arange`] is the fallible form.
    pub fn arange(n: usize) -> Array {
        infallible(Array::try_arange(n))
    }

    /// `[0, 1, …, n-1]` as int32, allocated fallibly. Values past `i32::MAX` wrap, as
    /// int32 arithmetic does in JAX.
    ///
    /// # Errors
    /// As [`Array::try_full`].
    pub fn try_arange(n: usize) -> Result<Array> {
        let mut data = alloc::try_vec(&[n], DType::I32)?;
        data.extend((0..n).map(|i| i as i32));
        Ok(Array::from_parts(vec![n], i32::into_buffer(data), false))
    }

    /// An array of PRNG keys (dtype `key<fry>`) from their `[k0, k1]` words.
    ///
    /// # Errors
    /// [`Error::DataLength`] when `keys.len()` is not the product of `shape`.
    pub fn from_keys(shape: &[usize], keys: Vec<[u32; 2]>) -> Result<Array> {
        let expected = alloc::element_count(shape)?;
        if expected != keys.len() {
            return Err(Error::DataLength {
                shape: shape.to_vec(),
                expected,
                got: keys.len(),
            });
        }
        Ok(Array::from_parts(
            shape.to_vec(),
            Buffer::Key(Arc::new(keys)),
            false,
        ))
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements.
    pub fn size(&self) -> usize {
        match self.view {
            None => self.base.len(),
            Some(_) => self.shape.iter().product(),
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.base.dtype()
    }

    /// Bytes held by the elements (what Flax's printing reports).
    pub fn nbytes(&self) -> usize {
        self.size() * self.dtype().size_in_bytes()
    }

    /// Shape, dtype and weak type, as a tracer of this array would have them.
    pub fn aval(&self) -> crate::program::AbstractValue {
        crate::program::AbstractValue::new(self.shape.to_vec(), self.dtype(), self.weak)
    }

    /// Whether the array is weakly typed (JAX's `weak_type=True`).
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// The same array, strongly typed.
    pub fn strong(mut self) -> Array {
        self.weak = false;
        self
    }

    /// The elements in row-major order as a slice of `T`. For a view whose elements are not
    /// one run of its buffer (a transpose, a broadcast) this copies them, once: the copy is
    /// kept and shared by the view's clones ([views](crate::tensor#views)).
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`] when `T` is not the array's dtype (no conversion happens;
    /// use [`Array::astype`] first).
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        let mismatch = || Error::DTypeMismatch {
            op: "as_slice",
            lhs: self.dtype(),
            rhs: T::DTYPE,
        };
        match self.contiguous_offset() {
            Some(offset) => {
                let data = T::from_buffer(&self.base).ok_or_else(mismatch)?;
                Ok(&data[offset..offset + self.size()])
            }
            None => T::from_buffer(self.buffer()).ok_or_else(mismatch),
        }
    }

    /// The elements, copied into a `Vec<T>`; see [`Array::as_slice`].
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`] when `T` is not the array's dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.as_slice().map(<[T]>::to_vec)
    }

    /// The elements converted to `f64` (exact for every dtype we have).
    ///
    /// # Errors
    /// [`Error::UnsupportedDType`] for key arrays.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        Ok(match self.buffer() {
            Buffer::Bool(d) => d.iter().map(|&x| x.to_f64()).collect(),
            Buffer::I32(d) => d.iter().map(|&x| x.to_f64()).collect(),
            Buffer::U32(d) => d.iter().map(|&x| x.to_f64()).collect(),
            Buffer::F32(d) => d.iter().map(|&x| x.to_f64()).collect(),
            Buffer::Key(_) => {
                return Err(Error::UnsupportedDType {
                    op: "to_f64_vec",
                    dtype: DType::Key,
                    expected: Some("a numeric or bool dtype; use key_data for keys"),
                });
            }
        })
    }

    /// The single element of a size-1 array.
    ///
    /// # Errors
    /// [`Error::Shape`] when the array does not have exactly one element, and
    /// [`Error::DTypeMismatch`] when `T` is not its dtype.
    pub fn item<T: Element>(&self) -> Result<T> {
        let data = self.as_slice::<T>()?;
        match data {
            [x] => Ok(*x),
            _ => Err(Error::shape(
                "item",
                format!(
                    "only arrays with one element can be converted to a scalar, got shape {:?}",
                    self.shape
                ),
            )),
        }
    }

    /// The keys of a key array, as `[k0, k1]` words.
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`] when the array is not a key array.
    pub fn keys(&self) -> Result<&[[u32; 2]]> {
        match self.buffer() {
            Buffer::Key(d) => Ok(d.as_slice()),
            _ => Err(Error::DTypeMismatch {
                op: "keys",
                lhs: self.dtype(),
                rhs: DType::Key,
            }),
        }
    }

    /// The raw words of a key array as a uint32 array of shape `shape + [2]`, like
    /// `jax.random.key_data`.
    ///
    /// # Errors
    /// [`Error::DTypeMismatch`] when the array is not a key array.
    pub fn key_data(&self) -> Result<Array> {
        let words: Vec<u32> = self.keys()?.iter().flatten().copied().collect();
        let mut shape = self.shape.to_vec();
        shape.push(2);
        Array::from_vec(&shape, words)
    }

    /// Converts to another dtype, like `x.astype(dtype)`: floats truncate toward zero when
    /// converted to integers (saturating at the integer range), and nonzero means `true`.
    ///
    /// # Errors
    /// [`Error::UnsupportedDType`] when converting to or from [`DType::Key`] (other than
    /// key to key).
    pub fn astype(&self, dtype: DType) -> Result<Array> {
        if self.dtype() == dtype {
            return Ok(self.clone().strong());
        }
        fn convert<A: Element, B: Element>(data: &[A]) -> Vec<B> {
            data.iter().map(|&x| B::from_f64(x.to_f64())).collect()
        }
        fn to<B: Element>(buffer: &Buffer) -> Option<Vec<B>> {
            Some(match buffer {
                Buffer::Bool(d) => convert(d),
                Buffer::I32(d) => convert(d),
                Buffer::U32(d) => convert(d),
                Buffer::F32(d) => convert(d),
                Buffer::Key(_) => return None,
            })
        }
        let buffer = match dtype {
            DType::Bool => to::<bool>(self.buffer()).map(bool::into_buffer),
            DType::I32 => to::<i32>(self.buffer()).map(i32::into_buffer),
            DType::U32 => to::<u32>(self.buffer()).map(u32::into_buffer),
            DType::F32 => to::<f32>(self.buffer()).map(f32::into_buffer),
            DType::Key => None,
        };
        buffer
            .map(|b| Array {
                shape: self.shape.clone(),
                base: b,
                view: None,
                weak: false,
            })
            .ok_or(Error::UnsupportedDType {
                op: "astype",
                dtype: if dtype == DType::Key {
                    dtype
                } else {
                    self.dtype()
                },
                expected: Some("conversions between bool, int32, uint32 and float32"),
            })
    }

    /// Whether two arrays have the same shape, dtype and elements (bit-for-bit for floats,
    /// so `NaN` equals itself here).
    pub fn identical(&self, other: &Array) -> bool {
        if self.shape != other.shape {
            return false;
        }
        match (self.buffer(), other.buffer()) {
            (Buffer::F32(a), Buffer::F32(b)) => a
                .iter()
                .zip(b.iter())
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            (Buffer::Bool(a), Buffer::Bool(b)) => a == b,
            (Buffer::I32(a), Buffer::I32(b)) => a == b,
            (Buffer::U32(a), Buffer::U32(b)) => a == b,
            (Buffer::Key(a), Buffer::Key(b)) => a == b,
            _ => false,
        }
    }

    /// Whether two arrays have the same shape and all elements are within
    /// `atol + rtol * |other|` (like `numpy.allclose`, with NaN never close).
    ///
    /// # Errors
    /// [`Error::UnsupportedDType`] for key arrays.
    pub fn allclose(&self, other: &Array, rtol: f64, atol: f64) -> Result<bool> {
        if self.shape != other.shape {
            return Ok(false);
        }
        let a = self.to_f64_vec()?;
        let b = other.to_f64_vec()?;
        Ok(a.iter()
            .zip(&b)
            .all(|(x, y)| (x - y).abs() <= atol + rtol * y.abs()))
    }
}

impl From<f32> for Array {
    /// A weakly typed float scalar (like a Python float in JAX).
    fn from(value: f32) -> Array {
        Array::weak_scalar(value)
    }
}

impl From<i32> for Array {
    /// A weakly typed int scalar (like a Python int in JAX).
    fn from(value: i32) -> Array {
        Array::weak_scalar(value)
    }
}

impl From<bool> for Array {
    /// A weakly typed bool scalar.
    fn from(value: bool) -> Array {
        Array::weak_scalar(value)
    }
}

impl std::fmt::Debug for Array {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The value of an infallible constructor's fallible form: a size that overflows or cannot be
/// allocated is a panic there, as it is for `Vec`.
fn infallible(result: Result<Array>) -> Array {
    match result {
        Ok(array) => array,
        Err(e) => panic!("{e} (use the constructor's try_ form to handle this as an error)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vec_rejects_wrong_length_naming_the_shape() {
        let err = Array::from_vec(&[2, 3], vec![1.0f32; 5]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot build an array of shape [2, 3] (6 elements) from 5 elements"
        );
    }

    #[test]
    fn astype_truncates_and_saturates() {
        let t = Array::from_slice(&[1.7f32, -1.7, 3e10, f32::NAN]);
        assert_eq!(
            t.astype(DType::I32).unwrap().to_vec::<i32>().unwrap(),
            vec![1, -1, i32::MAX, 0]
        );
        assert_eq!(
            t.astype(DType::Bool).unwrap().to_vec::<bool>().unwrap(),
            vec![true, true, true, true]
        );
    }

    #[test]
    fn key_data_appends_a_words_axis() {
        let k = Array::from_keys(&[2], vec![[0, 1], [2, 3]]).unwrap();
        let d = k.key_data().unwrap();
        assert_eq!(d.shape(), &[2, 2]);
        assert_eq!(d.to_vec::<u32>().unwrap(), vec![0, 1, 2, 3]);
        assert!(k.astype(DType::F32).is_err());
    }

    #[test]
    fn item_requires_one_element() {
        assert_eq!(Array::scalar(3i32).item::<i32>().unwrap(), 3);
        assert!(Array::arange(2).item::<i32>().is_err());
        assert!(Array::scalar(3i32).item::<f32>().is_err());
    }
}
