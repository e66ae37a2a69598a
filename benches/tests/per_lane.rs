//! No conformance case and no benchmark workload makes `Fast` run an equation lane by lane:
//! every `vmap` they contain runs as batched kernels (the batching rules cover every
//! primitive they use, nested `call`, `vmap` and `scan` included).

use nnx_benches::anchors::workloads;
use nnx_fast::Fast;

/// One test: the counter is process-wide.
#[test]
fn no_conformance_case_or_bench_workload_runs_lane_by_lane() {
    let mut fell_back = Vec::new();
    // The generated programs draw random numbers from batched keys on purpose; they are
    // checked for agreement (between engines, between derivatives), not for the absence of
    // the fallback.
    for case in nnx_conformance::cases::ALL
        .iter()
        .filter(|c| !c.name.starts_with("differential") && !c.name.starts_with("generated"))
    {
        let before = Fast::per_lane_runs();
        let _ = (case.run)(&Fast);
        if Fast::per_lane_runs() != before {
            fell_back.push(case.name.to_string());
        }
    }
    let all = workloads(&Fast, |_| true).expect("the workloads build");
    for mut w in all {
        let before = Fast::per_lane_runs();
        (w.run)().expect("the workload runs");
        if Fast::per_lane_runs() != before {
            fell_back.push(format!("bench workload {}", w.key));
        }
    }
    assert!(fell_back.is_empty(), "ran lane by lane: {fell_back:?}");
}
