#![allow(dead_code)]
pub mod tokens;
use pixelcnn_core::config::ModelConfig;
use pixelcnn_core::rng::Rng;
use pixelcnn_core::state::ModelState;
use tch::Device;

/// Random binary images, N×H×W×1 bytes, about `density` ones.
pub fn random_images(count: usize, h: i64, w: i64, density: f32, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..count * (h * w) as usize).map(|_| (rng.uniform_f32() < density) as u8).collect()
}

/// Images with structure to learn: each row all ones or all zeros, N×H×W×1 bytes.
pub fn striped(count: usize, h: i64, w: i64, seed: u64) -> Vec<u8> {
    let rows = random_images(count, h, 1, 0.5, seed);
    rows.iter().flat_map(|&r| std::iter::repeat(r).take(w as usize)).collect()
}

/// A training split of `count` single-channel h×w images, without labels.
pub fn split(data: &[u8], count: i64, h: i64, w: i64) -> pixelcnn_core::train::Split<'_> {
    let images = pixelcnn_core::images::ImagesRef { count, height: h, width: w, channels: 1, data: pixelcnn_core::images::Values::Bytes(data) };
    pixelcnn_core::train::Split { images, labels: None }
}

pub fn model(config: ModelConfig, seed: u64) -> ModelState {
    tch::set_num_threads(2);
    ModelState::new(config, Device::Cpu, seed).unwrap()
}

/// Small nets of different shapes: the small preset and one with other kernel sizes.
pub fn custom_config() -> ModelConfig {
    ModelConfig { height: 10, width: 9, filters: 16, residual_blocks: Some(3), input_kernel: Some(3), residual_kernel: Some(5), output_layers: Some(0), ..ModelConfig::seed() }
}

/// A gated net with other kernel sizes and an odd image size.
pub fn custom_gated_config() -> ModelConfig {
    ModelConfig { height: 9, width: 7, filters: 8, layers: Some(3), input_kernel: Some(3), kernel: Some(5), output_layers: Some(2), ..ModelConfig::gated() }
}

/// The same config, class-conditional.
pub fn conditional(config: ModelConfig, classes: i64) -> ModelConfig {
    ModelConfig { classes: Some(classes), ..config }
}

/// Gives every class bias of a conditional model random values, so that
/// tests see labels change the output (they start at zero).
/// Seeded by our own generator, not libtorch's global one, which tests
/// running in parallel threads would share.
pub fn randomize_class_biases(state: &ModelState) {
    let mut rng = Rng::new(0xb1a5);
    tch::no_grad(|| {
        for (name, t) in state.net.parameters() {
            if name.contains("class_bias") {
                let values: Vec<f32> = (0..t.numel()).map(|_| rng.uniform_f32() - 0.5).collect();
                t.shallow_clone().copy_(&tch::Tensor::from_slice(&values).reshape(t.size()));
            }
        }
    });
}

/// Labels 1, 3, 5, … modulo the classes, for a conditional model; `None` otherwise.
pub fn cycled_labels(config: &ModelConfig, count: i64) -> Option<serde_json::Value> {
    config.classes.map(|k| serde_json::json!((0..count).map(|i| (i * 2 + 1) % k).collect::<Vec<_>>()))
}

/// `count` images (or completions) with seed 4 and the cycled labels, two threads.
pub fn sample_seeded(
    state: &ModelState,
    count: i64,
    batch_size: i64,
    temperature: f64,
    method: pixelcnn_core::config::SampleMethod,
    completion: Option<&pixelcnn_core::sample::Completion>,
) -> pixelcnn_core::sample::SampleOutput {
    let config = pixelcnn_core::config::SampleConfig {
        count, seed: 4, temperature, batch_size: Some(batch_size), method, threads: Some(2),
        labels: cycled_labels(state.net.config(), count), precision: Default::default(), ..Default::default()
    };
    pixelcnn_core::sample::sample(state, &config, completion, &std::sync::atomic::AtomicBool::new(false), &mut |_| {}).unwrap()
}

/// Labels 0, 1, …, K−1, 0, … for `count` images of a conditional config (`None` otherwise), as the samplers and `predict` take them.
pub fn labels(config: &ModelConfig, count: i64) -> Option<serde_json::Value> {
    config.classes.map(|k| serde_json::json!((0..count).map(|i| i % k).collect::<Vec<_>>()))
}

/// The largest absolute difference of two equally long slices.
pub fn worst_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
