//! Colour models (`channels: 3`) of every architecture and output: the
//! dependency structure inside a pixel (R → G → B for the per-sub-pixel
//! outputs, whole pixels for the mixture), the mixture's coupled colour
//! likelihood against an independent f64 implementation with every
//! conditional holding a mass of 1, exact fast sampling and completion
//! against the reference sampler, learning, checkpoints and bad input.

mod common;
use common::*;
use pixelcnn_core::checkpoint;
use pixelcnn_core::config::{EvalConfig, ModelConfig, Output, SampleMethod, TrainConfig};
use pixelcnn_core::evaluate::{log_probs, nats_per_image};
use pixelcnn_core::images::ImagesRef;
use pixelcnn_core::rng::Rng;
use pixelcnn_core::sample::Completion;
use pixelcnn_core::state::ModelState;
use pixelcnn_core::train::{fit, Split};
use pixelcnn_core::Error;
use serde_json::{json, Value};
use std::sync::atomic::AtomicBool;
use tch::{Device, Kind, Tensor};

fn colour(config: ModelConfig, output: Output) -> ModelConfig {
    let mixtures = (output == Output::LogisticMixture).then_some(3);
    ModelConfig { channels: 3, output, mixtures, ..config }
}

fn small_pixelcnn() -> ModelConfig {
    ModelConfig { height: 5, width: 4, filters: 12, residual_blocks: Some(2), input_kernel: Some(3), residual_kernel: Some(3), output_layers: Some(1), ..ModelConfig::seed() }
}

fn small_gated() -> ModelConfig {
    ModelConfig { height: 5, width: 4, filters: 9, layers: Some(3), input_kernel: Some(3), kernel: Some(3), output_layers: Some(1), ..ModelConfig::gated() }
}

const OUTPUTS: [Output; 3] = [Output::Bernoulli, Output::Categorical, Output::LogisticMixture];

/// Every architecture × output in colour, two of them conditional.
fn nets() -> Vec<ModelConfig> {
    let mut out = Vec::new();
    for output in OUTPUTS {
        out.push(colour(small_pixelcnn(), output));
        out.push(colour(small_gated(), output));
    }
    out.push(conditional(colour(small_gated(), Output::Categorical), 3));
    out.push(conditional(colour(small_pixelcnn(), Output::LogisticMixture), 2));
    out
}

/// Random images for `config`: 0/1 for Bernoulli, 0–255 otherwise, N×H×W×3.
fn images(config: &ModelConfig, count: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let levels = if config.output == Output::Bernoulli { 2.0 } else { 256.0 };
    (0..count * config.pixels_per_image() as usize).map(|_| (rng.uniform_f32() * levels) as u8).collect()
}

fn batch<'a>(config: &ModelConfig, data: &'a [u8], count: i64) -> ImagesRef<'a> {
    ImagesRef { count, height: config.height, width: config.width, channels: 3, data: pixelcnn_core::images::Values::Bytes(data) }
}


fn eval_config(config: &ModelConfig, count: i64) -> EvalConfig {
    EvalConfig { threads: Some(2), labels: cycled_labels(config, count), ..Default::default() }
}

/// The network's input (1, 3, H, W) from N×H×W×C bytes, as float.
fn as_input(config: &ModelConfig, data: &[u8], count: i64) -> Tensor {
    let values: Vec<f32> = data.iter().map(|&v| v as f32).collect();
    Tensor::from_slice(&values).reshape([count, config.height, config.width, 3]).permute([0, 3, 1, 2]).contiguous()
}

/// The output channels that describe sub-pixel channel `ch` (per-sub-pixel
/// outputs) or the whole pixel (the mixture: every output channel).
fn outputs_of(config: &ModelConfig, ch: i64) -> (i64, i64) {
    match config.output {
        Output::Bernoulli => (ch, 1),
        Output::Categorical => (ch * 256, 256),
        Output::LogisticMixture => (0, config.output_channels()),
    }
}

/// deps[(i·3 + c)][(j·3 + d)]: whether the outputs for sub-pixel c of pixel
/// i have a nonzero gradient with respect to input sub-pixel d of pixel j,
/// on any of four random inputs.
fn dependencies(state: &ModelState) -> Vec<Vec<bool>> {
    let config = state.net.config().clone();
    let (pixels, subs) = (config.height * config.width, config.pixels_per_image());
    let mut seen = vec![vec![false; subs as usize]; subs as usize];
    for draw in 0..4 {
        let x = as_input(&config, &images(&config, 1, 11 + draw), 1).set_requires_grad(true);
        let out = state.net.forward(&x, None, Default::default()).unwrap(); // (1, outC, H, W)
        for ch in 0..3 {
            let (start, len) = outputs_of(&config, ch);
            let per_pixel = out.narrow(1, start, len).sum_dim_intlist([1i64].as_slice(), false, Kind::Float).reshape([-1]);
            for i in 0..pixels {
                let grad = Tensor::run_backward(&[per_pixel.get(i)], &[&x], true, false);
                // (1, 3, H, W) → pixel-major, channel-minor.
                let grad = Vec::<f32>::try_from(grad[0].permute([0, 2, 3, 1]).reshape([-1])).unwrap();
                for (d, g) in seen[(i * 3 + ch) as usize].iter_mut().zip(grad) {
                    *d |= g != 0.0;
                }
            }
        }
    }
    seen
}

