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

/// Nesting deeper than this many objects, lists, dicts (or State mappings) prints as
/// `TypeName(...)` (`{...}` in a State): Python would raise `RecursionError` on such a
/// graph; here printing stays iterative and its output linear in the graph's size.
pub const MAX_PRINT_DEPTH: usize = super::graphdef::MAX_DISPLAY_DEPTH;

/// One repr call: remembers which graph nodes were already printed, so shared nodes and
/// cycles print as `TypeName(...)` after their first appearance. The output is written with
/// an explicit stack of open blocks, so printing does not recurse.
#[derive(Default)]
struct Printer<'s> {
    printed: HashSet<NodeId>,
    out: String,
    /// The current block nesting: every line starts with two spaces per level.
    indent: usize,
    stack: Vec<Frame<'s>>,
    /// The number of blocks on the stack (the nesting depth of the output).
    blocks: usize,
    /// The object comments, computed once per repr call (see [`Stats`]).
    stats: Option<Stats>,
}

/// An open block or tuple of the output.
enum Frame<'s> {
    /// `open` was written; the items follow one per line, then `close` on its own line.
    Block {
        items: Vec<Item<'s>>,
        next: usize,
        close: &'static str,
    },
    /// `(` (a tuple) or `{` (a map, its items keyed) was written; the items follow
    /// separated by `, `.
    Inline {
        items: Vec<(Option<super::Key>, Value)>,
        /// Whether it is a map (closed by `}`).
        map: bool,
        next: usize,
        ctx: Context,
    },
}

/// One line of a block: a label and what follows it.
enum Item<'s> {
    Value(String, Value),
    Nested(String, &'s NestedState),
}

impl<'s> Printer<'s> {
    /// The repr of a whole value.
    fn print(mut self, value: &Value, ctx: Context) -> String {
        let _consistent = super::sync::consistency(false);
        if let Some(node) = super::graphdef::node_of(value) {
            self.stats = Some(Stats::of(node));
        }
        self.value(value, ctx);
        self.run();
        self.out
    }

    /// Writes text, re-indenting its continuation lines.
    fn text(&mut self, s: &str) {
        for (i, line) in s.split('\n').enumerate() {
            if i > 0 {
                self.newline();
            }
            self.out.push_str(line);
        }
    }

    fn newline(&mut self) {
        self.out.push('\n');
        for _ in 0..self.indent {
            self.out.push_str("  ");
        }
    }

    fn depth(&self) -> usize {
        self.blocks
    }

    fn open_block(&mut self, open: &str, items: Vec<Item<'s>>, close: &'static str) {
        if items.is_empty() {
            let open = open.split(" #").next().unwrap_or(open);
            self.text(open);
            self.text(close);
            return;
        }
        self.text(open);
        self.indent += 1;
        self.blocks += 1;
        self.stack.push(Frame::Block {
            items,
            next: 0,
            close,
        });
    }

    /// Writes a value, or opens its block (or tuple) for [`Printer::run`] to fill.
    fn value(&mut self, value: &Value, ctx: Context) {
        match value {
            Value::Static(s) => self.text(&s.to_string()),
            Value::Array(t) => match ctx {
                Context::Module => self.text(&t.summary_repr()),
                Context::Full => self.text(&t.repr()),
            },
            Value::Variable(v) => self.text(&variable_repr(v, ctx)),
            Value::Object(o) => self.node(&o.0),
            Value::List(l) => self.node(&l.0),
            Value::Dict(d) => self.node(&d.0),
            Value::Tuple(items) => {
                self.out.push('(');
                self.stack.push(Frame::Inline {
                    items: items.iter().map(|v| (None, v.clone())).collect(),
                    map: false,
                    next: 0,
                    ctx,
                });
            }
            Value::Map(entries) => {
                self.out.push('{');
                self.stack.push(Frame::Inline {
                    items: (entries.iter())
                        .map(|(k, v)| (Some(k.clone()), v.clone()))
                        .collect(),
                    map: true,
                    next: 0,
                    ctx,
                });
            }
        }
    }

