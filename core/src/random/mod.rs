//! Random numbers bit-identical to JAX's default PRNG (threefry2x32, partitionable).
//!
//! [`threefry`] holds the hash and the key operations (`key`, `split`, `fold_in`, raw bits),
//! [`sampling`] the samplers built on them (`uniform`, `normal`, `randint`, `bernoulli`). Both
//! work on plain words and slices; `conformance/golden/PRNG.md` is their specification and
//! `core/tests/prng_vectors.rs` checks them against JAX's own output bit for bit.

pub mod sampling;
pub mod threefry;
