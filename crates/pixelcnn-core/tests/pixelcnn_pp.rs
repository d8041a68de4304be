//! PixelCNN++: causality by gradients, the sizes it takes, dropout, training.

mod common;
use common::*;
use pixelcnn_core::config::{ModelConfig, Output, Precision};
use pixelcnn_core::network::dropout::Noise;
use pixelcnn_core::network::pixelcnn_pp;
use pixelcnn_core::network::Network;
use pixelcnn_core::Error;
use tch::{Device, Kind, Tensor};

fn tiny(output: Output, channels: i64, height: i64, width: i64) -> ModelConfig {
    let mixtures = (output == Output::LogisticMixture).then_some(2);
    ModelConfig { height, width, channels, output, mixtures, filters: 4, resnet_blocks: Some(1), ..pixelcnn_pp::small_preset() }
}

/// Every parameter redrawn (the class biases and `pixel_link` start at zero,
/// which would hide what they can reach).
fn perturbed(net: &Network, seed: i64) {
    tch::manual_seed(seed);
    tch::no_grad(|| {
        for (_, p) in net.parameters() {
            let mut p = p.shallow_clone();
            let noise = Tensor::randn(p.size(), (Kind::Float, Device::Cpu)) * 0.3;
            let _ = p.g_add_(&noise);
        }
    });
}

/// Which inputs (N=1, C, H, W) each output sub-pixel depends on, by the
/// gradient of that output's logits: a (sub-pixels × sub-pixels) table in
/// raster order (pixel, then channel).
fn dependencies(net: &Network, labels: Option<&Tensor>) -> Vec<Vec<bool>> {
    let c = net.config();
    let (h, w, ch) = (c.height, c.width, c.channels);
    let out = c.output_channels();
    let per_channel = if c.channel_groups().is_one() { out } else { out / ch };
    tch::manual_seed(5);
    let x = (Tensor::rand([1, ch, h, w], (Kind::Float, Device::Cpu)) * if c.output.is_bernoulli() { 1.0 } else { 255.0 }).round();
    let x = x.set_requires_grad(true);
    let logits = net.forward(&x, labels, Precision::Fp32).unwrap(); // (1, outC, H, W)
    let mut table = Vec::new();
    for r in 0..h {
        for col in 0..w {
            // With one channel group every output at a pixel is the pixel's;
            // with three, channel k's outputs are the k-th third.
            let groups = if c.channel_groups().is_one() { 1 } else { ch };
            for k in 0..groups {
                let y = logits.narrow(1, k * per_channel, per_channel).select(3, col).select(2, r).sum(Kind::Float);
                let g = Tensor::run_backward(&[&y], &[&x], true, false).remove(0).abs().permute([0, 2, 3, 1]).reshape([-1]);
                table.push(Vec::<f32>::try_from(&g).unwrap().iter().map(|&v| v > 0.0).collect::<Vec<bool>>());
                if groups == 1 {
                    // One table row per sub-pixel: the pixel's channels share it.
                    for _ in 1..ch {
                        table.push(table.last().unwrap().clone());
                    }
                }
            }
        }
    }
    table
}

/// Output sub-pixel i (pixel p, channel k) may depend on sub-pixel j (pixel
/// q, channel l) only when q < p, or q = p and l < k for per-sub-pixel
/// outputs. It must read its neighbours before it: left, above, and above
/// to the right (where masked PixelCNNs have their blind spot). (A small
/// network's receptive field does not reach every earlier pixel.)
fn check_causal(config: ModelConfig, conditional: bool) {
    let config = if conditional { ModelConfig { classes: Some(3), ..config } } else { config };
    let net = Network::new(config.clone(), Device::Cpu, 1).unwrap();
    perturbed(&net, 11);
    let labels = conditional.then(|| Tensor::from_slice(&[2i64]));
    let table = dependencies(&net, labels.as_ref());
    let ch = config.channels as usize;
    let sub_pixel = !config.channel_groups().is_one();
    for (i, row) in table.iter().enumerate() {
        let (p, k) = (i / ch, i % ch);
        for (j, &depends) in row.iter().enumerate() {
            let (q, l) = (j / ch, j % ch);
            let allowed = q < p || (sub_pixel && q == p && l < k);
            assert!(!depends || allowed, "{config:?}: output {i} (pixel {p}, channel {k}) reads input {j} (pixel {q}, channel {l})");
            let w = config.width as usize;
            let neighbour = (p % w > 0 && q == p - 1) || (p >= w && (q == p - w || (p % w + 1 < w && q == p - w + 1)));
            if neighbour {
                assert!(depends, "{:?} {}x{}: output {i} (pixel {p}) does not read its neighbour {q}", config.output, config.height, config.width);
            }
        }
    }
}

