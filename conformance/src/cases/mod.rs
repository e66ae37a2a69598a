//! The conformance cases. [`ALL`] and [`for_each_case!`](crate::for_each_case) list the same
//! cases: the first drives [`run_all`](crate::run_all), the second the [`suite!`](crate::suite)
//! macro's one `#[test]` per case.

pub mod guide;

use crate::Case;

/// Invokes `$m!($engine; case, case, …)` with every case name.
#[macro_export]
macro_rules! for_each_case {
    ($m:path, $engine:expr) => {
        $m!($engine;
            guide_basic,
            guide_create_weights,
            guide_methods,
            guide_state_propagation,
            guide_graph_updates,
            guide_state_axes,
            guide_random_state,
            guide_split_rngs,
            guide_closure_error,
            guide_aliasing_inputs_error,
            guide_aliasing_outputs_error,
        );
    };
}

macro_rules! case_list {
    ($engine:expr; $($name:ident),* $(,)?) => {
        /// Every case, in order.
        pub const ALL: &[Case] = &[$(Case { name: stringify!($name), run: guide::$name }),*];
    };
}

for_each_case!(case_list, ());
