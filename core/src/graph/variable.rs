//! Variables: mutable boxes with identity that hold a tensor and metadata.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};

use indexmap::IndexMap;

use super::node_id::NodeId;
use super::static_value::Static;
use super::sync::{read, write};
use crate::error::Result;
use crate::tensor::Tensor;
use crate::trace::{TraceLevel, check_can_mutate};

/// The static description of a variable type: its name and its parent type.
///
/// Types form a hierarchy rooted at [`VariableType::VARIABLE`]; filters on a type match its
/// subtypes. Define your own with [`variable_type!`](crate::variable_type).
#[derive(Debug)]
pub struct VariableTypeDef {
    name: &'static str,
    parent: Option<&'static VariableTypeDef>,
}

impl VariableTypeDef {
    /// A type named `name` deriving from `parent` (`None` only for the root).
    pub const fn new(
        name: &'static str,
        parent: Option<&'static VariableTypeDef>,
    ) -> VariableTypeDef {
        VariableTypeDef { name, parent }
    }
}

/// A variable type such as `Param` or a user-defined `Count`. Types have identity: two types
/// are equal only if they are the same definition (like Python classes).
#[derive(Clone, Copy)]
pub struct VariableType(&'static VariableTypeDef);

static VARIABLE_DEF: VariableTypeDef = VariableTypeDef::new("Variable", None);
static PARAM_DEF: VariableTypeDef = VariableTypeDef::new("Param", Some(&VARIABLE_DEF));
static BATCH_STAT_DEF: VariableTypeDef = VariableTypeDef::new("BatchStat", Some(&VARIABLE_DEF));
static CACHE_DEF: VariableTypeDef = VariableTypeDef::new("Cache", Some(&VARIABLE_DEF));
static INTERMEDIATE_DEF: VariableTypeDef =
    VariableTypeDef::new("Intermediate", Some(&VARIABLE_DEF));
static PERTURBATION_DEF: VariableTypeDef =
    VariableTypeDef::new("Perturbation", Some(&INTERMEDIATE_DEF));
static RNG_STATE_DEF: VariableTypeDef = VariableTypeDef::new("RngState", Some(&VARIABLE_DEF));
static RNG_KEY_DEF: VariableTypeDef = VariableTypeDef::new("RngKey", Some(&RNG_STATE_DEF));
static RNG_COUNT_DEF: VariableTypeDef = VariableTypeDef::new("RngCount", Some(&RNG_STATE_DEF));

impl VariableType {
    /// The root of the hierarchy (`nnx.Variable`).
    pub const VARIABLE: VariableType = VariableType(&VARIABLE_DEF);
    /// Trainable parameters (`nnx.Param`).
    pub const PARAM: VariableType = VariableType(&PARAM_DEF);
    /// Batch statistics (`nnx.BatchStat`).
    pub const BATCH_STAT: VariableType = VariableType(&BATCH_STAT_DEF);
    /// Caches (`nnx.Cache`).
    pub const CACHE: VariableType = VariableType(&CACHE_DEF);
    /// Intermediate values (`nnx.Intermediate`).
    pub const INTERMEDIATE: VariableType = VariableType(&INTERMEDIATE_DEF);
    /// Perturbations, a kind of intermediate (`nnx.Perturbation`).
    pub const PERTURBATION: VariableType = VariableType(&PERTURBATION_DEF);
    /// Base of the random-state types (`nnx.RngState`).
    pub const RNG_STATE: VariableType = VariableType(&RNG_STATE_DEF);
    /// A stream's key (`nnx.RngKey`).
    pub const RNG_KEY: VariableType = VariableType(&RNG_KEY_DEF);
    /// A stream's counter (`nnx.RngCount`).
    pub const RNG_COUNT: VariableType = VariableType(&RNG_COUNT_DEF);

    /// The type described by a static definition.
    pub const fn from_def(def: &'static VariableTypeDef) -> VariableType {
        VariableType(def)
    }

    /// The static definition (for deriving subtypes in `const` context).
    pub const fn def(self) -> &'static VariableTypeDef {
        self.0
    }

    /// The type's name (`"Param"`).
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The parent type, `None` for the root.
    pub fn parent(self) -> Option<VariableType> {
        self.0.parent.map(VariableType)
    }

    /// Whether `self` is `ancestor` or derives from it (Python's `issubclass`).
    pub fn is_subtype_of(self, ancestor: VariableType) -> bool {
        let mut current = Some(self);
        while let Some(t) = current {
            if t == ancestor {
                return true;
            }
            current = t.parent();
        }
        false
    }
}

