//! Tracing: running a closure once on tracers and recording its array operations.
//!
//! A trace is a frame on a thread-local stack. While a frame is open, an operation with at
//! least one tracer operand is *recorded* into the deepest frame among its operands instead of
//! being computed: operands from that frame become variables, concrete operands become
//! literals, and tracers of enclosing frames are *captured* as extra inputs (closure
//! conversion, as in JAX). Each frame also enters a new trace level, so the closure rule
//! applies to everything created outside it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::ThreadId;

use super::aval::AbstractValue;
use super::ir::{Atom, Equation, Program, VarId};
use super::primitive::Primitive;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::trace::{TraceLevel, current_level, enter_level};

/// The identity of one trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceId(u64);

static NEXT_TRACE: AtomicU64 = AtomicU64::new(0);

/// A traced array: a variable of an open trace with its abstract value.
#[derive(Clone, Debug)]
pub struct Tracer {
    pub(crate) trace: TraceId,
    pub(crate) var: VarId,
    pub(crate) aval: AbstractValue,
    pub(crate) level: TraceLevel,
    /// The thread tracing it: traces live on a thread-local stack.
    pub(crate) thread: ThreadId,
}

impl Tracer {
    /// The abstract value (shape, dtype, weak type).
    pub fn aval(&self) -> &AbstractValue {
        &self.aval
    }

    /// The trace level the tracer belongs to.
    pub fn level(&self) -> TraceLevel {
        self.level
    }
}

struct Frame {
    id: TraceId,
    level: TraceLevel,
    thread: ThreadId,
    avals: Vec<AbstractValue>,
    inputs: Vec<VarId>,
    equations: Vec<Equation>,
    /// Tracers of enclosing traces used here, with the input variable standing for each.
    captured: Vec<(Tensor, TraceId, VarId, VarId)>,
    /// Whether the traced code read state of an enclosing level (a captured Variable's
    /// value): that value is now a constant of the program.
    reads_outer: bool,
}

impl Frame {
    fn new_var(&mut self, aval: AbstractValue) -> VarId {
        let v = VarId(self.avals.len() as u32);
        self.avals.push(aval);
        v
    }

    /// The atom standing for `t` in this frame.
    fn atom(&mut self, t: &Tensor) -> Atom {
        match t.tracer() {
            None => match t.concrete() {
                Ok(a) => Atom::Literal(a.clone()),
                Err(_) => Atom::Literal(crate::tensor::Array::scalar(0.0f32)),
            },
            Some(tr) if tr.trace == self.id => Atom::Var(tr.var),
            Some(tr) => {
                if let Some((_, _, _, inner)) = self
                    .captured
                    .iter()
                    .find(|(_, id, var, _)| *id == tr.trace && *var == tr.var)
                {
                    return Atom::Var(*inner);
                }
                let inner = self.new_var(tr.aval.clone());
                self.captured.push((t.clone(), tr.trace, tr.var, inner));
                Atom::Var(inner)
            }
        }
    }
}

thread_local! {
    static STACK: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// The frame of one running trace on the thread's stack. [`OpenFrame::close`] pops it; if the
/// traced closure panics instead, `Drop` removes it (and anything a nested trace left above
/// it) while the panic unwinds, so the stack is as it was before the trace and tracers of the
/// abandoned trace are reported as escaped rather than recorded into a dead frame.
struct OpenFrame {
    /// The stack's length before the frame was pushed.
    depth: usize,
    closed: bool,
}

impl OpenFrame {
    fn push(frame: Frame) -> OpenFrame {
        let depth = STACK.with(|s| {
            let mut stack = s.borrow_mut();
            stack.push(frame);
            stack.len() - 1
        });
        OpenFrame {
            depth,
            closed: false,
        }
    }

    /// Pops the frame; `None` if the stack no longer holds it.
    fn close(mut self) -> Option<Frame> {
        self.closed = true;
        STACK.with(|s| {
            let mut stack = s.borrow_mut();
            stack.truncate(self.depth + 1);
            if stack.len() == self.depth + 1 {
                stack.pop()
            } else {
                None
            }
        })
    }
}

impl Drop for OpenFrame {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // Unwinding from a panic in the traced closure: no borrow of the stack is live (the
        // panicking code's borrows were released by the unwinding before this runs), and the
        // thread-local may already be gone during thread teardown, hence the `try_` forms.
        let _ = STACK.try_with(|s| {
            if let Ok(mut stack) = s.try_borrow_mut() {
                stack.truncate(self.depth);
            }
        });
    }
}

