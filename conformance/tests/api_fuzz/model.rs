//! The model of the API-sequence fuzzer: a plain description of the graph the caller's
//! objects should form, and the comparison of the library's objects with it.
//!
//! Nodes and Variables are numbered by the model (`Nid`, `Vid`). Each model id is *bound* to
//! the library handle it stands for; a model node made by an operation that creates objects
//! (merge, clone, a transform) starts unbound and is bound the first time a comparison meets
//! it, after which identity is checked like everywhere else: one library object per model
//! node and the other way round, so sharing and cycles are compared exactly.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use nnx_core::graph::NodeId;
use nnx_core::{Filter, Key, Object, Static, Tensor, Value, Variable, VariableType};

/// A model node id.
pub type Nid = usize;
/// A model Variable id.
pub type Vid = usize;

/// What kind of graph node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An `Object` with this type name.
    Object(String),
    /// A `List`.
    List,
    /// A `Dict`.
    Dict,
}

/// What an attribute holds.
#[derive(Clone, Debug)]
pub enum MVal {
    Static(Static),
    Array(Tensor),
    Var(Vid),
    Node(Nid),
}

/// A graph node: its kind and its attributes in insertion order.
#[derive(Clone, Debug)]
pub struct MNode {
    pub kind: Kind,
    pub attrs: Vec<(Key, MVal)>,
}

/// A Variable: type, value (compared bit for bit) and metadata in order.
#[derive(Clone, Debug)]
pub struct MVar {
    pub ty: VariableType,
    pub value: Tensor,
    pub metadata: Vec<(String, Static)>,
}

/// A leaf of a flattened graph.
#[derive(Clone, Debug)]
pub enum FlatLeaf {
    Var(Vid),
    /// A raw array attribute: the node holding it and the key.
    Array(Nid, Key),
}

/// The filters the fuzzer uses, with their meaning spelled out for the model.
#[derive(Clone, Copy, Debug)]
pub enum MFilter {
    Everything,
    Param,
    BatchStat,
    RngState,
    Array,
    PathW,
    ParamOrArray,
    NotParam,
}

impl MFilter {
    pub fn to_filter(self) -> Filter {
        match self {
            MFilter::Everything => Filter::Everything,
            MFilter::Param => VariableType::PARAM.into(),
            MFilter::BatchStat => VariableType::BATCH_STAT.into(),
            MFilter::RngState => VariableType::RNG_STATE.into(),
            MFilter::Array => Filter::Array,
            MFilter::PathW => Filter::path_contains("w"),
            MFilter::ParamOrArray => Filter::any([VariableType::PARAM.into(), Filter::Array]),
            MFilter::NotParam => Filter::not(VariableType::PARAM.into()),
        }
    }

    pub fn matches(self, world: &World, path: &[Key], leaf: &FlatLeaf) -> bool {
        let ty = match leaf {
            FlatLeaf::Var(v) => Some(world.vars[*v].ty),
            FlatLeaf::Array(..) => None,
        };
        let is = |t: VariableType| ty.is_some_and(|ty| ty.is_subtype_of(t));
        match self {
            MFilter::Everything => true,
            MFilter::Param => is(VariableType::PARAM),
            MFilter::BatchStat => is(VariableType::BATCH_STAT),
            MFilter::RngState => is(VariableType::RNG_STATE),
            MFilter::Array => ty.is_none(),
            MFilter::PathW => path.contains(&Key::from("w")),
            MFilter::ParamOrArray => is(VariableType::PARAM) || ty.is_none(),
            MFilter::NotParam => !is(VariableType::PARAM),
        }
    }
}

/// The graph order of keys: integers before strings, integers by value, strings by code point.
pub fn key_order(a: &Key, b: &Key) -> Ordering {
    match (a, b) {
        (Key::Int(x), Key::Int(y)) => x.cmp(y),
        (Key::Int(_), Key::Str(_)) => Ordering::Less,
        (Key::Str(_), Key::Int(_)) => Ordering::Greater,
        (Key::Str(x), Key::Str(y)) => x.chars().cmp(y.chars()),
    }
}

/// The identity of a library graph node.
pub fn node_id(value: &Value) -> Option<NodeId> {
    match value {
        Value::Object(o) => Some(o.id()),
        Value::List(l) => Some(l.id()),
        Value::Dict(d) => Some(d.id()),
        _ => None,
    }
}

