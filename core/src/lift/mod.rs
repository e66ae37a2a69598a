//! Lifting: carrying objects across a transform boundary with reference semantics.
//!
//! Every lifted transform (`vmap`, `jit`, `scan`, `grad`) moves the caller's objects into its
//! function and the changes back out with the same four steps ([`boundary`]): lower the
//! arguments, raise them as fresh objects inside, lower arguments and outputs again, and
//! write back into the caller's objects. [`Prefix`] says how each part is transformed.
//!
//! ```
//! use nnx_core::lift::{self, Prefix};
//! use nnx_core::{Object, Param, Tensor, Value, trace};
//! # fn main() -> nnx_core::Result<()> {
//! let m = Object::new("M").with("w", Param::new(Tensor::zeros(&[2])))?;
//! let prefix: Prefix<i32> = Prefix::Leaf(0);
//! let lowered = lift::lower_args(&[Value::from(&m)], &prefix)?;
//! let values: Vec<Tensor> = lowered.leaves().iter().map(|l| l.value.clone()).collect();
//! let (outputs, out_values) = {
//!     let _inner = trace::enter_level();
//!     let raised = lift::raise(&lowered, values)?;
//!     let inner = raised.args[0].as_object().cloned().expect("an object");
//!     inner.var("w")?.update(|w| w + 1.0)?;     // a state change inside
//!     inner.set("note", "added inside")?;       // a graph change inside
//!     let out = lift::lower_outputs(&raised, &prefix, &Value::from(Tensor::ones(&[])), &prefix)?;
//!     let vals = out.leaves().iter().map(|l| l.value.clone()).collect::<Vec<_>>();
//!     (out, vals)
//! };
//! lift::write_back(&lowered, &outputs, out_values)?;
//! assert_eq!(m.value("w")?.to_vec::<f32>()?, vec![1.0, 1.0]);
//! assert!(m.has("note"));
//! # Ok(())
//! # }
//! ```

pub mod boundary;
mod prefix;

pub use boundary::{
    Lowered, LoweredLeaf, Raised, check_outputs_are_new, lower_args, lower_outputs,
    lower_outputs_with, raise, write_back, write_back_values,
};
pub use prefix::Prefix;
pub(crate) use prefix::prefix_from_tuples;
