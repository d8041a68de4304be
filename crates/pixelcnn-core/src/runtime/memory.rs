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

use crate::config::{ModelConfig, SampleMethod};
use crate::error::{Error, Result};
use crate::network::Network;
use tch::Device;

/// Bytes this process can still allocate: `PIXELCNN_MEMORY_LIMIT` if set
/// (bytes, or with a K/M/G/T suffix), else the smallest of the kernel's
/// `MemAvailable`, what the process's cgroup still allows (v2 or v1; page
/// cache it could reclaim counts as available, as in `MemAvailable`) and what
/// `RLIMIT_DATA` (`ulimit -d`) still allows. `None` where none is known
/// (then nothing is refused).
pub fn available_bytes() -> Option<u64> {
    if let Some(limit) = std::env::var("PIXELCNN_MEMORY_LIMIT").ok().and_then(|v| parse_size(&v)) {
        return Some(limit);
    }
    [mem_available(), cgroup_available(), data_limit_available()].into_iter().flatten().min()
}

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok().and_then(|v| v.trim().parse::<u64>().ok())
}

/// The value of `key` in a `key value` file (memory.stat) or a `Key: value kB` one (/proc).
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?;
        let rest = rest.strip_prefix(':').unwrap_or(rest);
        let value: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(if rest.trim_end().ends_with("kB") { value * 1024 } else { value })
    })
}

fn mem_available() -> Option<u64> {
    field(&std::fs::read_to_string("/proc/meminfo").ok()?, "MemAvailable")
}

/// The limit of this process's memory cgroup less what it uses, page cache
/// it could reclaim (inactive files) not counted as used.
fn cgroup_available() -> Option<u64> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    // cgroup v2: "0::/path"; v1: "N:memory:/path" (or with other controllers).
    let v2 = membership.lines().find_map(|l| l.strip_prefix("0::"));
    let v1 = membership.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers.split(',').any(|c| c == "memory").then_some(path)
    });
    let (root, limit, usage, inactive) = match (v1, v2) {
        (Some(path), _) => ("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes", ("total_inactive_file", path)),
        (None, Some(path)) => ("/sys/fs/cgroup", "memory.max", "memory.current", ("inactive_file", path)),
        _ => return None,
    };
    let (inactive_key, path) = inactive;
    // Inside a container the cgroup's own folder is often mounted as the root.
    [format!("{root}{path}"), root.to_string()].into_iter().find_map(|dir| {
        let limit = read_u64(&format!("{dir}/{limit}"))?;
        let usage = read_u64(&format!("{dir}/{usage}"))?;
        let reclaimable = std::fs::read_to_string(format!("{dir}/memory.stat")).ok().and_then(|t| field(&t, inactive_key)).unwrap_or(0);
        Some(limit.saturating_sub(usage.saturating_sub(reclaimable)))
    })
}

/// `RLIMIT_DATA` less the data segment (heap and private mappings) in use.
fn data_limit_available() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: a valid pointer to an rlimit the call fills in.
        if unsafe { libc::getrlimit(libc::RLIMIT_DATA, &mut limit) } != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
            return None;
        }
        let used = std::fs::read_to_string("/proc/self/status").ok().and_then(|t| field(&t, "VmData")).unwrap_or(0);
        Some((limit.rlim_cur as u64).saturating_sub(used))
    }
    #[cfg(not(unix))]
    None
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
    refuse_beyond(available_bytes(), needed, what, lower)
}

fn refuse_beyond(available: Option<u64>, needed: u64, what: &str, lower: &str) -> Result<()> {
    match available {
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
/// returned for every image, and the reference sampler's forward passes hold
/// every layer's activations for the images of one batch (the fast ones a few
/// rows of them).
pub fn check_sampling(config: &ModelConfig, count: i64, batch_size: i64, method: SampleMethod, device: Device) -> Result<()> {
    let sub_pixels = (config.height.max(0) * config.width.max(0) * config.channels.max(0)) as u64;
    let results = sub_pixels.saturating_mul(count.max(0) as u64).saturating_mul(1 + F32);
    let per_image = sub_pixels * (1 + F32);
    // Read once: the figures come from several files.
    let available = available_bytes();
    if let Some(available) = available {
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
    let mut caches = activation_values_per_image(config).saturating_mul(batch).saturating_mul(2 * F32);
    if method == SampleMethod::Fast {
        // The incremental samplers keep windows of the rows their layers still
        // read (`sample/window.rs`): k/2 + 1 rows for a k×k masked kernel, two for
        // PixelCNN++'s shifted ones, instead of whole images.
        let widest = [config.input_kernel, config.kernel, config.residual_kernel].iter().flatten().map(|&k| k / 2 + 1).max().unwrap_or(2).max(2);
        let height = config.height.max(1) as u64;
        caches = caches / height * (widest as u64).min(height);
    }
    refuse_beyond(available, results.saturating_add(caches), &format!("sampling {count} images in batches of {batch}"), "`batchSize` or `count`")
}
