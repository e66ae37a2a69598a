//! Golden data computed by real Flax/JAX, copied into `conformance/golden/`.

use std::sync::OnceLock;

use nnx_core::Tensor;
use serde_json::Value as Json;

use crate::Failure;

/// `conformance/golden/seed_guide.json`: every observable of the transforms guide.
pub fn golden() -> &'static Json {
    static GOLDEN: OnceLock<Json> = OnceLock::new();
    GOLDEN.get_or_init(|| {
        let text = include_str!("../golden/seed_guide.json");
        serde_json::from_str(text).unwrap_or(Json::Null)
    })
}

/// Checks a tensor against a golden `{shape, dtype, values}` entry: same shape and dtype, and
/// values within 1e-5 when the entry has them.
///
/// # Errors
/// A [`Failure`] naming the entry and the first differences.
pub fn assert_close(name: &str, actual: &Tensor, expected: &Json) -> Result<(), Failure> {
    let shape: Vec<usize> = expected["shape"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Json::as_u64)
                .map(|d| d as usize)
                .collect()
        })
        .unwrap_or_default();
    if actual.shape() != shape.as_slice() {
        return Err(Failure(format!(
            "{name}: shape {:?}, expected {shape:?}",
            actual.shape()
        )));
    }
    if let Some(dtype) = expected["dtype"].as_str()
        && actual.dtype().name() != dtype
    {
        return Err(Failure(format!(
            "{name}: dtype {}, expected {dtype}",
            actual.dtype()
        )));
    }
    let Some(values) = expected["values"].as_array() else {
        return Ok(());
    };
    let got = actual.to_f64_vec().map_err(Failure::from)?;
    let bad: Vec<String> = got
        .iter()
        .zip(values.iter().filter_map(Json::as_f64))
        .enumerate()
        .filter(|(_, (g, e))| (*g - *e).abs() > 1e-5 + 1e-5 * e.abs())
        .take(5)
        .map(|(i, (g, e))| format!("[{i}] {g} != {e}"))
        .collect();
    if bad.is_empty() && got.len() == values.len() {
        Ok(())
    } else {
        Err(Failure(format!(
            "{name}: values differ: {}",
            bad.join(", ")
        )))
    }
}
