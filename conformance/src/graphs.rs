//! proptest strategies for random object graphs: nesting, shared Variables and objects,
//! cycles, static attributes, containers and several Variable types.

use proptest::collection::vec;
use proptest::prelude::*;

use nnx_core::{
    Dict, List, Object, Param, Result, Static, Tensor, Value, Variable, VariableType, variable_type,
};

variable_type!(
    /// A user-defined Variable type, like the guide's `Count`.
    pub Count: Variable
);

/// The Variable types random graphs draw from (including a user-defined one).
pub fn variable_types() -> [VariableType; 5] {
    [
        VariableType::PARAM,
        VariableType::BATCH_STAT,
        VariableType::CACHE,
        VariableType::RNG_COUNT,
        Count::TYPE,
    ]
}

/// A recipe for a graph: nodes and Variables referenced by index, so references can be
/// shared and can form cycles. Node 0 is the root and always an object.
#[derive(Debug, Clone)]
pub struct GraphBlueprint {
    /// The graph nodes.
    pub nodes: Vec<NodeSpec>,
    /// The Variables.
    pub variables: Vec<VariableSpec>,
}

/// A node of a [`GraphBlueprint`].
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// What kind of node.
    pub kind: NodeSpecKind,
    /// Children by name (list nodes use only the order).
    pub children: Vec<(String, ChildSpec)>,
}

/// The kind of a [`NodeSpec`].
#[derive(Debug, Clone)]
pub enum NodeSpecKind {
    /// An object with this type name.
    Object(String),
    /// A list.
    List,
    /// A dict.
    Dict,
}

/// A child value in a [`GraphBlueprint`].
#[derive(Debug, Clone)]
pub enum ChildSpec {
    /// A reference to node `i` (may create sharing or a cycle).
    Node(usize),
    /// A reference to Variable `i` (may be shared).
    Variable(usize),
    /// A static value.
    Static(Static),
    /// A raw float32 array of this shape.
    Array(Vec<usize>),
    /// A tuple of children.
    Tuple(Vec<ChildSpec>),
}

/// A Variable of a [`GraphBlueprint`].
#[derive(Debug, Clone)]
pub struct VariableSpec {
    /// Index into [`variable_types`].
    pub ty: usize,
    /// The value's shape.
    pub shape: Vec<usize>,
    /// Optional `tag` metadata.
    pub tag: Option<String>,
}

impl GraphBlueprint {
    /// Builds the graph; returns its root object.
    pub fn build(&self) -> Object {
        let variables: Vec<Variable> = self
            .variables
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let ty = variable_types()[spec.ty % 5];
                let n: usize = spec.shape.iter().product();
                let value = if ty == VariableType::RNG_COUNT {
                    Tensor::from_vec(&spec.shape, (0..n as u32).collect()).ok()
                } else {
                    Tensor::from_vec(&spec.shape, (0..n).map(|k| (i * 100 + k) as f32).collect())
                        .ok()
                };
                let v = Variable::new(ty, value.unwrap_or_else(|| Tensor::zeros([])));
                match &spec.tag {
                    Some(tag) => v.with_metadata("tag", tag.as_str()),
                    None => v,
                }
            })
            .collect();
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, spec)| match (&spec.kind, i) {
                (_, 0) | (NodeSpecKind::Object(_), _) => {
                    let name = match &spec.kind {
                        NodeSpecKind::Object(n) => n.clone(),
                        _ => "Root".to_owned(),
                    };
                    Value::Object(Object::new(&name))
                }
                (NodeSpecKind::List, _) => Value::List(List::new([])),
                (NodeSpecKind::Dict, _) => Value::Dict(Dict::new()),
            })
            .collect();
        for (spec, node) in self.nodes.iter().zip(&nodes) {
            for (name, child) in &spec.children {
                let value = self.child(child, &nodes, &variables);
                // Building happens at the owning trace level, so these cannot fail.
                let _ = match node {
                    Value::Object(o) => o.set(name, value),
                    Value::List(l) => l.push(value),
                    Value::Dict(d) => d.insert(name.as_str(), value),
                    _ => Ok(()),
                };
            }
        }
        match &nodes[0] {
            Value::Object(o) => o.clone(),
            _ => Object::new("Root"),
        }
    }

    fn child(&self, spec: &ChildSpec, nodes: &[Value], variables: &[Variable]) -> Value {
        match spec {
            ChildSpec::Node(i) => nodes[i % nodes.len()].clone(),
            ChildSpec::Variable(i) if !variables.is_empty() => {
                Value::Variable(variables[i % variables.len()].clone())
            }
            ChildSpec::Variable(_) => Value::Static(Static::None),
            ChildSpec::Static(s) => Value::Static(s.clone()),
            ChildSpec::Array(shape) => Value::Array(Tensor::ones(shape)),
            ChildSpec::Tuple(items) => Value::Tuple(
                items
                    .iter()
                    .map(|c| self.child(c, nodes, variables))
                    .collect(),
            ),
        }
    }
}

