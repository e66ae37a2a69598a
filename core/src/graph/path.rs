//! Keys of graph children and paths made of them.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::error::{Error, Result};

/// The key of a child in a graph node: an attribute or dict key (`Str`) or a list or tuple
/// position (`Int`). Keys sort integers first, then strings by code point, which is the order
/// Flax traverses children in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// A list or tuple position.
    Int(i64),
    /// An attribute name or a dict key.
    Str(String),
}

impl fmt::Display for Key {
    /// Python repr: `'name'` or `3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Int(i) => write!(f, "{i}"),
            Key::Str(s) => write!(f, "{}", python_str_repr(s)),
        }
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Key {
        Key::Str(s.to_owned())
    }
}

impl From<String> for Key {
    fn from(s: String) -> Key {
        Key::Str(s)
    }
}

impl From<&String> for Key {
    fn from(s: &String) -> Key {
        Key::Str(s.clone())
    }
}

impl From<i64> for Key {
    fn from(i: i64) -> Key {
        Key::Int(i)
    }
}

impl From<usize> for Key {
    fn from(i: usize) -> Key {
        Key::Int(i as i64)
    }
}

impl From<i32> for Key {
    fn from(i: i32) -> Key {
        Key::Int(i as i64)
    }
}

/// A path from a root to a value in a graph: the keys followed, in order.
///
/// Displays as a Python tuple (`('sub', 'kernel')`); [`Path::slashed`] gives the
/// `sub/kernel` form used in aliasing reports.
///
/// A path is a persistent list: a shared pointer to its last key and its parent path, so
/// [`Path::child`] is O(1) and the paths of a traversal share their common prefixes (a graph
/// of `n` nodes has paths of total size O(n), whatever its depth). Each path caches its
/// length and a hash of its keys: hashing is O(1), and comparing two paths stops at their
/// deepest shared ancestor (or where the cached hashes already tell them apart), so sorting
/// the leaf paths of one traversal is linear in practice. Every operation, including drop,
/// is iterative.
#[derive(Clone, Default)]
pub struct Path(Option<Arc<PathNode>>);

struct PathNode {
    parent: Path,
    key: Key,
    len: usize,
    hash: u64,
    /// An ancestor for O(log len) level-ancestor queries (Myers' skew-binary jump
    /// pointers: its length depends only on this node's length).
    jump: Path,
}

impl Path {
    /// The empty path (the root itself).
    pub fn root() -> Path {
        Path(None)
    }

