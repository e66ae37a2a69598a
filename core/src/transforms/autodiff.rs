//! Reverse-mode differentiation of programs: re-evaluate a program with tensor operations
//! (which record into the enclosing trace, or run eagerly) keeping every intermediate, then
//! sweep back applying each primitive's vector-Jacobian product rule.
//!
//! Because the backward pass is itself made of tensor operations, gradients nest: inside
//! `vmap` they are recorded into the vmap trace (per-example gradients), and they can be
//! differentiated again.
//!
//! Loops are not unrolled. A `vmap` equation is recorded whole, and its backward pass is
//! one `vmap` of its body's backward pass ([`loop_vjp::vmap_vjp`]): `grad(vmap(f))` is two
//! vectorised equations whatever the number of lanes. A `scan` is recorded whole too,
//! saving its carry at every iteration, and its backward pass is one reverse `scan` of its
//! body's backward pass ([`loop_vjp::scan_vjp`]): program size independent of the length,
//! memory linear in it. `call`s are inlined; the rare loop that cannot be recorded whole
//! (nothing traced to record into, no iterations, or an unmapped output) is unrolled onto
//! the tape. A checkpointed call (`remat`) is recorded whole and its backward pass
//! recomputes it ([`remat_vjp`]).

use std::sync::Arc;

use super::control_diff;
use super::loop_vjp;
use super::rules::{differentiable, first_order_vjp, zeros_like};
use crate::error::{Error, Result};
use crate::program::{
    AbstractValue, Atom, Batching, LoopValues, Outputs, Primitive, Program, ProgramRef,
    RematPolicy, ScanInput, ScanOutput, ScanSpec, VarId, branch_index, interpret_with, lanes_loop,
    predicate, record_multi, scan_loop, trace_fn, while_loop,
};
use crate::tensor::{DType, Tensor};

/// One recorded primitive application over tape slots.
struct Step {
    primitive: Primitive,
    inputs: Vec<Slot>,
    outputs: Vec<usize>,
}

/// An operand on the tape: a slot, or a constant (which gets no cotangent).
#[derive(Clone)]
pub(crate) enum Slot {
    Value(usize),
    Constant(Tensor),
}

/// `vmap` and `scan` unroll onto the tape through the one per-lane and scan loops: slicing
/// and stacking are recorded steps, so the backward pass flows through every lane and
/// iteration (`grad(vmap(f))`, `grad(scan(f))`).
impl LoopValues for Tape {
    type Value = Slot;

    fn index(&mut self, value: &Slot, axis: usize, index: usize) -> Result<Slot> {
        self.apply_one(Primitive::IndexAxis { axis, index }, vec![value.clone()])
    }

    fn stack(&mut self, values: Vec<Slot>, axis: usize) -> Result<Slot> {
        self.apply_one(Primitive::Stack { axis }, values)
    }

    fn zeros(&mut self, aval: &AbstractValue) -> Result<Slot> {
        Ok(Slot::Constant(Tensor::zeros_of(&aval.shape, aval.dtype)?))
    }

    fn aval(&self, value: &Slot) -> AbstractValue {
        self.value(value).aval()
    }
}

/// The forward pass of a program over tensors, remembering everything the backward pass needs.
pub(crate) struct Tape {
    values: Vec<Tensor>,
    steps: Vec<Step>,
    inputs: Vec<usize>,
    outputs: Vec<Slot>,
}

impl Tape {
    /// Runs `program` on `inputs` with tensor operations, inlining nested `call`s.
    pub(crate) fn forward(program: &Program, inputs: &[Tensor]) -> Result<Tape> {
        Tape::forward_reusing(program, inputs, &[])
    }

