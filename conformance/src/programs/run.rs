//! Building a [`ProgramCase`]'s arguments and running its transform levels as user code
//! (each body runs in [`body`](super::body)).

use nnx_core::lift::Prefix;
use nnx_core::random;
use nnx_core::transforms::{Axis, Grad, ScanAxis, cond, jit, remat, scan, value_and_grad, vmap};
use nnx_core::{
    Axes, BatchStat, DType, Dict, Engine, Error, Filter, List, Object, Param, Result, Tensor,
    Value, Variable, VariableType,
};

use super::body::{pick_axis, run_body};
use super::{GradWrt, Level, ModelSpec, ProgramCase, ScanModel, VmapModel};
use crate::cases::guide::Count;

// ---------------------------------------------------------------------------------------
// Building the arguments.

/// The model's Variables in a fixed order, with whether each is a Param and its base
/// (innermost) shape and dtype.
struct Slot {
    param: bool,
    shape: Vec<usize>,
    dtype: DType,
}

impl ModelSpec {
    fn slots(&self) -> Vec<Slot> {
        let d = self.d;
        let mut slots = vec![
            Slot {
                param: true,
                shape: if self.w_matrix { vec![d, d] } else { vec![d] },
                dtype: DType::F32,
            },
            Slot {
                param: false,
                shape: vec![],
                dtype: DType::I32,
            },
            Slot {
                param: false,
                shape: vec![],
                dtype: DType::Key,
            },
            Slot {
                param: true,
                shape: vec![d],
                dtype: DType::F32,
            },
            Slot {
                param: false,
                shape: vec![d],
                dtype: DType::F32,
            },
        ];
        for _ in 0..self.layers {
            slots.push(Slot {
                param: true,
                shape: vec![d],
                dtype: DType::F32,
            });
        }
        slots
    }
}

/// Inserts the mapped axis `axis` (normalised with [`pick_axis`] for the mapped rank, as
/// the transform call does) of `size`.
fn insert_axis(shape: &mut Vec<usize>, axis: i8, size: usize) {
    let n = shape.len() + 1;
    let a = pick_axis(axis, n).unwrap_or(0).rem_euclid(n as isize);
    shape.insert(a as usize, size);
}

/// The shape the caller must pass for something whose innermost shape is `base`, given
/// how each level maps it (`vmap_axis`, `scanned`).
fn outer_shape(level: &Level, base: &[usize], role: Role) -> Vec<usize> {
    match level {
        Level::Body(_) => base.to_vec(),
        Level::Jit(inner)
        | Level::Remat(_, inner)
        | Level::Cond { inner, .. }
        | Level::Grad { inner, .. }
        | Level::Then(inner, _) => outer_shape(inner, base, role),
        Level::Vmap {
            model,
            x,
            size,
            inner,
            ..
        } => {
            let mut shape = outer_shape(inner, base, role);
            let axis = match role {
                Role::Input => *x,
                Role::Var { param } => match *model {
                    VmapModel::Broadcast => None,
                    VmapModel::All(a) => Some(a),
                    VmapModel::Params(a) => param.then_some(a),
                    VmapModel::NonParams(a) => (!param).then_some(a),
                },
            };
            if let Some(a) = axis {
                insert_axis(&mut shape, a, *size);
            }
            shape
        }
        Level::Scan {
            model,
            x,
            length,
            inner,
            ..
        } => {
            let mut shape = outer_shape(inner, base, role);
            let axis = match role {
                Role::Input if matches!(model, ScanModel::ParamsBroadcast) => None,
                Role::Input => *x,
                Role::Var { .. } => matches!(model, ScanModel::Scanned).then_some(0),
            };
            if let Some(a) = axis {
                insert_axis(&mut shape, a, *length);
            }
            shape
        }
    }
}

#[derive(Clone, Copy)]
enum Role {
    Input,
    Var { param: bool },
}