#[test]
fn each_sub_pixel_sees_exactly_the_earlier_pixels_and_the_earlier_channels_of_its_own() {
    for config in [colour(small_pixelcnn(), Output::Bernoulli), colour(small_gated(), Output::Categorical), colour(small_gated(), Output::LogisticMixture), colour(small_pixelcnn(), Output::LogisticMixture)] {
        let state = model(config.clone(), 5);
        let deps = dependencies(&state);
        let w = config.width as usize;
        let per_sub_pixel = config.output != Output::LogisticMixture;
        for (sub, row) in deps.iter().enumerate() {
            let (i, c) = (sub / 3, sub % 3);
            for (other, &depends) in row.iter().enumerate() {
                let (j, d) = (other / 3, other % 3);
                let allowed = j < i || (per_sub_pixel && j == i && d < c);
                assert!(allowed || !depends, "{config:?}: sub-pixel {c} of pixel {i} depends on sub-pixel {d} of pixel {j}");
            }
            // The left neighbour and the pixel above are seen, in every channel.
            for d in 0..3 {
                assert!(i % w == 0 || row[(i - 1) * 3 + d], "{config:?}: sub-pixel {c} of pixel {i} ignores channel {d} on its left");
                assert!(i < w || row[(i - w) * 3 + d], "{config:?}: sub-pixel {c} of pixel {i} ignores channel {d} above");
            }
            if per_sub_pixel {
                for d in 0..c {
                    assert!(row[i * 3 + d], "{config:?}: sub-pixel {c} of pixel {i} ignores channel {d} of its own pixel");
                }
            }
        }
        if config.architecture == pixelcnn_core::config::Architecture::Gated {
            // No blind spot in colour either: the last pixel sees every earlier pixel.
            let last = deps.len() - 1;
            let earlier = (config.height * config.width - 1) as usize;
            assert!((0..earlier).all(|j| deps[last][j * 3]), "{config:?}: the last pixel misses an earlier one");
        }
    }
}