/// A traced function: its program and the enclosing-trace tensors it captured, which the
/// caller must pass as extra inputs after the declared ones.
pub struct TracedFunction<T> {
    /// The program. Its inputs are the declared inputs followed by one per captured tensor.
    pub program: Program,
    /// Tensors of enclosing traces (or of no trace) the program reads, in input order.
    pub captured: Vec<Tensor>,
    /// What the closure returned besides its output tensors.
    pub extra: T,
    /// Whether the closure read state it captured from an enclosing level (a Variable's
    /// value, an array attribute). Such values are constants of the program, so a cache
    /// must not reuse it: the next call must see the state as it is then.
    pub reads_outer: bool,
}

/// Runs `f` once on fresh tracers with the given abstract values and records what it does.
/// `f` returns its output tensors and any extra data the caller needs.
///
/// # Errors
/// Whatever `f` returns; the trace is closed either way.
pub fn trace_fn<T>(
    in_avals: &[AbstractValue],
    f: impl FnOnce(Vec<Tensor>) -> Result<(Vec<Tensor>, T)>,
) -> Result<TracedFunction<T>> {
    let _level = enter_level();
    let id = TraceId(NEXT_TRACE.fetch_add(1, Ordering::Relaxed));
    let level = current_level();
    let mut frame = Frame {
        id,
        level,
        thread: std::thread::current().id(),
        avals: Vec::new(),
        inputs: Vec::new(),
        equations: Vec::new(),
        captured: Vec::new(),
        reads_outer: false,
    };
    let inputs: Vec<Tensor> = in_avals
        .iter()
        .map(|aval| {
            let var = frame.new_var(aval.clone());
            frame.inputs.push(var);
            Tensor::from_tracer(Tracer {
                trace: id,
                var,
                aval: aval.clone(),
                level,
                thread: frame.thread,
            })
        })
        .collect();
    let open = OpenFrame::push(frame);
    let result = f(inputs);
    // Close the frame whether or not the closure succeeded (if it panics, `open`'s `Drop`
    // closes it while unwinding).
    let mut frame = open
        .close()
        .ok_or_else(|| Error::internal("trace stack is empty"))?;
    let (outputs, extra) = result?;
    if let Some(t) = outputs.iter().find(|t| t.is_abstract()) {
        return Err(Error::AbstractArray {
            aval: t.aval().to_string(),
        });
    }
    let outputs: Vec<Atom> = outputs.iter().map(|t| frame.atom(t)).collect();
    let mut program_inputs = frame.inputs.clone();
    program_inputs.extend(frame.captured.iter().map(|c| c.3));
    Ok(TracedFunction {
        program: Program::new(program_inputs, frame.equations, outputs, frame.avals),
        captured: frame.captured.into_iter().map(|c| c.0).collect(),
        extra,
        reads_outer: frame.reads_outer,
    })
}

/// Notes that state owned by trace level `owner` was read: every open trace deeper than
/// `owner` now depends on it ([`TracedFunction::reads_outer`]).
pub(crate) fn note_read(owner: TraceLevel) {
    if owner >= crate::trace::current_level() {
        return;
    }
    let _ = STACK.try_with(|s| {
        if let Ok(mut stack) = s.try_borrow_mut() {
            for frame in stack.iter_mut().filter(|f| f.level > owner) {
                frame.reads_outer = true;
            }
        }
    });
}

/// Records `primitive(inputs)` into the deepest open trace among the traced inputs.
pub(crate) fn record(primitive: Primitive, inputs: &[&Tensor]) -> Result<Tensor> {
    record_multi(primitive, inputs)?
        .pop()
        .ok_or_else(|| Error::internal("primitive produced no output"))
}

/// Records a primitive with any number of outputs (a nested transform).
pub(crate) fn record_multi(primitive: Primitive, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
    record_at(primitive, inputs, false)
}

/// Whether a trace is open on this thread.
pub(crate) fn tracing_active() -> bool {
    STACK.with(|s| !s.borrow().is_empty())
}

