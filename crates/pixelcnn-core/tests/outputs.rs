//! The 8-bit outputs against their definitions: the categorical loss is the
//! softmax cross-entropy of each sub-pixel's value, the logistic mixture's is
//! PixelCNN++'s discretized likelihood (computed here independently, in f64)
//! and puts a total mass of 1 on the 256 levels; log-probabilities sum to the
//! per-image NLL, the fast sampler makes exactly the reference sampler's
//! 8-bit images, both outputs learn and round-trip through checkpoints;
//! binary models keep refusing 8-bit bytes.

mod common;
use common::*;
use pixelcnn_core::checkpoint;
use pixelcnn_core::config::{EvalConfig, ModelConfig, Output, SampleMethod, TrainConfig};
use pixelcnn_core::evaluate::{log_probs, nats_per_image, predict};
use pixelcnn_core::images::ImagesRef;
use pixelcnn_core::rng::Rng;
use pixelcnn_core::sample::Completion;
use pixelcnn_core::state::ModelState;
use pixelcnn_core::train::{fit, Split};
use pixelcnn_core::Error;
use serde_json::json;
use std::sync::atomic::AtomicBool;
use tch::{Device, Tensor};

fn categorical(config: ModelConfig) -> ModelConfig {
    ModelConfig { output: Output::Categorical, ..config }
}

fn mixture(config: ModelConfig, k: i64) -> ModelConfig {
    ModelConfig { output: Output::LogisticMixture, mixtures: Some(k), ..config }
}

fn categorical_nets() -> Vec<ModelConfig> {
    vec![
        categorical(ModelConfig { height: 7, width: 6, filters: 16, residual_blocks: Some(1), ..ModelConfig::small() }),
        categorical(custom_gated_config()),
        conditional(categorical(custom_gated_config()), 3),
        conditional(categorical(custom_config()), 2),
    ]
}

fn mixture_nets() -> Vec<ModelConfig> {
    vec![
        mixture(ModelConfig { height: 7, width: 6, filters: 16, residual_blocks: Some(1), ..ModelConfig::small() }, 3),
        mixture(custom_gated_config(), 1),
        conditional(mixture(custom_gated_config(), 5), 3),
        conditional(mixture(custom_config(), 2), 2),
    ]
}

fn nets() -> Vec<ModelConfig> {
    categorical_nets().into_iter().chain(mixture_nets()).collect()
}

/// 8-bit images: uniform bytes.
fn bytes(count: usize, h: i64, w: i64, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..count * (h * w) as usize).map(|_| (rng.uniform_f32() * 256.0) as u8).collect()
}


fn eval_config(config: &ModelConfig, count: i64) -> EvalConfig {
    EvalConfig { threads: Some(2), labels: cycled_labels(config, count), ..Default::default() }
}

fn batch<'a>(config: &ModelConfig, data: &'a [u8], count: i64) -> ImagesRef<'a> {
    ImagesRef { count, height: config.height, width: config.width, channels: 1, data: pixelcnn_core::images::Values::Bytes(data) }
}

#[test]
fn log_probs_are_the_softmax_of_each_sub_pixels_value_and_sum_to_the_nll() {
    for config in categorical_nets() {
        let state = model(config.clone(), 3);
        randomize_class_biases(&state);
        let images = bytes(3, config.height, config.width, 5);
        let ours = log_probs(&state, &batch(&config, &images, 3), &eval_config(&config, 3)).unwrap();
        // By hand: the network's 256 logits at each pixel, log-softmax, the value's entry.
        let x = Tensor::from_slice(&images.iter().map(|&v| v as f32).collect::<Vec<_>>()).reshape([3, 1, config.height, config.width]);
        let y = cycled_labels(&config, 3).map(|v| Tensor::from_slice(&v.as_array().unwrap().iter().map(|l| l.as_i64().unwrap()).collect::<Vec<_>>()));
        let logits = tch::no_grad(|| state.net.forward(&x, y.as_ref(), Default::default()).unwrap()); // (3, 256, H, W)
        let logits = Vec::<f32>::try_from(logits.permute([0, 2, 3, 1]).contiguous().reshape([-1])).unwrap();
        for (i, &value) in images.iter().enumerate() {
            let row = &logits[i * 256..(i + 1) * 256];
            let max = row.iter().cloned().fold(f32::MIN, f32::max);
            let log_sum: f32 = max + row.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
            let expected = row[value as usize] - log_sum;
            assert!((ours[i] - expected).abs() < 1e-4, "sub-pixel {i}: {} against {expected}", ours[i]);
        }
        let nats = nats_per_image(&state, &batch(&config, &images, 3), &eval_config(&config, 3)).unwrap();
        let pixels = (config.height * config.width) as usize;
        for (n, &image_nats) in nats.iter().enumerate() {
            let sum: f64 = ours[n * pixels..(n + 1) * pixels].iter().map(|&l| l as f64).sum();
            assert!((image_nats + sum).abs() < 1e-3 * image_nats, "image {n}: nats {image_nats}, log-probs sum {sum}");
        }
        // About ln 256 = 5.545 nats per sub-pixel for a fresh network.
        let mean = -ours.iter().map(|&l| l as f64).sum::<f64>() / ours.len() as f64;
        assert!((4.5..6.5).contains(&mean), "untrained categorical net: {mean} nats per sub-pixel");
    }
}

