//! The number types the incremental samplers compute in, per kind of work.
//!
//! fp32: everything in fp32. bf16 on a GPU: everything in bf16, autocast's
//! rule. bf16 on a CPU: the products done once per row over the whole row
//! (B·W patches) in bf16, where oneDNN's bf16 kernels run at 4.5× the fp32
//! rate, and the chain of per-pixel products (B×F by F×F: microseconds) in
//! fp32 on weights rounded to bf16, unless a sampler thread has at least
//! `BF16_CHAIN_FROM` images. At the per-pixel sizes a bf16 product
//! costs oneDNN about 18 µs more per call than fp32's whole product takes
//! (81×128 by 128×128: 37 against 19 µs on a Xeon with AMX), which made bf16
//! sampling 1.4× slower than fp32, and PixelCNN++'s 1.6× (BENCHMARKS.md). The per-pixel activations
//! then keep fp32's precision: such a sampler is closer to fp32 than a pure
//! bf16 one, and its probabilities are checked against fp32's within the
//! same bound (tests/precision.rs).
//!
//! From about 256 images per thread the per-pixel products are large enough
//! for bf16's rate to win over its per-call cost (PyTorch 2.11, one thread,
//! M×128 by 128×128: on an AMD EPYC with `avx512_bf16` 256 rows 49 µs
//! against 131 µs in fp32, 512 rows 58 against 306; on a Xeon with AMX 512
//! rows 61 against 130 µs; BENCHMARKS.md), so such batches run the whole
//! chain in bf16, as on a GPU. `PIXELCNN_BF16_CHAIN_FROM=N` moves the threshold.

use crate::config::Precision;
use crate::error::Result;
use tch::{Device, Kind, Tensor};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Kinds {
    /// The once-per-row products and the caches only they read.
    pub rows: Kind,
    /// The per-pixel chain and the caches it reads.
    pub pixels: Kind,
}

/// Images per sampler thread from which a CPU runs the per-pixel chain in bf16.
const BF16_CHAIN_FROM: i64 = 256;

impl Kinds {
    /// For a sampler thread of `batch` images.
    pub fn of(precision: Precision, device: Device, batch: i64) -> Kinds {
        let from = std::env::var("PIXELCNN_BF16_CHAIN_FROM").ok().and_then(|v| v.parse().ok()).unwrap_or(BF16_CHAIN_FROM);
        Kinds::with_chain_from(precision, device, batch, from)
    }

    /// The rule, with the CPU's bf16 chain from `chain_from` images per thread.
    fn with_chain_from(precision: Precision, device: Device, batch: i64, chain_from: i64) -> Kinds {
        let rows = precision.kind();
        let pixels = if device == Device::Cpu && batch < chain_from { Kind::Float } else { rows };
        Kinds { rows, pixels }
    }

    /// A weight (or bias) of a per-pixel product: the precision's value of it
    /// (rounded to bf16 under bf16), held in the pixel kind. In fp32 both
    /// conversions are no-ops, so the fp32 samplers compute as before.
    pub fn pixel_weight(&self, w: &Tensor) -> Result<Tensor> {
        Ok(w.f_detach()?.f_to_kind(self.rows)?.f_to_kind(self.pixels)?)
    }

    /// A weight (or bias) of a once-per-row product.
    pub fn row_weight(&self, w: &Tensor) -> Result<Tensor> {
        Ok(w.f_detach()?.f_to_kind(self.rows)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_runs_the_chain_in_bf16_from_256_images_per_thread() {
        let kinds = |precision, device, batch| Kinds::with_chain_from(precision, device, batch, BF16_CHAIN_FROM);
        let below = kinds(Precision::Bf16, Device::Cpu, 255);
        assert_eq!((below.rows, below.pixels), (Kind::BFloat16, Kind::Float));
        assert_eq!(kinds(Precision::Bf16, Device::Cpu, 256).pixels, Kind::BFloat16);
        assert_eq!(kinds(Precision::Fp32, Device::Cpu, 1024).pixels, Kind::Float);
        assert_eq!(kinds(Precision::Bf16, Device::Cuda(0), 1).pixels, Kind::BFloat16);
    }
}
