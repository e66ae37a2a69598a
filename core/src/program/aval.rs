//! Abstract values: what a program knows about an array while tracing.

use std::fmt;

use crate::tensor::DType;

/// The shape, dtype and weak-typedness of an array, without its contents (JAX's
/// `ShapedArray`). Tracers carry one; programs record one per variable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AbstractValue {
    /// The shape.
    pub shape: Vec<usize>,
    /// The dtype.
    pub dtype: DType,
    /// JAX's `weak_type`.
    pub weak: bool,
}

impl AbstractValue {
    /// An abstract value.
    pub fn new(shape: Vec<usize>, dtype: DType, weak: bool) -> AbstractValue {
        AbstractValue { shape, dtype, weak }
    }

    /// Whether `t` has this abstract value (without building one for it).
    pub fn same_as(&self, t: &crate::tensor::Tensor) -> bool {
        t.shape() == self.shape.as_slice() && t.dtype() == self.dtype && t.is_weak() == self.weak
    }

    /// The number of elements (saturating at `usize::MAX` for a shape too large to exist;
    /// every abstract value a trace records has a size that fits).
    pub fn size(&self) -> usize {
        crate::tensor::element_count(&self.shape).unwrap_or(usize::MAX)
    }
}

impl fmt::Display for AbstractValue {
    /// JAX style: `f32[10,2]`, `i32[]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = match self.dtype {
            DType::Bool => "bool",
            DType::I32 => "i32",
            DType::U32 => "u32",
            DType::F32 => "f32",
            DType::Key => "key<fry>",
        };
        let dims: Vec<String> = self.shape.iter().map(usize::to_string).collect();
        write!(f, "{short}[{}]", dims.join(","))?;
        if self.weak {
            f.write_str("{weak}")?;
        }
        Ok(())
    }
}
