//! The conformance suite, one test per case, against the fast engine.

nnx_conformance::suite!(nnx_fast::Fast);
