//! Bit-exact float32 and integer samplers of `jax.random` on the XLA:CPU backend.
//!
//! This is `conformance/golden/PRNG.md` sections 6 to 9: `uniform`, `normal` (with XLA's
//! `erf_inv`, `log1p` and `log` expansions, including every fused multiply-add that the
//! XLA:CPU backend emits), `randint` and `bernoulli`, all with JAX's default dtypes
//! (float32, int32) and `jax_threefry_partitionable=True`.
//!
//! Every sampler takes the raw key data `[k0, k1]` and the element count `n` of the
//! requested shape, and returns the values in row-major order (a scalar shape is `n = 1`).
//! Float results are compared with JAX through their bit patterns (`f32::to_bits`).
//! `f32::mul_add` is a correctly rounded fused multiply-add on every target (hardware
//! FMA or a software fallback), which is what the bit-exactness relies on.
//!
//! None of these functions panics, whatever the inputs (NaN or infinite bounds included);
//! the only failure mode is the allocation of the returned `Vec`.

use super::threefry::{fold_in, random_bits_u32, random_bits_u32_iter};

/// The lower bound that `jax.random.normal` passes to `uniform`: `nextafter(-1, 0)`,
/// `-0.99999994` (`0xBF7FFFFF`).
pub const NORMAL_MINVAL: f32 = f32::from_bits(0xBF7F_FFFF);

/// `f32(sqrt(2))`, `1.4142135` (`0x3FB504F3`), the factor from `erf_inv` to a normal.
const SQRT_2: f32 = f32::from_bits(0x3FB5_04F3);

/// `f32(1 / f32(sqrt 2))`, `0.70710677` (`0x3F3504F3`): what XLA multiplies by for a
/// division by `f32(sqrt 2)`.
const FRAC_1_SQRT_2: f32 = f32::from_bits(0x3F35_04F3);

/// Maps 32 random bits to `[0, 1)`: `bitcast((b >> 9) | 0x3F800000) - 1.0`, which is
/// exactly `(b >> 9) * 2^-23`.
fn unit_from_bits(bits: u32) -> f32 {
    f32::from_bits((bits >> 9) | 0x3F80_0000) - 1.0
}

/// XLA's float `max(lhs, rhs)` with NaN propagation: `lhs` if `lhs >= rhs` or `lhs` is NaN,
/// else `rhs` (so a NaN on either side gives NaN).
fn xla_max(lhs: f32, rhs: f32) -> f32 {
    if lhs.is_nan() || lhs >= rhs { lhs } else { rhs }
}

/// `jax.random.uniform(key, shape, float32, minval, maxval)`, from precomputed 32-bit words.
///
/// For each word `b`: `f = (b >> 9) * 2^-23` (in `[0, 1)`), then
/// `max(minval, fma(f, maxval - minval, minval))`, where the span is an f32 subtraction and
/// the multiply-add is fused, as XLA:CPU compiles it. Only the lower bound is clamped: a
/// value can round up to `maxval`. Use this when the words do not come from
/// [`random_bits_u32`], for example from another PRNG implementation.
#[must_use]
pub fn uniform_f32_from_bits(bits: &[u32], minval: f32, maxval: f32) -> Vec<f32> {
    let span = maxval - minval;
    bits.iter()
        .map(|&b| uniform_from_word(b, minval, span))
        .collect()
}

/// One uniform value: `max(minval, fma((b >> 9) * 2^-23, span, minval))`.
fn uniform_from_word(bits: u32, minval: f32, span: f32) -> f32 {
    xla_max(minval, unit_from_bits(bits).mul_add(span, minval))
}

/// `jax.random.uniform(key, shape, float32, minval, maxval)` with `n` elements.
///
/// This is [`uniform_f32_from_bits`] applied to `random_bits_u32(key, n)` (computed in one
/// pass, without the intermediate words). With the default bounds `[0, 1)`,
/// `uniform_f32(key(0), 4, 0.0, 1.0)` starts with `0.947667, 0.9785799`.
#[must_use]
pub fn uniform_f32(key: [u32; 2], n: usize, minval: f32, maxval: f32) -> Vec<f32> {
    let span = maxval - minval;
    random_bits_u32_iter(key, n)
        .map(|b| uniform_from_word(b, minval, span))
        .collect()
}

