//! Printing objects, Variables and States exactly as Flax NNX does (`reprlib`).

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use super::node::{Dict, List, Node, NodeKind, Object};
use super::node_id::NodeId;
use super::path::Key;
use super::state::{Leaf, NestedState, State};
use super::value::Value;
use super::variable::{Variable, VariableType};

/// Where a value is printed: inside a Module arrays with more than one element are shown as
/// a shape summary; standalone Variables and States show them in full.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Module,
    Full,
}

/// One repr call: remembers which graph nodes were already printed, so shared nodes and
/// cycles print as `TypeName(...)` after their first appearance.
#[derive(Default)]
struct Printer {
    printed: HashSet<NodeId>,
}

impl Printer {
    fn value(&mut self, value: &Value, ctx: Context) -> String {
        match value {
            Value::Static(s) => s.to_string(),
            Value::Array(t) => match ctx {
                Context::Module => t.summary_repr(),
                Context::Full => t.repr(),
            },
            Value::Variable(v) => variable_repr(v, ctx),
            Value::Object(o) => self.node(&o.0),
            Value::List(l) => self.node(&l.0),
            Value::Dict(d) => self.node(&d.0),
            Value::Tuple(items) => {
                let parts: Vec<String> = items.iter().map(|v| self.value(v, ctx)).collect();
                match parts.as_slice() {
                    [one] => format!("({one},)"),
                    _ => format!("({})", parts.join(", ")),
                }
            }
        }
    }

    fn node(&mut self, node: &Node) -> String {
        let name = node.kind().type_name().to_owned();
        if !self.printed.insert(node.id()) {
            return format!("{name}(...)");
        }
        let children = node.children();
        match node.kind() {
            NodeKind::Object(_) => {
                let comment = stats_comment(node);
                let lines: Vec<String> = children
                    .iter()
                    .filter(|(k, v)| !is_private_static(k, v))
                    .map(|(k, v)| {
                        let key = match k {
                            Key::Str(s) => s.clone(),
                            Key::Int(i) => i.to_string(),
                        };
                        format!("{key}={}", self.value(v, Context::Module))
                    })
                    .collect();
                block(&format!("{name}({comment}"), &lines, ")")
            }
            NodeKind::List => {
                let lines: Vec<String> = node
                    .sorted_children()
                    .iter()
                    .map(|(_, v)| self.value(v, Context::Module))
                    .collect();
                block("List([", &lines, "])")
            }
            NodeKind::Dict => {
                let lines: Vec<String> = children
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", self.value(v, Context::Module)))
                    .collect();
                block("Dict({", &lines, "})")
            }
        }
    }
}

/// `open`, then each line indented by two spaces and separated by `,\n`, then `close`;
/// `open` + `close` when there are no lines.
fn block(open: &str, lines: &[String], close: &str) -> String {
    if lines.is_empty() {
        let open = open.split(" #").next().unwrap_or(open);
        return format!("{open}{close}");
    }
    let body: Vec<String> = lines.iter().map(|l| format!("  {}", indent(l))).collect();
    format!("{open}\n{}\n{close}", body.join(",\n"))
}

/// Re-indents the continuation lines of a nested repr.
fn indent(s: &str) -> String {
    s.replace('\n', "\n  ")
}

/// Flax hides `_`-prefixed static attributes.
fn is_private_static(key: &Key, value: &Value) -> bool {
    matches!((key, value), (Key::Str(s), Value::Static(_)) if s.starts_with('_'))
}

fn variable_repr(v: &Variable, ctx: Context) -> String {
    let value = v.value();
    let shown = match ctx {
        Context::Module => value.summary_repr(),
        Context::Full => value.repr(),
    };
    let mut lines = vec![format!("value={shown}")];
    lines.extend(v.metadata().iter().map(|(k, m)| format!("{k}={m}")));
    let header = format!(
        "{}( # {} ({})",
        v.type_name(),
        thousands(value.size()),
        bytes_repr(value.nbytes())
    );
    block(&header, &lines, ")")
}

