//! Compile-fail tests: wrong closure signatures and `#[derive(Module)]` misuse fail to
//! compile with messages that say what to write instead (`tests/compile_fail/*.stderr`).
//! `TRYBUILD=overwrite cargo test -p nnx-core --test compile_fail` regenerates the expected
//! messages after a deliberate change.

#[test]
fn misuse_fails_to_compile_with_a_helpful_message() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/compile_fail/*.rs");
}
