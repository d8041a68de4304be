//! The incremental sampler: each step computes every layer's output at the new
//! pixel only, from cached lower-layer activations.
//!
//! Why this is exact: a layer's output at position p depends only on its input
//! at positions up to p in raster order (rows above, and the current row up to
//! p; mask A excludes p itself). When pixel p is generated, every cached value
//! before p is final, so computing layer by layer at p alone gives exactly the
//! logits a full forward pass would give there. Over an image that is one
//! forward pass of arithmetic instead of H·W of them.
//!
//! Only the masked k×k convolutions read neighbours, so only their inputs are
//! cached: the image itself (for the mask-A layer) and each residual block's
//! 1×1 output (for its mask-B layer). Everything else is pointwise and flows
//! through as (B, F) vectors. A k×k masked kernel's live taps all lie in rows
//! p−k/2 … p of the cache, so the patch read is (k/2 + 1)·k taps wide and one
//! matrix product with the matching rows of the kernel gives the output; the
//! taps right of the centre in the last row have zero weight and read cache
//! entries that are still zero.
//!
//! A conditional model's class biases are constant over the image: each
//! layer's bias rows for the batch's labels are gathered once and added to
//! its bias, so they cost nothing per pixel.

use super::{draw, BatchInputs};
use crate::error::Result;
use crate::output::network_input;
use crate::precision::cast;
use crate::network::masked_conv::Conv;
use crate::network::PixelCnn;
use tch::{Kind, Tensor};

/// The conv's bias for each image of the batch: (Cout,), or (B, Cout) with
/// the class bias of each image's label added.
fn batch_bias(conv: &Conv, labels: Option<&Tensor>, kind: Kind) -> Result<Tensor> {
    let bias = conv.bias.f_detach()?;
    let bias = match (&conv.class_bias, labels) {
        (Some(cb), Some(l)) => cb.rows(l)?.f_detach()?.f_add(&bias)?,
        _ => bias,
    };
    cast(&bias, kind)
}

/// A masked k×k convolution as a matrix over the causal rows of its patch.
struct PatchConv {
    pad: i64,
    kernel: i64,
    /// ((pad+1)·k·Cin, Cout): rows ordered (kernel row, kernel col, channel)
    /// to match a channels-last patch.
    matrix: Tensor,
    bias: Tensor,
}

impl PatchConv {
    fn new(conv: &Conv, labels: Option<&Tensor>, kind: Kind) -> Result<Self> {
        let (k, pad) = (conv.kernel, conv.kernel / 2);
        let w = conv.effective_weight()?.f_detach()?; // (Cout, Cin, k, k)
        let cout = w.size()[0];
        let matrix = w
            .f_narrow(2, 0, pad + 1)? // (Cout, Cin, pad+1, k): rows at or above the centre
            .f_permute([2, 3, 1, 0])? // (pad+1, k, Cin, Cout)
            .f_contiguous()?
            .f_reshape([-1, cout])?
            .f_to_kind(kind)?;
        Ok(PatchConv { pad, kernel: k, matrix, bias: batch_bias(conv, labels, kind)? })
    }

    /// A zeroed input cache (B, H+pad, W+2·pad, Cin): pixel (r, c) lives at
    /// (r+pad, c+pad), so the zero border is the convolution's padding.
    fn cache(&self, batch: i64, h: i64, w: i64, cin: i64, device: tch::Device) -> Result<Tensor> {
        Ok(Tensor::f_zeros([batch, h + self.pad, w + 2 * self.pad, cin], (self.matrix.kind(), device))?)
    }

    /// The output at (r, c), (B, Cout), before the activation.
    fn at(&self, cache: &Tensor, r: i64, c: i64) -> Result<Tensor> {
        let batch = cache.size()[0];
        let patch = cache.f_narrow(1, r, self.pad + 1)?.f_narrow(2, c, self.kernel)?.f_reshape([batch, -1])?;
        Ok(self.bias.f_addmm(&patch, &self.matrix)?)
    }
}

