//! Steps on graphs: building, editing, split/merge, clone, update, state, split_rngs.

use super::*;

/// Makes `n` a root (replacing the last one when there are `MAX_ROOTS`).
pub(crate) fn add_root(w: &mut World, n: Nid) {
    if w.roots.len() < MAX_ROOTS {
        w.roots.push(n);
    } else {
        let last = w.roots.len() - 1;
        w.roots[last] = n;
    }
}

/// A model root made by merge/clone: bound to the object the library returned; the nodes
/// below it are bound by the next comparison.
pub(crate) fn bind_new_root(w: &mut World, model_root: Nid, object: Object) {
    w.bind_node(model_root, Value::from(&object));
    add_root(w, model_root);
}

/// Nodes `Set`/`Del` may target: everything reachable except the insides of `Rngs`, whose
/// structure the RNG code relies on.
pub(crate) fn editable_nodes(w: &World) -> Vec<Nid> {
    w.reachable(&w.roots)
        .into_iter()
        .filter(
            |&n| !matches!(&w.nodes[n].kind, Kind::Object(t) if t == "Rngs" || t == "RngStream"),
        )
        .collect()
}

/// Variables that may be shared and updated: not RNG state (see `UPDATE_FILTERS`).
pub(crate) fn shareable_vars(w: &World, from: &[Nid]) -> Vec<Vid> {
    w.reachable_vars(from)
        .into_iter()
        .filter(|&v| !w.vars[v].ty.is_subtype_of(VariableType::RNG_STATE))
        .collect()
}

/// `set`/`push`/`insert` on a node (in place when the key exists, appended otherwise).
pub(crate) fn set(w: &mut World, node: usize, key: usize, what: &What) -> Step {
    let nodes = editable_nodes(w);
    let n = nodes[node % nodes.len()];
    let handle = w.node_handle(n).cloned().ok_or("unbound node")?;
    let (value, model): (Value, MVal) = match what {
        What::Var {
            batch_stat,
            shape,
            val,
            meta,
        } => {
            let ty = if *batch_stat {
                VariableType::BATCH_STAT
            } else {
                VariableType::PARAM
            };
            let mut v = Variable::new(ty, ramp(SHAPES[*shape], *val));
            if *meta {
                v = v.with_metadata("note", Static::from(i64::from(*val)));
            }
            let m = MVar {
                ty,
                value: v.value(),
                metadata: v.metadata(),
            };
            let id = w.add_var(m, Some(v.clone()));
            (Value::from(v), MVal::Var(id))
        }
        What::Object => {
            let o = Object::new("Child");
            let id = w.add_node(Kind::Object("Child".into()), Some(Value::from(&o)));
            (Value::from(o), MVal::Node(id))
        }
        What::List => {
            let l = List::new([]);
            let id = w.add_node(Kind::List, Some(Value::from(l.clone())));
            (Value::from(l), MVal::Node(id))
        }
        What::Dict => {
            let d = Dict::new();
            let id = w.add_node(Kind::Dict, Some(Value::from(d.clone())));
            (Value::from(d), MVal::Node(id))
        }
        What::Static(v) => {
            let s = Static::from(i64::from(*v));
            (Value::from(s.clone()), MVal::Static(s))
        }
        What::Array { shape, val } => {
            let t = ramp(SHAPES[*shape], *val);
            (Value::from(&t), MVal::Array(t))
        }
        What::ShareVar(i) => {
            let vars = shareable_vars(w, &w.roots.clone());
            if vars.is_empty() {
                return Ok(());
            }
            let v = vars[i % vars.len()];
            let h = w.var_handle(v).cloned().ok_or("unbound Variable")?;
            (Value::from(h), MVal::Var(v))
        }
        What::ShareNode(i) => {
            let all = w.reachable(&w.roots);
            let m = all[i % all.len()];
            let h = w.node_handle(m).cloned().ok_or("unbound node")?;
            (h, MVal::Node(m))
        }
        What::Rngs(seed) => {
            let rngs = Rngs::builder()
                .stream("noise", i64::from(*seed))
                .build()
                .map_err(|e| e.to_string())?;
            let value = Value::from(rngs.as_object().clone());
            let m = w.import(&value);
            (value, m)
        }
    };
    let result = match &handle {
        Value::Object(o) => {
            let k = OBJECT_KEYS[key % OBJECT_KEYS.len()];
            w.set(n, Key::from(k), model);
            o.set(k, value)
        }
        Value::List(l) => {
            let i = key % (l.len() + 1);
            w.set(n, Key::from(i), model);
            if i == l.len() {
                l.push(value)
            } else {
                l.set(i, value)
            }
        }
        Value::Dict(d) => {
            let k = dict_key(key);
            w.set(n, k.clone(), model);
            d.insert(k, value)
        }
        _ => return Err(fail("a node handle that is not a node")),
    };
    result.map_err(|e| format!("set failed: {e}"))
}