/// One normal value from one word: `sqrt(2) * erf_inv(uniform(NORMAL_MINVAL, 1.0))`.
fn normal_from_word(bits: u32) -> f32 {
    // The span `1 - NORMAL_MINVAL` rounds to exactly 2 in f32.
    SQRT_2 * erf_inv_f32(uniform_from_word(bits, NORMAL_MINVAL, 1.0 - NORMAL_MINVAL))
}

/// `jax.random.normal(key, shape, float32)`, from precomputed 32-bit words.
///
/// Each word becomes `u = uniform(NORMAL_MINVAL, 1.0)` (see [`uniform_f32_from_bits`]; the
/// span rounds to exactly 2), and the result is `f32(sqrt 2) * erf_inv_f32(u)`.
#[must_use]
pub fn normal_f32_from_bits(bits: &[u32]) -> Vec<f32> {
    bits.iter().map(|&b| normal_from_word(b)).collect()
}

/// `jax.random.normal(key, shape, float32)` with `n` elements.
///
/// This is [`normal_f32_from_bits`] applied to `random_bits_u32(key, n)` (computed in one
/// pass, without the intermediate words).
#[must_use]
pub fn normal_f32(key: [u32; 2], n: usize) -> Vec<f32> {
    random_bits_u32_iter(key, n).map(normal_from_word).collect()
}

/// `jax.random.truncated_normal(key, lower, upper, shape, float32)` with `n` elements.
///
/// As JAX computes it: `a = erf(lower / sqrt2)`, `b = erf(upper / sqrt2)` ([`erf_f32`]; XLA
/// compiles the division by the constant as a product with its float32 reciprocal);
/// `u = uniform(a, b)`; `sqrt2 * erf_inv(u)`; clipped to
/// `[nextafter(lower, +inf), nextafter(upper, -inf)]` (XLA's `clamp`: `min(max(x, lo), hi)`).
#[must_use]
pub fn truncated_normal_f32(key: [u32; 2], n: usize, lower: f32, upper: f32) -> Vec<f32> {
    let a = erf_f32(lower * FRAC_1_SQRT_2);
    let b = erf_f32(upper * FRAC_1_SQRT_2);
    let span = b - a;
    let lo = next_toward(lower, f32::INFINITY);
    let hi = next_toward(upper, f32::NEG_INFINITY);
    random_bits_u32_iter(key, n)
        .map(|bits| {
            let x = SQRT_2 * erf_inv_f32(uniform_from_word(bits, a, span));
            xla_min(xla_max(x, lo), hi)
        })
        .collect()
}

/// XLA's float `min(lhs, rhs)` with NaN propagation.
fn xla_min(lhs: f32, rhs: f32) -> f32 {
    if lhs.is_nan() || lhs <= rhs { lhs } else { rhs }
}

/// `nextafter(x, toward)` for float32 (`lax.nextafter`).
fn next_toward(x: f32, toward: f32) -> f32 {
    if x.is_nan() || toward.is_nan() {
        return f32::NAN;
    }
    if x == toward {
        return toward;
    }
    if x == 0.0 {
        let smallest = f32::from_bits(1);
        return if toward > 0.0 { smallest } else { -smallest };
    }
    let bits = x.to_bits();
    let away_from_zero = (toward > x) == (x > 0.0);
    f32::from_bits(if away_from_zero { bits + 1 } else { bits - 1 })
}

/// Odd numerator coefficients of XLA's float32 `erf` (Eigen's rational interpolant), from
/// the highest degree (x⁹) down to x¹.
const ERF_ALPHA: [u32; 5] = [
    0x3970_2D51,
    0x3B5F_5DA2,
    0x3D50_B6EB,
    0x3E3D_A740,
    0x3F90_6EBA,
];

/// Even denominator coefficients of XLA's float32 `erf`, from x¹² down to x⁰.
const ERF_BETA: [u32; 7] = [
    0xB3FD_3906,
    0x37C5_88DF,
    0x3A85_6D28,
    0x3C66_87D4,
    0x3DE3_4C21,
    0x3EFE_B44A,
    0x3F80_0000,
];

