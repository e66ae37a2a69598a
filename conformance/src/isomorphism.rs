//! Structural comparison of two graphs up to identity: same shape, same sharing.

use std::collections::HashMap;

use nnx_core::graph::{NodeId, Value};
use nnx_core::{Key, List, Object, Path, Variable};

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
    let mut matcher = Matcher {
        forward: HashMap::new(),
        backward: HashMap::new(),
        variables,
    };
    // Pairs still to compare, the next one last: an explicit stack, so that deep graphs do
    // not recurse; positions are persistent paths, rendered only in the error.
    let mut stack = vec![(a.clone(), b.clone(), Path::root())];
    while let Some((x, y, at)) = stack.pop() {
        matcher.compare(&x, &y, &at, &mut stack)?;
    }
    Ok(())
}

/// `<root>/'sub'/0`: where a difference is.
fn render(at: &Path) -> String {
    let mut out = "<root>".to_owned();
    for key in at.keys() {
        out.push_str(&format!("/{key}"));
    }
    out
}

type Pending = Vec<(Value, Value, Path)>;

struct Matcher {
    forward: HashMap<NodeId, NodeId>,
    backward: HashMap<NodeId, NodeId>,
    variables: VariableIdentity,
}

impl Matcher {
    /// Records `a ↔ b`; returns `Ok(true)` if the pair was already matched (stop descending).
    fn pair(&mut self, a: NodeId, b: NodeId, at: &Path) -> Result<bool, String> {
        match (self.forward.get(&a), self.backward.get(&b)) {
            (Some(&fb), Some(&ba)) if fb == b && ba == a => Ok(true),
            (None, None) => {
                self.forward.insert(a, b);
                self.backward.insert(b, a);
                Ok(false)
            }
            _ => Err(format!(
                "{}: sharing differs (a node is shared in one graph but not the other)",
                render(at)
            )),
        }
    }

    /// Compares one pair; the pairs of their children go onto `pending`.
    fn compare(
        &mut self,
        a: &Value,
        b: &Value,
        at: &Path,
        pending: &mut Pending,
    ) -> Result<(), String> {
        match (a, b) {
            (Value::Static(x), Value::Static(y)) if x == y => Ok(()),
            (Value::Array(x), Value::Array(y)) if x.identical(y) => Ok(()),
            (Value::Variable(x), Value::Variable(y)) => self.variable(x, y, at),
            (Value::Object(x), Value::Object(y)) => {
                if x.type_name() != y.type_name() {
                    return Err(format!(
                        "{}: type {} vs {}",
                        render(at),
                        x.type_name(),
                        y.type_name()
                    ));
                }
                if self.pair(x.id(), y.id(), at)? {
                    return Ok(());
                }
                let ca = object_children(x);
                let cb = object_children(y);
                children(ca, cb, at, pending)
            }
            (Value::List(x), Value::List(y)) => {
                if self.pair(x.id(), y.id(), at)? {
                    return Ok(());
                }
                children(list_children(x), list_children(y), at, pending)
            }
            (Value::Dict(x), Value::Dict(y)) => {
                if self.pair(x.id(), y.id(), at)? {
                    return Ok(());
                }
                children(sorted(x.entries()), sorted(y.entries()), at, pending)
            }
            (Value::Tuple(x), Value::Tuple(y)) if x.len() == y.len() => {
                for (i, (p, q)) in x.iter().zip(y).enumerate().rev() {
                    pending.push((p.clone(), q.clone(), at.child(i)));
                }
                Ok(())
            }
            _ => Err(format!(
                "{}: {} vs {}",
                render(at),
                a.kind_name(),
                b.kind_name()
            )),
        }
    }

    fn variable(&mut self, x: &Variable, y: &Variable, at: &Path) -> Result<(), String> {
        let at_path = at;
        let at = || render(at_path);
        match self.variables {
            VariableIdentity::Same if !x.ptr_eq(y) => {
                return Err(format!("{}: expected the same Variable object", at()));
            }
            VariableIdentity::Distinct if x.ptr_eq(y) => {
                return Err(format!("{}: expected distinct Variable objects", at()));
            }
            _ => {}
        }
        if self.pair(x.id(), y.id(), at_path)? {
            return Ok(());
        }
        if x.variable_type() != y.variable_type() {
            return Err(format!(
                "{}: Variable type {} vs {}",
                at(),
                x.type_name(),
                y.type_name()
            ));
        }
        if x.metadata() != y.metadata() {
            return Err(format!(
                "{}: metadata {:?} vs {:?}",
                at(),
                x.metadata(),
                y.metadata()
            ));
        }
        if !x.value().identical(&y.value()) {
            return Err(format!("{}: values differ", at()));
        }
        Ok(())
    }
}

/// Checks that two nodes have the same keys and queues their children's pairs.
fn children(
    a: Vec<(Key, Value)>,
    b: Vec<(Key, Value)>,
    at: &Path,
    pending: &mut Pending,
) -> Result<(), String> {
    let ka: Vec<&Key> = a.iter().map(|(k, _)| k).collect();
    let kb: Vec<&Key> = b.iter().map(|(k, _)| k).collect();
    if ka != kb {
        return Err(format!("{}: keys {ka:?} vs {kb:?}", render(at)));
    }
    for ((k, x), (_, y)) in a.into_iter().zip(b).rev() {
        pending.push((x, y, at.child(k)));
    }
    Ok(())
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
