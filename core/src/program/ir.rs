//! Programs: the typed IR that tracing records and engines execute (JAX's jaxpr).

use std::fmt;
use std::sync::OnceLock;

use super::aval::AbstractValue;
use super::primitive::{Primitive, ScanOutput};
use super::schedule::Schedule;
use crate::error::Result;
use crate::tensor::Array;

/// A variable of a [`Program`] (an index into its abstract values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VarId(pub u32);

/// An operand: a variable, or a constant array captured while tracing.
#[derive(Clone, Debug)]
pub enum Atom {
    /// A program variable.
    Var(VarId),
    /// A constant.
    Literal(Array),
}

/// One primitive application: `outputs = primitive(inputs)` (first-order primitives have
/// exactly one output; higher-order ones such as a nested `vmap` may have several).
#[derive(Clone, Debug)]
pub struct Equation {
    /// The operation.
    pub primitive: Primitive,
    /// Its operands.
    pub inputs: Vec<Atom>,
    /// The variables it defines.
    pub outputs: Vec<VarId>,
}

/// A traced function: inputs, a straight-line list of equations, outputs.
///
/// Programs are pure: all state was moved into inputs and outputs by the transform that
/// traced the function. `avals[v]` is the abstract value of variable `v`.
///
/// A program's [`Schedule`] is computed on first use and kept: do not modify a program's
/// fields after it has run (build a new one instead).
#[derive(Clone, Debug, Default)]
pub struct Program {
    /// The input variables, in argument order.
    pub inputs: Vec<VarId>,
    /// The equations, in execution order.
    pub equations: Vec<Equation>,
    /// The outputs.
    pub outputs: Vec<Atom>,
    /// The abstract value of every variable.
    pub avals: Vec<AbstractValue>,
    schedule: OnceLock<Result<Schedule>>,
}

impl Program {
    /// A program from its parts.
    pub fn new(
        inputs: Vec<VarId>,
        equations: Vec<Equation>,
        outputs: Vec<Atom>,
        avals: Vec<AbstractValue>,
    ) -> Program {
        Program {
            inputs,
            equations,
            outputs,
            avals,
            schedule: OnceLock::new(),
        }
    }

    /// The program's schedule (live equations, last uses), computed once.
    ///
    /// # Errors
    /// [`Error::MalformedProgram`](crate::Error::MalformedProgram) for a program that is not
    /// well formed.
    pub fn schedule(&self) -> Result<&Schedule> {
        self.schedule
            .get_or_init(|| Schedule::new(self))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// For each output, whether it depends on at least one input marked in `inputs`
    /// (`inputs[i]` for program input `i`). This is how a batching transform knows which
    /// outputs carry the batch axis.
    pub fn depends_on(&self, inputs: &[bool]) -> Vec<bool> {
        let mut marked = vec![false; self.avals.len()];
        for (v, &m) in self.inputs.iter().zip(inputs) {
            marked[v.0 as usize] = m;
        }
        for eq in &self.equations {
            let inputs: Vec<bool> = eq
                .inputs
                .iter()
                .map(|a| matches!(a, Atom::Var(v) if marked[v.0 as usize]))
                .collect();
            let outputs = match &eq.primitive {
                Primitive::Call { program }
                | Primitive::Remat { program, .. }
                | Primitive::CustomVjp { program, .. }
                | Primitive::Vmap { program, .. } => program.0.depends_on(&inputs),
                Primitive::Scan { program, spec } => {
                    // Iterate to a fixpoint: a carry becomes dependent once its new value is.
                    // A carry out also depends on its carry in, which it is after no
                    // iterations (`length` 0).
                    let mut inputs = inputs;
                    loop {
                        let mut outputs = program.0.depends_on(&inputs);
                        for (out, kind) in outputs.iter_mut().zip(&spec.outputs) {
                            if let ScanOutput::Carry(i) = kind {
                                *out |= inputs[*i];
                            }
                        }
                        let mut changed = false;
                        for (out, kind) in outputs.iter().zip(&spec.outputs) {
                            if let (true, ScanOutput::Carry(i)) = (*out, kind)
                                && !inputs[*i]
                            {
                                inputs[*i] = true;
                                changed = true;
                            }
                        }
                        if !changed {
                            break outputs;
                        }
                    }
                }
                Primitive::Cond { branches } => super::control::cond_depends_on(branches, &inputs),
                Primitive::While {
                    cond,
                    body,
                    cond_consts,
                    body_consts,
                } => {
                    let (cc, bc) = (*cond_consts, *body_consts);
                    super::control::while_depends_on(&cond.0, &body.0, cc, bc, &inputs).0
                }
                _ => vec![inputs.iter().any(|&m| m); eq.outputs.len()],
            };
            for (out, m) in eq.outputs.iter().zip(outputs) {
                marked[out.0 as usize] = m;
            }
        }
        self.outputs
            .iter()
            .map(|a| matches!(a, Atom::Var(v) if marked[v.0 as usize]))
            .collect()
    }

    /// Whether output `output` is input `input` itself, returned unchanged.
    pub fn returns_input(&self, output: usize, input: usize) -> bool {
        matches!(self.outputs.get(output), Some(Atom::Var(v)) if self.inputs.get(input) == Some(v))
    }

    /// The abstract values of the inputs, in order.
    pub fn input_avals(&self) -> Vec<AbstractValue> {
        self.inputs
            .iter()
            .map(|v| self.avals[v.0 as usize].clone())
            .collect()
    }

    /// The abstract values of the outputs, in order.
    pub fn output_avals(&self) -> Vec<AbstractValue> {
        self.outputs.iter().map(|a| self.aval_of(a)).collect()
    }

    /// The abstract value of an atom.
    pub fn aval_of(&self, atom: &Atom) -> AbstractValue {
        match atom {
            Atom::Var(v) => self.avals[v.0 as usize].clone(),
            Atom::Literal(a) => AbstractValue::new(a.shape().to_vec(), a.dtype(), a.is_weak()),
        }
    }
}

impl fmt::Display for Program {
    /// A jaxpr-like listing: `{ lambda ; a:f32[2,3] b:f32[3]. let c:f32[3] = matmul a b in (c) }`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |v: &VarId| format!("v{}", v.0);
        let atom = |a: &Atom| match a {
            Atom::Var(v) => name(v),
            Atom::Literal(x) => format!(
                "{}",
                AbstractValue::new(x.shape().to_vec(), x.dtype(), x.is_weak())
            ),
        };
        let inputs: Vec<String> = self
            .inputs
            .iter()
            .map(|v| format!("{}:{}", name(v), self.avals[v.0 as usize]))
            .collect();
        writeln!(f, "{{ lambda {}.", inputs.join(" "))?;
        for eq in &self.equations {
            let args: Vec<String> = eq.inputs.iter().map(atom).collect();
            let outs: Vec<String> = eq
                .outputs
                .iter()
                .map(|v| format!("{}:{}", name(v), self.avals[v.0 as usize]))
                .collect();
            writeln!(
                f,
                "    {} = {} {}",
                outs.join(" "),
                eq.primitive,
                args.join(" ")
            )?;
        }
        let outs: Vec<String> = self.outputs.iter().map(atom).collect();
        write!(f, "  in ({}) }}", outs.join(", "))
    }
}
