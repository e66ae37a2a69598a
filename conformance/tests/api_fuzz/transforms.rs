//! Transform steps: the call, the closure menu, and the model of what a call does.

use super::*;
use nnx_core::transforms::AxisSpec;

/// What the model expects of a transform call.
#[derive(Clone, Copy)]
pub(crate) enum Expect {
    Ok,
    Err,
    /// The model does not decide validity (aliasing between arguments, a `scan` carry's
    /// structure); if the call succeeds its result must still equal the model's.
    Either,
}

/// What the closure did, as the model sees it.
pub(crate) struct BodyEffect {
    /// `t + 1` applications per Variable.
    increments: HashMap<Vid, usize>,
    /// The metadata before the call of every Variable whose metadata the closure set.
    metadata_before: HashMap<Vid, Vec<(String, Static)>>,
    /// Keys drawn per stream, by the stream's count Variable.
    draws: HashMap<Vid, usize>,
    /// Variables created inside.
    created: Vec<Vid>,
}

/// Applies the closure's actions to the model's `args[0]`, as the closure does to the raised
/// object (whose attributes arrive in key order; picks are by key order either way).
pub(crate) fn model_body(w: &mut World, arg0: Nid, actions: &[Action]) -> BodyEffect {
    let mut effect = BodyEffect {
        increments: HashMap::new(),
        metadata_before: HashMap::new(),
        draws: HashMap::new(),
        created: Vec::new(),
    };
    for a in actions {
        let attrs = w.sorted_attrs(arg0);
        let vars: Vec<(Key, Vid)> = attrs
            .iter()
            .filter_map(|(k, v)| match v {
                MVal::Var(x) if !w.vars[*x].ty.is_subtype_of(VariableType::RNG_STATE) => {
                    Some((k.clone(), *x))
                }
                _ => None,
            })
            .collect();
        match a {
            Action::Update(i) => {
                if !vars.is_empty() {
                    *effect.increments.entry(vars[i % vars.len()].1).or_default() += 1;
                }
            }
            Action::AddVar(k) => {
                let v = w.add_var(
                    MVar {
                        ty: VariableType::PARAM,
                        value: Tensor::full([2], 3.0f32),
                        metadata: Vec::new(),
                    },
                    None,
                );
                effect.created.push(v);
                w.set(arg0, Key::from(INNER_KEYS[*k]), MVal::Var(v));
            }
            Action::Del(i) => {
                if !attrs.is_empty() {
                    let k = attrs[i % attrs.len()].0.clone();
                    w.remove(arg0, &k);
                }
            }
            Action::Share(k, i) => {
                if !vars.is_empty() {
                    let v = vars[i % vars.len()].1;
                    w.set(arg0, Key::from(INNER_KEYS[*k]), MVal::Var(v));
                }
            }
            Action::NewSub(k) => {
                let v = w.add_var(
                    MVar {
                        ty: VariableType::PARAM,
                        value: Tensor::full([2], 5.0f32),
                        metadata: Vec::new(),
                    },
                    None,
                );
                effect.created.push(v);
                let c = w.add_node(Kind::Object("Child".into()), None);
                w.set(c, Key::from("p"), MVal::Var(v));
                w.set(arg0, Key::from(INNER_KEYS[*k]), MVal::Node(c));
            }
            Action::Static(k, v) => {
                w.set(
                    arg0,
                    Key::from(INNER_KEYS[*k]),
                    MVal::Static(Static::from(i64::from(*v))),
                );
            }
            Action::Leak | Action::Captured(_) => {}
            Action::Draw(i) => {
                let counts: Vec<Vid> = w
                    .reachable(&[arg0])
                    .into_iter()
                    .filter(|&n| matches!(&w.nodes[n].kind, Kind::Object(t) if t == "RngStream"))
                    .filter_map(|n| {
                        w.nodes[n].attrs.iter().find_map(|(k, v)| match v {
                            MVal::Var(x) if *k == Key::from("count") => Some(*x),
                            _ => None,
                        })
                    })
                    .collect();
                if !counts.is_empty() {
                    *effect.draws.entry(counts[i % counts.len()]).or_default() += 1;
                }
            }
            Action::Meta(i, k, value) => {
                if !vars.is_empty() {
                    let v = vars[i % vars.len()].1;
                    effect
                        .metadata_before
                        .entry(v)
                        .or_insert_with(|| w.vars[v].metadata.clone());
                    set_metadata(
                        &mut w.vars[v].metadata,
                        METADATA_KEYS[*k],
                        Static::from(i64::from(*value)),
                    );
                }
            }
        }
    }
    effect
}

