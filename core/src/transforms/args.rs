//! [`IntoArgs`]: what a transformed function can be called with.

use crate::graph::{ToValue, Value};

/// The arguments of a transformed function: a slice or array of [`Value`]s, or a tuple of
/// anything that converts into one ([`ToValue`]: `(&weights, &x)`, typed modules, numbers).
///
/// ```
/// use nnx_core::{Object, Tensor, Value, transforms::IntoArgs};
/// let w = Object::new("W");
/// let x = Tensor::ones(&[2]);
/// assert_eq!((&w, &x).into_args().len(), 2);
/// assert_eq!([Value::from(&w)].into_args().len(), 1);
/// ```
pub trait IntoArgs {
    /// The arguments as values, in order.
    fn into_args(self) -> Vec<Value>;
}

impl IntoArgs for &[Value] {
    fn into_args(self) -> Vec<Value> {
        self.to_vec()
    }
}

impl IntoArgs for &Vec<Value> {
    fn into_args(self) -> Vec<Value> {
        self.clone()
    }
}

impl IntoArgs for Vec<Value> {
    fn into_args(self) -> Vec<Value> {
        self
    }
}

impl<const N: usize> IntoArgs for [Value; N] {
    fn into_args(self) -> Vec<Value> {
        self.into()
    }
}

impl<const N: usize> IntoArgs for &[Value; N] {
    fn into_args(self) -> Vec<Value> {
        self.to_vec()
    }
}

impl IntoArgs for () {
    fn into_args(self) -> Vec<Value> {
        Vec::new()
    }
}

macro_rules! tuple_args {
    ($($name:ident),+) => {
        impl<$($name: ToValue),+> IntoArgs for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_args(self) -> Vec<Value> {
                let ($($name,)+) = self;
                vec![$($name.to_value()),+]
            }
        }
    };
}
tuple_args!(A);
tuple_args!(A, B);
tuple_args!(A, B, C);
tuple_args!(A, B, C, D);
tuple_args!(A, B, C, D, E);
tuple_args!(A, B, C, D, E, G);
