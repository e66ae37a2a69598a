//! [`TypedModule`]: a Rust struct as a typed view of a module (`#[derive(Module)]`).

use super::{FromValue, Object, Static, Value, mismatch};
use crate::error::Result;

/// A struct that is a typed view of an NNX module, implemented by `#[derive(Module)]`.
///
/// The struct's fields are the module's attributes: Variable handles (`Param`, `BatchStat`,
/// your own [`variable_type!`](crate::variable_type)s) and sub-modules are graph attributes,
/// `Vec`s of them are [`List`](super::List) nodes and string-keyed `BTreeMap`s or `IndexMap`s
/// of them [`Dict`](super::Dict) nodes, and plain fields (`usize`, `String`, `bool`, …) are
/// static attributes; `Option::None` is Python's `None`.
///
/// - **Reference semantics.** The fields *are* the handles in the graph: a Variable updated
///   inside a transform is updated in the struct, and cloning the struct shares its
///   Variables (as `b = a` does in Python).
/// - **One node per module.** [`TypedModule::to_object`] gives the same [`Object`] for the
///   same handles, so a module passed twice, a sub-module shared by two parents and repeated
///   calls on one model each see one node (and repeated calls take the transforms'
///   shortcut).
/// - **The same graph as a dynamic object.** Printing, `split`/`merge`/`state`/`update`/
///   `clone`, filters and every transform see the object; a typed closure argument
///   (`|m: &Linear, x: &Tensor|`) is the view of the object the transform passes.
/// - **Fixed schema.** A struct has no place for attributes added at run time: add, delete
///   or re-bind attributes on the `Object` (`to_object()`), or use a dynamic `Object` where
///   the guide does.
///
/// ```
/// use nnx_core::{Module, Param, Result, Tensor, graph::{self, TypedModule}};
///
/// #[derive(Module, Clone)]
/// struct Linear {
///     kernel: Param,
///     bias: Option<Param>,
///     in_features: usize,
/// }
///
/// # fn main() -> Result<()> {
/// let layer = Linear {
///     kernel: Param::new(Tensor::ones(&[2, 3])),
///     bias: None,
///     in_features: 2,
/// };
/// let object = layer.to_object();
/// assert_eq!(object.type_name(), "Linear");
/// assert!(object.to_object_view::<Linear>()?.kernel.ptr_eq(&layer.kernel));
/// assert_eq!(graph::state(&layer).len(), 1);       // kernel; bias is None
/// assert!(layer.to_object().ptr_eq(&object));       // one node per module
/// # Ok(())
/// # }
/// ```
pub trait TypedModule: Sized {
    /// The module's type name in the graph (the struct's name).
    const TYPE_NAME: &'static str;

    /// The module's node: the object already viewed as this struct, or built from its
    /// fields.
    fn to_object(&self) -> Object;

    /// The typed view of `object`.
    ///
    /// # Errors
    /// [`Error::TypeMismatch`](crate::Error::TypeMismatch) for an object of another type, or
    /// naming the field, for a field of another kind or a required field that is missing (read
    /// as `None`).
    fn from_object(object: &Object) -> Result<Self>;

    /// `module.set_attributes(**attributes)` over the whole module tree
    /// ([`graph::set_attributes`](super::set_attributes)), then this struct re-read from the
    /// graph so that its static fields show the new values.
    ///
    /// # Errors
    /// As [`graph::set_attributes`](super::set_attributes) and [`TypedModule::from_object`].
    fn set_attributes(
        &mut self,
        attributes: &[(&str, Value)],
        raise_if_not_found: bool,
    ) -> Result<()> {
        let object = self.to_object();
        super::set_attributes(&object, attributes, raise_if_not_found)?;
        *self = Self::from_object(&object)?;
        Ok(())
    }

    /// `model.train()`: `deterministic = false`, `use_running_average = false` wherever a
    /// module has them (Dropout, BatchNorm).
    ///
    /// # Errors
    /// As [`TypedModule::set_attributes`].
    fn train(&mut self) -> Result<()> {
        self.set_attributes(&training(false), false)
    }

    /// `model.eval()`: `deterministic = true`, `use_running_average = true` wherever a module
    /// has them.
    ///
    /// # Errors
    /// As [`TypedModule::set_attributes`].
    fn eval(&mut self) -> Result<()> {
        self.set_attributes(&training(true), false)
    }
}