/// A 1×1 convolution as a (Cin, Cout) matrix for (B, Cin) vectors.
pub(super) struct Pointwise {
    matrix: Tensor,
    bias: Tensor,
}

impl Pointwise {
    pub(super) fn new(conv: &Conv, labels: Option<&Tensor>, kind: Kind) -> Result<Self> {
        let w = conv.effective_weight()?.f_detach()?; // (Cout, Cin, 1, 1)
        let cout = w.size()[0];
        let matrix = w.f_reshape([cout, -1])?.f_t_()?.f_contiguous()?.f_to_kind(kind)?;
        Ok(Pointwise { matrix, bias: batch_bias(conv, labels, kind)? })
    }

    pub(super) fn at(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.bias.f_addmm(x, &self.matrix)?)
    }
}

struct Block {
    conv1: Pointwise,
    masked: PatchConv,
    conv2: Pointwise,
    /// (B, H+pad, W+2·pad, F): conv1's outputs so far.
    cache: Tensor,
}

pub(super) fn write(cache: &Tensor, r: i64, c: i64, pad: i64, value: &Tensor) -> Result<()> {
    let mut slot = cache.f_select(1, r + pad)?.f_select(1, c + pad)?; // (B, C)
    slot.f_copy_(value)?;
    Ok(())
}

/// Returns (images, probabilities), each (B, H·W) on the device.
pub(super) fn sample_batch(net: &PixelCnn, inputs: &BatchInputs, batch: i64, on_row: &mut dyn FnMut(i64) -> Result<()>) -> Result<(Tensor, Tensor)> {
    let cfg = &net.config;
    let (h, w, f) = (cfg.height, cfg.width, cfg.filters);
    let device = net.device;
    let labels = inputs.labels.as_ref();
    let kind = inputs.precision.kind();
    let input = PatchConv::new(&net.input_conv, labels, kind)?;
    let image = input.cache(batch, h, w, cfg.channels, device)?; // (B, H+p, W+2p, 1)
    let mut blocks = Vec::with_capacity(net.blocks.len());
    for b in &net.blocks {
        let masked = PatchConv::new(&b.masked_conv, labels, kind)?;
        let cache = masked.cache(batch, h, w, f, device)?;
        blocks.push(Block { conv1: Pointwise::new(&b.conv1, labels, kind)?, masked, conv2: Pointwise::new(&b.conv2, labels, kind)?, cache });
    }
    let head = net.head.iter().map(|c| Pointwise::new(c, labels, kind)).collect::<Result<Vec<_>>>()?;
    let output = Pointwise::new(&net.output, labels, kind)?;
    let probs = Tensor::f_zeros([batch, h * w], (Kind::Float, device))?;
    let pixels = Tensor::f_zeros([batch, h * w], (Kind::Float, device))?;

    for r in 0..h {
        for c in 0..w {
            let mut x = input.at(&image, r, c)?.f_relu_()?; // (B, F)
            for b in &blocks {
                let t = b.conv1.at(&x)?.f_relu_()?; // (B, F)
                write(&b.cache, r, c, b.masked.pad, &t)?;
                let t = b.masked.at(&b.cache, r, c)?.f_relu_()?; // (B, F/2)
                let t = b.conv2.at(&t)?.f_relu_()?; // (B, F)
                x = x.f_add_(&t)?;
            }
            for layer in &head {
                x = layer.at(&x)?.f_relu_()?;
            }
            let logits = output.at(&x)?; // (B, outC)
            let pos = r * w + c;
            let (value, p) = draw(cfg, inputs, &logits, pos)?;
            write(&image, r, c, input.pad, &network_input(cfg, &value)?.f_unsqueeze(1)?)?;
            pixels.f_select(1, pos)?.f_copy_(&value)?;
            probs.f_select(1, pos)?.f_copy_(&p)?;
        }
        on_row(r)?;
    }
    Ok((pixels, probs))
}
