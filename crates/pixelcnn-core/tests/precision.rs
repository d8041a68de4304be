//! bf16 mixed precision against fp32: probabilities within a stated bound,
//! training that learns like fp32, fp32 master weights, the fast sampler in
//! bf16, and a clear error where the CPU has no bf16 arithmetic.
//!
//! On a CPU without bf16 instructions the numerical tests run libtorch's
//! emulated bf16 (`PIXELCNN_EMULATED_BF16=1`, set by `emulate_if_needed`):
//! the same rounding, computed slowly.
//!
//! Bounds (measured, then given headroom): on these networks a probability
//! computed in bf16 differed from the fp32 one by at most 0.0025 (bf16 keeps
//! 8 significant bits, so each layer's output carries a relative rounding
//! error of up to 0.4%); `PROBABILITY_BOUND` is 0.01. After 4 epochs of the
//! small training run, bf16's validation loss was within 1.5% of fp32's; the
//! test allows 5%.

mod common;
use common::*;
use pixelcnn_core::config::{EvalConfig, ModelConfig, Precision, SampleConfig, SampleMethod, TrainConfig};
use pixelcnn_core::evaluate::predict;
use pixelcnn_core::images::ImagesRef;
use pixelcnn_core::network::pixelcnn_pp;
use pixelcnn_core::precision::cpu_has_native_bf16;
use pixelcnn_core::sample::sample;
use pixelcnn_core::state::ModelState;
use pixelcnn_core::train::fit;
use std::sync::atomic::AtomicBool;
use tch::Kind;

const PROBABILITY_BOUND: f32 = 0.01;

fn nets() -> Vec<(&'static str, ModelConfig)> {
    let small = ModelConfig { height: 12, width: 12, ..ModelConfig::small() };
    let gated = ModelConfig { height: 12, width: 11, ..ModelConfig::gated_small() };
    vec![
        ("small", small.clone()),
        ("small, 3 classes", conditional(small, 3)),
        ("gated-small", gated.clone()),
        ("gated-small, 3 classes", conditional(gated, 3)),
    ]
}

fn probabilities(state: &ModelState, images: &[u8], count: i64, precision: Precision) -> pixelcnn_core::Result<Vec<f32>> {
    let c = state.net.config();
    let batch = ImagesRef { count, height: c.height, width: c.width, channels: 1, data: pixelcnn_core::images::Values::Bytes(images) };
    predict(state, &batch, &EvalConfig { threads: Some(2), labels: labels(c, count), precision, ..Default::default() })
}

/// Allows emulated bf16 where the CPU has none. Set before any bf16 work and
/// never unset (tests run in parallel threads of one process; the error
/// without it is tested in its own process, `tests/precision_check.rs`).
fn emulate_if_needed() {
    if !cpu_has_native_bf16() {
        std::env::set_var("PIXELCNN_EMULATED_BF16", "1");
    }
}

#[test]
fn bf16_probabilities_stay_within_the_bound_of_fp32() {
    emulate_if_needed();
    for (name, config) in nets() {
        let (h, w) = (config.height, config.width);
        let state = model(config, 5);
        randomize_class_biases(&state);
        let images = random_images(6, h, w, 0.3, 9);
        let fp32 = probabilities(&state, &images, 6, Precision::Fp32).unwrap();
        let bf16 = probabilities(&state, &images, 6, Precision::Bf16).unwrap();
        let worst = worst_difference(&fp32, &bf16);
        eprintln!("{name}: bf16 probabilities within {worst} of fp32");
        assert!(worst <= PROBABILITY_BOUND, "{name}: bf16 probabilities differ from fp32 by up to {worst}");
        assert!(worst > 0.0, "{name}: bf16 gave exactly the fp32 probabilities: is it computing in bf16 at all?");
    }
}

fn train(config: ModelConfig, precision: Precision) -> ModelState {
    let (train, test) = (striped(96, 8, 8, 1), striped(32, 8, 8, 2));
    let mut state = model(config, 7);
    let train_config = TrainConfig { epochs: 4, batch_size: 16, learning_rate: 5e-3, seed: 7, threads: Some(2), eval_batch_size: 64, checkpoint: None, precision, distributed: None, ..Default::default() };
    fit(&mut state, split(&train, 96, 8, 8), Some(split(&test, 32, 8, 8)), &train_config, &AtomicBool::new(false), &mut |_| {}).unwrap();
    state
}

