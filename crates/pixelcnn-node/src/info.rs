//! What libtorch this addon runs on, for troubleshooting.

use napi_derive::napi;

#[napi(object)]
pub struct LibtorchInfo {
    pub cuda_available: bool,
    pub cuda_device_count: i64,
    pub threads: i64,
}

#[napi]
pub fn libtorch_info() -> LibtorchInfo {
    let info = pixelcnn_core::device::libtorch_info();
    LibtorchInfo { cuda_available: info.cuda_available, cuda_device_count: info.cuda_device_count, threads: info.threads }
}