/// Records a primitive into the innermost trace open on this thread, whatever its inputs
/// (none, concrete, or tracers of enclosing traces, which it captures): a collective inside
/// a `shard_map` body.
///
/// # Errors
/// [`Error::Internal`] when no trace is open; as [`record`].
pub(crate) fn record_in_innermost(primitive: Primitive, inputs: &[&Tensor]) -> Result<Tensor> {
    record_at(primitive, inputs, true)?
        .pop()
        .ok_or_else(|| Error::internal("primitive produced no output"))
}

fn record_at(primitive: Primitive, inputs: &[&Tensor], innermost: bool) -> Result<Vec<Tensor>> {
    if let Some(t) = inputs.iter().find(|t| t.is_abstract()) {
        return Err(Error::AbstractArray {
            aval: t.aval().to_string(),
        });
    }
    STACK.with(|s| {
        let mut stack = s.borrow_mut();
        let mut target = None;
        for t in inputs {
            if let Some(tr) = t.tracer() {
                let Some(depth) = stack.iter().position(|f| f.id == tr.trace) else {
                    return Err(if tr.thread == std::thread::current().id() {
                        Error::EscapedTracer {
                            aval: tr.aval.to_string(),
                            op: primitive.name(),
                        }
                    } else {
                        Error::TracerOnOtherThread {
                            aval: tr.aval.to_string(),
                            op: primitive.name(),
                        }
                    });
                };
                target = Some(target.map_or(depth, |d: usize| d.max(depth)));
            }
        }
        let depth = match innermost {
            true => stack.len().checked_sub(1),
            false => target,
        }
        .ok_or_else(|| Error::internal("record called without tracers"))?;
        let frame = &mut stack[depth];
        let atoms: Vec<Atom> = inputs.iter().map(|t| frame.atom(t)).collect();
        let avals: Vec<AbstractValue> = inputs.iter().map(|t| t.aval()).collect();
        let out_avals = primitive.output_avals(&avals)?;
        let outputs: Vec<VarId> = out_avals.iter().map(|a| frame.new_var(a.clone())).collect();
        let tensors = outputs
            .iter()
            .zip(out_avals)
            .map(|(&var, aval)| {
                Tensor::from_tracer(Tracer {
                    trace: frame.id,
                    var,
                    aval,
                    level: frame.level,
                    thread: frame.thread,
                })
            })
            .collect();
        frame.equations.push(Equation {
            primitive,
            inputs: atoms,
            outputs,
        });
        Ok(tensors)
    })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use super::*;
    use crate::tensor::DType;

    fn depth() -> usize {
        STACK.with(|s| s.borrow().len())
    }

    fn scalar_aval() -> AbstractValue {
        Tensor::scalar(1.0f32).aval()
    }

    #[test]
    fn a_panicking_closure_leaves_no_frame_and_no_level_behind() {
        let leaked: RefCell<Option<Tensor>> = RefCell::new(None);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            trace_fn(&[scalar_aval()], |xs| {
                // A nested trace that is still open when the panic unwinds.
                trace_fn(&[scalar_aval()], |ys| -> Result<(Vec<Tensor>, ())> {
                    *leaked.borrow_mut() = Some((&xs[0] + &ys[0])?);
                    panic!("the closure panics halfway");
                })?;
                Ok((Vec::new(), ()))
            })
        }));
        assert!(outcome.is_err());
        assert_eq!(depth(), 0);
        assert_eq!(current_level(), 0);
        // The abandoned trace's tracer is escaped, not recorded into a dead frame.
        let tracer = leaked
            .borrow_mut()
            .take()
            .expect("the closure stored a tracer");
        assert!(matches!(&tracer + 1.0, Err(Error::EscapedTracer { .. })));
        // Tracing works afterwards.
        let traced = trace_fn(&[scalar_aval()], |xs| Ok((vec![(&xs[0] * 2.0)?], ())))
            .expect("a later trace succeeds");
        assert_eq!(traced.program.equations.len(), 1);
        assert_eq!(traced.program.avals[0].dtype, DType::F32);
        assert_eq!(depth(), 0);
    }

    #[test]
    fn a_failing_closure_closes_its_frame() {
        let result = trace_fn(&[scalar_aval()], |_| -> Result<(Vec<Tensor>, ())> {
            Err(Error::shape("f", "stop"))
        });
        assert!(result.is_err());
        assert_eq!(depth(), 0);
        assert_eq!(current_level(), 0);
    }
}
