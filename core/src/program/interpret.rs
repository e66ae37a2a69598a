//! The equation-by-equation evaluation loop every engine shares.

use super::ir::{Atom, Equation, Program};
use super::primitive::Primitive;
use super::schedule::Step;
use crate::error::{Error, Result};
use crate::tensor::{Array, probe};

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
    interpret_indexed(program, inputs, |_, eq, args| {
        eval(&eq.primitive, args).map(Outputs::from)
    })
}

/// What an equation evaluated to: most equations have one output, which needs no vector.
#[derive(Debug)]
pub enum Outputs<V> {
    /// The single output of a first-order equation.
    One(V),
    /// The outputs of a multi-output (higher-order) equation, in order.
    Many(Vec<V>),
    /// The single output is operand `i`, which the kernel computed in place: the loop moves
    /// it out of the operands (no copy of the handle, no placeholder left behind).
    Operand(usize),
}

impl<V> From<Vec<V>> for Outputs<V> {
    fn from(values: Vec<V>) -> Outputs<V> {
        Outputs::Many(values)
    }
}

impl<V> Outputs<V> {
    fn len(&self) -> usize {
        match self {
            Outputs::One(_) | Outputs::Operand(_) => 1,
            Outputs::Many(values) => values.len(),
        }
    }
}

/// [`interpret`], telling `eval` each equation's index in [`Program::equations`] (where an
/// engine finds what it compiled for it). The operands are lent mutably: an operand read for
/// the last time is the interpreter's only handle to its value, so a kernel may take it
/// ([`Array::take`]) and compute in its buffer when no one else holds it
/// ([`Array::unique_f32_mut`]).
///
/// # Errors
/// As [`interpret`].
pub fn interpret_indexed(
    program: &Program,
    inputs: &[Array],
    eval: impl FnMut(usize, &Equation, &mut [Array]) -> Result<Outputs<Array>>,
) -> Result<Vec<Array>> {
    interpret_owned(program, inputs.to_vec(), eval)
}

/// [`interpret_indexed`] on inputs it consumes: an input read for the last time can be
/// computed in (no handle to it is kept).
///
/// # Errors
/// As [`interpret`].
pub fn interpret_owned(
    program: &Program,
    inputs: Vec<Array>,
    mut eval: impl FnMut(usize, &Equation, &mut [Array]) -> Result<Outputs<Array>>,
) -> Result<Vec<Array>> {
    // The count is checked by the loop itself.
    for (var, value) in program.inputs.iter().zip(&inputs) {
        let expected =
            program
                .avals
                .get(var.0 as usize)
                .ok_or_else(|| Error::MalformedProgram {
                    reason: format!("input v{} has no abstract value", var.0),
                })?;
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
    }
    interpret_with(program, inputs, Array::clone, |step, eq, args| {
        if step.probe {
            for out in &eq.outputs {
                let aval = &program.avals[out.0 as usize];
                probe(&aval.shape, aval.dtype)?;
            }
        }
        eval(step.equation, eq, args)
    })
}

/// The one interpreter loop, over any kind of value: arrays (engines), tape slots
/// (reverse-mode differentiation), batched values (batching rules). Runs the program's
/// [`Schedule`](super::Schedule) — live equations in order, each value dropped after its
/// last use — turning literals into values with `literal` and asking `eval` for each
/// equation's outputs (with its [`Step`]: the equation's index and what the schedule knows
/// about it). The caller checks the inputs.
///
/// # Errors
/// A malformed program ([`Error::MalformedProgram`]), and whatever `eval` returns.
pub fn interpret_with<V: Clone>(
    program: &Program,
    inputs: Vec<V>,
    literal: impl Fn(&Array) -> V,
    mut eval: impl FnMut(&Step, &Equation, &mut [V]) -> Result<Outputs<V>>,
) -> Result<Vec<V>> {
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
    let mut env: Vec<Option<V>> = vec![None; program.avals.len()];
    for (var, value) in program.inputs.iter().zip(inputs) {
        env[var.0 as usize] = Some(value);
    }
    for var in schedule.unused_inputs() {
        env[var.0 as usize] = None;
    }
    // A last read moves the value out of the environment (freeing it there), others copy
    // the handle.
    let read = |env: &mut [Option<V>], atom: &Atom, last: bool| -> Result<V> {
        match atom {
            Atom::Literal(a) => Ok(literal(a)),
            Atom::Var(v) => {
                let slot = &mut env[v.0 as usize];
                if last { slot.take() } else { slot.clone() }.ok_or_else(|| {
                    Error::MalformedProgram {
                        reason: format!("v{} is read after it was freed", v.0),
                    }
                })
            }
        }
    };
    let mut args = Vec::new();
    for step in schedule.steps() {
        let eq = &program.equations[step.equation];
        args.clear();
        for (atom, &last) in eq.inputs.iter().zip(&step.moves) {
            args.push(read(&mut env, atom, last)?);
        }
        let outputs = eval(step, eq, &mut args)?;
        if outputs.len() != eq.outputs.len() {
            return Err(Error::MalformedProgram {
                reason: format!(
                    "equation {} ({}) gave {} outputs for {} variables",
                    step.equation,
                    eq.primitive,
                    outputs.len(),
                    eq.outputs.len()
                ),
            });
        }
        match (outputs, eq.outputs.as_slice()) {
            (Outputs::One(value), [var]) => env[var.0 as usize] = Some(value),
            (Outputs::Operand(i), [var]) if i < args.len() => {
                env[var.0 as usize] = Some(args.swap_remove(i));
            }
            (Outputs::One(_) | Outputs::Operand(_), _) => unreachable_outputs()?,
            (Outputs::Many(values), vars) => {
                for (var, value) in vars.iter().zip(values) {
                    env[var.0 as usize] = Some(value);
                }
            }
        }
        args.clear();
        for var in &step.discards {
            env[var.0 as usize] = None;
        }
    }
    program
        .outputs
        .iter()
        .map(|a| read(&mut env, a, false))
        .collect()
}

/// A single output for several variables (the count was checked before), or an operand
/// index out of range.
fn unreachable_outputs() -> Result<()> {
    Err(Error::MalformedProgram {
        reason: "an equation's single output does not fit its variables or operands".into(),
    })
}
