//! The number types the incremental samplers compute in, per kind of work.
//!
//! fp32: everything in fp32. bf16 on a GPU: everything in bf16, autocast's
//! rule. bf16 on a CPU: the products done once per row over the whole row
//! (B·W patches) in bf16, where oneDNN's bf16 kernels run at 4.5× the fp32
//! rate, and the chain of per-pixel products (B×F by F×F: microseconds) in
//! fp32 on weights rounded to bf16. At the per-pixel sizes a bf16 product
//! costs oneDNN about 18 µs more per call than fp32's whole product takes
//! (81×128 by 128×128: 37 against 19 µs on a Xeon with AMX), which made bf16
//! sampling 1.4× slower than fp32, and PixelCNN++'s 1.6× (BENCHMARKS.md). The per-pixel activations
//! then keep fp32's precision: such a sampler is closer to fp32 than a pure
//! bf16 one, and its probabilities are checked against fp32's within the
//! same bound (tests/precision.rs).

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

impl Kinds {
    pub fn of(precision: Precision, device: Device) -> Kinds {
        let rows = precision.kind();
        let pixels = if device == Device::Cpu { Kind::Float } else { rows };
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
