//! The shape and dtype rule of every first-order primitive ([`Primitive::abstract_eval`]):
//! what tracing records and what engines check before they run anything.

use super::aval::AbstractValue;
use super::primitive::Primitive;
use crate::error::{Error, Result};
use crate::tensor::elementwise::BinaryOp;
use crate::tensor::{DType, ReduceOp, broadcast_shapes, element_count, matmul_shape, promote};

impl Primitive {
    /// The shapes and dtypes of the outputs for inputs of the given shapes and dtypes,
    /// validating exactly what evaluation would.
    ///
    /// # Errors
    /// The same shape and dtype errors evaluation would report; [`Error::MalformedProgram`]
    /// for the wrong number of operands, or a higher-order primitive (it has several
    /// outputs: use [`Primitive::output_avals`]).
    pub fn abstract_eval(&self, inputs: &[AbstractValue]) -> Result<AbstractValue> {
        let arity = |n: usize| -> Result<()> {
            if inputs.len() == n {
                Ok(())
            } else {
                Err(Error::malformed_program(format!(
                    "{} takes {n} operands, got {}",
                    self.name(),
                    inputs.len()
                )))
            }
        };
        let first = inputs.first();
        let one = || -> Result<&AbstractValue> {
            arity(1)?;
            first.ok_or_else(|| Error::malformed_program(format!("{} has no operand", self.name())))
        };
        Ok(match self {
            Primitive::Binary(op) => {
                arity(2)?;
                let (a, b) = (&inputs[0], &inputs[1]);
                let shape = broadcast_shapes(op.name(), &a.shape, &b.shape)?;
                let (mut dtype, weak) =
                    promote(a.dtype, a.weak, b.dtype, b.weak).ok_or(Error::DTypeMismatch {
                        op: op.name(),
                        lhs: a.dtype,
                        rhs: b.dtype,
                    })?;
                if !dtype.is_numeric() {
                    return Err(Error::UnsupportedDType {
                        op: op.name(),
                        dtype,
                        expected: Some("int32, uint32 or float32"),
                    });
                }
                if *op == BinaryOp::Div {
                    dtype = DType::F32;
                }
                AbstractValue::new(shape, dtype, weak)
            }
            Primitive::Compare(op) => {
                arity(2)?;
                let (a, b) = (&inputs[0], &inputs[1]);
                let shape = broadcast_shapes(op.name(), &a.shape, &b.shape)?;
                promote(a.dtype, a.weak, b.dtype, b.weak).ok_or(Error::DTypeMismatch {
                    op: op.name(),
                    lhs: a.dtype,
                    rhs: b.dtype,
                })?;
                AbstractValue::new(shape, DType::Bool, false)
            }
            Primitive::Unary(op) => {
                let a = one()?;
                if !a.dtype.is_numeric() {
                    return Err(Error::UnsupportedDType {
                        op: op.name(),
                        dtype: a.dtype,
                        expected: Some("int32, uint32 or float32"),
                    });
                }
                let dtype = if op.is_transcendental() {
                    DType::F32
                } else {
                    a.dtype
                };
                AbstractValue::new(a.shape.clone(), dtype, a.weak)
            }
            Primitive::Select => {
                arity(3)?;
                let (c, t, f) = (&inputs[0], &inputs[1], &inputs[2]);
                if c.dtype != DType::Bool {
                    return Err(Error::DTypeMismatch {
                        op: "select",
                        lhs: c.dtype,
                        rhs: DType::Bool,
                    });
                }
                let (dtype, weak) =
                    promote(t.dtype, t.weak, f.dtype, f.weak).ok_or(Error::DTypeMismatch {
                        op: "select",
                        lhs: t.dtype,
                        rhs: f.dtype,
                    })?;
                let value_shape = broadcast_shapes("select", &t.shape, &f.shape)?;
                AbstractValue::new(
                    broadcast_shapes("select", &c.shape, &value_shape)?,
                    dtype,
                    weak,
                )
            }
            Primitive::Matmul => {
                arity(2)?;
                let (a, b) = (&inputs[0], &inputs[1]);
                let (dtype, weak) = promote(a.dtype, a.weak, b.dtype, b.weak)
                    .filter(|(d, _)| d.is_numeric())
                    .ok_or(Error::DTypeMismatch {
                        op: "matmul",
                        lhs: a.dtype,
                        rhs: b.dtype,
                    })?;
                AbstractValue::new(matmul_shape(&a.shape, &b.shape)?, dtype, weak)
            }
            Primitive::Reduce { op, axes, keepdims } => {
                let a = one()?;
                let shape = (0..a.shape.len())
                    .filter_map(|i| match (axes.contains(&i), keepdims) {
                        (true, true) => Some(1),
                        (true, false) => None,
                        (false, _) => Some(a.shape[i]),
                    })
                    .collect();
                let dtype = match (op, a.dtype) {
                    (ReduceOp::Mean, _) => DType::F32,
                    (ReduceOp::Sum, DType::Bool) => DType::I32,
                    (_, d) => d,
                };
                AbstractValue::new(shape, dtype, a.weak)
            }
            Primitive::Reshape { shape } => {
                let a = one()?;
                if element_count(shape)? != a.size() {
                    return Err(Error::shape(
                        "reshape",
                        format!(
                            "cannot reshape array of shape {:?} into shape {shape:?}",
                            a.shape
                        ),
                    ));
                }
                AbstractValue::new(shape.clone(), a.dtype, a.weak)
            }
            Primitive::Transpose { perm } => {
                let a = one()?;
                AbstractValue::new(perm.iter().map(|&p| a.shape[p]).collect(), a.dtype, a.weak)
            }
            Primitive::BroadcastTo { shape } => {
                let a = one()?;
                AbstractValue::new(shape.clone(), a.dtype, a.weak)
            }
            Primitive::ExpandDims { axis } => {
                let a = one()?;
                let mut shape = a.shape.clone();
                shape.insert(*axis, 1);
                AbstractValue::new(shape, a.dtype, a.weak)
            }
            Primitive::Squeeze { axes } => {
                let a = one()?;
                let shape = a
                    .shape
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !axes.contains(i))
                    .map(|(_, &d)| d)
                    .collect();
                AbstractValue::new(shape, a.dtype, a.weak)
            }
            Primitive::IndexAxis { axis, .. } => {
                let a = one()?;
                let mut shape = a.shape.clone();
                shape.remove(*axis);
                AbstractValue::new(shape, a.dtype, a.weak)
            }
            Primitive::SliceAxis { axis, start, end } => {
                let a = one()?;
                let mut shape = a.shape.clone();
                shape[*axis] = end - start;
                AbstractValue::new(shape, a.dtype, a.weak)
            }
            Primitive::Pad {
                axis,
                before,
                after,
            } => {
                let a = one()?;
                let shape = crate::tensor::padded_shape(&a.shape, *axis, *before, *after)?;
                AbstractValue::new(shape, a.dtype, a.weak)
            }
            Primitive::Cumsum { axis, .. } => {
                let a = one()?;
                check_axis("cumsum", *axis, a)?;
                let dtype = match a.dtype {
                    DType::Bool => DType::I32,
                    DType::Key => return Err(unsupported_key("cumsum")),
                    d => d,
                };
                AbstractValue::new(a.shape.clone(), dtype, a.weak)
            }
            Primitive::ArgReduce { op, axis } => {
                let a = one()?;
                check_axis(op.name(), *axis, a)?;
                if a.dtype == DType::Key {
                    return Err(unsupported_key(op.name()));
                }
                if a.shape[*axis] == 0 {
                    return Err(Error::shape(
                        op.name(),
                        format!("attempt to get {} of an empty sequence", op.name()),
                    ));
                }
                let mut shape = a.shape.clone();
                shape.remove(*axis);
                AbstractValue::new(shape, DType::I32, false)
            }
            Primitive::Take { axis, .. } => {
                arity(2)?;
                let (table, indices) = (&inputs[0], &inputs[1]);
                check_axis("take", *axis, table)?;
                crate::tensor::check_indices(indices.dtype)?;
                let shape = crate::tensor::take_shape(&table.shape, &indices.shape, *axis);
                AbstractValue::new(shape, table.dtype, table.weak)
            }
            Primitive::DynamicSlice { axis, size } => {
                arity(2)?;
                let (a, start) = (&inputs[0], &inputs[1]);
                crate::tensor::check_start(&start.shape, start.dtype)?;
                crate::tensor::check_slice_window(&a.shape, *axis, *size)?;
                let mut shape = a.shape.clone();
                shape[*axis] = *size;
                AbstractValue::new(shape, a.dtype, a.weak)
            }
            Primitive::DynamicUpdateSlice { axis } => {
                arity(3)?;
                let (a, update, start) = (&inputs[0], &inputs[1], &inputs[2]);
                check_axis("dynamic_update_slice", *axis, a)?;
                crate::tensor::check_start(&start.shape, start.dtype)?;
                crate::tensor::check_update(&a.shape, a.dtype, &update.shape, update.dtype, *axis)?;
                AbstractValue::new(a.shape.clone(), a.dtype, a.weak)
            }
            Primitive::TakeTranspose { axis, size } => {
                arity(2)?;
                let (taken, indices) = (&inputs[0], &inputs[1]);
                crate::tensor::check_indices(indices.dtype)?;
                if !taken.dtype.is_numeric() {
                    return Err(Error::UnsupportedDType {
                        op: "take_transpose",
                        dtype: taken.dtype,
                        expected: Some("int32, uint32 or float32"),
                    });
                }
                let shape = crate::tensor::take_transpose_shape(
                    &taken.shape,
                    &indices.shape,
                    *axis,
                    *size,
                )?;
                AbstractValue::new(shape, taken.dtype, taken.weak)
            }
            Primitive::QrQ => {
                let a = one()?;
                crate::tensor::check_tall(&a.shape)?;
                if a.dtype != DType::F32 {
                    return Err(Error::UnsupportedDType {
                        op: "qr_q",
                        dtype: a.dtype,
                        expected: Some("float32"),
                    });
                }
                a.clone()
            }
            Primitive::TriangularSolve(spec) => {
                arity(2)?;
                let (a, b) = (&inputs[0], &inputs[1]);
                let shape = spec.check((&a.shape, a.dtype), (&b.shape, b.dtype))?;
                AbstractValue::new(shape, DType::F32, a.weak && b.weak)
            }
            Primitive::Patches { windows } => {
                let a = one()?;
                if a.dtype == DType::Key {
                    return Err(unsupported_key("patches"));
                }
                AbstractValue::new(windows.patches_shape(&a.shape)?, a.dtype, a.weak)
            }
            Primitive::PatchesTranspose { windows, spatial } => {
                let a = one()?;
                if !a.dtype.is_numeric() {
                    return Err(Error::UnsupportedDType {
                        op: "patches_transpose",
                        dtype: a.dtype,
                        expected: Some("int32, uint32 or float32"),
                    });
                }
                let shape = crate::tensor::patches_input_shape(windows, &a.shape, spatial)?;
                AbstractValue::new(shape, a.dtype, a.weak)
            }
            Primitive::Concatenate { axis } => {
                let a =
                    first.ok_or_else(|| Error::shape("concatenate", "need at least one array"))?;
                let mut shape = a.shape.clone();
                shape[*axis] = inputs
                    .iter()
                    .try_fold(0usize, |n, x| n.checked_add(x.shape[*axis]))
                    .ok_or_else(|| Error::ArrayTooLarge {
                        shape: shape.clone(),
                    })?;
                AbstractValue::new(shape, a.dtype, inputs.iter().all(|x| x.weak))
            }
            Primitive::Stack { axis } => {
                let a = first.ok_or_else(|| Error::shape("stack", "need at least one array"))?;
                let mut shape = a.shape.clone();
                shape.insert(*axis, inputs.len());
                AbstractValue::new(shape, a.dtype, inputs.iter().all(|x| x.weak))
            }
            Primitive::Astype { dtype } => {
                let a = one()?;
                AbstractValue::new(a.shape.clone(), *dtype, false)
            }
            Primitive::StopGradient => one()?.clone(),
            Primitive::Random(op) => {
                let key = one()?;
                if key.dtype != DType::Key {
                    return Err(Error::DTypeMismatch {
                        op: "random",
                        lhs: key.dtype,
                        rhs: DType::Key,
                    });
                }
                AbstractValue::new(op.output_shape(&key.shape)?, op.output_dtype(), false)
            }
            Primitive::SeedKeys => {
                let a = one()?;
                if !matches!(a.dtype, DType::I32 | DType::U32) {
                    return Err(Error::UnsupportedDType {
                        op: "random_seed",
                        dtype: a.dtype,
                        expected: Some("int32 or uint32 seeds"),
                    });
                }
                AbstractValue::new(a.shape.clone(), DType::Key, false)
            }
            Primitive::Collective(op) => op.abstract_eval(inputs)?,
            Primitive::Call { .. }
            | Primitive::Remat { .. }
            | Primitive::CustomVjp { .. }
            | Primitive::Vmap { .. }
            | Primitive::Scan { .. }
            | Primitive::Cond { .. }
            | Primitive::While { .. }
            | Primitive::ShardMap { .. } => {
                return Err(Error::malformed_program(format!(
                    "{} has several outputs; use output_avals",
                    self.name()
                )));
            }
            Primitive::FoldInEach => {
                arity(2)?;
                let (keys, data) = (&inputs[0], &inputs[1]);
                if keys.dtype != DType::Key || data.dtype != DType::U32 {
                    return Err(Error::DTypeMismatch {
                        op: "fold_in_each",
                        lhs: keys.dtype,
                        rhs: data.dtype,
                    });
                }
                crate::random::check_fold_in_each_shapes(&keys.shape, &data.shape)?;
                AbstractValue::new(keys.shape.clone(), DType::Key, false)
            }
        })
    }
}

fn unsupported_key(op: &'static str) -> Error {
    Error::UnsupportedDType {
        op,
        dtype: DType::Key,
        expected: None,
    }
}

/// A malformed-program error unless `axis` is an axis of `a`.
fn check_axis(op: &str, axis: usize, a: &AbstractValue) -> Result<()> {
    if axis < a.shape.len() {
        Ok(())
    } else {
        Err(Error::malformed_program(format!(
            "{op}: axis {axis} of an array of rank {}",
            a.shape.len()
        )))
    }
}
