//! `nnx.Optimizer`: a gradient transformation's state in `OptState` Variables, beside the
//! model, so that an optimizer step runs inside `jit` like the model's forward pass.

use nnx_core::graph::{self, Filter, GraphValue, Leaf, State, Static};
use nnx_core::{
    DType, Dict, Error, List, Object, Path, Result, Tensor, Value, Variable, variable_type,
};

use super::transforms::{DecayMask, Params, Slot, Transform};

variable_type!(
    /// `nnx.OptState`: an optimizer's state (its step count, moments, …).
    pub OptState: Variable
);

/// A chain of gradient transformations (`optax.chain`): what an optimizer runs on the
/// gradients, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Chain(pub Vec<Transform>);

impl Chain {
    /// This chain followed by `other` (`optax.chain(self, other)`).
    pub fn then(mut self, other: impl Into<Chain>) -> Chain {
        self.0.extend(other.into().0);
        self
    }
}

impl From<Transform> for Chain {
    fn from(t: Transform) -> Chain {
        Chain(vec![t])
    }
}

/// `nnx.Optimizer(model, tx, wrt=…)`: updates the model's Variables that `wrt` selects with
/// `tx`, keeping `tx`'s state in `OptState` Variables (`opt_state/<i>/<slot>/<param path>`)
/// and the step count in `step`. The chain and the parameters' paths are static attributes
/// (as Flax keeps `tx` static), so an optimizer crosses `jit` as a graph node.
///
/// ```
/// use nnx_core::{Param, Result, Rngs, Tensor, VariableType, graph::State, transforms::value_and_grad};
/// use nnx_nn::{Linear, optim};
/// # fn main() -> Result<()> {
/// let model = Linear::new(2, 1, &Rngs::new(0)?)?;
/// let optimizer = optim::Optimizer::new(&model, optim::adam(1e-2), VariableType::PARAM)?;
/// let x = Tensor::ones([4, 2]);
/// let loss = |m: &Linear, x: &Tensor| m.forward(x)?.mean(None);
/// let out = value_and_grad(loss).call(&nnx_reference::Reference, (&model, &x))?;
/// optimizer.update(&model, out.grads[0].state()?)?;
/// assert_eq!(optimizer.step()?.item::<u32>()?, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Optimizer(Object);

impl Optimizer {
    /// `nnx.Optimizer(model, tx, wrt=wrt)`: state for the float Variables of `model` that
    /// `wrt` selects (usually `VariableType::PARAM`). Weight-decay masks given as filters
    /// are resolved to those parameters' paths here.
    ///
    /// # Errors
    /// `wrt` selecting no float Variable.
    pub fn new(
        model: &impl GraphValue,
        tx: impl Into<Chain>,
        wrt: impl Into<Filter>,
    ) -> Result<Optimizer> {
        optimizer_object("Optimizer", model, tx.into(), wrt.into()).map(Optimizer)
    }
}

/// The object of an optimizer of `model` (type `type_name`): `step`, `opt_state`, and the
/// static `tx` and `wrt`.
fn optimizer_object(
    type_name: &str,
    model: &impl GraphValue,
    tx: Chain,
    wrt: Filter,
) -> Result<Object> {
    let selected = graph::state_by(model, &wrt);
    let mut paths = Vec::new();
    let mut values = Vec::new();
    let mut leaves = Vec::new();
    for (path, leaf) in selected.iter() {
        let value = leaf.value();
        if value.dtype().is_float() {
            paths.push(path.clone());
            values.push(value);
            leaves.push(leaf.clone());
        }
    }
    if paths.is_empty() {
        return Err(Error::shape(
            "Optimizer",
            "wrt selects no float Variable of the model",
        ));
    }
    let names: Vec<String> = paths.iter().map(Path::slashed).collect();
    let tx: Vec<Transform> = (tx.0.into_iter())
        .map(|t| match t {
            Transform::AddDecayedWeights {
                weight_decay,
                mask: DecayMask::Filter(filter),
            } => Transform::AddDecayedWeights {
                weight_decay,
                mask: DecayMask::Paths(
                    (paths.iter().zip(&leaves).zip(&names))
                        .filter(|((p, l), _)| filter.matches(p, l))
                        .map(|(_, n)| n.clone())
                        .collect(),
                ),
            },
            other => other,
        })
        .collect();
    let params = Params {
        paths: &names,
        values: &values,
    };
    let opt_state = List::new([]);
    for t in &tx {
        let slots = Dict::new();
        for (name, slot) in t.init(&params)? {
            let value = match slot {
                Slot::Scalar(v) => Value::from(Variable::from(OptState::new(v))),
                Slot::PerParam(arrays) => {
                    let tree = Dict::new();
                    for (path, array) in paths.iter().zip(arrays) {
                        insert_nested(&tree, path, Variable::from(OptState::new(array)).into())?;
                    }
                    Value::from(tree)
                }
            };
            slots.insert(name, value)?;
        }
        opt_state.push(slots)?;
    }
    let tx_static = Static::List(tx.iter().map(Transform::to_static).collect::<Result<_>>()?);
    Object::new(type_name)
        .with("step", Variable::from(OptState::new(Tensor::scalar(0u32))))?
        .with("opt_state", opt_state)?
        .with("tx", tx_static)?
        .with(
            "wrt",
            Static::List(names.into_iter().map(Static::Str).collect()),
        )
}

