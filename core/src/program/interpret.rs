//! The equation-by-equation evaluation loop every interpreting engine shares.

use super::ir::{Atom, Program, VarId};
use super::primitive::Primitive;
use crate::error::{Error, Result};
use crate::tensor::{Array, check_allocation};

/// Evaluates `program` on concrete inputs, equation by equation, asking `eval` for each
/// equation's outputs. Checks the inputs against the program's abstract values first, and
/// that each equation's outputs can be allocated before asking for them.
///
/// # Errors
/// Inputs that do not match the program, outputs too large for the machine
/// ([`Error::ArrayTooLarge`], [`Error::AllocationFailed`]), and whatever `eval` returns.
pub fn interpret(
    program: &Program,
    inputs: &[Array],
    mut eval: impl FnMut(&Primitive, &[Array]) -> Result<Vec<Array>>,
) -> Result<Vec<Array>> {
    if inputs.len() != program.inputs.len() {
        return Err(Error::InvalidValue(format!(
            "program takes {} inputs, got {}",
            program.inputs.len(),
            inputs.len()
        )));
    }
    let mut env: Vec<Option<Array>> = vec![None; program.avals.len()];
    // Programs are plain data: a variable without an aval is an error, not a panic.
    let aval_of = |var: VarId| {
        program
            .avals
            .get(var.0 as usize)
            .ok_or_else(|| Error::InvalidValue(format!("v{} has no abstract value", var.0)))
    };
    for (var, value) in program.inputs.iter().zip(inputs) {
        let expected = aval_of(*var)?;
        if value.shape() != expected.shape.as_slice() || value.dtype() != expected.dtype {
            return Err(Error::InvalidValue(format!(
                "program input v{} expects {expected}, got {:?} {}",
                var.0,
                value.shape(),
                value.dtype()
            )));
        }
        env[var.0 as usize] = Some(value.clone());
    }
    let read =
        |env: &[Option<Array>], atom: &Atom| -> Result<Array> {
            match atom {
                Atom::Literal(a) => Ok(a.clone()),
                Atom::Var(v) => env.get(v.0 as usize).cloned().flatten().ok_or_else(|| {
                    Error::InvalidValue(format!("v{} used before it is defined", v.0))
                }),
            }
        };
    for eq in &program.equations {
        for out in &eq.outputs {
            let aval = aval_of(*out)?;
            check_allocation(&aval.shape, aval.dtype)?;
        }
        let args = eq
            .inputs
            .iter()
            .map(|a| read(&env, a))
            .collect::<Result<Vec<_>>>()?;
        for (var, value) in eq.outputs.iter().zip(eval(&eq.primitive, &args)?) {
            env[var.0 as usize] = Some(value);
        }
    }
    program.outputs.iter().map(|a| read(&env, a)).collect()
}