/// PixelCNN++'s discretized logistic mixture, written out for one sub-pixel
/// from its outputs `o` = K weight logits, K means, K log-scales.
fn mixture_log_prob_by_hand(o: &[f32], k: usize, value: u8) -> f64 {
    let x = value as f64 * 2.0 / 255.0 - 1.0;
    let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
    let softplus = |v: f64| if v > 30.0 { v } else { v.exp().ln_1p() };
    let logits: Vec<f64> = o[..k].iter().map(|&v| v as f64).collect();
    let max = logits.iter().cloned().fold(f64::MIN, f64::max);
    let log_norm = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
    let mut terms = Vec::new();
    for j in 0..k {
        let mean = o[k + j] as f64;
        let log_scale = (o[2 * k + j] as f64).max(-7.0);
        let inv = (-log_scale).exp();
        let (plus, minus) = (inv * (x - mean + 1.0 / 255.0), inv * (x - mean - 1.0 / 255.0));
        let log_bin = if value == 0 {
            plus - softplus(plus) // log CDF(x + half bin): the bin reaches to −∞
        } else if value == 255 {
            -softplus(minus) // log (1 − CDF(x − half bin)): to +∞
        } else {
            let delta = sigmoid(plus) - sigmoid(minus);
            if delta > 1e-5 {
                delta.ln()
            } else {
                let mid = inv * (x - mean);
                mid - log_scale - 2.0 * softplus(mid) - 127.5f64.ln()
            }
        };
        terms.push(logits[j] - log_norm + log_bin);
    }
    let max = terms.iter().cloned().fold(f64::MIN, f64::max);
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

#[test]
fn mixture_log_probs_are_pixelcnn_plus_plus_likelihood_and_the_levels_hold_all_the_mass() {
    for config in mixture_nets() {
        let k = config.mixtures() as usize;
        let state = model(config.clone(), 3);
        randomize_class_biases(&state);
        // Three images, then 256 more that differ only in their first pixel, taking every level.
        let pixels = (config.height * config.width) as usize;
        let mut images = bytes(3, config.height, config.width, 5);
        let base = images[..pixels].to_vec();
        for level in 0..=255u8 {
            images.extend(std::iter::once(level).chain(base[1..].iter().cloned()));
        }
        let count = 3 + 256;
        // One class for all the 256 probes, so that their first pixels share one distribution.
        let classes: Option<Vec<i64>> = config.classes.map(|k| (0..count).map(|i| if i < 3 { (i * 2 + 1) % k } else { 1 }).collect());
        let eval = EvalConfig { threads: Some(2), labels: classes.as_ref().map(|c| json!(c)), ..Default::default() };
        let ours = log_probs(&state, &batch(&config, &images, count), &eval).unwrap();
        let x = Tensor::from_slice(&images.iter().map(|&v| v as f32).collect::<Vec<_>>()).reshape([count, 1, config.height, config.width]);
        let y = classes.as_ref().map(|c| Tensor::from_slice(c));
        let out = tch::no_grad(|| state.net.forward(&x, y.as_ref(), Default::default()).unwrap()); // (N, 3K, H, W)
        assert_eq!(out.size()[1], 3 * k as i64);
        let out = Vec::<f32>::try_from(out.permute([0, 2, 3, 1]).contiguous().reshape([-1])).unwrap();
        for (i, &value) in images.iter().enumerate().take(3 * pixels) {
            let expected = mixture_log_prob_by_hand(&out[i * 3 * k..(i + 1) * 3 * k], k, value);
            assert!((ours[i] as f64 - expected).abs() < 1e-4, "{config:?} sub-pixel {i} = {value}: {} against {expected}", ours[i]);
        }
        // The first pixel of images 3.. sees nothing before it: one distribution, every level once.
        let mass: f64 = (0..256).map(|level| (ours[(3 + level) * pixels] as f64).exp()).sum();
        assert!((mass - 1.0).abs() < 1e-4, "{config:?}: the 256 levels hold {mass}");
        let nats = nats_per_image(&state, &batch(&config, &images[..3 * pixels], 3), &eval_config(&config, 3)).unwrap();
        for (n, &image_nats) in nats.iter().enumerate() {
            let sum: f64 = ours[n * pixels..(n + 1) * pixels].iter().map(|&l| l as f64).sum();
            assert!((image_nats + sum).abs() < 1e-3 * image_nats, "image {n}: nats {image_nats}, log-probs sum {sum}");
        }
    }
}

#[test]
fn fast_sampling_and_completion_make_exactly_the_reference_samplers_8_bit_images() {
    for config in nets() {
        let state = model(config.clone(), 8);
        randomize_class_biases(&state);
        for (count, batch_size, temperature) in [(3, 3, 1.0), (2, 1, 0.7)] {
            let fast = sample_seeded(&state, count, batch_size, temperature, SampleMethod::Fast, None);
            let reference = sample_seeded(&state, count, batch_size, temperature, SampleMethod::Reference, None);
            assert_eq!(fast.images, reference.images, "{config:?}: images differ");
            let worst = fast.probabilities.iter().zip(&reference.probabilities).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1e-5, "probabilities differ by {worst}");
            if temperature == 1.0 {
                // The sampler draws from the likelihood's distribution: each drawn value's probability is exp(log p).
                let likelihood = log_probs(&state, &batch(&config, &fast.images, count), &eval_config(&config, count)).unwrap();
                let gap = likelihood.iter().zip(&fast.probabilities).map(|(l, p)| (l.exp() - p).abs()).fold(0.0f32, f32::max);
                assert!(gap < 1e-5, "{config:?}: sampling probabilities {gap} away from the likelihood's");
            }
            let distinct: std::collections::BTreeSet<u8> = fast.images.iter().cloned().collect();
            // Binary-looking or edge-saturated draws (0, 1, 255) would give at most 3 levels; a
            // mixture of 1–5 fresh logistics with random class biases spreads far less than 256 logits.
            assert!(distinct.len() > 5, "{config:?}: 8-bit samples use only {} levels", distinct.len());
        }
        let pixels = (config.height * config.width) as usize;
        let images = bytes(2, config.height, config.width, 6);
        let known: Vec<u8> = (0..2 * pixels).map(|i| (i % pixels < 2 * config.width as usize) as u8).collect();
        let done = Completion { images: pixelcnn_core::images::Values::Bytes(&images), known: &known };
        let fast = sample_seeded(&state, 2, 2, 1.0, SampleMethod::Fast, Some(&done));
        let reference = sample_seeded(&state, 2, 1, 1.0, SampleMethod::Reference, Some(&done));
        assert_eq!(fast.images, reference.images, "completion differs");
        for i in 0..images.len() {
            if known[i] == 1 {
                assert_eq!(fast.images[i], images[i], "known pixel {i} changed");
            }
        }
    }
}