/// `del`/`pop`/`remove` on a node; deleting what is not there is an error (objects) or
/// `None` (dicts) and changes nothing.
pub(crate) fn del(w: &mut World, node: usize, key: usize) -> Step {
    let nodes = editable_nodes(w);
    let n = nodes[node % nodes.len()];
    let handle = w.node_handle(n).cloned().ok_or("unbound node")?;
    let attrs = w.nodes[n].attrs.clone();
    match &handle {
        Value::Object(o) => {
            if attrs.is_empty() {
                return match o.del("missing") {
                    Err(Error::AttributeNotFound { .. }) => Ok(()),
                    other => Err(format!(
                        "del of a missing attribute gave {:?}",
                        other.map(|_| ())
                    )),
                };
            }
            let k = attrs[key % attrs.len()].0.clone();
            w.remove(n, &k);
            o.del(&key_text(&k)).map(|_| ()).map_err(|e| e.to_string())
        }
        Value::List(l) => {
            let popped = l.pop().map_err(|e| e.to_string())?;
            match (attrs.last(), popped) {
                (None, None) => Ok(()),
                (Some((k, _)), Some(_)) => {
                    let k = k.clone();
                    w.remove(n, &k);
                    Ok(())
                }
                _ => Err(fail("pop disagrees with the model about emptiness")),
            }
        }
        Value::Dict(d) => {
            let k = if attrs.is_empty() {
                Key::from("missing")
            } else {
                attrs[key % attrs.len()].0.clone()
            };
            let removed = d.remove(k.clone()).map_err(|e| e.to_string())?;
            if removed.is_some() != w.remove(n, &k).is_some() {
                return Err(fail("remove disagrees with the model"));
            }
            Ok(())
        }
        _ => Err(fail("a node handle that is not a node")),
    }
}

/// `split_by` with a filter list (exhaustive, non-exhaustive or with `Everything` not last),
/// then `merge`: a new root with new nodes in key order and the same Variables.
pub(crate) fn split_merge(w: &mut World, root: usize, filters: usize) -> Step {
    let i = root % w.roots.len();
    let r = w.roots[i];
    let obj = w.root(i);
    let leaves = w.flatten(r);
    let (sets, expect_ok): (Vec<Filter>, bool) = match filters {
        0 => (vec![Filter::Everything], true),
        1 => (vec![VariableType::PARAM.into(), Filter::Everything], true),
        2 => {
            let covered = leaves.iter().all(|(p, l)| {
                MFilter::Param.matches(w, p, l) || MFilter::BatchStat.matches(w, p, l)
            });
            (
                vec![VariableType::PARAM.into(), VariableType::BATCH_STAT.into()],
                covered,
            )
        }
        _ => (vec![Filter::Everything, VariableType::PARAM.into()], false),
    };
    match graph::split_by(&obj, &sets) {
        Err(e) if !expect_ok => {
            if matches!(
                e,
                Error::EverythingNotLast { .. } | Error::NonExhaustiveFilters { .. }
            ) {
                Ok(())
            } else {
                Err(format!("split_by failed with an unexpected error: {e}"))
            }
        }
        Err(e) => Err(format!("split_by failed: {e}")),
        Ok(_) if !expect_ok => Err(fail("split_by succeeded with bad filters")),
        Ok((def, states)) => {
            let total: usize = states.iter().map(State::len).sum();
            if total != leaves.len() {
                return Err(format!(
                    "split_by gave {total} leaves, the model has {}",
                    leaves.len()
                ));
            }
            let merged: Object = graph::merge(&def, states.iter()).map_err(|e| e.to_string())?;
            if graph::graphdef(&merged) != def {
                return Err(fail("the merged graph has another GraphDef"));
            }
            let n = w.copy_graph(r, false);
            bind_new_root(w, n, merged);
            Ok(())
        }
    }
}