impl ProgramCase {
    fn array(&self, shape: &[usize], offset: usize) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let data = (0..n)
            .map(|i| self.values[(i + offset) % self.values.len()])
            .collect();
        Tensor::from_vec(shape, data)
    }

    fn slot_value(&self, slot: &Slot, index: usize) -> Result<Tensor> {
        let shape = outer_shape(&self.root, &slot.shape, Role::Var { param: slot.param });
        match slot.dtype {
            DType::Key => {
                let key = random::key(i64::from(self.seed));
                if shape.is_empty() {
                    Ok(key)
                } else {
                    random::split_shape(&key, &shape)
                }
            }
            DType::I32 => {
                let n: usize = shape.iter().product();
                Tensor::from_vec(&shape, (0..n as i32).collect())
            }
            _ => self.array(&shape, 3 * index + 1),
        }
    }

    /// Builds a fresh model (identical on every call).
    ///
    /// # Errors
    /// Only if the spec is inconsistent (a bug of the generator).
    pub fn build_model(&self) -> Result<Object> {
        let slots = self.model.slots();
        let values = slots
            .iter()
            .enumerate()
            .map(|(i, s)| self.slot_value(s, i))
            .collect::<Result<Vec<_>>>()?;
        let w = Param::new(values[0].clone());
        let sub = Object::new("Sub").with("b", Param::new(values[3].clone()))?;
        let layers = List::new(
            values[5..]
                .iter()
                .map(|v| Value::from(Param::new(v.clone()))),
        );
        let mut model = Object::new("Model")
            .with("w", w.clone())?
            .with("count", Count::new(values[1].clone()))?
            .with(
                "key",
                Variable::new(VariableType::RNG_KEY, values[2].clone()),
            )?
            .with("sub", sub.clone())?
            .with("layers", layers)?
            .with(
                "stats",
                Dict::new().with("mean", BatchStat::new(values[4].clone()))?,
            )?;
        if self.model.tied {
            model = model.with("tied", w)?;
        }
        if self.model.alias {
            model = model.with("alias", sub)?;
        }
        Ok(model)
    }

    /// The input array the caller passes.
    ///
    /// # Errors
    /// Only if the spec is inconsistent.
    pub fn build_input(&self) -> Result<Tensor> {
        let shape = outer_shape(&self.root, &self.x_shape, Role::Input);
        self.array(&shape, 0)
    }

    /// Builds a fresh model and input and runs the program on `engine`: the output, and the
    /// model afterwards (changed by the program, or unchanged if it failed).
    pub fn run(&self, engine: &dyn Engine) -> Result<(Result<Tensor>, Object)> {
        let model = self.build_model()?;
        let x = self.build_input()?;
        let out = self.apply(engine, &model, &x);
        Ok((out, model))
    }

    /// Runs the program on `engine` with this model and input (shaped as
    /// [`build_model`](Self::build_model) and [`build_input`](Self::build_input) make them;
    /// their values may be tracers, so that the program can be traced or differentiated).
    ///
    /// # Errors
    /// Whatever the program does wrong (generated programs may be invalid).
    pub fn apply(&self, engine: &dyn Engine, model: &Object, x: &Tensor) -> Result<Tensor> {
        run_level(&self.root, engine, model, x)
    }
}

// ---------------------------------------------------------------------------------------
// Running a program.