/// The 256 logits at pixel i depend on no pixel at or after i, and on its neighbours on the left and above.
#[test]
fn categorical_outputs_stay_causal() {
    let config = categorical(ModelConfig { height: 6, width: 6, filters: 16, layers: Some(2), input_kernel: Some(5), kernel: Some(3), output_layers: Some(1), ..ModelConfig::gated() });
    let state = model(config, 2);
    // Seen over several inputs: one input can leave a ReLU of the head off.
    let mut seen = vec![vec![false; 36]; 36];
    for draw in 0..4 {
        let values: Vec<f32> = bytes(1, 6, 6, 3 + draw).iter().map(|&v| v as f32).collect();
        let x = Tensor::from_slice(&values).reshape([1, 1, 6, 6]).set_requires_grad(true);
        let logits = state.net.forward(&x, None, Default::default()).unwrap().sum_dim_intlist([1i64].as_slice(), false, tch::Kind::Float).reshape([-1]);
        for (i, row) in seen.iter_mut().enumerate() {
            let grad = Tensor::run_backward(&[logits.get(i as i64)], &[&x], true, false);
            for (d, v) in row.iter_mut().zip(Vec::<f32>::try_from(grad[0].reshape([-1])).unwrap()) {
                *d |= v != 0.0;
            }
        }
    }
    for (i, row) in seen.iter().enumerate() {
        assert!(row[i..].iter().all(|&d| !d), "pixel {i}'s logits depend on a pixel at or after it");
        let (r, c) = (i / 6, i % 6);
        assert!(c == 0 || row[i - 1], "pixel {i}'s logits ignore the pixel on its left");
        assert!(r == 0 || row[i - 6], "pixel {i}'s logits ignore the pixel above");
    }
}

/// Gradient images: each row a constant level, so the next pixel is predictable.
fn rows_of_levels(count: usize, h: i64, w: i64, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..count * h as usize).flat_map(|_| std::iter::repeat((rng.uniform_f32() * 8.0) as u8 * 32).take(w as usize)).collect()
}

