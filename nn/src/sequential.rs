//! `nnx.Sequential`: layers and functions applied in order.

use nnx_core::graph::{FromValue, Static, ToValue};
use nnx_core::{Error, List, Object, Result, Tensor, Value};

use crate::{BatchNorm, Conv, Dropout, Embed, GroupNorm, LayerNorm, Linear, RMSNorm};

/// One step of a [`Sequential`]: a layer, or a function, which the graph keeps as a static
/// name (`relu`), as Flax keeps a function in the list.
#[derive(Clone, Debug)]
pub enum Layer {
    /// [`Linear`].
    Linear(Linear),
    /// [`Conv`].
    Conv(Conv),
    /// [`BatchNorm`].
    BatchNorm(BatchNorm),
    /// [`LayerNorm`].
    LayerNorm(LayerNorm),
    /// [`RMSNorm`].
    RMSNorm(RMSNorm),
    /// [`GroupNorm`].
    GroupNorm(GroupNorm),
    /// [`Dropout`].
    Dropout(Dropout),
    /// [`Embed`].
    Embed(Embed),
    /// `nnx.relu`.
    Relu,
    /// `nnx.gelu`: `jax.nn.gelu` with its default, the tanh approximation.
    Gelu,
    /// `nnx.silu`.
    Silu,
    /// `nnx.sigmoid`.
    Sigmoid,
    /// `jnp.tanh`.
    Tanh,
    /// `lambda x: x.reshape(x.shape[0], -1)`: every axis after the first into one.
    Flatten,
}

macro_rules! layer_from {
    ($($variant:ident),*) => {$(
        impl From<$variant> for Layer {
            fn from(layer: $variant) -> Layer {
                Layer::$variant(layer)
            }
        }
    )*};
}
layer_from!(
    Linear, Conv, BatchNorm, LayerNorm, RMSNorm, GroupNorm, Dropout, Embed
);

const FUNCTIONS: [(&str, Layer); 6] = [
    ("relu", Layer::Relu),
    ("gelu", Layer::Gelu),
    ("silu", Layer::Silu),
    ("sigmoid", Layer::Sigmoid),
    ("tanh", Layer::Tanh),
    ("flatten", Layer::Flatten),
];

impl Layer {
    /// The layer applied to `x`.
    ///
    /// # Errors
    /// The layer's errors.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Layer::Linear(l) => l.forward(x),
            Layer::Conv(l) => l.forward(x),
            Layer::BatchNorm(l) => l.forward(x),
            Layer::LayerNorm(l) => l.forward(x),
            Layer::RMSNorm(l) => l.forward(x),
            Layer::GroupNorm(l) => l.forward(x),
            Layer::Dropout(l) => l.forward(x),
            Layer::Embed(l) => l.forward(x),
            Layer::Relu => x.relu(),
            Layer::Gelu => crate::gelu(x, true),
            Layer::Silu => crate::silu(x),
            Layer::Sigmoid => crate::sigmoid(x),
            Layer::Tanh => x.tanh(),
            Layer::Flatten => match x.shape().first() {
                Some(&n) => x.reshape(&[n as isize, -1]),
                None => Err(Error::shape(
                    "Sequential",
                    "flatten needs at least one axis",
                )),
            },
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Layer::Linear(l) => l.to_value(),
            Layer::Conv(l) => l.to_value(),
            Layer::BatchNorm(l) => l.to_value(),
            Layer::LayerNorm(l) => l.to_value(),
            Layer::RMSNorm(l) => l.to_value(),
            Layer::GroupNorm(l) => l.to_value(),
            Layer::Dropout(l) => l.to_value(),
            Layer::Embed(l) => l.to_value(),
            function => {
                let name = (FUNCTIONS.iter())
                    .find(|(_, f)| std::mem::discriminant(f) == std::mem::discriminant(function))
                    .map_or("relu", |(n, _)| n);
                Value::Static(Static::Str(name.to_owned()))
            }
        }
    }

    fn from_value(value: &Value) -> Result<Layer> {
        let unknown = || Error::shape("Sequential", format!("not a layer it knows: {value:?}"));
        match value {
            Value::Static(Static::Str(name)) => (FUNCTIONS.iter())
                .find(|(n, _)| n == name)
                .map(|(_, f)| f.clone())
                .ok_or_else(unknown),
            Value::Object(o) => Ok(match o.type_name() {
                "Linear" => Layer::Linear(Linear::from_value(value)?),
                "Conv" => Layer::Conv(Conv::from_value(value)?),
                "BatchNorm" => Layer::BatchNorm(BatchNorm::from_value(value)?),
                "LayerNorm" => Layer::LayerNorm(LayerNorm::from_value(value)?),
                "RMSNorm" => Layer::RMSNorm(RMSNorm::from_value(value)?),
                "GroupNorm" => Layer::GroupNorm(GroupNorm::from_value(value)?),
                "Dropout" => Layer::Dropout(Dropout::from_value(value)?),
                "Embed" => Layer::Embed(Embed::from_value(value)?),
                _ => return Err(unknown()),
            }),
            _ => Err(unknown()),
        }
    }
}

