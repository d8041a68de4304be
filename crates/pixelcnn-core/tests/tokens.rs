//! Token grids (priors over discrete codes): configuration, causality by
//! gradients through the embedding, fast == reference sampling at V = 512
//! for every architecture (conditional or not, with completion), the data
//! checks, checkpoints, and a model that learns a Markov process's entropy.

mod common;
use common::tokens::*;
use common::*;
use pixelcnn_core::config::{EvalConfig, ModelConfig, SampleConfig, SampleMethod, TrainConfig};
use pixelcnn_core::images::{ImagesRef, Values};
use pixelcnn_core::network::Network;
use pixelcnn_core::rng::Rng;
use pixelcnn_core::sample::{sample, Completion, SampleOutput};
use pixelcnn_core::state::ModelState;
use pixelcnn_core::Error;
use serde_json::json;
use std::sync::atomic::AtomicBool;
use tch::{Device, Tensor};

#[test]
fn a_vocabulary_makes_a_categorical_token_model_with_an_embedding() {
    let c = ModelConfig::from_json(&json!({ "preset": "gated-small", "vocabulary": 512 })).unwrap();
    assert_eq!(c.output, pixelcnn_core::config::Output::Categorical);
    assert_eq!(c.embedding, Some(c.filters), "the embedding's default is filters");
    assert_eq!(c.output_channels(), 512);
    let pp = ModelConfig::from_json(&json!({ "preset": "pixelcnn++-small", "vocabulary": 300, "embedding": 12 })).unwrap();
    assert_eq!((pp.mixtures, pp.embedding, pp.input_channels()), (None, Some(12), 12), "the preset's mixture goes with its output");
    let net = Network::new(c.clone(), Device::Cpu, 1).unwrap();
    let shapes = Network::parameter_shapes(&c);
    assert_eq!(shapes[0], ("embedding.weight".to_string(), vec![512, c.filters]));
    assert_eq!(net.parameters().len(), shapes.len());
    let field_of = |value: serde_json::Value| match ModelConfig::from_json(&value) {
        Err(Error::InvalidConfig { field, .. }) => field,
        other => panic!("{value} should be refused, got {other:?}"),
    };
    assert_eq!(field_of(json!({ "preset": "gated-small", "vocabulary": 1 })), "model.vocabulary");
    assert_eq!(field_of(json!({ "preset": "gated-small", "vocabulary": 65_537 })), "model.vocabulary");
    assert_eq!(field_of(json!({ "preset": "gated-small", "vocabulary": 16, "channels": 3 })), "model.channels");
    assert_eq!(field_of(json!({ "preset": "gated-small", "vocabulary": 16, "output": "bernoulli" })), "model.output");
    assert_eq!(field_of(json!({ "preset": "gated-small", "vocabulary": 16, "embedding": 0 })), "model.embedding");
    assert_eq!(field_of(json!({ "preset": "gated-small", "embedding": 8 })), "model.embedding");
}

#[test]
fn every_output_reads_exactly_the_earlier_tokens() {
    for (i, config) in token_configs(40, 8, 8).into_iter().enumerate() {
        for classes in [None, Some(3)] {
            let config = ModelConfig { classes, ..config.clone() };
            let net = Network::new(config.clone(), Device::Cpu, 4).unwrap();
            perturb(&net);
            let labels = classes.map(|_| Tensor::from_slice(&[2i64]));
            let table = dependencies(&net, labels.as_ref());
            let name = config.architecture.name();
            for (out, row) in table.iter().enumerate() {
                for (at, &reads) in row.iter().enumerate() {
                    assert!(!(reads && at >= out), "{name}: output {out} reads position {at}, at or after it");
                }
                // Every network reads the neighbours left and above; the seed's family has
                // the blind spot up and to the right, which the other two cover.
                let (r, c, w) = (out as i64 / 8, out as i64 % 8, 8);
                let mut needed = vec![(r, c - 1), (r - 1, c)];
                if i > 0 {
                    needed.push((r - 1, c + 1));
                }
                for (nr, nc) in needed.into_iter().filter(|&(nr, nc)| nr >= 0 && (0..w).contains(&nc)) {
                    assert!(row[(nr * w + nc) as usize], "{name}: output {out} does not read position ({nr}, {nc})");
                }
            }
        }
    }
}

