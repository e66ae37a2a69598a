//! Pruning a transform's program of what it passes through unchanged.
//!
//! A training step reads a few of a model's Variables and writes back all of them: most of
//! its outputs are its inputs, unchanged. Before a trace is cached, such outputs are taken
//! out of the program (the caller keeps the input values), and inputs nothing reads any more
//! are not passed to it, so a cached call moves only what the computation uses. An output is
//! a pass-through when the program returns an input variable as it is and the transform maps
//! it the same way in and out (always for `call`; for `vmap` when the in and out axes agree;
//! for `scan` a scanned input stacked along the same axis, or a carry or broadcast input
//! returned as such). Engines apply the same pruning to nested equations when they compile.

use std::sync::Arc;

use crate::program::{
    Atom, Batching, Primitive, Program, ProgramRef, ScanInput, ScanOutput, ScanSpec,
};

/// Where a transform's result comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Passed {
    /// Result `k` of the pruned program.
    Computed(usize),
    /// Input `i` of the transform, unchanged.
    Input(usize),
}

/// A primitive over a pruned program: which of the transform's inputs it takes, and where
/// each of the transform's results comes from.
pub struct Pruned {
    /// The primitive over the pruned program.
    pub primitive: Primitive,
    /// The original inputs it takes, in order.
    pub inputs: Vec<usize>,
    /// Where each original result comes from.
    pub results: Vec<Passed>,
}

/// A `call` (or `remat`) of `program` pruned; `wrap` builds the primitive around a program.
fn prune_call(program: ProgramRef, wrap: impl Fn(ProgramRef) -> Primitive) -> Pruned {
    match prune_program(&program.0, |_, _| true, |_| false) {
        Some((pruned, inputs, results)) => Pruned {
            primitive: wrap(ProgramRef(Arc::new(pruned))),
            inputs,
            results,
        },
        None => {
            let p = program.0.clone();
            kept(wrap(program), &p)
        }
    }
}

/// `primitive` of `program` as it is: every input read, every output computed.
fn kept(primitive: Primitive, program: &Program) -> Pruned {
    Pruned {
        primitive,
        inputs: (0..program.inputs.len()).collect(),
        results: (0..program.outputs.len()).map(Passed::Computed).collect(),
    }
}

