//! What the A/B examples share: reading the network to time, and the median of their timings.

use pixelcnn_core::config::ModelConfig;

/// A preset's name, or a model config as JSON (the CIFAR-shaped bench's, say).
pub fn model_config(arg: &str) -> pixelcnn_core::Result<ModelConfig> {
    match arg.starts_with('{') {
        true => ModelConfig::from_json(&serde_json::from_str(arg).expect("JSON")),
        false => Ok(ModelConfig::preset(arg).expect("preset")),
    }
}

/// The middle value of `times` (the upper one of the two middles for an even count).
pub fn median(times: &mut [f64]) -> f64 {
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}
