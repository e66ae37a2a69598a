//! Checkpoints in safetensors, with Flax's flat paths (`hidden/kernel`, `layers/0/bias`)
//! as keys and the arrays' own dtypes: save a State (or a filtered part of it), load a file
//! as a State, restore a model from one — every path, shape and dtype checked first, every
//! problem reported at once, nothing changed on error.
//!
//! ```
//! use nnx_core::{Result, Rngs, Tensor, graph, transforms::eval_shape};
//! use nnx_nn::{Linear, checkpoint};
//! # fn main() -> Result<()> {
//! let trained = Linear::new(3, 2, &Rngs::new(0)?)?;
//! let bytes = checkpoint::to_bytes(&graph::state(&trained))?;
//! let fresh = Linear::new(3, 2, &Rngs::new(1)?)?;
//! checkpoint::restore(&fresh, &checkpoint::from_bytes(&bytes)?, None)?;
//! assert!(fresh.kernel.value().identical(&trained.kernel.value()));
//!
//! // Or into an abstract model (`nnx.eval_shape`): its initialisers never run.
//! let shaped = eval_shape(|| Linear::new(3, 2, &Rngs::new(1)?)).call(())?;
//! assert!(shaped.kernel.value().is_abstract());
//! checkpoint::restore(&shaped, &checkpoint::from_bytes(&bytes)?, None)?;
//! assert!(shaped.kernel.value().identical(&trained.kernel.value()));
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use nnx_core::graph::{self, Filter, GraphValue, Leaf, State};
use nnx_core::{Array, DType, Error, Path, Result, Tensor};

/// The metadata entry that marks a key array (stored as its uint32 key data, a trailing
/// axis of 2): `"nnx.key/<path>": "key<fry>"`.
const KEY_MARK: &str = "nnx.key/";

fn failure(reason: impl std::fmt::Display) -> Error {
    Error::Checkpoint {
        reason: reason.to_string(),
    }
}

/// One array as safetensors bytes: its dtype, shape and little-endian data.
fn encode(array: &Array) -> Result<(Dtype, Vec<usize>, Vec<u8>)> {
    let shape = array.shape().to_vec();
    Ok(match array.dtype() {
        DType::F32 => (
            Dtype::F32,
            shape,
            le(array.as_slice::<f32>()?, f32::to_le_bytes),
        ),
        DType::I32 => (
            Dtype::I32,
            shape,
            le(array.as_slice::<i32>()?, i32::to_le_bytes),
        ),
        DType::U32 => (
            Dtype::U32,
            shape,
            le(array.as_slice::<u32>()?, u32::to_le_bytes),
        ),
        DType::Bool => (
            Dtype::BOOL,
            shape,
            array
                .as_slice::<bool>()?
                .iter()
                .map(|&b| u8::from(b))
                .collect(),
        ),
        DType::Key => {
            let mut shape = shape;
            shape.push(2);
            let words: Vec<u32> = array.keys()?.iter().flatten().copied().collect();
            (Dtype::U32, shape, le(&words, u32::to_le_bytes))
        }
    })
}

fn le<T: Copy, const N: usize>(data: &[T], bytes: fn(T) -> [u8; N]) -> Vec<u8> {
    data.iter().flat_map(|&v| bytes(v)).collect()
}

/// A State's arrays as a safetensors file: one entry per leaf, keyed by its flat path.
///
/// # Errors
/// [`Error::Checkpoint`] when serialisation fails; a traced array (save outside
/// transforms).
pub fn to_bytes(state: &State) -> Result<Vec<u8>> {
    let mut encoded = Vec::new();
    let mut metadata = HashMap::new();
    for (path, leaf) in state.iter() {
        let array = leaf.value().concrete()?.clone();
        let name = path.slashed();
        if array.dtype() == DType::Key {
            metadata.insert(format!("{KEY_MARK}{name}"), "key<fry>".to_owned());
        }
        encoded.push((name, encode(&array)?));
    }
    let views = (encoded.iter())
        .map(|(name, (dtype, shape, data))| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|view| (name.as_str(), view))
                .map_err(failure)
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = (!metadata.is_empty()).then_some(metadata);
    safetensors::tensor::serialize(views, metadata).map_err(failure)
}

/// Writes [`to_bytes`] to `path`.
///
/// # Errors
/// As [`to_bytes`]; [`Error::Checkpoint`] for an I/O failure.
pub fn save(state: &State, path: impl AsRef<std::path::Path>) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, to_bytes(state)?)
        .map_err(|e| failure(format!("writing {}: {e}", path.display())))
}