    /// [`Tape::forward`], taking the results of `program`'s equations from `reuse` where it
    /// holds them (see [`Tape::run_reusing`]).
    pub(crate) fn forward_reusing(
        program: &Program,
        inputs: &[Tensor],
        reuse: &[Option<Tensor>],
    ) -> Result<Tape> {
        let mut tape = Tape {
            values: Vec::new(),
            steps: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        let slots: Vec<Slot> = inputs
            .iter()
            .map(|t| {
                tape.values.push(t.clone());
                Slot::Value(tape.values.len() - 1)
            })
            .collect();
        tape.inputs = slots
            .iter()
            .filter_map(|s| match s {
                Slot::Value(i) => Some(*i),
                Slot::Constant(_) => None,
            })
            .collect();
        tape.outputs = tape.run_reusing(program, &slots, reuse)?;
        Ok(tape)
    }

    /// The value of a slot.
    fn value(&self, slot: &Slot) -> Tensor {
        match slot {
            Slot::Value(i) => self.values[*i].clone(),
            Slot::Constant(t) => t.clone(),
        }
    }

    /// The program's outputs.
    pub(crate) fn outputs(&self) -> Vec<Tensor> {
        self.outputs.iter().map(|s| self.value(s)).collect()
    }

    /// Evaluates `program` onto the tape (the one interpreter loop, over slots).
    fn run(&mut self, program: &Program, inputs: &[Slot]) -> Result<Vec<Slot>> {
        self.run_reusing(program, inputs, &[])
    }

    /// [`Tape::run`], except that equation `k` of `program` whose `reuse[k]` holds a value
    /// is not computed: the value is recorded as its result (a product a checkpointed
    /// function's forward pass saved), so that its rule still applies in the backward pass.
    fn run_reusing(
        &mut self,
        program: &Program,
        inputs: &[Slot],
        reuse: &[Option<Tensor>],
    ) -> Result<Vec<Slot>> {
        interpret_with(
            program,
            inputs.to_vec(),
            |a| Slot::Constant(Tensor::from(a.clone())),
            |k, eq, args| {
                let args = args.to_vec();
                if let Some(Some(value)) = reuse.get(k.equation) {
                    let slot = self.record_value(eq.primitive.clone(), args, value.clone());
                    return Ok(Outputs::Many(vec![slot]));
                }
                Ok(Outputs::Many(match &eq.primitive {
                    Primitive::Call { program } => self.run(&program.0, &args)?,
                    // Recorded as its forward pass, which also returns the residuals its
                    // backward pass reads (see `custom_vjp_rule`).
                    Primitive::CustomVjp {
                        program, forward, ..
                    } => match self.any_traced(&args) {
                        true => {
                            let visible = program.0.outputs.len();
                            let recorded = Primitive::Call {
                                program: forward.clone(),
                            };
                            self.record_step(recorded, eq.primitive.clone(), &args, visible)?
                        }
                        false => self.run(&program.0, &args)?,
                    },
                    Primitive::Remat { program, policy } => {
                        match self.remat_step(program, *policy, &args)? {
                            Some(outputs) => outputs,
                            None => self.run(&program.0, &args)?,
                        }
                    }
                    Primitive::Scan { program, spec } => {
                        match self.scan_step(program, spec, &args)? {
                            Some(outputs) => outputs,
                            None => {
                                let results = spec.output_avals(&program.0);
                                scan_loop(self, spec, &results, &args, |tape, step| {
                                    tape.run(&program.0, step)
                                })?
                            }
                        }
                    }
                    Primitive::Vmap { program, batching } => {
                        match self.vmap_step(program, batching, &args)? {
                            Some(outputs) => outputs,
                            None => {
                                let lane_outputs = program.0.output_avals();
                                lanes_loop(self, batching, &lane_outputs, &args, |tape, lane| {
                                    tape.run(&program.0, lane)
                                })?
                            }
                        }
                    }
                    Primitive::Cond { branches } => match self.value(&args[0]).concrete() {
                        Ok(index) => {
                            let k = branch_index(index, branches.len())?;
                            self.run(&branches[k].0, &args[1..])?
                        }
                        Err(_) => {
                            let visible = eq.outputs.len();
                            let p = eq.primitive.clone();
                            self.record_step(p.clone(), p, &args, visible)?
                        }
                    },
                    Primitive::While {
                        cond,
                        body,
                        cond_consts,
                        body_consts,
                    } => match self.any_traced(&args) {
                        true => {
                            let visible = eq.outputs.len();
                            let p = eq.primitive.clone();
                            self.record_step(p.clone(), p, &args, visible)?
                        }
                        false => while_loop(
                            self,
                            *cond_consts,
                            *body_consts,
                            &args,
                            |tape, a| {
                                let holds = tape.run(&cond.0, a)?;
                                let holds = holds.first().ok_or_else(|| {
                                    Error::malformed_program("a while predicate has no output")
                                })?;
                                predicate(tape.value(holds).concrete()?)
                            },
                            |tape, a| tape.run(&body.0, a),
                        )?,
                    },
                    // Recorded whole; its backward pass is a `shard_map` of its body's.
                    Primitive::ShardMap { .. } => {
                        let visible = eq.outputs.len();
                        let p = eq.primitive.clone();
                        self.record_step(p.clone(), p, &args, visible)?
                    }
                    primitive => vec![self.apply_one(primitive.clone(), args)?],
                }))
            },
        )
    }

    /// Records a `vmap` equation as one step, whose backward pass is
    /// [`loop_vjp::vmap_vjp`]. `None`
    /// when it must be unrolled lane by lane instead: no operand is traced (there is no
    /// trace to record into), there are no lanes, or an output is not mapped (its cotangent
    /// is not one per lane).
    fn vmap_step(
        &mut self,
        program: &ProgramRef,
        batching: &Batching,
        args: &[Slot],
    ) -> Result<Option<Vec<Slot>>> {
        if batching.axis_size == 0
            || batching.out_axes.iter().any(Option::is_none)
            || !self.any_traced(args)
        {
            return Ok(None);
        }
        let primitive = Primitive::Vmap {
            program: program.clone(),
            batching: batching.clone(),
        };
        let visible = batching.out_axes.len();
        self.record_step(primitive.clone(), primitive, args, visible)
            .map(Some)
    }

    /// Whether any operand is a tracer (so that a whole loop can be recorded).
    fn any_traced(&self, args: &[Slot]) -> bool {
        args.iter().any(|s| self.value(s).is_traced())
    }

    /// Records `recorded` on the operands as one step that the backward pass sees as
    /// `primitive` (the loop itself, while `recorded` may also output what it saves for the
    /// backward pass); the first `visible` outputs are the loop's own.
    fn record_step(
        &mut self,
        recorded: Primitive,
        primitive: Primitive,
        args: &[Slot],
        visible: usize,
    ) -> Result<Vec<Slot>> {
        let tensors: Vec<Tensor> = args.iter().map(|s| self.value(s)).collect();
        let values = record_multi(recorded, &tensors.iter().collect::<Vec<_>>())?;
        let first = self.values.len();
        self.values.extend(values);
        let outputs: Vec<usize> = (first..self.values.len()).collect();
        let slots = (outputs.iter().take(visible))
            .map(|&o| Slot::Value(o))
            .collect();
        self.steps.push(Step {
            primitive,
            inputs: args.to_vec(),
            outputs,
        });
        Ok(slots)
    }

    /// Records a `scan` equation as one step whose backward pass is [`loop_vjp::scan_vjp`]: the scan
    /// runs with two more stacked outputs per carry, the carry each iteration starts from
    /// and the one it produces (the residuals: the backward pass re-runs each iteration
    /// from the first, reading the second rather than recomputing what only led to it).
    /// `None` when it must be
    /// unrolled instead: nothing is traced, no iterations, an iteration-independent output
    /// (its cotangent belongs to no single iteration), or a carry without its output.
    fn scan_step(
        &mut self,
        program: &ProgramRef,
        spec: &ScanSpec,
        args: &[Slot],
    ) -> Result<Option<Vec<Slot>>> {
        let carries: Vec<usize> = (spec.inputs.iter().enumerate())
            .filter(|(_, kind)| **kind == ScanInput::Carry)
            .map(|(i, _)| i)
            .collect();
        if spec.length == 0
            || spec.outputs.contains(&ScanOutput::Broadcast)
            || carries
                .iter()
                .any(|i| !spec.outputs.contains(&ScanOutput::Carry(*i)))
            || !self.any_traced(args)
        {
            return Ok(None);
        }
        let body = &program.0;
        let mut outputs = body.outputs.clone();
        outputs.extend(carries.iter().map(|&i| Atom::Var(body.inputs[i])));
        let new_carries = loop_vjp::carry_outputs(spec);
        outputs.extend(new_carries.iter().map(|&j| body.outputs[j].clone()));
        let saving = Program::new(
            body.inputs.clone(),
            body.equations.clone(),
            outputs,
            body.avals.clone(),
        );
        let mut saving_spec = spec.clone();
        let saved = carries.len() + new_carries.len();
        saving_spec
            .outputs
            .extend((0..saved).map(|_| ScanOutput::Stacked(0)));
        let recorded = Primitive::Scan {
            program: ProgramRef(Arc::new(saving)),
            spec: saving_spec,
        };
        let primitive = Primitive::Scan {
            program: program.clone(),
            spec: spec.clone(),
        };
        // The residuals are the step's outputs past the scan's own.
        self.record_step(recorded, primitive, args, spec.outputs.len())
            .map(Some)
    }

    /// Records a checkpointed call ([`Primitive::Remat`]) as one step whose backward pass
    /// recomputes it ([`remat_vjp`]), keeping only what the policy saves: nothing, or the
    /// results of its matrix products (appended to its outputs). `None` (run it inline)
    /// when nothing is traced.
    fn remat_step(
        &mut self,
        program: &ProgramRef,
        policy: RematPolicy,
        args: &[Slot],
    ) -> Result<Option<Vec<Slot>>> {
        if !self.any_traced(args) {
            return Ok(None);
        }
        let body = &program.0;
        let recorded = match policy {
            RematPolicy::NothingSaveable => program.clone(),
            RematPolicy::DotsSaveable => {
                let mut outputs = body.outputs.clone();
                outputs.extend(saved_products(body).map(|(_, v)| Atom::Var(v)));
                ProgramRef(Arc::new(Program::new(
                    body.inputs.clone(),
                    body.equations.clone(),
                    outputs,
                    body.avals.clone(),
                )))
            }
        };
        let primitive = Primitive::Remat {
            program: program.clone(),
            policy,
        };
        let recorded = Primitive::Remat {
            program: recorded,
            policy,
        };
        self.record_step(recorded, primitive, args, body.outputs.len())
            .map(Some)
    }

    /// Applies a first-order primitive to slots, recording a step.
    fn apply_one(&mut self, primitive: Primitive, args: Vec<Slot>) -> Result<Slot> {
        let tensors: Vec<Tensor> = args.iter().map(|s| self.value(s)).collect();
        let refs: Vec<&Tensor> = tensors.iter().collect();
        let value = Tensor::apply(primitive.clone(), &refs)?;
        Ok(self.record_value(primitive, args, value))
    }

    /// Records a first-order step whose result is `value`.
    fn record_value(&mut self, primitive: Primitive, args: Vec<Slot>, value: Tensor) -> Slot {
        self.values.push(value);
        let index = self.values.len() - 1;
        self.steps.push(Step {
            primitive,
            inputs: args,
            outputs: vec![index],
        });
        Slot::Value(index)
    }

    /// Cotangents of the tape's inputs listed in `wanted` (positions among its inputs),
    /// given cotangents for (some of) its outputs; the other inputs, and those no cotangent
    /// reaches, get `None`. Only values that depend on a wanted input get cotangents, so a
    /// loop's or checkpoint's backward pass computes nothing for operands that do not lead
    /// back to one.
    pub(crate) fn backward(
        &self,
        seeds: &[(usize, Tensor)],
        wanted: &[usize],
    ) -> Result<Vec<Option<Tensor>>> {
        let mut live = vec![false; self.values.len()];
        for &k in wanted {
            if let Some(&i) = self.inputs.get(k) {
                live[i] = true;
            }
        }
        for step in &self.steps {
            // A stop_gradient's output is a constant: nothing behind it is live.
            if matches!(step.primitive, Primitive::StopGradient) {
                continue;
            }
            if (step.inputs.iter()).any(|s| matches!(s, Slot::Value(i) if live[*i])) {
                step.outputs.iter().for_each(|&o| live[o] = true);
            }
        }
        let mut cot: Vec<Option<Tensor>> = vec![None; self.values.len()];
        for (output, seed) in seeds {
            if let Some(Slot::Value(i)) = self.outputs.get(*output) {
                accumulate(&mut cot[*i], seed.clone())?;
            }
        }
        for step in self.steps.iter().rev() {
            let gs: Vec<Option<Tensor>> = step.outputs.iter().map(|&o| cot[o].clone()).collect();
            if gs.iter().all(Option::is_none) {
                continue;
            }
            let inputs: Vec<Tensor> = step.inputs.iter().map(|s| self.value(s)).collect();
            let outputs: Vec<Tensor> = step
                .outputs
                .iter()
                .map(|&o| self.values[o].clone())
                .collect();
            // Which operands take a cotangent (a loop's backward pass computes only those).
            let needed: Vec<bool> = (step.inputs.iter())
                .map(|s| {
                    matches!(s, Slot::Value(i) if live[*i] && differentiable(self.values[*i].dtype()))
                })
                .collect();
            // Nothing to pass back (operands that are constants, such as a stop_gradient's
            // output): no rule runs.
            if !needed.iter().any(|&n| n) {
                continue;
            }
            let grads = vjp(&step.primitive, &inputs, &outputs, &gs, &needed)?;
            for ((g, needed), slot) in grads.into_iter().zip(&needed).zip(&step.inputs) {
                if let (Slot::Value(i), Some(g), true) = (slot, g, *needed) {
                    accumulate(&mut cot[*i], g)?;
                }
            }
        }
        let mut outputs = vec![None; self.inputs.len()];
        for &k in wanted {
            if let Some(&i) = self.inputs.get(k) {
                outputs[k] = cot[i].clone();
            }
        }
        Ok(outputs)
    }
}

fn accumulate(slot: &mut Option<Tensor>, g: Tensor) -> Result<()> {
    *slot = Some(match slot.take() {
        Some(existing) => existing.add(&g)?,
        None => g,
    });
    Ok(())
}

/// The vector-Jacobian product of one primitive: the cotangent of each input given the
/// cotangents of its outputs (`None` = zero).
fn vjp(
    p: &Primitive,
    x: &[Tensor],
    out: &[Tensor],
    g: &[Option<Tensor>],
    needed: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    match p {
        Primitive::Vmap { program, batching } => {
            return loop_vjp::vmap_vjp(&program.0, batching, x, g, needed);
        }
        Primitive::Scan { program, spec } => {
            return loop_vjp::scan_vjp(&program.0, spec, x, out, g, needed);
        }
        Primitive::Remat { program, policy } => {
            return remat_vjp(&program.0, *policy, x, out, g, needed);
        }
        Primitive::CustomVjp {
            program, backward, ..
        } => return custom_vjp_rule(&program.0, &backward.0, out, g),
        Primitive::Cond { branches } => return control_diff::cond_vjp(branches, x, g, needed),
        Primitive::While { .. } => return Err(control_diff::while_vjp_error()),
        Primitive::ShardMap { program, spec } => {
            return loop_vjp::shard_map_vjp(&program.0, spec, x, g, needed);
        }
        _ => {}
    }
    match g.first().cloned().flatten() {
        Some(g0) => first_order_vjp(p, x, &out[0], g0, needed),
        None => Ok(vec![None; x.len()]),
    }
}

/// The cotangents of the `wanted` inputs of `body` run on `inputs` (taking saved results
/// from `reuse`), its outputs `seeded` having the cotangents `cotangents`: the inner part of
/// every loop's and checkpoint's backward pass. Inputs no cotangent reaches get zeros.
pub(super) fn body_cotangents(
    body: &Program,
    inputs: &[Tensor],
    reuse: &[Option<Tensor>],
    seeded: &[usize],
    cotangents: &[Tensor],
    wanted: &[usize],
) -> Result<Vec<Tensor>> {
    let tape = Tape::forward_reusing(body, inputs, reuse)?;
    let seeds: Vec<(usize, Tensor)> = (seeded.iter().copied())
        .zip(cotangents.iter().cloned())
        .collect();
    let cots = tape.backward(&seeds, wanted)?;
    Ok((wanted.iter())
        .map(|&i| or_zeros(cots[i].clone(), &inputs[i]))
        .collect())
}

/// The matrix products a [`RematPolicy::DotsSaveable`] checkpoint keeps: the index of each
/// top-level `matmul` equation of `body` and its output variable.
fn saved_products(body: &Program) -> impl Iterator<Item = (usize, VarId)> + '_ {
    (body.equations.iter().enumerate())
        .filter(|(_, eq)| eq.primitive == Primitive::Matmul)
        .map(|(k, eq)| (k, eq.outputs[0]))
}

