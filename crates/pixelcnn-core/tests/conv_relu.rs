//! The ReLU fused into bf16 convolutions for inference (`network/conv_relu.rs`):
//! the same probabilities as the composed form for the seed family and the
//! gated network's head, conditional or not, and training (grad mode) never
//! takes it. Its own binary: the switch is process-wide.

mod common;
use common::*;
use pixelcnn_core::config::{EvalConfig, ModelConfig, Precision, TrainConfig};
use pixelcnn_core::evaluate::predict;
use pixelcnn_core::images::ImagesRef;
use pixelcnn_core::network::conv_relu;
use pixelcnn_core::train::fit;
use std::sync::atomic::AtomicBool;
use tch::Device;

#[test]
fn fused_and_composed_relus_give_the_same_probabilities() {
    if !pixelcnn_core::precision::native_bf16(Device::Cpu) {
        eprintln!("skipped: this CPU has no native bf16, where the fused form never applies (conv_relu::applies)");
        return;
    }
    let small = ModelConfig { height: 9, width: 8, ..ModelConfig::small() };
    let gated = ModelConfig { height: 9, width: 8, ..ModelConfig::gated_small() };
    for config in [small.clone(), conditional(small, 3), gated.clone(), conditional(gated, 3)] {
        let name = format!("{:?}, classes {:?}", config.architecture, config.classes);
        let state = model(config.clone(), 2);
        randomize_class_biases(&state);
        let data = random_images(6, 9, 8, 0.3, 4);
        let images = ImagesRef { count: 6, height: 9, width: 8, channels: 1, data: pixelcnn_core::images::Values::Bytes(&data) };
        let eval = EvalConfig { precision: Precision::Bf16, threads: Some(2), labels: labels(&config, 6), ..Default::default() };
        conv_relu::set_enabled(false);
        let composed = predict(&state, &images, &eval).unwrap();
        conv_relu::set_enabled(true);
        let before = conv_relu::fused_calls();
        let fused = predict(&state, &images, &eval).unwrap();
        // Seed family: every conv but the output layer (none fuse with class biases); gated: the head's layers.
        assert!(config.classes.is_some() || conv_relu::fused_calls() > before, "{name}: the fused form was not taken");
        let worst = worst_difference(&composed, &fused);
        eprintln!("{name}: fused against composed within {worst}");
        // Both round the same fp32 sums to bf16 (measured: identical); a post-op could at most move a rounding.
        assert!(worst <= 1e-2, "{name}: fused and composed probabilities differ by {worst}");
    }
    // Training records gradients, so it composes: a bf16 step trains as before.
    let mut state = model(ModelConfig { height: 8, width: 8, ..ModelConfig::small() }, 3);
    let train = striped(32, 8, 8, 1);
    let config = TrainConfig { epochs: 1, batch_size: 16, learning_rate: 5e-3, precision: Precision::Bf16, threads: Some(2), ..Default::default() };
    let before = conv_relu::fused_calls();
    fit(&mut state, split(&train, 32, 8, 8), None, &config, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert!(state.history[0].train_loss.is_finite());
    assert_eq!(conv_relu::fused_calls(), before, "training took the fused form");
}