/// `update(root, state_by(root, filter).map(+1))`: the selected Variables and arrays go up
/// by one in place.
pub(crate) fn update(w: &mut World, root: usize, filter: MFilter) -> Step {
    let i = root % w.roots.len();
    let r = w.roots[i];
    let obj = w.root(i);
    let state = graph::state_by(&obj, &filter.to_filter());
    let new = state
        .map(|_, t| t + 1.0)
        .map_err(|e| format!("State::map: {e}"))?;
    graph::update(&obj, &new).map_err(|e| format!("update: {e}"))?;
    for (path, leaf) in w.flatten(r) {
        if !filter.matches(w, &path, &leaf) {
            continue;
        }
        match leaf {
            FlatLeaf::Var(v) => {
                w.vars[v].value = (&w.vars[v].value + 1.0).map_err(|e| e.to_string())?;
            }
            FlatLeaf::Array(n, key) => {
                let Some((_, MVal::Array(t))) = w.nodes[n].attrs.iter().find(|(k, _)| *k == key)
                else {
                    return Err(fail("the model lost an array"));
                };
                let t = (t + 1.0).map_err(|e| e.to_string())?;
                w.set(n, key, MVal::Array(t));
            }
        }
    }
    Ok(())
}

/// `state_by(root, filter)` lists the model's leaves, in order, at their first paths.
pub(crate) fn check_state(w: &mut World, root: usize, filter: MFilter) -> Step {
    let i = root % w.roots.len();
    let r = w.roots[i];
    let state = graph::state_by(&w.root(i), &filter.to_filter());
    let expected: Vec<(Vec<Key>, FlatLeaf)> = w
        .flatten(r)
        .into_iter()
        .filter(|(p, l)| filter.matches(w, p, l))
        .collect();
    let got: Vec<_> = state.iter().collect();
    if got.len() != expected.len() {
        return Err(format!(
            "state_by({filter:?}) has {} leaves, the model {}: {state}",
            got.len(),
            expected.len()
        ));
    }
    for ((path, leaf), (mpath, mleaf)) in got.into_iter().zip(&expected) {
        if path.keys() != mpath.as_slice() {
            return Err(format!("state path {path}, the model has {mpath:?}"));
        }
        let same = match (leaf.as_variable(), mleaf) {
            (Some(v), FlatLeaf::Var(m)) => w.var_handle(*m).is_some_and(|h| h.ptr_eq(v)),
            (None, FlatLeaf::Array(n, k)) => w.nodes[*n].attrs.iter().any(|(key, val)| {
                key == k && matches!(val, MVal::Array(t) if t.identical(&leaf.value()))
            }),
            _ => false,
        };
        if !same {
            return Err(format!("state leaf at {path} differs from the model"));
        }
    }
    let _ = format!("{state}");
    Ok(())
}