#[test]
fn every_output_reads_exactly_the_earlier_pixels() {
    check_causal(tiny(Output::LogisticMixture, 3, 8, 8), false);
    for (output, channels) in [(Output::LogisticMixture, 1), (Output::Categorical, 3), (Output::Bernoulli, 1), (Output::Bernoulli, 3)] {
        check_causal(tiny(output, channels, 4, 4), false);
    }
    check_causal(tiny(Output::LogisticMixture, 3, 4, 12), true);
    check_causal(ModelConfig { weight_norm: Some(false), ..tiny(Output::Categorical, 3, 8, 4) }, true);
}

#[test]
fn sizes_that_are_not_multiples_of_four_are_refused_by_name() {
    for (h, w, field) in [(10, 8, "model.height"), (8, 6, "model.width"), (2, 8, "model.height")] {
        let config = tiny(Output::LogisticMixture, 3, h, w);
        match Network::new(config, Device::Cpu, 0) {
            Err(Error::InvalidConfig { field: f, message }) => {
                assert_eq!(f, field);
                assert!(message.contains("multiple of 4"), "{message}");
            }
            Err(other) => panic!("{h}x{w}: {other:?}"),
            Ok(_) => panic!("{h}x{w} was accepted"),
        }
    }
}

#[test]
fn other_architectures_fields_are_refused() {
    let config = ModelConfig { layers: Some(3), ..tiny(Output::LogisticMixture, 3, 8, 8) };
    assert!(matches!(config.validate(), Err(Error::InvalidConfig { field, .. }) if field == "model.layers"));
    let config = ModelConfig { dropout: Some(0.5), ..ModelConfig::seed() };
    assert!(matches!(config.validate(), Err(Error::InvalidConfig { field, .. }) if field == "model.dropout"));
    let config = ModelConfig { dropout: Some(1.0), ..tiny(Output::LogisticMixture, 3, 8, 8) };
    assert!(matches!(config.validate(), Err(Error::InvalidConfig { field, .. }) if field == "model.dropout"));
}

/// Dropout acts in training only, and its masks follow each image: the same
/// images give the same loss whether the batch runs whole or in parts.
#[test]
fn dropout_is_deterministic_per_image_and_absent_in_evaluation() {
    let config = tiny(Output::LogisticMixture, 3, 8, 8);
    let net = Network::new(config, Device::Cpu, 2).unwrap();
    let x = (Tensor::rand([16, 3, 8, 8], (Kind::Float, Device::Cpu)) * 255.0).round();
    let noise = Noise { key: 99, ids: (100..116).collect() };
    let eval = tch::no_grad(|| net.forward(&x, None, Precision::Fp32).unwrap());
    let train = tch::no_grad(|| net.forward_training(&x, None, Precision::Fp32, Some(&noise)).unwrap());
    assert!(f64::try_from((&eval - &train).abs().max()).unwrap() > 1e-3, "dropout changed nothing");
    let again = tch::no_grad(|| net.forward_training(&x, None, Precision::Fp32, Some(&noise)).unwrap());
    assert!(train.equal(&again), "the same noise gave other outputs");
    // The second half alone, with its own images' noise, equals the second half of the whole.
    let half = tch::no_grad(|| net.forward_training(&x.narrow(0, 8, 8), None, Precision::Fp32, Some(&noise.part(8, 8))).unwrap());
    let diff = f64::try_from((&half - &train.narrow(0, 8, 8)).abs().max()).unwrap();
    assert!(diff < 1e-5, "a part's masks differ from the whole batch's: {diff}");
}

#[test]
fn the_presets_parameter_counts() {
    let small = Network::new(pixelcnn_pp::small_preset(), Device::Cpu, 0).unwrap().parameter_count();
    let shapes = Network::parameter_shapes(&pixelcnn_pp::preset());
    let paper: i64 = shapes.iter().map(|(_, s)| s.iter().product::<i64>()).sum();
    assert_eq!(small, SMALL_PARAMETERS);
    assert_eq!(paper, PAPER_PARAMETERS);
}

/// Weight normalisation's gains included (one per output channel of each layer).
const SMALL_PARAMETERS: i64 = 577_060;
const PAPER_PARAMETERS: i64 = 53_659_080;

