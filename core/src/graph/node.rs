//! Graph nodes with identity: objects (Modules), lists and dicts.
//!
//! All three are handles over one [`Node`] representation: a kind plus an ordered map from
//! [`Key`] to [`Value`]. Objects are keyed by attribute name, lists by position, dicts by
//! key. Cloning a handle shares the node; mutation is visible through every handle.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};

use indexmap::IndexMap;

use super::graphdef::node_of;
use super::node_id::NodeId;
use super::path::Key;
use super::sync::{read, write};
use super::value::Value;
use super::variable::Variable;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::trace::{TraceLevel, check_can_mutate};

/// What kind of graph node a handle is: an [`Object`], a [`List`] or a [`Dict`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// An object with a type name (`Weights`, `Linear`, `Rngs`) and named attributes.
    Object(Arc<str>),
    /// A list (`nnx.List`): children keyed `0..len`.
    List,
    /// A dict (`nnx.Dict`).
    Dict,
}

impl NodeKind {
    /// The name Flax prints for this kind (`Weights`, `List`, `Dict`).
    pub fn type_name(&self) -> &str {
        match self {
            NodeKind::Object(name) => name,
            NodeKind::List => "List",
            NodeKind::Dict => "Dict",
        }
    }
}

/// The shared representation of objects, lists and dicts.
#[derive(Clone)]
pub(crate) struct Node(Arc<NodeCell>);

struct NodeCell {
    id: NodeId,
    kind: NodeKind,
    trace_level: TraceLevel,
    /// Bumped by every change of structure (a child added, removed or replaced by a
    /// different node, Variable or static; not an array replaced by an array).
    version: AtomicU64,
    children: RwLock<IndexMap<Key, Value>>,
}

impl Drop for NodeCell {
    /// Iterative: when the last handle to a node goes, its children that are themselves
    /// last handles (nodes, and tuples and maps holding nodes) are moved onto an explicit stack and
    /// emptied there, so dropping a very deep graph does not recurse.
    fn drop(&mut self) {
        let mut stack: Vec<Value> = children_mut(&mut self.children)
            .drain(..)
            .map(|(_, v)| v)
            .collect();
        while let Some(value) = stack.pop() {
            match value {
                Value::Object(Object(node)) | Value::List(List(node)) | Value::Dict(Dict(node)) => {
                    if let Some(mut cell) = Arc::into_inner(node.0) {
                        stack.extend(children_mut(&mut cell.children).drain(..).map(|(_, v)| v));
                    }
                }
                Value::Tuple(items) => stack.extend(items),
                Value::Map(entries) => stack.extend(entries.into_values()),
                Value::Static(_) | Value::Array(_) | Value::Variable(_) => {}
            }
        }
    }
}

impl Node {
    pub(crate) fn new(kind: NodeKind) -> Node {
        Node::with_children(kind, IndexMap::new())
    }

    pub(crate) fn with_children(kind: NodeKind, children: IndexMap<Key, Value>) -> Node {
        Node(Arc::new(NodeCell {
            id: NodeId::fresh(),
            kind,
            trace_level: crate::trace::current_level(),
            version: AtomicU64::new(0),
            children: RwLock::new(children),
        }))
    }

    pub(crate) fn id(&self) -> NodeId {
        self.0.id
    }

    pub(crate) fn kind(&self) -> &NodeKind {
        &self.0.kind
    }

    pub(crate) fn trace_level(&self) -> TraceLevel {
        self.0.trace_level
    }

    /// The structure version: it changes whenever a child is added or removed, or replaced
    /// by a value of a different structure (see [`same_structure`]). A cached transform
    /// compares versions to know, without a walk, that a graph still has its structure.
    pub(crate) fn version(&self) -> u64 {
        self.0.version.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.0.version.fetch_add(1, Ordering::AcqRel);
        super::sync::structure_changed();
    }

    /// A handle that does not keep the node alive.
    pub(crate) fn downgrade(&self) -> WeakNode {
        WeakNode(Arc::downgrade(&self.0))
    }