/// The closure's actions on the library's raised `args[0]`.
pub(crate) fn lib_body(
    inner: &[Value],
    outer: &Value,
    actions: &[Action],
    ending: Ending,
    leak: &RefCell<Option<Tensor>>,
) -> Result<()> {
    // The menu acts on objects; a list or dict argument is only passed through.
    let Some(o) = inner.first().and_then(Value::as_object) else {
        return finish(ending);
    };
    let stop = if ending == Ending::Ok {
        actions.len()
    } else {
        actions.len() / 2
    };
    for a in &actions[..stop] {
        let mut attrs: Vec<(Key, Value)> = o
            .attributes()
            .into_iter()
            .map(|(k, v)| (Key::from(k), v))
            .collect();
        attrs.sort_by(|a, b| key_order(&a.0, &b.0));
        let vars: Vec<Variable> = attrs
            .iter()
            .filter_map(|(_, v)| v.as_variable().cloned())
            .filter(|v| !v.is_instance(VariableType::RNG_STATE))
            .collect();
        match a {
            Action::Update(i) => {
                if !vars.is_empty() {
                    vars[i % vars.len()].update(|t| t + 1.0)?;
                }
            }
            Action::AddVar(k) => o.set(INNER_KEYS[*k], Param::new(Tensor::full([2], 3.0f32)))?,
            Action::Del(i) => {
                if !attrs.is_empty() {
                    o.del(&key_text(&attrs[i % attrs.len()].0))?;
                }
            }
            Action::Share(k, i) => {
                if !vars.is_empty() {
                    o.set(INNER_KEYS[*k], &vars[i % vars.len()])?;
                }
            }
            Action::NewSub(k) => o.set(
                INNER_KEYS[*k],
                Object::new("Child").with("p", Param::new(Tensor::full([2], 5.0f32)))?,
            )?,
            Action::Static(k, v) => o.set(INNER_KEYS[*k], Static::from(i64::from(*v)))?,
            Action::Meta(i, k, value) => {
                if !vars.is_empty() {
                    vars[i % vars.len()]
                        .set_metadata(METADATA_KEYS[*k], Static::from(i64::from(*value)))?;
                }
            }
            Action::Draw(i) => {
                let streams = nnx_core::random::rng_streams(o)?;
                if !streams.is_empty() {
                    streams[i % streams.len()].1.next_key()?;
                }
            }
            Action::Captured(true) => outer.object()?.set("captured", 1)?,
            Action::Captured(false) => {
                vmap(|_: &[Value]| Ok(Value::Static(Static::None)))
                    .in_axes(None::<i32>)
                    .axis_size(1)
                    .call(&Reference, std::slice::from_ref(outer))?;
            }
            Action::Leak => {
                if let Some(t) = vars.iter().map(Variable::value).find(Tensor::is_traced) {
                    *leak.borrow_mut() = Some(t);
                }
            }
        }
    }
    finish(ending)
}

