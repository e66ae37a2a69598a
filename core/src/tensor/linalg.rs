//! Linear algebra: the `Q` factor of a QR decomposition (what `jax.random.orthogonal` and
//! the orthogonal initializer take from `jnp.linalg.qr`), and triangular solves
//! (`lax.linalg.triangular_solve`, which that `Q`'s derivatives need).

use std::fmt;
use std::ops::{Div, Mul, Sub};

use super::{Array, DType, Tensor};
use crate::error::{Error, Result};
use crate::program::Primitive;

/// How a triangular solve reads its matrix: `lax.linalg.triangular_solve`'s keyword
/// arguments (the default, all `false`, is JAX's: `x @ a = b` with `a` upper triangular).
///
/// With `op(a)` = `aᵀ` when `transpose_a`, else `a`, the solve finds `x` with
/// `op(a) @ x = b` when `left_side`, else `x @ op(a) = b`. Only the triangle `lower` names
/// is read (the diagonal too, unless `unit_diagonal`, which takes it as ones).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TriangularSolve {
    /// Solve `op(a) @ x = b` (else `x @ op(a) = b`).
    pub left_side: bool,
    /// `a` is lower triangular (else upper).
    pub lower: bool,
    /// Use `aᵀ`.
    pub transpose_a: bool,
    /// Take the diagonal as ones (it is not read).
    pub unit_diagonal: bool,
}

impl fmt::Display for TriangularSolve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "left_side={}, lower={}, transpose_a={}, unit_diagonal={}",
            self.left_side, self.lower, self.transpose_a, self.unit_diagonal
        )
    }
}

impl TriangularSolve {
    /// The same solve with `aᵀ` in place of `a` (the solve a cotangent of `b` takes).
    pub fn transposed(self) -> Self {
        TriangularSolve {
            transpose_a: !self.transpose_a,
            ..self
        }
    }

    /// Checks the operands' shapes and dtypes and gives the solution's shape, which is
    /// `b`'s: `a` is `[batch…, m, m]`, `b` is `[batch…, m, n]` on the left, `[batch…, n, m]`
    /// on the right, or `[batch…, m]` (one vector); the batch axes are equal, as JAX
    /// requires; both are float32.
    ///
    /// # Errors
    /// [`Error::Shape`] for any other shapes; [`Error::UnsupportedDType`].
    pub fn check(&self, a: (&[usize], DType), b: (&[usize], DType)) -> Result<Vec<usize>> {
        let ((a_shape, a_dtype), (b_shape, b_dtype)) = (a, b);
        for dtype in [a_dtype, b_dtype] {
            if dtype != DType::F32 {
                return Err(Error::UnsupportedDType {
                    op: "triangular_solve",
                    dtype,
                    expected: Some("float32"),
                });
            }
        }
        let fail = |why: String| Err(Error::shape("triangular_solve", why));
        let [batch @ .., m, m2] = a_shape else {
            return fail(format!("a must be [batch…, m, m], got {a_shape:?}"));
        };
        if m != m2 {
            return fail(format!("a must be square, got {a_shape:?}"));
        }
        let vector = b_shape.len() + 1 == a_shape.len();
        if !vector && b_shape.len() != a_shape.len() {
            return fail(format!(
                "b must have a's batch axes and one or two more, got a {a_shape:?} and b {b_shape:?}"
            ));
        }
        let solved = match (vector, self.left_side) {
            (true, _) => b_shape.last(),
            (false, true) => b_shape.get(b_shape.len() - 2),
            (false, false) => b_shape.last(),
        };
        if &b_shape[..batch.len()] != batch || solved != Some(m) {
            let side = if self.left_side {
                "op(a) @ x"
            } else {
                "x @ op(a)"
            };
            return fail(format!(
                "{side} = b: a {a_shape:?} does not fit b {b_shape:?}"
            ));
        }
        Ok(b_shape.to_vec())
    }