    fn node(&mut self, node: &Node) {
        let name = node.kind().type_name().to_owned();
        if self.depth() >= MAX_PRINT_DEPTH || !self.printed.insert(node.id()) {
            self.text(&format!("{name}(...)"));
            return;
        }
        match node.kind() {
            NodeKind::Object(_) => {
                let comment = match &mut self.stats {
                    Some(stats) => stats.comment(node),
                    None => Stats::of(node).comment(node),
                };
                let items = node
                    .children()
                    .into_iter()
                    .filter(|(k, v)| !is_private_static(k, v))
                    .map(|(k, v)| {
                        let key = match k {
                            Key::Str(s) => s,
                            Key::Int(i) => i.to_string(),
                        };
                        Item::Value(format!("{key}="), v)
                    })
                    .collect();
                self.open_block(&format!("{name}({comment}"), items, ")");
            }
            NodeKind::List => {
                let items = node
                    .sorted_children()
                    .into_iter()
                    .map(|(_, v)| Item::Value(String::new(), v))
                    .collect();
                self.open_block("List([", items, "])");
            }
            NodeKind::Dict => {
                let items = node
                    .children()
                    .into_iter()
                    .map(|(k, v)| Item::Value(format!("{k}: "), v))
                    .collect();
                self.open_block("Dict({", items, "})");
            }
        }
    }

    /// A State mapping: `{` then `key: value` lines, then `}`.
    fn nested(&mut self, map: &'s BTreeMap<Key, NestedState>) {
        if self.depth() >= MAX_PRINT_DEPTH {
            self.text("{...}");
            return;
        }
        let items = map
            .iter()
            .map(|(k, v)| Item::Nested(format!("{k}: "), v))
            .collect();
        self.open_block("{", items, "}");
    }

    /// Fills the open blocks and tuples until none is left.
    fn run(&mut self) {
        while let Some(frame) = self.stack.last_mut() {
            match frame {
                Frame::Block { items, next, close } => {
                    let close = *close;
                    let i = *next;
                    *next += 1;
                    let item = match items.get_mut(i) {
                        Some(Item::Value(label, value)) => {
                            Item::Value(std::mem::take(label), value.clone())
                        }
                        Some(Item::Nested(label, nested)) => {
                            Item::Nested(std::mem::take(label), nested)
                        }
                        None => {
                            self.stack.pop();
                            self.blocks -= 1;
                            self.indent = self.indent.saturating_sub(1);
                            self.newline();
                            self.text(close);
                            continue;
                        }
                    };
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.newline();
                    match item {
                        Item::Value(label, value) => {
                            self.text(&label);
                            self.value(&value, Context::Module);
                        }
                        Item::Nested(label, nested) => {
                            self.text(&label);
                            match nested {
                                NestedState::Leaf(leaf) => self.text(&leaf_repr(leaf)),
                                NestedState::Map(map) => self.nested(map),
                            }
                        }
                    }
                }
                Frame::Inline {
                    items,
                    map,
                    next,
                    ctx,
                } => {
                    let ctx = *ctx;
                    let i = *next;
                    *next += 1;
                    let Some((key, item)) = items.get(i).cloned() else {
                        let close = match (*map, items.len()) {
                            (true, _) => "}",
                            (false, 1) => ",)",
                            (false, _) => ")",
                        };
                        self.stack.pop();
                        self.out.push_str(close);
                        continue;
                    };
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    if let Some(key) = key {
                        self.out.push_str(&format!("{key}: "));
                    }
                    self.value(&item, ctx);
                }
            }
        }
    }
}

/// The ` # Count: 10 (40 B), ...` comments of the objects of one repr call.
///
/// An object's comment counts the Variables reachable from it. One iterative pass over the
/// graph computes it for every object whose reachable subgraph is a tree (no node or
/// Variable reached twice, the common case): there it is the sum over the children. Other
/// objects (below a shared node or on a cycle) get their own traversal when printed, except
/// that objects of one strongly connected component reach the same Variables: a result with
/// a single Variable type (so no order to differ) is reused across the component, which
/// keeps printing a long cycle linear.
struct Stats {
    tree_totals: std::collections::HashMap<NodeId, Totals>,
    /// The strongly connected component of every node reachable from the root.
    component: std::collections::HashMap<NodeId, usize>,
    /// Totals computed for a component, when they have at most one Variable type.
    component_totals: std::collections::HashMap<usize, Totals>,
}

