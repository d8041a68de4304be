//! What libtorch this addon runs on, for troubleshooting.

use napi::Env;
use napi_derive::napi;

#[napi(object)]
pub struct LibtorchInfo {
    pub cuda_available: bool,
    pub cuda_device_count: i64,
    pub threads: i64,
    pub cpu_bf16_native: bool,
    pub cuda_bf16_native: bool,
    /// What `precision: 'auto'` runs on the default device.
    pub auto_precision: AutoPrecision,
}

#[napi(object)]
pub struct AutoPrecision {
    pub device: String,
    pub training: String,
    pub likelihood: String,
    pub prediction: String,
    pub sampling: String,
}

#[napi]
pub fn libtorch_info() -> LibtorchInfo {
    let info = pixelcnn_core::device::libtorch_info();
    LibtorchInfo {
        cuda_available: info.cuda_available,
        cuda_device_count: info.cuda_device_count,
        threads: info.threads,
        cpu_bf16_native: info.cpu_bf16_native,
        cuda_bf16_native: info.cuda_bf16_native,
        auto_precision: {
            let [training, likelihood, prediction, sampling] = info.auto_precision.map(|p| format!("{p:?}").to_lowercase());
            AutoPrecision { device: info.auto_device, training, likelihood, prediction, sampling }
        },
    }
}

/// GFLOP/s of an n×n matrix product through libtorch in `precision` ("fp32"
/// or "bf16": the machine's ceilings for benchmarks). Blocks the calling thread for a few seconds.
#[napi]
pub fn matmul_gflops(env: Env, n: i64, repeats: u32, threads: Option<i64>, device: String, precision: String) -> napi::Result<f64> {
    crate::errors::guard_sync(&env, || pixelcnn_core::ceiling::matmul_gflops(n, repeats as usize, threads, &device, &precision))
}

/// Provokes a failure inside the native code (`"panic"` or `"torch"`, a C++
/// exception from libtorch) to test that it arrives as a JS error.
#[napi]
pub fn provoke_native_failure(env: Env, kind: String) -> napi::Result<()> {
    crate::errors::guard_sync(&env, || pixelcnn_core::diagnostics::provoke(&kind))
}