/// Prunes `primitive`'s program (a `call`, `remat`, `vmap` or `scan`; a `custom_vjp` call
/// and first-order primitives are kept as they are).
pub fn prune(primitive: Primitive) -> Pruned {
    match primitive {
        Primitive::Call { program } => prune_call(program, |program| Primitive::Call { program }),
        Primitive::Remat { program, policy } => {
            prune_call(program, |program| Primitive::Remat { program, policy })
        }
        Primitive::Vmap { program, batching } => {
            let same_axes = |i: usize, j: usize| {
                batching.in_axes.get(i).copied().flatten()
                    == batching.out_axes.get(j).copied().flatten()
            };
            match prune_program(&program.0, same_axes, |_| false) {
                Some((pruned, inputs, results)) => {
                    let batching = Batching {
                        in_axes: inputs.iter().map(|&i| batching.in_axes[i]).collect(),
                        out_axes: results
                            .iter()
                            .enumerate()
                            .filter(|(_, r)| matches!(r, Passed::Computed(_)))
                            .map(|(j, _)| batching.out_axes[j])
                            .collect(),
                        axis_size: batching.axis_size,
                    };
                    Pruned {
                        primitive: Primitive::Vmap {
                            program: ProgramRef(Arc::new(pruned)),
                            batching,
                        },
                        inputs,
                        results,
                    }
                }
                None => {
                    let p = program.0.clone();
                    kept(Primitive::Vmap { program, batching }, &p)
                }
            }
        }
        Primitive::Scan { program, spec } => {
            // A scanned input returned stacked along the same axis, a carry returned as its
            // own new value and a broadcast input returned as a broadcast output come out as
            // they went in. Carries are always kept (an output names its carry by index).
            let identity = |i: usize, j: usize| match (spec.inputs.get(i), spec.outputs.get(j)) {
                (Some(ScanInput::Scanned(a)), Some(ScanOutput::Stacked(b))) => a == b,
                (Some(ScanInput::Carry), Some(ScanOutput::Carry(c))) => *c == i,
                // (With no iteration, a broadcast output is zeros instead.)
                (Some(ScanInput::Broadcast), Some(ScanOutput::Broadcast)) => spec.length > 0,
                _ => false,
            };
            let carry = |i: usize| spec.inputs.get(i) == Some(&ScanInput::Carry);
            match prune_program(&program.0, identity, carry) {
                Some((pruned, inputs, results)) => {
                    let renumber = |i: usize| inputs.iter().position(|&k| k == i);
                    let outputs = results
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| matches!(r, Passed::Computed(_)))
                        .map(|(j, _)| match spec.outputs[j] {
                            ScanOutput::Carry(i) => renumber(i).map(ScanOutput::Carry),
                            other => Some(other),
                        })
                        .collect::<Option<Vec<_>>>();
                    match outputs {
                        Some(outputs) => Pruned {
                            primitive: Primitive::Scan {
                                program: ProgramRef(Arc::new(pruned)),
                                spec: ScanSpec {
                                    length: spec.length,
                                    reverse: spec.reverse,
                                    inputs: inputs.iter().map(|&i| spec.inputs[i]).collect(),
                                    outputs,
                                },
                            },
                            inputs,
                            results,
                        },
                        None => {
                            let p = program.0.clone();
                            kept(Primitive::Scan { program, spec }, &p)
                        }
                    }
                }
                None => {
                    let p = program.0.clone();
                    kept(Primitive::Scan { program, spec }, &p)
                }
            }
        }
        // Its backward pass reads the forward pass's inputs and outputs by position.
        Primitive::CustomVjp {
            program,
            forward,
            backward,
        } => {
            let p = program.0.clone();
            let primitive = Primitive::CustomVjp {
                program,
                forward,
                backward,
            };
            kept(primitive, &p)
        }
        // Its operands and results are split over devices: kept whole.
        Primitive::ShardMap { program, spec } => {
            let p = program.0.clone();
            kept(Primitive::ShardMap { program, spec }, &p)
        }
        // Transforms build only these higher-order primitives.
        other => Pruned {
            primitive: other,
            inputs: Vec::new(),
            results: Vec::new(),
        },
    }
}

