//! Lifted transforms: `vmap`, `jit`, `scan`, `grad` / `value_and_grad`, and control flow
//! (`cond`, `switch`, `while_loop`, `fori_loop`) over functions of objects and arrays.
//!
//! Each transform moves its arguments across the boundary with [`lift`](crate::lift)
//! (Flax's recipe), traces the function once into a [`Program`](crate::program::Program),
//! and asks an [`Engine`](crate::Engine) to run it — or, when called inside another
//! transform's trace, records itself as a higher-order equation so that transforms nest.

mod args;
mod autodiff;
mod control;
mod control_diff;
mod custom_vjp;
mod eval_shape;
mod fast_path;
mod forward;
mod grad;
mod jacobian;
mod jit;
mod jvp;
mod linalg_rules;
mod loop_vjp;
mod metadata;
mod pipeline;
mod prune;
mod rules;
mod scan;
mod shard_map;
mod typed;
mod vmap;

pub use args::IntoArgs;
pub use control::{ForiLoop, Switch, WhileLoop, cond, fori_loop, switch, while_loop};
pub use custom_vjp::{Cotangents, CustomVjp, CustomVjpDef, custom_vjp};
pub use eval_shape::{EvalShape, eval_shape};
pub use grad::{Diff, DiffState, Grad, GradFn, GradOutput, grad, jacfwd, jacrev, value_and_grad};
pub use jit::{Jit, Whole, jit, remat};
pub use jvp::{JvpFn, JvpOutput, Tangent, jvp};
pub use prune::{Passed, Pruned, prune};
pub use scan::{Carry, Scan, ScanAxes, ScanAxis, scan};
pub use shard_map::{
    ShardMap, Spec, SpecPrefix, StateSharding, get_partition_spec, pmap, shard_map,
};
pub use typed::{Body, Dynamic, IntoBody, Typed};
pub use vmap::{Axis, AxisSpec, StateAxes, Vmap, vmap};