fn sample_with(state: &ModelState, count: i64, batch: i64, temperature: f64, method: SampleMethod, completion: Option<&Completion>) -> SampleOutput {
    let labels = state.net.config().classes.map(|k| json!((0..count).map(|i| (i * 5 + 1) % k).collect::<Vec<_>>()));
    let config = SampleConfig { count, seed: 21, temperature, batch_size: Some(batch), method, threads: Some(2), labels, ..Default::default() };
    sample(state, &config, completion, &AtomicBool::new(false), &mut |_| {}).unwrap()
}

fn assert_same(fast: &SampleOutput, reference: &SampleOutput, what: &str) {
    assert!(fast.images.is_empty() && reference.images.is_empty(), "{what}: token grids come back as tokens");
    assert_eq!(fast.tokens, reference.tokens, "{what}: tokens differ");
    let worst = fast.probabilities.iter().zip(&reference.probabilities).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1e-5, "{what}: probabilities differ by up to {worst}");
}

#[test]
fn fast_sampling_of_512_token_grids_equals_the_reference_loop() {
    for config in token_configs(512, 8, 8) {
        for classes in [None, Some(4)] {
            let state = model(ModelConfig { classes, ..config.clone() }, 9);
            perturb(&state.net);
            for (count, batch, temperature) in [(1, 1, 1.0), (3, 2, 0.8), (5, 5, 1.3)] {
                let what = format!("{} classes {classes:?}: count {count}, batch {batch}, T {temperature}", config.architecture.name());
                let fast = sample_with(&state, count, batch, temperature, SampleMethod::Fast, None);
                let reference = sample_with(&state, count, batch, temperature, SampleMethod::Reference, None);
                assert_same(&fast, &reference, &what);
                assert_eq!(fast.tokens.len() as i64, count * 64);
                assert!(fast.tokens.iter().all(|&t| (0..512).contains(&t)), "{what}: a token outside the vocabulary");
                let distinct: std::collections::HashSet<_> = fast.tokens.iter().collect();
                assert!(distinct.len() > 10, "{what}: degenerate samples ({} distinct tokens)", distinct.len());
            }
            // Completion: the top three rows and one later token given.
            let given = random_tokens(3, 64, 512, 17);
            let known: Vec<u8> = (0..given.len()).map(|i| (i % 64 < 24 || i % 64 == 50) as u8).collect();
            let done = Completion { images: Values::Tokens(&given), known: &known };
            let fast = sample_with(&state, 3, 3, 1.0, SampleMethod::Fast, Some(&done));
            let reference = sample_with(&state, 3, 2, 1.0, SampleMethod::Reference, Some(&done));
            assert_same(&fast, &reference, "completion");
            for i in (0..given.len()).filter(|&i| known[i] == 1) {
                assert_eq!(fast.tokens[i], given[i], "known token {i} was changed");
            }
        }
    }
}

#[test]
fn tokens_are_checked_against_the_model() {
    let config = token_configs(16, 4, 4).remove(1);
    let state = model(config.clone(), 1);
    let eval = EvalConfig::default();
    let message = |r: pixelcnn_core::Result<Vec<f32>>| match r {
        Err(Error::InvalidData(m)) => m,
        other => panic!("should be refused, got {other:?}"),
    };
    let mut tokens = random_tokens(2, 16, 16, 1);
    tokens[5] = 16;
    let m = message(pixelcnn_core::evaluate::log_probs(&state, &grids(&tokens, &config), &eval));
    assert!(m.contains("token 5 is 16") && m.contains("vocabulary has 16"), "{m}");
    tokens[5] = -1;
    assert!(message(pixelcnn_core::evaluate::log_probs(&state, &grids(&tokens, &config), &eval)).contains("token 5 is -1"));
    let bytes = vec![0u8; 32];
    let as_bytes = ImagesRef { count: 2, height: 4, width: 4, channels: 1, data: Values::Bytes(&bytes) };
    assert!(message(pixelcnn_core::evaluate::log_probs(&state, &as_bytes, &eval)).contains("token grid"));
    let pixels = model(ModelConfig { height: 4, width: 4, ..ModelConfig::small() }, 1);
    let zeros = vec![0i32; 32];
    assert!(message(pixelcnn_core::evaluate::log_probs(&pixels, &grids(&zeros, &config), &eval)).contains("not tokens"));
}

