#![allow(dead_code)]
use pixelcnn_core::config::ModelConfig;
use pixelcnn_core::rng::Rng;
use pixelcnn_core::state::ModelState;
use tch::Device;

/// Random binary images, N×H×W×1 bytes, about `density` ones.
pub fn random_images(count: usize, h: i64, w: i64, density: f32, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..count * (h * w) as usize).map(|_| (rng.uniform_f32() < density) as u8).collect()
}

pub fn model(config: ModelConfig, seed: u64) -> ModelState {
    tch::set_num_threads(2);
    ModelState::new(config, Device::Cpu, seed).unwrap()
}

/// Small nets of different shapes: the small preset and one with other kernel sizes.
pub fn custom_config() -> ModelConfig {
    ModelConfig {
        height: 10,
        width: 9,
        channels: 1,
        filters: 16,
        residual_blocks: 3,
        input_kernel: 3,
        residual_kernel: 5,
        output_layers: 0,
    }
}
