//! Bit-exact port of JAX's default PRNG, `threefry2x32`, and its key operations.
//!
//! The behaviour is that of jax 0.10.2 with the default configuration
//! (`jax_enable_x64=False`, `jax_threefry_partitionable=True`,
//! `jax_default_prng_impl='threefry2x32'`), as written down in
//! `conformance/golden/PRNG.md` (sections 1 to 5).
//!
//! A key is the raw key data `[k0, k1]` (what `jax.random.key_data(key)` returns).
//! All integer arithmetic is on `u32` and wraps modulo 2^32. Shapes are flattened:
//! every function that takes an element count `n` produces the values for the
//! row-major (C-order) indices `0..n` of the requested shape, and a scalar shape `()`
//! has exactly one element, with index 0. Because each element depends only on its
//! own index, a prefix of a longer request gives the same values.
//!
//! None of these functions panics. The only failure mode is the allocation of the
//! returned `Vec`, exactly as for any other `Vec` of that length.

/// The Threefry key-schedule parity constant (`0x1BD11BDA`).
const KS_PARITY: u32 = 0x1BD1_1BDA;

/// Rotation amounts of the two alternating groups of four rounds.
const ROTATIONS: [[u32; 4]; 2] = [[13, 15, 26, 6], [17, 29, 16, 24]];

/// Hashes one counter block with the Threefry-2x32 block cipher (20 rounds).
///
/// This is JAX's `_threefry2x32_lowering` applied to a single pair: `key = (k0, k1)`,
/// `counter = (x0, x1)`, result `(y0, y1)`. For example the Random123 known answer is
/// `threefry2x32([0x13198a2e, 0x03707344], [0x243f6a88, 0x85a308d3])
/// == [0xc4923a9c, 0x483df7a0]`.
#[must_use]
pub fn threefry2x32(key: [u32; 2], counter: [u32; 2]) -> [u32; 2] {
    let ks = [key[0], key[1], key[0] ^ key[1] ^ KS_PARITY];
    let mut x0 = counter[0].wrapping_add(ks[0]);
    let mut x1 = counter[1].wrapping_add(ks[1]);
    for i in 0..5_usize {
        for &r in &ROTATIONS[i % 2] {
            x0 = x0.wrapping_add(x1);
            x1 = x1.rotate_left(r) ^ x0;
        }
        x0 = x0.wrapping_add(ks[(i + 1) % 3]);
        // `i + 1` is at most 5, so the cast is lossless.
        x1 = x1.wrapping_add(ks[(i + 2) % 3]).wrapping_add(i as u32 + 1);
    }
    [x0, x1]
}

/// JAX's array wrapper `threefry_2x32(key, counts)` over a flat slice of counters.
///
/// The counters are padded with one `0` if their number is odd, split into a first and a
/// second half, and each pair `(first[j], second[j])` is hashed with [`threefry2x32`]. The
/// output is all the `y0` words followed by all the `y1` words, with the padding element
/// removed, so it has the same length as `counts`. `fold_in` is this function applied
/// to `[0, data]`.
#[must_use]
pub fn threefry_2x32_flat(key: [u32; 2], counts: &[u32]) -> Vec<u32> {
    let len = counts.len();
    let half = len.div_ceil(2);
    let at = |j: usize| counts.get(j).copied().unwrap_or(0);
    let mut y0 = Vec::with_capacity(half);
    let mut y1 = Vec::with_capacity(half);
    for j in 0..half {
        let [a, b] = threefry2x32(key, [at(j), at(j + half)]);
        y0.push(a);
        y1.push(b);
    }
    y0.extend(y1);
    y0.truncate(len);
    y0
}

/// The raw key data of `jax.random.key(seed)` / `jax.random.PRNGKey(seed)` with x64 off.
///
/// JAX first converts a Python `int` with `np.int64(seed)`, which raises `OverflowError`
/// for seeds outside `[-2^63, 2^63)`. Taking an `i64` makes that check the caller's
/// concern: a caller that accepts arbitrary-precision integers must reject values that
/// do not fit in `i64` itself. With x64 off the seed is then truncated to int32, so the
/// result is always `[0, seed mod 2^32]`: `seed_key(42) == [0, 42]`,
/// `seed_key(-1) == [0, 0xFFFF_FFFF]` and `seed_key(2^32 + 5) == seed_key(5)`.
#[must_use]
pub fn seed_key(seed: i64) -> [u32; 2] {
    // Truncation to the low 32 bits is the documented behaviour.
    [0, seed as u32]
}

/// `jax.random.fold_in(key, data)`: the key `threefry2x32(key, [0, data])`.
///
/// JAX converts `data` with `jnp.asarray(data, uint32)`: a Python `int` outside
/// `[0, 2^32)` raises `OverflowError` (the caller's concern), while a traced int32 wraps,
/// so a caller holding a signed value `d` should pass `d as u32`.
#[must_use]
pub fn fold_in(key: [u32; 2], data: u32) -> [u32; 2] {
    threefry2x32(key, [0, data])
}

/// The Threefry counter of the element with row-major index `i`: a 64-bit iota split
/// into its high and low words (`prng.iota_2x32_shape`).
fn counter_of(i: usize) -> [u32; 2] {
    // `usize` is at most 64 bits wide on every supported target, so this is lossless,
    // and the two halves are extracted without loss as well.
    let i = i as u64;
    [(i >> 32) as u32, i as u32]
}

/// Hashes the counters of the row-major indices `0..n`.
fn hash_iota(key: [u32; 2], n: usize) -> impl ExactSizeIterator<Item = [u32; 2]> {
    (0..n).map(move |i| threefry2x32(key, counter_of(i)))
}

