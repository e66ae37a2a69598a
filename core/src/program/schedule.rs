//! A program's execution schedule: which equations run, and when each value dies.
//!
//! Computed once per program (cached in the [`Program`]) and used by the one interpreter
//! loop ([`interpret`](super::interpret)), so every engine gets it: equations no output
//! depends on are removed (every primitive is pure), and each value is dropped right after
//! its last use, so its buffer goes back to the allocator (or can be taken over in place by
//! an engine) while the rest of the program runs. Checking the program's well-formedness
//! happens here too, once, instead of on every run.

use super::ir::{Atom, Equation, Program, VarId};
use crate::error::{Error, Result};
use crate::tensor::needs_probe;

/// The live equations of a program in execution order, with the operand reads that are last
/// (the values each step frees).
#[derive(Clone, Debug, Default)]
pub struct Schedule {
    steps: Vec<Step>,
    /// Program inputs no live equation or output reads: dropped before the first step.
    unused_inputs: Vec<VarId>,
}

/// One live equation.
#[derive(Clone, Debug)]
pub struct Step {
    /// Its index in [`Program::equations`].
    pub equation: usize,
    /// For each operand, whether it is the last read of its variable: the interpreter moves
    /// the value out instead of copying the handle, so the step frees it ([`Step::frees`]).
    pub moves: Vec<bool>,
    /// Outputs of this equation that nothing reads (of a multi-output equation).
    pub discards: Vec<VarId>,
    /// Whether an output is large enough that its buffer is tried before the kernel runs
    /// ([`check_allocation`](crate::tensor::check_allocation)); smaller ones always fit.
    pub probe: bool,
}

impl Step {
    /// The variables whose last read is this step (`eq` is its equation).
    pub fn frees<'a>(&'a self, eq: &'a Equation) -> impl Iterator<Item = VarId> + 'a {
        eq.inputs
            .iter()
            .zip(&self.moves)
            .filter_map(|(atom, &last)| match atom {
                Atom::Var(v) if last => Some(*v),
                _ => None,
            })
    }
}

impl Schedule {
    /// Schedules `program`: dead-equation removal, then last uses.
    ///
    /// # Errors
    /// [`Error::MalformedProgram`] when a variable has no abstract value, is used before it
    /// is defined, or is defined twice; [`Error::ArrayTooLarge`] when a live equation's
    /// output is too large to exist.
    pub fn new(program: &Program) -> Result<Schedule> {
        let n = program.avals.len();
        let malformed = |reason: String| Error::MalformedProgram { reason };
        let check = |v: &VarId| -> Result<usize> {
            let i = v.0 as usize;
            if i < n {
                Ok(i)
            } else {
                Err(malformed(format!("v{} has no abstract value", v.0)))
            }
        };
        // Definitions, in order.
        let mut defined = vec![false; n];
        for v in &program.inputs {
            let i = check(v)?;
            if std::mem::replace(&mut defined[i], true) {
                return Err(malformed(format!("input v{} is declared twice", v.0)));
            }
        }
        for (k, eq) in program.equations.iter().enumerate() {
            for atom in &eq.inputs {
                if let Atom::Var(v) = atom
                    && !defined[check(v)?]
                {
                    return Err(malformed(format!(
                        "v{} is used by equation {k} ({}) before it is defined",
                        v.0, eq.primitive
                    )));
                }
            }
            for v in &eq.outputs {
                let i = check(v)?;
                if std::mem::replace(&mut defined[i], true) {
                    return Err(malformed(format!("v{} is defined twice", v.0)));
                }
            }
        }
        for atom in &program.outputs {
            if let Atom::Var(v) = atom
                && !defined[check(v)?]
            {
                return Err(malformed(format!("output v{} is never defined", v.0)));
            }
        }
        // Liveness, backwards: an equation is live when one of its outputs is needed; the
        // first time (from the end) a variable is seen needed is its last use.
        let mut needed = vec![false; n];
        for atom in &program.outputs {
            if let Atom::Var(v) = atom {
                needed[v.0 as usize] = true;
            }
        }
        let mut steps = Vec::new();
        for (k, eq) in program.equations.iter().enumerate().rev() {
            if !eq.outputs.iter().any(|v| needed[v.0 as usize]) {
                continue;
            }
            let mut moves = vec![false; eq.inputs.len()];
            // From the last operand back: the first read seen from the end is the last read
            // (each variable once).
            for (position, atom) in eq.inputs.iter().enumerate().rev() {
                if let Atom::Var(v) = atom
                    && !std::mem::replace(&mut needed[v.0 as usize], true)
                {
                    moves[position] = true;
                }
            }
            let discards = eq
                .outputs
                .iter()
                .filter(|v| !needed[v.0 as usize])
                .copied()
                .collect();
            let mut probe = false;
            for v in &eq.outputs {
                let aval = &program.avals[v.0 as usize];
                probe |= needs_probe(&aval.shape, aval.dtype)?;
            }
            steps.push(Step {
                equation: k,
                moves,
                discards,
                probe,
            });
        }
        steps.reverse();
        let unused_inputs = program
            .inputs
            .iter()
            .filter(|v| !needed[v.0 as usize])
            .copied()
            .collect();
        Ok(Schedule {
            steps,
            unused_inputs,
        })
    }

    /// The live equations, in execution order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Inputs nothing reads.
    pub fn unused_inputs(&self) -> &[VarId] {
        &self.unused_inputs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::{AbstractValue, trace_fn};
    use crate::tensor::{DType, Tensor};

    #[test]
    fn dead_equations_are_removed_and_values_freed_after_their_last_use() {
        let aval = AbstractValue::new(vec![2], DType::F32, false);
        let traced = trace_fn(&[aval.clone(), aval], |xs| {
            let a = (&xs[0] + &xs[1])?; // v2, last used by b
            let _dead = (&xs[0] * 3.0)?; // v3, unused
            let b = (&a * &xs[0])?; // v4: last use of v0 and v2
            Ok((vec![b], ()))
        })
        .unwrap();
        let schedule = Schedule::new(&traced.program).unwrap();
        let live: Vec<usize> = schedule.steps().iter().map(|s| s.equation).collect();
        assert_eq!(live, vec![0, 2]);
        let frees = |k: usize| {
            let step = &schedule.steps()[k];
            let eq = &traced.program.equations[step.equation];
            step.frees(eq).collect::<Vec<_>>()
        };
        assert_eq!(frees(0), vec![VarId(1)]);
        assert_eq!(schedule.steps()[0].moves, vec![false, true]);
        let mut last = frees(1);
        last.sort();
        assert_eq!(last, vec![VarId(0), VarId(2)]);
        assert!(schedule.unused_inputs().is_empty());
    }

    #[test]
    fn malformed_programs_are_errors() {
        let mut program = trace_fn(&[AbstractValue::new(vec![], DType::F32, false)], |xs| {
            Ok((vec![(&xs[0] + Tensor::scalar(1.0f32))?], ()))
        })
        .unwrap()
        .program;
        program.equations[0].inputs[0] = Atom::Var(VarId(7));
        let err = Schedule::new(&program).unwrap_err();
        assert!(matches!(err, Error::MalformedProgram { .. }), "{err}");
    }
}
