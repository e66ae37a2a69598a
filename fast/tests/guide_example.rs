//! The guide example's whole output, snapshotted: what `cargo run --example guide` prints.

#[path = "../../examples/guide.rs"]
mod guide;

#[test]
fn guide_example_prints_every_section() {
    let mut out = String::new();
    guide::run(&mut out).expect("the guide runs");
    insta::assert_snapshot!(out);
}
