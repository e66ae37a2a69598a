//! The conformance suite, one test per case, against the reference engine.

nnx_conformance::suite!(nnx_reference::Reference);

/// The same cases through the single-test runner, which reports every failure at once.
#[test]
fn every_case_passes_through_run_all() {
    if let Err(failures) = nnx_conformance::run_all(&nnx_reference::Reference) {
        let report: Vec<String> = failures.iter().map(|(n, f)| format!("{n}: {f}")).collect();
        panic!("{}", report.join("\n"));
    }
}