impl Optimizer {
    /// `optimizer.update(model, grads)`: one step of the chain on `grads` (a State of the
    /// model's gradients, as `value_and_grad` gives), written into the model's parameters
    /// (`optax.apply_updates`) and into the optimizer's state; the step count advances.
    ///
    /// # Errors
    /// A parameter missing from `grads` or from the model (naming its path); gradients of
    /// another shape.
    pub fn update(&self, model: &impl GraphValue, grads: &State) -> Result<()> {
        let tx = self.tx()?;
        let names = self.wrt()?;
        let model_state = graph::state(model);
        let mut variables = Vec::with_capacity(names.len());
        let mut values = Vec::with_capacity(names.len());
        let mut updates = Vec::with_capacity(names.len());
        let mut paths = Vec::with_capacity(names.len());
        for name in &names {
            let path = Path::parse(name)?;
            let variable = model_state.variable(&path).map_err(|_| {
                Error::shape("Optimizer", format!("the model has no parameter '{name}'"))
            })?;
            let grad = grads.get(&path).map(Leaf::value).ok_or_else(|| {
                Error::shape("Optimizer", format!("grads have no entry for '{name}'"))
            })?;
            let value = variable.value();
            if grad.shape() != value.shape() {
                return Err(Error::shape(
                    "Optimizer",
                    format!(
                        "the gradient of '{name}' has shape {:?}, the parameter {:?}",
                        grad.shape(),
                        value.shape()
                    ),
                ));
            }
            values.push(value);
            updates.push(grad.astype(DType::F32)?);
            variables.push(variable);
            paths.push(path);
        }
        let params = Params {
            paths: &names,
            values: &values,
        };
        let opt_state = self.0.list("opt_state")?;
        for (i, t) in tx.iter().enumerate() {
            let slots = dict_of(&opt_state.get(i)?)?;
            let state = read_slots(&slots, &paths)?;
            let (next, new_state) = t.update(updates, &state, &params)?;
            write_slots(&slots, &paths, new_state)?;
            updates = next;
        }
        for ((variable, value), update) in variables.iter().zip(&values).zip(updates) {
            variable.set_value((value + update)?.astype(value.dtype())?)?;
        }
        let step = self.0.var("step")?;
        step.set_value((step.value() + Tensor::scalar(1u32))?)
    }

    /// The number of updates so far (uint32).
    ///
    /// # Errors
    /// A malformed optimizer object.
    pub fn step(&self) -> Result<Tensor> {
        self.0.value("step")
    }

    /// The chain of transformations.
    ///
    /// # Errors
    /// A malformed optimizer object.
    pub fn tx(&self) -> Result<Vec<Transform>> {
        match self.0.get("tx")? {
            Value::Static(Static::List(items)) => {
                items.iter().map(Transform::from_static).collect()
            }
            _ => Err(Error::shape("Optimizer", "a malformed 'tx' attribute")),
        }
    }

    /// The paths of the parameters it updates.
    ///
    /// # Errors
    /// A malformed optimizer object.
    pub fn wrt(&self) -> Result<Vec<String>> {
        match self.0.get("wrt")? {
            Value::Static(Static::List(items)) => items
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| Error::shape("Optimizer", "a malformed 'wrt' attribute"))
                })
                .collect(),
            _ => Err(Error::shape("Optimizer", "a malformed 'wrt' attribute")),
        }
    }

    /// The optimizer's object.
    pub fn as_object(&self) -> &Object {
        &self.0
    }
}

fn dict_of(value: &Value) -> Result<Dict> {
    match value {
        Value::Dict(d) => Ok(d.clone()),
        _ => Err(Error::shape("Optimizer", "a malformed optimizer state")),
    }
}

/// `dict[k0][k1]…[kn] = value`, creating the inner dicts.
fn insert_nested(dict: &Dict, path: &Path, value: Value) -> Result<()> {
    let keys = path.keys();
    let (last, inner) = keys
        .split_last()
        .ok_or_else(|| Error::shape("Optimizer", "a parameter at the model's root"))?;
    let mut at = dict.clone();
    for key in inner {
        at = match at.get(key.clone()) {
            Ok(Value::Dict(d)) => d,
            _ => {
                let d = Dict::new();
                at.insert(key.clone(), d.clone())?;
                d
            }
        };
    }
    at.insert(last.clone(), value)
}

