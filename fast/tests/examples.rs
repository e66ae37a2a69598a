//! The examples run as tests: training reduces the loss, per-example gradients match
//! one-example gradients, scan over layers trains.

#[path = "../../examples/train_mlp.rs"]
mod train_mlp;

#[path = "../../examples/per_example_grads.rs"]
mod per_example_grads;

#[path = "../../examples/scan_over_layers.rs"]
mod scan_over_layers;

#[path = "../../examples/layers.rs"]
mod layers;

use nnx_fast::prelude::*;
use nnx_reference::Reference;

#[test]
fn training_the_mlp_cuts_the_loss_below_a_tenth_in_ten_epochs() {
    let losses = train_mlp::train(10, 0.2).expect("training runs");
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(last < 0.1 * first, "loss went from {first} to {last}");
    assert!(
        losses.windows(2).all(|w| w[1] <= w[0] * 1.05),
        "loss did not keep falling: {losses:?}"
    );
}

#[test]
fn per_example_gradients_equal_single_example_gradients() {
    let (grads, model, x, y) = per_example_grads::per_example_kernel_grads(5).expect("runs");
    assert_eq!(grads.shape(), &[5, 3, 2]);
    for i in 0..5 {
        let xi = x.index_axis(0, i).unwrap().expand_dims(0).unwrap();
        let yi = y.index_axis(0, i).unwrap().expand_dims(0).unwrap();
        let expected = value_and_grad(per_example_grads::loss)
            .call(&Reference, (&model, &xi, &yi))
            .unwrap()
            .grads[0]
            .state()
            .unwrap()
            .variable(&Path::parse("kernel").unwrap())
            .unwrap()
            .value();
        assert!(
            grads
                .index_axis(0, i)
                .unwrap()
                .allclose(&expected, 1e-5, 1e-5)
                .unwrap()
        );
    }
}

#[test]
fn scan_over_layers_trains_a_stack_created_with_vmap() {
    let layers = scan_over_layers::stacked_layers(4, 8).unwrap();
    assert_eq!(layers.kernel.value().shape(), &[4, 8, 8]);
    let losses = scan_over_layers::train(4, 8, 6).unwrap();
    assert!(losses[5] < 0.8 * losses[0], "losses {losses:?}");
}

#[test]
fn the_cnn_learns_and_the_transformer_runs() {
    let losses = layers::train_cnn(24).expect("training runs");
    let best_late = losses[19..].iter().copied().fold(f32::INFINITY, f32::min);
    assert!(
        best_late < 0.6 * losses[0],
        "the CNN's loss went from {} to {losses:?}",
        losses[0]
    );
    let lm = layers::TinyLm::new(16, 8, &Rngs::new(0).unwrap()).unwrap();
    let tokens = Tensor::from_vec(&[1, 4], vec![1i32, 2, 3, 4]).unwrap();
    let logits = lm.forward(&tokens).unwrap();
    assert_eq!(logits.shape(), &[1, 4, 16]);
    // Causal: the first position's logits do not depend on later tokens.
    let other = Tensor::from_vec(&[1, 4], vec![1i32, 9, 9, 9]).unwrap();
    let first = |l: &Tensor| l.index_axis(1, 0).unwrap();
    assert!(
        first(&logits)
            .allclose(&first(&lm.forward(&other).unwrap()), 1e-6, 1e-6)
            .unwrap()
    );
}
