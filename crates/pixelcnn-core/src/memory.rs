//! Memory a request will need, estimated before anything is allocated, and
//! refused with `Error::Resource` when the machine does not have it.
//!
//! Rust aborts the process when an allocation fails, and libtorch's CPU
//! allocator can only be caught once it has already failed; a request that
//! obviously cannot fit (a 4096-filter network of 64 layers, ten million
//! samples) is therefore refused up front with what it needs and what to
//! lower. The estimates count the tensors that dominate (weights, Adam's
//! moments, every layer's activations, the returned arrays) and are meant to
//! be within a small factor: they refuse only what cannot fit, and libtorch's
//! own errors remain for the rest.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::network::Network;
use tch::Device;

/// Bytes this process can still allocate: `PIXELCNN_MEMORY_LIMIT` if set
/// (bytes, or with a K/M/G/T suffix), else the smaller of the kernel's
/// `MemAvailable` and the cgroup's remaining limit. `None` where neither is
/// known (then nothing is refused).
pub fn available_bytes() -> Option<u64> {
    if let Some(limit) = std::env::var("PIXELCNN_MEMORY_LIMIT").ok().and_then(|v| parse_size(&v)) {
        return Some(limit);
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
        text.lines().find_map(|l| l.strip_prefix("MemAvailable:")).and_then(|v| v.trim().strip_suffix("kB")).and_then(|v| v.trim().parse::<u64>().ok()).map(|kb| kb * 1024)
    });
    let read_u64 = |p: &str| std::fs::read_to_string(p).ok().and_then(|v| v.trim().parse::<u64>().ok());
    let cgroup = match (read_u64("/sys/fs/cgroup/memory.max"), read_u64("/sys/fs/cgroup/memory.current")) {
        (Some(max), Some(current)) => Some(max.saturating_sub(current)),
        _ => None,
    };
    match (meminfo, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, scale) = match text.chars().last()?.to_ascii_uppercase() {
        'K' => (&text[..text.len() - 1], 1u64 << 10),
        'M' => (&text[..text.len() - 1], 1 << 20),
        'G' => (&text[..text.len() - 1], 1 << 30),
        'T' => (&text[..text.len() - 1], 1 << 40),
        _ => (text, 1),
    };
    digits.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0).map(|v| (v * scale as f64) as u64)
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} bytes") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// Refuses `needed` bytes for `what` when more than is available; `lower`
/// says which options make the request smaller.
pub fn ensure_available(needed: u64, what: &str, lower: &str) -> Result<()> {
    match available_bytes() {
        Some(available) if needed > available => Err(Error::Resource(format!(
            "{what} needs about {} but {} is available on this machine; lower {lower}",
            human_bytes(needed),
            human_bytes(available)
        ))),
        _ => Ok(()),
    }
}

/// Weights of a network with this config, in float32 values.
pub fn parameter_values(config: &ModelConfig) -> u64 {
    Network::parameter_shapes(config).iter().map(|(_, shape)| shape.iter().map(|&d| d.max(0) as u64).product::<u64>()).fold(0, u64::saturating_add)
}

/// Activation values one image produces in one forward pass: every
/// convolution's output covers the whole image (all networks here keep the
/// resolution), so it is the sum of the convolutions' output channels × H × W.
pub fn activation_values_per_image(config: &ModelConfig) -> u64 {
    let channels: u64 = Network::parameter_shapes(config)
        .iter()
        .filter(|(_, shape)| shape.len() == 4)
        .map(|(_, shape)| shape[0].max(0) as u64)
        .fold(0, u64::saturating_add);
    channels.saturating_mul(config.height.max(0) as u64 * config.width.max(0) as u64)
}

const F32: u64 = 4;
/// Autograd keeps each layer's output (or input) for the backward pass, which
/// makes gradients of the same size as it goes: about two values per
/// activation value at the peak (calibrated in tests/memory.rs).
const TRAINING_VALUES_PER_ACTIVATION: u64 = 2;

/// Refuses a network whose weights alone do not fit. GPU memory is not
/// estimated: there libtorch's own out-of-memory error is a catchable one.
pub fn check_model(config: &ModelConfig, device: Device) -> Result<()> {
    if device != Device::Cpu {
        return Ok(());
    }
    // Initialisation draws the weights into a temporary before copying them in.
    let needed = parameter_values(config).saturating_mul(2 * F32);
    ensure_available(needed, &format!("a network of {} parameters", parameter_values(config)), "`filters`, `layers` or `residualBlocks`")
}

/// Refuses a training run whose step cannot fit: weights, their gradients
/// and Adam's two moments, plus a batch's activations.
pub fn check_training(config: &ModelConfig, batch_size: i64, device: Device) -> Result<()> {
    if device != Device::Cpu {
        return Ok(());
    }
    let weights = parameter_values(config).saturating_mul(4 * F32);
    let step = activation_values_per_image(config).saturating_mul(batch_size.max(1) as u64).saturating_mul(TRAINING_VALUES_PER_ACTIVATION * F32);
    ensure_available(
        weights.saturating_add(step),
        &format!("a training step of {batch_size} images on this network"),
        "`batchSize` (or the network's `filters`/`layers`)",
    )
}

/// Refuses sampling whose results, or one batch's caches, cannot fit: the
/// images (one byte per sub-pixel) and their probabilities (four) are
/// returned for every image, and the samplers keep every layer's activations
/// for the images of one batch.
pub fn check_sampling(config: &ModelConfig, count: i64, batch_size: i64, device: Device) -> Result<()> {
    let sub_pixels = (config.height.max(0) * config.width.max(0) * config.channels.max(0)) as u64;
    let results = sub_pixels.saturating_mul(count.max(0) as u64).saturating_mul(1 + F32);
    let per_image = sub_pixels * (1 + F32);
    if let Some(available) = available_bytes() {
        if results > available {
            let fits = (available / per_image.max(1)).max(1);
            return Err(Error::Resource(format!(
                "`count`: {count} images of {}×{}×{} return {} (each image's values and probabilities) but {} is available on this machine; lower `count` to at most about {fits} per call",
                config.height, config.width, config.channels, human_bytes(results), human_bytes(available)
            )));
        }
    }
    if device != Device::Cpu {
        return Ok(());
    }
    let batch = batch_size.min(count).max(1) as u64;
    let caches = activation_values_per_image(config).saturating_mul(batch).saturating_mul(2 * F32);
    ensure_available(results.saturating_add(caches), &format!("sampling {count} images in batches of {batch}"), "`batchSize` or `count`")
}
