//! The categorical (256-level) output against the definitions: its loss is
//! the softmax cross-entropy of each sub-pixel's value, its log-probabilities
//! sum to the per-image NLL, the fast sampler makes exactly the reference
//! sampler's 8-bit images, it stays causal, learns, and round-trips through
//! checkpoints; binary models keep refusing 8-bit bytes.

mod common;
use common::*;
use pixelcnn_core::checkpoint;
use pixelcnn_core::config::{EvalConfig, ModelConfig, Output, SampleConfig, SampleMethod, TrainConfig};
use pixelcnn_core::evaluate::{log_probs, nats_per_image, predict};
use pixelcnn_core::images::ImagesRef;
use pixelcnn_core::rng::Rng;
use pixelcnn_core::sample::{sample, Completion, SampleOutput};
use pixelcnn_core::state::ModelState;
use pixelcnn_core::train::{fit, Split};
use pixelcnn_core::Error;
use serde_json::{json, Value};
use std::sync::atomic::AtomicBool;
use tch::{Device, Tensor};

fn categorical(config: ModelConfig) -> ModelConfig {
    ModelConfig { output: Output::Categorical, ..config }
}

fn nets() -> Vec<ModelConfig> {
    vec![
        categorical(ModelConfig { height: 7, width: 6, filters: 16, residual_blocks: Some(1), ..ModelConfig::small() }),
        categorical(custom_gated_config()),
        conditional(categorical(custom_gated_config()), 3),
        conditional(categorical(custom_config()), 2),
    ]
}

/// 8-bit images: uniform bytes.
fn bytes(count: usize, h: i64, w: i64, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..count * (h * w) as usize).map(|_| (rng.uniform_f32() * 256.0) as u8).collect()
}

fn labels(config: &ModelConfig, count: i64) -> Option<Value> {
    config.classes.map(|k| json!((0..count).map(|i| (i * 2 + 1) % k).collect::<Vec<_>>()))
}

fn eval_config(config: &ModelConfig, count: i64) -> EvalConfig {
    EvalConfig { threads: Some(2), labels: labels(config, count), ..Default::default() }
}

fn batch(config: &ModelConfig, data: &[u8], count: i64) -> ImagesRef<'static> {
    let leaked: &'static [u8] = Box::leak(data.to_vec().into_boxed_slice());
    ImagesRef { count, height: config.height, width: config.width, channels: 1, data: leaked }
}

#[test]
fn log_probs_are_the_softmax_of_each_sub_pixels_value_and_sum_to_the_nll() {
    for config in nets() {
        let state = model(config.clone(), 3);
        randomize_class_biases(&state);
        let images = bytes(3, config.height, config.width, 5);
        let ours = log_probs(&state, &batch(&config, &images, 3), &eval_config(&config, 3)).unwrap();
        // By hand: the network's 256 logits at each pixel, log-softmax, the value's entry.
        let x = Tensor::from_slice(&images.iter().map(|&v| v as f32).collect::<Vec<_>>()).reshape([3, 1, config.height, config.width]);
        let y = labels(&config, 3).map(|v| Tensor::from_slice(&v.as_array().unwrap().iter().map(|l| l.as_i64().unwrap()).collect::<Vec<_>>()));
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

fn run(state: &ModelState, count: i64, batch_size: i64, temperature: f64, method: SampleMethod, completion: Option<&Completion>) -> SampleOutput {
    let config = SampleConfig {
        count, seed: 4, temperature, batch_size: Some(batch_size), method, threads: Some(2),
        labels: labels(state.net.config(), count), precision: Default::default(),
    };
    sample(state, &config, completion, &AtomicBool::new(false), &mut |_| {}).unwrap()
}

#[test]
fn fast_sampling_and_completion_make_exactly_the_reference_samplers_8_bit_images() {
    for config in nets() {
        let state = model(config.clone(), 8);
        randomize_class_biases(&state);
        for (count, batch_size, temperature) in [(3, 3, 1.0), (2, 1, 0.7)] {
            let fast = run(&state, count, batch_size, temperature, SampleMethod::Fast, None);
            let reference = run(&state, count, batch_size, temperature, SampleMethod::Reference, None);
            assert_eq!(fast.images, reference.images, "{config:?}: images differ");
            let worst = fast.probabilities.iter().zip(&reference.probabilities).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1e-5, "probabilities differ by {worst}");
            let distinct: std::collections::BTreeSet<u8> = fast.images.iter().cloned().collect();
            assert!(distinct.len() > 20, "8-bit samples use only {} levels", distinct.len());
        }
        let pixels = (config.height * config.width) as usize;
        let images = bytes(2, config.height, config.width, 6);
        let known: Vec<u8> = (0..2 * pixels).map(|i| (i % pixels < 2 * config.width as usize) as u8).collect();
        let done = Completion { images: &images, known: &known };
        let fast = run(&state, 2, 2, 1.0, SampleMethod::Fast, Some(&done));
        let reference = run(&state, 2, 1, 1.0, SampleMethod::Reference, Some(&done));
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
    let config = categorical(ModelConfig { height: 6, width: 6, filters: 16, layers: Some(2), input_kernel: 5, kernel: Some(3), output_layers: 1, ..ModelConfig::gated() });
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
fn a_categorical_model_learns_8_bit_images_and_checkpoints_round_trip() {
    let config = categorical(ModelConfig { height: 8, width: 8, filters: 16, layers: Some(2), input_kernel: 3, output_layers: 1, ..ModelConfig::gated_small() });
    let mut state = model(config.clone(), 7);
    let (train, test) = (rows_of_levels(96, 8, 8, 1), rows_of_levels(32, 8, 8, 2));
    let split = |data: &[u8], count| Split { images: batch(&config, data, count), labels: None };
    let train_config = TrainConfig { epochs: 3, batch_size: 16, learning_rate: 5e-3, seed: 1, threads: Some(2), eval_batch_size: 64, checkpoint: None, precision: Default::default() };
    fit(&mut state, split(&train, 96), Some(split(&test, 32)), &train_config, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let val: Vec<f64> = state.history.iter().map(|r| r.val_loss.unwrap()).collect();
    assert!(val[2] < val[0] * 0.8 && val[0] < 5.6, "validation nats per sub-pixel did not fall: {val:?}");

    let dir = std::env::temp_dir().join(format!("pixelcnn-outputs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("categorical.safetensors");
    checkpoint::save(&state, &path).unwrap();
    let loaded = checkpoint::load(&path, Device::Cpu).unwrap();
    assert_eq!(loaded.net.config().output, Output::Categorical);
    let ours = |s: &ModelState| log_probs(s, &batch(&config, &test[..4 * 64], 4), &eval_config(&config, 4)).unwrap();
    assert_eq!(ours(&loaded), ours(&state));
    let _ = std::fs::remove_dir_all(&dir);
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