    /// The keys of the path, from the root.
    pub fn keys(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = self.nodes().map(|n| n.key.clone()).collect();
        keys.reverse();
        keys
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |n| n.len)
    }

    /// Whether this is the root path.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// This path extended by one key (O(1): the new path shares this one).
    pub fn child(&self, key: impl Into<Key>) -> Path {
        let key = key.into();
        let hash = extend_hash(self.cached_hash(), &key);
        let jump = match &self.0 {
            Some(parent) => match &parent.jump.0 {
                Some(j) if parent.len - j.len == j.len - j.jump.len() => j.jump.clone(),
                _ => self.clone(),
            },
            None => Path::root(),
        };
        Path(Some(Arc::new(PathNode {
            parent: self.clone(),
            key,
            len: self.len() + 1,
            hash,
            jump,
        })))
    }

    /// Appends a key in place.
    pub fn push(&mut self, key: impl Into<Key>) {
        *self = self.child(key);
    }

    /// Removes the last key.
    pub fn pop(&mut self) -> Option<Key> {
        let node = self.0.as_ref()?;
        let key = node.key.clone();
        let parent = node.parent.clone();
        *self = parent;
        Some(key)
    }

    /// The path without its last key (`None` for the root).
    pub fn parent(&self) -> Option<&Path> {
        self.0.as_ref().map(|n| &n.parent)
    }

    /// The last key, if any.
    pub fn last(&self) -> Option<&Key> {
        self.0.as_ref().map(|n| &n.key)
    }

    /// The prefix of this path with `n` keys (the whole path if `n >= len`).
    pub fn ancestor(&self, n: usize) -> &Path {
        let mut p = self;
        while let Some(node) = &p.0 {
            if node.len <= n {
                break;
            }
            p = if node.jump.len() >= n {
                &node.jump
            } else {
                &node.parent
            };
        }
        p
    }

    /// The keys at positions `start..len`.
    pub(crate) fn keys_from(&self, start: usize) -> Vec<Key> {
        let mut keys: Vec<Key> = self
            .nodes()
            .take_while(|n| n.len > start)
            .map(|n| n.key.clone())
            .collect();
        keys.reverse();
        keys
    }

    /// The length of the longest common prefix of two paths, and their order.
    ///
    /// The paths are brought to the same length and their deepest shared ancestor is found
    /// with the jump pointers (O(log len)); below it, the keys decide. Only paths that are
    /// equal over a stretch without sharing nodes (built separately) need a walk over that
    /// stretch.
    pub(crate) fn compare(&self, other: &Path) -> (usize, Ordering) {
        let n = self.len().min(other.len());
        let tie = self.len().cmp(&other.len());
        let (a0, b0) = (self.ancestor(n), other.ancestor(n));
        // The deepest shared node, and the nodes just below it on each side.
        let (mut a, mut b) = (a0, b0);
        let mut below: Option<(&PathNode, &PathNode)> = None;
        while !a.ptr_eq(b) {
            let (Some(x), Some(y)) = (&a.0, &b.0) else {
                break;
            };
            if !x.jump.ptr_eq(&y.jump) {
                (a, b) = (&x.jump, &y.jump);
                below = None;
            } else {
                below = Some((x, y));
                (a, b) = (&x.parent, &y.parent);
            }
        }
        let Some((x, y)) = below else {
            // Equal up to `n` (a0 and b0 are the same node).
            return (n, tie);
        };
        let shared = a.len();
        if x.key != y.key {
            return (shared, x.key.cmp(&y.key));
        }
        // Equal keys in separate nodes: walk the stretch, remembering the highest difference.
        let mut decided: Option<(usize, Ordering)> = None;
        let (mut p, mut q) = (a0, b0);
        while p.len() > shared {
            let (Some(x), Some(y)) = (&p.0, &q.0) else {
                break;
            };
            let c = x.key.cmp(&y.key);
            if c != Ordering::Equal {
                decided = Some((x.len - 1, c));
            }
            (p, q) = (&x.parent, &y.parent);
        }
        match decided {
            Some((common, c)) => (common, c),
            None => (n, tie),
        }
    }

    /// Whether `prefix` is a prefix of this path.
    pub fn starts_with(&self, prefix: &Path) -> bool {
        prefix.len() <= self.len() && self.ancestor(prefix.len()) == prefix
    }

    /// Whether some key of the path satisfies `f` (walks from the last key up).
    pub fn any_key(&self, mut f: impl FnMut(&Key) -> bool) -> bool {
        self.nodes().any(|n| f(&n.key))
    }

    /// The path without its first `n` keys.
    pub fn strip_prefix_len(&self, n: usize) -> Path {
        self.keys().into_iter().skip(n).collect()
    }

    /// The keys joined by `/` (`sub/kernel`), Flax's flat form (`'/'.join` of a flat
    /// state's keys, the keys of a checkpoint); `<root>` for the empty path. [`Path::parse`]
    /// reads it back.
    ///
    /// ```
    /// use nnx_core::Path;
    /// let path = Path::from(["layers"]).child(0).child("kernel");
    /// assert_eq!(path.slashed(), "layers/0/kernel");
    /// assert_eq!(Path::parse("layers/0/kernel")?, path);
    /// assert_eq!("layers/0/kernel".parse::<Path>()?, path);
    /// # Ok::<(), nnx_core::Error>(())
    /// ```
    pub fn slashed(&self) -> String {
        if self.is_empty() {
            return "<root>".to_owned();
        }
        let parts: Vec<String> = self
            .keys()
            .iter()
            .map(|k| match k {
                Key::Int(i) => i.to_string(),
                Key::Str(s) => s.clone(),
            })
            .collect();
        parts.join("/")
    }

    /// The nodes from the last key up to the first.
    fn nodes(&self) -> impl Iterator<Item = &PathNode> {
        let mut current = self.0.as_deref();
        std::iter::from_fn(move || {
            let node = current?;
            current = node.parent.0.as_deref();
            Some(node)
        })
    }

    /// The address of the path's last node (its identity while the path is alive).
    pub(crate) fn node_addr(&self) -> Option<usize> {
        self.0.as_ref().map(|n| Arc::as_ptr(n) as usize)
    }

    fn cached_hash(&self) -> u64 {
        self.0.as_ref().map_or(0, |n| n.hash)
    }

    fn ptr_eq(&self, other: &Path) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Drop for Path {
    /// Iterative: a long path whose nodes are owned only by it is freed without recursion.
    /// Dropping a handle to a node that others still hold (the common case) only decrements
    /// its count, without allocating.
    fn drop(&mut self) {
        // Nodes owned only by this path: the next one to free, and any others (a node's
        // parent and jump target can both be unique).
        let mut next = self.0.take().and_then(Arc::into_inner);
        let mut more: Vec<PathNode> = Vec::new();
        while let Some(mut node) = next.take().or_else(|| more.pop()) {
            for link in [node.parent.0.take(), node.jump.0.take()] {
                if let Some(inner) = link.and_then(Arc::into_inner) {
                    match next {
                        None => next = Some(inner),
                        Some(_) => more.push(inner),
                    }
                }
            }
        }
    }
}

