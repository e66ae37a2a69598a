//! Random numbers bit-identical to JAX's default PRNG (threefry2x32, partitionable), and
//! Flax NNX's `Rngs` streams.
//!
//! - Keys are arrays of dtype [`DType::Key`](crate::DType::Key): [`key`], [`wrap_key_data`],
//!   [`key_data`], [`split`] / [`split_shape`], [`fold_in`] (and [`fold_in_each`] for key
//!   arrays).
//! - Samplers: [`bits`], [`uniform`] / [`uniform_range`], [`normal`], [`randint`],
//!   [`bernoulli`]. Like JAX, they take a single key; each is a [`RandomOp`] (a pure function
//!   of a key and static parameters) that transforms can record as a primitive.
//! - [`Rngs`] and [`RngStream`]: named streams holding an `RngKey` and an `RngCount`
//!   Variable; drawing returns `fold_in(key, count)` and increments the count.
//! - [`split_rngs`] / [`SplitRngs`] and [`fork_rngs`]: split or fork the streams of a graph
//!   for the duration of a call, restoring them afterwards.
//!
//! Underneath, [`threefry`] holds the hash and the key operations on plain words, and
//! [`sampling`] the samplers on slices. `conformance/golden/PRNG.md` is their specification
//! and `core/tests/prng_vectors.rs` checks them against JAX's own output bit for bit.
//!
//! ```
//! use nnx_core::random::{self, Rngs};
//! # fn main() -> nnx_core::Result<()> {
//! // The seed guide's weights: uniform(key(0), (10, 2, 3)).
//! let kernel = random::uniform(&random::key(0), &[10, 2, 3])?;
//! assert_eq!(kernel.shape(), &[10, 2, 3]);
//!
//! let rngs = Rngs::builder().stream("noise", 0).build()?;
//! let k = rngs.next_key("noise")?; // fold_in(key(0), 0); the count is now 1
//! let noise = random::normal(&k, &[3])?;
//! assert_eq!(noise.shape(), &[3]);
//! # Ok(())
//! # }
//! ```

mod keys;
mod primitive;
mod rngs;
mod samplers;
pub mod sampling;
mod split_rngs;
mod stream;
pub mod threefry;
mod walk;

pub use keys::{
    Splits, fold_in, fold_in_each, key, key_data, key_from_seeds, split, split_into, split_shape,
    wrap_key_data,
};
pub(crate) use keys::{check_fold_in_each_shapes, fold_in_each_array, seed_keys_array};
pub use primitive::RandomOp;
pub use rngs::{DEFAULT_STREAM, RNGS_TYPE, Rngs, RngsBuilder};
pub use samplers::{bernoulli, bits, normal, randint, truncated_normal, uniform, uniform_range};
pub use split_rngs::{
    SplitBackups, SplitRngs, fork_rngs, fork_rngs_scoped, split_rngs, split_rngs_scoped,
};
pub use stream::{RNG_STREAM_TYPE, RngSeed, RngStream};
pub use walk::{ReseedPolicy, reseed, rng_streams};
