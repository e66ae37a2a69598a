//! Operations along one axis: cumulative sums (`jnp.cumsum`) and the positions of extrema
//! (`jnp.argmax`, `jnp.argmin`).

use super::shape::normalize_axis;
use super::{Array, Buffer, DType, Element};
use crate::error::{Error, Result};

/// Which extremum [`Array::arg_reduce`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArgOp {
    /// The position of the largest element (`argmax`).
    Max,
    /// The position of the smallest element (`argmin`).
    Min,
}

impl ArgOp {
    /// `argmax` or `argmin`.
    pub fn name(self) -> &'static str {
        match self {
            ArgOp::Max => "argmax",
            ArgOp::Min => "argmin",
        }
    }
}

/// `shape` split around `axis`: the product of the axes before it, its length, the product
/// of the axes after it.
fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Runs `f(outer, inner)` for every line along the axis: the line's elements are
/// `(outer * n + k) * inner + i` for `k` in `0..n`.
fn lines(shape: &[usize], axis: usize, mut f: impl FnMut(usize, usize)) {
    let (outer, _, inner) = split_at_axis(shape, axis);
    for o in 0..outer {
        for i in 0..inner {
            f(o, i);
        }
    }
}

/// The running sums of `data` along `axis` (from the end when `reverse`), wrapping for
/// integers, accumulated in order in the element type.
fn cumulative<T: Element>(
    data: &[T],
    shape: &[usize],
    axis: usize,
    reverse: bool,
    add: impl Fn(T, T) -> T,
) -> Vec<T> {
    let (_, n, inner) = split_at_axis(shape, axis);
    let mut out = data.to_vec();
    lines(shape, axis, |o, i| {
        let at = |k: usize| (o * n + k) * inner + i;
        let order: Box<dyn Iterator<Item = usize>> = match reverse {
            false => Box::new(0..n),
            true => Box::new((0..n).rev()),
        };
        let mut previous: Option<T> = None;
        for k in order {
            if let Some(p) = previous {
                out[at(k)] = add(p, out[at(k)]);
            }
            previous = Some(out[at(k)]);
        }
    });
    out
}

/// The first position along `axis` of each line's extremum (`better(a, b)`: `a` replaces
/// the best so far `b`).
fn positions<T: Element>(
    data: &[T],
    shape: &[usize],
    axis: usize,
    better: impl Fn(T, T) -> bool,
) -> Vec<i32> {
    let (outer, n, inner) = split_at_axis(shape, axis);
    let mut out = Vec::with_capacity(outer * inner);
    lines(shape, axis, |o, i| {
        let at = |k: usize| (o * n + k) * inner + i;
        let mut best = 0;
        for k in 1..n {
            if better(data[at(k)], data[at(best)]) {
                best = k;
            }
        }
        out.push(best as i32);
    });
    out
}