/// The hash of a path extended by `key`, from its parent's hash: a cheap multiplicative mix
/// (paths are hashed once, when built; hash maps rehash the result).
fn extend_hash(parent: u64, key: &Key) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(K);
    match key {
        Key::Int(i) => mix(mix(parent, 1), *i as u64),
        Key::Str(s) => {
            let mut h = mix(parent, 2);
            for chunk in s.as_bytes().chunks(8) {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                h = mix(h, u64::from_le_bytes(word));
            }
            mix(h, s.len() as u64)
        }
    }
}

impl PartialEq for Path {
    fn eq(&self, other: &Path) -> bool {
        if self.len() != other.len() || self.cached_hash() != other.cached_hash() {
            return false;
        }
        let (mut a, mut b) = (self, other);
        while !a.ptr_eq(b) {
            match (&a.0, &b.0) {
                (Some(x), Some(y)) if x.key == y.key => {
                    a = &x.parent;
                    b = &y.parent;
                }
                _ => return false,
            }
        }
        true
    }
}

impl Eq for Path {}

impl Hash for Path {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.cached_hash());
    }
}

impl Ord for Path {
    /// Lexicographic on the keys (a prefix sorts first). Comparing paths that share
    /// structure is O(log depth) (see the type's docs).
    fn cmp(&self, other: &Path) -> Ordering {
        self.compare(other).1
    }
}

impl PartialOrd for Path {
    fn partial_cmp(&self, other: &Path) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Path").field(&self.keys()).finish()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.keys().iter().map(Key::to_string).collect();
        match parts.as_slice() {
            [one] => write!(f, "({one},)"),
            _ => write!(f, "({})", parts.join(", ")),
        }
    }
}

impl Path {
    /// Parses Flax's flat form `layers/0/kernel`: keys separated by `/`, a key of decimal
    /// digits (with an optional `-`) is a list index, any other key a name. The empty string
    /// and `<root>` are the root path.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] for an empty key (`a//b`, a leading or trailing `/`).
    pub fn parse(text: &str) -> Result<Path> {
        if text.is_empty() || text == "<root>" {
            return Ok(Path::root());
        }
        text.split('/')
            .map(|part| {
                if part.is_empty() {
                    return Err(Error::InvalidPath {
                        text: text.to_owned(),
                        why: "a key is empty".to_owned(),
                    });
                }
                let digits = part.strip_prefix('-').unwrap_or(part);
                let numeric = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
                Ok(match part.parse::<i64>() {
                    Ok(i) if numeric => Key::Int(i),
                    _ => Key::Str(part.to_owned()),
                })
            })
            .collect::<Result<Vec<Key>>>()
            .map(Path::from)
    }
}

impl std::str::FromStr for Path {
    type Err = Error;

    /// As [`Path::parse`].
    fn from_str(text: &str) -> Result<Path> {
        Path::parse(text)
    }
}

impl<K: Into<Key>> FromIterator<K> for Path {
    fn from_iter<I: IntoIterator<Item = K>>(iter: I) -> Path {
        let mut path = Path::root();
        for key in iter {
            path.push(key);
        }
        path
    }
}

impl<K: Into<Key>, const N: usize> From<[K; N]> for Path {
    fn from(keys: [K; N]) -> Path {
        keys.into_iter().collect()
    }
}

impl From<Vec<Key>> for Path {
    fn from(keys: Vec<Key>) -> Path {
        keys.into_iter().collect()
    }
}

/// Compares paths from two sequences position by position (a GraphDef's leaf paths with a
/// State's), in time linear in the total number of path nodes on each side, even though
/// the two sides share no nodes: it remembers which node of one side equals which node of
/// the other, so each comparison stops at the deepest ancestors already known equal.
#[derive(Default)]
pub(crate) struct PathMatcher {
    /// Node address on the left → node address on the right it is known equal to.
    known: std::collections::HashMap<usize, usize>,
    /// The paths whose nodes (they and their ancestors) those addresses are, kept alive so
    /// that no address can be reused for another node while the matcher remembers it.
    pinned: Vec<Path>,
}

