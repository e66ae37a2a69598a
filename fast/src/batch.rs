//! Batching as a program transformation: a `vmap` equation becomes the equations of its
//! body rewritten to run once over the whole batch, so that the batched body is compiled like
//! any other program (fused dense chains, kernels chosen once, pooled buffers) instead of
//! being interpreted through batching rules on every call.
//!
//! Which values carry the batch axis is known before running (it follows from `in_axes`), so
//! each rule of [`batching`](crate::batching) has a static counterpart here: the batch axis is
//! moved to the front of every mapped input, each equation with a batched operand is replaced
//! by the same primitive with its parameters shifted past the batch axis (plus the reshapes
//! that align operands), unbatched equations stay as they are (broadcast weights stay one
//! matrix), nested `call`s and `vmap`s are inlined and batched too, a nested `scan` becomes a
//! scan over its batched body. Random draws from a batch of keys stay a one-equation `vmap`,
//! which the engine's batching rule runs as one pass over the keys.

use std::sync::Arc;

use nnx_core::program::{
    AbstractValue, Atom, Batching, Equation, Primitive, Program, ProgramRef, ScanInput, ScanOutput,
    ScanSpec, VarId,
};

mod control;

/// A value of the body being batched: its atom in the new program, and whether it holds one
/// slice per lane along axis 0.
#[derive(Clone)]
struct Value {
    atom: Atom,
    batched: bool,
}

/// Values that all hold one slice per lane.
fn all_batched(atoms: Vec<Atom>) -> Vec<Value> {
    atoms
        .into_iter()
        .map(|atom| Value {
            atom,
            batched: true,
        })
        .collect()
}

/// The program under construction.
struct Builder {
    avals: Vec<AbstractValue>,
    equations: Vec<Equation>,
    size: usize,
}

impl Builder {
    fn aval(&self, atom: &Atom) -> AbstractValue {
        match atom {
            Atom::Var(v) => self.avals[v.0 as usize].clone(),
            Atom::Literal(a) => a.aval(),
        }
    }

    fn var(&mut self, aval: AbstractValue) -> VarId {
        self.avals.push(aval);
        VarId(self.avals.len() as u32 - 1)
    }

    /// Appends `primitive` applied to `inputs`; `None` when its shape rule rejects them.
    fn emit_many(&mut self, primitive: Primitive, inputs: Vec<Atom>) -> Option<Vec<Atom>> {
        let avals: Vec<AbstractValue> = inputs.iter().map(|a| self.aval(a)).collect();
        let outputs: Vec<VarId> = primitive
            .output_avals(&avals)
            .ok()?
            .into_iter()
            .map(|aval| self.var(aval))
            .collect();
        self.equations.push(Equation {
            primitive,
            inputs,
            outputs: outputs.clone(),
        });
        Some(outputs.into_iter().map(Atom::Var).collect())
    }

    fn emit(&mut self, primitive: Primitive, inputs: Vec<Atom>) -> Option<Atom> {
        self.emit_many(primitive, inputs)?.pop()
    }

    /// The rank of one lane of `value`.
    fn inner_rank(&self, value: &Value) -> usize {
        self.aval(&value.atom).shape.len() - usize::from(value.batched)
    }

    /// `value` with its batch axis explicit: unbatched values broadcast to `size` lanes.
    fn batched(&mut self, value: &Value) -> Option<Atom> {
        if value.batched {
            return Some(value.atom.clone());
        }
        let mut shape = vec![self.size];
        shape.extend(self.aval(&value.atom).shape);
        let expanded = self.emit(Primitive::ExpandDims { axis: 0 }, vec![value.atom.clone()])?;
        self.emit(Primitive::BroadcastTo { shape }, vec![expanded])
    }

    /// A batched value reshaped so that its lane has rank `rank` (unit axes after the batch
    /// axis), aligning it for numpy broadcasting against unbatched operands.
    fn align(&mut self, value: &Value, rank: usize) -> Option<Atom> {
        let inner = self.inner_rank(value);
        if !value.batched || inner >= rank {
            return Some(value.atom.clone());
        }
        let shape = self.aval(&value.atom).shape;
        let mut aligned = vec![shape[0]];
        aligned.extend(std::iter::repeat_n(1, rank - inner));
        aligned.extend_from_slice(&shape[1..]);
        self.emit(
            Primitive::Reshape { shape: aligned },
            vec![value.atom.clone()],
        )
    }

