//! Array sizes and buffer allocation: every element count is computed with overflow checks,
//! and buffers that may be too large for the machine are reserved fallibly, so a shape from
//! user input is an [`Error`], never a panic, a wrapped-around size or an abort.

use super::DType;
use crate::error::{Error, Result};

/// Buffers of at least this many bytes are reserved with `try_reserve` before an operation
/// computes them, so a size the allocator cannot provide is an `Err`. Smaller buffers are
/// allocated directly: failing to get one means the process is out of memory, which Rust
/// treats as fatal everywhere.
const CHECKED_BYTES: usize = 1 << 28;

/// The number of elements of an array of `shape` (1 for a scalar).
///
/// # Errors
/// [`Error::ArrayTooLarge`] when the product overflows `usize`.
pub(crate) fn element_count(shape: &[usize]) -> Result<usize> {
    if shape.contains(&0) {
        return Ok(0);
    }
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| too_large(shape))
}

/// The element count and the byte size of an array of `shape` and `dtype`.
///
/// # Errors
/// [`Error::ArrayTooLarge`] when either overflows, or the byte size exceeds `isize::MAX`
/// (the largest allocation Rust can describe).
pub(crate) fn byte_size(shape: &[usize], dtype: DType) -> Result<(usize, usize)> {
    let count = element_count(shape)?;
    count
        .checked_mul(dtype.size_in_bytes())
        .filter(|&bytes| isize::try_from(bytes).is_ok())
        .map(|bytes| (count, bytes))
        .ok_or_else(|| too_large(shape))
}

/// Checks, before a kernel allocates it, that the buffer of an array of `shape` and `dtype`
/// can exist: its size must be representable and, for large buffers (256 MiB and more), the
/// allocator must be able to reserve it. Engines call this before computing a result whose
/// size user input controls.
///
/// # Errors
/// [`Error::ArrayTooLarge`] or [`Error::AllocationFailed`].
///
/// ```
/// use nnx_core::{DType, tensor::check_allocation};
/// assert!(check_allocation(&[1024, 1024], DType::F32).is_ok());
/// assert!(check_allocation(&[1 << 32, 1 << 32], DType::F32).is_err()); // overflows
/// assert!(check_allocation(&[1 << 46], DType::F32).is_err()); // 256 TiB
/// ```
pub fn check_allocation(shape: &[usize], dtype: DType) -> Result<()> {
    if needs_probe(shape, dtype)? {
        probe(shape, dtype)?;
    }
    Ok(())
}

/// Whether an array of `shape` and `dtype` is large enough that [`check_allocation`] tries
/// to reserve its buffer (smaller ones are always allocatable).
///
/// # Errors
/// [`Error::ArrayTooLarge`] when the size overflows.
pub(crate) fn needs_probe(shape: &[usize], dtype: DType) -> Result<bool> {
    Ok(byte_size(shape, dtype)?.1 >= CHECKED_BYTES)
}

/// Tries to reserve the buffer of an array of `shape` and `dtype`.
///
/// # Errors
/// [`Error::ArrayTooLarge`] or [`Error::AllocationFailed`].
pub(crate) fn probe(shape: &[usize], dtype: DType) -> Result<()> {
    let (_, bytes) = byte_size(shape, dtype)?;
    if bytes >= CHECKED_BYTES {
        let mut probe: Vec<u8> = Vec::new();
        probe
            .try_reserve_exact(bytes)
            .map_err(|_| allocation_failed(shape, dtype, bytes))?;
    }
    Ok(())
}

/// An empty vector with room for every element of an array of `shape` and `dtype`, reserved
/// fallibly.
///
/// # Errors
/// [`Error::ArrayTooLarge`] or [`Error::AllocationFailed`].
pub(crate) fn try_vec<T>(shape: &[usize], dtype: DType) -> Result<Vec<T>> {
    let (count, bytes) = byte_size(shape, dtype)?;
    let mut data = Vec::new();
    data.try_reserve_exact(count)
        .map_err(|_| allocation_failed(shape, dtype, bytes))?;
    Ok(data)
}

/// A vector holding `value` once per element of an array of `shape` and `dtype`, allocated
/// fallibly.
///
/// # Errors
/// As [`try_vec`].
pub(crate) fn try_filled<T: Clone>(shape: &[usize], dtype: DType, value: T) -> Result<Vec<T>> {
    let mut data = try_vec(shape, dtype)?;
    let count = element_count(shape)?;
    data.resize(count, value);
    Ok(data)
}

fn too_large(shape: &[usize]) -> Error {
    Error::ArrayTooLarge {
        shape: shape.to_vec(),
    }
}

fn allocation_failed(shape: &[usize], dtype: DType, bytes: usize) -> Error {
    Error::AllocationFailed {
        shape: shape.to_vec(),
        dtype,
        bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn counts_are_checked() {
        assert_eq!(element_count(&[]).unwrap(), 1);
        assert_eq!(element_count(&[2, 3]).unwrap(), 6);
        assert_eq!(element_count(&[1 << 40, 1 << 40, 0]).unwrap(), 0);
        let err = element_count(&[1 << 32, 1 << 32]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Resource);
        // The count fits, the bytes do not.
        assert!(byte_size(&[1 << 62], DType::F32).is_err());
        assert!(byte_size(&[usize::MAX / 2 + 1], DType::Bool).is_err());
    }

    #[test]
    fn impossible_allocations_are_errors() {
        // 256 TiB: beyond any machine's address space, so even an overcommitting allocator
        // refuses it.
        let err = check_allocation(&[1 << 46], DType::F32).unwrap_err();
        assert!(matches!(err, Error::AllocationFailed { bytes, .. } if bytes == 1 << 48));
        assert!(try_vec::<f32>(&[1 << 46], DType::F32).is_err());
        assert!(check_allocation(&[1024, 1024], DType::F32).is_ok());
        assert!(try_vec::<f32>(&[3, 4], DType::F32).unwrap().capacity() >= 12);
        assert_eq!(try_filled(&[3, 4], DType::I32, 7i32).unwrap(), vec![7; 12]);
    }
}
