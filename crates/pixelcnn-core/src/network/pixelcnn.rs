//! The PixelCNN of the seed: a mask-A 7×7 convolution, residual blocks
//! (1×1 → mask-B 3×3 at half width → 1×1, ReLU after each, skip add), 1×1
//! ReLU layers, and a 1×1 convolution to one logit per pixel.
//!
//! Tensor names follow a PyTorch `nn.Module` with attributes `input_conv`,
//! `blocks` (each with `conv1`, `masked_conv`, `conv2`), `head` and `output`,
//! so a state dict of that module loads the same `.safetensors` by name.
//! A conditional model adds `<conv>.class_bias` (classes, out) to every conv,
//! before its ReLU.
//!
//! The blind spot: stacking masked k×k kernels grows the receptive field as a
//! cone that never reaches the pixels up and to the right of the current one
//! beyond the first layer's reach (van den Oord et al. 2016, figure 1). The
//! gated architecture (`gated.rs`) has none.

use super::masked_conv::{Conv, Mask};
use super::params::Params;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::rng::Rng;
use tch::{Device, Tensor};

/// The fields of this architecture in a model config.
pub const FIELDS: &[&str] = &["inputKernel", "outputLayers", "residualBlocks", "residualKernel"];

/// The Keras example this project started from: 532,673 parameters.
pub fn preset() -> ModelConfig {
    ModelConfig {
        architecture: crate::config::Architecture::Pixelcnn,
        height: 28,
        width: 28,
        channels: 1,
        output: crate::config::Output::Bernoulli,
        mixtures: None,
        classes: None,
        filters: 128,
        input_kernel: Some(7),
        output_layers: Some(2),
        residual_blocks: Some(5),
        residual_kernel: Some(3),
        layers: None,
        kernel: None,
        resnet_blocks: None,
        dropout: None,
        weight_norm: None,
        vocabulary: None,
        embedding: None,
        condition_size: None,
        condition_map: None,
    }
}

/// A network small enough for tests and quick experiments on two cores.
pub fn small_preset() -> ModelConfig {
    ModelConfig { filters: 32, residual_blocks: Some(2), input_kernel: Some(5), output_layers: Some(1), ..preset() }
}

pub fn validate(config: &ModelConfig) -> Result<()> {
    use crate::parse::{check_odd, check_range, required};
    if !(config.filters >= 2 && config.filters % 2 == 0 && config.filters <= 4096) {
        return Err(crate::error::Error::config("model.filters", format!("must be an even number between 2 and 4096 (blocks use filters / 2), got {}", config.filters)));
    }
    check_range("model.residualBlocks", required("residualBlocks", config.residual_blocks)?, 0, 64)?;
    // A mask-A kernel of side 1 sees nothing at all; even sides have no centre.
    check_odd("inputKernel", required("inputKernel", config.input_kernel)?, 3)?;
    check_odd("residualKernel", required("residualKernel", config.residual_kernel)?, 1)?;
    check_range("model.outputLayers", required("outputLayers", config.output_layers)?, 0, 16)
}

pub struct ResidualBlock {
    /// F → F, 1×1
    pub conv1: Conv,
    /// F → F/2, k×k, mask B
    pub masked_conv: Conv,
    /// F/2 → F, 1×1
    pub conv2: Conv,
}

pub struct PixelCnn {
    pub config: ModelConfig,
    pub device: Device,
    pub input_conv: Conv,
    pub blocks: Vec<ResidualBlock>,
    pub head: Vec<Conv>,
    pub output: Conv,
}

/// Rewrites a (N, C, H, W) tensor with channels-last strides.
pub fn channels_last(x: &Tensor) -> Result<Tensor> {
    Ok(x.f_permute([0, 2, 3, 1])?.f_contiguous()?.f_permute([0, 3, 1, 2])?)
}

impl PixelCnn {
    /// Weights drawn in a fixed order from `seed`: the seed preset gives the
    /// same network as every earlier version of this library.
    pub fn new(config: ModelConfig, params: &mut Params, seed: u64) -> Result<Self> {
        let mut rng = Rng::derived(seed, 0x1417);
        let rng = &mut rng;
        let (f, k, g) = (config.filters, super::class_bias::Conditioning::of(&config), config.channel_groups());
        let pointwise = Mask::pointwise(g);
        let input_conv = Conv::new(params, "input_conv", config.input_channels(), f, config.input_kernel(), Mask::A, g, k, rng)?;
        let blocks = (0..config.residual_blocks())
            .map(|i| {
                Ok(ResidualBlock {
                    conv1: Conv::new(params, &format!("blocks.{i}.conv1"), f, f, 1, pointwise, g, k, rng)?,
                    masked_conv: Conv::new(params, &format!("blocks.{i}.masked_conv"), f, f / 2, config.residual_kernel(), Mask::B, g, k, rng)?,
                    conv2: Conv::new(params, &format!("blocks.{i}.conv2"), f / 2, f, 1, pointwise, g, k, rng)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let head = (0..config.output_layers())
            .map(|i| Conv::new(params, &format!("head.{i}"), f, f, 1, pointwise, g, k, rng))
            .collect::<Result<Vec<_>>>()?;
        let output = Conv::new(params, "output", f, config.output_channels(), 1, pointwise, g, k, rng)?;
        Ok(PixelCnn { config, device: params.device(), input_conv, blocks, head, output })
    }

    /// x: (N, C, H, W) as the network reads it → outputs (N, outC, H, W);
    /// the outputs at i depend only on pixels before i in raster order (and on
    /// the label), and with three channel groups also on the earlier channels
    /// of pixel i.
    pub fn forward(&self, x: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        let mut h = self.input_conv.forward_relu(x, labels)?; // (N, F, H, W)
        if self.device == Device::Cpu {
            // oneDNN runs these convolutions fastest channels-last. The input has
            // one channel, for which the two layouts look alike, so the residual
            // stream is converted explicitly; the conversion is in the graph, so
            // the backward pass runs channels-last too (1.5× faster per training
            // step on this project's 2-core machine, BENCHMARKS.md).
            h = channels_last(&h)?;
        }
        for b in &self.blocks {
            let t = b.conv1.forward_relu(&h, labels)?; // (N, F, H, W)
            let t = b.masked_conv.forward_relu(&t, labels)?; // (N, F/2, H, W)
            let t = b.conv2.forward_relu(&t, labels)?; // (N, F, H, W)
            h = h.f_add(&t)?;
        }
        for layer in &self.head {
            h = layer.forward_relu(&h, labels)?;
        }
        self.output.forward(&h, labels)
    }
}