/// The cotangents of a checkpointed call's operands `x` that are `needed`, given its
/// outputs (followed by the products it saved, under [`RematPolicy::DotsSaveable`]) and
/// their cotangents `g`: one
/// `call` of the body's backward pass, which re-runs the body's forward pass — reading
/// the saved products instead of recomputing them — and sweeps back.
fn remat_vjp(
    body: &Program,
    policy: RematPolicy,
    x: &[Tensor],
    out: &[Tensor],
    g: &[Option<Tensor>],
    needed: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let n_out = body.outputs.len();
    let saved: Vec<(usize, Tensor)> = match policy {
        RematPolicy::NothingSaveable => Vec::new(),
        RematPolicy::DotsSaveable => saved_products(body)
            .map(|(k, _)| k)
            .zip(out.iter().skip(n_out).cloned())
            .collect(),
    };
    let lane_outputs = body.output_avals();
    let seeded: Vec<(usize, Tensor)> = (g.iter().enumerate().take(n_out))
        .filter_map(|(j, g)| Some((j, g.clone()?)))
        .filter(|(j, _)| differentiable(lane_outputs[*j].dtype))
        .collect();
    let wrt: Vec<usize> = (0..x.len()).filter(|&i| needed[i]).collect();
    if seeded.is_empty() || wrt.is_empty() {
        return Ok(vec![None; x.len()]);
    }
    let avals: Vec<AbstractValue> = (x.iter())
        .chain(saved.iter().map(|(_, t)| t))
        .chain(seeded.iter().map(|(_, g)| g))
        .map(Tensor::aval)
        .collect();
    let backward = trace_fn(&avals, |values| {
        let (inputs, rest) = values.split_at(x.len());
        let (products, cotangents) = rest.split_at(saved.len());
        let mut reuse: Vec<Option<Tensor>> = vec![None; body.equations.len()];
        for ((k, _), value) in saved.iter().zip(products) {
            reuse[*k] = Some(value.clone());
        }
        let outputs: Vec<usize> = seeded.iter().map(|(j, _)| *j).collect();
        let grads = body_cotangents(body, inputs, &reuse, &outputs, cotangents, &wrt)?;
        Ok((grads, ()))
    })?;
    let operands: Vec<&Tensor> = (x.iter())
        .chain(saved.iter().map(|(_, t)| t))
        .chain(seeded.iter().map(|(_, g)| g))
        .chain(&backward.captured)
        .collect();
    let call = Primitive::Call {
        program: ProgramRef(Arc::new(backward.program)),
    };
    let mut result = vec![None; x.len()];
    for (&i, cot) in wrt.iter().zip(record_multi(call, &operands)?) {
        result[i] = Some(cot);
    }
    Ok(result)
}