    pub(crate) fn ptr_eq(&self, other: &Node) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// How many handles to this node exist (for the typed-node registry's sweep).
    pub(crate) fn strong_count(&self) -> usize {
        Arc::strong_count(&self.0)
    }

    /// Calls `f` on each child in place, without cloning (so handle counts are unchanged)
    /// and without noting a read: for bookkeeping outside any trace's view.
    pub(crate) fn for_each_child(&self, mut f: impl FnMut(&Value)) {
        read(&self.0.children).values().for_each(&mut f);
    }

    /// Children in insertion order (a snapshot: cheap handle clones). Reading a node owned
    /// by an enclosing level while tracing is noted ([`crate::program::note_read`]).
    pub(crate) fn children(&self) -> Vec<(Key, Value)> {
        // What a trace reads of a captured node (its structure, its arrays) is baked in.
        crate::program::note_read(self.0.trace_level);
        read(&self.0.children)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Children sorted by key: the traversal order of every graph operation.
    pub(crate) fn sorted_children(&self) -> Vec<(Key, Value)> {
        let mut children = self.children();
        children.sort_by(|a, b| a.0.cmp(&b.0));
        children
    }

    pub(crate) fn get(&self, key: &Key) -> Option<Value> {
        crate::program::note_read(self.0.trace_level);
        read(&self.0.children).get(key).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        read(&self.0.children).len()
    }

    pub(crate) fn check_can_mutate(&self) -> Result<()> {
        check_can_mutate(self.kind().type_name(), self.0.trace_level)
    }

    /// Sets a child (replacing in place, or appending), after the trace-level check and the
    /// key check of [`Node::check_key`].
    pub(crate) fn set(&self, key: Key, value: Value) -> Result<()> {
        self.check_can_mutate()?;
        self.check_key(&key)?;
        let old = write(&self.0.children).insert(key, value.clone());
        if !old.is_some_and(|old| same_structure(&old, &value)) {
            self.bump();
        }
        Ok(())
    }

    /// Whether `key` may be set on this node: an existing key may be replaced, and a new one
    /// must fit the node's kind ([`new_key_error`]).
    pub(crate) fn check_key(&self, key: &Key) -> Result<()> {
        if read(&self.0.children).contains_key(key) {
            return Ok(());
        }
        match new_key_error(self.kind(), key, self.len()) {
            None => Ok(()),
            Some(why) => Err(Error::StructureMismatch(why)),
        }
    }

    pub(crate) fn remove(&self, key: &Key) -> Result<Option<Value>> {
        self.check_can_mutate()?;
        let removed = write(&self.0.children).shift_remove(key);
        if removed.is_some() {
            self.bump();
        }
        Ok(removed)
    }

    /// Replaces all children at once, without the trace-level check: for building nodes
    /// that are being created (merge) and for write-back by transforms.
    ///
    /// # Errors
    /// [`Error::StructureMismatch`] when the keys do not fit the node's kind (an object's
    /// must be strings, a list's exactly `0..len` in order); nothing is changed then.
    pub(crate) fn replace_children(&self, children: Vec<(Key, Value)>) -> Result<()> {
        check_children_keys(self.kind(), &children)?;
        *write(&self.0.children) = children.into_iter().collect();
        self.bump();
        Ok(())
    }

    fn available_names(&self) -> Vec<String> {
        read(&self.0.children)
            .keys()
            .map(|k| match k {
                Key::Str(s) => s.clone(),
                Key::Int(i) => i.to_string(),
            })
            .collect()
    }
}

/// A handle to a node that does not keep it alive (what a cache remembers).
pub(crate) struct WeakNode(Weak<NodeCell>);

impl WeakNode {
    /// The node's identity and structure version, if it still exists.
    pub(crate) fn version(&self) -> Option<(NodeId, u64)> {
        self.0
            .upgrade()
            .map(|cell| (cell.id, cell.version.load(Ordering::Acquire)))
    }
}

/// The children map of a node being dropped (no other handle exists, so no lock is needed).
fn children_mut(children: &mut RwLock<IndexMap<Key, Value>>) -> &mut IndexMap<Key, Value> {
    children
        .get_mut()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether replacing `old` by `new` keeps a node's structure: arrays replaced by arrays
/// (their shapes and dtypes are checked separately, as abstract values), the same node or
/// Variable handle, an equal static, and tuples and maps of such.
fn same_structure(old: &Value, new: &Value) -> bool {
    match (old, new) {
        (Value::Array(_), Value::Array(_)) => true,
        (Value::Variable(a), Value::Variable(b)) => a.ptr_eq(b),
        (Value::Static(a), Value::Static(b)) => a == b,
        (Value::Tuple(a), Value::Tuple(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_structure(a, b))
        }
        (Value::Map(a), Value::Map(b)) => {
            a.len() == b.len()
                && (a.iter().zip(b)).all(|((ka, a), (kb, b))| ka == kb && same_structure(a, b))
        }
        (a, b) => match (node_of(a), node_of(b)) {
            (Some(a), Some(b)) => a.ptr_eq(b),
            _ => false,
        },
    }
}

/// Why `key` cannot be added to a node of `kind` that has `len` children, or `None` when it
/// can: the one rule every way of adding children follows. An object's keys are attribute
/// names (strings); a list's keys are exactly `0..len`, so the only new key is `len` (an
/// append); a dict takes any key.
pub(crate) fn new_key_error(kind: &NodeKind, key: &Key, len: usize) -> Option<String> {
    match (kind, key) {
        (NodeKind::Object(_), Key::Str(_)) | (NodeKind::Dict, _) => None,
        (NodeKind::Object(name), Key::Int(i)) => Some(format!(
            "a '{name}' object has attributes named by strings, not the integer key {i}"
        )),
        (NodeKind::List, Key::Str(s)) => Some(format!(
            "a List is indexed by integers, not by the key {}",
            Key::Str(s.clone())
        )),
        (NodeKind::List, Key::Int(i)) if usize::try_from(*i) == Ok(len) => None,
        (NodeKind::List, Key::Int(i)) => Some(format!(
            "index {i} is out of range for a List of length {len} (elements 0..{len} can be \
             replaced, and index {len} appends)"
        )),
    }
}

/// Whether `children` is a valid set of children for a node of `kind`, added in order to an
/// empty node ([`new_key_error`]): an object's keys are strings, a list's are `0..len` in
/// order.
pub(crate) fn check_children_keys(kind: &NodeKind, children: &[(Key, Value)]) -> Result<()> {
    for (position, (key, _)) in children.iter().enumerate() {
        if let Some(why) = new_key_error(kind, key, position) {
            return Err(Error::StructureMismatch(why));
        }
    }
    Ok(())
}

/// An object with a type name and dynamic attributes: a Module (`nnx.Module`), `Rngs`, an
/// optimizer, … Attributes can be added, replaced and deleted at any time.
///
/// `Object` is a handle: clones share the object (reference semantics), and shared
/// references and cycles are preserved by `split`/`merge` and by every transform.
///
/// ```
/// use nnx_core::{Object, Param, Tensor, static_list};
/// # fn main() -> nnx_core::Result<()> {
/// let w = Object::new("Weights")
///     .with("kernel", Param::new(Tensor::zeros(&[2, 3])))?
///     .with("name", "dense")?;
/// w.set("tags", static_list!["a", 2, false])?;
/// w.set("alias", w.get("kernel")?)?;              // share the Param
/// assert!(w.var("alias")?.ptr_eq(&w.var("kernel")?));
/// w.del("name")?;
/// assert_eq!(w.attribute_names(), vec!["kernel", "tags", "alias"]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Object(pub(crate) Node);

/// A Module is an [`Object`]; the alias reads better where Flax would say `nnx.Module`.
pub type Module = Object;

impl Object {
    /// A new object of the given type name with no attributes.
    pub fn new(type_name: &str) -> Object {
        Object(Node::new(NodeKind::Object(Arc::from(type_name))))
    }

    /// Builder form of [`Object::set`].
    ///
    /// # Errors
    /// As [`Object::set`].
    pub fn with(self, name: &str, value: impl Into<Value>) -> Result<Object> {
        self.set(name, value)?;
        Ok(self)
    }

    /// The object's type name.
    pub fn type_name(&self) -> &str {
        self.0.kind().type_name()
    }

    /// The object's identity.
    pub fn id(&self) -> NodeId {
        self.0.id()
    }

    /// Whether two handles refer to the same object (Python's `is`).
    pub fn ptr_eq(&self, other: &Object) -> bool {
        self.0.ptr_eq(&other.0)
    }

    /// Sets attribute `name`, adding it or replacing its value in place.
    ///
    /// # Errors
    /// [`Error::TraceContext`] when called from a trace level that does not own the object.
    pub fn set(&self, name: &str, value: impl Into<Value>) -> Result<()> {
        self.0.set(Key::from(name), value.into())
    }

    /// The value of attribute `name`.
    ///
    /// # Errors
    /// [`Error::AttributeNotFound`] listing the attributes that exist.
    pub fn get(&self, name: &str) -> Result<Value> {
        self.0
            .get(&Key::from(name))
            .ok_or_else(|| self.not_found(name))
    }

    /// Whether attribute `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.0.get(&Key::from(name)).is_some()
    }

    /// Deletes attribute `name`, returning its value.
    ///
    /// # Errors
    /// [`Error::AttributeNotFound`], or [`Error::TraceContext`] as for [`Object::set`].
    pub fn del(&self, name: &str) -> Result<Value> {
        self.0
            .remove(&Key::from(name))?
            .ok_or_else(|| self.not_found(name))
    }

    /// Attribute names in insertion order (Flax's `vars(obj)` order).
    pub fn attribute_names(&self) -> Vec<String> {
        self.0.available_names()
    }

    /// Attributes in insertion order.
    pub fn attributes(&self) -> Vec<(String, Value)> {
        self.0
            .children()
            .into_iter()
            .filter_map(|(k, v)| match k {
                Key::Str(s) => Some((s, v)),
                Key::Int(_) => None,
            })
            .collect()
    }

    /// The Variable held by attribute `name`.
    ///
    /// # Errors
    /// [`Error::AttributeNotFound`], or [`Error::AttributeType`] when it holds something else.
    pub fn var(&self, name: &str) -> Result<Variable> {
        match self.get(name)? {
            Value::Variable(v) => Ok(v),
            other => Err(self.wrong_type(name, "a Variable", &other)),
        }
    }

    /// The array held by attribute `name`: a Variable's value or a raw array attribute.
    ///
    /// # Errors
    /// [`Error::AttributeNotFound`], or [`Error::AttributeType`] when it holds neither.
    pub fn value(&self, name: &str) -> Result<Tensor> {
        match self.get(name)? {
            Value::Variable(v) => Ok(v.value()),
            Value::Array(t) => Ok(t),
            other => Err(self.wrong_type(name, "a Variable or an array", &other)),
        }
    }

    /// The object held by attribute `name`.
    ///
    /// # Errors
    /// [`Error::AttributeNotFound`], or [`Error::AttributeType`] when it holds something else.
    pub fn object(&self, name: &str) -> Result<Object> {
        match self.get(name)? {
            Value::Object(o) => Ok(o),
            other => Err(self.wrong_type(name, "an object", &other)),
        }
    }

    /// The list held by attribute `name`.
    ///
    /// # Errors
    /// [`Error::AttributeNotFound`], or [`Error::AttributeType`] when it holds something else.
    pub fn list(&self, name: &str) -> Result<List> {
        match self.get(name)? {
            Value::List(l) => Ok(l),
            other => Err(self.wrong_type(name, "a List", &other)),
        }
    }

    /// The dict held by attribute `name`.
    ///
    /// # Errors
    /// [`Error::AttributeNotFound`], or [`Error::AttributeType`] when it holds something else.
    pub fn dict(&self, name: &str) -> Result<Dict> {
        match self.get(name)? {
            Value::Dict(d) => Ok(d),
            other => Err(self.wrong_type(name, "a Dict", &other)),
        }
    }

    fn not_found(&self, name: &str) -> Error {
        Error::AttributeNotFound {
            type_name: self.type_name().to_owned(),
            name: name.to_owned(),
            available: self.attribute_names(),
        }
    }

    fn wrong_type(&self, name: &str, expected: &'static str, found: &Value) -> Error {
        Error::AttributeType {
            type_name: self.type_name().to_owned(),
            name: name.to_owned(),
            expected,
            found: found.kind_name(),
        }
    }
}

/// A mutable list with identity (`nnx.List`): elements may be Variables, objects, arrays,
/// containers or statics. Two attributes holding the same `List` keep sharing it through
/// every graph operation (unlike plain Python lists in Flax).
#[derive(Clone)]
pub struct List(pub(crate) Node);

impl List {
    /// A list holding `items`.
    pub fn new(items: impl IntoIterator<Item = Value>) -> List {
        List(Node::with_children(
            NodeKind::List,
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Key::from(i), v))
                .collect(),
        ))
    }

    /// The list's identity.
    pub fn id(&self) -> NodeId {
        self.0.id()
    }

    /// Whether two handles refer to the same list.
    pub fn ptr_eq(&self, other: &List) -> bool {
        self.0.ptr_eq(&other.0)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element at `index`.
    ///
    /// # Errors
    /// [`Error::ContainerIndex`] when `index >= len`.
    pub fn get(&self, index: usize) -> Result<Value> {
        self.0.get(&Key::from(index)).ok_or(Error::ContainerIndex {
            container: "List",
            index,
            len: self.len(),
        })
    }

    /// Replaces the element at `index`.
    ///
    /// # Errors
    /// [`Error::ContainerIndex`] when `index >= len`; [`Error::TraceContext`].
    pub fn set(&self, index: usize, value: impl Into<Value>) -> Result<()> {
        self.get(index)?;
        self.0.set(Key::from(index), value.into())
    }

    /// Appends an element.
    ///
    /// # Errors
    /// [`Error::TraceContext`] when called from a trace level that does not own the list.
    pub fn push(&self, value: impl Into<Value>) -> Result<()> {
        self.0.set(Key::from(self.len()), value.into())
    }

    /// Removes and returns the last element (`None` when empty).
    ///
    /// # Errors
    /// [`Error::TraceContext`] when called from a trace level that does not own the list.
    pub fn pop(&self) -> Result<Option<Value>> {
        match self.len() {
            0 => Ok(None),
            n => self.0.remove(&Key::from(n - 1)),
        }
    }

    /// The elements in order.
    pub fn items(&self) -> Vec<Value> {
        self.0
            .sorted_children()
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }
}