/// The small run of training.rs in both precisions: bf16 must learn as fp32
/// does. Tolerance: the last validation loss within 5% of fp32's.
#[test]
fn bf16_training_lowers_the_loss_like_fp32_and_keeps_fp32_weights() {
    emulate_if_needed();
    for config in [
        ModelConfig { height: 8, width: 8, filters: 16, residual_blocks: Some(1), ..ModelConfig::small() },
        ModelConfig { height: 8, width: 8, filters: 16, layers: Some(2), ..ModelConfig::gated_small() },
    ] {
        let name = format!("{:?}", config.architecture);
        let fp32 = train(config.clone(), Precision::Fp32);
        let bf16 = train(config, Precision::Bf16);
        let val = |s: &ModelState| s.history.iter().map(|r| r.val_loss.unwrap()).collect::<Vec<_>>();
        let (a, b) = (val(&fp32), val(&bf16));
        eprintln!("{name}: validation loss per epoch, fp32 {a:?}, bf16 {b:?}");
        assert!(b[3] < b[0] * 0.8, "{name}: bf16 validation loss did not fall: {b:?}");
        assert!((b[3] - a[3]).abs() <= 0.05 * a[3], "{name}: bf16 ended at {} where fp32 ended at {}", b[3], a[3]);
        assert!(bf16.history.iter().all(|r| r.precision == Precision::Bf16), "{name}: history does not record bf16");
        assert!(fp32.history.iter().all(|r| r.precision == Precision::Fp32));
        for (param, t) in bf16.net.parameters() {
            assert_eq!(t.kind(), Kind::Float, "{name}: master weight {param} is not fp32");
        }
        let adam = bf16.optimizer.as_ref().unwrap();
        assert!(adam.exp_avg.iter().chain(&adam.exp_avg_sq).all(|m| m.kind() == Kind::Float), "{name}: Adam's moments are not fp32");
    }
}

/// `count` images from the fast sampler in bf16, in one batch on `threads` threads.
fn bf16_fast_samples(state: &ModelState, config: &ModelConfig, count: i64, threads: i64) -> pixelcnn_core::sample::SampleOutput {
    let sample_config = SampleConfig {
        count, seed: 3, temperature: 1.0, batch_size: Some(count), method: SampleMethod::Fast, threads: Some(threads),
        labels: labels(config, count), precision: Precision::Bf16, ..Default::default()
    };
    sample(state, &sample_config, None, &AtomicBool::new(false), &mut |_| {}).unwrap()
}

/// With 256 images or more per sampler thread the per-pixel chain too runs
/// in bf16 on a CPU (`sample/kinds.rs`, whose unit test checks the rule): its
/// probabilities stay within the bound of fp32 like the mixed sampler's.
#[test]
fn bf16_fast_sampler_with_a_bf16_chain_stays_within_the_bound_of_fp32() {
    emulate_if_needed();
    let small = ModelConfig { height: 6, width: 6, ..ModelConfig::small() };
    let gated = ModelConfig { height: 6, width: 5, ..ModelConfig::gated_small() };
    for (name, config) in [("small", small), ("gated-small, 3 classes", conditional(gated, 3))] {
        let state = model(config.clone(), 4);
        randomize_class_biases(&state);
        let count = 256;
        let out = bf16_fast_samples(&state, &config, count, 1);
        let fp32 = probabilities(&state, &out.images, count, Precision::Fp32).unwrap();
        let worst = worst_difference(&fp32, &out.probabilities);
        eprintln!("{name}: the bf16 chain's probabilities within {worst} of fp32");
        assert!(worst <= PROBABILITY_BOUND, "{name}: the bf16 chain's probabilities differ from fp32 by up to {worst}");
    }
}

/// The fast sampler in bf16: every probability it drew with is, within the
/// bound, the fp32 network's probability for the same pixel of the images it
/// made (teacher forcing on its own output), for every architecture.
#[test]
fn bf16_fast_sampler_draws_with_probabilities_within_the_bound_of_fp32() {
    emulate_if_needed();
    for (name, config) in nets() {
        let state = model(config.clone(), 4);
        randomize_class_biases(&state);
        let count = 5;
        let out = bf16_fast_samples(&state, &config, count, 2);
        let ones = out.images.iter().filter(|&&v| v == 1).count();
        assert!(ones > 0 && ones < out.images.len(), "{name}: degenerate bf16 samples");
        let fp32 = probabilities(&state, &out.images, count, Precision::Fp32).unwrap();
        let worst = worst_difference(&fp32, &out.probabilities);
        eprintln!("{name}: the bf16 sampler's probabilities within {worst} of fp32");
        assert!(worst <= PROBABILITY_BOUND, "{name}: the bf16 sampler's probabilities differ from fp32 by up to {worst}");
    }
}