/// Per Variable type, in order of first encounter: (name, elements, bytes).
type Totals = Vec<(&'static str, usize, usize)>;

impl Stats {
    fn of(root: &Node) -> Stats {
        struct Open {
            id: NodeId,
            children: Vec<Value>,
            totals: Totals,
            tree: bool,
        }
        let mut tree_totals = std::collections::HashMap::new();
        let mut seen = HashSet::new();
        seen.insert(root.id());
        let mut children = root.sorted_children();
        children.reverse();
        let mut stack = vec![Open {
            id: root.id(),
            children: children.into_iter().map(|(_, v)| v).collect(),
            totals: Vec::new(),
            tree: true,
        }];
        while let Some(open) = stack.last_mut() {
            let Some(child) = open.children.pop() else {
                let Some(done) = stack.pop() else { break };
                if done.tree {
                    tree_totals.insert(done.id, done.totals.clone());
                }
                if let Some(parent) = stack.last_mut() {
                    parent.tree &= done.tree;
                    for (name, size, bytes) in done.totals {
                        add(&mut parent.totals, name, size, bytes);
                    }
                }
                continue;
            };
            match &child {
                Value::Variable(v) => {
                    if seen.insert(v.id()) {
                        let t = v.value();
                        add(&mut open.totals, stats_name(v), t.size(), t.nbytes());
                    } else {
                        open.tree = false;
                    }
                }
                Value::Tuple(items) => open.children.extend(items.iter().rev().cloned()),
                Value::Map(entries) => open.children.extend(entries.values().rev().cloned()),
                Value::Object(_) | Value::List(_) | Value::Dict(_) => {
                    let Some(node) = super::graphdef::node_of(&child) else {
                        continue;
                    };
                    if !seen.insert(node.id()) {
                        open.tree = false;
                        continue;
                    }
                    let mut children = node.sorted_children();
                    children.reverse();
                    stack.push(Open {
                        id: node.id(),
                        children: children.into_iter().map(|(_, v)| v).collect(),
                        totals: Vec::new(),
                        tree: true,
                    });
                }
                Value::Static(_) | Value::Array(_) => {}
            }
        }
        Stats {
            tree_totals,
            component: components(root),
            component_totals: std::collections::HashMap::new(),
        }
    }

    /// The comment of one object.
    fn comment(&mut self, node: &Node) -> String {
        if let Some(totals) = self.tree_totals.get(&node.id()) {
            return totals_comment(totals);
        }
        let component = self.component.get(&node.id()).copied();
        if let Some(totals) = component.and_then(|c| self.component_totals.get(&c)) {
            return totals_comment(totals);
        }
        let totals = collect_stats(node);
        if let Some(c) = component
            && totals.len() <= 1
        {
            self.component_totals.insert(c, totals.clone());
        }
        totals_comment(&totals)
    }
}

/// The graph nodes (objects, lists, dicts; through tuples) that are children of `node`.
fn child_nodes(node: &Node) -> Vec<Node> {
    let mut out = Vec::new();
    let mut pending: Vec<Value> = node.children().into_iter().map(|(_, v)| v).collect();
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(Object(n)) | Value::List(List(n)) | Value::Dict(Dict(n)) => out.push(n),
            Value::Tuple(items) => pending.extend(items),
            Value::Map(entries) => pending.extend(entries.into_values()),
            Value::Static(_) | Value::Array(_) | Value::Variable(_) => {}
        }
    }
    out
}

