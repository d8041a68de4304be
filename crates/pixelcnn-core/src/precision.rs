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
        }
    }

    /// Checks that `device` computes this precision natively. bf16 on a CPU
    /// without bf16 instructions is emulated by libtorch, slower than fp32: a
    /// `DeviceUnavailable` error says so rather than a silent slowdown.
    /// `PIXELCNN_EMULATED_BF16=1` allows it anyway (same rounding, slow), so
    /// that the bf16 arithmetic can be tested on any machine.
    pub fn check(self, device: Device, field: &str) -> Result<Self> {
        if self == Precision::Bf16 && device == Device::Cpu && !cpu_has_native_bf16() && !emulation_allowed() {
            return Err(Error::DeviceUnavailable(format!(
                "{field}: \"bf16\" was requested but this CPU has no native bfloat16 arithmetic (neither avx512_bf16 nor amx_bf16 in /proc/cpuinfo); use \"fp32\" (or set PIXELCNN_EMULATED_BF16=1 to emulate it, slowly)"
            )));
        }
        Ok(self)
    }
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
