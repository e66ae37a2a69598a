//! Derivative rules of the linear-algebra primitives, as JAX's: `triangular_solve` (linear
//! in its right-hand side; in its matrix, the derivative of an inverse) and the signed `Q`
//! of a QR decomposition (`jax.lax.linalg.qr`'s JVP, and its transpose for the VJP). Both
//! are written with tensor operations, `triangular_solve` among them, so they record into
//! the enclosing trace and differentiate again.

use crate::error::Result;
use crate::tensor::elementwise::UnaryOp;
use crate::tensor::{Tensor, TriangularSolve};

/// The last two axes swapped.
fn mt(t: &Tensor) -> Result<Tensor> {
    t.moveaxis(-1, -2)
}

/// A right-hand side (or solution) as matrices: a vector `b` (one axis fewer than `a`) is
/// a column on the left, a row on the right.
fn as_matrix(spec: TriangularSolve, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    match (b.ndim() < a.ndim(), spec.left_side) {
        (false, _) => Ok(b.clone()),
        (true, true) => b.expand_dims(-1),
        (true, false) => b.expand_dims(-2),
    }
}

/// `t` back to the shape of `like` (undoing [`as_matrix`]).
fn shaped_like(t: Tensor, like: &Tensor) -> Result<Tensor> {
    match t.shape() == like.shape() {
        true => Ok(t),
        false => {
            let dims: Vec<isize> = like.shape().iter().map(|&d| d as isize).collect();
            t.reshape(&dims)
        }
    }
}

/// The entries of `t` (shaped like `a`) that the solve reads: its triangle, the diagonal
/// included unless it is taken as ones.
fn read_triangle(spec: TriangularSolve, t: &Tensor) -> Result<Tensor> {
    let strict = isize::from(spec.unit_diagonal);
    match spec.lower {
        true => t.tril(-strict),
        false => t.triu(strict),
    }
}

/// `op(t)`: `tᵀ` when the solve transposes its matrix.
fn op(spec: TriangularSolve, t: Tensor) -> Result<Tensor> {
    match spec.transpose_a {
        true => mt(&t),
        false => Ok(t),
    }
}

/// The cotangents of `a` and `b` for `x = triangular_solve(a, b)` given `x`'s cotangent
/// `g`. With `op(a) x = b`: `ḡb = op(a)⁻ᵀ g` (the transposed solve) and `ḡa` the
/// triangle of `−ḡb xᵀ` (on the right `−xᵀ ḡb`), transposed back when `op` transposes.
pub(super) fn triangular_solve_vjp(
    spec: TriangularSolve,
    x: &[Tensor],
    y: &Tensor,
    g: &Tensor,
    needed: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let (a, b) = (&x[0], &x[1]);
    let gb = a.triangular_solve(&as_matrix(spec, a, g)?, spec.transposed())?;
    let ga = match needed.first().copied().unwrap_or(true) {
        true => {
            let xm = as_matrix(spec, a, y)?;
            let product = match spec.left_side {
                true => gb.matmul(&mt(&xm)?)?,
                false => mt(&xm)?.matmul(&gb)?,
            };
            Some(read_triangle(
                spec,
                &op(spec, product.unary(UnaryOp::Neg)?)?,
            )?)
        }
        false => None,
    };
    Ok(vec![ga, Some(shaped_like(gb, b)?)])
}

/// The tangent of `x = triangular_solve(a, b)` given the tangents of `a` and `b` (at least
/// one): `op(a)⁻¹ (ḃ − op(ȧ) x)` on the left, `(ḃ − x op(ȧ)) op(a)⁻¹` on the right, one
/// solve (`ȧ` read as the solve reads `a`).
pub(super) fn triangular_solve_jvp(
    spec: TriangularSolve,
    x: &[Tensor],
    y: &Tensor,
    ta: Option<&Tensor>,
    tb: Option<&Tensor>,
) -> Result<Tensor> {
    let (a, b) = (&x[0], &x[1]);
    let mut rhs = match tb {
        Some(tb) => as_matrix(spec, a, tb)?,
        None => Tensor::zeros(as_matrix(spec, a, b)?.shape()),
    };
    if let Some(ta) = ta {
        let moved = op(spec, read_triangle(spec, ta)?)?;
        let xm = as_matrix(spec, a, y)?;
        let product = match spec.left_side {
            true => moved.matmul(&xm)?,
            false => xm.matmul(&moved)?,
        };
        rhs = rhs.sub(&product)?;
    }
    shaped_like(a.triangular_solve(&rhs, spec)?, y)
}

/// `R` of the QR whose (signed) `Q` is `q`, for the solves by it: `qᵀ a`, upper
/// triangular with a positive diagonal (for matrices of full column rank).
fn r_of(a: &Tensor, q: &Tensor) -> Result<Tensor> {
    mt(q)?.matmul(a)
}

/// The solve by `R` on the right: `t R⁻¹`, or `t R⁻ᵀ` when `transpose`.
fn by_r_inverse(r: &Tensor, t: &Tensor, transpose: bool) -> Result<Tensor> {
    let spec = TriangularSolve {
        transpose_a: transpose,
        ..TriangularSolve::default()
    };
    r.triangular_solve(t, spec)
}

/// The tangent of the signed `Q` of `a`'s QR along `ȧ`, as JAX's QR JVP (the signs are
/// locally constant): with `D = ȧ R⁻¹` and `C = Qᵀ D`, `Ω = tril(C, −1) − tril(C, −1)ᵀ` and
/// `Q̇ = Q (Ω − C) + D`.
pub(super) fn qr_q_jvp(a: &Tensor, q: &Tensor, ta: &Tensor) -> Result<Tensor> {
    let d = by_r_inverse(&r_of(a, q)?, ta, false)?;
    let c = mt(q)?.matmul(&d)?;
    let below = c.tril(-1)?;
    let omega = below.sub(&mt(&below)?)?;
    q.matmul(&omega.sub(&c)?)?.add(&d)
}

/// The cotangent of `a` given the signed `Q`'s cotangent `g`: the transpose of
/// [`qr_q_jvp`]. With `M = Qᵀ g`: `C̄ = tril(M − Mᵀ, −1) − M`, `D̄ = g + Q C̄`, `ā = D̄ R⁻ᵀ`.
pub(super) fn qr_q_vjp(a: &Tensor, q: &Tensor, g: &Tensor) -> Result<Tensor> {
    let m = mt(q)?.matmul(g)?;
    let c = m.sub(&mt(&m)?)?.tril(-1)?.sub(&m)?;
    let d = g.add(&q.matmul(&c)?)?;
    by_r_inverse(&r_of(a, q)?, &d, true)
}