    /// Moves axis `from` of `atom` to position `to`.
    fn move_axis(&mut self, atom: Atom, from: usize, to: usize) -> Option<Atom> {
        if from == to {
            return Some(atom);
        }
        let rank = self.aval(&atom).shape.len();
        let mut perm: Vec<usize> = (0..rank).filter(|&a| a != from).collect();
        perm.insert(to.min(perm.len()), from);
        self.emit(Primitive::Transpose { perm }, vec![atom])
    }

    /// Batches `program`'s equations on `inputs`, returning its outputs.
    fn body(&mut self, program: &Program, inputs: Vec<Value>) -> Option<Vec<Value>> {
        let mut env: Vec<Option<Value>> = vec![None; program.avals.len()];
        for (v, value) in program.inputs.iter().zip(inputs) {
            env[v.0 as usize] = Some(value);
        }
        let lookup = |env: &[Option<Value>], atom: &Atom| -> Option<Value> {
            match atom {
                Atom::Var(v) => env[v.0 as usize].clone(),
                Atom::Literal(_) => Some(Value {
                    atom: atom.clone(),
                    batched: false,
                }),
            }
        };
        for eq in &program.equations {
            let args = eq
                .inputs
                .iter()
                .map(|a| lookup(&env, a))
                .collect::<Option<Vec<_>>>()?;
            let outputs = self.equation(eq, args)?;
            if outputs.len() != eq.outputs.len() {
                return None;
            }
            for (v, value) in eq.outputs.iter().zip(outputs) {
                env[v.0 as usize] = Some(value);
            }
        }
        program.outputs.iter().map(|a| lookup(&env, a)).collect()
    }