impl Array {
    /// The cumulative sum along `axis` (`jnp.cumsum`; from the last element backwards when
    /// `reverse`, as `jax.lax.cumsum(…, reverse=True)`). Bool sums as int32; integers wrap.
    ///
    /// ```
    /// # use nnx_core::Array;
    /// let x = Array::from_slice(&[1.0f32, 2.0, 3.0]);
    /// assert_eq!(x.cumsum(0, false)?.to_vec::<f32>()?, vec![1.0, 3.0, 6.0]);
    /// assert_eq!(x.cumsum(0, true)?.to_vec::<f32>()?, vec![6.0, 5.0, 3.0]);
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::AxisOutOfBounds`]; [`Error::UnsupportedDType`] for keys.
    pub fn cumsum(&self, axis: isize, reverse: bool) -> Result<Array> {
        let axis = normalize_axis("cumsum", axis, self.shape())?;
        let source = match self.dtype() {
            DType::Bool => self.astype(DType::I32)?,
            _ => self.clone(),
        };
        let shape = source.shape().to_vec();
        let buffer = match source.buffer() {
            Buffer::F32(d) => f32::into_buffer(cumulative(d, &shape, axis, reverse, |a, b| a + b)),
            Buffer::I32(d) => {
                i32::into_buffer(cumulative(d, &shape, axis, reverse, i32::wrapping_add))
            }
            Buffer::U32(d) => {
                u32::into_buffer(cumulative(d, &shape, axis, reverse, u32::wrapping_add))
            }
            _ => return Err(unsupported("cumsum", self.dtype())),
        };
        Ok(Array::from_parts(shape, buffer, self.is_weak()))
    }

    /// The int32 position of the first largest (`ArgOp::Max`) or smallest element along
    /// `axis`, which is removed (`jnp.argmax`/`jnp.argmin`). A NaN counts as the extremum,
    /// as in numpy: the first NaN's position is returned.
    ///
    /// ```
    /// # use nnx_core::{Array, tensor::ArgOp};
    /// let x = Array::from_vec(&[2, 3], vec![1.0f32, 5.0, 5.0, -1.0, -4.0, 0.0])?;
    /// assert_eq!(x.arg_reduce(ArgOp::Max, 1)?.to_vec::<i32>()?, vec![1, 2]);
    /// assert_eq!(x.arg_reduce(ArgOp::Min, 0)?.to_vec::<i32>()?, vec![1, 1, 1]);
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::AxisOutOfBounds`]; [`Error::Shape`] for an empty axis;
    /// [`Error::UnsupportedDType`] for keys.
    pub fn arg_reduce(&self, op: ArgOp, axis: isize) -> Result<Array> {
        let name = op.name();
        let axis = normalize_axis(name, axis, self.shape())?;
        if self.shape()[axis] == 0 {
            return Err(Error::shape(
                name,
                format!(
                    "attempt to get {name} of an empty sequence (axis {axis} of shape {:?})",
                    self.shape()
                ),
            ));
        }
        let shape = self.shape();
        let max = op == ArgOp::Max;
        let data = match self.buffer() {
            Buffer::F32(d) => positions(d, shape, axis, |a: f32, b: f32| {
                !b.is_nan() && (a.is_nan() || if max { a > b } else { a < b })
            }),
            Buffer::I32(d) => positions(d, shape, axis, |a, b| if max { a > b } else { a < b }),
            Buffer::U32(d) => positions(d, shape, axis, |a, b| if max { a > b } else { a < b }),
            Buffer::Bool(d) => positions(d, shape, axis, |a, b| if max { a & !b } else { !a & b }),
            Buffer::Key(_) => return Err(unsupported(name, DType::Key)),
        };
        let mut out_shape = shape.to_vec();
        out_shape.remove(axis);
        Array::from_vec(&out_shape, data)
    }
}

fn unsupported(op: &'static str, dtype: DType) -> Error {
    Error::UnsupportedDType {
        op,
        dtype,
        expected: Some("bool, int32, uint32 or float32"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumsum_runs_along_any_axis_in_both_directions() {
        let x = Array::arange(6).reshape(&[2, 3]).unwrap();
        assert_eq!(
            x.cumsum(1, false).unwrap().to_vec::<i32>().unwrap(),
            vec![0, 1, 3, 3, 7, 12]
        );
        assert_eq!(
            x.cumsum(0, true).unwrap().to_vec::<i32>().unwrap(),
            vec![3, 5, 7, 3, 4, 5]
        );
        let b = Array::from_slice(&[true, false, true]);
        let counted = b.cumsum(-1, false).unwrap();
        assert_eq!(counted.dtype(), DType::I32);
        assert_eq!(counted.to_vec::<i32>().unwrap(), vec![1, 1, 2]);
        assert!(Array::zeros(&[2]).cumsum(1, false).is_err());
    }

    #[test]
    fn arg_reduce_takes_the_first_extremum_and_the_first_nan() {
        let x = Array::from_slice(&[1.0f32, 3.0, 3.0, f32::NAN, 7.0, f32::NAN]);
        assert_eq!(
            x.arg_reduce(ArgOp::Max, 0).unwrap().item::<i32>().unwrap(),
            3
        );
        let y = Array::from_slice(&[2i32, -1, -1]);
        assert_eq!(
            y.arg_reduce(ArgOp::Min, 0).unwrap().item::<i32>().unwrap(),
            1
        );
        let err = Array::zeros(&[2, 0]).arg_reduce(ArgOp::Max, 1).unwrap_err();
        assert!(err.to_string().contains("empty sequence"), "{err}");
    }
}
