//! Control flow's runtime rules, shared by every engine and both differentiation modes:
//! which branch a [`Primitive::Cond`](super::Primitive::Cond) takes, and the one while loop
//! ([`while_loop`]), over any kind of value (arrays, tape slots, duals).

use super::ir::{Atom, Program};
use super::primitive::ProgramRef;
use crate::error::{Error, Result};
use crate::tensor::{Array, DType};

/// The branch an index selects among `branches`: the index clamped to `0..branches`, as
/// `lax.switch` does (so a negative index takes the first branch, one past the end the
/// last).
///
/// # Errors
/// [`Error::ControlFlow`] for an index that is not an integer scalar, or no branches.
pub fn branch_index(index: &Array, branches: usize) -> Result<usize> {
    if branches == 0 {
        return Err(Error::malformed_program("cond has no branch"));
    }
    if !index.shape().is_empty() {
        return Err(Error::ControlFlow(format!(
            "the branch index must be a scalar, got shape {:?}",
            index.shape()
        )));
    }
    let i: i64 = match index.dtype() {
        DType::I32 => i64::from(index.item::<i32>()?),
        DType::U32 => i64::from(index.item::<u32>()?),
        DType::Bool => i64::from(index.item::<bool>()?),
        other => {
            return Err(Error::ControlFlow(format!(
                "the branch index must be an integer scalar, got {other}"
            )));
        }
    };
    Ok(i.clamp(0, branches as i64 - 1) as usize)
}

/// Whether a predicate's value (a bool scalar) holds.
///
/// # Errors
/// [`Error::ControlFlow`] for anything but a bool scalar.
pub fn predicate(value: &Array) -> Result<bool> {
    if !value.shape().is_empty() || value.dtype() != DType::Bool {
        return Err(Error::ControlFlow(format!(
            "a while_loop predicate must return a bool scalar, got {}",
            value.aval()
        )));
    }
    value.item::<bool>()
}

/// Runs a while loop over `inputs` laid out as a [`Primitive::While`](super::Primitive::While)'s
/// operands (`cond_consts` predicate constants, `body_consts` body constants, the loop
/// values): while `holds(state, predicate constants ++ values)`, the values become
/// `body(state, body constants ++ values)`. Returns the final values.
///
/// # Errors
/// Fewer operands than constants, and whatever `holds` and `body` return.
pub fn while_loop<S, V: Clone>(
    state: &mut S,
    cond_consts: usize,
    body_consts: usize,
    inputs: &[V],
    mut holds: impl FnMut(&mut S, &[V]) -> Result<bool>,
    mut body: impl FnMut(&mut S, &[V]) -> Result<Vec<V>>,
) -> Result<Vec<V>> {
    if inputs.len() < cond_consts + body_consts {
        return Err(Error::malformed_program(format!(
            "while takes {cond_consts} + {body_consts} constants, got {} operands",
            inputs.len()
        )));
    }
    let (cond_args, rest) = inputs.split_at(cond_consts);
    let (body_args, init) = rest.split_at(body_consts);
    let mut values = init.to_vec();
    loop {
        let args: Vec<V> = cond_args.iter().chain(&values).cloned().collect();
        if !holds(state, &args)? {
            return Ok(values);
        }
        let args: Vec<V> = body_args.iter().chain(&values).cloned().collect();
        let next = body(state, &args)?;
        if next.len() != values.len() {
            return Err(Error::malformed_program(format!(
                "a while body returned {} values for {} loop values",
                next.len(),
                values.len()
            )));
        }
        values = next;
    }
}

/// [`Program::depends_on`] for a `cond` equation (operand 0 the index; `inputs` says
/// which operands depend): an output that every branch returns as the same operand,
/// unchanged, depends on that operand only; any other output depends on the index and on
/// what the branches compute it from. Batching rules use it to know which outputs are
/// batched.
pub fn cond_depends_on(branches: &[ProgramRef], inputs: &[bool]) -> Vec<bool> {
    let Some((&index, operands)) = inputs.split_first() else {
        return Vec::new();
    };
    let Some(first) = branches.first() else {
        return Vec::new();
    };
    let passed = |branch: &Program, j: usize| match branch.outputs.get(j) {
        Some(Atom::Var(v)) => branch.inputs.iter().position(|i| i == v),
        _ => None,
    };
    let each: Vec<Vec<bool>> = branches.iter().map(|b| b.0.depends_on(operands)).collect();
    (0..first.0.outputs.len())
        .map(|j| {
            let same = passed(&first.0, j)
                .filter(|&k| branches.iter().all(|b| passed(&b.0, j) == Some(k)));
            match same {
                Some(k) => operands[k],
                None => index || each.iter().any(|d| d[j]),
            }
        })
        .collect()
}

/// [`Program::depends_on`] for a `while` equation, with whether its number of iterations
/// depends: a loop value depends once
/// its next value does, and every value the body changes does when the number of
/// iterations does (one the body passes through unchanged stays as it came in).
pub fn while_depends_on(
    cond: &Program,
    body: &Program,
    cond_consts: usize,
    body_consts: usize,
    inputs: &[bool],
) -> (Vec<bool>, bool) {
    let (cc, bc) = (cond_consts, body_consts);
    let (Some(cond_inputs), Some(body_inputs)) = (inputs.get(..cc), inputs.get(cc..cc + bc)) else {
        return (Vec::new(), false);
    };
    let mut values: Vec<bool> = inputs.iter().skip(cc + bc).copied().collect();
    let moves: Vec<bool> = (0..values.len())
        .map(|k| !body.returns_input(k, bc + k))
        .collect();
    loop {
        let at = |consts: &[bool]| -> Vec<bool> { consts.iter().chain(&values).copied().collect() };
        let count = cond.depends_on(&at(cond_inputs)).contains(&true);
        let next = body.depends_on(&at(body_inputs));
        let mut changed = false;
        for ((v, n), &moves) in values.iter_mut().zip(next).zip(&moves) {
            if (n || (count && moves)) && !*v {
                *v = true;
                changed = true;
            }
        }
        if !changed {
            return (values, count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_is_clamped_like_lax_switch() {
        let at = |i: i32| branch_index(&Array::scalar(i), 3).unwrap();
        assert_eq!((at(-4), at(0), at(1), at(2), at(9)), (0, 0, 1, 2, 2));
        assert_eq!(branch_index(&Array::scalar(true), 2).unwrap(), 1);
        assert!(matches!(
            branch_index(&Array::scalar(1.0f32), 2),
            Err(Error::ControlFlow(_))
        ));
        assert!(branch_index(&Array::from_vec(&[2], vec![0i32, 1]).unwrap(), 2).is_err());
    }

    #[test]
    fn the_loop_threads_values_and_reads_constants() {
        // while i < limit: (i, acc) = (i + 1, acc + step)
        let out = while_loop(
            &mut 0usize,
            1,
            1,
            &[5, 2, 0, 0],
            |calls, a| {
                *calls += 1;
                Ok(a[1] < a[0])
            },
            |_, a| Ok(vec![a[1] + 1, a[2] + a[0]]),
        )
        .unwrap();
        assert_eq!(out, vec![5, 10]);
        assert!(predicate(&Array::scalar(1i32)).is_err());
    }
}