pub(crate) fn run_transform(w: &mut World, t: &Transform) -> Step {
    // Arguments: roots (even picks) or any node below them (odd picks), lists and dicts too.
    let nodes = editable_nodes(w);
    let arg_nodes: Vec<Nid> = t
        .args
        .iter()
        .map(|&i| match i % 2 {
            0 => w.roots[(i / 2) % w.roots.len()],
            _ => nodes[(i / 2) % nodes.len()],
        })
        .collect();
    let actions: &[Action] = match w.nodes[arg_nodes[0]].kind {
        Kind::Object(_) => &t.actions,
        _ => &[],
    };
    let extra = t.extra.map(|s| ramp(SHAPES[s], 1));
    let mut args: Vec<Value> = arg_nodes
        .iter()
        .map(|&n| w.node_handle(n).cloned().ok_or("unbound root"))
        .collect::<std::result::Result<_, _>>()?;
    if let Some(x) = &extra {
        args.push(Value::from(x));
    }
    let nargs = args.len();
    let before = w.clone();

    // The model's expectation and the state after a successful call.
    let mut after = w.clone();
    let effect = model_body(&mut after, arg_nodes[0], actions);
    let mut repeat = 1;
    // Where created Variables come out: `Some((axis, size))` stacks them.
    let mut stack_created: Option<(isize, usize)> = None;
    // With one object argument there is no aliasing between arguments to get wrong; with
    // several, a Variable reached from two of them with different prefixes is an error the
    // model does not predict.
    let single_object = if arg_nodes.len() == 1 {
        Expect::Ok
    } else {
        Expect::Either
    };
    let mut expect = match t.kind {
        TKind::Jit | TKind::JitTwice | TKind::JitOfVmap => Expect::Ok,
        TKind::GradOfJit | TKind::Jvp => single_object,
        TKind::Vmap => {
            let spec = t.spec % 7;
            let size = if spec == 1 {
                Some(2)
            } else {
                mapped_size(w, &arg_nodes, extra.as_ref(), |arg, var| {
                    match (spec, arg) {
                        (3, 0) => var
                            .filter(|&v| w.vars[v].ty.is_subtype_of(VariableType::PARAM))
                            .map(|_| 0),
                        _ => vmap_param_axis(spec),
                    }
                })
            };
            match (spec, size) {
                (5 | 6, _) | (_, None) => Expect::Err,
                (1, Some(_)) => Expect::Ok,
                (_, Some(n)) => {
                    stack_created = vmap_param_axis(spec).map(|a| (a, n));
                    single_object
                }
            }
        }
        TKind::Scan => match t.spec % 5 {
            0 => {
                repeat = t.length;
                let only_updates = actions
                    .iter()
                    .all(|a| matches!(a, Action::Update(_) | Action::Draw(_) | Action::Leak));
                if nargs == 1 && only_updates {
                    Expect::Ok
                } else {
                    Expect::Either
                }
            }
            1 | 4 => {
                let axis = if t.spec % 5 == 1 { 0 } else { -1 };
                match mapped_size(w, &arg_nodes, extra.as_ref(), |_, _| Some(axis)) {
                    Some(n) => {
                        stack_created = Some((axis, n));
                        single_object
                    }
                    None => Expect::Err,
                }
            }
            2 => single_object,
            _ => Expect::Err,
        },
        TKind::Grad => match t.spec % GRAD_SPECS {
            0 | 1 => single_object,
            2 if nargs >= 2 => Expect::Either,
            _ => Expect::Err,
        },
    };
    // `vmap` returns the extra array: where its batch axis goes.
    let vmap_output = match (t.kind, &extra) {
        (TKind::Vmap, Some(x)) if t.spec % 7 < 5 => Some(vmap_output(t, x)),
        _ => None,
    };
    if matches!(vmap_output, Some(None)) {
        expect = Expect::Err;
    }
    let ran = if t.ending == Ending::Ok {
        actions
    } else {
        &actions[..actions.len() / 2]
    };
    let breaks_closure_rule = ran.iter().any(|a| matches!(a, Action::Captured(_)));
    if t.ending != Ending::Ok || breaks_closure_rule {
        expect = Expect::Err;
    }
    finish_transform(&mut after, &arg_nodes, &effect, repeat, stack_created)?;
    if t.kind == TKind::JitTwice {
        // The second call replays the cached program or retraces (if the first changed the
        // structure); either way it does what the closure does to the new state.
        let effect = model_body(&mut after, arg_nodes[0], actions);
        finish_transform(&mut after, &arg_nodes, &effect, 1, None)?;
    }

    // The call.
    let leak = RefCell::new(None);
    let body = |inner: &[Value]| -> Result<Value> {
        lib_body(inner, &args[0], &t.actions, t.ending, &leak)?;
        Ok(if t.kind == TKind::Scan && t.spec.is_multiple_of(5) {
            inner[0].clone()
        } else if t.kind == TKind::Vmap && extra.is_some() {
            inner[nargs - 1].clone()
        } else if matches!(t.kind, TKind::Grad | TKind::GradOfJit | TKind::Jvp) {
            Value::from(Tensor::scalar(0.0f32))
        } else {
            Value::Static(Static::None)
        })
    };
    let returned = RefCell::new(None);
    let outcome: Outcome =
        catch_unwind(AssertUnwindSafe(|| call(t, nargs, &args, &body, &returned)));
    // How the call ended. A closure told to fail or panic may not have run at all (an
    // invalid spec fails first), so any error is accepted for those.
    let result = match (t.ending, outcome) {
        (Ending::Panic, Err(payload)) if payload.downcast_ref::<FuzzPanic>().is_some() => Err(None),
        (_, Err(payload)) => {
            return Err(format!("the library panicked: {}", panic_message(&payload)));
        }
        (Ending::Panic | Ending::Err, Ok(Ok(_))) => {
            return Err(format!(
                "the call succeeded although the closure ended with {:?}",
                t.ending
            ));
        }
        (_, Ok(Err(e))) => {
            if breaks_closure_rule
                && t.ending == Ending::Ok
                && !matches!(
                    e.kind(),
                    ErrorKind::TraceContext | ErrorKind::Prefix | ErrorKind::Aliasing
                )
            {
                return Err(format!("breaking the closure rule gave {e}"));
            }
            Err(Some(e))
        }
        (Ending::Ok, Ok(Ok(grads))) => Ok(grads),
    };
    if std::env::var("NNX_FUZZ_STATS").is_ok() {
        eprintln!(
            "STAT {:?} spec {} ending {:?} -> {}",
            t.kind,
            t.spec % 7,
            t.ending,
            match &result {
                Ok(_) => "ok".to_owned(),
                Err(None) => "panic".to_owned(),
                Err(Some(e)) =>
                    format!("err {}", e.to_string().chars().take(60).collect::<String>()),
            }
        );
    }
    match (expect, result) {
        (Expect::Ok, Err(e)) => {
            return Err(format!(
                "failed: {}",
                e.map_or("a panic".to_owned(), |e| e.to_string())
            ));
        }
        (Expect::Err, Ok(_)) => {
            return Err(fail("the call succeeded; the model expected an error"));
        }
        // Failed or panicked: the caller's objects must be exactly as before (the comparison
        // after this step checks them against the restored model).
        (_, Err(_)) => *w = before,
        (_, Ok(grads)) => {
            if let Some(grads) = grads {
                check_grads(&before, t, &arg_nodes, extra.is_some(), &grads)?;
            }
            if let Some(Some((shape, same))) = vmap_output {
                let out = returned
                    .borrow_mut()
                    .take()
                    .ok_or("vmap returned nothing")?
                    .as_tensor()
                    .map_err(|e| e.to_string())?;
                let x = extra.as_ref().ok_or("no extra argument")?;
                if out.shape() != shape.as_slice() || (same && !out.identical(x)) {
                    return Err(format!(
                        "vmap returned {} for {} (out_axes={}); expected shape {shape:?}{}",
                        out.repr(),
                        x.repr(),
                        t.out_axis,
                        if same { ", the input itself" } else { "" }
                    ));
                }
            }
            *w = after;
        }
    }
    after_transform(&leak)
}