/// `split_rngs`/`fork_rngs` (scoped) around a closure that may draw, fail or panic: afterwards
/// every stream has its key back and its count one higher.
pub(crate) fn split_rngs(
    w: &mut World,
    root: usize,
    splits: usize,
    fork: bool,
    draw: bool,
    ending: Ending,
) -> Step {
    let i = root % w.roots.len();
    let r = w.roots[i];
    let obj = w.root(i);
    let streams: Vec<Nid> = w
        .reachable(&[r])
        .into_iter()
        .filter(|&n| matches!(&w.nodes[n].kind, Kind::Object(t) if t == "RngStream"))
        .collect();
    let first = match streams.first() {
        Some(&s) => match w.node_handle(s) {
            Some(Value::Object(o)) => {
                Some(RngStream::from_object(o.clone()).map_err(|e| e.to_string())?)
            }
            _ => return Err(fail("unbound stream")),
        },
        None => None,
    };
    let body = || -> Result<()> {
        if draw && let Some(s) = &first {
            s.next_key()?;
        }
        finish(ending)
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if fork {
            fork_rngs_scoped(&obj, &Filter::Everything, body)
        } else {
            SplitRngs::new(splits).scoped(&obj, body)
        }
    }));
    let var_of = |s: Nid, name: &str| {
        w.nodes[s].attrs.iter().find_map(|(k, v)| match v {
            MVal::Var(x) if *k == Key::from(name) => Some(*x),
            _ => None,
        })
    };
    let keys: Vec<Option<Vid>> = streams.iter().map(|&s| var_of(s, "key")).collect();
    let counts: Vec<Vid> = streams
        .iter()
        .map(|&s| var_of(s, "count").ok_or("a stream without a count"))
        .collect::<std::result::Result<_, _>>()?;
    // Two streams sharing their Variables (a merged copy of an `Rngs` next to the original):
    // the second one finds the key already split into a key array, which `split` rejects
    // (as in Flax), and every stream is rolled back. `fork_rngs` draws twice from the shared
    // key instead, and restoring undoes both.
    let shared_key = (1..keys.len()).any(|i| keys[..i].contains(&keys[i]));
    if shared_key && !fork {
        return match outcome {
            Ok(Err(e)) if e.kind() == ErrorKind::Shape => Ok(()),
            Ok(r) => Err(format!("split_rngs of streams sharing a key gave {:?}", r)),
            Err(payload) => Err(format!("the library panicked: {}", panic_message(&payload))),
        };
    }
    check_ending(ending, outcome.map(|r| r.map(|()| None)))?;
    // Restored: every stream's key is back and its count went up by exactly one.
    let mut done = Vec::new();
    for count in counts {
        if done.contains(&count) {
            continue;
        }
        done.push(count);
        let old = w.vars[count]
            .value
            .to_vec::<u32>()
            .map_err(|e| e.to_string())?;
        let shape = w.vars[count].value.shape().to_vec();
        let new: Vec<u32> = old.iter().map(|c| c + 1).collect();
        w.vars[count].value = Tensor::from_vec(&shape, new).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Model of `Variable::set_metadata`: replaces in place or appends.
pub(crate) fn set_metadata(metadata: &mut Vec<(String, Static)>, key: &str, value: Static) {
    match metadata.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => metadata.push((key.to_owned(), value)),
    }
}

/// A Variable edited from outside: a new value (any shape), or metadata set or deleted.
pub(crate) fn var_edit_step(w: &mut World, var: usize, edit: &VarEdit) -> Step {
    let vars = shareable_vars(w, &w.roots.clone());
    if vars.is_empty() {
        return Ok(());
    }
    let v = vars[var % vars.len()];
    let h = w.var_handle(v).cloned().ok_or("unbound Variable")?;
    match edit {
        VarEdit::SetValue { shape, val } => {
            let t = ramp(SHAPES[*shape], *val);
            h.set_value(t.clone()).map_err(|e| e.to_string())?;
            w.vars[v].value = t;
        }
        VarEdit::SetMeta { key, val } => {
            let value = Static::from(i64::from(*val));
            h.set_metadata(METADATA_KEYS[*key], value.clone())
                .map_err(|e| e.to_string())?;
            set_metadata(&mut w.vars[v].metadata, METADATA_KEYS[*key], value);
        }
        VarEdit::DelMeta { key } => {
            let removed = h
                .del_metadata(METADATA_KEYS[*key])
                .map_err(|e| e.to_string())?;
            let metadata = &mut w.vars[v].metadata;
            let expected = metadata
                .iter()
                .position(|(k, _)| k == METADATA_KEYS[*key])
                .map(|i| metadata.remove(i).1);
            if removed != expected {
                return Err(format!(
                    "del_metadata gave {removed:?}, the model {expected:?}"
                ));
            }
        }
    }
    Ok(())
}