    /// One equation of the body on its (possibly batched) operands.
    fn equation(&mut self, eq: &Equation, args: Vec<Value>) -> Option<Vec<Value>> {
        let atoms = |args: &[Value]| args.iter().map(|v| v.atom.clone()).collect::<Vec<_>>();
        if !args.iter().any(|v| v.batched) {
            let outs = self.emit_many(eq.primitive.clone(), atoms(&args))?;
            return Some(
                outs.into_iter()
                    .map(|atom| Value {
                        atom,
                        batched: false,
                    })
                    .collect(),
            );
        }
        let batched: Vec<bool> = args.iter().map(|v| v.batched).collect();
        if runs_per_lane(&eq.primitive, &batched) {
            return self.per_lane(eq, args);
        }
        let shift = |axes: &[usize]| axes.iter().map(|a| a + 1).collect::<Vec<_>>();
        let one = |this: &mut Builder, primitive: Primitive, inputs: Vec<Atom>| {
            this.emit(primitive, inputs).map(|a| all_batched(vec![a]))
        };
        match &eq.primitive {
            Primitive::Binary(_) | Primitive::Compare(_) | Primitive::Select => {
                let rank = args.iter().map(|v| self.inner_rank(v)).max().unwrap_or(0);
                let aligned = args
                    .iter()
                    .map(|v| self.align(v, rank))
                    .collect::<Option<Vec<_>>>()?;
                one(self, eq.primitive.clone(), aligned)
            }
            Primitive::Unary(_) | Primitive::Astype { .. } | Primitive::StopGradient => {
                one(self, eq.primitive.clone(), atoms(&args))
            }
            Primitive::Matmul => self
                .matmul(&args[0], &args[1])
                .map(|a| all_batched(vec![a])),
            Primitive::Reduce { op, axes, keepdims } => {
                let x = self.batched(&args[0])?;
                let primitive = Primitive::Reduce {
                    op: *op,
                    axes: shift(axes),
                    keepdims: *keepdims,
                };
                one(self, primitive, vec![x])
            }
            Primitive::Reshape { shape } => {
                let x = self.batched(&args[0])?;
                let mut full = vec![self.size];
                full.extend_from_slice(shape);
                one(self, Primitive::Reshape { shape: full }, vec![x])
            }
            Primitive::Transpose { perm } => {
                let x = self.batched(&args[0])?;
                let mut full = vec![0];
                full.extend(shift(perm));
                one(self, Primitive::Transpose { perm: full }, vec![x])
            }
            Primitive::BroadcastTo { shape } => {
                let x = self.align(&args[0], shape.len())?;
                let mut full = vec![self.size];
                full.extend_from_slice(shape);
                one(self, Primitive::BroadcastTo { shape: full }, vec![x])
            }
            Primitive::ExpandDims { axis } => {
                let x = self.batched(&args[0])?;
                one(self, Primitive::ExpandDims { axis: axis + 1 }, vec![x])
            }
            Primitive::Squeeze { axes } => {
                let x = self.batched(&args[0])?;
                one(self, Primitive::Squeeze { axes: shift(axes) }, vec![x])
            }
            Primitive::IndexAxis { axis, index } => {
                let x = self.batched(&args[0])?;
                let primitive = Primitive::IndexAxis {
                    axis: axis + 1,
                    index: *index,
                };
                one(self, primitive, vec![x])
            }
            Primitive::SliceAxis { axis, start, end } => {
                let x = self.batched(&args[0])?;
                let primitive = Primitive::SliceAxis {
                    axis: axis + 1,
                    start: *start,
                    end: *end,
                };
                one(self, primitive, vec![x])
            }
            Primitive::Pad {
                axis,
                before,
                after,
            } => {
                let x = self.batched(&args[0])?;
                let primitive = Primitive::Pad {
                    axis: axis + 1,
                    before: *before,
                    after: *after,
                };
                one(self, primitive, vec![x])
            }
            Primitive::Cumsum { axis, reverse } => {
                let x = self.batched(&args[0])?;
                let primitive = Primitive::Cumsum {
                    axis: axis + 1,
                    reverse: *reverse,
                };
                one(self, primitive, vec![x])
            }
            Primitive::ArgReduce { op, axis } => {
                let x = self.batched(&args[0])?;
                let primitive = Primitive::ArgReduce {
                    op: *op,
                    axis: axis + 1,
                };
                one(self, primitive, vec![x])
            }
            // Windows and matrices sit on the trailing axes: the batch axis is one more
            // leading axis.
            Primitive::Patches { .. } | Primitive::PatchesTranspose { .. } | Primitive::QrQ => {
                let x = self.batched(&args[0])?;
                one(self, eq.primitive.clone(), vec![x])
            }
            // Both operands with the batch axis as one more leading (batch) axis.
            Primitive::TriangularSolve(_) => {
                let a = self.batched(&args[0])?;
                let b = self.batched(&args[1])?;
                one(self, eq.primitive.clone(), vec![a, b])
            }
            // A batched table: the axis moves past the batch axis. Batched indices into one
            // table: the batch axis comes out where the axis was, and moves to the front.
            Primitive::Take { axis, fill } => match (args[0].batched, args[1].batched) {
                (true, false) => {
                    let table = self.batched(&args[0])?;
                    let primitive = Primitive::Take {
                        axis: axis + 1,
                        fill: *fill,
                    };
                    one(self, primitive, vec![table, args[1].atom.clone()])
                }
                (false, true) => {
                    let taken = self.emit(eq.primitive.clone(), atoms(&args))?;
                    let rank = self.aval(&taken).shape.len();
                    let mut perm = vec![*axis];
                    perm.extend((0..rank).filter(|&i| i != *axis));
                    one(self, Primitive::Transpose { perm }, vec![taken])
                }
                // Both batched: lane by lane (`runs_per_lane`).
                _ => None,
            },
            // The start is unbatched (`runs_per_lane`): the axis moves past the batch axis.
            Primitive::DynamicSlice { axis, size } => {
                let x = self.batched(&args[0])?;
                let primitive = Primitive::DynamicSlice {
                    axis: axis + 1,
                    size: *size,
                };
                one(self, primitive, vec![x, args[1].atom.clone()])
            }
            Primitive::DynamicUpdateSlice { axis } => {
                let (x, update) = (self.batched(&args[0])?, self.batched(&args[1])?);
                let primitive = Primitive::DynamicUpdateSlice { axis: axis + 1 };
                one(self, primitive, vec![x, update, args[2].atom.clone()])
            }
            Primitive::TakeTranspose { axis, size } => {
                let taken = self.batched(&args[0])?;
                let primitive = Primitive::TakeTranspose {
                    axis: axis + 1,
                    size: *size,
                };
                one(self, primitive, vec![taken, args[1].atom.clone()])
            }
            Primitive::Concatenate { axis } | Primitive::Stack { axis } => {
                let all = args
                    .iter()
                    .map(|v| self.batched(v))
                    .collect::<Option<Vec<_>>>()?;
                let primitive = match eq.primitive {
                    Primitive::Stack { .. } => Primitive::Stack { axis: axis + 1 },
                    _ => Primitive::Concatenate { axis: axis + 1 },
                };
                one(self, primitive, all)
            }
            // A nested call runs inline, batched.
            Primitive::Call { program }
            | Primitive::Remat { program, .. }
            | Primitive::CustomVjp { program, .. } => self.body(&program.0, args),
            // A nested vmap: its body batched for its own axis first, then for this one.
            Primitive::Vmap { program, batching } => {
                let inner = batched_program(&program.0, batching)?;
                self.body(&inner, args)
            }
            // Seeds to keys is elementwise.
            Primitive::SeedKeys => one(self, Primitive::SeedKeys, atoms(&args)),
            // Keys folded with data of their shape or with one datum.
            Primitive::FoldInEach => {
                let (keys, data) = (&args[0], &args[1]);
                if !data.batched && self.inner_rank(data) == 0 {
                    let keys = self.batched(keys)?;
                    return one(self, Primitive::FoldInEach, vec![keys, data.atom.clone()]);
                }
                let keys = self.batched(keys)?;
                let shape = self.aval(&keys).shape;
                let data = if self.inner_rank(data) == shape.len() - 1 {
                    self.batched(data)?
                } else {
                    let aligned = self.align(data, shape.len() - 1)?;
                    self.emit(Primitive::BroadcastTo { shape }, vec![aligned])?
                };
                one(self, Primitive::FoldInEach, vec![keys, data])
            }
            Primitive::Scan { program, spec } => self.scan(&program.0, spec, args),
            Primitive::Cond { branches } => self.cond(branches, args),
            Primitive::While {
                cond,
                body,
                cond_consts,
                body_consts,
            } => self.while_loop(&cond.0, &body.0, *cond_consts, *body_consts, args),
            // Draws from a batch of keys run lane by lane (`runs_per_lane`): a one-equation
            // `vmap`, which the engine's batching rule runs as one pass over the keys.
            Primitive::Random(_) => None,
            // Collectives are elementwise across devices: the batch axis leads.
            Primitive::Collective(op) => {
                let x = self.batched(&args[0])?;
                one(self, Primitive::Collective(op.batched()), vec![x])
            }
            // A mesh inside a vmap: lane by lane.
            Primitive::ShardMap { .. } => None,
        }
    }

