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
use crate::config::ModelConfig;
use crate::error::Result;
use crate::rng::Rng;
use tch::{Device, Tensor};

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
    pub fn new(config: ModelConfig, device: Device, seed: u64) -> Result<Self> {
        let mut rng = Rng::derived(seed, 0x1417);
        let (f, k, g) = (config.filters, config.classes, config.channel_groups());
        let pointwise = Mask::pointwise(g);
        let input_conv = Conv::new("input_conv", config.channels, f, config.input_kernel, Mask::A, g, k, device, &mut rng)?;
        let blocks = (0..config.residual_blocks())
            .map(|i| {
                Ok(ResidualBlock {
                    conv1: Conv::new(&format!("blocks.{i}.conv1"), f, f, 1, pointwise, g, k, device, &mut rng)?,
                    masked_conv: Conv::new(&format!("blocks.{i}.masked_conv"), f, f / 2, config.residual_kernel(), Mask::B, g, k, device, &mut rng)?,
                    conv2: Conv::new(&format!("blocks.{i}.conv2"), f / 2, f, 1, pointwise, g, k, device, &mut rng)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let head = (0..config.output_layers)
            .map(|i| Conv::new(&format!("head.{i}"), f, f, 1, pointwise, g, k, device, &mut rng))
            .collect::<Result<Vec<_>>>()?;
        let output = Conv::new("output", f, config.output_channels(), 1, pointwise, g, k, device, &mut rng)?;
        Ok(PixelCnn { config, device, input_conv, blocks, head, output })
    }

    /// The name and shape of every parameter of a network with this config, in
    /// `parameters()` order, computed without allocating it: a checkpoint's
    /// claims are checked against these before any weight is created.
    pub fn parameter_shapes(config: &ModelConfig) -> Vec<(String, Vec<i64>)> {
        let (f, k0, k, c) = (config.filters, config.input_kernel, config.residual_kernel(), config.channels);
        let conv = |name: String, cout: i64, cin: i64, k: i64| Conv::shapes(&name, cout, cin, k, k, config.classes);
        let mut out = Vec::new();
        out.extend(conv("input_conv".into(), f, c, k0));
        for i in 0..config.residual_blocks() {
            out.extend(conv(format!("blocks.{i}.conv1"), f, f, 1));
            out.extend(conv(format!("blocks.{i}.masked_conv"), f / 2, f, k));
            out.extend(conv(format!("blocks.{i}.conv2"), f, f / 2, 1));
        }
        for i in 0..config.output_layers {
            out.extend(conv(format!("head.{i}"), f, f, 1));
        }
        out.extend(conv("output".into(), config.output_channels(), f, 1));
        out
    }

    /// Every trainable tensor with its name, in a fixed order.
    pub fn parameters(&self) -> Vec<(String, &Tensor)> {
        let mut out = Vec::new();
        out.extend(self.input_conv.parameters());
        for b in &self.blocks {
            out.extend(b.conv1.parameters());
            out.extend(b.masked_conv.parameters());
            out.extend(b.conv2.parameters());
        }
        for h in &self.head {
            out.extend(h.parameters());
        }
        out.extend(self.output.parameters());
        out
    }

    /// x: (N, C, H, W) as the network reads it → outputs (N, outC, H, W);
    /// the outputs at i depend only on pixels before i in raster order (and on
    /// the label), and with three channel groups also on the earlier channels
    /// of pixel i.
    pub fn forward(&self, x: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        let mut h = self.input_conv.forward(x, labels)?.f_relu_()?; // (N, F, H, W)
        if self.device == Device::Cpu {
            // oneDNN runs these convolutions fastest channels-last. The input has
            // one channel, for which the two layouts look alike, so the residual
            // stream is converted explicitly; the conversion is in the graph, so
            // the backward pass runs channels-last too (1.5× faster per training
            // step on this project's 2-core machine, BENCHMARKS.md).
            h = channels_last(&h)?;
        }
        for b in &self.blocks {
            let t = b.conv1.forward(&h, labels)?.f_relu_()?; // (N, F, H, W)
            let t = b.masked_conv.forward(&t, labels)?.f_relu_()?; // (N, F/2, H, W)
            let t = b.conv2.forward(&t, labels)?.f_relu_()?; // (N, F, H, W)
            h = h.f_add(&t)?;
        }
        for layer in &self.head {
            h = layer.forward(&h, labels)?.f_relu_()?;
        }
        self.output.forward(&h, labels)
    }
}

