//! Structural comparison of two graphs up to identity: same shape, same sharing.

use std::collections::HashMap;

use nnx_core::graph::{NodeId, Value};
use nnx_core::{Key, List, Object, Variable};

/// How Variables of the two graphs must relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariableIdentity {
    /// Corresponding Variables must be the very same Variable (e.g. after `merge`).
    Same,
    /// Corresponding Variables must be distinct objects (e.g. after `clone`).
    Distinct,
    /// Identity is not checked, only structure, values and sharing.
    Any,
}

/// Checks that `a` and `b` are isomorphic graphs: a bijection between their nodes and
/// Variables maps kinds, type names, keys, statics, arrays, Variable types, metadata and
/// values onto each other, and shared references and cycles onto shared references and
/// cycles. Returns a description of the first difference.
///
/// # Errors
/// A human-readable description of where the graphs differ.
pub fn check_isomorphic(a: &Value, b: &Value, variables: VariableIdentity) -> Result<(), String> {
    Matcher {
        forward: HashMap::new(),
        backward: HashMap::new(),
        variables,
    }
    .compare(a, b, "<root>")
}

struct Matcher {
    forward: HashMap<NodeId, NodeId>,
    backward: HashMap<NodeId, NodeId>,
    variables: VariableIdentity,
}

impl Matcher {
    /// Records `a ↔ b`; returns `Ok(true)` if the pair was already matched (stop descending).
    fn pair(&mut self, a: NodeId, b: NodeId, at: &str) -> Result<bool, String> {
        match (self.forward.get(&a), self.backward.get(&b)) {
            (Some(&fb), Some(&ba)) if fb == b && ba == a => Ok(true),
            (None, None) => {
                self.forward.insert(a, b);
                self.backward.insert(b, a);
                Ok(false)
            }
            _ => Err(format!(
                "{at}: sharing differs (a node is shared in one graph but not the other)"
            )),
        }
    }

    fn compare(&mut self, a: &Value, b: &Value, at: &str) -> Result<(), String> {
        match (a, b) {
            (Value::Static(x), Value::Static(y)) if x == y => Ok(()),
            (Value::Array(x), Value::Array(y)) if x.identical(y) => Ok(()),
            (Value::Variable(x), Value::Variable(y)) => self.variable(x, y, at),
            (Value::Object(x), Value::Object(y)) => {
                if x.type_name() != y.type_name() {
                    return Err(format!("{at}: type {} vs {}", x.type_name(), y.type_name()));
                }
                if self.pair(x.id(), y.id(), at)? {
                    return Ok(());
                }
                let ca = object_children(x);
                let cb = object_children(y);
                self.children(&ca, &cb, at)
            }
            (Value::List(x), Value::List(y)) => {
                if self.pair(x.id(), y.id(), at)? {
                    return Ok(());
                }
                self.children(&list_children(x), &list_children(y), at)
            }
            (Value::Dict(x), Value::Dict(y)) => {
                if self.pair(x.id(), y.id(), at)? {
                    return Ok(());
                }
                self.children(&sorted(x.entries()), &sorted(y.entries()), at)
            }
            (Value::Tuple(x), Value::Tuple(y)) if x.len() == y.len() => {
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    self.compare(p, q, &format!("{at}/{i}"))?;
                }
                Ok(())
            }
            _ => Err(format!("{at}: {} vs {}", a.kind_name(), b.kind_name())),
        }
    }

    fn children(&mut self, a: &[(Key, Value)], b: &[(Key, Value)], at: &str) -> Result<(), String> {
        let ka: Vec<&Key> = a.iter().map(|(k, _)| k).collect();
        let kb: Vec<&Key> = b.iter().map(|(k, _)| k).collect();
        if ka != kb {
            return Err(format!("{at}: keys {ka:?} vs {kb:?}"));
        }
        for ((k, x), (_, y)) in a.iter().zip(b) {
            self.compare(x, y, &format!("{at}/{k}"))?;
        }
        Ok(())
    }

    fn variable(&mut self, x: &Variable, y: &Variable, at: &str) -> Result<(), String> {
        match self.variables {
            VariableIdentity::Same if !x.ptr_eq(y) => {
                return Err(format!("{at}: expected the same Variable object"));
            }
            VariableIdentity::Distinct if x.ptr_eq(y) => {
                return Err(format!("{at}: expected distinct Variable objects"));
            }
            _ => {}
        }
        if self.pair(x.id(), y.id(), at)? {
            return Ok(());
        }
        if x.variable_type() != y.variable_type() {
            return Err(format!(
                "{at}: Variable type {} vs {}",
                x.type_name(),
                y.type_name()
            ));
        }
        if x.metadata() != y.metadata() {
            return Err(format!(
                "{at}: metadata {:?} vs {:?}",
                x.metadata(),
                y.metadata()
            ));
        }
        if !x.value().identical(&y.value()) {
            return Err(format!("{at}: values differ"));
        }
        Ok(())
    }
}

fn sorted(mut children: Vec<(Key, Value)>) -> Vec<(Key, Value)> {
    children.sort_by(|p, q| p.0.cmp(&q.0));
    children
}

fn object_children(o: &Object) -> Vec<(Key, Value)> {
    sorted(
        o.attributes()
            .into_iter()
            .map(|(k, v)| (Key::from(k), v))
            .collect(),
    )
}

fn list_children(l: &List) -> Vec<(Key, Value)> {
    l.items()
        .into_iter()
        .enumerate()
        .map(|(i, v)| (Key::from(i), v))
        .collect()
}