    /// A scan with batched operands: the same scan over the batched body. Every carry and
    /// every output is made batched (an unbatched initial carry broadcast), so that a carry
    /// keeps one form across iterations; scanned inputs are sliced one axis further in.
    fn scan(&mut self, program: &Program, spec: &ScanSpec, args: Vec<Value>) -> Option<Vec<Value>> {
        let mut inputs = Vec::with_capacity(args.len());
        let mut in_axes = Vec::with_capacity(args.len());
        let mut kinds = Vec::with_capacity(args.len());
        for (arg, kind) in args.iter().zip(&spec.inputs) {
            let (atom, batched, kind) = match *kind {
                ScanInput::Carry => (self.batched(arg)?, true, ScanInput::Carry),
                ScanInput::Scanned(a) if arg.batched => {
                    (arg.atom.clone(), true, ScanInput::Scanned(a + 1))
                }
                other => (arg.atom.clone(), arg.batched, other),
            };
            inputs.push(atom);
            in_axes.push(batched.then_some(0));
            kinds.push(kind);
        }
        let batching = Batching {
            in_axes,
            out_axes: vec![Some(0); program.outputs.len()],
            axis_size: self.size,
        };
        let body = batched_program(program, &batching)?;
        let spec = ScanSpec {
            length: spec.length,
            reverse: spec.reverse,
            inputs: kinds,
            outputs: spec
                .outputs
                .iter()
                .map(|kind| match *kind {
                    ScanOutput::Stacked(a) => ScanOutput::Stacked(a + 1),
                    other => other,
                })
                .collect(),
        };
        let outs = self.emit_many(
            Primitive::Scan {
                program: ProgramRef(Arc::new(body)),
                spec,
            },
            inputs,
        )?;
        Some(all_batched(outs))
    }