/// A mutable dict with identity (`nnx.Dict`), keyed by strings or integers.
#[derive(Clone)]
pub struct Dict(pub(crate) Node);

impl Dict {
    /// An empty dict.
    pub fn new() -> Dict {
        Dict(Node::new(NodeKind::Dict))
    }

    /// Builder form of [`Dict::insert`].
    ///
    /// # Errors
    /// As [`Dict::insert`].
    pub fn with(self, key: impl Into<Key>, value: impl Into<Value>) -> Result<Dict> {
        self.insert(key, value)?;
        Ok(self)
    }

    /// The dict's identity.
    pub fn id(&self) -> NodeId {
        self.0.id()
    }

    /// Whether two handles refer to the same dict.
    pub fn ptr_eq(&self, other: &Dict) -> bool {
        self.0.ptr_eq(&other.0)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the dict is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts or replaces an entry.
    ///
    /// # Errors
    /// [`Error::TraceContext`] when called from a trace level that does not own the dict.
    pub fn insert(&self, key: impl Into<Key>, value: impl Into<Value>) -> Result<()> {
        self.0.set(key.into(), value.into())
    }

    /// The value at `key`.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] listing the keys present.
    pub fn get(&self, key: impl Into<Key>) -> Result<Value> {
        let key = key.into();
        self.0.get(&key).ok_or_else(|| Error::KeyNotFound {
            container: "Dict",
            key: key.to_string(),
            available: self
                .0
                .children()
                .iter()
                .map(|(k, _)| k.to_string())
                .collect(),
        })
    }

    /// Removes an entry, returning its value if it was present.
    ///
    /// # Errors
    /// [`Error::TraceContext`] when called from a trace level that does not own the dict.
    pub fn remove(&self, key: impl Into<Key>) -> Result<Option<Value>> {
        self.0.remove(&key.into())
    }

    /// Entries in insertion order.
    pub fn entries(&self) -> Vec<(Key, Value)> {
        self.0.children()
    }
}

impl Default for Dict {
    fn default() -> Dict {
        Dict::new()
    }
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.type_name(), self.id().0)
    }
}