impl PathMatcher {
    /// Whether `a == b`.
    pub(crate) fn same(&mut self, a: &Path, b: &Path) -> bool {
        if a.len() != b.len() || a.cached_hash() != b.cached_hash() {
            return false;
        }
        let mut pairs = Vec::new();
        let (mut x, mut y) = (a, b);
        loop {
            match (&x.0, &y.0) {
                (None, None) => break,
                (Some(p), Some(q)) => {
                    let (pa, qa) = (Arc::as_ptr(p) as usize, Arc::as_ptr(q) as usize);
                    if pa == qa || self.known.get(&pa) == Some(&qa) {
                        break;
                    }
                    if p.key != q.key {
                        return false;
                    }
                    pairs.push((pa, qa));
                    x = &p.parent;
                    y = &q.parent;
                }
                _ => return false,
            }
        }
        if !pairs.is_empty() {
            self.pinned.push(a.clone());
            self.pinned.push(b.clone());
        }
        self.known.extend(pairs);
        true
    }
}

/// Re-roots paths that start with a common prefix of `prefix_len` keys: `rebase(p)` is `p`
/// without its first `prefix_len` keys. The results share their nodes as the inputs do
/// (each input node is re-rooted once, remembered by address), so re-rooting all the leaf
/// paths of a traversal is linear in their shared size.
pub(crate) struct Rebaser {
    prefix_len: usize,
    /// Input node address → its re-rooted path, with the input node kept alive (so the
    /// address cannot be reused for another node).
    done: std::collections::HashMap<usize, (Path, Path)>,
}

impl Rebaser {
    /// Strips the first `prefix_len` keys.
    pub(crate) fn new(prefix_len: usize) -> Rebaser {
        Rebaser {
            prefix_len,
            done: std::collections::HashMap::new(),
        }
    }

    /// `path` without its first `prefix_len` keys (the root if it is not longer).
    pub(crate) fn rebase(&mut self, path: &Path) -> Path {
        let mut pending: Vec<&Path> = Vec::new();
        let mut p = path;
        let mut base = loop {
            if p.len() <= self.prefix_len {
                break Path::root();
            }
            if let Some((done, _)) = p.node_addr().and_then(|a| self.done.get(&a)) {
                break done.clone();
            }
            pending.push(p);
            match p.parent() {
                Some(parent) => p = parent,
                None => break Path::root(),
            }
        };
        for p in pending.into_iter().rev() {
            if let Some(key) = p.last() {
                base = base.child(key.clone());
            }
            if let Some(addr) = p.node_addr() {
                self.done.insert(addr, (base.clone(), p.clone()));
            }
        }
        base
    }
}