/// `nnx.Sequential(*layers)`: one object whose `layers` list holds the layers (their
/// State's paths are `layers/0/kernel`, …) and, as static names, the functions between
/// them; `forward` applies them in order.
///
/// ```
/// use nnx_core::{Result, Rngs, Tensor};
/// use nnx_nn::{Layer, Linear, Sequential};
/// # fn main() -> Result<()> {
/// let rngs = Rngs::new(0)?;
/// let mlp = Sequential::new([Linear::new(4, 8, &rngs)?.into(), Layer::Relu, Linear::new(8, 2, &rngs)?.into()])?;
/// assert_eq!(mlp.forward(&Tensor::ones([3, 4]))?.shape(), &[3, 2]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Sequential(Object);

impl Sequential {
    /// `nnx.Sequential(*layers)`.
    ///
    /// # Errors
    /// None in practice.
    pub fn new(layers: impl IntoIterator<Item = Layer>) -> Result<Sequential> {
        let list = List::new(layers.into_iter().map(|l| l.to_value()));
        Ok(Sequential(Object::new("Sequential").with("layers", list)?))
    }

    /// The layers, in order.
    ///
    /// # Errors
    /// A `layers` entry that is not a layer this type knows.
    pub fn layers(&self) -> Result<Vec<Layer>> {
        self.0
            .list("layers")?
            .items()
            .iter()
            .map(Layer::from_value)
            .collect()
    }

    /// `model(x)`: each layer applied to the previous one's output.
    ///
    /// # Errors
    /// A layer's error.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.layers()?
            .iter()
            .try_fold(x.clone(), |h, layer| layer.forward(&h))
    }

    /// `model.train()`: Dropout and BatchNorm in training mode.
    ///
    /// # Errors
    /// As [`Object::train`].
    pub fn train(&self) -> Result<()> {
        self.0.train()
    }

    /// `model.eval()`: Dropout off, BatchNorm on its running statistics.
    ///
    /// # Errors
    /// As [`Object::eval`].
    pub fn eval(&self) -> Result<()> {
        self.0.eval()
    }

    /// The model's object.
    pub fn as_object(&self) -> &Object {
        &self.0
    }
}

crate::common::object_handle!(Sequential, "Sequential");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_is_jaxs_default_the_tanh_approximation() -> Result<()> {
        let x = Tensor::from_slice(&[-2.0f32, -0.5, 0.3, 1.7]);
        let y = Sequential::new([Layer::Gelu])?.forward(&x)?;
        assert!(y.identical(&crate::gelu(&x, true)?));
        assert!(!y.identical(&crate::gelu(&x, false)?));
        Ok(())
    }
}