impl PartialEq for VariableType {
    fn eq(&self, other: &VariableType) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for VariableType {}

impl std::hash::Hash for VariableType {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(self.0, state);
    }
}

impl fmt::Debug for VariableType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for VariableType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Defines a variable type, like `class Count(nnx.Variable): pass`: a typed handle to a
/// [`Variable`](crate::Variable) of that type, with a `TYPE` constant and a `new` constructor.
///
/// The handle dereferences to the `Variable` (every Variable method works on it), converts
/// into one with `From`, and is what a field of a `#[derive(Module)]` struct holds. Reading it
/// back from the graph accepts a Variable of the type or of a subtype.
///
/// ```
/// use nnx_core::{Param, Tensor, Variable, VariableType, variable_type};
/// variable_type!(
///     /// Counts calls.
///     pub Count: Variable
/// );
/// variable_type!(
///     /// A parameter that is frozen.
///     pub Frozen: Param
/// );
/// let c = Count::new(Tensor::arange(3));
/// assert_eq!(c.type_name(), "Count");
/// assert!(Frozen::TYPE.is_subtype_of(VariableType::PARAM));
/// let v: Variable = c.into();
/// assert!(v.is_instance(Count::TYPE));
/// ```
#[macro_export]
macro_rules! variable_type {
    ($(#[$meta:meta])* $vis:vis $name:ident : $parent:ty) => {
        $crate::__variable_handle!(
            $(#[$meta])* $vis $name,
            {
                static DEF: $crate::graph::VariableTypeDef = $crate::graph::VariableTypeDef::new(
                    stringify!($name),
                    Some(<$parent>::TYPE.def()),
                );
                $crate::VariableType::from_def(&DEF)
            }
        );
    };
}

/// The typed Variable handle behind [`variable_type!`] and the built-in types.
#[doc(hidden)]
#[macro_export]
macro_rules! __variable_handle {
    ($(#[$meta:meta])* $vis:vis $name:ident, $ty:expr) => {
        $(#[$meta])*
        #[derive(Clone)]
        $vis struct $name($crate::Variable);

        #[allow(dead_code)]
        impl $name {
            /// The variable type of this handle.
            pub const TYPE: $crate::VariableType = $ty;

            /// A new variable of this type holding `value`.
            pub fn new(value: impl Into<$crate::Tensor>) -> $name {
                $name($crate::Variable::new(Self::TYPE, value))
            }

            /// The Variable this handle refers to.
            pub fn variable(&self) -> &$crate::Variable {
                &self.0
            }

            /// Builder form of setting one metadata entry (`nnx.Param(x, sharding=…)`).
            pub fn with_metadata(
                self,
                key: impl Into<String>,
                value: impl Into<$crate::Static>,
            ) -> $name {
                $name(self.0.with_metadata(key, value))
            }
        }

        impl ::std::ops::Deref for $name {
            type Target = $crate::Variable;
            fn deref(&self) -> &$crate::Variable {
                &self.0
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl ::std::convert::From<$name> for $crate::Variable {
            fn from(handle: $name) -> $crate::Variable {
                handle.0
            }
        }

        impl ::std::convert::From<$name> for $crate::Value {
            fn from(handle: $name) -> $crate::Value {
                $crate::Value::Variable(handle.0)
            }
        }

        impl ::std::convert::From<&$name> for $crate::Value {
            fn from(handle: &$name) -> $crate::Value {
                $crate::Value::Variable(handle.0.clone())
            }
        }

        impl ::std::convert::TryFrom<$crate::Variable> for $name {
            type Error = $crate::Error;
            fn try_from(variable: $crate::Variable) -> $crate::Result<$name> {
                <$name as $crate::graph::FromValue>::from_value(&$crate::Value::Variable(variable))
            }
        }

        impl $crate::graph::ToValue for $name {
            fn to_value(&self) -> $crate::Value {
                $crate::Value::Variable(self.0.clone())
            }
        }

        impl $crate::graph::GraphValue for $name {}

        impl $crate::graph::FromValue for $name {
            fn expected() -> String {
                stringify!($name).into()
            }

            fn from_value(value: &$crate::Value) -> $crate::Result<$name> {
                match value {
                    $crate::Value::Variable(v) if v.is_instance(Self::TYPE) => Ok($name(v.clone())),
                    other => Err($crate::graph::mismatch::<$name>(other)),
                }
            }
        }
    };
}

macro_rules! builtin_marker {
    ($(#[$meta:meta])* $name:ident, $ty:expr) => {
        $crate::__variable_handle!($(#[$meta])* pub $name, $ty);
    };
}

builtin_marker!(
    /// A handle to a Variable of type [`VariableType::PARAM`]: `Param::new(x)` is `nnx.Param(x)`.
    Param,
    VariableType::PARAM
);
builtin_marker!(
    /// A handle to a Variable of type [`VariableType::BATCH_STAT`].
    BatchStat,
    VariableType::BATCH_STAT
);
builtin_marker!(
    /// A handle to a Variable of type [`VariableType::CACHE`].
    Cache,
    VariableType::CACHE
);
builtin_marker!(
    /// A handle to a Variable of type [`VariableType::INTERMEDIATE`].
    Intermediate,
    VariableType::INTERMEDIATE
);
builtin_marker!(
    /// A handle to a Variable of type [`VariableType::PERTURBATION`].
    Perturbation,
    VariableType::PERTURBATION
);
builtin_marker!(
    /// A handle to a Variable of type [`VariableType::RNG_STATE`].
    RngState,
    VariableType::RNG_STATE
);
builtin_marker!(
    /// A handle to a Variable of type [`VariableType::RNG_KEY`].
    RngKey,
    VariableType::RNG_KEY
);
builtin_marker!(
    /// A handle to a Variable of type [`VariableType::RNG_COUNT`].
    RngCount,
    VariableType::RNG_COUNT
);

/// A Variable: a mutable box with identity holding one tensor and metadata
/// (`nnx.Variable`).
///
/// `Variable` is a *handle*: cloning it gives another reference to the same variable, and a
/// change made through one handle is seen through all of them. This is the reference
/// semantics the whole library preserves across transforms. Use [`Variable::copy`] for a new,
/// independent variable.
///
/// Every mutation checks the trace level (the closure rule): a variable created outside a
/// transform cannot be changed from inside it unless it was passed in as an argument.
///
/// ```
/// use nnx_core::{Param, Tensor};
/// # fn main() -> nnx_core::Result<()> {
/// let p = Param::new(Tensor::zeros(&[3])).with_metadata("sharding", nnx_core::static_tuple!["a"]);
/// let alias = p.clone();
/// alias.update(|v| v + 1.0)?;
/// assert_eq!(p.value().to_vec::<f32>()?, vec![1.0, 1.0, 1.0]);
/// assert!(p.ptr_eq(&alias));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Variable(Arc<VariableCell>);

struct VariableCell {
    id: NodeId,
    ty: VariableType,
    trace_level: TraceLevel,
    /// Bumped by every metadata change (metadata is structure; the value is not).
    version: AtomicU64,
    inner: RwLock<VariableInner>,
}

struct VariableInner {
    value: Tensor,
    metadata: IndexMap<String, Static>,
}

impl Variable {
    /// How many handles to this Variable exist (for the typed-node registry's sweep).
    pub(crate) fn strong_count(&self) -> usize {
        Arc::strong_count(&self.0)
    }

    /// The root variable type, so that `variable_type!(pub Count: Variable)` derives from it.
    pub const TYPE: VariableType = VariableType::VARIABLE;

    /// A new variable of type `ty` holding `value`.
    pub fn new(ty: VariableType, value: impl Into<Tensor>) -> Variable {
        Variable::with_parts(ty, value.into(), IndexMap::new())
    }

    pub(crate) fn with_parts(
        ty: VariableType,
        value: Tensor,
        metadata: IndexMap<String, Static>,
    ) -> Variable {
        Variable(Arc::new(VariableCell {
            id: NodeId::fresh(),
            ty,
            trace_level: crate::trace::current_level(),
            version: AtomicU64::new(0),
            inner: RwLock::new(VariableInner { value, metadata }),
        }))
    }

    /// Builder: this variable with metadata `key = value` added (no trace check: use it on a
    /// variable you just created).
    pub fn with_metadata(self, key: impl Into<String>, value: impl Into<Static>) -> Variable {
        write(&self.0.inner)
            .metadata
            .insert(key.into(), value.into());
        self.bump();
        self
    }

    /// The identity of this variable (stable, from a counter).
    pub fn id(&self) -> NodeId {
        self.0.id
    }

    /// Whether two handles refer to the same variable (Python's `is`).
    pub fn ptr_eq(&self, other: &Variable) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The variable's type.
    pub fn variable_type(&self) -> VariableType {
        self.0.ty
    }

    /// The name of the variable's type (`"Param"`).
    pub fn type_name(&self) -> &'static str {
        self.0.ty.name()
    }

    /// Whether the variable's type is `ty` or a subtype of it.
    pub fn is_instance(&self, ty: VariableType) -> bool {
        self.0.ty.is_subtype_of(ty)
    }

    /// The trace level that owns this variable.
    pub fn trace_level(&self) -> TraceLevel {
        self.0.trace_level
    }

    /// The current value (a cheap handle to the immutable tensor).
    pub fn value(&self) -> Tensor {
        crate::program::note_read(self.0.trace_level);
        read(&self.0.inner).value.clone()
    }

    /// The value's shape.
    pub fn shape(&self) -> Vec<usize> {
        read(&self.0.inner).value.shape().to_vec()
    }

    /// Replaces the value (`v[...] = x` / `v.set_value(x)`); the shape and dtype may change.
    ///
    /// # Errors
    /// [`Error::TraceContext`](crate::Error::TraceContext) when called from a trace level that does not own the variable.
    pub fn set_value(&self, value: impl Into<Tensor>) -> Result<()> {
        self.check_can_mutate()?;
        write(&self.0.inner).value = value.into();
        Ok(())
    }

    /// Replaces the value with `f(current value)`, e.g. `count.update(|c| c + 1)`.
    ///
    /// # Errors
    /// Whatever `f` returns, and [`Error::TraceContext`](crate::Error::TraceContext) as for [`Variable::set_value`]
    /// (checked before `f` runs).
    pub fn update(&self, f: impl FnOnce(Tensor) -> Result<Tensor>) -> Result<()> {
        self.check_can_mutate()?;
        let new = f(self.value())?;
        write(&self.0.inner).value = new;
        Ok(())
    }

    /// A metadata entry.
    pub fn metadata_value(&self, key: &str) -> Option<Static> {
        read(&self.0.inner).metadata.get(key).cloned()
    }

    /// All metadata, in insertion order.
    pub fn metadata(&self) -> Vec<(String, Static)> {
        read(&self.0.inner)
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Sets a metadata entry (`v.set_metadata(key=value)`).
    ///
    /// # Errors
    /// [`Error::TraceContext`](crate::Error::TraceContext) as for [`Variable::set_value`].
    pub fn set_metadata(&self, key: impl Into<String>, value: impl Into<Static>) -> Result<()> {
        self.check_can_mutate()?;
        write(&self.0.inner)
            .metadata
            .insert(key.into(), value.into());
        self.bump();
        Ok(())
    }

    /// Removes a metadata entry, returning it.
    ///
    /// # Errors
    /// [`Error::TraceContext`](crate::Error::TraceContext) as for [`Variable::set_value`].
    pub fn del_metadata(&self, key: &str) -> Result<Option<Static>> {
        self.check_can_mutate()?;
        let removed = write(&self.0.inner).metadata.shift_remove(key);
        if removed.is_some() {
            self.bump();
        }
        Ok(removed)
    }

    /// A new, independent variable of the same type with the same value and metadata.
    pub fn copy(&self) -> Variable {
        let (value, metadata) = self.parts();
        Variable::with_parts(self.0.ty, value, metadata)
    }

    /// Copies `other`'s value and metadata into this variable (Flax's `update_from_state`).
    /// Updating a variable from itself does nothing.
    ///
    /// # Errors
    /// [`Error::TraceContext`](crate::Error::TraceContext) as for [`Variable::set_value`].
    pub fn update_from(&self, other: &Variable) -> Result<()> {
        if self.ptr_eq(other) {
            return Ok(());
        }
        self.check_can_mutate()?;
        // `other`'s lock is released before this one is taken: one lock at a time.
        let (value, metadata) = other.parts();
        self.overwrite(value, metadata);
        Ok(())
    }

    /// Replaces value and metadata without the trace-level check: a transform writing its
    /// results back into the caller's Variables.
    pub(crate) fn overwrite(&self, value: Tensor, metadata: IndexMap<String, Static>) {
        let mut inner = write(&self.0.inner);
        inner.value = value;
        // Order matters: metadata prints, and is compared, in insertion order.
        if !inner.metadata.iter().eq(metadata.iter()) {
            inner.metadata = metadata;
            self.bump();
        }
    }

    /// Replaces the value without the trace-level check: a cached transform writing its
    /// results back when the structure (metadata included) did not change.
    pub(crate) fn overwrite_value(&self, value: Tensor) {
        write(&self.0.inner).value = value;
    }

    /// The value and metadata, read under one lock.
    fn parts(&self) -> (Tensor, IndexMap<String, Static>) {
        let inner = read(&self.0.inner);
        (inner.value.clone(), inner.metadata.clone())
    }

    /// The metadata version: it changes whenever the metadata does.
    pub(crate) fn version(&self) -> u64 {
        self.0.version.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.0.version.fetch_add(1, Ordering::AcqRel);
        super::sync::structure_changed();
    }

    /// A handle that does not keep the variable alive.
    pub(crate) fn downgrade(&self) -> WeakVariable {
        WeakVariable(Arc::downgrade(&self.0))
    }

    pub(crate) fn check_can_mutate(&self) -> Result<()> {
        check_can_mutate(self.type_name(), self.0.trace_level)
    }
}

/// A handle to a variable that does not keep it alive (what a cache remembers).
pub(crate) struct WeakVariable(Weak<VariableCell>);

impl WeakVariable {
    /// The variable, if it still exists.
    pub(crate) fn upgrade(&self) -> Option<Variable> {
        self.0.upgrade().map(Variable)
    }
}

impl fmt::Debug for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.type_name(), self.id().0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::variable_type!(
        /// A test counter.
        Count: Variable
    );

    #[test]
    fn hierarchy_matches_subtypes() {
        assert!(VariableType::RNG_KEY.is_subtype_of(VariableType::RNG_STATE));
        assert!(!VariableType::PARAM.is_subtype_of(VariableType::BATCH_STAT));
        assert!(Count::TYPE.is_subtype_of(VariableType::VARIABLE));
        assert_eq!(Count::TYPE, Count::TYPE);
        assert_ne!(Count::TYPE, VariableType::VARIABLE);
    }

    #[test]
    fn handles_share_and_copies_do_not() {
        let p = Param::new(Tensor::zeros([2]));
        let alias = p.clone();
        let copy = p.copy();
        alias.set_value(Tensor::ones([2])).unwrap();
        assert_eq!(p.value().to_vec::<f32>().unwrap(), vec![1.0, 1.0]);
        assert_eq!(copy.value().to_vec::<f32>().unwrap(), vec![0.0, 0.0]);
        assert_ne!(p.id(), copy.id());
    }

    #[test]
    fn update_from_self_is_a_no_op() {
        let p = Param::new(Tensor::zeros([2])).with_metadata("tag", "x");
        p.update_from(&p.clone()).unwrap();
        assert_eq!(p.metadata_value("tag"), Some(Static::from("x")));
    }
}
