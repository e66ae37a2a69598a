//! Linear algebra: the `Q` factor of a QR decomposition (what `jax.random.orthogonal` and
//! the orthogonal initializer take from `jnp.linalg.qr`).

use super::{Array, DType};
use crate::error::{Error, Result};

/// Checks `shape` is a stack of tall matrices `[batch…, rows, cols]`, `rows >= cols`.
///
/// # Errors
/// [`Error::Shape`].
pub fn check_tall(shape: &[usize]) -> Result<(usize, usize)> {
    match shape {
        [.., rows, cols] if rows >= cols => Ok((*rows, *cols)),
        _ => Err(Error::shape(
            "qr_q",
            format!("expected matrices [batch…, rows, cols] with rows >= cols, got {shape:?}"),
        )),
    }
}

impl Array {
    /// The `Q` factor of the thin QR decomposition of each matrix of `self`
    /// (`[batch…, rows, cols]`, float32, `rows >= cols`), with each column multiplied by the
    /// sign of `R`'s diagonal entry: `q * jnp.sign(jnp.diag(r))` for `q, r =
    /// jnp.linalg.qr(a)`, the orthonormal basis JAX's orthogonal initializer draws.
    /// Computed by Householder reflections in float64 and rounded once; it agrees with
    /// JAX's (LAPACK's float32) to about 1e-6.
    ///
    /// ```
    /// # use nnx_core::Array;
    /// let a = Array::from_vec(&[2, 2], vec![3.0f32, 1.0, 4.0, 2.0])?;
    /// let q = a.qr_q()?.to_vec::<f32>()?;
    /// // Orthonormal columns: the first is a / |a| (R's diagonal is positive).
    /// assert!((q[0] - 0.6).abs() < 1e-6 && (q[2] - 0.8).abs() < 1e-6);
    /// assert!((q[0] * q[1] + q[2] * q[3]).abs() < 1e-6);
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Shape`] unless `self` is a stack of tall matrices; [`Error::UnsupportedDType`]
    /// unless float32.
    pub fn qr_q(&self) -> Result<Array> {
        let (rows, cols) = check_tall(self.shape())?;
        if self.dtype() != DType::F32 {
            return Err(Error::UnsupportedDType {
                op: "qr_q",
                dtype: self.dtype(),
                expected: Some("float32"),
            });
        }
        let data = self.to_f64_vec()?;
        let size = rows * cols;
        let mut out = Vec::with_capacity(data.len());
        if size > 0 {
            for matrix in data.chunks_exact(size) {
                out.extend(signed_thin_q(matrix, rows, cols).iter().map(|&v| v as f32));
            }
        }
        Ok(Array::from_vec(self.shape(), out)?.with_weak(self.is_weak()))
    }
}

/// The thin `Q` (`rows × cols`, row-major, `rows >= cols`) of the Householder QR of `a`, each
/// column multiplied by the sign of `R`'s diagonal entry (0 for 0, as `jnp.sign`), in f64:
/// the kernel of [`Array::qr_q`], which the conformance oracle runs on float64 data too.
pub fn signed_thin_q(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut r: Vec<f64> = a.to_vec();
    let mut reflectors: Vec<Vec<f64>> = Vec::with_capacity(cols);
    let mut diagonal = vec![0.0f64; cols];
    for k in 0..cols {
        let norm = (k..rows)
            .map(|i| r[i * cols + k].powi(2))
            .sum::<f64>()
            .sqrt();
        let x0 = r[k * cols + k];
        let alpha = if x0 > 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = (k..rows).map(|i| r[i * cols + k]).collect();
        v[0] -= alpha;
        let v_norm = v.iter().map(|t| t * t).sum::<f64>().sqrt();
        if v_norm > 0.0 {
            v.iter_mut().for_each(|t| *t /= v_norm);
            for j in k..cols {
                let dot: f64 = (k..rows).map(|i| v[i - k] * r[i * cols + j]).sum();
                for i in k..rows {
                    r[i * cols + j] -= 2.0 * v[i - k] * dot;
                }
            }
        }
        diagonal[k] = r[k * cols + k];
        reflectors.push(v);
    }
    // Q = H_0 … H_{cols-1} applied to the first `cols` columns of the identity.
    let mut q = vec![0.0f64; rows * cols];
    for j in 0..cols {
        q[j * cols + j] = 1.0;
    }
    for k in (0..cols).rev() {
        let v = &reflectors[k];
        for j in 0..cols {
            let dot: f64 = (k..rows).map(|i| v[i - k] * q[i * cols + j]).sum();
            for i in k..rows {
                q[i * cols + j] -= 2.0 * v[i - k] * dot;
            }
        }
    }
    for (j, d) in diagonal.iter().enumerate() {
        let sign = if *d > 0.0 {
            1.0
        } else if *d < 0.0 {
            -1.0
        } else {
            0.0
        };
        for i in 0..rows {
            q[i * cols + j] *= sign;
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_has_orthonormal_columns_for_each_matrix() {
        let a = Array::from_vec(
            &[2, 3, 2],
            vec![
                1.0f32, 2.0, -1.0, 0.5, 3.0, 1.0, 2.0, 0.0, 0.0, 1.0, 1.0, 1.0,
            ],
        )
        .unwrap();
        let q = a.qr_q().unwrap();
        assert_eq!(q.shape(), &[2, 3, 2]);
        let v = q.to_vec::<f32>().unwrap();
        for m in v.chunks(6) {
            let col = |j: usize| [m[j], m[2 + j], m[4 + j]];
            let dot = |x: [f32; 3], y: [f32; 3]| x.iter().zip(&y).map(|(p, q)| p * q).sum::<f32>();
            assert!((dot(col(0), col(0)) - 1.0).abs() < 1e-6);
            assert!((dot(col(1), col(1)) - 1.0).abs() < 1e-6);
            assert!(dot(col(0), col(1)).abs() < 1e-6);
        }
        assert!(Array::zeros(&[2, 3]).qr_q().is_err());
        assert!(Array::arange(4).reshape(&[2, 2]).unwrap().qr_q().is_err());
    }
}