/// `|x|` from which XLA's float32 `erf` returns `±1`.
const ERF_SATURATION: f32 = f32::from_bits(0x4075_47CB);

/// XLA's float32 `erf` (`lax.erf`) bit for bit as XLA:CPU computes it: `x · P(x²) / Q(x²)`
/// with both polynomials evaluated by fused multiply-adds, and `copysign(1, x)` from
/// `|x| ≥ 3.832507`.
#[must_use]
pub fn erf_f32(x: f32) -> f32 {
    if ERF_SATURATION <= x.abs() {
        return 1.0f32.copysign(x);
    }
    let x2 = x * x;
    (x * horner_fma(&ERF_ALPHA, x2)) / horner_fma(&ERF_BETA, x2)
}

/// Coefficients of the `erf_inv` polynomial for `w < 5` (from the highest degree down).
const ERF_INV_A: [u32; 9] = [
    0x32F1_6588,
    0x34B8_4B36,
    0xB66C_7357,
    0xB693_5AC1,
    0x3965_32DB,
    0xBAA4_5408,
    0xBB88_E4EF,
    0x3E7C_8F63,
    0x3FC0_2E2F,
];

/// Coefficients of the `erf_inv` polynomial for `w >= 5` (from the highest degree down).
const ERF_INV_B: [u32; 9] = [
    0xB951_F09B,
    0x38D3_B56B,
    0x3AB0_DC72,
    0xBB70_BDE7,
    0x3BBC_127B,
    0xBBF9_C5D7,
    0x3C1A_A57E,
    0x3F80_36DB,
    0x4035_4F7E,
];

/// Horner evaluation with a fused multiply-add at every step, starting from `c[0]`.
fn horner_fma(coeffs: &[u32], z: f32) -> f32 {
    let mut iter = coeffs.iter().map(|&c| f32::from_bits(c));
    let first = iter.next().unwrap_or(0.0);
    iter.fold(first, |acc, c| acc.mul_add(z, c))
}

/// XLA's float32 `erf_inv` (`lax.erf_inv`), M. Giles' single-precision approximation, bit
/// for bit as XLA:CPU computes it.
///
/// `w = -log1p(-x^2)`; for `w < 5` the polynomial `A` is evaluated at `w - 2.5`, otherwise
/// `B` at `sqrt(w) - 3`, each step a fused multiply-add; the result is `p * x`, or
/// `x * inf` when `|x| == 1`. Inputs with `|x| > 1` and NaN give NaN.
#[must_use]
pub fn erf_inv_f32(x: f32) -> f32 {
    let t = x * -x;
    let w = -log1p_f32(t);
    let p = if w < 5.0 {
        horner_fma(&ERF_INV_A, w - 2.5)
    } else {
        horner_fma(&ERF_INV_B, w.sqrt() - 3.0)
    };
    if x.abs() == 1.0 {
        x * f32::INFINITY
    } else {
        p * x
    }
}

/// Numerator of the Cephes `log1p` rational form (from the highest degree down).
const LOG1P_NUM: [u32; 7] = [
    0x383D_E04B,
    0x3EFF_40C5,
    0x40D2_84FA,
    0x41EF_4B9C,
    0x4273_CC76,
    0x4264_73AD,
    0x41A0_5101,
];

/// Denominator of the Cephes `log1p` rational form (from the highest degree down).
const LOG1P_DEN: [u32; 7] = [
    0x3F80_0000,
    0x4171_01AD,
    0x42A6_185B,
    0x435D_C32D,
    0x439A_8CA3,
    0x4358_6D8A,
    0x4270_7982,
];

/// `f32(sqrt(2) - 1)`, `0.41421357`: below it (in magnitude) `log1p` uses the rational form.
const LOG1P_SMALL: f32 = f32::from_bits(0x3ED4_13CD);

/// XLA's float32 `log1p` (`EmitLog1p`): a Cephes rational form for `|t| < sqrt(2) - 1`,
/// else `log(t + 1)` with [`log_f32`]. Fused multiply-adds only in the two Horner
/// evaluations; every other operation is a separately rounded f32 operation.
fn log1p_f32(t: f32) -> f32 {
    if t.abs() < LOG1P_SMALL {
        let t2 = t * t;
        let r = horner_fma(&LOG1P_NUM, t) / horner_fma(&LOG1P_DEN, t);
        t + ((t2 * -0.5) + ((t * t2) * r))
    } else {
        log_f32(t + 1.0)
    }
}

