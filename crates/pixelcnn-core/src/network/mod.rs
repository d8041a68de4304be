//! The model family: one `Network` over the architectures, each in its own
//! file. Everything outside this module (training, likelihoods, samplers,
//! checkpoints) sees a network through these methods only, except the fast
//! sampler, which has one incremental form per architecture.

pub mod channel_groups;
pub mod class_bias;
pub mod fused_gate;
pub mod gated;
pub mod masked_conv;
pub mod pixelcnn;
pub mod shifted_conv;

use crate::config::{Architecture, ModelConfig, Precision};
use crate::error::Result;
use tch::{Device, Kind, Tensor};

pub use gated::GatedPixelCnn;
pub use pixelcnn::PixelCnn;

pub enum Network {
    PixelCnn(PixelCnn),
    Gated(GatedPixelCnn),
}

impl Network {
    /// A fresh network with weights drawn from `seed`.
    pub fn new(config: ModelConfig, device: Device, seed: u64) -> Result<Self> {
        config.validate()?;
        crate::memory::check_model(&config, device)?;
        Ok(match config.architecture {
            Architecture::Pixelcnn => Network::PixelCnn(PixelCnn::new(config, device, seed)?),
            Architecture::Gated => Network::Gated(GatedPixelCnn::new(config, device, seed)?),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        match self {
            Network::PixelCnn(n) => &n.config,
            Network::Gated(n) => &n.config,
        }
    }

    pub fn device(&self) -> Device {
        match self {
            Network::PixelCnn(n) => n.device,
            Network::Gated(n) => n.device,
        }
    }

    /// The name and shape of every parameter of a network with this config, in
    /// `parameters()` order, computed without allocating it: a checkpoint's
    /// claims are checked against these before any weight is created.
    pub fn parameter_shapes(config: &ModelConfig) -> Vec<(String, Vec<i64>)> {
        match config.architecture {
            Architecture::Pixelcnn => PixelCnn::parameter_shapes(config),
            Architecture::Gated => GatedPixelCnn::parameter_shapes(config),
        }
    }

    /// Every trainable tensor with its name, in a fixed order.
    pub fn parameters(&self) -> Vec<(String, &Tensor)> {
        match self {
            Network::PixelCnn(n) => n.parameters(),
            Network::Gated(n) => n.parameters(),
        }
    }

    pub fn parameter_count(&self) -> i64 {
        self.parameters().iter().map(|(_, t)| t.numel() as i64).sum()
    }

    /// x: (N, C, H, W) pixel values in float (0/1, or 0–255 for an 8-bit
    /// model), labels: (N,) int64 for a conditional model → logits
    /// (N, outC, H, W) (`ModelConfig::output_channels`), where the logits at
    /// pixel i depend only on the pixels before i in raster order.
    ///
    /// In bf16 the input is cast once and each layer computes in the type of
    /// its input; the logits come back as fp32 for the loss and the draws.
    pub fn forward(&self, x: &Tensor, labels: Option<&Tensor>, precision: Precision) -> Result<Tensor> {
        let x = crate::precision::cast(&crate::output::network_input(self.config(), x)?, precision.kind())?;
        let logits = match self {
            Network::PixelCnn(n) => n.forward(&x, labels)?,
            Network::Gated(n) => n.forward(&x, labels)?,
        };
        crate::precision::cast(&logits, Kind::Float)
    }
}