/// The model together with the library handles its ids are bound to.
#[derive(Clone, Default)]
pub struct World {
    pub nodes: Vec<MNode>,
    pub vars: Vec<MVar>,
    /// The caller's top-level objects (always `Object`s), bound.
    pub roots: Vec<Nid>,
    node_handles: Vec<Option<Value>>,
    var_handles: Vec<Option<Variable>>,
    node_of: HashMap<NodeId, Nid>,
    var_of: HashMap<NodeId, Vid>,
}

impl World {
    /// A new model node, bound to `handle` if given.
    pub fn add_node(&mut self, kind: Kind, handle: Option<Value>) -> Nid {
        let n = self.nodes.len();
        self.nodes.push(MNode {
            kind,
            attrs: Vec::new(),
        });
        self.node_handles.push(None);
        if let Some(h) = handle {
            self.bind_node(n, h);
        }
        n
    }

    /// A new model Variable, bound to `handle` if given.
    pub fn add_var(&mut self, var: MVar, handle: Option<Variable>) -> Vid {
        let v = self.vars.len();
        self.vars.push(var);
        self.var_handles.push(None);
        if let Some(h) = handle {
            self.var_of.insert(h.id(), v);
            self.var_handles[v] = Some(h);
        }
        v
    }

    /// Binds model node `n` to a library node.
    pub fn bind_node(&mut self, n: Nid, handle: Value) {
        if let Some(id) = node_id(&handle) {
            self.node_of.insert(id, n);
        }
        self.node_handles[n] = Some(handle);
    }

    pub fn node_handle(&self, n: Nid) -> Option<&Value> {
        self.node_handles[n].as_ref()
    }

    pub fn var_handle(&self, v: Vid) -> Option<&Variable> {
        self.var_handles[v].as_ref()
    }

    /// The caller's root object `i`.
    pub fn root(&self, i: usize) -> Object {
        match self.node_handles[self.roots[i]].as_ref() {
            Some(Value::Object(o)) => o.clone(),
            _ => unreachable!("roots are bound objects"),
        }
    }

