//! The multi-process programs under `mpirun -np 2` on this machine (loopback): run with
//! `cargo test -p nnx-mpi --features mpi`.
#![cfg(feature = "mpi")]

use std::process::Command;

/// `mpirun -np 2 program`, allowed as root (CI runs as root) and on two cores.
fn mpirun(program: &str) -> std::process::Output {
    Command::new("mpirun")
        .args(["--oversubscribe", "-np", "2", program])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .expect("mpirun runs (install openmpi-bin)")
}

#[test]
fn data_parallel_training_over_two_processes_matches_one() {
    let out = mpirun(env!("CARGO_BIN_EXE_nnx-mpi-data-parallel"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for rank in 0..2 {
        assert!(
            stdout.contains(&format!("rank {rank} of 2: parameters agree")),
            "{stdout}"
        );
    }
}