    /// Solves in place for one `m × m` matrix `a` (row-major): `b` holds, on the left, an
    /// `m × n` right-hand side (`n = b.len() / m`), each column solved on its own; on the
    /// right, any number of rows of length `m`, each solved on its own. One substitution
    /// per column or row, in a fixed order, so splitting the columns or rows between
    /// threads gives the same values: the kernel of [`Array::triangular_solve`], which the
    /// fast engine and the float64 oracle also run. Slices of other lengths (`a` not
    /// `m × m`, `b` not a multiple of `m`) are left as they are.
    pub fn solve_in_place<T>(&self, a: &[T], m: usize, b: &mut [T])
    where
        T: Copy + Sub<Output = T> + Mul<Output = T> + Div<Output = T>,
    {
        if m == 0 || b.is_empty() || a.len() != m * m || !b.len().is_multiple_of(m) {
            return;
        }
        // A row of `x @ op(a) = b` is a column of `op(a)ᵀ @ xᵀ = bᵀ`: every case solves
        // `t @ v = c` for vectors `v`, with `t` = op(a) on the left, op(a)ᵀ on the right.
        let swap = self.transpose_a == self.left_side;
        let t = |i: usize, j: usize| if swap { a[j * m + i] } else { a[i * m + j] };
        let lower = (self.lower != self.transpose_a) == self.left_side;
        // On the left, `count` columns (stride `count`); on the right, `count` rows.
        let count = b.len() / m;
        let (stride, step) = if self.left_side { (count, 1) } else { (1, m) };
        for v in 0..count {
            let at = |i: usize| v * step + i * stride;
            // Each entry from the ones already solved: forwards when lower, else backwards.
            for r in 0..m {
                let i = if lower { r } else { m - 1 - r };
                let known = if lower { 0..i } else { i + 1..m };
                let mut acc = b[at(i)];
                for k in known {
                    acc = acc - t(i, k) * b[at(k)];
                }
                b[at(i)] = if self.unit_diagonal {
                    acc
                } else {
                    acc / t(i, i)
                };
            }
        }
    }
}

impl Tensor {
    /// The `Q` factor of each matrix's thin QR, columns signed by `R`'s diagonal; see
    /// [`Array::qr_q`]. Traceable (so the orthogonal initializer runs inside `vmap` and
    /// `scan`) and differentiable, by JAX's rules for `jnp.linalg.qr` (the matrices must
    /// have full column rank for a finite derivative).
    ///
    /// # Errors
    /// As [`Array::qr_q`].
    pub fn qr_q(&self) -> Result<Tensor> {
        Tensor::apply(Primitive::QrQ, &[self])
    }

