//! Requests that need more memory than the machine has are refused before
//! anything is allocated, with what they need and what to lower; requests
//! that fit are not. (One test function: `PIXELCNN_MEMORY_LIMIT` is process-wide.)

use pixelcnn_core::config::{ModelConfig, SampleConfig, SampleMethod};
use pixelcnn_core::memory;
use pixelcnn_core::sample::sample;
use pixelcnn_core::state::ModelState;
use pixelcnn_core::Error;
use std::sync::atomic::AtomicBool;
use tch::Device;

fn resource_message<T>(result: pixelcnn_core::Result<T>) -> String {
    match result {
        Err(e @ Error::Resource(_)) => e.to_string(),
        Err(other) => panic!("expected a Resource error, got {other:?}"),
        Ok(_) => panic!("expected a Resource error, got success"),
    }
}

#[test]
fn oversized_requests_are_refused_before_allocating_and_fitting_ones_run() {
    // A ceiling of 16 GiB, so that the test means the same on a machine of any size.
    std::env::set_var("PIXELCNN_MEMORY_LIMIT", "16G");
    // The example: about 23.7e9 parameters.
    let huge = ModelConfig { filters: 4096, layers: Some(64), ..ModelConfig::gated() };
    let message = resource_message(ModelState::new(huge, Device::Cpu, 0));
    assert!(message.contains("parameters needs about") && message.contains("GiB") && message.contains("`filters`"), "{message}");

    // The presets' training steps are estimated within a small factor of what
    // they use (measured peak growth at batch 128: 1.25 GiB for both) and fit easily.
    for config in [ModelConfig::seed(), ModelConfig::gated()] {
        std::env::set_var("PIXELCNN_MEMORY_LIMIT", "10M");
        let message = resource_message(memory::check_training(&config, 128, Device::Cpu));
        let gib: f64 = message.split("needs about ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        assert!((1.0..4.0).contains(&gib), "{message}");
        assert!(message.contains("`batchSize`"), "{message}");
        std::env::set_var("PIXELCNN_MEMORY_LIMIT", "8G");
        memory::check_training(&config, 128, Device::Cpu).unwrap();
    }

    // Sampling ten million colour images returns ~143 GiB: refused, naming `count`.
    std::env::set_var("PIXELCNN_MEMORY_LIMIT", "16G");
    let colour = ModelConfig { channels: 3, height: 32, width: 32, filters: 8, layers: Some(1), ..ModelConfig::gated() };
    let state = ModelState::new(colour, Device::Cpu, 0).unwrap();
    let config: SampleConfig = serde_json::from_value(serde_json::json!({ "count": 10_000_000 })).unwrap();
    let message = resource_message(sample(&state, &config, None, &AtomicBool::new(false), &mut |_| {}));
    assert!(message.contains("`count`") && message.contains("10000000 images of 32×32×3"), "{message}");
    // A limit set by the user is honoured, and a request under it runs.
    std::env::set_var("PIXELCNN_MEMORY_LIMIT", "64M");
    let few: SampleConfig = serde_json::from_value(serde_json::json!({ "count": 3 })).unwrap();
    assert_eq!(sample(&state, &few, None, &AtomicBool::new(false), &mut |_| {}).unwrap().images.len(), 3 * 32 * 32 * 3);
    let many: SampleConfig = serde_json::from_value(serde_json::json!({ "count": 10_000 })).unwrap();
    let message = resource_message(sample(&state, &many, None, &AtomicBool::new(false), &mut |_| {}));
    assert!(message.contains("64.0 MiB is available"), "{message}");
    // The fast samplers keep a few rows of each layer (the reference loop's forward passes whole images): 64 images
    // of the full PixelCNN++ preset in one batch fit in 8 GiB for the fast sampler, not for the reference loop.
    std::env::set_var("PIXELCNN_MEMORY_LIMIT", "8G");
    let pp = pixelcnn_core::network::pixelcnn_pp::preset();
    memory::check_sampling(&pp, 64, 64, SampleMethod::Fast, Device::Cpu).unwrap();
    let message = resource_message(memory::check_sampling(&pp, 64, 64, SampleMethod::Reference, Device::Cpu));
    assert!(message.contains("`batchSize`"), "{message}");
    // Without a ceiling of the user's, the machine's own figures are found.
    std::env::remove_var("PIXELCNN_MEMORY_LIMIT");
    let available = memory::available_bytes().expect("MemAvailable on Linux");
    assert!(available > 64 << 20, "{available} bytes available");
}
