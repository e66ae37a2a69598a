//! The error type's kinds and messages.

use super::*;

#[test]
fn internal_errors_have_their_own_kind_and_ask_for_a_report() {
    let err = Error::Internal {
        what: "trace stack is empty".into(),
    };
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert_eq!(
        err.to_string(),
        "internal error: trace stack is empty (a defect in the library; please report it)"
    );
    assert_eq!(Error::internal("x").kind(), ErrorKind::Internal);
    assert_eq!(Error::malformed_program("x").kind(), ErrorKind::Program);
}

#[test]
fn value_errors_name_what_was_expected_and_found() {
    let err = Error::WrongValueKind {
        expected: "an array",
        found: "a 'Model' object".into(),
    };
    assert_eq!(err.kind(), ErrorKind::Value);
    assert_eq!(err.to_string(), "expected an array, got a 'Model' object");

    let err = Error::LeafNotVariable {
        path: Path::from(["sub", "kernel"]),
    };
    assert_eq!(err.kind(), ErrorKind::Value);
    assert_eq!(
        err.to_string(),
        "the leaf at ('sub', 'kernel') is a raw array, not a Variable"
    );

    let named = Error::MalformedRngStream {
        tag: Some("noise".into()),
        problem: "its count holds float32 data, not uint32".into(),
    };
    assert_eq!(named.kind(), ErrorKind::Value);
    assert_eq!(
        named.to_string(),
        "malformed RngStream 'noise': its count holds float32 data, not uint32"
    );
    let unnamed = Error::MalformedRngStream {
        tag: None,
        problem: "its tag is not a static string".into(),
    };
    assert_eq!(
        unnamed.to_string(),
        "malformed RngStream: its tag is not a static string"
    );
}

#[test]
fn a_non_scalar_loss_is_a_shape_error_and_a_non_float_one_a_dtype_error() {
    let vector = Error::GradLossNotScalar {
        dtype: DType::F32,
        shape: vec![2],
    };
    assert_eq!(vector.kind(), ErrorKind::Shape);
    assert_eq!(
        vector.to_string(),
        "grad requires a real scalar output (float32, shape ()), got float32 of shape [2]"
    );
    let integer = Error::GradLossNotScalar {
        dtype: DType::I32,
        shape: vec![],
    };
    assert_eq!(integer.kind(), ErrorKind::DType);
    for has_aux in [false, true] {
        assert_eq!(Error::GradLossMissing { has_aux }.kind(), ErrorKind::Value);
    }
    assert_eq!(
        Error::GradLossMissing { has_aux: false }.to_string(),
        "grad requires the function to return a scalar array"
    );
    assert_eq!(
        Error::InvalidRngSeed {
            value: "Array(1.5, dtype=float32)".into(),
            dtype: DType::F32,
        }
        .kind(),
        ErrorKind::DType
    );
}