/// `update(to, state(from))`, with `nnx.update`'s rules: at each path of `from`'s State, a
/// Variable of `to` takes the leaf (value and metadata from a Variable leaf, the value from a
/// raw array), a raw array is replaced, and a missing last key is added where the node can
/// have it (an object: a string; a List: an append at its length; a Dict: anything), a
/// Variable leaf as a copy. A path through something that is not a node, or ending on a
/// node or a static, or a key the node cannot take, fails the whole update, which then
/// writes nothing.
pub(crate) fn update_from(w: &mut World, from: usize, to: usize) -> Step {
    enum Write {
        Var { src: Vid, dst: Vid },
        VarValue { dst: Vid, value: Tensor },
        Set { holder: Nid, key: Key, value: MVal },
    }
    let (from, to) = (from % w.roots.len(), to % w.roots.len());
    let mut writes = Vec::new();
    let mut planned_len: HashMap<Nid, usize> = HashMap::new();
    let mut valid = true;
    for (path, leaf) in w.flatten(w.roots[from]) {
        // The leaf as a new child: an array, or a copy of the Variable made now.
        let leaf_value = |w: &World| match &leaf {
            FlatLeaf::Var(src) => Leafish::Var(w.vars[*src].clone()),
            FlatLeaf::Array(n, k) => Leafish::Array(
                w.nodes[*n]
                    .attrs
                    .iter()
                    .find_map(|(key, v)| match v {
                        MVal::Array(t) if key == k => Some(t.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| Tensor::zeros([0])),
            ),
        };
        let Some((last, inner)) = path.split_last() else {
            valid = false;
            break;
        };
        let mut holder = w.roots[to];
        let mut through = true;
        for key in inner {
            match w.nodes[holder].attrs.iter().find(|(k, _)| k == key) {
                Some((_, MVal::Node(c))) => holder = *c,
                _ => through = false,
            }
            if !through {
                break;
            }
        }
        if !through {
            valid = false;
            break;
        }
        let existing = w.nodes[holder]
            .attrs
            .iter()
            .find(|(k, _)| k == last)
            .map(|(_, v)| v.clone());
        match (existing, leaf_value(w)) {
            (Some(MVal::Var(dst)), Leafish::Var(_)) => {
                let FlatLeaf::Var(src) = leaf else { continue };
                writes.push(Write::Var { src, dst });
            }
            (Some(MVal::Var(dst)), Leafish::Array(value)) => {
                writes.push(Write::VarValue { dst, value })
            }
            (Some(MVal::Array(_)), new) | (None, new) => {
                let is_new = !w.nodes[holder].attrs.iter().any(|(k, _)| k == last);
                if is_new {
                    let len = planned_len
                        .entry(holder)
                        .or_insert_with(|| w.nodes[holder].attrs.len());
                    let fits = match (&w.nodes[holder].kind, last) {
                        (Kind::Object(_), Key::Str(_)) | (Kind::Dict, _) => true,
                        (Kind::List, Key::Int(i)) => usize::try_from(*i) == Ok(*len),
                        _ => false,
                    };
                    if !fits {
                        valid = false;
                        break;
                    }
                    if w.nodes[holder].kind == Kind::List {
                        *len += 1;
                    }
                }
                let value = match new {
                    Leafish::Var(var) => MVal::Var(w.add_var(var, None)),
                    Leafish::Array(t) => MVal::Array(t),
                };
                writes.push(Write::Set {
                    holder,
                    key: last.clone(),
                    value,
                });
            }
            (Some(MVal::Node(_) | MVal::Static(_)), _) => {
                valid = false;
                break;
            }
        }
    }
    let state = graph::state(&w.root(from));
    let result = graph::update(&w.root(to), &state);
    match (valid, result) {
        (false, Err(_)) => return Ok(()),
        (false, Ok(())) => return Err(fail("update succeeded where it must fail")),
        (true, Err(e)) => return Err(format!("update: {e}")),
        (true, Ok(())) => {}
    }
    for write in writes {
        match write {
            Write::Var { src, dst } => {
                let source = w.vars[src].clone();
                w.vars[dst].value = source.value;
                w.vars[dst].metadata = source.metadata;
            }
            Write::VarValue { dst, value } => w.vars[dst].value = value,
            Write::Set { holder, key, value } => w.set(holder, key, value),
        }
    }
    Ok(())
}

/// A State leaf as it would be written: a Variable (to copy) or an array.
enum Leafish {
    Var(MVar),
    Array(Tensor),
}