    /// `lax.linalg.triangular_solve(self, b, …)`; see [`Array::triangular_solve`].
    /// Traceable and differentiable in both operands (only the triangle `spec` names takes
    /// a derivative).
    ///
    /// ```
    /// use nnx_core::Tensor;
    /// use nnx_core::tensor::TriangularSolve;
    /// // x @ a = b for upper triangular a = [[2, 1], [0, 4]] and b = [2, 5]: x = [1, 1].
    /// let a = Tensor::from_vec(&[2, 2], vec![2.0f32, 1.0, 0.0, 4.0])?;
    /// let b = Tensor::from_vec(&[2], vec![2.0f32, 5.0])?;
    /// let x = a.triangular_solve(&b, TriangularSolve::default())?;
    /// assert_eq!(x.to_vec::<f32>()?, vec![1.0, 1.0]);
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Array::triangular_solve`].
    pub fn triangular_solve(&self, b: &Tensor, spec: TriangularSolve) -> Result<Tensor> {
        Tensor::apply(Primitive::TriangularSolve(spec), &[self, b])
    }

    /// `jnp.tril(self, k)`: each matrix (the last two axes) with the entries above diagonal
    /// `k` zeroed (`k = 0` the main diagonal, `k < 0` below it).
    ///
    /// ```
    /// use nnx_core::Tensor;
    /// let m = Tensor::from_vec(&[2, 2], vec![1.0f32, 2.0, 3.0, 4.0])?;
    /// assert_eq!(m.tril(0)?.to_vec::<f32>()?, vec![1.0, 0.0, 3.0, 4.0]);
    /// assert_eq!(m.tril(-1)?.to_vec::<f32>()?, vec![0.0, 0.0, 3.0, 0.0]);
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Shape`] for fewer than two axes.
    pub fn tril(&self, k: isize) -> Result<Tensor> {
        self.keep_band("tril", |i, j| j - i <= k)
    }

    /// `jnp.triu(self, k)`: each matrix (the last two axes) with the entries below diagonal
    /// `k` zeroed.
    ///
    /// # Errors
    /// [`Error::Shape`] for fewer than two axes.
    pub fn triu(&self, k: isize) -> Result<Tensor> {
        self.keep_band("triu", |i, j| j - i >= k)
    }

    /// `self` where `keep(row, column)` holds for the last two axes, zeros elsewhere (a
    /// `select` on a constant mask, so derivatives pass through the kept entries).
    fn keep_band(&self, op: &'static str, keep: impl Fn(isize, isize) -> bool) -> Result<Tensor> {
        let [.., rows, cols] = *self.shape() else {
            return Err(Error::shape(
                op,
                format!("expected a matrix, got {:?}", self.shape()),
            ));
        };
        let mask = (0..rows * cols)
            .map(|e| keep((e / cols) as isize, (e % cols) as isize))
            .collect();
        let zero = Tensor::zeros([]).astype(self.dtype())?;
        Tensor::from_vec(&[rows, cols], mask)?.select(self, &zero)
    }
}

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

    /// `lax.linalg.triangular_solve(self, b, …)` with `spec`'s flags: `x` with
    /// `op(self) @ x = b` or `x @ op(self) = b` for each matrix of `self` (float32
    /// `[batch…, m, m]`, only the triangle `spec` names read) and `b` (float32, with the same
    /// batch axes; see [`TriangularSolve::check`]).
    ///
    /// ```
    /// # use nnx_core::Array;
    /// use nnx_core::tensor::TriangularSolve;
    /// // [[2, 0], [1, 4]] @ x = [2, 9]: x = [1, 2]. The upper entry is not read.
    /// let a = Array::from_vec(&[2, 2], vec![2.0f32, 99.0, 1.0, 4.0])?;
    /// let b = Array::from_vec(&[2], vec![2.0f32, 9.0])?;
    /// let spec = TriangularSolve { left_side: true, lower: true, ..Default::default() };
    /// assert_eq!(a.triangular_solve(&b, spec)?.to_vec::<f32>()?, vec![1.0, 2.0]);
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Shape`] for shapes that do not fit; [`Error::UnsupportedDType`] unless both
    /// are float32.
    pub fn triangular_solve(&self, b: &Array, spec: TriangularSolve) -> Result<Array> {
        let shape = spec.check((self.shape(), self.dtype()), (b.shape(), b.dtype()))?;
        let m = self.shape()[self.ndim() - 1];
        let a = self.to_vec::<f32>()?;
        let mut x = b.to_vec::<f32>()?;
        for_each_matrix(&a, m, &mut x, |a, block| spec.solve_in_place(a, m, block));
        Ok(Array::from_vec(&shape, x)?.with_weak(self.is_weak() && b.is_weak()))
    }
}

/// Runs `solve(matrix, block)` for each `m × m` matrix of `a` and the block of `b` with the
/// same batch index (`b` holds as many equal blocks as `a` holds matrices).
pub fn for_each_matrix<T>(a: &[T], m: usize, b: &mut [T], mut solve: impl FnMut(&[T], &mut [T])) {
    let matrices = a.len() / (m * m).max(1);
    if matrices == 0 || b.is_empty() {
        return;
    }
    let block = b.len() / matrices;
    for (matrix, rhs) in a.chunks_exact(m * m).zip(b.chunks_exact_mut(block)) {
        solve(matrix, rhs);
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
