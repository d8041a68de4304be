//! The gated unit tanh(a) ⊙ σ(b) in one pass forward and one backward
//! (`cxx/fused_gate.cpp`, a libtorch autograd function), for training on the
//! CPU. It takes float32 tensors with the channels innermost (the gated
//! network's channels-last layout); anything else, and every pass without
//! gradients (evaluation, the samplers, which must match each other bit for
//! bit), uses the composition of ATen operations in `shifted_conv::gate`.
//!
//! `PIXELCNN_FUSED_GATE=off` turns it off for a whole process (to compare).

use crate::error::{Error, Result};
use std::ffi::{c_void, CStr};
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use tch::Tensor;

extern "C" {
    fn pixelcnn_fused_gate(x: *mut c_void, out: *mut *mut c_void, error: *mut c_char, error_len: usize) -> i32;
}

static ENABLED: OnceLock<AtomicBool> = OnceLock::new();

fn enabled() -> &'static AtomicBool {
    ENABLED.get_or_init(|| AtomicBool::new(!std::env::var("PIXELCNN_FUSED_GATE").is_ok_and(|v| v == "off")))
}

/// Turns the fused gate on or off for this process (benchmarks compare the two).
pub fn set_enabled(on: bool) {
    enabled().store(on, Ordering::Relaxed);
}

/// The gate of `x` = [a | b] (N, 2F, H, W), when the fused form applies:
/// gradients are being recorded and the layout fits.
pub fn gate(x: &Tensor) -> Result<Option<Tensor>> {
    if !x.requires_grad() || !enabled().load(Ordering::Relaxed) {
        return Ok(None);
    }
    let handle = x.as_ptr() as *mut c_void;
    let mut out: *mut c_void = std::ptr::null_mut();
    let mut error = [0 as c_char; 1024];
    // SAFETY: tch's handle is an `at::Tensor*` that outlives the call; the
    // C++ side catches every exception, and on success hands over a new
    // `at::Tensor*`, which tch takes ownership of (and deletes).
    unsafe {
        match pixelcnn_fused_gate(handle, &mut out, error.as_mut_ptr(), error.len()) {
            0 => Ok(Some(Tensor::from_ptr(out as *mut torch_sys::C_tensor))),
            1 => Ok(None),
            _ => Err(Error::Internal(format!("fused gate: {}", CStr::from_ptr(error.as_ptr()).to_string_lossy()))),
        }
    }
}