#[test]
fn training_lowers_the_loss_and_repeats_exactly() {
    let config = tiny(Output::LogisticMixture, 1, 8, 8);
    let images: Vec<u8> = (0..48 * 64).map(|i| ((i * 37 + (i / 64) * 11) % 256) as u8).collect();
    let run = || {
        let mut state = model(config.clone(), 4);
        let train = pixelcnn_core::train::Split { images: pixelcnn_core::images::ImagesRef { count: 48, height: 8, width: 8, channels: 1, data: pixelcnn_core::images::Values::Bytes(&images) }, labels: None };
        let cfg = pixelcnn_core::config::TrainConfig {
            epochs: 3, batch_size: 16, learning_rate: 2e-3, seed: 1, threads: Some(2), eval_batch_size: 64,
            checkpoint: None, precision: Precision::Fp32, distributed: None, ..Default::default()
        };
        pixelcnn_core::train::fit(&mut state, train, None, &cfg, &std::sync::atomic::AtomicBool::new(false), &mut |_| {}).unwrap();
        state.history.iter().map(|r| r.train_loss).collect::<Vec<_>>()
    };
    let first = run();
    assert!(first[2] < first[0], "the loss did not fall: {first:?}");
    assert_eq!(first, run());
}

fn sample_both(state: &pixelcnn_core::state::ModelState, count: i64, batch: i64, temperature: f64, completion: Option<&pixelcnn_core::sample::Completion>) -> [pixelcnn_core::sample::SampleOutput; 2] {
    use pixelcnn_core::config::{SampleConfig, SampleMethod};
    let labels = state.net.config().classes.map(|k| serde_json::json!((0..count).map(|i| (i * 7 + 3) % k).collect::<Vec<_>>()));
    [SampleMethod::Fast, SampleMethod::Reference].map(|method| {
        let config = SampleConfig { count, seed: 11, temperature, batch_size: Some(batch), method, threads: Some(2), labels: labels.clone(), precision: Precision::Fp32, ..Default::default() };
        pixelcnn_core::sample::sample(state, &config, completion, &std::sync::atomic::AtomicBool::new(false), &mut |_| {}).unwrap()
    })
}

/// The incremental sampler makes exactly the reference loop's images (and
/// probabilities within 1e-4) for every output, grayscale and colour,
/// conditional or not, batch sizes 1–5, several temperatures, and completion.
#[test]
fn the_fast_sampler_makes_the_reference_samplers_images() {
    let cases: Vec<(ModelConfig, &[(i64, i64, f64)])> = vec![
        (tiny(Output::LogisticMixture, 3, 8, 8), &[(3, 3, 1.0), (2, 1, 0.7)]),
        (ModelConfig { classes: Some(3), resnet_blocks: Some(2), ..tiny(Output::LogisticMixture, 1, 8, 12) }, &[(4, 4, 1.0), (1, 1, 1.5)]),
        (ModelConfig { weight_norm: Some(false), ..tiny(Output::Categorical, 3, 4, 8) }, &[(2, 2, 1.0), (2, 1, 0.5)]),
        (ModelConfig { classes: Some(2), ..tiny(Output::Bernoulli, 3, 8, 4) }, &[(5, 5, 1.0), (2, 1, 2.0)]),
        (tiny(Output::Bernoulli, 1, 12, 8), &[(2, 2, 1.0)]),
    ];
    for (config, runs) in cases {
        let state = model(config.clone(), 2);
        perturbed(&state.net, 7);
        for &(count, batch, temperature) in runs {
            let what = format!("{:?} {}x{}x{} classes {:?}: count {count}, batch {batch}, temperature {temperature}", config.output, config.height, config.width, config.channels, config.classes);
            let [fast, reference] = sample_both(&state, count, batch, temperature, None);
            let worst = fast.probabilities.iter().zip(&reference.probabilities).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            // Deeper than the other networks, and its products grouped
            // otherwise (per position against whole convolutions): a
            // sharpened categorical level's probability moved by 5.7e-5 once.
            assert!(worst <= 1e-4, "{what}: probabilities differ by up to {worst}");
            assert_eq!(fast.images, reference.images, "{what}: images differ");
            let distinct: std::collections::HashSet<u8> = fast.images.iter().copied().collect();
            assert!(distinct.len() > 1, "{what}: degenerate samples");
        }
        // Completion: the top half known.
        let (count, size) = (2, (config.height * config.width * config.channels) as usize);
        let images: Vec<u8> = (0..count * size).map(|i| if config.output.is_bernoulli() { (i % 3 == 0) as u8 } else { (i * 37 % 256) as u8 }).collect();
        let known: Vec<u8> = (0..count * size).map(|i| ((i % size) < size / 2) as u8).collect();
        let completion = pixelcnn_core::sample::Completion { images: pixelcnn_core::images::Values::Bytes(&images), known: &known };
        let [fast, reference] = sample_both(&state, count as i64, 2, 1.0, Some(&completion));
        assert_eq!(fast.images, reference.images, "{config:?}: completions differ");
        for n in 0..count {
            assert_eq!(fast.images[n * size..n * size + size / 2], images[n * size..n * size + size / 2], "known pixels kept");
        }
    }
}
