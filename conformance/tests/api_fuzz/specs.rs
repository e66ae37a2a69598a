//! What the model predicts of each transform spec (axes, sizes, returned values), and the
//! checks after a call (gradients, the library still usable).

use super::*;
use nnx_core::transforms::{Axis, AxisSpec};

/// The number of `value_and_grad` specs in the menu (`transforms::call_transform`): the
/// default, a BatchStat `DiffState`, argnums `[0, 1]`, then invalid ones — repeated,
/// empty and out-of-range argnums.
pub(crate) const GRAD_SPECS: usize = 6;

/// How `vmap` treats the Params of `args[0]` (where closures create Variables): the axis,
/// or `None` for broadcast.
pub(crate) fn vmap_param_axis(spec: usize) -> Option<isize> {
    match spec {
        0 | 3 | 5 | 6 => Some(0),
        1 => None,
        2 => Some(-1),
        _ => Some(1),
    }
}

/// The `in_axes` of each `vmap` spec (`vmap_param_axis` says what they mean for `args[0]`).
pub(crate) fn vmap_in_axes(spec: usize, nargs: usize) -> Prefix<Axis> {
    match spec {
        0 => AxisSpec::from(0),
        1 => AxisSpec::from(None::<i32>),
        2 => AxisSpec::from(-1),
        3 => {
            let mut items = vec![AxisSpec::from(StateAxes::new([
                (VariableType::PARAM.into(), Some(0)),
                (Filter::Everything, None),
            ]))];
            items.extend((1..nargs).map(|_| AxisSpec::from(0)));
            Prefix::Tuple(items)
        }
        4 => AxisSpec::from(1),
        // Invalid: a tuple with one entry too many.
        5 => Prefix::Tuple((0..=nargs).map(|_| AxisSpec::from(0)).collect()),
        // Invalid: StateAxes for the whole argument list.
        _ => AxisSpec::from(StateAxes::new([(Filter::Everything, Some(0))])),
    }
}

/// The leaves the arguments pass (Variables and raw arrays of each argument, then the extra
/// array), with their arguments' index.
pub(crate) fn arg_leaves(
    w: &World,
    args: &[Nid],
    extra: Option<&Tensor>,
) -> Vec<(usize, Option<Vid>, Tensor)> {
    let mut out = Vec::new();
    for (i, _, leaf) in w.flatten_args(args) {
        match leaf {
            FlatLeaf::Var(v) => out.push((i, Some(v), w.vars[v].value.clone())),
            FlatLeaf::Array(n, k) => {
                if let Some((_, MVal::Array(t))) =
                    w.nodes[n].attrs.iter().find(|(key, _)| *key == k)
                {
                    out.push((i, None, t.clone()));
                }
            }
        }
    }
    if let Some(t) = extra {
        out.push((args.len(), None, t.clone()));
    }
    out
}

/// A possibly negative axis of an array of rank `rank`, or `None` when out of range.
pub(crate) fn normalize(axis: isize, rank: usize) -> Option<usize> {
    let n = rank as isize;
    let a = if axis < 0 { axis + n } else { axis };
    (0..n).contains(&a).then_some(a as usize)
}

/// The size of the batch (vmap) or of the scan: `None` when no leaf is mapped, a mapped axis
/// is out of range or the mapped sizes disagree (the call must fail then).
pub(crate) fn mapped_size(
    w: &World,
    args: &[Nid],
    extra: Option<&Tensor>,
    axis_of: impl Fn(usize, Option<Vid>) -> Option<isize>,
) -> Option<usize> {
    let mut size = None;
    for (arg, var, t) in arg_leaves(w, args, extra) {
        if let Some(axis) = axis_of(arg, var) {
            let a = normalize(axis, t.shape().len())?;
            if *size.get_or_insert(t.shape()[a]) != t.shape()[a] {
                return None;
            }
        }
    }
    size
}

