//! Typed transformed functions: `vmap(|w: &Weights, x: &Tensor| -> Result<Tensor> { … })`.
//!
//! Every transform traces a [`Body`]: a function from argument [`Value`]s to an output
//! `Value`. A closure over `&[Value]` is one as it is (the dynamic form). A closure over typed
//! references, `Fn(&A, &B, …) -> Result<R>` with each argument [`FromValue`] and the output
//! [`ToValue`] + [`FromValue`], becomes one through [`IntoBody`]: its arguments are read from
//! the values (a wrong count is [`Error::ArgumentCount`], a wrong type
//! [`Error::TypeMismatch`] naming the position and both types), and the transform's `call`
//! returns an `R`.

use std::marker::PhantomData;

use crate::error::{Error, Result};
use crate::graph::{FromValue, ToValue, Value};

/// A function a transform can trace: arguments in, output out, as graph values.
pub trait Body {
    /// What the transform's `call` returns: [`Value`] for the dynamic form, the closure's
    /// output type for a typed closure.
    type Output: FromValue;

    /// Runs the function on argument values.
    ///
    /// # Errors
    /// Whatever the function returns, and for a typed closure the argument count and type
    /// errors.
    fn apply(&self, args: &[Value]) -> Result<Value>;
}

impl<F: Fn(&[Value]) -> Result<Value>> Body for F {
    type Output = Value;

    fn apply(&self, args: &[Value]) -> Result<Value> {
        self(args)
    }
}

/// A function that becomes a [`Body`]: the dynamic form (`Fn(&[Value]) -> Result<Value>`,
/// marker [`Dynamic`]) or a typed closure of up to six reference arguments.
///
/// ```
/// use nnx_core::{Result, Tensor, Value, transforms::{Body, IntoBody}};
/// let double = (|x: &Tensor| -> Result<Tensor> { x * 2.0 }).into_body();
/// let y = double.apply(&[Value::from(Tensor::ones(&[2]))])?;
/// assert_eq!(y.as_tensor()?.to_vec::<f32>()?, vec![2.0, 2.0]);
///
/// let err = double.apply(&[]).unwrap_err();
/// assert_eq!(err.to_string(), "the function takes 1 argument but was called with 0");
/// # Ok::<(), nnx_core::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be transformed",
    label = "not a function a transform can trace",
    note = "write a closure over typed references that returns a `Result`, such as \
            `|m: &Mlp, x: &Tensor| -> Result<Tensor> {{ … }}` (up to six arguments, each \
            `FromValue`; the output `ToValue + FromValue`), or the dynamic form \
            `|args: &[Value]| -> Result<Value> {{ … }}`",
    note = "arguments are taken by reference (`x: &Tensor`, not `x: Tensor`)"
)]
pub trait IntoBody<Marker> {
    /// The body.
    type Body: Body;

    /// Converts the function.
    fn into_body(self) -> Self::Body;
}

/// The marker of the dynamic form, `Fn(&[Value]) -> Result<Value>`.
pub enum Dynamic {}

impl<F: Fn(&[Value]) -> Result<Value>> IntoBody<Dynamic> for F {
    type Body = F;

    fn into_body(self) -> F {
        self
    }
}

/// A typed closure as a [`Body`]; `M` is `fn(A, B, …) -> R`.
pub struct Typed<F, M> {
    f: F,
    signature: PhantomData<fn() -> M>,
}

/// Reads argument `position` as an `A`.
fn argument<A: FromValue>(args: &[Value], position: usize) -> Result<A> {
    let value = args
        .get(position)
        .ok_or_else(|| Error::internal("argument count checked"))?;
    A::from_value(value).map_err(|e| e.within(format!("argument {position}")))
}

macro_rules! typed_body {
    ($count:literal; $($arg:ident $position:tt),*) => {
        impl<F, R, $($arg),*> Body for Typed<F, fn($($arg),*) -> R>
        where
            F: Fn($(&$arg),*) -> Result<R>,
            R: ToValue + FromValue,
            $($arg: FromValue,)*
        {
            type Output = R;

            #[allow(non_snake_case)]
            fn apply(&self, args: &[Value]) -> Result<Value> {
                if args.len() != $count {
                    return Err(Error::ArgumentCount {
                        expected: $count,
                        found: args.len(),
                    });
                }
                $(let $arg: $arg = argument(args, $position)?;)*
                Ok((self.f)($(&$arg),*)?.to_value())
            }
        }

        impl<F, R, $($arg),*> IntoBody<fn($($arg),*) -> R> for F
        where
            F: Fn($(&$arg),*) -> Result<R>,
            R: ToValue + FromValue,
            $($arg: FromValue,)*
        {
            type Body = Typed<F, fn($($arg),*) -> R>;

            fn into_body(self) -> Self::Body {
                Typed {
                    f: self,
                    signature: PhantomData,
                }
            }
        }
    };
}

typed_body!(0;);
typed_body!(1; A 0);
typed_body!(2; A 0, B 1);
typed_body!(3; A 0, B 1, C 2);
typed_body!(4; A 0, B 1, C 2, D 3);
typed_body!(5; A 0, B 1, C 2, D 3, E 4);
typed_body!(6; A 0, B 1, C 2, D 3, E 4, G 5);

/// Reads a transform's output value as the body's output type.
///
/// # Errors
/// [`Error::TypeMismatch`] at `the output` (a transform that changed the output's kind).
pub(crate) fn output<B: Body>(value: Value) -> Result<B::Output> {
    B::Output::from_value(&value).map_err(|e| e.within("the output"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Object, Tensor};

    fn body<M, F: IntoBody<M>>(f: F) -> F::Body {
        f.into_body()
    }

    #[test]
    fn typed_closures_read_their_arguments() {
        let add = body(|a: &Tensor, b: &Tensor| -> Result<Tensor> { a + b });
        let out = add
            .apply(&[Tensor::ones([2]).into(), Tensor::ones([2]).into()])
            .unwrap();
        assert_eq!(
            out.as_tensor().unwrap().to_vec::<f32>().unwrap(),
            vec![2.0; 2]
        );
        let err = add
            .apply(&[Tensor::ones([2]).into(), Object::new("Weights").into()])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "argument 1: expected Tensor, found a 'Weights' object"
        );
        let err = add.apply(&[Tensor::ones([2]).into()]).unwrap_err();
        assert!(matches!(
            err,
            Error::ArgumentCount {
                expected: 2,
                found: 1
            }
        ));
    }

    #[test]
    fn dynamic_closures_stay_dynamic() {
        let id = body(|args: &[Value]| -> Result<Value> { Ok(args[0].clone()) });
        let out = id.apply(&[Value::from(Tensor::ones([1]))]).unwrap();
        assert!(matches!(out, Value::Array(_)));
    }

    #[test]
    fn tuples_and_unit_outputs() {
        let pair = body(|x: &Tensor| -> Result<(Tensor, usize)> { Ok((x.clone(), 3)) });
        assert!(matches!(
            pair.apply(&[Tensor::ones([1]).into()]).unwrap(),
            Value::Tuple(_)
        ));
        let nothing = body(|| -> Result<()> { Ok(()) });
        assert!(nothing.apply(&[]).unwrap().as_static().is_some());
    }
}
