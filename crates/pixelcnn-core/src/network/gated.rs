//! Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation
//! with PixelCNN Decoders").
//!
//! Two stacks replace the masked kernels. The vertical stack v is built so
//! that v at (r, c) depends only on rows above r: the first layer reads rows
//! r−p0 … r−1 (a down-shifted (p0 × k0) kernel), later layers read rows
//! r−p … r of the previous v, which already excludes row r of the image.
//! The horizontal stack h at (r, c) reads the current row left of c: the
//! first layer cols c−p0 … c−1 (the centre excluded), later layers cols
//! c−p … c of the previous h. A 1×1 link carries v at (r, c) into h before
//! its gate. Since v covers the whole rectangle above (its width grows with
//! depth in both directions) and h the row to the left, nothing before the
//! pixel is left out: no blind spot.
//!
//! Each gated layer: a = V∗v, v' = tanh(a₁) ⊙ σ(a₂); b = H∗h + link(a),
//! g = tanh(b₁) ⊙ σ(b₂); skip += S g; h' = h + R g. The output head reads
//! relu(Σ skips). A conditional model adds a learned per-class bias inside
//! both gates of every layer, and to the head and output layers.
//!
//! Colour with per-sub-pixel outputs (`channel_groups.rs`): the first
//! horizontal layer also reads the current pixel, through a mask-A centre
//! column, and every later horizontal convolution and 1×1 layer masks its
//! centre by channel group; the vertical stack and the link never see the
//! current row and stay unmasked.
//!
//! Tensor names (PyTorch module attributes): `input_v`, `input_h`,
//! `layers.{i}.{v_conv, h_conv, link, skip, residual}`,
//! `layers.{i}.{v_class_bias, h_class_bias}`, `head.{j}`, `output`.

use super::class_bias::{self, ClassBias};
use super::masked_conv::{Conv, Mask};
use super::params::Params;
use super::pixelcnn::channels_last;
use super::shifted_conv::{gate, gate_bias, CentreMask, ShiftedConv};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::precision::cast;
use crate::rng::Rng;
use tch::{Device, Tensor};

/// The fields of this architecture in a model config.
pub const FIELDS: &[&str] = &["inputKernel", "outputLayers", "layers", "kernel"];

/// Gated PixelCNN at about the seed's parameter budget (553,793).
pub fn preset() -> ModelConfig {
    ModelConfig {
        architecture: crate::config::Architecture::Gated,
        filters: 64,
        layers: Some(6),
        kernel: Some(3),
        residual_blocks: None,
        residual_kernel: None,
        ..super::pixelcnn::preset()
    }
}

pub fn small_preset() -> ModelConfig {
    ModelConfig { filters: 16, layers: Some(3), input_kernel: Some(5), output_layers: Some(1), ..preset() }
}

pub fn validate(config: &ModelConfig) -> Result<()> {
    use crate::parse::{check_odd, check_range, required};
    check_range("model.filters", config.filters, 1, 4096)?;
    check_range("model.layers", required("layers", config.layers)?, 1, 64)?;
    // The first layer reads input_kernel/2 rows above and columns left; side 1 would read nothing.
    check_odd("inputKernel", required("inputKernel", config.input_kernel)?, 3)?;
    check_odd("kernel", required("kernel", config.kernel)?, 3)?;
    check_range("model.outputLayers", required("outputLayers", config.output_layers)?, 0, 16)
}

pub struct GatedLayer {
    /// F → 2F, (p+1) × k over v: rows r−p … r, cols c−p … c+p.
    pub v_conv: ShiftedConv,
    /// F → 2F, 1 × (p+1) over h: cols c−p … c.
    pub h_conv: ShiftedConv,
    /// 2F → 2F, 1×1: v's pre-gate features into h's gate.
    pub link: Conv,
    /// F → F, 1×1, into the sum of skips and into the residual stream.
    pub skip: Conv,
    pub residual: Conv,
    pub v_class_bias: Option<ClassBias>,
    pub h_class_bias: Option<ClassBias>,
}

pub struct GatedPixelCnn {
    pub config: ModelConfig,
    pub device: Device,
    /// C → F, p0 × k0 over the image: rows r−p0 … r−1.
    pub input_v: ShiftedConv,
    /// C → F, 1 × p0 over the image: cols c−p0 … c−1.
    pub input_h: ShiftedConv,
    pub layers: Vec<GatedLayer>,
    pub head: Vec<Conv>,
    pub output: Conv,
}

/// Kernel shapes and paddings: (input_v, input_h, v_conv, h_conv). With
/// three channel groups the first horizontal layer also reads the current
/// pixel (its earlier channels, through the centre mask): cols c−p0 … c.
fn geometry(config: &ModelConfig) -> [([i64; 2], [i64; 2]); 4] {
    let (k0, k) = (config.input_kernel(), config.kernel());
    let (p0, p) = (k0 / 2, k / 2);
    let centre = if config.channel_groups().is_one() { 0 } else { 1 };
    [([p0, k0], [p0, p0]), ([1, p0 + centre], [0, p0]), ([p + 1, k], [p, p]), ([1, p + 1], [0, p])]
}

/// The horizontal layers' centre masks: none with one group (the first
/// layer's strip then ends left of the pixel, later ones see only features
/// of earlier pixels at the centre), mask A and B by channel group otherwise.
fn centre_masks(config: &ModelConfig) -> (Option<CentreMask>, Option<CentreMask>) {
    let groups = config.channel_groups();
    if groups.is_one() {
        return (None, None);
    }
    (Some(CentreMask { groups, strict: true, gate_outputs: false }), Some(CentreMask { groups, strict: false, gate_outputs: true }))
}