    /// `a @ b` per lane, where numpy's batched matmul already means "per lane" once the
    /// operands are laid out right; `None` for layouts without a rule.
    fn matmul(&mut self, a: &Value, b: &Value) -> Option<Atom> {
        let (ra, rb) = (self.inner_rank(a), self.inner_rank(b));
        let (x, y) = (a.atom.clone(), b.atom.clone());
        match (a.batched, b.batched) {
            // x @ W for every lane: one GEMM over (B·…·m, k) × (k, n).
            (true, false) if rb == 2 && ra >= 1 => self.emit(Primitive::Matmul, vec![x, y]),
            // W @ X for every lane: numpy broadcasts W over the batch.
            (false, true) if rb >= 2 && ra <= 2 && ra <= rb => {
                self.emit(Primitive::Matmul, vec![x, y])
            }
            // Both batched, the same rank of matrices: a batched GEMM.
            (true, true) if ra == rb && ra >= 2 => self.emit(Primitive::Matmul, vec![x, y]),
            // A vector times a matrix in every lane: (B, 1, k) × (B, k, n), the unit axis
            // dropped again.
            (true, true) if ra == 1 && rb == 2 => {
                let x = self.emit(Primitive::ExpandDims { axis: 1 }, vec![x])?;
                let out = self.emit(Primitive::Matmul, vec![x, y])?;
                self.emit(Primitive::Squeeze { axes: vec![1] }, vec![out])
            }
            // A matrix times a vector in every lane: (B, m, k) × (B, k, 1).
            (true, true) if ra == 2 && rb == 1 => {
                let y = self.emit(Primitive::ExpandDims { axis: 2 }, vec![y])?;
                let out = self.emit(Primitive::Matmul, vec![x, y])?;
                self.emit(Primitive::Squeeze { axes: vec![2] }, vec![out])
            }
            _ => None,
        }
    }

    /// An equation without a batching rule: a one-equation `vmap`, run lane by lane.
    fn per_lane(&mut self, eq: &Equation, args: Vec<Value>) -> Option<Vec<Value>> {
        let lane_avals: Vec<AbstractValue> = args
            .iter()
            .map(|v| {
                let mut aval = self.aval(&v.atom);
                if v.batched {
                    aval.shape.remove(0);
                }
                aval
            })
            .collect();
        let n = lane_avals.len();
        let mut avals = lane_avals.clone();
        let outputs: Vec<VarId> = eq
            .primitive
            .output_avals(&lane_avals)
            .ok()?
            .into_iter()
            .map(|aval| {
                avals.push(aval);
                VarId(avals.len() as u32 - 1)
            })
            .collect();
        let body = Program::new(
            (0..n).map(|i| VarId(i as u32)).collect(),
            vec![Equation {
                primitive: eq.primitive.clone(),
                inputs: (0..n).map(|i| Atom::Var(VarId(i as u32))).collect(),
                outputs: outputs.clone(),
            }],
            outputs.iter().copied().map(Atom::Var).collect(),
            avals,
        );
        let batching = Batching {
            in_axes: args.iter().map(|v| v.batched.then_some(0)).collect(),
            out_axes: vec![Some(0); outputs.len()],
            axis_size: self.size,
        };
        let outs = self.emit_many(
            Primitive::Vmap {
                program: ProgramRef(Arc::new(body)),
                batching,
            },
            args.into_iter().map(|v| v.atom).collect(),
        )?;
        Some(all_batched(outs))
    }
}

/// Whether the rules run `primitive` lane by lane when its operands are batched as
/// `batched` (random draws; a take with batched indices into a batched table, the
/// transpose of a take with batched indices, dynamic slices with batched starts).
fn runs_per_lane(primitive: &Primitive, batched: &[bool]) -> bool {
    let on = |i: usize| batched.get(i).copied().unwrap_or(false);
    match primitive {
        Primitive::Random(_) => true,
        Primitive::Take { .. } => on(0) && on(1),
        Primitive::TakeTranspose { .. } | Primitive::DynamicSlice { .. } => on(1),
        Primitive::DynamicUpdateSlice { .. } => on(2),
        _ => false,
    }
}