/// The Variable at `path` in nested dicts.
fn nested_variable(dict: &Dict, path: &Path) -> Result<Variable> {
    let mut value = Value::Dict(dict.clone());
    for key in path.keys() {
        value = dict_of(&value)?.get(key)?;
    }
    match value {
        Value::Variable(v) => Ok(v),
        _ => Err(Error::shape("Optimizer", "a malformed optimizer state")),
    }
}

fn read_slots(slots: &Dict, paths: &[Path]) -> Result<Vec<Slot>> {
    (slots.entries().into_iter())
        .map(|(_, value)| match value {
            Value::Variable(v) => Ok(Slot::Scalar(v.value())),
            Value::Dict(tree) => paths
                .iter()
                .map(|p| Ok(nested_variable(&tree, p)?.value()))
                .collect::<Result<_>>()
                .map(Slot::PerParam),
            _ => Err(Error::shape("Optimizer", "a malformed optimizer state")),
        })
        .collect()
}

fn write_slots(slots: &Dict, paths: &[Path], state: Vec<Slot>) -> Result<()> {
    for ((_, value), slot) in slots.entries().into_iter().zip(state) {
        match (value, slot) {
            (Value::Variable(v), Slot::Scalar(t)) => v.set_value(t)?,
            (Value::Dict(tree), Slot::PerParam(arrays)) => {
                for (p, a) in paths.iter().zip(arrays) {
                    nested_variable(&tree, p)?.set_value(a)?;
                }
            }
            _ => return Err(Error::shape("Optimizer", "a malformed optimizer state")),
        }
    }
    Ok(())
}

crate::common::object_handle!(Optimizer, "Optimizer");

/// `nnx.ModelAndOptimizer(model, tx, wrt=…)`: an [`Optimizer`] that holds its model as the
/// `model` attribute, so that `update` takes only the gradients and one graph node carries
/// both through `jit` (its state: `model/…`, `opt_state/…`, `step`, as in Flax).
///
/// ```
/// use nnx_core::{Result, Rngs, Tensor, VariableType, transforms::{jit, value_and_grad}};
/// use nnx_nn::{Linear, optim::{self, ModelAndOptimizer}};
/// # fn main() -> Result<()> {
/// let model = Linear::new(2, 1, &Rngs::new(0)?)?;
/// let optimizer = ModelAndOptimizer::new(&model, optim::sgd(0.1), VariableType::PARAM)?;
/// let step = jit(|o: &ModelAndOptimizer, x: &Tensor| -> Result<Tensor> {
///     let loss = |m: &Linear, x: &Tensor| m.forward(x)?.mean(None);
///     let model: Linear = o.model()?;
///     let out = value_and_grad(loss).call(&nnx_reference::Reference, (&model, x))?;
///     o.update(out.grads[0].state()?)?;
///     Ok(out.value)
/// });
/// step.call(&nnx_reference::Reference, (&optimizer, &Tensor::ones([4, 2])))?;
/// assert_eq!(optimizer.step()?.item::<u32>()?, 1);
/// assert!(optimizer.model::<Linear>()?.kernel.ptr_eq(&model.kernel)); // the same model
/// # Ok(())
/// # }
/// ```
pub struct ModelAndOptimizer(Object);

impl ModelAndOptimizer {
    /// `nnx.ModelAndOptimizer(model, tx, wrt=wrt)`: as [`Optimizer::new`], keeping `model`.
    ///
    /// # Errors
    /// As [`Optimizer::new`].
    pub fn new(
        model: &impl GraphValue,
        tx: impl Into<Chain>,
        wrt: impl Into<Filter>,
    ) -> Result<ModelAndOptimizer> {
        let object = optimizer_object("ModelAndOptimizer", model, tx.into(), wrt.into())?;
        object.set("model", model.to_value())?;
        Ok(ModelAndOptimizer(object))
    }

    /// The model, as the type it was given as (`optimizer.model`).
    ///
    /// # Errors
    /// A model that is not a `M`.
    pub fn model<M: nnx_core::graph::FromValue>(&self) -> Result<M> {
        M::from_value(&self.0.get("model")?)
    }

    /// `optimizer.update(grads)`: [`Optimizer::update`] on the model it holds.
    ///
    /// # Errors
    /// As [`Optimizer::update`].
    pub fn update(&self, grads: &State) -> Result<()> {
        self.optimizer().update(&self.0.get("model")?, grads)
    }

    /// The number of updates so far (uint32).
    ///
    /// # Errors
    /// A malformed optimizer object.
    pub fn step(&self) -> Result<Tensor> {
        self.optimizer().step()
    }

    /// The optimizer part (step, state, chain) as an [`Optimizer`] handle on the same object.
    pub fn optimizer(&self) -> Optimizer {
        Optimizer(self.0.clone())
    }

    /// The object.
    pub fn as_object(&self) -> &Object {
        &self.0
    }
}

crate::common::object_handle!(ModelAndOptimizer, "ModelAndOptimizer");