fn decode<T, const N: usize>(data: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N)
        .map(|c| {
            let mut word = [0u8; N];
            word.copy_from_slice(c);
            from(word)
        })
        .collect()
}

/// A safetensors file as a State of arrays keyed by their paths.
///
/// # Errors
/// [`Error::Checkpoint`] for truncated or corrupt bytes, a key that is not a path, or a
/// dtype other than float32, int32, uint32 and bool.
pub fn from_bytes(bytes: &[u8]) -> Result<State> {
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(failure)?;
    let keys: Vec<String> = (metadata.metadata().iter().flatten())
        .filter_map(|(k, _)| k.strip_prefix(KEY_MARK).map(str::to_owned))
        .collect();
    let file = SafeTensors::deserialize(bytes).map_err(failure)?;
    let mut state = State::new();
    let mut entries = file.tensors();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, view) in entries {
        let path =
            Path::parse(&name).map_err(|_| failure(format!("the key '{name}' is not a path")))?;
        let shape = view.shape().to_vec();
        let data = view.data();
        let array = match view.dtype() {
            Dtype::F32 => Array::from_vec(&shape, decode(data, f32::from_le_bytes))?,
            Dtype::I32 => Array::from_vec(&shape, decode(data, i32::from_le_bytes))?,
            Dtype::U32 if keys.contains(&name) => {
                let words: Vec<u32> = decode(data, u32::from_le_bytes);
                let key_shape = match shape.split_last() {
                    Some((2, rest)) => rest.to_vec(),
                    _ => {
                        return Err(failure(format!(
                            "'{name}' is marked a key array but its last axis is not 2"
                        )));
                    }
                };
                let keys = words.chunks_exact(2).map(|w| [w[0], w[1]]).collect();
                Array::from_keys(&key_shape, keys)?
            }
            Dtype::U32 => Array::from_vec(&shape, decode(data, u32::from_le_bytes))?,
            Dtype::BOOL => {
                Array::from_vec(&shape, data.iter().map(|&b| b != 0).collect::<Vec<bool>>())?
            }
            other => {
                return Err(failure(format!(
                    "'{name}' has dtype {other:?}; float32, int32, uint32 and bool are supported"
                )));
            }
        };
        state.insert(path, Leaf::Array(Tensor::from(array)));
    }
    Ok(state)
}

/// Reads `path` with [`from_bytes`].
///
/// # Errors
/// As [`from_bytes`]; [`Error::Checkpoint`] for an I/O failure.
pub fn load(path: impl AsRef<std::path::Path>) -> Result<State> {
    let path = path.as_ref();
    let bytes =
        std::fs::read(path).map_err(|e| failure(format!("reading {}: {e}", path.display())))?;
    from_bytes(&bytes)
}

/// Writes `checkpoint`'s arrays into `model`'s Variables: all of them (`filter` `None`:
/// the checkpoint must hold exactly the model's leaves), or those `filter` selects (a
/// partial restore; other entries of the checkpoint are ignored). Every path, shape and
/// dtype is checked before anything is written; all problems are reported together.
///
/// # Errors
/// [`Error::CheckpointMismatch`] listing every missing entry, unexpected entry (full
/// restore), shape and dtype mismatch; the model is unchanged.
pub fn restore(model: &impl GraphValue, checkpoint: &State, filter: Option<&Filter>) -> Result<()> {
    let target = match filter {
        Some(f) => graph::state_by(model, f),
        None => graph::state(model),
    };
    let mut problems = Vec::new();
    let mut writes = Vec::new();
    for (path, leaf) in target.iter() {
        let name = path.slashed();
        let Leaf::Variable(variable) = leaf else {
            continue;
        };
        let Some(saved) = checkpoint.get(path) else {
            problems.push(format!("missing: '{name}'"));
            continue;
        };
        let (have, want) = (saved.value(), variable.value());
        if have.dtype() != want.dtype() {
            problems.push(format!(
                "dtype: '{name}' is {} in the checkpoint, {} in the model",
                have.dtype(),
                want.dtype()
            ));
        } else if have.shape() != want.shape() {
            problems.push(format!(
                "shape: '{name}' is {:?} in the checkpoint, {:?} in the model",
                have.shape(),
                want.shape()
            ));
        } else {
            writes.push((variable.clone(), have));
        }
    }
    if filter.is_none() {
        for (path, _) in checkpoint.iter() {
            if target.get(path).is_none() {
                problems.push(format!(
                    "unexpected: '{}' (not in the model)",
                    path.slashed()
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::CheckpointMismatch { problems });
    }
    for (variable, value) in writes {
        variable.set_value(value)?;
    }
    Ok(())
}