#[test]
fn categorical_and_mixture_models_learn_8_bit_images_and_checkpoints_round_trip() {
    let small = ModelConfig { height: 8, width: 8, filters: 16, layers: Some(2), input_kernel: Some(3), output_layers: Some(1), ..ModelConfig::gated_small() };
    for config in [categorical(small.clone()), mixture(small, 4)] {
        learns_and_round_trips(config);
    }
}

fn learns_and_round_trips(config: ModelConfig) {
    let mut state = model(config.clone(), 7);
    let (train, test) = (rows_of_levels(96, 8, 8, 1), rows_of_levels(32, 8, 8, 2));
    fn split<'a>(config: &ModelConfig, data: &'a [u8], count: i64) -> Split<'a> {
        Split { images: batch(config, data, count), labels: None }
    }
    let train_config = TrainConfig { epochs: 3, batch_size: 16, learning_rate: 5e-3, seed: 1, threads: Some(2), eval_batch_size: 64, checkpoint: None, precision: Default::default(), distributed: None, ..Default::default() };
    fit(&mut state, split(&config, &train, 96), Some(split(&config, &test, 32)), &train_config, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let val: Vec<f64> = state.history.iter().map(|r| r.val_loss.unwrap()).collect();
    assert!(val[2] < val[0] * 0.85 && val[0] < 5.6, "{:?}: validation nats per sub-pixel did not fall: {val:?}", config.output);

    let dir = std::env::temp_dir().join(format!("pixelcnn-outputs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.safetensors", config.output.name()));
    checkpoint::save(&state, &path).unwrap();
    let loaded = checkpoint::load(&path, Device::Cpu).unwrap();
    assert_eq!(loaded.net.config(), &config);
    let ours = |s: &ModelState| log_probs(s, &batch(&config, &test[..4 * 64], 4), &eval_config(&config, 4)).unwrap();
    assert_eq!(ours(&loaded), ours(&state));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn binary_models_refuse_8_bit_bytes_and_predict_is_for_binary_models() {
    let binary = model(ModelConfig { height: 4, width: 4, filters: 8, residual_blocks: Some(1), ..ModelConfig::small() }, 1);
    let config = binary.net.config().clone();
    match log_probs(&binary, &batch(&config, &[0, 1, 200, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0], 1), &EvalConfig::default()) {
        Err(Error::InvalidData(message)) => assert!(message.contains("byte 2 is 200") && message.contains("categorical"), "{message}"),
        other => panic!("expected InvalidData, got {:?}", other.map(|v| v.len())),
    }
    let config = categorical(config);
    let eight_bit = model(config.clone(), 1);
    match predict(&eight_bit, &batch(&config, &[7; 16], 1), &EvalConfig::default()) {
        Err(Error::InvalidConfig { field, message }) => assert!(field == "model.output" && message.contains("logProbs"), "{field}: {message}"),
        other => panic!("expected InvalidConfig, got {:?}", other.map(|v| v.len())),
    }
    // A bernoulli config serializes as before outputs existed (no `output` key).
    let seed = serde_json::to_value(pixelcnn_core::config::ModelConfig::seed()).unwrap();
    assert!(seed.get("output").is_none());
    assert_eq!(serde_json::to_value(&config).unwrap()["output"], "categorical");
    assert_eq!(pixelcnn_core::config::ModelConfig::from_json(&json!({ "preset": "small", "output": "categorical" })).unwrap().output_channels(), 256);
}

#[test]
fn mixtures_default_to_ten_and_bad_values_name_the_field() {
    let parsed = ModelConfig::from_json(&json!({ "preset": "gated", "output": "logistic-mixture" })).unwrap();
    assert_eq!((parsed.mixtures, parsed.output_channels()), (Some(10), 30));
    assert_eq!(serde_json::to_value(&parsed).unwrap()["mixtures"], 10);
    for (fields, wanted) in [
        (json!({ "output": "logistic-mixture", "mixtures": 0 }), "model.mixtures"),
        (json!({ "output": "logistic-mixture", "mixtures": 2.5 }), "model.mixtures"),
        (json!({ "output": "categorical", "mixtures": 3 }), "model.mixtures"),
        (json!({ "mixtures": 3 }), "model.mixtures"),
        (json!({ "output": "logistic" }), "model.output"),
    ] {
        match ModelConfig::from_json(&fields) {
            Err(Error::InvalidConfig { field, message }) => assert_eq!(field, wanted, "{fields}: {message}"),
            other => panic!("{fields}: expected InvalidConfig, got {other:?}"),
        }
    }
}