/// `vmap(program)` with `batching` as one unbatched program over the batched inputs (mapped
/// along their `in_axes`) giving the batched outputs (along their `out_axes`). `None` when
/// the transformation does not apply (no lanes, or a shape the rules do not cover): the
/// engine then runs the batching interpreter, which also reports any error.
pub(crate) fn batched_program(program: &Program, batching: &Batching) -> Option<Program> {
    let size = batching.axis_size;
    // A body that is one equation without a rule is already what `per_lane` would build.
    let unruled = |eq: &Equation| {
        let batched: Vec<bool> = (eq.inputs.iter())
            .map(|atom| {
                let input = match atom {
                    Atom::Var(var) => program.inputs.iter().position(|v| v == var),
                    _ => None,
                };
                input.is_some_and(|p| batching.in_axes.get(p).is_some_and(Option::is_some))
            })
            .collect();
        runs_per_lane(&eq.primitive, &batched)
    };
    if size == 0
        || matches!(program.equations.as_slice(), [eq] if unruled(eq))
        || batching.in_axes.len() != program.inputs.len()
        || batching.out_axes.len() != program.outputs.len()
        || batching.check_outputs(program).is_err()
    {
        return None;
    }
    let mut b = Builder {
        avals: Vec::new(),
        equations: Vec::new(),
        size,
    };
    let mut inputs = Vec::with_capacity(program.inputs.len());
    let mut values = Vec::with_capacity(program.inputs.len());
    for (v, axis) in program.inputs.iter().zip(&batching.in_axes) {
        let mut aval = program.avals[v.0 as usize].clone();
        if let Some(axis) = *axis {
            if axis > aval.shape.len() {
                return None;
            }
            aval.shape.insert(axis, size);
        }
        let input = b.var(aval);
        inputs.push(input);
        values.push(match *axis {
            Some(axis) => Value {
                atom: b.move_axis(Atom::Var(input), axis, 0)?,
                batched: true,
            },
            None => Value {
                atom: Atom::Var(input),
                batched: false,
            },
        });
    }
    let results = b.body(program, values)?;
    let mut outputs = Vec::with_capacity(results.len());
    for (value, axis) in results.iter().zip(&batching.out_axes) {
        outputs.push(match (*axis, value.batched) {
            (Some(axis), _) => {
                let stacked = b.batched(value)?;
                b.move_axis(stacked, 0, axis)?
            }
            (None, false) => value.atom.clone(),
            // An output declared unbatched that depends on the batch: the interpreter's
            // error path decides.
            (None, true) => return None,
        });
    }
    Some(Program::new(inputs, b.equations, outputs, b.avals))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{arr, aval};
    use nnx_core::Engine;
    use nnx_core::program::trace_fn;
    use nnx_reference::Reference;

    use crate::Fast;

    #[test]
    fn a_batched_body_agrees_with_the_reference_and_has_no_vmap_left() {
        // Per lane: a vector through a dense layer, a reduction, a transpose and a reshape.
        let traced = trace_fn(&[aval(&[3]), aval(&[3, 4]), aval(&[4])], |xs| {
            let (x, w, b) = (&xs[0], &xs[1], &xs[2]);
            let h = x.matmul(w)?.add(b)?.relu()?;
            let s = h.sum(nnx_core::Axes::All)?;
            let t = w.matmul(&h.reshape(&[4, 1])?)?.transpose()?;
            Ok((vec![h, s, t], ()))
        })
        .unwrap();
        let batching = Batching {
            in_axes: vec![Some(1), None, Some(0)],
            out_axes: vec![Some(0), Some(0), Some(2)],
            axis_size: 5,
        };
        let flat = batched_program(&traced.program, &batching).expect("rules cover the body");
        assert!(
            !flat
                .equations
                .iter()
                .any(|eq| matches!(eq.primitive, Primitive::Vmap { .. })),
            "{flat}"
        );
        let inputs = vec![arr(&[3, 5], 0.0), arr(&[3, 4], 1.0), arr(&[5, 4], 2.0)];
        let expected = Reference
            .run_batched(&traced.program, &inputs, &batching)
            .unwrap();
        let got = Fast.run(&flat, &inputs).unwrap();
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g.shape(), e.shape());
            assert!(g.allclose(e, 1e-5, 1e-6).unwrap(), "{g:?} vs {e:?}");
        }
    }

    /// A program whose only equation is a `cond` (through the `cond` transform) on a
    /// predicate computed from `x`.
    fn cond_program() -> nnx_core::program::Program {
        use nnx_core::transforms::cond;
        use nnx_core::{Axes, Result, Tensor};
        trace_fn(&[aval(&[3]), aval(&[3])], |xs| {
            let (x, w) = (&xs[0], &xs[1]);
            let positive = x.sum(Axes::All)?.greater(&Tensor::scalar(0.0f32))?;
            let y = cond(
                |x: &Tensor, w: &Tensor| -> Result<Tensor> { x.mul(w)?.tanh() },
                |x: &Tensor, w: &Tensor| -> Result<Tensor> { x.sub(w) },
            )
            .call(&Fast, (&positive, x, w))?;
            Ok((vec![y], ()))
        })
        .unwrap()
        .program
    }

    #[test]
    fn a_cond_batches_without_running_lane_by_lane() {
        let program = cond_program();
        let has = |p: &nnx_core::program::Program, name: &str| {
            p.equations.iter().any(|eq| eq.primitive.name() == name)
        };
        // A batched predicate selects between both branches; an unbatched one stays a cond.
        for (in_axes, expect_cond) in [(vec![Some(0), Some(0)], false), (vec![None, Some(0)], true)]
        {
            let batching = Batching {
                in_axes,
                out_axes: vec![Some(0)],
                axis_size: 4,
            };
            let flat = batched_program(&program, &batching).expect("rules cover a cond");
            assert!(!has(&flat, "vmap"), "{flat}");
            assert_eq!(has(&flat, "cond"), expect_cond, "{flat}");
            let x = match batching.in_axes[0] {
                Some(_) => arr(&[4, 3], 0.0),
                None => arr(&[3], 0.0),
            };
            let inputs = vec![x, arr(&[4, 3], 5.0)];
            let expected = Reference.run_batched(&program, &inputs, &batching).unwrap();
            let got = Fast.run(&flat, &inputs).unwrap();
            assert!(got[0].allclose(&expected[0], 1e-6, 1e-6).unwrap());
        }
    }

    #[test]
    fn a_while_loop_batches_with_a_different_number_of_iterations_per_lane() {
        use nnx_core::transforms::while_loop;
        use nnx_core::{Result, Tensor};
        // y doubles while below a limit: lanes stop after different numbers of iterations.
        let program = trace_fn(&[aval(&[]), aval(&[])], |xs| {
            let (y, limit) = (&xs[0], &xs[1]);
            let (i, y) = while_loop(
                |_i: &Tensor, y: &Tensor, limit: &Tensor| y.less(limit),
                |i: &Tensor, y: &Tensor, limit: &Tensor| -> Result<(Tensor, Tensor, Tensor)> {
                    Ok(((i + 1)?, (y * 2.0)?, limit.clone()))
                },
            )
            .call(&Fast, (&Tensor::scalar(0i32), y, limit))
            .map(|(i, y, _): (Tensor, Tensor, Tensor)| (i, y))?;
            Ok((vec![i, y], ()))
        })
        .unwrap()
        .program;
        for in_axes in [
            vec![Some(0), None],
            vec![Some(0), Some(0)],
            vec![None, Some(0)],
        ] {
            let batching = Batching {
                in_axes,
                out_axes: vec![Some(0), Some(0)],
                axis_size: 3,
            };
            let flat = batched_program(&program, &batching).expect("rules cover a while loop");
            assert!(
                !flat
                    .equations
                    .iter()
                    .any(|eq| eq.primitive.name() == "vmap"),
                "{flat}"
            );
            let input = |axis: Option<usize>, lanes: [f32; 3]| match axis {
                Some(_) => nnx_core::Array::from_vec(&[3], lanes.to_vec()).unwrap(),
                None => nnx_core::Array::scalar(lanes[0]),
            };
            let inputs = vec![
                input(batching.in_axes[0], [1.0, 3.0, 20.0]),
                input(batching.in_axes[1], [10.0, 40.0, 5.0]),
            ];
            let expected = Reference.run_batched(&program, &inputs, &batching).unwrap();
            let got = Fast.run(&flat, &inputs).unwrap();
            for (g, e) in got.iter().zip(&expected) {
                assert_eq!(g.to_vec::<f32>().ok(), e.to_vec::<f32>().ok());
                assert_eq!(g.to_vec::<i32>().ok(), e.to_vec::<i32>().ok());
            }
        }
    }
}
