//! `nnx-benches`: criterion benchmarks (run with `cargo bench -p nnx-benches`).