fn static_value() -> impl Strategy<Value = Static> {
    prop_oneof![
        Just(Static::None),
        any::<bool>().prop_map(Static::Bool),
        (-5i64..5).prop_map(Static::Int),
        (-2.0f64..2.0).prop_map(Static::Float),
        "[a-c]{0,2}".prop_map(Static::Str),
        vec((-3i64..3).prop_map(Static::Int), 0..3).prop_map(Static::List),
    ]
}

fn child_spec(n_nodes: usize, n_vars: usize) -> impl Strategy<Value = ChildSpec> {
    let leaf = prop_oneof![
        3 => (0..n_nodes).prop_map(ChildSpec::Node),
        4 => (0..n_vars.max(1)).prop_map(ChildSpec::Variable),
        2 => static_value().prop_map(ChildSpec::Static),
        1 => vec(1usize..3, 0..2).prop_map(ChildSpec::Array),
    ];
    leaf.prop_recursive(1, 4, 2, |inner| vec(inner, 1..3).prop_map(ChildSpec::Tuple))
}

fn node_spec(n_nodes: usize, n_vars: usize) -> impl Strategy<Value = NodeSpec> {
    let kind = prop_oneof![
        3 => "[A-Z][a-z]{0,3}".prop_map(NodeSpecKind::Object),
        1 => Just(NodeSpecKind::List),
        1 => Just(NodeSpecKind::Dict),
    ];
    let name = prop::sample::select(vec!["a", "b", "c", "kernel", "bias", "B", "_x", "w"]);
    (
        kind,
        vec(
            (name.prop_map(str::to_owned), child_spec(n_nodes, n_vars)),
            0..5,
        ),
    )
        .prop_map(|(kind, children)| NodeSpec { kind, children })
}

fn variable_spec() -> impl Strategy<Value = VariableSpec> {
    (
        0usize..5,
        vec(1usize..4, 0..3),
        prop::option::of(prop::sample::select(vec!["params", "dropout"]).prop_map(str::to_owned)),
    )
        .prop_map(|(ty, shape, tag)| VariableSpec { ty, shape, tag })
}

/// Random graph blueprints with 1–5 nodes and 0–6 Variables.
pub fn graph_blueprint() -> impl Strategy<Value = GraphBlueprint> {
    (1usize..6, 0usize..7).prop_flat_map(|(n_nodes, n_vars)| {
        (
            vec(node_spec(n_nodes, n_vars), n_nodes),
            vec(variable_spec(), n_vars),
        )
            .prop_map(|(nodes, variables)| GraphBlueprint { nodes, variables })
    })
}

/// A chain of `depth` objects `Node(w=Param, next=Node(...))` (the last has no `next`), where
/// level `i`'s Param holds `width` copies of `i`: the deep graph of the deep-graph tests.
/// Built bottom-up, iteratively.
///
/// # Errors
/// Only the attribute setters' (none for objects created here).
pub fn chain(depth: usize, width: usize) -> Result<Option<Object>> {
    let mut next: Option<Object> = None;
    for level in (0..depth).rev() {
        let node =
            Object::new("Node").with("w", Param::new(Tensor::full([width], level as f32)))?;
        if let Some(child) = next.take() {
            node.set("next", child)?;
        }
        next = Some(node);
    }
    Ok(next)
}
