//! What the golden tests share: reading the `{shape, bits}` entries (float32 bit patterns)
//! and integer lists of the golden JSON files.
#![allow(dead_code)]

use nnx_core::Tensor;
use serde_json::Value as Json;

/// The shape and float32 values of a `{shape, bits}` entry.
pub fn floats(entry: &Json) -> (Vec<usize>, Vec<f32>) {
    let shape = entry["shape"].as_array().expect("shape").iter();
    let shape = shape.map(|d| d.as_u64().expect("dim") as usize).collect();
    let bits = entry["bits"].as_array().expect("bits").iter();
    let values = bits
        .map(|b| f32::from_bits(b.as_u64().expect("bits") as u32))
        .collect();
    (shape, values)
}

/// A `{shape, bits}` entry as a tensor.
pub fn tensor(entry: &Json) -> Tensor {
    let (shape, values) = floats(entry);
    Tensor::from_vec(&shape, values).expect("a golden array")
}

/// A list of integers as an int32 vector.
pub fn ints(entry: &Json) -> Tensor {
    let values: Vec<i32> = (entry.as_array().expect("ints").iter())
        .map(|x| x.as_i64().expect("int") as i32)
        .collect();
    Tensor::from_slice(&values)
}