    /// `set`: replaces in place or appends.
    pub fn set(&mut self, n: Nid, key: Key, value: MVal) {
        let attrs = &mut self.nodes[n].attrs;
        match attrs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => attrs.push((key, value)),
        }
    }

    /// `del`: removes keeping the order of the rest.
    pub fn remove(&mut self, n: Nid, key: &Key) -> Option<MVal> {
        let attrs = &mut self.nodes[n].attrs;
        let i = attrs.iter().position(|(k, _)| k == key)?;
        Some(attrs.remove(i).1)
    }

    pub fn sorted_attrs(&self, n: Nid) -> Vec<(Key, MVal)> {
        let mut attrs = self.nodes[n].attrs.clone();
        attrs.sort_by(|a, b| key_order(&a.0, &b.0));
        attrs
    }

    /// Every node reachable from `from`, each once, in traversal order (pre-order, children
    /// in key order).
    pub fn reachable(&self, from: &[Nid]) -> Vec<Nid> {
        let mut seen = HashSet::new();
        let mut order = Vec::new();
        for &r in from {
            let mut stack = vec![r];
            while let Some(n) = stack.pop() {
                if !seen.insert(n) {
                    continue;
                }
                order.push(n);
                for (_, v) in self.sorted_attrs(n).into_iter().rev() {
                    if let MVal::Node(c) = v {
                        stack.push(c);
                    }
                }
            }
        }
        order
    }

    /// Every Variable reachable from `from`, each once, in traversal order.
    pub fn reachable_vars(&self, from: &[Nid]) -> Vec<Vid> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for r in from {
            for (_, leaf) in self.flatten(*r) {
                if let FlatLeaf::Var(v) = leaf
                    && seen.insert(v)
                {
                    out.push(v);
                }
            }
        }
        out
    }

    /// `nnx.state(root)`: every leaf with its first path, in path order.
    pub fn flatten(&self, root: Nid) -> Vec<(Vec<Key>, FlatLeaf)> {
        let mut out = Vec::new();
        let mut seen_nodes = HashSet::new();
        let mut seen_vars = HashSet::new();
        let mut path = Vec::new();
        self.flatten_into(root, &mut path, &mut seen_nodes, &mut seen_vars, &mut out);
        out
    }

    /// The leaves of several arguments flattened together, as a transform lowers them: a
    /// node or Variable shared between arguments is a leaf of the first one only. Each leaf
    /// comes with its argument's position.
    pub fn flatten_args(&self, args: &[Nid]) -> Vec<(usize, Vec<Key>, FlatLeaf)> {
        let mut seen_nodes = HashSet::new();
        let mut seen_vars = HashSet::new();
        let mut out = Vec::new();
        for (i, &a) in args.iter().enumerate() {
            let mut leaves = Vec::new();
            self.flatten_into(
                a,
                &mut Vec::new(),
                &mut seen_nodes,
                &mut seen_vars,
                &mut leaves,
            );
            out.extend(leaves.into_iter().map(|(p, l)| (i, p, l)));
        }
        out
    }

    fn flatten_into(
        &self,
        n: Nid,
        path: &mut Vec<Key>,
        seen_nodes: &mut HashSet<Nid>,
        seen_vars: &mut HashSet<Vid>,
        out: &mut Vec<(Vec<Key>, FlatLeaf)>,
    ) {
        if !seen_nodes.insert(n) {
            return;
        }
        for (key, value) in self.sorted_attrs(n) {
            path.push(key.clone());
            match value {
                MVal::Node(c) => self.flatten_into(c, path, seen_nodes, seen_vars, out),
                MVal::Var(v) => {
                    if seen_vars.insert(v) {
                        out.push((path.clone(), FlatLeaf::Var(v)));
                    }
                }
                MVal::Array(_) => out.push((path.clone(), FlatLeaf::Array(n, key))),
                MVal::Static(_) => {}
            }
            path.pop();
        }
    }

    /// A copy of everything reachable from `root` with new (unbound) nodes whose attributes
    /// are in key order, as `merge` and `clone` rebuild them. Variables are the same
    /// (`merge`) or copies (`clone`). Returns the new root.
    pub fn copy_graph(&mut self, root: Nid, copy_vars: bool) -> Nid {
        let order = self.reachable(&[root]);
        let mut node_map = HashMap::new();
        for &n in &order {
            let kind = self.nodes[n].kind.clone();
            node_map.insert(n, self.add_node(kind, None));
        }
        let mut var_map: HashMap<Vid, Vid> = HashMap::new();
        for &n in &order {
            let attrs = self.sorted_attrs(n);
            let mut new_attrs = Vec::with_capacity(attrs.len());
            for (k, v) in attrs {
                let v = match v {
                    MVal::Node(c) => MVal::Node(node_map[&c]),
                    MVal::Var(x) if copy_vars => {
                        let copy = match var_map.get(&x) {
                            Some(&y) => y,
                            None => {
                                let y = self.add_var(self.vars[x].clone(), None);
                                var_map.insert(x, y);
                                y
                            }
                        };
                        MVal::Var(copy)
                    }
                    other => other,
                };
                new_attrs.push((k, v));
            }
            self.nodes[node_map[&n]].attrs = new_attrs;
        }
        node_map[&root]
    }

    /// Mirrors a freshly created library subgraph (e.g. an `Rngs`) into the model, bound.
    pub fn import(&mut self, value: &Value) -> MVal {
        match value {
            Value::Static(s) => MVal::Static(s.clone()),
            Value::Array(t) => MVal::Array(t.clone()),
            Value::Variable(v) => match self.var_of.get(&v.id()) {
                Some(&x) => MVal::Var(x),
                None => {
                    let var = MVar {
                        ty: v.variable_type(),
                        value: v.value(),
                        metadata: v.metadata(),
                    };
                    MVal::Var(self.add_var(var, Some(v.clone())))
                }
            },
            Value::Object(_) | Value::List(_) | Value::Dict(_) => {
                let id = node_id(value).unwrap_or_else(|| unreachable!());
                if let Some(&n) = self.node_of.get(&id) {
                    return MVal::Node(n);
                }
                let n = self.add_node(kind_of(value), Some(value.clone()));
                for (k, child) in lib_children(value) {
                    let m = self.import(&child);
                    self.nodes[n].attrs.push((k, m));
                }
                MVal::Node(n)
            }
            Value::Tuple(_) | Value::Map(_) => unreachable!("the fuzzer stores no tuples or maps"),
        }
    }

    /// Compares the caller's objects with the model: everything reachable from the roots,
    /// kinds, attribute keys in order, statics, arrays and Variable values bit for bit,
    /// Variable types and metadata, and identity (sharing, cycles) both ways. Binds model
    /// ids met for the first time.
    pub fn check(&mut self) -> Result<(), String> {
        let mut visited = HashSet::new();
        for i in 0..self.roots.len() {
            let r = self.roots[i];
            let handle = self.node_handles[r].clone().ok_or("an unbound root")?;
            self.check_node(r, &handle, &format!("roots[{i}]"), &mut visited)?;
        }
        Ok(())
    }

    fn check_value(
        &mut self,
        m: &MVal,
        l: &Value,
        at: &str,
        visited: &mut HashSet<Nid>,
    ) -> Result<(), String> {
        match (m, l) {
            (MVal::Static(a), Value::Static(b)) if a == b => Ok(()),
            (MVal::Array(a), Value::Array(b)) if a.identical(b) => Ok(()),
            (MVal::Array(a), Value::Array(b)) => Err(format!(
                "{at}: expected the array {}, found {}",
                a.repr(),
                b.repr()
            )),
            (MVal::Var(v), Value::Variable(x)) => self.check_var(*v, x, at),
            (MVal::Node(n), Value::Object(_) | Value::List(_) | Value::Dict(_)) => {
                self.check_node(*n, l, at, visited)
            }
            _ => Err(format!("{at}: expected {m:?}, found {}", l.kind_name())),
        }
    }

    fn check_var(&mut self, v: Vid, x: &Variable, at: &str) -> Result<(), String> {
        match &self.var_handles[v] {
            Some(h) if h.ptr_eq(x) => {}
            Some(_) => return Err(format!("{at}: a different Variable than expected")),
            None => {
                if self.var_of.contains_key(&x.id()) {
                    return Err(format!(
                        "{at}: expected a new Variable, found one that is already elsewhere"
                    ));
                }
                self.var_of.insert(x.id(), v);
                self.var_handles[v] = Some(x.clone());
            }
        }
        let m = &self.vars[v];
        if x.variable_type() != m.ty {
            return Err(format!(
                "{at}: expected a {} Variable, found {}",
                m.ty,
                x.type_name()
            ));
        }
        if !x.value().identical(&m.value) {
            return Err(format!(
                "{at}: expected the value {}, found {}",
                m.value.repr(),
                x.value().repr()
            ));
        }
        if x.metadata() != m.metadata {
            return Err(format!(
                "{at}: expected metadata {:?}, found {:?}",
                m.metadata,
                x.metadata()
            ));
        }
        Ok(())
    }

    fn check_node(
        &mut self,
        n: Nid,
        l: &Value,
        at: &str,
        visited: &mut HashSet<Nid>,
    ) -> Result<(), String> {
        let id = node_id(l).ok_or_else(|| format!("{at}: not a graph node"))?;
        match &self.node_handles[n] {
            Some(h) if node_id(h) == Some(id) => {}
            Some(_) => return Err(format!("{at}: a different object than expected")),
            None => {
                if self.node_of.contains_key(&id) {
                    return Err(format!(
                        "{at}: expected a new object, found one that is already elsewhere"
                    ));
                }
                self.bind_node(n, l.clone());
            }
        }
        if !visited.insert(n) {
            return Ok(());
        }
        let kind = kind_of(l);
        if kind != self.nodes[n].kind {
            return Err(format!(
                "{at}: expected {:?}, found {kind:?}",
                self.nodes[n].kind
            ));
        }
        let children = lib_children(l);
        let expected = self.nodes[n].attrs.clone();
        let keys: Vec<&Key> = children.iter().map(|(k, _)| k).collect();
        let expected_keys: Vec<&Key> = expected.iter().map(|(k, _)| k).collect();
        if keys != expected_keys {
            return Err(format!(
                "{at}: expected the attributes {expected_keys:?} (in this order), found {keys:?}"
            ));
        }
        for ((k, m), (_, v)) in expected.iter().zip(&children) {
            self.check_value(m, v, &format!("{at}.{k}"), visited)?;
        }
        Ok(())
    }
}

pub fn kind_of(value: &Value) -> Kind {
    match value {
        Value::Object(o) => Kind::Object(o.type_name().to_owned()),
        Value::List(_) => Kind::List,
        _ => Kind::Dict,
    }
}

/// A library node's children in its order (objects: attribute order; lists: index order;
/// dicts: insertion order).
pub fn lib_children(value: &Value) -> Vec<(Key, Value)> {
    match value {
        Value::Object(o) => o
            .attributes()
            .into_iter()
            .map(|(k, v)| (Key::from(k), v))
            .collect(),
        Value::List(l) => l
            .items()
            .into_iter()
            .enumerate()
            .map(|(i, v)| (Key::from(i), v))
            .collect(),
        Value::Dict(d) => d.entries(),
        _ => Vec::new(),
    }
}
