//! `GraphDef`: the static structure of a graph, and the traversal that produces it.

use crate::graph::IdMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use super::node::{Node, NodeKind};
use super::node_id::NodeId;
use super::path::{Key, Path};
use super::state::Leaf;
use super::static_value::Static;
use super::value::Value;
use super::variable::{Variable, VariableType};

/// The structure of a graph without its state: node kinds and type names, attribute keys,
/// static values, Variable types and metadata, and the sharing topology (every shared node
/// is described once and referred to by index afterwards). It never holds shapes or values.
///
/// Two graphs have equal `GraphDef`s exactly when `merge` would rebuild one from the other's
/// state: this is what a `jit` cache keys on.
///
/// The representation is flat: one [`DefEntry`] per position of the traversal, in pre-order
/// (a node or tuple entry is followed by its children's subtrees, in sorted key order). So
/// cloning, comparing, hashing and dropping a `GraphDef` are iterative and linear in its
/// size, whatever the depth of the graph.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GraphDef {
    pub(crate) entries: Vec<DefEntry>,
    pub(crate) num_leaves: usize,
    pub(crate) leaf_paths: LeafPaths,
}

/// A `GraphDef`'s leaf paths, computed once (the flatten that builds a GraphDef stores the
/// very paths its State holds, so `merge` matches them by identity). A cache: not part of
/// the structure, so it never affects equality or hashing.
#[derive(Clone, Default)]
pub(crate) struct LeafPaths(OnceLock<Arc<[Path]>>);

impl PartialEq for LeafPaths {
    fn eq(&self, _: &LeafPaths) -> bool {
        true
    }
}

impl Eq for LeafPaths {}

impl std::hash::Hash for LeafPaths {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

impl fmt::Debug for LeafPaths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("..")
    }
}

/// One position of a [`GraphDef`]: the key it sits under in its parent (`None` for the
/// root) and what is there.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DefEntry {
    /// The key in the parent node or tuple (`None` for the root).
    pub key: Option<Key>,
    /// What is at this position.
    pub def: NodeDef,
}

/// What is at one position of a [`GraphDef`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NodeDef {
    /// An object, list or dict seen for the first time; its `len` children follow it in the
    /// GraphDef's entries (each child's whole subtree, in sorted key order).
    Node {
        /// Object (with type name), list or dict.
        kind: NodeKind,
        /// Position in the traversal's shared node counter.
        index: usize,
        /// The index of the corresponding node outside a transform, when this definition was
        /// produced inside one (`None` for nodes created inside, and outside transforms).
        outer_index: Option<usize>,
        /// The number of children.
        len: usize,
    },
    /// A Variable seen for the first time (one leaf).
    Variable(VariableDef),
    /// A node or Variable already described at this index (a shared reference or a cycle).
    Ref(usize),
    /// A tuple (no identity: described at every occurrence); its `len` items follow it.
    Tuple {
        /// The number of items.
        len: usize,
    },
    /// A plain dict ([`Value::Map`]: no identity, described at every occurrence); its `len`
    /// entries follow it, each with its key.
    Map {
        /// The number of entries.
        len: usize,
    },
    /// A raw array (one leaf).
    Leaf,
    /// A static value.
    Static(Static),
}

impl NodeDef {
    /// The number of children that follow this entry (0 for everything but nodes and
    /// tuples).
    pub fn len(&self) -> usize {
        match self {
            NodeDef::Node { len, .. } | NodeDef::Tuple { len } | NodeDef::Map { len } => *len,
            _ => 0,
        }
    }

    /// Whether this entry has no children.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this entry is a leaf (a Variable or a raw array) of the State.
    pub fn is_leaf(&self) -> bool {
        matches!(self, NodeDef::Variable(_) | NodeDef::Leaf)
    }
}

/// The static description of a Variable: its type, index and metadata.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VariableDef {
    /// The Variable's type.
    pub ty: VariableType,
    /// Position in the traversal's shared node counter.
    pub index: usize,
    /// See [`NodeDef::Node::outer_index`].
    pub outer_index: Option<usize>,
    /// The metadata, in insertion order.
    pub metadata: Vec<(String, Static)>,
}

impl GraphDef {
    /// The entries in pre-order; the first is the root.
    pub fn entries(&self) -> &[DefEntry] {
        &self.entries
    }

    /// The root of the structure.
    pub fn root(&self) -> &NodeDef {
        // A GraphDef always has its root entry.
        match self.entries.first() {
            Some(entry) => &entry.def,
            None => &NodeDef::Static(Static::None),
        }
    }

    /// The number of leaves (Variables and raw arrays) a State must provide.
    pub fn num_leaves(&self) -> usize {
        self.num_leaves
    }

    /// The leaf paths in traversal (= sorted) order (computed once).
    pub fn leaf_paths(&self) -> &[Path] {
        self.leaf_paths.0.get_or_init(|| {
            let mut out = Vec::with_capacity(self.num_leaves);
            for step in self.walk() {
                if let Step::Enter { entry, path, .. } = step
                    && entry.def.is_leaf()
                {
                    out.push(path);
                }
            }
            out.into()
        })
    }