/// The program without its pass-through outputs and the inputs nothing reads, or `None`
/// when there is nothing to prune. `identity(i, j)` says whether returning input `i` as
/// output `j` leaves it unchanged; inputs for which `keep(i)` holds stay even when unread.
fn prune_program(
    program: &Program,
    identity: impl Fn(usize, usize) -> bool,
    keep: impl Fn(usize) -> bool,
) -> Option<(Program, Vec<usize>, Vec<Passed>)> {
    let mut input_of = vec![None; program.avals.len()];
    for (i, v) in program.inputs.iter().enumerate() {
        *input_of.get_mut(v.0 as usize)? = Some(i);
    }
    let mut results = Vec::with_capacity(program.outputs.len());
    let mut outputs = Vec::new();
    for (j, atom) in program.outputs.iter().enumerate() {
        match atom {
            Atom::Var(v) if input_of[v.0 as usize].is_some_and(|i| identity(i, j)) => {
                results.push(Passed::Input(input_of[v.0 as usize]?));
            }
            _ => {
                results.push(Passed::Computed(outputs.len()));
                outputs.push(atom.clone());
            }
        }
    }
    // What the kept outputs need, backwards: live equations and the inputs they read.
    let mut needed = vec![false; program.avals.len()];
    for atom in &outputs {
        if let Atom::Var(v) = atom {
            needed[v.0 as usize] = true;
        }
    }
    let mut live = vec![false; program.equations.len()];
    for (k, eq) in program.equations.iter().enumerate().rev() {
        if eq.outputs.iter().any(|v| needed[v.0 as usize]) {
            live[k] = true;
            for atom in &eq.inputs {
                if let Atom::Var(v) = atom {
                    needed[v.0 as usize] = true;
                }
            }
        }
    }
    let inputs: Vec<usize> = (0..program.inputs.len())
        .filter(|&i| needed[program.inputs[i].0 as usize] || keep(i))
        .collect();
    if inputs.len() == program.inputs.len() && outputs.len() == program.outputs.len() {
        return None;
    }
    let equations = program
        .equations
        .iter()
        .zip(&live)
        .filter(|(_, live)| **live)
        .map(|(eq, _)| eq.clone())
        .collect();
    let pruned = Program::new(
        inputs.iter().map(|&i| program.inputs[i]).collect(),
        equations,
        outputs,
        program.avals.clone(),
    );
    Some((pruned, inputs, results))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::{AbstractValue, trace_fn};
    use crate::tensor::DType;

    #[test]
    fn pass_through_outputs_and_unread_inputs_are_removed() {
        let aval = AbstractValue::new(vec![2], DType::F32, false);
        let traced = trace_fn(&[aval.clone(), aval.clone(), aval], |xs| {
            let y = (&xs[1] * 2.0)?;
            Ok((vec![xs[0].clone(), y, xs[2].clone()], ()))
        })
        .unwrap();
        let pruned = prune(Primitive::Call {
            program: ProgramRef(Arc::new(traced.program)),
        });
        assert_eq!(pruned.inputs, vec![1]);
        assert_eq!(
            pruned.results,
            vec![Passed::Input(0), Passed::Computed(0), Passed::Input(2)]
        );
        let Primitive::Call { program } = &pruned.primitive else {
            panic!("still a call")
        };
        assert_eq!(program.0.inputs.len(), 1);
        assert_eq!(program.0.outputs.len(), 1);
    }

    #[test]
    fn vmap_keeps_outputs_whose_axes_move() {
        let aval = AbstractValue::new(vec![2], DType::F32, false);
        let traced = trace_fn(&[aval.clone(), aval], |xs| {
            Ok((vec![xs[0].clone(), xs[1].clone()], ()))
        })
        .unwrap();
        let pruned = prune(Primitive::Vmap {
            program: ProgramRef(Arc::new(traced.program)),
            batching: Batching {
                in_axes: vec![Some(0), Some(0)],
                out_axes: vec![Some(0), Some(1)],
                axis_size: 3,
            },
        });
        assert_eq!(pruned.results, vec![Passed::Input(0), Passed::Computed(0)]);
        assert_eq!(pruned.inputs, vec![1]);
    }

    #[test]
    fn scan_passes_scanned_layers_through_and_keeps_every_carry() {
        // Inputs: a carry h, scanned layers w, an unread carry c, a broadcast b.
        // Outputs: new h (computed), w stacked (pass-through), c (pass-through), b broadcast.
        let aval = AbstractValue::new(vec![2], DType::F32, false);
        let traced = trace_fn(&[aval.clone(), aval.clone(), aval.clone(), aval], |xs| {
            let h = (&xs[0] * &xs[1])?;
            Ok((vec![h, xs[1].clone(), xs[2].clone(), xs[3].clone()], ()))
        })
        .unwrap();
        let spec = |length| ScanSpec {
            length,
            reverse: false,
            inputs: vec![
                ScanInput::Carry,
                ScanInput::Scanned(0),
                ScanInput::Carry,
                ScanInput::Broadcast,
            ],
            outputs: vec![
                ScanOutput::Carry(0),
                ScanOutput::Stacked(0),
                ScanOutput::Carry(2),
                ScanOutput::Broadcast,
            ],
        };
        let program = ProgramRef(Arc::new(traced.program));
        let pruned = prune(Primitive::Scan {
            program: program.clone(),
            spec: spec(4),
        });
        assert_eq!(
            pruned.results,
            vec![
                Passed::Computed(0),
                Passed::Input(1),
                Passed::Input(2),
                Passed::Input(3)
            ]
        );
        // The unread carry stays an input (carries are matched by index).
        assert_eq!(pruned.inputs, vec![0, 1, 2]);
        let Primitive::Scan {
            spec: pruned_spec, ..
        } = &pruned.primitive
        else {
            panic!("still a scan")
        };
        assert_eq!(pruned_spec.outputs, vec![ScanOutput::Carry(0)]);
        // With no iteration a broadcast output is zeros, not the input.
        let empty = prune(Primitive::Scan {
            program,
            spec: spec(0),
        });
        assert_eq!(empty.results[3], Passed::Computed(1));
    }
}
