//! Turning a user's device string into a libtorch device, refusing what this
//! machine does not have: asking for CUDA must never become a silent CPU run.

use crate::config::Precision;
use crate::error::{Error, Result};
use crate::precision::Work;
use tch::{Cuda, Device};

/// `"auto" | "cpu" | "cuda" | "cuda:N"`.
pub fn parse_device(spec: &str) -> Result<Device> {
    let cuda_count = || if Cuda::is_available() { Cuda::device_count() } else { 0 };
    match spec {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(if cuda_count() > 0 { Device::Cuda(0) } else { Device::Cpu }),
        "cuda" => cuda_index(0, cuda_count(), spec),
        _ => match spec.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(index)) => cuda_index(index, cuda_count(), spec),
            _ => Err(Error::config("device", format!("must be \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got {spec:?}"))),
        },
    }
}

fn cuda_index(index: usize, count: i64, spec: &str) -> Result<Device> {
    if count == 0 {
        return Err(Error::DeviceUnavailable(format!(
            "device {spec:?} was requested but libtorch sees no CUDA device (is this a CPU-only machine or a CPU-only PyTorch?)"
        )));
    }
    if index as i64 >= count {
        return Err(Error::DeviceUnavailable(format!(
            "device {spec:?} was requested but only {count} CUDA device(s) exist (cuda:0..cuda:{})",
            count - 1
        )));
    }
    Ok(Device::Cuda(index))
}

/// The inverse of `parse_device`, for configs and checkpoints.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".to_string(),
    }
}

/// libtorch's intra-op thread count is process-wide; set it for each call so
/// that a user's `threads` applies to that call. Default: every core.
///
/// Every long task (fit, sample, evaluate, the ceilings) starts here, before
/// its first large tensor, so this is also where the process's tensor memory
/// is set up, once (the block cache and malloc settings of allocator.rs).
pub fn set_threads(threads: Option<i64>) {
    crate::allocator::tune_for_tensors();
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as i64));
    if tch::get_num_threads() != n as i32 {
        tch::set_num_threads(n as i32);
    }
}

/// Sets libtorch's thread count for the calling OS thread alone, for the
/// threads a task spawns. libtorch's count is per OS thread once set
/// (OpenMP's), but a new thread takes, at its first operation, whatever some
/// thread of the process set last, which another task may change at any
/// moment; so the first-use initialisation is run here first
/// (`get_num_threads`), then the count set. Without this a part's reductions
/// could run on another thread count than intended and differ in their last
/// bits from run to run.
pub fn set_threads_of_this_thread(n: i32) {
    let _ = tch::get_num_threads();
    tch::set_num_threads(n);
}

/// What libtorch this process runs on.
pub struct LibtorchInfo {
    pub cuda_available: bool,
    pub cuda_device_count: i64,
    pub threads: i64,
    /// Whether this CPU has bfloat16 instructions (`precision: bf16` needs them on the CPU).
    pub cpu_bf16_native: bool,
    /// Whether the current CUDA device has compute capability 8.0 or more.
    pub cuda_bf16_native: bool,
    /// What `precision: 'auto'` runs on the default device (`"auto"`), for
    /// training, likelihoods, `predict` and sampling, in that order.
    pub auto_device: String,
    pub auto_precision: [crate::config::Precision; 4],
}

pub fn libtorch_info() -> LibtorchInfo {
    let cuda_available = Cuda::is_available();
    let device = if cuda_available && Cuda::device_count() > 0 { Device::Cuda(0) } else { Device::Cpu };
    LibtorchInfo {
        cuda_available,
        cuda_device_count: if cuda_available { Cuda::device_count() } else { 0 },
        threads: tch::get_num_threads() as i64,
        cpu_bf16_native: crate::precision::cpu_has_native_bf16(),
        cuda_bf16_native: cuda_available && crate::precision::cuda_has_native_bf16(),
        auto_device: device_name(device),
        auto_precision: [Work::Training, Work::Likelihood, Work::Prediction, Work::Sampling]
            .map(|work| Precision::Auto.resolve(device, work, "precision").unwrap_or(Precision::Fp32)),
    }
}