/// PixelCNN++'s colour mixture, written out in f64 for one pixel from its
/// outputs `o` in the library's layout (K logits, 3K means, 3K log-scales,
/// 3K coefficients): log p(r, g, b) = logsumexp_k(log w_k + Σ_c log P_c(x_c | k))
/// with the means coupled by tanh coefficients.
fn colour_mixture_log_prob_by_hand(o: &[f32], k: usize, rgb: [u8; 3]) -> f64 {
    let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
    let softplus = |v: f64| if v > 30.0 { v } else { v.exp().ln_1p() };
    let x: Vec<f64> = rgb.iter().map(|&v| v as f64 * 2.0 / 255.0 - 1.0).collect();
    let at = |block: usize, c: usize, j: usize| o[k + block * 3 * k + c * k + j] as f64;
    let logits: Vec<f64> = o[..k].iter().map(|&v| v as f64).collect();
    let max = logits.iter().cloned().fold(f64::MIN, f64::max);
    let log_norm = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
    let mut terms = Vec::new();
    for j in 0..k {
        let coeff = |n: usize| at(2, n, j).tanh();
        let means = [at(0, 0, j), at(0, 1, j) + coeff(0) * x[0], at(0, 2, j) + coeff(1) * x[0] + coeff(2) * x[1]];
        let mut total = logits[j] - log_norm;
        for c in 0..3 {
            let log_scale = at(1, c, j).max(-7.0);
            let inv = (-log_scale).exp();
            let (plus, minus) = (inv * (x[c] - means[c] + 1.0 / 255.0), inv * (x[c] - means[c] - 1.0 / 255.0));
            total += if rgb[c] == 0 {
                plus - softplus(plus)
            } else if rgb[c] == 255 {
                -softplus(minus)
            } else {
                let delta = sigmoid(plus) - sigmoid(minus);
                if delta > 1e-5 { delta.ln() } else {
                    let mid = inv * (x[c] - means[c]);
                    mid - log_scale - 2.0 * softplus(mid) - 127.5f64.ln()
                }
            };
        }
        terms.push(total);
    }
    let max = terms.iter().cloned().fold(f64::MIN, f64::max);
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

#[test]
fn the_colour_mixture_is_pixelcnn_plus_plus_likelihood_split_into_conditionals_that_each_hold_all_the_mass() {
    for config in [colour(small_gated(), Output::LogisticMixture), conditional(colour(small_pixelcnn(), Output::LogisticMixture), 2)] {
        let k = config.mixtures() as usize;
        assert_eq!(config.output_channels(), 10 * k as i64);
        let state = model(config.clone(), 3);
        randomize_class_biases(&state);
        let subs = config.pixels_per_image() as usize;
        // Three images, then for each channel c 256 probes that agree with image 0 except
        // in channel c of its first pixel, which takes every level.
        let mut data = images(&config, 3, 5);
        let base = data[..subs].to_vec();
        for c in 0..3 {
            for level in 0..=255u8 {
                let mut probe = base.clone();
                probe[c] = level;
                data.extend(probe);
            }
        }
        let count = 3 + 3 * 256;
        let classes: Option<Vec<i64>> = config.classes.map(|n| (0..count as i64).map(|i| if i < 3 { (i * 2 + 1) % n } else { 1 }).collect());
        let eval = EvalConfig { threads: Some(2), labels: classes.as_ref().map(|c| json!(c)), ..Default::default() };
        let ours = log_probs(&state, &batch(&config, &data, count as i64), &eval).unwrap();
        let y = classes.as_ref().map(|c| Tensor::from_slice(c));
        let out = tch::no_grad(|| state.net.forward(&as_input(&config, &data[..3 * subs], 3), y.as_ref().map(|t| t.narrow(0, 0, 3)).as_ref(), Default::default()).unwrap());
        let out = Vec::<f32>::try_from(out.permute([0, 2, 3, 1]).contiguous().reshape([-1])).unwrap();
        let outc = 10 * k;
        for pixel in 0..3 * subs / 3 {
            let rgb = [data[pixel * 3], data[pixel * 3 + 1], data[pixel * 3 + 2]];
            let expected = colour_mixture_log_prob_by_hand(&out[pixel * outc..(pixel + 1) * outc], k, rgb);
            let joint: f64 = (0..3).map(|c| ours[pixel * 3 + c] as f64).sum();
            assert!((joint - expected).abs() < 1e-4, "{config:?} pixel {pixel} {rgb:?}: {joint} against {expected}");
        }
        for c in 0..3 {
            let mass: f64 = (0..256).map(|level| (ours[(3 + c * 256 + level) * subs + c] as f64).exp()).sum();
            assert!((mass - 1.0).abs() < 1e-4, "{config:?}: channel {c}'s 256 levels hold {mass}");
        }
        let nats = nats_per_image(&state, &batch(&config, &data[..3 * subs], 3), &eval_config(&config, 3)).unwrap();
        for (n, &image_nats) in nats.iter().enumerate() {
            let sum: f64 = ours[n * subs..(n + 1) * subs].iter().map(|&l| l as f64).sum();
            assert!((image_nats + sum).abs() < 1e-3 * image_nats, "image {n}: nats {image_nats}, log-probs sum {sum}");
        }
    }
}

#[test]
fn fast_sampling_and_completion_make_exactly_the_reference_samplers_colour_images() {
    for config in nets() {
        let state = model(config.clone(), 8);
        randomize_class_biases(&state);
        for (count, batch_size, temperature) in [(3, 3, 1.0), (2, 1, 0.8)] {
            let fast = sample_seeded(&state, count, batch_size, temperature, SampleMethod::Fast, None);
            let reference = sample_seeded(&state, count, batch_size, temperature, SampleMethod::Reference, None);
            assert_eq!(fast.images.len(), (count * config.pixels_per_image()) as usize);
            assert_eq!(fast.images, reference.images, "{config:?}: images differ");
            let worst = fast.probabilities.iter().zip(&reference.probabilities).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1e-5, "{config:?}: probabilities differ by {worst}");
            if temperature == 1.0 && config.output != Output::Bernoulli {
                // The sampler's distribution is the likelihood's: the probability it drew each
                // sub-pixel with is exp(log p) of the value it drew, conditionals of colour included.
                let likelihood = log_probs(&state, &batch(&config, &fast.images, count), &eval_config(&config, count)).unwrap();
                let gap = likelihood.iter().zip(&fast.probabilities).map(|(l, p)| (l.exp() - p).abs()).fold(0.0f32, f32::max);
                assert!(gap < 1e-5, "{config:?}: sampling probabilities {gap} away from the likelihood's");
            }
            // The three channels of a pixel are not copies of each other.
            let differ = fast.images.chunks(3).filter(|p| p[0] != p[1] || p[1] != p[2]).count();
            assert!(differ > fast.images.len() / 12, "{config:?}: channels almost always equal");
        }
        // Completion: the top two rows given, and the green channel everywhere.
        let subs = config.pixels_per_image() as usize;
        let given = images(&config, 2, 6);
        let row = (config.width * 3) as usize;
        let known: Vec<u8> = (0..2 * subs).map(|i| (i % subs < 2 * row || i % 3 == 1) as u8).collect();
        let done = Completion { images: pixelcnn_core::images::Values::Bytes(&given), known: &known };
        let fast = sample_seeded(&state, 2, 2, 1.0, SampleMethod::Fast, Some(&done));
        let reference = sample_seeded(&state, 2, 1, 1.0, SampleMethod::Reference, Some(&done));
        assert_eq!(fast.images, reference.images, "{config:?}: completion differs");
        for i in 0..given.len() {
            if known[i] == 1 {
                assert_eq!(fast.images[i], given[i], "known sub-pixel {i} changed");
            }
        }
    }
}

