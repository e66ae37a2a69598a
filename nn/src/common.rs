//! What every layer shares: a parameter drawn with the next `params` key, and shapes as the
//! `isize`s that `reshape` and the axis arguments take.

use nnx_core::{Error, Param, Result, Rngs};

use crate::initializers::Initializer;

/// A `Param` initialised by `init` for `shape` with the next key of the `params` stream (or
/// `default`), as Flax's layers create theirs (`init(rngs.params(), shape)`).
pub(crate) fn param(init: &Initializer, shape: impl AsRef<[usize]>, rngs: &Rngs) -> Result<Param> {
    let key = rngs.next_key("params")?;
    Ok(Param::new(init.init(&key, shape)?))
}

/// `n` as an `isize`.
pub(crate) fn isize_of(n: usize) -> Result<isize> {
    isize::try_from(n)
        .map_err(|_| Error::shape("nn", format!("dimension {n} is too large for isize")))
}

/// A shape as `isize`s.
pub(crate) fn dims(shape: &[usize]) -> Result<Vec<isize>> {
    shape.iter().map(|&d| isize_of(d)).collect()
}

/// `ToValue`, `FromValue` and `GraphValue` for a handle that wraps one `Object` of type
/// `$name` (`MultiMetric`, `Optimizer`, `Sequential`): the object is the graph node, so the
/// handle crosses transforms as the object does.
macro_rules! object_handle {
    ($handle:ident, $name:literal) => {
        impl nnx_core::graph::ToValue for $handle {
            fn to_value(&self) -> nnx_core::Value {
                nnx_core::Value::Object(self.0.clone())
            }
        }

        impl nnx_core::graph::FromValue for $handle {
            fn expected() -> String {
                concat!("a '", $name, "' object").into()
            }

            fn from_value(value: &nnx_core::Value) -> nnx_core::Result<$handle> {
                match value {
                    nnx_core::Value::Object(o) if o.type_name() == $name => Ok($handle(o.clone())),
                    other => Err(nnx_core::graph::mismatch::<$handle>(other)),
                }
            }
        }

        impl nnx_core::graph::GraphValue for $handle {}
    };
}
pub(crate) use object_handle;
