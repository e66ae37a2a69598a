//! Batching rules of control flow: `cond` (the same index in every lane, or one per lane)
//! and `while` (lanes that stop at different iterations).

use std::sync::Arc;

use nnx_core::program::{
    Atom, Batching, Equation, Primitive, Program, ProgramRef, cond_depends_on, while_depends_on,
};
use nnx_core::tensor::elementwise::CompareOp;

use super::{Builder, Value, batched_program};

impl Builder {
    /// A `cond` with batched operands. With the same index in every lane, the same `cond`
    /// over the batched branches (an output batched when a branch computes it from a
    /// batched operand); with a batched index, every branch
    /// runs on the whole batch and each output is selected lane by lane (JAX's rule): the
    /// branch `k` a lane takes is the first with `index <= k`, the last for larger indexes,
    /// which is the index clamped as `cond` clamps it.
    pub(super) fn cond(&mut self, branches: &[ProgramRef], args: Vec<Value>) -> Option<Vec<Value>> {
        let (index, operands) = args.split_first()?;
        if !index.batched {
            // An output is batched when a branch computes it from a batched operand.
            let in_batched: Vec<bool> = operands.iter().map(|v| v.batched).collect();
            let flags: Vec<bool> = args.iter().map(|v| v.batched).collect();
            let batched = cond_depends_on(branches, &flags);
            let batching = Batching {
                in_axes: in_batched.iter().map(|&b| b.then_some(0)).collect(),
                out_axes: batched.iter().map(|&b| b.then_some(0)).collect(),
                axis_size: self.size,
            };
            let bodies = (branches.iter())
                .map(|b| batched_program(&b.0, &batching).map(|p| ProgramRef(Arc::new(p))))
                .collect::<Option<Vec<_>>>()?;
            let inputs = args.iter().map(|v| v.atom.clone()).collect();
            let outs = self.emit_many(Primitive::Cond { branches: bodies }, inputs)?;
            return Some(
                (outs.into_iter().zip(batched))
                    .map(|(atom, batched)| Value { atom, batched })
                    .collect(),
            );
        }
        let mut taken = (branches.iter())
            .map(|b| self.body(&b.0, operands.to_vec()))
            .collect::<Option<Vec<_>>>()?;
        let mut result = taken.pop()?;
        let synthetic = |primitive| Equation {
            primitive,
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        // An output every branch passes through unchanged (state no branch updates) is
        // that value, batched or not, not a selection.
        let same_var =
            |a: &Atom, b: &Atom| matches!((a, b), (Atom::Var(x), Atom::Var(y)) if x == y);
        let passed: Vec<bool> = (0..result.len())
            .map(|j| {
                taken
                    .iter()
                    .all(|outs| same_var(&outs[j].atom, &result[j].atom))
            })
            .collect();
        for (k, outputs) in taken.into_iter().enumerate().rev() {
            let bound = Value {
                atom: Atom::Literal(nnx_core::Array::scalar(k as i32)),
                batched: false,
            };
            let at_most = synthetic(Primitive::Compare(CompareOp::Le));
            let pred = self.equation(&at_most, vec![index.clone(), bound])?.pop()?;
            let select = synthetic(Primitive::Select);
            for ((acc, out), &passed) in result.iter_mut().zip(outputs).zip(&passed) {
                if passed {
                    continue;
                }
                *acc = self
                    .equation(&select, vec![pred.clone(), out, acc.clone()])?
                    .pop()?;
            }
        }
        Some(result)
    }

    /// A `while` loop with batched operands (JAX's rule): the loop runs while the predicate
    /// holds in some lane, and each iteration keeps the new values only in the lanes whose
    /// predicate holds, so that every lane ends where its own loop would. A loop value is
    /// batched when it starts batched, when the body computes it from something batched, or
    /// when the body changes it and the predicate is batched (lanes stop at different
    /// iterations); a value no lane changes differently (such as state the loop only reads)
    /// stays unbatched. The body also reads the predicate's constants (after its own).
    pub(super) fn while_loop(
        &mut self,
        cond: &Program,
        body: &Program,
        cond_consts: usize,
        body_consts: usize,
        args: Vec<Value>,
    ) -> Option<Vec<Value>> {
        let (consts, values) = args.split_at(cond_consts + body_consts);
        let (cc, bc) = consts.split_at(cond_consts);
        let flags: Vec<bool> = args.iter().map(|v| v.batched).collect();
        let (batched, pred_batched) =
            while_depends_on(cond, body, cond_consts, body_consts, &flags);
        let values = (values.iter().zip(&batched))
            .map(|(v, &b)| {
                Some(Value {
                    atom: if b { self.batched(v)? } else { v.atom.clone() },
                    batched: b,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        // A sub-program's inputs standing for `of`, batched as they are.
        let inputs_for = |this: &Builder, sub: &mut Builder, of: &[Value]| -> Vec<Value> {
            of.iter()
                .map(|v| Value {
                    atom: Atom::Var(sub.var(this.aval(&v.atom))),
                    batched: v.batched,
                })
                .collect()
        };
        let var_of = |v: &Value| match v.atom {
            Atom::Var(var) => Some(var),
            Atom::Literal(_) => None,
        };
        let fresh = || Builder {
            avals: Vec::new(),
            equations: Vec::new(),
            size: self.size,
        };
        // The predicate: whether it holds in any lane.
        let mut sub = fresh();
        let c_in = inputs_for(self, &mut sub, cc);
        let v_in = inputs_for(self, &mut sub, &values);
        let holds = sub.body(cond, c_in.iter().chain(&v_in).cloned().collect())?;
        let holds = holds.first()?;
        let any = match holds.batched && pred_batched {
            false => holds.atom.clone(),
            true => {
                let sum = Primitive::Reduce {
                    op: nnx_core::tensor::ReduceOp::Sum,
                    axes: vec![0],
                    keepdims: false,
                };
                let count = sub.emit(sum, vec![holds.atom.clone()])?;
                let zero = Atom::Literal(nnx_core::Array::scalar(0i32));
                sub.emit(Primitive::Compare(CompareOp::Gt), vec![count, zero])?
            }
        };
        let inputs = c_in
            .iter()
            .chain(&v_in)
            .map(var_of)
            .collect::<Option<_>>()?;
        let cond_program = Program::new(inputs, sub.equations, vec![any], sub.avals);
        // The body: new values where the predicate holds, the old ones elsewhere.
        let mut sub = fresh();
        let b_in = inputs_for(self, &mut sub, bc);
        let c_in = inputs_for(self, &mut sub, cc);
        let v_in = inputs_for(self, &mut sub, &values);
        let holds = sub.body(cond, c_in.iter().chain(&v_in).cloned().collect())?;
        let next = sub.body(body, b_in.iter().chain(&v_in).cloned().collect())?;
        let select = Equation {
            primitive: Primitive::Select,
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        let mut outputs = Vec::with_capacity(next.len());
        for ((new, old), &b) in next.into_iter().zip(&v_in).zip(&batched) {
            outputs.push(match (b, pred_batched) {
                (true, true) => {
                    let kept =
                        sub.equation(&select, vec![holds.first()?.clone(), new, old.clone()])?;
                    sub.batched(kept.first()?)?
                }
                (true, false) => sub.batched(&new)?,
                (false, _) if new.batched => return None,
                (false, _) => new.atom,
            });
        }
        let inputs = (b_in.iter().chain(&c_in).chain(&v_in))
            .map(var_of)
            .collect::<Option<_>>()?;
        let body_program = Program::new(inputs, sub.equations, outputs, sub.avals);
        let operands = (cc.iter().chain(bc).chain(cc))
            .map(|v| v.atom.clone())
            .chain(values.into_iter().map(|v| v.atom))
            .collect();
        let outs = self.emit_many(
            Primitive::While {
                cond: ProgramRef(Arc::new(cond_program)),
                body: ProgramRef(Arc::new(body_program)),
                cond_consts,
                body_consts: body_consts + cond_consts,
            },
            operands,
        )?;
        Some(
            (outs.into_iter().zip(batched))
                .map(|(atom, batched)| Value { atom, batched })
                .collect(),
        )
    }
}