#[test]
fn colour_models_learn_and_round_trip_through_checkpoints() {
    let net = ModelConfig { height: 6, width: 6, filters: 12, layers: Some(2), input_kernel: Some(3), output_layers: Some(1), ..ModelConfig::gated_small() };
    for output in [Output::Categorical, Output::LogisticMixture] {
        let config = colour(net.clone(), output);
        let mut state = model(config.clone(), 7);
        // Rows of one colour: predictable from the pixel on the left, and G and B from R.
        let striped_colour = |count: usize, seed: u64| -> Vec<u8> {
            let mut rng = Rng::new(seed);
            (0..count * 6)
                .flat_map(|_| {
                    let r = (rng.uniform_f32() * 8.0) as u8 * 32;
                    std::iter::repeat([r, 255 - r, r / 2]).take(6).flatten()
                })
                .collect()
        };
        let (train, test) = (striped_colour(96, 1), striped_colour(32, 2));
        let split = |data: &'static [u8], count| Split { images: batch(&config, data, count), labels: None };
        let (train, test): (&'static [u8], &'static [u8]) = (Box::leak(train.into_boxed_slice()), Box::leak(test.into_boxed_slice()));
        let train_config = TrainConfig { epochs: 4, batch_size: 16, learning_rate: 5e-3, seed: 1, threads: Some(2), eval_batch_size: 64, checkpoint: None, precision: Default::default(), distributed: None, ..Default::default() };
        fit(&mut state, split(train, 96), Some(split(test, 32)), &train_config, &AtomicBool::new(false), &mut |_| {}).unwrap();
        let val: Vec<f64> = state.history.iter().map(|r| r.val_loss.unwrap()).collect();
        assert!(val[3] < val[0] * 0.85, "{output:?}: validation nats per sub-pixel did not fall: {val:?}");

        let dir = std::env::temp_dir().join(format!("pixelcnn-colour-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.safetensors", config.output.name()));
        checkpoint::save(&state, &path).unwrap();
        let loaded = checkpoint::load(&path, Device::Cpu).unwrap();
        assert_eq!(loaded.net.config(), &config);
        let ours = |s: &ModelState| log_probs(s, &batch(&config, &test[..4 * 108], 4), &eval_config(&config, 4)).unwrap();
        assert_eq!(ours(&loaded), ours(&state));
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn bad_colour_configs_and_images_name_what_is_wrong() {
    let expect_config = |fields: Value, needle: &str| match ModelConfig::from_json(&fields) {
        Err(Error::InvalidConfig { field, message }) => assert!(format!("{field} {message}").contains(needle), "{field}: {message}"),
        other => panic!("{fields}: expected a config error, got {other:?}"),
    };
    expect_config(json!({ "channels": 2, "output": "categorical" }), "model.channels");
    expect_config(json!({ "channels": 3, "output": "categorical", "filters": 4, "preset": "small" }), "model.filters");
    expect_config(json!({ "channels": 3, "output": "categorical", "architecture": "gated", "filters": 2 }), "R, G and B");
    // A mixture needs no groups: 2 filters are enough.
    assert!(ModelConfig::from_json(&json!({ "channels": 3, "output": "logistic-mixture", "architecture": "gated", "filters": 2 })).is_ok());
    let config = colour(small_gated(), Output::Categorical);
    let state = model(config.clone(), 1);
    let gray = vec![7u8; (config.height * config.width) as usize];
    let one_channel = ImagesRef { count: 1, height: config.height, width: config.width, channels: 1, data: pixelcnn_core::images::Values::Bytes(&gray) };
    match log_probs(&state, &one_channel, &EvalConfig::default()) {
        Err(Error::InvalidData(message)) => assert!(message.contains("×1") && message.contains("×3"), "{message}"),
        other => panic!("expected a data error, got {other:?}"),
    }
}
