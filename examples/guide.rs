//! The transforms guide, section by section (object-graph part for now).
fn main() {}
