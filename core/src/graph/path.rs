//! Keys of graph children and paths made of them.

use std::fmt;

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
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path(Vec<Key>);

impl Path {
    /// The empty path (the root itself).
    pub fn root() -> Path {
        Path(Vec::new())
    }

    /// The keys of the path.
    pub fn keys(&self) -> &[Key] {
        &self.0
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether this is the root path.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// This path extended by one key.
    pub fn child(&self, key: impl Into<Key>) -> Path {
        let mut keys = self.0.clone();
        keys.push(key.into());
        Path(keys)
    }

    /// Appends a key in place.
    pub fn push(&mut self, key: impl Into<Key>) {
        self.0.push(key.into());
    }

    /// Removes the last key.
    pub fn pop(&mut self) -> Option<Key> {
        self.0.pop()
    }

    /// The last key, if any.
    pub fn last(&self) -> Option<&Key> {
        self.0.last()
    }

    /// Whether `prefix` is a prefix of this path.
    pub fn starts_with(&self, prefix: &Path) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// The path without its first `n` keys.
    pub fn strip_prefix_len(&self, n: usize) -> Path {
        Path(self.0[n.min(self.0.len())..].to_vec())
    }

    /// The keys joined by `/` (`sub/kernel`), `<root>` for the empty path.
    pub fn slashed(&self) -> String {
        if self.0.is_empty() {
            return "<root>".to_owned();
        }
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|k| match k {
                Key::Int(i) => i.to_string(),
                Key::Str(s) => s.clone(),
            })
            .collect();
        parts.join("/")
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(Key::to_string).collect();
        match parts.as_slice() {
            [one] => write!(f, "({one},)"),
            _ => write!(f, "({})", parts.join(", ")),
        }
    }
}

impl<K: Into<Key>> FromIterator<K> for Path {
    fn from_iter<I: IntoIterator<Item = K>>(iter: I) -> Path {
        Path(iter.into_iter().map(Into::into).collect())
    }
}

impl<K: Into<Key>, const N: usize> From<[K; N]> for Path {
    fn from(keys: [K; N]) -> Path {
        keys.into_iter().collect()
    }
}

impl From<Vec<Key>> for Path {
    fn from(keys: Vec<Key>) -> Path {
        Path(keys)
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
    fn string_repr_matches_python() {
        assert_eq!(python_str_repr("relu"), "'relu'");
        assert_eq!(python_str_repr("it's"), "\"it's\"");
    }
}
