//! The engine-generic test runner: outcomes, the case list, and the `suite!` macro.

use std::fmt;

use nnx_core::Engine;

/// What a case concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The engine behaved as specified.
    Pass,
    /// The case does not apply to this engine (a missing capability), with the reason.
    Skip(String),
}

/// Why a case failed: a readable description of the difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<nnx_core::Error> for Failure {
    fn from(e: nnx_core::Error) -> Failure {
        Failure(format!("unexpected error: {e}"))
    }
}

/// A case's name with what it concluded.
pub type Named<T> = (&'static str, T);

/// The result of one case.
pub type CaseResult = Result<Outcome, Failure>;

/// One engine-generic case.
#[derive(Clone, Copy)]
pub struct Case {
    /// The case's name (also the name of its `#[test]`).
    pub name: &'static str,
    /// Runs the case against an engine.
    pub run: fn(&dyn Engine) -> CaseResult,
}

/// Fails the case with a formatted message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::Failure(format!($($msg)+)));
        }
    };
}

/// Runs every case against `engine` and reports all failures at the end (for people who
/// want one test instead of one per case). `NNX_CONFORMANCE_FILTER` selects cases whose
/// name contains it.
///
/// # Errors
/// Every failing case, with its message.
pub fn run_all(engine: &dyn Engine) -> Result<Vec<Named<Outcome>>, Vec<Named<Failure>>> {
    let filter = std::env::var("NNX_CONFORMANCE_FILTER").unwrap_or_default();
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    for case in crate::cases::ALL
        .iter()
        .filter(|c| c.name.contains(&filter))
    {
        match (case.run)(engine) {
            Ok(outcome) => passed.push((case.name, outcome)),
            Err(failure) => failed.push((case.name, failure)),
        }
    }
    if failed.is_empty() {
        Ok(passed)
    } else {
        Err(failed)
    }
}

/// Runs one case by name as a test: panics with the failure (the test harness's way to fail).
pub fn run_case(engine: &dyn Engine, name: &str) {
    let Some(case) = crate::cases::ALL.iter().find(|c| c.name == name) else {
        panic!("no conformance case named {name}");
    };
    match (case.run)(engine) {
        Ok(Outcome::Pass) => {}
        Ok(Outcome::Skip(reason)) => eprintln!("skipped {name}: {reason}"),
        Err(failure) => panic!("{} failed on engine {}:\n{failure}", name, engine.name()),
    }
}

/// Expands to one `#[test]` per conformance case, run against the given engine:
/// `nnx_conformance::suite!(nnx_reference::Reference);`
#[macro_export]
macro_rules! suite {
    ($engine:expr) => {
        $crate::for_each_case!($crate::__suite_tests, $engine);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __suite_tests {
    ($engine:expr; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::run_case(&$engine, stringify!($name));
            }
        )*
    };
}