/// The strongly connected components of the nodes reachable from `root` (Tarjan's
/// algorithm with an explicit stack): node → component number.
fn components(root: &Node) -> std::collections::HashMap<NodeId, usize> {
    struct Frame {
        node: Node,
        children: Vec<Node>,
        next: usize,
    }
    let mut index: std::collections::HashMap<NodeId, usize> = std::collections::HashMap::new();
    let mut low: std::collections::HashMap<NodeId, usize> = std::collections::HashMap::new();
    let mut on_stack: HashSet<NodeId> = HashSet::new();
    let mut stack: Vec<NodeId> = Vec::new();
    let mut component = std::collections::HashMap::new();
    let mut components = 0;
    let enter = |node: &Node,
                 index: &mut std::collections::HashMap<NodeId, usize>,
                 low: &mut std::collections::HashMap<NodeId, usize>,
                 on_stack: &mut HashSet<NodeId>,
                 stack: &mut Vec<NodeId>| {
        let i = index.len();
        index.insert(node.id(), i);
        low.insert(node.id(), i);
        on_stack.insert(node.id());
        stack.push(node.id());
        Frame {
            node: node.clone(),
            children: child_nodes(node),
            next: 0,
        }
    };
    let mut frames = vec![enter(root, &mut index, &mut low, &mut on_stack, &mut stack)];
    while let Some(frame) = frames.last_mut() {
        if let Some(child) = frame.children.get(frame.next).cloned() {
            frame.next += 1;
            let v = frame.node.id();
            match index.get(&child.id()).copied() {
                None => {
                    let f = enter(&child, &mut index, &mut low, &mut on_stack, &mut stack);
                    frames.push(f);
                }
                Some(i) if on_stack.contains(&child.id()) => {
                    if let Some(l) = low.get_mut(&v) {
                        *l = (*l).min(i);
                    }
                }
                Some(_) => {}
            }
            continue;
        }
        let Some(done) = frames.pop() else { break };
        let v = done.node.id();
        let (lv, iv) = (low[&v], index[&v]);
        if lv == iv {
            while let Some(w) = stack.pop() {
                on_stack.remove(&w);
                component.insert(w, components);
                if w == v {
                    break;
                }
            }
            components += 1;
        }
        if let Some(parent) = frames.last()
            && let Some(l) = low.get_mut(&parent.node.id())
        {
            *l = (*l).min(lv);
        }
    }
    component
}

fn add(totals: &mut Totals, name: &'static str, size: usize, bytes: usize) {
    match totals.iter_mut().find(|(n, _, _)| *n == name) {
        Some(entry) => {
            entry.1 += size;
            entry.2 += bytes;
        }
        None => totals.push((name, size, bytes)),
    }
}

/// RNG variables are reported as `RngState`.
fn stats_name(v: &Variable) -> &'static str {
    if v.is_instance(VariableType::RNG_STATE) {
        VariableType::RNG_STATE.name()
    } else {
        v.type_name()
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
fn totals_comment(totals: &Totals) -> String {
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

/// The totals of the Variables reachable from `root` (an iterative pre-order traversal).
fn collect_stats(root: &Node) -> Totals {
    let mut seen = HashSet::new();
    let mut totals = Vec::new();
    let mut stack = vec![Value::Object(Object(root.clone()))];
    while let Some(value) = stack.pop() {
        let node = match &value {
            Value::Variable(v) => {
                if seen.insert(v.id()) {
                    let t = v.value();
                    add(&mut totals, stats_name(v), t.size(), t.nbytes());
                }
                continue;
            }
            Value::Tuple(items) => {
                stack.extend(items.iter().rev().cloned());
                continue;
            }
            Value::Map(entries) => {
                stack.extend(entries.values().rev().cloned());
                continue;
            }
            Value::Object(o) => &o.0,
            Value::List(l) => &l.0,
            Value::Dict(d) => &d.0,
            Value::Static(_) | Value::Array(_) => continue,
        };
        if seen.insert(node.id()) {
            stack.extend(node.sorted_children().into_iter().rev().map(|(_, v)| v));
        }
    }
    totals
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
        f.write_str(&Printer::default().print(&Value::Object(self.clone()), Context::Module))
    }
}

impl fmt::Display for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Printer::default().print(&Value::List(self.clone()), Context::Module))
    }
}

impl fmt::Display for Dict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Printer::default().print(&Value::Dict(self.clone()), Context::Module))
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
        f.write_str(&Printer::default().print(self, Context::Full))
    }
}

impl fmt::Display for State {
    /// `State({\n  'bias': Param( # 3 (12 B)\n    value=...\n  ),\n  'sub': {...}\n})`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.nested() {
            NestedState::Leaf(leaf) => write!(f, "State({})", leaf_repr(leaf)),
            NestedState::Map(map) => {
                let mut printer = Printer::default();
                printer.nested(map);
                printer.run();
                write!(f, "State({})", printer.out)
            }
        }
    }
}

fn leaf_repr(leaf: &Leaf) -> String {
    match leaf {
        Leaf::Variable(v) => variable_repr(v, Context::Full),
        Leaf::Array(t) => t.repr(),
    }
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