/// The attributes `train()` (`false`) and `eval()` (`true`) set.
fn training(evaluating: bool) -> [(&'static str, Value); 2] {
    [
        ("deterministic", Value::from(evaluating)),
        ("use_running_average", Value::from(evaluating)),
    ]
}

impl Object {
    /// `model.train()` on a dynamic module: see [`TypedModule::train`].
    ///
    /// # Errors
    /// As [`graph::set_attributes`](super::set_attributes).
    pub fn train(&self) -> Result<()> {
        super::set_attributes(self, &training(false), false)
    }

    /// `model.eval()` on a dynamic module: see [`TypedModule::eval`].
    ///
    /// # Errors
    /// As [`graph::set_attributes`](super::set_attributes).
    pub fn eval(&self) -> Result<()> {
        super::set_attributes(self, &training(true), false)
    }
}

impl Object {
    /// This object as the typed module `M` ([`TypedModule::from_object`]).
    ///
    /// # Errors
    /// As [`TypedModule::from_object`].
    pub fn to_object_view<M: TypedModule>(&self) -> Result<M> {
        M::from_object(self)
    }
}

/// Checks that `object` has `M`'s type name (for `#[derive(Module)]`).
///
/// # Errors
/// [`Error::TypeMismatch`] naming both types.
#[doc(hidden)]
pub fn check_type_name<M: TypedModule + FromValue>(object: &Object) -> Result<()> {
    if object.type_name() == M::TYPE_NAME {
        Ok(())
    } else {
        Err(mismatch::<M>(&Value::Object(object.clone())))
    }
}

/// The value of field `name` of `object`; `None` when the attribute does not exist, so that
/// optional fields read a deleted attribute as `None` (for `#[derive(Module)]`).
#[doc(hidden)]
pub fn field_value(object: &Object, name: &str) -> Value {
    object.get(name).unwrap_or(Value::Static(Static::None))
}

/// Reads field `name` from its value, naming the field on error (for `#[derive(Module)]`).
///
/// # Errors
/// [`Error::TypeMismatch`] at `field name`.
#[doc(hidden)]
pub fn read_field<T: FromValue>(value: &Value, name: &str) -> Result<T> {
    T::from_value(value).map_err(|e| e.within(format_args!("field {name}")))
}

#[cfg(test)]
mod tests {
    use crate::graph::{self, ToValue, TypedModule};
    use crate::{Error, Module, Object, Param, Tensor, Value};

    #[derive(Module, Clone, Debug)]
    struct Linear {
        kernel: Param,
        bias: Option<Param>,
        features: usize,
    }

    #[derive(Module, Clone)]
    struct Mlp {
        layers: Vec<Linear>,
        name: String,
    }

    #[derive(Module, Clone)]
    struct Heads {
        heads: std::collections::BTreeMap<String, Linear>,
    }

    #[derive(Module, Clone)]
    struct Wrap<M> {
        inner: M,
    }

    fn linear(n: usize) -> Linear {
        Linear {
            kernel: Param::new(Tensor::ones([n, n])),
            bias: Some(Param::new(Tensor::zeros([n]))),
            features: n,
        }
    }

    #[test]
    fn a_typed_module_is_an_object_with_its_fields() {
        let mlp = Mlp {
            layers: vec![linear(2), linear(3)],
            name: "mlp".into(),
        };
        let object = mlp.to_object();
        assert_eq!(object.type_name(), "Mlp");
        let state = graph::state(&mlp);
        let paths: Vec<String> = state.paths().map(|p| p.slashed()).collect();
        assert_eq!(
            paths,
            [
                "layers/0/bias",
                "layers/0/kernel",
                "layers/1/bias",
                "layers/1/kernel"
            ]
        );
        let back: Mlp = object.to_object_view().unwrap();
        assert!(back.layers[1].kernel.ptr_eq(&mlp.layers[1].kernel));
        assert_eq!(back.name, "mlp");
        // The same handles give the same nodes: one model, one graph.
        assert!(back.to_object().ptr_eq(&object));
        let Value::List(a) = object.get("layers").unwrap() else {
            panic!("layers is a List")
        };
        let Value::List(b) = mlp.to_object().get("layers").unwrap() else {
            panic!("layers is a List")
        };
        assert!(a.ptr_eq(&b));
    }

    #[test]
    fn maps_of_modules_are_dicts() {
        let heads = Heads {
            heads: [("a".to_owned(), linear(2)), ("b".to_owned(), linear(3))].into(),
        };
        let paths: Vec<String> = graph::state(&heads).paths().map(|p| p.slashed()).collect();
        assert_eq!(
            paths,
            [
                "heads/a/bias",
                "heads/a/kernel",
                "heads/b/bias",
                "heads/b/kernel"
            ]
        );
        let copy: Heads = graph::clone(&heads);
        assert_eq!(copy.heads["b"].features, 3);
        assert!(matches!(
            heads.to_object().get("heads").unwrap(),
            Value::Dict(_)
        ));
    }

    #[test]
    fn clone_and_merge_give_typed_modules() {
        let l = linear(2);
        let copy: Linear = graph::clone(&l);
        assert!(!copy.kernel.ptr_eq(&l.kernel));
        assert_eq!(copy.features, 2);
        let (def, state) = graph::split(&l);
        let merged: Linear = graph::merge(&def, [&state]).unwrap();
        assert_eq!(merged.features, 2);
        assert!(merged.kernel.value().identical(&l.kernel.value()));
    }

    #[test]
    fn generic_sub_modules_and_optional_fields() {
        let w = Wrap { inner: linear(2) };
        let object = w.to_object();
        let inner = object.get("inner").unwrap().object().unwrap();
        inner.set("bias", ()).unwrap();
        let back: Wrap<Linear> = object.to_object_view().unwrap();
        assert!(back.inner.bias.is_none());
        inner.del("bias").unwrap();
        assert!(
            object
                .to_object_view::<Wrap<Linear>>()
                .unwrap()
                .inner
                .bias
                .is_none()
        );
    }

    #[test]
    fn views_check_the_type_and_every_field() {
        let err = Object::new("Weights")
            .to_object_view::<Linear>()
            .unwrap_err();
        assert_eq!(err.to_string(), "expected Linear, found a 'Weights' object");
        let object = linear(2).to_object();
        object.set("features", "two").unwrap();
        let err = object.to_object_view::<Linear>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "field features: expected usize, found the static value 'two'"
        );
        object.del("kernel").unwrap();
        let err = object.to_object_view::<Linear>().unwrap_err();
        assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
        assert!(err.to_string().starts_with("field kernel: expected Param"));
        assert!(matches!(Value::Object(object).to_value(), Value::Object(_)));
    }
}
