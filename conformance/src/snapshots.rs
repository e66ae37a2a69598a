//! insta snapshots owned by the conformance crate, so every engine compares its printed
//! structure and error messages against the same files (`conformance/src/snapshots/`).

/// Asserts that `text` matches the snapshot `name` (a test failure otherwise).
pub fn snapshot(name: &str, text: &str) {
    insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!(name, text);
    });
}