/// Coefficients `P0..P8` of the Cephes / Eigen `plog_float` polynomial.
const LOG_P: [u32; 9] = [
    0x3D90_21BB,
    0xBDEB_D1B8,
    0x3DEF_251A,
    0xBDFE_5D4F,
    0x3E11_E9BF,
    0xBE2A_AE50,
    0x3E4C_CEAC,
    0xBE7F_FFFC,
    0x3EAA_AAAA,
];

/// `Q1` of the split `ln 2` (`-2.12194440e-4`).
const LOG_Q1: f32 = f32::from_bits(0xB95E_8083);

/// `Q2` of the split `ln 2` (`0.693359375`, 9 significant bits, so `e * Q2` is exact).
const LOG_Q2: f32 = f32::from_bits(0x3F31_8000);

/// `f32(sqrt(1/2))`, `0.70710677`.
const SQRT_HALF: f32 = f32::from_bits(0x3F35_04F3);

/// The smallest normal f32, `2^-126`; denormal inputs are treated as this value.
const FLT_MIN: f32 = f32::from_bits(0x0080_0000);

/// XLA:CPU's float32 `log` (the Cephes `logf` / Eigen `plog_float` split polynomial), with
/// the fused multiply-adds the backend emits.
///
/// NaN or negative gives NaN, `0` gives `-inf`, `+inf` gives `+inf`; denormals are
/// treated as `2^-126`.
fn log_f32(y: f32) -> f32 {
    if y.is_nan() || y < 0.0 {
        return f32::NAN;
    }
    if y == 0.0 {
        return f32::NEG_INFINITY;
    }
    if y == f32::INFINITY {
        return y;
    }
    let m = if y > FLT_MIN { y } else { FLT_MIN };
    let b = m.to_bits();
    // `m` is positive and finite, so the biased exponent is in 1..=254.
    let biased = (b >> 23) as i32;
    let mut e = (biased - 127) as f32 + 1.0;
    let mant = f32::from_bits((b & 0x807F_FFFF) | 0x3F00_0000);
    let x = if mant < SQRT_HALF {
        e -= 1.0;
        (mant - 1.0) + mant
    } else {
        mant - 1.0
    };
    let p = LOG_P.map(f32::from_bits);
    let z = x * x;
    let x3 = z * x;
    let p0 = x.mul_add(p[0], p[1]).mul_add(x, p[2]);
    let p1 = x.mul_add(p[3], p[4]).mul_add(x, p[5]);
    let p2 = x.mul_add(p[6], p[7]).mul_add(x, p[8]);
    let mut acc = p0.mul_add(x3, p1);
    acc = acc.mul_add(x3, p2);
    acc = acc.mul_add(x3, e * LOG_Q1);
    let r = (x - z * 0.5) + acc;
    r + e * LOG_Q2
}

/// `jax.random.randint(key, shape, minval, maxval)` with the default dtype int32 and
/// `n` elements.
///
/// `k1, k2 = split(key, 2)`; `hi`, `lo` are the 32-bit words of `k1` and `k2`;
/// `span = u32(maxval - minval)` (wrapping), or 1 if `maxval <= minval` (then every value
/// is `minval`); `mult = (2^16 % span)^2 % span` with a wrapping u32 square;
/// `offset = ((hi % span) * mult + lo % span) % span` in wrapping u32 arithmetic; and the
/// result is `minval + offset` with a wrapping add. The upper bound is exclusive.
#[must_use]
pub fn randint_i32(key: [u32; 2], n: usize, minval: i32, maxval: i32) -> Vec<i32> {
    // `split(key, 2)` is `[fold_in(key, 0), fold_in(key, 1)]`.
    let (k1, k2) = (fold_in(key, 0), fold_in(key, 1));
    let hi = random_bits_u32(k1, n);
    let lo = random_bits_u32(k2, n);
    // Bit reinterpretation of the two's complement bounds is intended.
    let span = if maxval <= minval {
        1
    } else {
        (maxval as u32).wrapping_sub(minval as u32)
    };
    let mult = (1_u32 << 16) % span;
    let mult = mult.wrapping_mul(mult) % span;
    hi.iter()
        .zip(&lo)
        .map(|(&h, &l)| {
            let off = (h % span).wrapping_mul(mult).wrapping_add(l % span) % span;
            minval.wrapping_add(off as i32)
        })
        .collect()
}

