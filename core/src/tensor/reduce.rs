//! Reductions over axes: sum, mean, max, min.

use super::shape::normalize_axes;
use super::{Array, Buffer, DType, Element};
use crate::error::{Error, Result};

/// Which axes an operation applies to: all of them, or a list (negative axes count from the
/// end). Converts from an `isize`, an array or a `Vec` of them, and from `None` (every
/// axis, jax.numpy's `axis=None`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Axes {
    /// Every axis.
    All,
    /// The listed axes.
    Some(Vec<isize>),
}

/// `None` is every axis (`axis=None`), `Some(a)` the one axis `a`.
impl From<Option<isize>> for Axes {
    fn from(axis: Option<isize>) -> Axes {
        axis.map_or(Axes::All, |a| Axes::Some(vec![a]))
    }
}

impl From<isize> for Axes {
    fn from(axis: isize) -> Axes {
        Axes::Some(vec![axis])
    }
}

impl From<i32> for Axes {
    fn from(axis: i32) -> Axes {
        Axes::Some(vec![axis as isize])
    }
}

impl<const N: usize> From<[isize; N]> for Axes {
    fn from(axes: [isize; N]) -> Axes {
        Axes::Some(axes.to_vec())
    }
}

impl From<&[isize]> for Axes {
    fn from(axes: &[isize]) -> Axes {
        Axes::Some(axes.to_vec())
    }
}

impl From<Vec<isize>> for Axes {
    fn from(axes: Vec<isize>) -> Axes {
        Axes::Some(axes)
    }
}

/// A reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Sum (bool sums as int32).
    Sum,
    /// Arithmetic mean (always float32).
    Mean,
    /// Maximum (NaN propagates).
    Max,
    /// Minimum (NaN propagates).
    Min,
}

impl ReduceOp {
    /// The operation's name (`sum`, `mean`, `max`, `min`).
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
        }
    }
}

impl Array {
    /// Reduces over `axes`; the reduced axes are removed, or kept with size 1 when
    /// `keepdims` is true.
    ///
    /// # Errors
    /// [`Error::AxisOutOfBounds`], [`Error::RepeatedAxis`]; [`Error::Shape`] for `max`/`min`
    /// over an empty axis; [`Error::UnsupportedDType`] for keys (and bool `mean`/`max`/`min`
    /// is computed on the values as 0/1, like numpy).
    pub fn reduce(&self, op: ReduceOp, axes: impl Into<Axes>, keepdims: bool) -> Result<Array> {
        let name = op.name();
        let axes = match axes.into() {
            Axes::All => (0..self.ndim()).collect(),
            Axes::Some(list) => normalize_axes(name, &list, self.shape())?,
        };
        let reduced_count: usize = axes.iter().map(|&a| self.shape()[a]).product();
        if reduced_count == 0 && matches!(op, ReduceOp::Max | ReduceOp::Min) {
            return Err(Error::shape(
                name,
                format!(
                    "zero-size array to reduction operation {name} which has no identity (shape {:?})",
                    self.shape()
                ),
            ));
        }
        // Work dtype: sums of bool are int32, means are float32.
        let source = match (op, self.dtype()) {
            (_, DType::Key) => {
                return Err(Error::UnsupportedDType {
                    op: name,
                    dtype: DType::Key,
                    expected: None,
                });
            }
            (ReduceOp::Mean, _) => self.astype(DType::F32)?,
            (ReduceOp::Sum, DType::Bool) => self.astype(DType::I32)?,
            _ => self.clone(),
        };
        // Move the reduced axes last (a view), then reduce contiguous groups of its
        // row-major elements.
        let kept: Vec<usize> = (0..self.ndim()).filter(|a| !axes.contains(a)).collect();
        let order: Vec<usize> = kept.iter().chain(axes.iter()).copied().collect();
        let ordered = source.permute_unchecked(&order);
        let groups = kept.iter().map(|&a| self.shape()[a]).product::<usize>();
        let buffer = match ordered.buffer() {
            Buffer::F32(d) => f32::into_buffer(reduce_groups(d, groups, reduced_count, op)),
            Buffer::I32(d) => i32::into_buffer(reduce_groups(d, groups, reduced_count, op)),
            Buffer::U32(d) => u32::into_buffer(reduce_groups(d, groups, reduced_count, op)),
            Buffer::Bool(d) => bool::into_buffer(reduce_groups(d, groups, reduced_count, op)),
            Buffer::Key(_) => unreachable!("rejected above"),
        };
        let out_shape: Vec<usize> = if keepdims {
            (0..self.ndim())
                .map(|a| {
                    if axes.contains(&a) {
                        1
                    } else {
                        self.shape()[a]
                    }
                })
                .collect()
        } else {
            kept.iter().map(|&a| self.shape()[a]).collect()
        };
        Ok(Array::from_parts(out_shape, buffer, self.is_weak()))
    }

