//! Mixed precision: which arithmetic a forward pass runs in, and whether the
//! device computes bfloat16 natively.
//!
//! The recipe is PyTorch's autocast: the network's input is cast to the
//! compute type once and every convolution casts its weight to the type of
//! its input, so convolutions and matrix products — nearly all the FLOPs —
//! run in bf16, and so do the cheap pointwise ops between them. The master
//! weights stay fp32 (the casts are in the autograd graph, so their gradients
//! arrive in fp32), and so do Adam's moments, the logits leaving the network,
//! the loss, log-probabilities and the samplers' draws. Checkpoints hold the
//! fp32 weights only.
//!
//! `auto` (the default of every call) picks per kind of work, from what was
//! measured on a 2-core AMD EPYC with AVX-512 BF16 (issue 24's table): bf16
//! training ran 1.2-1.9× fp32 at the same validation loss within 1%, so
//! training takes bf16 where the device computes it natively; a bf16 forward
//! pass ran 1.7-1.9× fp32, so `predict` takes it too; bf16 sampling was
//! slower than fp32 on that CPU (seed 0.86 s against 0.61 s), and since the
//! samplers' per-pixel chain computes in fp32 below 256 images per thread
//! (`sample/kinds.rs`; the default batches hold at most 128 per thread on 2
//! cores) it is about as fast (0.89-1.04× fp32's time on a Xeon with AMX), so
//! sampling stays fp32, the same images on every CPU and whatever the batch
//! size (on CUDA unmeasured: fp32 until a lent GPU says otherwise); large
//! batches in explicit bf16 run about twice as fast; and
//! reported likelihoods (`evaluate`, `logProbs`, validation) stay fp32, so
//! that numbers compared across machines mean the same.

use crate::config::Precision;
use crate::error::{Error, Result};
use std::sync::OnceLock;
use tch::{Device, Kind, Tensor};

impl Precision {
    /// The element type of the network's activations.
    pub fn kind(self) -> Kind {
        match self {
            Precision::Fp32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
            // Resolved before any arithmetic (`resolve`); fp32 if it ever is not.
            Precision::Auto => Kind::Float,
        }
    }

    /// The precision that runs: an explicit one as given, `auto` by the kind
    /// of work and whether `device` computes bf16 natively (see the module's
    /// notes), then checked like an explicit one.
    pub fn resolve(self, device: Device, work: Work, field: &str) -> Result<Self> {
        let resolved = match (self, work) {
            (Precision::Auto, Work::Training | Work::Prediction) if auto_takes_bf16(device) => Precision::Bf16,
            (Precision::Auto, _) => Precision::Fp32,
            (explicit, _) => explicit,
        };
        resolved.check(device, field)
    }

    /// Checks that `device` computes this precision natively. bf16 on a CPU
    /// without bf16 instructions is emulated by libtorch, slower than fp32: a
    /// `DeviceUnavailable` error says so rather than a silent slowdown.
    /// `PIXELCNN_EMULATED_BF16=1` allows it anyway (same rounding, slow), so
    /// that the bf16 arithmetic can be tested on any machine.
    fn check(self, device: Device, field: &str) -> Result<Self> {
        if self == Precision::Bf16 && device == Device::Cpu && !native_bf16(device) && !emulation_allowed() {
            return Err(Error::DeviceUnavailable(format!(
                "{field}: \"bf16\" was requested but this CPU has no native bfloat16 arithmetic (neither avx512_bf16 nor amx_bf16 in /proc/cpuinfo); use \"fp32\" (or set PIXELCNN_EMULATED_BF16=1 to emulate it, slowly)"
            )));
        }
        Ok(self)
    }
}

/// The kinds of work `auto` chooses for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    Training,
    /// `evaluate`, `logProbs`, the validation in `fit`'s history.
    Likelihood,
    /// `predict`.
    Prediction,
    Sampling,
}

/// Whether `auto` takes bf16 on `device` (for training and `predict`): where
/// it is native, unless `PIXELCNN_AUTO_BF16` = `0` (keep `auto` at fp32 on a
/// bf16 machine) or `1` (take it anyway: to test `auto`'s bf16 branch on any
/// machine, with `PIXELCNN_EMULATED_BF16=1` where the CPU lacks bf16).
pub fn auto_takes_bf16(device: Device) -> bool {
    match std::env::var("PIXELCNN_AUTO_BF16").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => native_bf16(device),
    }
}

/// Whether `device` computes bfloat16 natively: a CPU with AVX-512 BF16 or
/// AMX, a CUDA device of compute capability 8.0 or more.
pub fn native_bf16(device: Device) -> bool {
    match device {
        Device::Cpu => cpu_has_native_bf16(),
        Device::Cuda(_) => cuda_has_native_bf16(),
        _ => false,
    }
}

extern "C" {
    fn pixelcnn_cuda_bf16_native() -> std::ffi::c_int;
}

/// Compute capability 8.0 or more on the current CUDA device (libtorch's own
/// test for bf16 convolutions, `cxx/cuda_capability.cpp`); false without CUDA.
pub fn cuda_has_native_bf16() -> bool {
    static NATIVE: OnceLock<bool> = OnceLock::new();
    // SAFETY: no arguments; the C++ side catches every exception (returns 0).
    *NATIVE.get_or_init(|| tch::Cuda::is_available() && unsafe { pixelcnn_cuda_bf16_native() } == 1)
}

fn emulation_allowed() -> bool {
    std::env::var("PIXELCNN_EMULATED_BF16").is_ok_and(|v| v == "1")
}

/// `t` as `kind`: the same tensor, not a copy, when it already is.
pub fn cast(t: &Tensor, kind: Kind) -> Result<Tensor> {
    Ok(if t.kind() == kind { t.shallow_clone() } else { t.f_to_kind(kind)? })
}

/// Whether the CPU has bfloat16 dot-product instructions (AVX-512 BF16 or
/// AMX), which oneDNN uses for bf16 convolutions and matrix products.
pub fn cpu_has_native_bf16() -> bool {
    static NATIVE: OnceLock<bool> = OnceLock::new();
    *NATIVE.get_or_init(|| {
        let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else { return false };
        info.lines()
            .filter(|line| line.starts_with("flags"))
            .any(|line| line.split_whitespace().any(|flag| flag == "avx512_bf16" || flag == "amx_bf16"))
    })
}