/// `jax.random.bernoulli(key, p, shape)` with the default `mode='low'` and `n` elements:
/// `uniform_f32(key, n, 0.0, 1.0)[i] < p`.
///
/// `p` is the probability already rounded to f32, as JAX does. A NaN `p` gives all
/// `false`, `p <= 0` all `false`, and `p > 1` all `true`.
#[must_use]
pub fn bernoulli(key: [u32; 2], n: usize, p: f32) -> Vec<bool> {
    random_bits_u32_iter(key, n)
        .map(|b| uniform_from_word(b, 0.0, 1.0) < p)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::threefry::{seed_key, split};
    use super::*;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn uniform_known_answer() {
        let u = uniform_f32(seed_key(0), 4, 0.0, 1.0);
        assert_eq!(u[0].to_bits(), 1_064_475_214); // 0.947667
        assert_eq!(u[1].to_bits(), 1_064_993_846); // 0.9785799
        assert_eq!(u[0], 0.947_667);
        assert_eq!(u[1], 0.978_579_9);
        assert!(uniform_f32(seed_key(0), 0, 0.0, 1.0).is_empty());
    }

    #[test]
    fn uniform_extremes_and_clamp() {
        // Word 0 gives exactly minval, the all-ones word the largest value below 1.
        assert_eq!(uniform_f32_from_bits(&[0, 0x1FF], 0.0, 1.0), vec![0.0, 0.0]);
        let top = uniform_f32_from_bits(&[u32::MAX], 0.0, 1.0)[0];
        assert_eq!(top, 1.0 - f32::EPSILON);
        // The lower clamp: minval is returned as is, and NaN bounds propagate.
        assert_eq!(
            uniform_f32_from_bits(&[0], NORMAL_MINVAL, 1.0),
            vec![NORMAL_MINVAL]
        );
        assert!(uniform_f32_from_bits(&[7 << 9], f32::NAN, 1.0)[0].is_nan());
        assert!(uniform_f32_from_bits(&[7 << 9], 0.0, f32::NAN)[0].is_nan());
        assert!(uniform_f32_from_bits(&[7 << 9], f32::NEG_INFINITY, 0.0)[0].is_nan());
    }

    #[test]
    fn normal_span_is_two_and_range() {
        assert_eq!(1.0 - NORMAL_MINVAL, 2.0);
        let us = uniform_f32_from_bits(&[0, u32::MAX], NORMAL_MINVAL, 1.0);
        assert_eq!(us, vec![NORMAL_MINVAL, 0.999_999_8]);
        for z in normal_f32_from_bits(&[0, u32::MAX, 1 << 31]) {
            assert!(z.is_finite());
        }
    }

    #[test]
    fn normal_matches_spec_prefix() {
        // PRNG.md / prng_vectors.json: normal(key(0), (5,)) starts 1.6226422, 2.0252647.
        let z = normal_f32(seed_key(0), 3);
        assert_eq!(bits(&z), vec![1_070_576_317, 1_073_847_792, 3_202_220_055]);
        assert!(normal_f32(seed_key(0), 0).is_empty());
    }

    #[test]
    fn erf_inv_special_values() {
        assert_eq!(erf_inv_f32(0.0), 0.0);
        assert_eq!(erf_inv_f32(1.0), f32::INFINITY);
        assert_eq!(erf_inv_f32(-1.0), f32::NEG_INFINITY);
        assert!(erf_inv_f32(f32::NAN).is_nan());
        assert!(erf_inv_f32(1.5).is_nan());
        assert!(erf_inv_f32(f32::INFINITY).is_nan());
        // Odd symmetry and a value in each branch.
        for x in [0.1_f32, 0.5, 0.9, 0.999_9] {
            assert_eq!(erf_inv_f32(-x), -erf_inv_f32(x));
        }
        assert!((erf_inv_f32(0.5) - 0.476_936_3).abs() < 1e-6);
        assert!((erf_inv_f32(0.999_9) - 2.751_035).abs() < 2e-5);
        // Bit patterns from the pure-Python reference, check_spec.py.
        assert_eq!(erf_inv_f32(0.5).to_bits(), 0x3ef4_30fe);
        assert_eq!(erf_inv_f32(0.999_9).to_bits(), 0x4030_10d3); // w >= 5 branch
        assert_eq!(erf_inv_f32(-0.3).to_bits(), 0xbe8b_803d);
        assert_eq!(erf_inv_f32(0.999_999_8).to_bits(), 0x406c_3c3f);
    }

    #[test]
    fn log_special_values_and_accuracy() {
        assert!(log_f32(f32::NAN).is_nan());
        assert!(log_f32(-1.0).is_nan());
        assert_eq!(log_f32(0.0), f32::NEG_INFINITY);
        assert_eq!(log_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(log_f32(1.0), 0.0);
        // Denormals are treated as FLT_MIN.
        assert_eq!(log_f32(f32::from_bits(1)), log_f32(FLT_MIN));
        // Bit patterns from the pure-Python reference, check_spec.py.
        assert_eq!(log_f32(0.3).to_bits(), 0xbf9a_1bc8);
        assert_eq!(log_f32(2.0).to_bits(), 0x3f31_7218);
        assert_eq!(log_f32(10.0).to_bits(), 0x4013_5d8e);
        assert_eq!(log_f32(1e-30).to_bits(), 0xc28a_27b5);
        for y in [1e-30_f32, 0.3, 0.75, 2.0, 10.0, 1e30] {
            let want = f64::from(y).ln();
            assert!((f64::from(log_f32(y)) - want).abs() <= 2e-7 * want.abs().max(1.0));
        }
    }

    #[test]
    fn log1p_both_branches() {
        assert_eq!(log1p_f32(0.0), 0.0);
        assert_eq!(log1p_f32(-1.0), f32::NEG_INFINITY);
        assert!(log1p_f32(f32::NAN).is_nan());
        // Bit patterns from the pure-Python reference, check_spec.py.
        assert_eq!(log1p_f32(-0.9).to_bits(), 0xc013_5d8d);
        assert_eq!(log1p_f32(1e-6).to_bits(), 0x3586_37b9);
        assert_eq!(log1p_f32(0.2).to_bits(), 0x3e3a_b281);
        assert_eq!(log1p_f32(3.0).to_bits(), 0x3fb1_7218);
        for t in [-0.9_f32, -0.3, 1e-6, 0.2, 0.41, 0.5, 3.0] {
            let want = f64::from(t).ln_1p();
            assert!((f64::from(log1p_f32(t)) - want).abs() <= 3e-7 * want.abs().max(1e-6));
        }
    }

    #[test]
    fn randint_rules() {
        let key = seed_key(42);
        // maxval <= minval gives minval.
        assert_eq!(randint_i32(key, 3, 5, 5), vec![5; 3]);
        assert_eq!(randint_i32(key, 3, 5, -7), vec![5; 3]);
        assert!(randint_i32(key, 0, 0, 10).is_empty());
        for v in randint_i32(key, 100, -5, 5) {
            assert!((-5..5).contains(&v));
        }
        // Full range: span 2^32 - 1, mult == 0, so the value is minval + lo % span.
        let lo = random_bits_u32(split(key, 2)[1], 4);
        let full = randint_i32(key, 4, i32::MIN, i32::MAX);
        for (v, l) in full.iter().zip(&lo) {
            assert_eq!(*v, i32::MIN.wrapping_add((l % u32::MAX) as i32));
        }
    }

    #[test]
    fn bernoulli_rules() {
        let key = seed_key(0);
        let u = uniform_f32(key, 16, 0.0, 1.0);
        let b = bernoulli(key, 16, 0.5);
        for (x, y) in u.iter().zip(&b) {
            assert_eq!(*x < 0.5, *y);
        }
        assert!(bernoulli(key, 16, f32::NAN).iter().all(|x| !x));
        assert!(bernoulli(key, 16, 0.0).iter().all(|x| !x));
        assert!(bernoulli(key, 16, 1.0).iter().all(|x| *x));
        assert!(bernoulli(key, 0, 0.5).is_empty());
    }
}
