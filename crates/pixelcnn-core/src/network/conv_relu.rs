//! relu(conv2d(x)) as one oneDNN primitive (`cxx/conv_relu.cpp`) for bf16
//! inference on the CPU, where the separate bf16 ReLUs were the largest cost
//! of a forward pass after the convolutions (BENCHMARKS.md). Training (grad
//! mode on) and other devices keep the composition, and so does fp32: fused
//! it measured 1.12× faster and bit-identical on a Xeon with AMX, but oneDNN
//! picks kernels by instruction set and post-ops, and the seed preset's fp32
//! numerics are pinned bit for bit by a fixture on AVX2 CPUs, where it was not
//! measured.
//!
//! `PIXELCNN_FUSED_CONV=off` turns it off for a whole process (to compare).

use crate::error::{Error, Result};
use std::ffi::{c_void, CStr};
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use tch::{Device, Kind, Tensor};

extern "C" {
    fn pixelcnn_conv_relu(x: *mut c_void, w: *mut c_void, b: *mut c_void, pad_h: i64, pad_w: i64, out: *mut *mut c_void, error: *mut c_char, error_len: usize) -> i32;
    fn pixelcnn_grad_mode_enabled() -> i32;
}

fn enabled() -> &'static AtomicBool {
    static ENABLED: OnceLock<AtomicBool> = OnceLock::new();
    ENABLED.get_or_init(|| AtomicBool::new(!std::env::var("PIXELCNN_FUSED_CONV").is_ok_and(|v| v == "off")))
}

/// Fused convolutions run so far in this process (the tests check that the fused form is taken).
static FUSED_CALLS: AtomicU64 = AtomicU64::new(0);

pub fn fused_calls() -> u64 {
    FUSED_CALLS.load(Ordering::Relaxed)
}

/// Turns the fused form on or off for this process (benchmarks compare the two).
pub fn set_enabled(on: bool) {
    enabled().store(on, Ordering::Relaxed);
}

/// Whether a convolution of `x` would take the fused form: checked before
/// its weight is prepared, so that the composed path pays nothing for it.
/// Only where the CPU computes bf16 natively: oneDNN refuses bf16
/// primitives on CPUs without AVX-512 (the tests' emulated bf16 composes).
pub fn applies(x: &Tensor) -> bool {
    enabled().load(Ordering::Relaxed)
        && x.kind() == Kind::BFloat16
        && x.device() == Device::Cpu
        && crate::precision::native_bf16(Device::Cpu)
        // SAFETY: reads a thread-local flag of libtorch; no arguments.
        && unsafe { pixelcnn_grad_mode_enabled() } == 0
}

/// relu(conv2d(x, weight, bias)) with stride 1 and `padding` (rows, columns),
/// or `None` when the fused form does not apply after all (then nothing was
/// computed). `weight` and `bias` must be of x's type.
pub fn conv_relu(x: &Tensor, weight: &Tensor, bias: &Tensor, padding: (i64, i64)) -> Result<Option<Tensor>> {
    let mut out: *mut c_void = std::ptr::null_mut();
    let mut error = [0 as c_char; 1024];
    let handle = |t: &Tensor| t.as_ptr() as *mut c_void;
    // SAFETY: tch's handles are `at::Tensor*`s that outlive the call; the C++
    // side catches every exception, and on success hands over a new
    // `at::Tensor*`, which tch takes ownership of (and deletes).
    unsafe {
        match pixelcnn_conv_relu(handle(x), handle(weight), handle(bias), padding.0, padding.1, &mut out, error.as_mut_ptr(), error.len()) {
            0 => {
                FUSED_CALLS.fetch_add(1, Ordering::Relaxed);
                Ok(Some(Tensor::from_ptr(out as *mut torch_sys::C_tensor)))
            }
            1 => Ok(None),
            _ => Err(Error::Internal(format!("fused convolution and ReLU: {}", CStr::from_ptr(error.as_ptr()).to_string_lossy()))),
        }
    }
}
