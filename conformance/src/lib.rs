//! `nnx-conformance`: engine-independent checks of the NNX model.
#![forbid(unsafe_code)]