    /// The entries in pre-order with their paths and depths, and a [`Step::Leave`] after the
    /// children of every node and tuple: the one iterative walk over a GraphDef.
    pub(crate) fn walk(&self) -> Walk<'_> {
        Walk {
            entries: &self.entries,
            next: 0,
            open: Vec::new(),
            paths: true,
        }
    }

    /// [`GraphDef::walk`] without building paths (every step's path is the root): for
    /// passes that need only the structure, such as `merge`'s build.
    pub(crate) fn walk_structure(&self) -> Walk<'_> {
        Walk {
            paths: false,
            ..self.walk()
        }
    }
}

/// A step of [`GraphDef::walk`].
pub(crate) enum Step<'a> {
    /// An entry, with its path and its depth (the root is 0).
    Enter {
        entry: &'a DefEntry,
        path: Path,
        depth: usize,
    },
    /// The end of the children of the last node or tuple entered and not yet left.
    Leave,
}

/// The iterator behind [`GraphDef::walk`].
pub(crate) struct Walk<'a> {
    entries: &'a [DefEntry],
    next: usize,
    /// Open nodes and tuples: (children still to come, path).
    open: Vec<(usize, Path)>,
    /// Whether steps carry their paths.
    paths: bool,
}

impl<'a> Iterator for Walk<'a> {
    type Item = Step<'a>;

    fn next(&mut self) -> Option<Step<'a>> {
        if let Some((0, _)) = self.open.last() {
            self.open.pop();
            return Some(Step::Leave);
        }
        let position = self.next;
        let entry = self.entries.get(position)?;
        self.next += 1;
        let parent = match self.open.last_mut() {
            Some((remaining, parent)) => {
                *remaining -= 1;
                parent.clone()
            }
            None if position == 0 => Path::root(),
            // Entries after a complete root: not produced by a traversal.
            None => return None,
        };
        let path = match &entry.key {
            Some(key) if self.paths => parent.child(key.clone()),
            _ => parent,
        };
        let depth = self.open.len();
        if matches!(
            entry.def,
            NodeDef::Node { .. } | NodeDef::Tuple { .. } | NodeDef::Map { .. }
        ) {
            self.open.push((entry.def.len(), path.clone()));
        }
        Some(Step::Enter { entry, path, depth })
    }
}

/// Nesting deeper than this prints as `...` in a GraphDef's outline (and as
/// `TypeName(...)` in an object's repr): output stays linear in the graph's size.
pub(crate) const MAX_DISPLAY_DEPTH: usize = 64;

impl fmt::Display for GraphDef {
    /// An indented outline: one line per position, down to a nesting depth of 64 (deeper
    /// subtrees print as one `...` line).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "GraphDef(num_leaves={})", self.num_leaves)?;
        let mut elided = false;
        for step in self.walk() {
            let Step::Enter { entry, depth, .. } = step else {
                continue;
            };
            if depth > MAX_DISPLAY_DEPTH {
                if !elided {
                    writeln!(f, "{}...", "  ".repeat(MAX_DISPLAY_DEPTH + 2))?;
                    elided = true;
                }
                continue;
            }
            elided = false;
            let indent = "  ".repeat(depth + 1);
            let label = entry
                .key
                .as_ref()
                .map(|k| format!("{k}: "))
                .unwrap_or_default();
            match &entry.def {
                NodeDef::Node { kind, index, .. } => {
                    writeln!(f, "{indent}{label}{}[{index}]", kind.type_name())?
                }
                NodeDef::Variable(v) => writeln!(f, "{indent}{label}{}[{}]", v.ty, v.index)?,
                NodeDef::Ref(index) => writeln!(f, "{indent}{label}Ref[{index}]")?,
                NodeDef::Tuple { .. } => writeln!(f, "{indent}{label}tuple")?,
                NodeDef::Map { .. } => writeln!(f, "{indent}{label}dict")?,
                NodeDef::Leaf => writeln!(f, "{indent}{label}Array")?,
                NodeDef::Static(s) => writeln!(f, "{indent}{label}{s}")?,
            }
        }
        Ok(())
    }
}

/// The pre-order, sorted-key traversal behind `split`, `state` and `graphdef` (Flax's
/// `flatten`): graph nodes and Variables get indexes from one shared counter, repeats become
/// [`NodeDef::Ref`], and leaves are collected with their paths.
#[derive(Default)]
pub(crate) struct Flattener<'a> {
    seen: IdMap<usize>,
    leaves: Vec<(Path, Leaf)>,
    /// Every node and Variable by index (for writing results back into them).
    by_index: Vec<Value>,
    /// Inside a transform: the outer index of each object that came in as an input.
    outer_indexes: Option<&'a IdMap<usize>>,
}

/// The result of flattening: the structure, the leaves in traversal order, and every node
/// and Variable by its index.
pub(crate) struct Flattened {
    pub(crate) def: GraphDef,
    pub(crate) leaves: Vec<(Path, Leaf)>,
    pub(crate) by_index: Vec<Value>,
}