/// The cotangents of a `custom_vjp` call's operands given its outputs followed by the
/// residuals its forward pass saved (`out`) and the outputs' cotangents `g`: one `call` of
/// the user's backward pass on the residuals and the cotangents (zeros where none reaches).
fn custom_vjp_rule(
    program: &Program,
    backward: &Program,
    out: &[Tensor],
    g: &[Option<Tensor>],
) -> Result<Vec<Option<Tensor>>> {
    let n_out = program.outputs.len();
    if g.iter().take(n_out).all(Option::is_none) {
        return Ok(vec![None; program.inputs.len()]);
    }
    let mut operands: Vec<Tensor> = out.iter().skip(n_out).cloned().collect();
    for (j, y) in out.iter().take(n_out).enumerate() {
        operands.push(match g.get(j).cloned().flatten() {
            Some(g) => g,
            None => zeros_like(y),
        });
    }
    let cotangents = call(backward, &operands)?;
    Ok(cotangents.into_iter().map(Some).collect())
}

/// `program` applied to `operands`: recorded as a `call` when an operand is traced, else
/// run now.
fn call(program: &Program, operands: &[Tensor]) -> Result<Vec<Tensor>> {
    if operands.iter().any(Tensor::is_traced) {
        let primitive = Primitive::Call {
            program: ProgramRef(Arc::new(program.clone())),
        };
        return record_multi(primitive, &operands.iter().collect::<Vec<_>>());
    }
    Ok(Tape::forward(program, operands)?.outputs())
}

/// `ones` with the shape and float dtype of a scalar loss (the seed of the backward pass).
pub(crate) fn seed_for(loss: &Tensor) -> Result<Tensor> {
    if loss.ndim() != 0 || loss.dtype() != DType::F32 {
        return Err(Error::GradLossNotScalar {
            dtype: loss.dtype(),
            shape: loss.shape().to_vec(),
        });
    }
    Ok(Tensor::scalar(1.0f32))
}

/// Zero cotangents for inputs nothing flowed into.
pub(crate) fn or_zeros(g: Option<Tensor>, like: &Tensor) -> Tensor {
    g.unwrap_or_else(|| zeros_like(like))
}