/// The model after a successful call: the closure's increments applied `repeat` times to the
/// Variables still reachable from the arguments, created Variables stacked, and every object
/// written back in key order.
pub(crate) fn finish_transform(
    after: &mut World,
    args: &[Nid],
    effect: &BodyEffect,
    repeat: usize,
    stack_created: Option<(isize, usize)>,
) -> Step {
    let reachable = after.reachable_vars(args);
    // Only what is still reachable from the arguments is written back.
    for (v, metadata) in &effect.metadata_before {
        if !reachable.contains(v) {
            after.vars[*v].metadata = metadata.clone();
        }
    }
    for v in reachable {
        if let Some(&k) = effect.draws.get(&v) {
            let value = &after.vars[v].value;
            let counts: Vec<u32> = value
                .to_vec::<u32>()
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|c| c + (k * repeat) as u32)
                .collect();
            after.vars[v].value =
                Tensor::from_vec(value.shape(), counts).map_err(|e| e.to_string())?;
        }
        if let Some(&k) = effect.increments.get(&v) {
            // A Variable created inside starts afresh in every iteration.
            let times = if effect.created.contains(&v) {
                k
            } else {
                k * repeat
            };
            for _ in 0..times {
                after.vars[v].value = (&after.vars[v].value + 1.0).map_err(|e| e.to_string())?;
            }
        }
        if effect.created.contains(&v)
            && let Some((axis, n)) = stack_created
        {
            let value = &after.vars[v].value;
            let mut shape = value.shape().to_vec();
            let Some(a) = normalize(axis, shape.len() + 1) else {
                continue;
            };
            shape.insert(a, n);
            let fill = value.to_vec::<f32>().map_err(|e| e.to_string())?[0];
            after.vars[v].value = Tensor::full(&shape, fill);
        }
    }
    // A successful transform leaves every object it wrote back with its attributes in key
    // order, as Flax does (SEMANTICS.md T4: `vars(obj).clear()`, then the attributes are
    // re-set from the inner graph in sorted order; checked with Flax 0.12.8).
    for n in after.reachable(args) {
        after.nodes[n].attrs = after.sorted_attrs(n);
    }
    Ok(())
}

