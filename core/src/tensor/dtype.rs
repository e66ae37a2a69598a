//! Element types of arrays and the promotion rules between them.

use std::fmt;

/// The element type of a [`Array`](super::Array).
///
/// `Key` is JAX's typed PRNG key (`key<fry>`): each element is a threefry key of two `u32`
/// words. It supports layout operations (reshape, index, stack, …) but no arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// Boolean.
    Bool,
    /// 32-bit signed integer.
    I32,
    /// 32-bit unsigned integer.
    U32,
    /// 32-bit IEEE float, the default.
    F32,
    /// A threefry2x32 PRNG key (two `u32` words per element).
    Key,
}

impl DType {
    /// The name JAX prints (`float32`, `int32`, `uint32`, `bool`, `key<fry>`).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I32 => "int32",
            DType::U32 => "uint32",
            DType::F32 => "float32",
            DType::Key => "key<fry>",
        }
    }

    /// Bytes one element occupies (a key is two `u32` words).
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::Bool => 1,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::Key => 8,
        }
    }

    /// Whether values of this dtype are floating point.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32)
    }

    /// Whether arithmetic is defined on this dtype.
    pub fn is_numeric(self) -> bool {
        matches!(self, DType::I32 | DType::U32 | DType::F32)
    }

    /// Kind rank used by weak-type promotion: bool < integer < float.
    fn kind_rank(self) -> u8 {
        match self {
            DType::Bool => 0,
            DType::I32 | DType::U32 => 1,
            DType::F32 => 2,
            DType::Key => 3,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The dtype (and weak-typedness) of `lhs op rhs`, following JAX's promotion lattice restricted
/// to the dtypes we have (x64 disabled): `int32 ∘ uint32 → int32`, integer ∘ float → float32,
/// bool ∘ anything → the other. A weakly typed operand (a Rust literal, like a Python scalar in
/// JAX) takes the other operand's dtype when its kind is not higher; the result is weak only
/// when both operands are.
///
/// Returns `None` for key dtypes, which do not take part in arithmetic.
pub(crate) fn promote(
    lhs: DType,
    lhs_weak: bool,
    rhs: DType,
    rhs_weak: bool,
) -> Option<(DType, bool)> {
    if lhs == DType::Key || rhs == DType::Key {
        return None;
    }
    let weak = lhs_weak && rhs_weak;
    if lhs_weak != rhs_weak {
        let (strong, weak_dtype) = if lhs_weak { (rhs, lhs) } else { (lhs, rhs) };
        if weak_dtype.kind_rank() <= strong.kind_rank() {
            return Some((strong, false));
        }
        // A weak float meeting a strong integer: float32, and JAX keeps it weakly typed.
        return Some((weak_dtype, true));
    }
    let dtype = if lhs == rhs {
        lhs
    } else if lhs.kind_rank() != rhs.kind_rank() {
        if lhs.kind_rank() > rhs.kind_rank() {
            lhs
        } else {
            rhs
        }
    } else {
        // int32 with uint32: int64 in JAX, canonicalised to int32 with x64 disabled.
        DType::I32
    };
    Some((dtype, weak))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_follows_jax_lattice() {
        assert_eq!(
            promote(DType::I32, false, DType::F32, false),
            Some((DType::F32, false))
        );
        assert_eq!(
            promote(DType::I32, false, DType::U32, false),
            Some((DType::I32, false))
        );
        assert_eq!(
            promote(DType::Bool, false, DType::U32, false),
            Some((DType::U32, false))
        );
        assert_eq!(promote(DType::Key, false, DType::U32, false), None);
    }

    #[test]
    fn weak_scalars_take_the_strong_dtype() {
        assert_eq!(
            promote(DType::F32, false, DType::I32, true),
            Some((DType::F32, false))
        );
        assert_eq!(
            promote(DType::I32, true, DType::I32, true),
            Some((DType::I32, true))
        );
        // jnp.arange(3) + 1.5 is float32 with weak_type=True
        assert_eq!(
            promote(DType::I32, false, DType::F32, true),
            Some((DType::F32, true))
        );
    }
}
