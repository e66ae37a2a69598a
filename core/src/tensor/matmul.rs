//! Matrix multiplication with numpy's `matmul` semantics.

use super::shape::broadcast_shapes;
use super::{Buffer, DType, Element, Tensor, promote};
use crate::error::{Error, Result};

impl Tensor {
    /// `self @ other` with numpy semantics: 1-D operands are promoted to a row (left) or a
    /// column (right) vector and the added axis removed afterwards; leading (batch) axes
    /// broadcast. Accumulates in the operands' dtype (float32 stays float32, as in JAX).
    ///
    /// # Errors
    /// [`Error::Shape`] for 0-d operands, [`Error::MatmulShape`] when the contracting
    /// dimensions differ, [`Error::Broadcast`] when the batch axes do not broadcast,
    /// [`Error::UnsupportedDType`] for bool or key operands.
    ///
    /// ```
    /// # use nnx_core::Tensor;
    /// let x = Tensor::from_slice(&[1.0f32, 2.0]);
    /// let w = Tensor::from_vec(&[2, 3], vec![1.0f32, 0.0, 1.0, 0.0, 1.0, 1.0]).unwrap();
    /// let y = x.matmul(&w).unwrap();
    /// assert_eq!(y.shape(), &[3]);
    /// assert_eq!(y.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0]);
    /// ```
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        if self.ndim() == 0 || other.ndim() == 0 {
            return Err(Error::shape(
                "matmul",
                format!(
                    "operands must have at least one dimension, got shapes {:?} and {:?}",
                    self.shape(),
                    other.shape()
                ),
            ));
        }
        let (dtype, weak) = promote(self.dtype(), self.is_weak(), other.dtype(), other.is_weak())
            .filter(|(d, _)| d.is_numeric())
            .ok_or(Error::DTypeMismatch {
                op: "matmul",
                lhs: self.dtype(),
                rhs: other.dtype(),
            })?;
        let lhs = self.astype(dtype)?;
        let rhs = other.astype(dtype)?;
        let lhs_vector = lhs.ndim() == 1;
        let rhs_vector = rhs.ndim() == 1;
        let lhs = if lhs_vector { lhs.expand_dims(0)? } else { lhs };
        let rhs = if rhs_vector {
            rhs.expand_dims(-1)?
        } else {
            rhs
        };
        let (m, k) = last_two(lhs.shape());
        let (k2, n) = last_two(rhs.shape());
        if k != k2 {
            return Err(Error::MatmulShape {
                lhs: self.shape().to_vec(),
                rhs: other.shape().to_vec(),
                lhs_inner: k,
                rhs_inner: k2,
            });
        }
        let lhs_batch = &lhs.shape()[..lhs.ndim() - 2];
        let rhs_batch = &rhs.shape()[..rhs.ndim() - 2];
        let batch = broadcast_shapes("matmul", lhs_batch, rhs_batch)?;
        let batch_size: usize = batch.iter().product();
        let lhs = lhs.broadcast_to(&[batch.as_slice(), &[m, k]].concat())?;
        let rhs = rhs.broadcast_to(&[batch.as_slice(), &[k, n]].concat())?;
        let dims = GemmDims {
            batch: batch_size,
            m,
            k,
            n,
        };
        let buffer = match (lhs.buffer(), rhs.buffer()) {
            (Buffer::F32(a), Buffer::F32(b)) => {
                f32::into_buffer(gemm(a, b, dims, |x, y, acc: f32| acc + x * y))
            }
            (Buffer::I32(a), Buffer::I32(b)) => {
                i32::into_buffer(gemm(a, b, dims, |x: i32, y, acc| {
                    acc.wrapping_add(x.wrapping_mul(y))
                }))
            }
            (Buffer::U32(a), Buffer::U32(b)) => {
                u32::into_buffer(gemm(a, b, dims, |x: u32, y, acc| {
                    acc.wrapping_add(x.wrapping_mul(y))
                }))
            }
            _ => {
                return Err(Error::UnsupportedDType {
                    op: "matmul",
                    dtype,
                    expected: Some("int32, uint32 or float32"),
                });
            }
        };
        let mut out_shape = batch;
        if !lhs_vector {
            out_shape.push(m);
        }
        if !rhs_vector {
            out_shape.push(n);
        }
        debug_assert_ne!(dtype, DType::Key);
        Ok(Tensor::from_parts(out_shape, buffer, weak))
    }
}

fn last_two(shape: &[usize]) -> (usize, usize) {
    (shape[shape.len() - 2], shape[shape.len() - 1])
}

#[derive(Clone, Copy)]
struct GemmDims {
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
}

/// A plain batched GEMM in `i, p, j` loop order: `c[b, i, j] = Σ_p a[b, i, p] · b[b, p, j]`.
fn gemm<T: Element + Default>(a: &[T], b: &[T], d: GemmDims, fma: impl Fn(T, T, T) -> T) -> Vec<T> {
    let GemmDims { batch, m, k, n } = d;
    let mut c = vec![T::default(); batch * m * n];
    for bi in 0..batch {
        let a = &a[bi * m * k..(bi + 1) * m * k];
        let b = &b[bi * k * n..(bi + 1) * k * n];
        let c = &mut c[bi * m * n..(bi + 1) * m * n];
        for i in 0..m {
            let row = &mut c[i * n..(i + 1) * n];
            for p in 0..k {
                let x = a[i * k + p];
                let b_row = &b[p * n..(p + 1) * n];
                for (acc, &y) in row.iter_mut().zip(b_row) {
                    *acc = fma(x, y, *acc);
                }
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], data: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape, data).unwrap()
    }

    #[test]
    fn two_d_times_two_d() {
        let a = t(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let b = t(&[2, 1], vec![5.0, 6.0]);
        let c = a.matmul(&b).unwrap();
        assert_eq!(c.shape(), &[2, 1]);
        assert_eq!(c.to_vec::<f32>().unwrap(), vec![17.0, 39.0]);
    }

    #[test]
    fn vectors_contract_to_a_scalar() {
        let v = t(&[3], vec![1.0, 2.0, 3.0]);
        let s = v.matmul(&v).unwrap();
        assert_eq!(s.shape(), &[] as &[usize]);
        assert_eq!(s.item::<f32>().unwrap(), 14.0);
    }

    #[test]
    fn batch_axes_broadcast() {
        let a = Tensor::ones(&[4, 1, 2, 3]);
        let b = Tensor::ones(&[5, 3, 2]);
        let c = a.matmul(&b).unwrap();
        assert_eq!(c.shape(), &[4, 5, 2, 2]);
        assert!(c.to_vec::<f32>().unwrap().iter().all(|&x| x == 3.0));
    }

    #[test]
    fn contracting_mismatch_names_both_shapes() {
        let err = Tensor::ones(&[2, 3])
            .matmul(&Tensor::ones(&[2, 3]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "matmul: contracting dimensions differ: lhs shape [2, 3] has 3 columns, rhs shape [2, 3] has 2 rows"
        );
        assert!(Tensor::scalar(1.0f32).matmul(&Tensor::ones(&[1])).is_err());
    }

    #[test]
    fn integer_matmul() {
        let a = Tensor::arange(4).reshape(&[2, 2]).unwrap();
        assert_eq!(
            a.matmul(&a).unwrap().to_vec::<i32>().unwrap(),
            vec![2, 3, 6, 11]
        );
    }
}