/// The 8-bit outputs in bf16, grayscale and colour: the probability of each sub-pixel's value
/// (exp of `log_probs`) within the bound of fp32's, and the bf16 fast sampler
/// drawing 8-bit images with probabilities within the bound of the fp32
/// network's for the values it drew.
#[test]
fn bf16_eight_bit_outputs_stay_within_the_bound_of_fp32() {
    use pixelcnn_core::config::Output;
    use pixelcnn_core::evaluate::log_probs;
    emulate_if_needed();
    let gated = ModelConfig { height: 9, width: 8, ..ModelConfig::gated_small() };
    let small = ModelConfig { height: 9, width: 8, ..ModelConfig::small() };
    for config in [
        ModelConfig { output: Output::Categorical, ..gated.clone() },
        conditional(ModelConfig { output: Output::LogisticMixture, mixtures: Some(4), ..gated }, 3),
        ModelConfig { output: Output::LogisticMixture, mixtures: Some(2), ..small.clone() },
        // Colour: channel groups (categorical), and the coupled RGB mixture.
        ModelConfig { output: Output::Categorical, channels: 3, ..ModelConfig { height: 6, width: 5, ..ModelConfig::gated_small() } },
        ModelConfig { output: Output::LogisticMixture, mixtures: Some(3), channels: 3, height: 6, width: 5, ..small },
        // PixelCNN++ (its sampler mixes per-row and per-position work at three resolutions): RGB mixture, and conditional categorical.
        ModelConfig { height: 8, width: 8, channels: 3, mixtures: Some(2), filters: 8, resnet_blocks: Some(1), ..pixelcnn_pp::small_preset() },
        conditional(ModelConfig { height: 8, width: 8, output: Output::Categorical, mixtures: None, filters: 8, resnet_blocks: Some(1), ..pixelcnn_pp::small_preset() }, 3),
    ] {
        let name = format!("{} {:?} ×{}", config.output.name(), config.architecture, config.channels);
        let state = model(config.clone(), 5);
        randomize_class_biases(&state);
        let probabilities = |images: &[u8], count: i64, precision| {
            let batch = ImagesRef { count, height: config.height, width: config.width, channels: config.channels, data: pixelcnn_core::images::Values::Bytes(images) };
            let eval = EvalConfig { threads: Some(2), labels: labels(&config, count), precision, ..Default::default() };
            log_probs(&state, &batch, &eval).unwrap().iter().map(|l| l.exp()).collect::<Vec<f32>>()
        };
        let count = 4;
        let images: Vec<u8> = random_images((count * config.channels) as usize, config.height, config.width, 0.5, 3).iter().enumerate().map(|(i, &b)| b * 128 + (i % 97) as u8).collect();
        let worst = worst_difference(&probabilities(&images, count, Precision::Fp32), &probabilities(&images, count, Precision::Bf16));
        eprintln!("{name}: bf16 level probabilities within {worst} of fp32");
        assert!(worst <= PROBABILITY_BOUND && worst > 0.0, "{name}: bf16 level probabilities differ from fp32 by {worst}");

        let sample_config = SampleConfig {
            count, seed: 3, temperature: 1.0, batch_size: Some(count), method: SampleMethod::Fast, threads: Some(2),
            labels: labels(&config, count), precision: Precision::Bf16, ..Default::default()
        };
        let out = sample(&state, &sample_config, None, &AtomicBool::new(false), &mut |_| {}).unwrap();
        assert!(out.images.iter().any(|&v| v > 1), "{name}: bf16 samples are not 8-bit");
        let worst = worst_difference(&probabilities(&out.images, count, Precision::Fp32), &out.probabilities);
        eprintln!("{name}: the bf16 sampler's probabilities within {worst} of fp32");
        assert!(worst <= PROBABILITY_BOUND, "{name}: the bf16 sampler's probabilities differ from fp32 by up to {worst}");
    }
}
