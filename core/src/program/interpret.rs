//! The equation-by-equation evaluation loop every engine shares.

use super::ir::{Atom, Program};
use super::primitive::Primitive;
use crate::error::{Error, Result};
use crate::tensor::{Array, check_allocation};

/// Evaluates `program` on concrete inputs, asking `eval` for each equation's outputs. It
/// follows the program's [`Schedule`](super::Schedule): equations no output needs are
/// skipped, and every value is dropped right after its last use. Checks the inputs against
/// the program's abstract values first, and that each equation's outputs can be allocated
/// before asking for them.
///
/// # Errors
/// A malformed program or inputs that do not match it ([`Error::MalformedProgram`]), outputs
/// too large for the machine ([`Error::ArrayTooLarge`], [`Error::AllocationFailed`]), and
/// whatever `eval` returns.
pub fn interpret(
    program: &Program,
    inputs: &[Array],
    mut eval: impl FnMut(&Primitive, &[Array]) -> Result<Vec<Array>>,
) -> Result<Vec<Array>> {
    let schedule = program.schedule()?;
    if inputs.len() != program.inputs.len() {
        return Err(Error::MalformedProgram {
            reason: format!(
                "the program takes {} inputs, got {}",
                program.inputs.len(),
                inputs.len()
            ),
        });
    }
    // The schedule checked that every variable has an aval and is defined before use.
    let mut env: Vec<Option<Array>> = vec![None; program.avals.len()];
    for (var, value) in program.inputs.iter().zip(inputs) {
        let expected = &program.avals[var.0 as usize];
        if value.shape() != expected.shape.as_slice() || value.dtype() != expected.dtype {
            return Err(Error::MalformedProgram {
                reason: format!(
                    "input v{} expects {expected}, got {:?} {}",
                    var.0,
                    value.shape(),
                    value.dtype()
                ),
            });
        }
        env[var.0 as usize] = Some(value.clone());
    }
    for var in schedule.unused_inputs() {
        env[var.0 as usize] = None;
    }
    let read = |env: &[Option<Array>], atom: &Atom| -> Result<Array> {
        match atom {
            Atom::Literal(a) => Ok(a.clone()),
            Atom::Var(v) => env[v.0 as usize]
                .clone()
                .ok_or_else(|| Error::MalformedProgram {
                    reason: format!("v{} is read after it was freed", v.0),
                }),
        }
    };
    let mut args = Vec::new();
    for step in schedule.steps() {
        let eq = &program.equations[step.equation];
        for out in &eq.outputs {
            let aval = &program.avals[out.0 as usize];
            check_allocation(&aval.shape, aval.dtype)?;
        }
        args.clear();
        for atom in &eq.inputs {
            args.push(read(&env, atom)?);
        }
        for var in &step.frees {
            env[var.0 as usize] = None;
        }
        for (var, value) in eq.outputs.iter().zip(eval(&eq.primitive, &args)?) {
            env[var.0 as usize] = Some(value);
        }
        for var in &step.discards {
            env[var.0 as usize] = None;
        }
    }
    program.outputs.iter().map(|a| read(&env, a)).collect()
}