impl GatedPixelCnn {
    pub fn new(config: ModelConfig, params: &mut Params, seed: u64) -> Result<Self> {
        let mut rng = Rng::derived(seed, 0x6a7e);
        let rng = &mut rng;
        let (f, c, classes) = (config.filters, config.input_channels(), super::class_bias::Conditioning::of(&config));
        let [(kv0, pv0), (kh0, ph0), (kv, pv), (kh, ph)] = geometry(&config);
        let (first_centre, centre) = centre_masks(&config);
        let pointwise = Mask::pointwise(config.channel_groups());
        let g = config.channel_groups();
        let input_v = ShiftedConv::new(params, "input_v", c, f, kv0, pv0, None, rng)?;
        let input_h = ShiftedConv::new(params, "input_h", c, f, kh0, ph0, first_centre, rng)?;
        let layers = (0..config.layers())
            .map(|i| {
                let name = |part: &str| format!("layers.{i}.{part}");
                Ok(GatedLayer {
                    v_conv: ShiftedConv::new(params, &name("v_conv"), f, 2 * f, kv, pv, None, rng)?,
                    h_conv: ShiftedConv::new(params, &name("h_conv"), f, 2 * f, kh, ph, centre, rng)?,
                    // The vertical stack holds nothing of the current row: its link needs no mask.
                    link: Conv::new(params, &name("link"), 2 * f, 2 * f, 1, Mask::None, g, None, rng)?,
                    skip: Conv::new(params, &name("skip"), f, f, 1, pointwise, g, None, rng)?,
                    residual: Conv::new(params, &name("residual"), f, f, 1, pointwise, g, None, rng)?,
                    v_class_bias: gate_bias(params, name("v_class_bias"), classes, 2 * f)?,
                    h_class_bias: gate_bias(params, name("h_class_bias"), classes, 2 * f)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let head = (0..config.output_layers())
            .map(|j| Conv::new(params, &format!("head.{j}"), f, f, 1, pointwise, g, classes, rng))
            .collect::<Result<Vec<_>>>()?;
        let output = Conv::new(params, "output", f, config.output_channels(), 1, pointwise, g, classes, rng)?;
        Ok(GatedPixelCnn { config, device: params.device(), input_v, input_h, layers, head, output })
    }

    /// x: (N, C, H, W) as the network reads it → outputs (N, outC, H, W).
    pub fn forward(&self, x: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        let mut v = self.input_v.forward(x)?; // (N, F, H, W), rows above only
        let mut h = self.input_h.forward(x)?; // (N, F, H, W), left of the pixel only
        if self.device == Device::Cpu {
            // oneDNN's convolutions run channels-last without reordering
            // their inputs and outputs; as for the seed's network the layout
            // is set once here and kept by every layer, forward and backward.
            // With the fused skip/residual pair and the padded shifted
            // convolutions, about 10% faster per training step on the
            // development machine (BENCHMARKS.md).
            v = channels_last(&v)?;
            h = channels_last(&h)?;
        }
        let mut skip: Option<Tensor> = None;
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let a = layer.v_conv.forward(&v)?; // (N, 2F, H, W)
            let b = layer.h_conv.forward(&h)?.f_add(&layer.link.forward(&a, None)?)?;
            let b = class_bias::apply(&layer.h_class_bias, b, labels)?;
            let g = gate(&b)?; // (N, F, H, W)
            let s = if i == last {
                // The last layer's vertical stack and residual stream feed
                // nothing (only its skip reaches the head): not computed.
                layer.skip.forward(&g, None)?
            } else {
                let a = class_bias::apply(&layer.v_class_bias, a, labels)?;
                v = gate(&a)?;
                let (s, r) = pointwise_pair(&layer.skip, &layer.residual, &g)?;
                h = h.f_add(&r)?;
                s
            };
            skip = Some(match skip {
                Some(total) => total.f_add(&s)?,
                None => s,
            });
        }
        let mut s = skip.expect("validated: at least one layer").f_relu()?;
        for layer in &self.head {
            s = layer.forward_relu(&s, labels)?;
        }
        self.output.forward(&s, labels)
    }
}

/// Two 1×1 convolutions of the same input as one with their output channels
/// stacked (one pass over `x` forward and backward instead of two); the
/// parameters stay separate, so checkpoints keep their names.
fn pointwise_pair(first: &Conv, second: &Conv, x: &Tensor) -> Result<(Tensor, Tensor)> {
    let kind = x.kind();
    let weight = cast(&Tensor::f_cat(&[&first.effective_weight()?, &second.effective_weight()?], 0)?, kind)?;
    let bias = cast(&Tensor::f_cat(&[&first.bias, &second.bias], 0)?, kind)?;
    let both = x.f_conv2d(&weight, Some(&bias), [1, 1], [0, 0], [1, 1], 1)?;
    // A split, not two narrows: its backward joins the two gradients in one
    // copy, where each narrow's would fill a zero tensor of both's size and
    // the two would then be added.
    let mut halves = both.f_split_with_sizes([first.weight.size()[0], second.weight.size()[0]], 1)?.into_iter();
    Ok((halves.next().expect("two sizes"), halves.next().expect("two sizes")))
}