    /// Sum over `axes` ([`Axes::All`] for every axis).
    ///
    /// # Errors
    /// As [`Array::reduce`].
    ///
    /// ```
    /// # use nnx_core::{Axes, Array};
    /// let x = Array::arange(6).reshape(&[2, 3]).unwrap();
    /// assert_eq!(x.sum(1).unwrap().to_vec::<i32>().unwrap(), vec![3, 12]);
    /// assert_eq!(x.sum(Axes::All).unwrap().item::<i32>().unwrap(), 15);
    /// ```
    pub fn sum(&self, axes: impl Into<Axes>) -> Result<Array> {
        self.reduce(ReduceOp::Sum, axes, false)
    }

    /// Mean over `axes`, as float32.
    ///
    /// # Errors
    /// As [`Array::reduce`].
    pub fn mean(&self, axes: impl Into<Axes>) -> Result<Array> {
        self.reduce(ReduceOp::Mean, axes, false)
    }

    /// Maximum over `axes`.
    ///
    /// # Errors
    /// As [`Array::reduce`].
    pub fn max(&self, axes: impl Into<Axes>) -> Result<Array> {
        self.reduce(ReduceOp::Max, axes, false)
    }

    /// Minimum over `axes`.
    ///
    /// # Errors
    /// As [`Array::reduce`].
    pub fn min(&self, axes: impl Into<Axes>) -> Result<Array> {
        self.reduce(ReduceOp::Min, axes, false)
    }
}

/// Reduces `groups` consecutive runs of `count` elements each.
fn reduce_groups<T: Element>(data: &[T], groups: usize, count: usize, op: ReduceOp) -> Vec<T> {
    if count == 0 {
        // Max/min of nothing is rejected earlier; the empty sum is 0 and the empty mean NaN.
        let empty = if op == ReduceOp::Mean { f64::NAN } else { 0.0 };
        return vec![T::from_f64(empty); groups];
    }
    data.chunks(count)
        .take(groups)
        .map(|run| match op {
            ReduceOp::Sum => T::from_f64(sum_in::<T>(run)),
            ReduceOp::Mean => T::from_f64(sum_in::<T>(run) / count as f64),
            ReduceOp::Max => T::from_f64(
                run.iter()
                    .map(|&x| x.to_f64())
                    .fold(f64::NEG_INFINITY, nan_max),
            ),
            ReduceOp::Min => T::from_f64(
                run.iter()
                    .map(|&x| x.to_f64())
                    .fold(f64::INFINITY, |a, b| -nan_max(-a, -b)),
            ),
        })
        .collect()
}

/// The sum of the selected elements: in f32 for float32 (matching an f32 accumulator), with
/// wrapping for integers.
fn sum_in<T: Element>(run: &[T]) -> f64 {
    match T::DTYPE {
        DType::F32 => run.iter().fold(0.0f32, |acc, &x| acc + x.to_f64() as f32) as f64,
        DType::I32 => run
            .iter()
            .fold(0i32, |acc, &x| acc.wrapping_add(x.to_f64() as i32)) as f64,
        DType::U32 => run
            .iter()
            .fold(0u32, |acc, &x| acc.wrapping_add(x.to_f64() as u32)) as f64,
        DType::Bool | DType::Key => run.iter().map(|&x| x.to_f64()).sum(),
    }
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_over_axes() {
        let x = Array::arange(24).reshape(&[2, 3, 4]).unwrap();
        let s = x.sum([0isize, 2]).unwrap();
        assert_eq!(s.shape(), &[3]);
        assert_eq!(s.to_vec::<i32>().unwrap(), vec![60, 92, 124]);
        let k = x.reduce(ReduceOp::Sum, -1isize, true).unwrap();
        assert_eq!(k.shape(), &[2, 3, 1]);
    }

    #[test]
    fn mean_is_float_and_max_propagates_nan() {
        let x = Array::arange(4);
        let m = x.mean(Axes::All).unwrap();
        assert_eq!(m.dtype(), DType::F32);
        assert_eq!(m.item::<f32>().unwrap(), 1.5);
        let f = Array::from_slice(&[1.0f32, f32::NAN]);
        assert!(f.max(0).unwrap().item::<f32>().unwrap().is_nan());
        assert_eq!(
            Array::from_slice(&[3i32, -2])
                .min(0)
                .unwrap()
                .item::<i32>()
                .unwrap(),
            -2
        );
    }

    #[test]
    fn empty_max_is_an_error() {
        let err = Array::zeros(&[0, 2]).max(0).unwrap_err();
        assert!(err.to_string().contains("zero-size array"));
        assert_eq!(
            Array::zeros(&[0, 2])
                .sum(0)
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
            vec![0.0, 0.0]
        );
    }
}
