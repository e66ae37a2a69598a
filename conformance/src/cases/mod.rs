//! The conformance cases. [`ALL`] and [`for_each_case!`](crate::for_each_case) list the same
//! cases: the first drives [`run_all`](crate::run_all), the second the [`suite!`](crate::suite)
//! macro's one `#[test]` per case.

pub mod caching;
pub mod control;
pub mod custom_vjp;
pub mod derivatives;
pub mod differential;
pub mod grad;
pub mod graph_api;
pub mod graph_updates;
pub mod guide;
pub mod linalg;
pub mod loop_grads;
pub mod properties;
pub mod scan;
pub mod shard;
pub mod transforms;
pub mod typed;

use crate::Case;

/// Invokes `$m!($engine; case, case, …)` with every case name.
#[macro_export]
macro_rules! for_each_case {
    ($m:path, $engine:expr) => {
        $m!($engine;
            guide::guide_basic,
            guide::guide_create_weights,
            guide::guide_methods,
            guide::guide_state_propagation,
            guide::guide_graph_updates,
            guide::guide_state_axes,
            guide::guide_random_state,
            guide::guide_split_rngs,
            guide::guide_closure_error,
            guide::guide_aliasing_inputs_error,
            guide::guide_aliasing_outputs_error,
            guide::guide_metadata_in,
            guide::guide_metadata_out,
            transforms::vmap_axis_size_mismatch_names_each_argument,
            transforms::vmap_axis_errors,
            transforms::vmap_state_axes_on_a_tuple_error,
            transforms::vmap_broadcast_state_changed_by_batched_value_error,
            transforms::vmap_failure_leaves_objects_unchanged,
            transforms::vmap_new_variable_in_mapped_object_is_stacked,
            transforms::vmap_metadata_with_negative_axes,
            transforms::jit_traces_once_per_structure,
            transforms::jit_propagates_graph_and_metadata_updates,
            transforms::transforms_nest,
            transforms::nested_state_updates_propagate,
            transforms::reading_a_tracer_is_an_error,
            grad::grad_differentiates_params_and_propagates_state,
            grad::grad_diffstate_argnums_and_aux,
            grad::grad_shared_variable_gets_total_gradient_everywhere,
            grad::grad_nests_inside_vmap_and_jit,
            grad::grad_matches_finite_differences,
            grad::grad_through_vmap,
            grad::stop_gradient_blocks_gradients,
            loop_grads::grad_of_vmap_does_not_unroll_lanes,
            loop_grads::grad_of_a_matrix_over_batched_rows_is_one_product,
            loop_grads::grad_of_scan_does_not_unroll_iterations,
            loop_grads::loop_gradients_match_hand_written_loops,
            loop_grads::remat_recomputes_in_the_backward_pass,
            derivatives::jvp_pushes_tangents_through_objects_and_arrays,
            derivatives::jacobians_and_second_derivatives,
            derivatives::jvp_of_loops_does_not_unroll,
            derivatives::jvp_of_an_empty_scan_passes_carries_through,
            derivatives::generated_derivatives_agree,
            linalg::triangular_solve_matches_jax,
            linalg::qr_derivatives_match_jax,
            control::cond_and_switch_match_flax,
            control::while_and_fori_loops_match_flax,
            control::control_flow_errors_change_nothing,
            control::control_flow_derivatives_match_jax,
            control::control_flow_under_vmap,
            control::eval_shape_computes_nothing,
            control::scan_details_match_flax,
            control::numbers_assigned_inside_jit_stay_static,
            graph_updates::graph_updates_false_updates_variables_only,
            graph_updates::grad_without_graph_updates_differentiates_every_variable,
            control::scan_carry_may_be_a_new_variable,
            graph_api::graph_api_matches_flax,
            graph_api::rngs_reseed_and_split_match_flax,
            graph_api::functional_style_matches_flax,
            graph_api::state_axes_from_paths_match_flax,
            graph_api::dict_shaped_axes_match_flax,
            graph_api::plain_dicts_and_tuples_are_pytrees,
            shard::collectives_match_their_definitions,
            shard::tensor_parallel_linear_pair_matches_unsharded,
            shard::data_parallel_training_matches_one_device,
            shard::collectives_differentiate_and_batch,
            shard::shard_map_errors_name_the_argument_and_axis,
            shard::shard_map_updates_sharded_and_replicated_state,
            shard::pmap_maps_the_leading_axis,
            shard::shard_map_differentiates_from_outside,
            custom_vjp::custom_vjp_flax_example,
            custom_vjp::custom_vjp_backward_pass_is_used_everywhere,
            custom_vjp::custom_vjp_state_updates_and_errors,
            scan::scan_matches_an_explicit_loop,
            scan::scan_threads_carried_and_scanned_objects,
            scan::scan_broadcast_state_rules,
            scan::scan_carry_errors,
            scan::scan_over_layers_nests_with_vmap_jit_and_grad,
            scan::scan_state_axes_and_split_rngs,
            properties::vmap_matches_the_per_example_loop,
            properties::shard_map_matches_the_unsharded_program,
            properties::jit_matches_eager_results_and_state,
            properties::shared_variables_update_every_alias,
            typed::typed_modules_cross_every_transform,
            typed::typed_closures_report_wrong_arguments,
            caching::every_transform_traces_once_per_structure,
            caching::structure_changes_between_calls_are_seen,
            caching::captured_state_is_read_at_every_call,
            differential::differential_programs_agree_with_reference,
            differential::differential_edge_shapes_agree_with_reference,
        );
    };
}

macro_rules! case_list {
    ($engine:expr; $($module:ident :: $name:ident),* $(,)?) => {
        /// Every case, in order.
        pub const ALL: &[Case] = &[$(Case { name: stringify!($name), run: $module::$name }),*];
    };
}

for_each_case!(case_list, ());