/// `jax.random.split(key, shape)` with `n` = the number of elements of `shape`.
///
/// The key with row-major index `i` is `threefry2x32(key, [i >> 32, i & 0xFFFF_FFFF])`,
/// so a tuple shape such as `(2, 3)` gives `split(key, 6)` in row-major order, and
/// `split(key, n)[i] == fold_in(key, i)` for every `i < 2^32`.
#[must_use]
pub fn split(key: [u32; 2], n: usize) -> Vec<[u32; 2]> {
    hash_iota(key, n).collect()
}

/// `jax.random.bits(key, shape, uint32)` with `n` = the number of elements of `shape`.
///
/// Element `i` is `y0 ^ y1` where `[y0, y1] = threefry2x32(key, [i >> 32, i & 0xFFFF_FFFF])`.
/// A scalar shape is `n = 1`.
#[must_use]
pub fn random_bits_u32(key: [u32; 2], n: usize) -> Vec<u32> {
    hash_iota(key, n).map(|[y0, y1]| y0 ^ y1).collect()
}

/// The words of [`random_bits_u32`], produced lazily: the samplers consume them one at a
/// time instead of materialising an intermediate `Vec`.
pub fn random_bits_u32_iter(key: [u32; 2], n: usize) -> impl ExactSizeIterator<Item = u32> {
    hash_iota(key, n).map(|[y0, y1]| y0 ^ y1)
}

/// `jax.random.bits(key, shape, uint8)`: the low 8 bits of [`random_bits_u32`].
#[must_use]
pub fn random_bits_u8(key: [u32; 2], n: usize) -> Vec<u8> {
    // Keeping the low bits is the documented behaviour.
    hash_iota(key, n).map(|[y0, y1]| (y0 ^ y1) as u8).collect()
}

/// `jax.random.bits(key, shape, uint16)`: the low 16 bits of [`random_bits_u32`].
#[must_use]
pub fn random_bits_u16(key: [u32; 2], n: usize) -> Vec<u16> {
    // Keeping the low bits is the documented behaviour.
    hash_iota(key, n).map(|[y0, y1]| (y0 ^ y1) as u16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threefry_known_answers() {
        assert_eq!(
            threefry2x32([0x1319_8a2e, 0x0370_7344], [0x243f_6a88, 0x85a3_08d3]),
            [0xc492_3a9c, 0x483d_f7a0]
        );
        assert_eq!(threefry2x32([0, 0], [0, 0]), [0x6b20_0159, 0x99ba_4efe]);
        assert_eq!(
            threefry2x32([u32::MAX; 2], [u32::MAX; 2]),
            [0x1cb9_96fc, 0xbb00_2be7]
        );
    }

    #[test]
    fn flat_wrapper_pairs_halves_and_pads() {
        let key = [0x1319_8a2e, 0x0370_7344];
        assert_eq!(
            threefry_2x32_flat(key, &[0x243f_6a88, 0x85a3_08d3]),
            vec![0xc492_3a9c, 0x483d_f7a0]
        );
        assert!(threefry_2x32_flat(key, &[]).is_empty());
        // Odd length: [a, b, c] is padded to [a, b, c, 0] and hashes (a, c), (b, 0).
        let (a, b, c) = (3, 5, 7);
        let [p0, p1] = threefry2x32(key, [a, c]);
        let [q0, _] = threefry2x32(key, [b, 0]);
        assert_eq!(threefry_2x32_flat(key, &[a, b, c]), vec![p0, q0, p1]);
        assert_eq!(threefry_2x32_flat(key, &[0, 9]), fold_in(key, 9).to_vec());
    }

    #[test]
    fn seeds_follow_x64_off_rules() {
        assert_eq!(seed_key(0), [0, 0]);
        assert_eq!(seed_key(42), [0, 42]);
        assert_eq!(seed_key(-1), [0, 0xFFFF_FFFF]);
        assert_eq!(seed_key((1 << 32) + 5), [0, 5]);
        assert_eq!(seed_key(i64::MAX), [0, 0xFFFF_FFFF]);
        assert_eq!(seed_key(i64::MIN), [0, 0]);
    }

    #[test]
    fn nnx_stream_keys_from_the_spec() {
        let k = seed_key(0);
        assert_eq!(fold_in(k, 0), [0x6b20_0159, 0x99ba_4efe]);
        assert_eq!(fold_in(k, 1), [0x375f_238f, 0xcddb_151d]);
        assert_eq!(fold_in(k, 2), [0xf71f_4ea9, 0xa20e_4081]);
    }

    #[test]
    fn split_equals_fold_in_and_counter_layout() {
        let key = seed_key(42);
        let keys = split(key, 10);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(*k, fold_in(key, i as u32));
        }
        assert!(split(key, 0).is_empty());
        assert_eq!(counter_of(0), [0, 0]);
        assert_eq!(counter_of(0xFFFF_FFFF), [0, 0xFFFF_FFFF]);
        #[cfg(target_pointer_width = "64")]
        assert_eq!(counter_of(0x1_0000_0002), [1, 2]);
    }

    #[test]
    fn bits_prefix_and_narrow_widths() {
        let key = seed_key(1);
        let long = random_bits_u32(key, 7);
        assert_eq!(random_bits_u32(key, 3), long[..3].to_vec());
        assert!(random_bits_u32(key, 0).is_empty());
        let [y0, y1] = threefry2x32(key, [0, 4]);
        assert_eq!(long[4], y0 ^ y1);
        let b8 = random_bits_u8(key, 7);
        let b16 = random_bits_u16(key, 7);
        for i in 0..7 {
            assert_eq!(u32::from(b8[i]), long[i] & 0xFF);
            assert_eq!(u32::from(b16[i]), long[i] & 0xFFFF);
        }
    }
}