#[test]
fn checkpoints_keep_the_vocabulary_and_the_embedding() {
    let dir = tempfile::tempdir().unwrap();
    for config in token_configs(300, 8, 8) {
        let state = model(config.clone(), 5);
        let path = dir.path().join(format!("{}.safetensors", config.architecture.name()));
        pixelcnn_core::checkpoint::save(&state, &path).unwrap();
        let loaded = pixelcnn_core::checkpoint::load(&path, Device::Cpu).unwrap();
        assert_eq!(loaded.net.config(), &config);
        let tokens = random_tokens(2, 64, 300, 4);
        let before = pixelcnn_core::evaluate::log_probs(&state, &grids(&tokens, &config), &EvalConfig::default()).unwrap();
        let after = pixelcnn_core::evaluate::log_probs(&loaded, &grids(&tokens, &config), &EvalConfig::default()).unwrap();
        assert_eq!(before, after);
    }
}

/// Grids from a known Markov process over V tokens: the first token of
/// each row follows the first of the row above (the very first is uniform),
/// every other token follows its left neighbour, each through the same
/// transition table: from token a, a+1, a+3 and a+7 (mod V) with
/// probabilities 0.6, 0.3, 0.1. The true entropy of a grid, in nats, is
/// ln V for the first token plus the transition entropy for every other one.
struct Markov {
    v: i64,
}

const STEPS: [(i64, f64); 3] = [(1, 0.6), (3, 0.3), (7, 0.1)];

impl Markov {
    fn entropy_per_grid(&self, positions: i64) -> f64 {
        let transition: f64 = STEPS.iter().map(|&(_, p)| -p * p.ln()).sum();
        (self.v as f64).ln() + (positions - 1) as f64 * transition
    }

    fn next(&self, from: i32, rng: &mut Rng) -> i32 {
        let u = rng.uniform_f32() as f64;
        let step = if u < STEPS[0].1 { STEPS[0].0 } else if u < STEPS[0].1 + STEPS[1].1 { STEPS[1].0 } else { STEPS[2].0 };
        ((from as i64 + step) % self.v) as i32
    }

    fn grids(&self, count: usize, h: usize, w: usize, seed: u64) -> Vec<i32> {
        let mut rng = Rng::new(seed);
        let mut out = Vec::with_capacity(count * h * w);
        for _ in 0..count {
            let start = out.len();
            for r in 0..h {
                for c in 0..w {
                    let t = match (r, c) {
                        (0, 0) => rng.below(self.v as usize) as i32,
                        (_, 0) => self.next(out[start + (r - 1) * w], &mut rng),
                        _ => self.next(out[start + r * w + c - 1], &mut rng),
                    };
                    out.push(t);
                }
            }
        }
        out
    }
}

#[test]
fn a_model_of_markov_grids_approaches_their_entropy() {
    let (h, w, v) = (6usize, 6usize, 24i64);
    let markov = Markov { v };
    let train = markov.grids(3000, h, w, 1);
    let test = markov.grids(500, h, w, 2);
    let config = ModelConfig::from_json(&json!({ "preset": "gated-small", "height": h, "width": w, "vocabulary": v, "filters": 32, "layers": 2 })).unwrap();
    let mut state = model(config.clone(), 3);
    let run = TrainConfig { epochs: 6, batch_size: 64, learning_rate: 3e-3, threads: Some(2), ..Default::default() };
    let split = |t| pixelcnn_core::train::Split { images: grids(t, &config), labels: None };
    pixelcnn_core::train::fit(&mut state, split(&train), None, &run, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let nats = pixelcnn_core::evaluate::nats_per_image(&state, &grids(&test, &config), &EvalConfig::default()).unwrap();
    let held_out = nats.iter().sum::<f64>() / nats.len() as f64;
    let truth = markov.entropy_per_grid((h * w) as i64);
    let uniform = (h * w) as f64 * (v as f64).ln();
    println!("markov grids: held-out {held_out:.3} nats per grid, true entropy {truth:.3}, uniform {uniform:.3} (ratio {:.3})", held_out / truth);
    assert!(held_out < 1.1 * truth, "held-out {held_out} nats per grid, true entropy {truth}");
    assert!(held_out > 0.9 * truth, "held-out {held_out} below the true entropy {truth}: a leak");
}