impl<'a> Flattener<'a> {
    /// Flattens one root, returning its GraphDef and its leaves in traversal order.
    pub(crate) fn flatten(root: &Value) -> (GraphDef, Vec<(Path, Leaf)>) {
        let f = Flattener::flatten_with(root, None);
        (f.def, f.leaves)
    }

    /// Flattens one root, recording outer indexes for the objects in `outer_indexes`.
    pub(crate) fn flatten_with(root: &Value, outer_indexes: Option<&'a IdMap<usize>>) -> Flattened {
        let _consistent = super::sync::consistency(false);
        let mut flattener = Flattener {
            outer_indexes,
            ..Flattener::default()
        };
        let entries = flattener.run(root);
        let num_leaves = flattener.leaves.len();
        let paths: Arc<[Path]> = flattener.leaves.iter().map(|(p, _)| p.clone()).collect();
        let leaf_paths = LeafPaths(OnceLock::from(paths));
        Flattened {
            def: GraphDef {
                entries,
                num_leaves,
                leaf_paths,
            },
            leaves: flattener.leaves,
            by_index: flattener.by_index,
        }
    }

    fn next_index(&mut self, id: NodeId, value: Value) -> (usize, Option<usize>) {
        let index = self.seen.len();
        self.seen.insert(id, index);
        self.by_index.push(value);
        let outer = self.outer_indexes.and_then(|m| m.get(&id).copied());
        (index, outer)
    }

    /// The traversal, with an explicit stack: pre-order, children in sorted key order.
    fn run(&mut self, root: &Value) -> Vec<DefEntry> {
        let mut entries = Vec::new();
        // Open nodes and tuples: their children still to visit (reversed, so `pop` gives
        // the next one) and their path.
        let mut stack: Vec<(Vec<(Key, Value)>, Path)> = Vec::new();
        let (def, children) = self.visit(root, &Path::root());
        entries.push(DefEntry { key: None, def });
        if let Some(children) = children {
            stack.push((children, Path::root()));
        }
        while let Some((children, path)) = stack.last_mut() {
            let Some((key, child)) = children.pop() else {
                stack.pop();
                continue;
            };
            let child_path = path.child(key.clone());
            let (def, grandchildren) = self.visit(&child, &child_path);
            entries.push(DefEntry {
                key: Some(key),
                def,
            });
            if let Some(grandchildren) = grandchildren {
                stack.push((grandchildren, child_path));
            }
        }
        entries
    }

    /// The definition of one value, and for a node or tuple seen for the first time its
    /// children (in reverse sorted order).
    fn visit(&mut self, value: &Value, path: &Path) -> (NodeDef, Option<Vec<(Key, Value)>>) {
        match value {
            Value::Static(s) => (NodeDef::Static(s.clone()), None),
            Value::Array(t) => {
                self.leaves.push((path.clone(), Leaf::Array(t.clone())));
                (NodeDef::Leaf, None)
            }
            Value::Variable(v) => (self.visit_variable(v, path), None),
            Value::Object(_) | Value::List(_) | Value::Dict(_) => self.visit_node(value),
            Value::Tuple(_) | Value::Map(_) => {
                let mut children = value.pytree_children().unwrap_or_default();
                let len = children.len();
                children.reverse();
                let def = match value {
                    Value::Map(_) => NodeDef::Map { len },
                    _ => NodeDef::Tuple { len },
                };
                (def, Some(children))
            }
        }
    }

    fn visit_variable(&mut self, v: &Variable, path: &Path) -> NodeDef {
        if let Some(&index) = self.seen.get(&v.id()) {
            return NodeDef::Ref(index);
        }
        let (index, outer_index) = self.next_index(v.id(), Value::Variable(v.clone()));
        self.leaves.push((path.clone(), Leaf::Variable(v.clone())));
        NodeDef::Variable(VariableDef {
            ty: v.variable_type(),
            index,
            outer_index,
            metadata: v.metadata(),
        })
    }

    fn visit_node(&mut self, value: &Value) -> (NodeDef, Option<Vec<(Key, Value)>>) {
        let Some(node) = node_of(value) else {
            return (NodeDef::Static(Static::None), None);
        };
        if let Some(&index) = self.seen.get(&node.id()) {
            return (NodeDef::Ref(index), None);
        }
        let (index, outer_index) = self.next_index(node.id(), value.clone());
        let mut children = node.sorted_children();
        children.reverse();
        let def = NodeDef::Node {
            kind: node.kind().clone(),
            index,
            outer_index,
            len: children.len(),
        };
        (def, Some(children))
    }
}

/// The node behind an object, list or dict value.
pub(crate) fn node_of(value: &Value) -> Option<&Node> {
    match value {
        Value::Object(o) => Some(&o.0),
        Value::List(l) => Some(&l.0),
        Value::Dict(d) => Some(&d.0),
        _ => None,
    }
}