pub(crate) fn call(
    t: &Transform,
    nargs: usize,
    args: &[Value],
    body: &dyn Fn(&[Value]) -> Result<Value>,
    returned: &RefCell<Option<Value>>,
) -> Result<Option<Vec<Grad>>> {
    let none = |r: Result<Value>| r.map(|_| None);
    match t.kind {
        TKind::Jit => none(jit(body).call(&Reference, args)),
        TKind::JitTwice => {
            let f = jit(body);
            f.call(&Reference, args)?;
            f.call(&Reference, args)?;
            if !(1..=2).contains(&f.trace_count()) {
                return Err(Error::Internal {
                    what: format!("two calls traced {} times", f.trace_count()),
                });
            }
            Ok(None)
        }
        TKind::JitOfVmap => none(
            jit(|a: &[Value]| {
                vmap(body)
                    .in_axes(None::<i32>)
                    .axis_size(2)
                    .call(&Reference, a)
            })
            .call(&Reference, args),
        ),
        TKind::Vmap => {
            let spec = t.spec % 7;
            let out_axes = match t.out_axis {
                2 => AxisSpec::from(None::<i32>),
                b => AxisSpec::from(i32::from(b)),
            };
            let mut f = vmap(body)
                .in_axes(vmap_in_axes(spec, nargs))
                .out_axes(out_axes);
            if spec == 1 {
                f = f.axis_size(2);
            }
            let out = f.call(&Reference, args)?;
            *returned.borrow_mut() = Some(out);
            Ok(None)
        }
        TKind::Scan => {
            let f = scan(body);
            let f = match t.spec % 5 {
                0 => f.in_axes(Carry).out_axes(Carry).length(t.length),
                1 => f.in_axes(0).out_axes(0),
                2 => f.in_axes(None::<i32>).out_axes(0).length(t.length),
                3 => f.in_axes(Carry).out_axes(0).length(t.length),
                _ => f
                    .in_axes(Prefix::Leaf(ScanAxis::Axis(-1)))
                    .out_axes(Prefix::Leaf(ScanAxis::Axis(-1))),
            };
            none(f.call(&Reference, args))
        }
        TKind::Jvp => jvp(body)
            .call(&Reference, args, &[Tangent::State(State::new())])
            .map(|_| None),
        TKind::GradOfJit => value_and_grad(|a: &[Value]| jit(body).call(&Reference, a))
            .call(&Reference, args)
            .map(|out| Some(out.grads)),
        TKind::Grad => {
            let f = value_and_grad(body);
            let f = match t.spec % GRAD_SPECS {
                0 => f,
                1 => f.wrt([DiffState::new(0, VariableType::BATCH_STAT)]),
                2 => f.argnums(&[0, 1]),
                3 => f.argnums(&[0, 0]),
                4 => f.argnums(&[]),
                _ => f.argnums(&[7]),
            };
            f.call(&Reference, args).map(|out| Some(out.grads))
        }
    }
}