impl fmt::Debug for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "List#{}", self.id().0)
    }
}

impl fmt::Debug for Dict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dict#{}", self.id().0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Param;

    #[test]
    fn attributes_are_dynamic_and_ordered() {
        let o = Object::new("M").with("z", 1).unwrap().with("a", 2).unwrap();
        o.set("z", 3).unwrap();
        assert_eq!(o.attribute_names(), vec!["z", "a"]);
        o.del("z").unwrap();
        assert!(!o.has("z"));
        let err = o.get("z").unwrap_err();
        assert_eq!(
            err.to_string(),
            "'M' object has no attribute 'z' (it has: a)"
        );
    }

    #[test]
    fn wrong_attribute_kind_is_an_error() {
        let o = Object::new("M").with("n", "x").unwrap();
        let err = o.var("n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "attribute 'n' of 'M' is the static value 'x', not a Variable"
        );
    }

    #[test]
    fn lists_and_dicts_share_on_clone() {
        let l = List::new([Value::from(Param::new(Tensor::zeros([1])))]);
        let alias = l.clone();
        alias.push(5).unwrap();
        assert_eq!(l.len(), 2);
        assert!(l.get(2).is_err());
        assert_eq!(
            l.pop().unwrap().and_then(|v| v.as_static().cloned()),
            Some(5.into())
        );
        let d = Dict::new().with("a", 1).unwrap();
        assert!(d.get("b").is_err());
    }

    #[test]
    fn nodes_only_take_keys_of_their_kind() {
        let l = List::new([Value::from(1), Value::from(2)]);
        assert!(l.0.set(Key::Int(2), 3.into()).is_ok()); // an append
        for bad in [Key::Int(4), Key::Int(-1), Key::from("x")] {
            assert!(l.0.set(bad, 0.into()).is_err());
        }
        assert_eq!(l.len(), 3);
        assert!(l.get(2).is_ok());
        let err =
            l.0.replace_children(vec![(Key::Int(0), 1.into()), (Key::Int(2), 2.into())])
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "index 2 is out of range for a List of length 1 (elements 0..1 can be replaced, and \
             index 1 appends)"
        );
        assert_eq!(l.len(), 3);
        let o = Object::new("M");
        assert!(o.0.set(Key::Int(7), 1.into()).is_err());
        assert!(o.0.replace_children(vec![(Key::Int(0), 1.into())]).is_err());
        assert!(o.attribute_names().is_empty());
        let d = Dict::new();
        assert!(d.0.set(Key::Int(7), 1.into()).is_ok());
        assert!(d.0.set(Key::from("a"), 1.into()).is_ok());
    }

    #[test]
    fn captured_objects_cannot_be_mutated_from_an_inner_level() {
        let o = Object::new("Counter");
        let _inner = crate::trace::enter_level();
        let err = o.set("x", 1).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Cannot mutate Counter from a different trace level")
        );
        assert!(o.get("x").is_err()); // reading is allowed (and the attribute was not added)
    }
}