/// The shape `vmap` must return for the extra array (and whether it must be that very
/// array), or `None` when the output axes must be rejected.
pub(crate) fn vmap_output(t: &Transform, x: &Tensor) -> Option<(Vec<usize>, bool)> {
    let spec = t.spec % 7;
    let in_axis = match spec {
        1 => None,
        3 => Some(0),
        _ => vmap_param_axis(spec),
    };
    let out_axis = (t.out_axis != 2).then_some(isize::from(t.out_axis));
    let mut shape = x.shape().to_vec();
    match (in_axis, out_axis) {
        // Broadcast in and out: the array itself.
        (None, None) => Some((shape, true)),
        // Broadcast in, mapped out: `axis_size` copies.
        (None, Some(b)) => {
            let b = normalize(b, shape.len() + 1)?;
            shape.insert(b, 2);
            Some((shape, false))
        }
        // Mapped in, broadcast out: it differs per lane, which is an error.
        (Some(_), None) => None,
        (Some(a), Some(b)) => {
            let a = normalize(a, shape.len())?;
            let b = normalize(b, shape.len())?;
            let n = shape.remove(a);
            shape.insert(b, n);
            Some((shape, a == b))
        }
    }
}

/// The gradients of a constant loss: zeros, one State per differentiated object argument
/// holding its differentiated Variables at their first paths.
pub(crate) fn check_grads(
    before: &World,
    t: &Transform,
    args: &[Nid],
    has_extra: bool,
    grads: &[Grad],
) -> Step {
    let spec = if t.kind == TKind::GradOfJit {
        0
    } else {
        t.spec % GRAD_SPECS
    };
    let wrt: Vec<(usize, MFilter)> = match spec {
        0 => vec![(0, MFilter::Param)],
        1 => vec![(0, MFilter::BatchStat)],
        _ => vec![(0, MFilter::Param), (1, MFilter::Param)],
    };
    if grads.len() != wrt.len() {
        return Err(format!(
            "{} gradients for {} argnums",
            grads.len(),
            wrt.len()
        ));
    }
    for ((argnum, filter), g) in wrt.into_iter().zip(grads) {
        if argnum >= args.len() {
            if !has_extra {
                return Err(fail("a gradient for a missing argument"));
            }
            let a = g.array().map_err(|e| e.to_string())?;
            if a.to_vec::<f32>()
                .map_err(|e| e.to_string())?
                .iter()
                .any(|x| *x != 0.0)
            {
                return Err(fail("a non-zero gradient of a constant"));
            }
            continue;
        }
        let state = g.state().map_err(|e| e.to_string())?;
        let expected: Vec<Vec<Key>> = before
            .flatten(args[argnum])
            .into_iter()
            .filter(|(p, l)| matches!(l, FlatLeaf::Var(_)) && filter.matches(before, p, l))
            .map(|(p, _)| p)
            .collect();
        let paths: Vec<Vec<Key>> = state.paths().map(|p| p.keys().to_vec()).collect();
        if paths != expected {
            return Err(format!(
                "gradient paths {paths:?}, the model has {expected:?}"
            ));
        }
        for (_, leaf) in state {
            let v = leaf.value();
            if v.dtype() == DType::F32
                && v.to_vec::<f32>()
                    .map_err(|e| e.to_string())?
                    .iter()
                    .any(|x| *x != 0.0)
            {
                return Err(fail("a non-zero gradient of a constant"));
            }
        }
    }
    Ok(())
}

/// The library is usable after any transform: the trace level is back to 0, a tracer the
/// closure kept is escaped, and a fresh transform works.
pub(crate) fn after_transform(leak: &RefCell<Option<Tensor>>) -> Step {
    if trace::current_level() != 0 {
        return Err(format!(
            "the trace level is {} after the call",
            trace::current_level()
        ));
    }
    if let Some(t) = leak.borrow_mut().take() {
        match &t + 1.0 {
            Err(e) if e.kind() == ErrorKind::Tracing => {}
            other => {
                return Err(format!(
                    "a tracer kept from a finished transform gave {:?}",
                    other.map(|t| t.repr())
                ));
            }
        }
    }
    let f = jit(|a: &[Value]| Ok(Value::from((a[0].as_tensor()? * 2.0)?)));
    let out = f
        .call(&Reference, (Tensor::ones([2]),))
        .and_then(|v| v.as_tensor())
        .and_then(|t| t.to_vec::<f32>())
        .map_err(|e| format!("a fresh jit failed: {e}"))?;
    if out != [2.0, 2.0] {
        return Err(format!("a fresh jit computed {out:?}"));
    }
    Ok(())
}