/// Python's `repr` of a string: single quotes unless the string contains one and no double
/// quote, with backslash escapes.
pub(crate) fn python_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The number of leading keys two paths share, from their keys.
    fn common_prefix(x: &Path, y: &Path) -> usize {
        x.keys()
            .iter()
            .zip(y.keys())
            .take_while(|(a, b)| **a == *b)
            .count()
    }

    #[test]
    fn keys_sort_ints_then_strings_by_code_point() {
        let mut keys = vec![
            Key::from("a"),
            Key::from(1i64),
            Key::from("B"),
            Key::from(0i64),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![Key::Int(0), Key::Int(1), Key::from("B"), Key::from("a")]
        );
    }

    #[test]
    fn paths_print_as_python_tuples() {
        assert_eq!(
            Path::from(["lst"]).child(0usize).child("w").to_string(),
            "('lst', 0, 'w')"
        );
        assert_eq!(Path::from(["a"]).to_string(), "('a',)");
        assert_eq!(Path::root().to_string(), "()");
        assert_eq!(Path::from(["a", "b"]).slashed(), "a/b");
    }

    #[test]
    fn comparisons_are_lexicographic_whether_or_not_paths_share_nodes() {
        let shared = Path::from(["a", "b"]);
        let paths = [
            Path::root(),
            Path::from([0i64]),
            Path::from(["a"]),
            shared.clone(),
            shared.child(0usize),
            shared.child("c"),
            Path::from(["a", "c"]),
            Path::from(["b"]),
        ];
        for (i, x) in paths.iter().enumerate() {
            for (j, y) in paths.iter().enumerate() {
                assert_eq!(x.cmp(y), i.cmp(&j), "{x} vs {y}");
                assert_eq!(x.cmp(y), x.keys().cmp(&y.keys()));
                assert_eq!(x == y, i == j);
            }
        }
        assert_eq!(shared.child("c"), Path::from(["a", "b", "c"]));
        assert!(shared.child("c").starts_with(&Path::from(["a"])));
        assert!(!shared.starts_with(&Path::from(["b"])));
        assert_eq!(
            shared.child("c").strip_prefix_len(1),
            Path::from(["b", "c"])
        );
        for (i, x) in paths.iter().enumerate() {
            for y in &paths[i..] {
                assert_eq!(x.compare(y).0, common_prefix(x, y), "{x} vs {y}");
            }
        }
        let mut p = shared.clone();
        assert_eq!(p.pop(), Some(Key::from("b")));
        assert_eq!(p, Path::from(["a"]));
    }

    #[test]
    fn deep_shared_and_separate_paths_compare_like_their_keys() {
        let base: Path = (0..1000i64).collect();
        let mut deep = vec![base.clone()];
        for i in 0..300i64 {
            let p = deep[deep.len() / 2].child(i % 7);
            deep.push(p);
        }
        // Built separately, no shared nodes.
        let separate: Vec<Path> = deep.iter().map(|p| Path::from(p.keys())).collect();
        for (i, x) in deep.iter().enumerate().step_by(7) {
            for (j, y) in separate.iter().enumerate().step_by(5) {
                let expected = x.keys().cmp(&y.keys());
                assert_eq!(x.cmp(y), expected, "{i} vs {j}");
                assert_eq!(x.cmp(&deep[j]), expected, "{i} vs {j}");
                let common = common_prefix(x, y);
                assert_eq!(x.compare(&deep[j]).0, common);
                assert_eq!(x.compare(y).0, common);
            }
            assert_eq!(x.ancestor(500).keys(), x.keys()[..500].to_vec());
        }
    }

    fn key() -> impl proptest::strategy::Strategy<Value = Key> {
        use proptest::prelude::*;
        prop_oneof![
            (-2i64..3).prop_map(Key::Int),
            prop::sample::select(vec!["a", "b", "next"]).prop_map(Key::from),
        ]
    }

    proptest::proptest! {
        /// Paths order, compare and hash like their key sequences, whether they share
        /// nodes (built by extending one another) or not.
        #[test]
        fn paths_behave_like_their_keys(
            base in proptest::collection::vec(key(), 0..40),
            tails in proptest::collection::vec(
                (0usize..40, proptest::collection::vec(key(), 0..6)),
                1..12,
            ),
        ) {
            let base_path = Path::from(base.clone());
            let mut paths: Vec<(Vec<Key>, Path)> = Vec::new();
            for (cut, tail) in tails {
                let cut = cut.min(base.len());
                let mut keys = base[..cut].to_vec();
                keys.extend(tail.iter().cloned());
                let shared = tail
                    .iter()
                    .fold(base_path.ancestor(cut).clone(), |p, k| p.child(k.clone()));
                paths.push((keys.clone(), shared));
                paths.push((keys.clone(), Path::from(keys)));
            }
            for (ka, a) in &paths {
                proptest::prop_assert_eq!(&a.keys(), ka);
                for (kb, b) in &paths {
                    proptest::prop_assert_eq!(a.cmp(b), ka.cmp(kb));
                    proptest::prop_assert_eq!(a == b, ka == kb);
                    let common = ka.iter().zip(kb).take_while(|(x, y)| x == y).count();
                    proptest::prop_assert_eq!(a.compare(b).0, common);
                    proptest::prop_assert_eq!(a.starts_with(b), ka.starts_with(kb));
                    if a == b {
                        let hash = |p: &Path| {
                            let mut h = std::hash::DefaultHasher::new();
                            p.hash(&mut h);
                            h.finish()
                        };
                        proptest::prop_assert_eq!(hash(a), hash(b));
                    }
                }
            }
        }
    }

    #[test]
    fn a_million_keys_deep_path_drops_without_recursion() {
        let mut p = Path::root();
        for _ in 0..1_000_000 {
            p.push("next");
        }
        assert_eq!(p.len(), 1_000_000);
        drop(p);
    }

    #[test]
    fn string_repr_matches_python() {
        assert_eq!(python_str_repr("relu"), "'relu'");
        assert_eq!(python_str_repr("it's"), "\"it's\"");
    }
}