fn run_level(level: &Level, engine: &dyn Engine, m: &Object, x: &Tensor) -> Result<Tensor> {
    let args = [Value::from(m), Value::from(x.clone())];
    let call_inner = |inner: &Level, args: &[Value]| -> Result<Tensor> {
        run_level(inner, engine, &args[0].object()?, &args[1].as_tensor()?)
    };
    match level {
        Level::Body(body) => run_body(body, m, std::slice::from_ref(x)),
        Level::Then(inner, body) => {
            let y = run_level(inner, engine, m, x)?;
            run_body(body, m, &[y, x.clone()])
        }
        Level::Jit(inner) => jit(|a: &[Value]| Ok(Value::from(call_inner(inner, a)?)))
            .call(engine, &args[..])?
            .as_tensor(),
        Level::Remat(policy, inner) => remat(|a: &[Value]| Ok(Value::from(call_inner(inner, a)?)))
            .policy(*policy)
            .call(engine, &args[..])?
            .as_tensor(),
        Level::Cond { flip, inner } => {
            let positive = x.sum(Axes::All)?.greater(&Tensor::scalar(0.0f32))?;
            let pred = match flip {
                false => positive,
                true => positive.equal(&Tensor::scalar(false))?,
            };
            let mut all = vec![Value::from(pred)];
            all.extend(args.iter().cloned());
            cond(
                |a: &[Value]| Ok(Value::from(call_inner(inner, a)?)),
                |a: &[Value]| {
                    let y = call_inner(inner, a)?;
                    Ok(Value::from(y.add(&y)?))
                },
            )
            .call(engine, &all[..])?
            .as_tensor()
        }
        Level::Vmap {
            model,
            x: x_axis,
            out,
            size,
            inner,
        } => {
            let leaf = |a: Option<i8>| Prefix::Leaf(Axis(a.map(isize::from)));
            let state_axes = |param: Option<i8>, rest: Option<i8>| {
                Prefix::StateAxes(vec![
                    (
                        Filter::from(VariableType::PARAM),
                        Axis(param.map(isize::from)),
                    ),
                    (Filter::Everything, Axis(rest.map(isize::from))),
                ])
            };
            let model_axes = match *model {
                VmapModel::Broadcast => leaf(None),
                VmapModel::All(a) => leaf(Some(a)),
                VmapModel::Params(a) => state_axes(Some(a), None),
                VmapModel::NonParams(a) => state_axes(None, Some(a)),
            };
            vmap(|a: &[Value]| Ok(Value::from(call_inner(inner, a)?)))
                .in_axes(Prefix::Tuple(vec![
                    model_axes,
                    leaf(x_axis.map(|a| pick_axis(a, x.ndim()).map_or(a, |a| a as i8))),
                ]))
                .out_axes(leaf(*out))
                .axis_size(*size)
                .call(engine, &args[..])?
                .as_tensor()
        }
        Level::Scan {
            model,
            x: x_axis,
            out,
            length,
            reverse,
            inner,
        } => {
            let x_axes = Prefix::Leaf(match (model, x_axis) {
                (ScanModel::ParamsBroadcast, _) => ScanAxis::Carry,
                (_, None) => ScanAxis::Broadcast,
                (_, Some(a)) => ScanAxis::Axis(pick_axis(*a, x.ndim()).unwrap_or(isize::from(*a))),
            });
            let out_leaf = Prefix::Leaf(ScanAxis::Axis(isize::from(*out)));
            let (model_axes, carries) = match model {
                ScanModel::Carry => (Prefix::Leaf(ScanAxis::Carry), true),
                ScanModel::Broadcast => (Prefix::Leaf(ScanAxis::Broadcast), false),
                ScanModel::Scanned => (Prefix::Leaf(ScanAxis::Axis(0)), false),
                ScanModel::ParamsBroadcast => (
                    Prefix::StateAxes(vec![
                        (Filter::from(VariableType::PARAM), ScanAxis::Broadcast),
                        (Filter::Everything, ScanAxis::Carry),
                    ]),
                    true,
                ),
            };
            let f = |a: &[Value]| -> Result<Value> {
                let y = Value::from(call_inner(inner, a)?);
                Ok(if matches!(model, ScanModel::ParamsBroadcast) {
                    // The model's carried state is threaded through the StateAxes; the
                    // carry output is the input, carried unchanged.
                    Value::tuple(vec![a[1].clone(), y])
                } else if carries {
                    Value::tuple(vec![a[0].clone(), y])
                } else {
                    y
                })
            };
            let out_axes = if carries {
                Prefix::Tuple(vec![Prefix::Leaf(ScanAxis::Carry), out_leaf])
            } else {
                out_leaf
            };
            let result = scan(f)
                .in_axes(Prefix::Tuple(vec![model_axes, x_axes]))
                .out_axes(out_axes)
                .length(*length)
                .reverse(*reverse)
                .call(engine, &args[..])?;
            match result {
                Value::Tuple(items) if carries => items
                    .get(1)
                    .ok_or_else(|| Error::Internal {
                        what: "scan returned no ys".into(),
                    })?
                    .as_tensor(),
                other => other.as_tensor(),
            }
        }
        Level::Grad { wrt, inner } => {
            let argnums: &[usize] = match wrt {
                GradWrt::Model => &[0],
                GradWrt::Input => &[1],
                GradWrt::Both => &[0, 1],
            };
            let out = value_and_grad(|a: &[Value]| {
                let y = call_inner(inner, a)?;
                Ok(Value::from(y.astype(DType::F32)?.sum(Axes::All)?))
            })
            .argnums(argnums)
            .call(engine, &args[..])?;
            let mut parts = vec![out.value.reshape(&[1])?];
            for g in &out.grads {
                match g {
                    Grad::Array(t) => parts.push(t.reshape(&[-1])?),
                    Grad::State(s) => {
                        for (_, leaf) in s {
                            parts.push(leaf.value().reshape(&[-1])?);
                        }
                    }
                    Grad::Tree(v) => {
                        for (_, leaf) in &nnx_core::graph::state(v) {
                            parts.push(leaf.value().reshape(&[-1])?);
                        }
                    }
                }
            }
            Tensor::concatenate(&parts, 0)
        }
    }
}