/// The ` # Count: 10 (40 B), Param: 60 (240 B), Total: 70 (280 B)` comment of an object:
/// per Variable type over the whole reachable graph, each Variable counted once, in order of
/// first encounter in sorted traversal; RNG variables are reported as `RngState`.
fn stats_comment(root: &Node) -> String {
    let mut seen = HashSet::new();
    let mut totals: Vec<(&'static str, usize, usize)> = Vec::new();
    collect_stats(&Value::Object(Object(root.clone())), &mut seen, &mut totals);
    if totals.is_empty() {
        return String::new();
    }
    let mut parts: Vec<String> = totals
        .iter()
        .map(|(name, size, bytes)| format!("{name}: {} ({})", thousands(*size), bytes_repr(*bytes)))
        .collect();
    if totals.len() > 1 {
        let size: usize = totals.iter().map(|t| t.1).sum();
        let bytes: usize = totals.iter().map(|t| t.2).sum();
        parts.push(format!(
            "Total: {} ({})",
            thousands(size),
            bytes_repr(bytes)
        ));
    }
    format!(" # {}", parts.join(", "))
}

fn collect_stats(
    value: &Value,
    seen: &mut HashSet<NodeId>,
    totals: &mut Vec<(&'static str, usize, usize)>,
) {
    let node = match value {
        Value::Variable(v) => {
            if !seen.insert(v.id()) {
                return;
            }
            let name = if v.is_instance(VariableType::RNG_STATE) {
                VariableType::RNG_STATE.name()
            } else {
                v.type_name()
            };
            let t = v.value();
            match totals.iter_mut().find(|(n, _, _)| *n == name) {
                Some(entry) => {
                    entry.1 += t.size();
                    entry.2 += t.nbytes();
                }
                None => totals.push((name, t.size(), t.nbytes())),
            }
            return;
        }
        Value::Tuple(items) => {
            for item in items {
                collect_stats(item, seen, totals);
            }
            return;
        }
        Value::Object(o) => &o.0,
        Value::List(l) => &l.0,
        Value::Dict(d) => &d.0,
        Value::Static(_) | Value::Array(_) => return,
    };
    if !seen.insert(node.id()) {
        return;
    }
    for (_, child) in node.sorted_children() {
        collect_stats(&child, seen, totals);
    }
}

/// `1234567` → `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Flax's `_bytes_repr`: `40 B`, `1.0 KB`, `4.0 MB` (decimal units).
fn bytes_repr(n: usize) -> String {
    let x = n as f64;
    let (value, unit) = if x <= 1e3 {
        return format!("{} B", thousands(n));
    } else if x <= 1e6 {
        (x / 1e3, "KB")
    } else if x <= 1e9 {
        (x / 1e6, "MB")
    } else {
        (x / 1e9, "GB")
    };
    let formatted = format!("{value:.1}");
    let (int, frac) = formatted.split_once('.').unwrap_or((&formatted, "0"));
    let int: usize = int.parse().unwrap_or(0);
    format!("{}.{frac} {unit}", thousands(int))
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Printer::default().node(&self.0))
    }
}

impl fmt::Display for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Printer::default().node(&self.0))
    }
}

impl fmt::Display for Dict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Printer::default().node(&self.0))
    }
}

impl fmt::Display for Variable {
    /// The full repr, with the value printed in full.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&variable_repr(self, Context::Full))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Printer::default().value(self, Context::Full))
    }
}

impl fmt::Display for State {
    /// `State({\n  'bias': Param( # 3 (12 B)\n    value=...\n  ),\n  'sub': {...}\n})`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.nested() {
            NestedState::Leaf(leaf) => write!(f, "State({})", leaf_repr(leaf)),
            NestedState::Map(map) => write!(f, "State({})", nested_repr(map)),
        }
    }
}

fn leaf_repr(leaf: &Leaf) -> String {
    match leaf {
        Leaf::Variable(v) => variable_repr(v, Context::Full),
        Leaf::Array(t) => t.repr(),
    }
}

fn nested_repr(map: &BTreeMap<Key, NestedState>) -> String {
    let lines: Vec<String> = map
        .iter()
        .map(|(k, v)| {
            let inner = match v {
                NestedState::Leaf(leaf) => leaf_repr(leaf),
                NestedState::Map(m) => nested_repr(m),
            };
            format!("{k}: {inner}")
        })
        .collect();
    block("{", &lines, "}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_flax() {
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(bytes_repr(1000), "1,000 B");
        assert_eq!(bytes_repr(1004), "1.0 KB");
        assert_eq!(bytes_repr(1_000_004), "1.0 MB");
        assert_eq!(bytes_repr(4_000_000), "4.0 MB");
    }
}
