//! PixelCNN++ (Salimans et al. 2017; openai/pixel-cnn, and its PyTorch port
//! pclucas14/pixel-cnn-pp, whose module names are the tensor names here).
//!
//! Two streams replace masks. u at (r, c) sees only rows above r (a
//! down-shifted input convolution, then down-shifted convolutions, which
//! never read below); ul at (r, c) sees rows above and the current row left
//! of c (a down-shifted 1×3 plus a right-shifted 2×1 input convolution, then
//! down-right-shifted convolutions, which never read below or right, and u).
//! Every block is a gated ResNet block:
//!   c = conv(concat_elu(x)) [+ nin(concat_elu(a))]; c = dropout(concat_elu(c));
//!   c2 = conv(c) [+ class bias]; x + c2₁ ⊙ σ(c2₂),
//! where `a` is the u stream for an ul block, and in the down pass the
//! up-pass output of the same place (the U-Net skips; for ul, with u
//! beside it). The up pass runs three stages of `resnetBlocks` blocks with
//! a stride-2 shifted convolution between stages, the down pass three stages
//! of R, R + 1, R + 1 blocks with stride-2 shifted transposed convolutions
//! between them; the logits are nin(elu(ul)). So height and width must be
//! multiples of 4. The image enters scaled with a channel of ones appended,
//! which lets the first layers tell the zero padding from a black pixel.
//!
//! A colour model with per-sub-pixel outputs (Bernoulli, categorical) also
//! reads its own pixel's earlier channels: `pixel_link`, a 1×1 convolution
//! of the pixel's value into the logits, masked by channel group (output
//! group g reads channels before g). The mixture couples a pixel's channels
//! itself and needs none.
//!
//! Tensor names: `u_init.conv.*`, `ul_init.{0,1}.conv.*`,
//! `up_layers.{i}.{u_stream,ul_stream}.{j}.{conv_input.conv, nin_skip.lin_a, conv_out.conv}.*`
//! and `.class_bias` (classes, 2F) for conditional models,
//! `down_layers.{i}.…` likewise, `downsize_{u,ul}_stream.{i}.conv.*`,
//! `upsize_{u,ul}_stream.{i}.deconv.*`, `nin_out.lin_a.*`, `pixel_link.weight`;
//! `*` is `weight_g`, `weight_v`, `bias` (or `weight`, `bias` without
//! weight normalisation).

use super::class_bias::{self, ClassBias};
use super::dropout::Noise;
use super::params::Params;
use super::weight_norm::{concat_elu, down_shift, right_shift, Layer, Shift};
use crate::config::{Architecture, ModelConfig, Output, DEFAULT_MIXTURES};
use crate::error::{Error, Result};
use crate::precision::cast;
use crate::rng::Rng;
use tch::{Device, Tensor};

/// The fields of this architecture in a model config.
pub const FIELDS: &[&str] = &["resnetBlocks", "dropout", "weightNorm"];

/// The paper's CIFAR-10 network: 5 blocks per stage, 160 filters, 10 mixtures.
pub fn preset() -> ModelConfig {
    ModelConfig {
        architecture: Architecture::PixelcnnPp,
        height: 32,
        width: 32,
        channels: 3,
        output: Output::LogisticMixture,
        mixtures: Some(DEFAULT_MIXTURES),
        classes: None,
        filters: 160,
        input_kernel: None,
        output_layers: None,
        residual_blocks: None,
        residual_kernel: None,
        layers: None,
        kernel: None,
        resnet_blocks: Some(5),
        dropout: Some(0.5),
        // Both published codes train with weight normalisation, and the
        // port's state dicts then import name for name.
        weight_norm: Some(true),
        vocabulary: None,
        embedding: None,
        condition_size: None,
        condition_map: None,
    }
}

/// One block per stage and 32 filters: trains on a 2-core CPU.
pub fn small_preset() -> ModelConfig {
    ModelConfig { filters: 32, resnet_blocks: Some(1), mixtures: Some(5), ..preset() }
}

pub fn validate(config: &ModelConfig) -> Result<()> {
    let required = |name: &str, set: bool| if set { Ok(()) } else { Err(Error::config(format!("model.{name}"), "is required for this architecture")) };
    for (name, size) in [("height", config.height), ("width", config.width)] {
        if size < 4 || size % 4 != 0 {
            return Err(Error::config(
                format!("model.{name}"),
                format!("must be a multiple of 4 for architecture 'pixelcnn++' (it works at three resolutions, each half the last), got {size}"),
            ));
        }
    }
    crate::parse::check_range("model.filters", config.filters, 1, 4096)?;
    required("resnetBlocks", config.resnet_blocks.is_some())?;
    crate::parse::check_range("model.resnetBlocks", config.resnet_blocks.unwrap_or(0), 1, 32)?;
    required("dropout", config.dropout.is_some())?;
    let p = config.dropout.unwrap_or(0.0);
    if !(0.0..1.0).contains(&p) {
        return Err(Error::config("model.dropout", format!("must be at least 0 and below 1, got {p}")));
    }
    required("weightNorm", config.weight_norm.is_some())
}

/// A gated ResNet block.
pub(crate) struct Block {
    pub(crate) conv_input: Layer,
    pub(crate) nin_skip: Option<Layer>,
    pub(crate) conv_out: Layer,
    pub(crate) class_bias: Option<ClassBias>,
}

impl Block {
    /// `skips`: how many F-channel maps `a` carries (0: none).
    fn new(params: &mut Params, name: &str, config: &ModelConfig, shift: Shift, skips: i64, rng: &mut Rng) -> Result<Self> {
        let (f, norm) = (config.filters, config.weight_norm == Some(true));
        let kernel = if shift == Shift::Down { [2, 3] } else { [2, 2] };
        let conv_input = Layer::conv(params, &format!("{name}.conv_input"), 2 * f, f, kernel, shift, 1, norm, rng)?;
        let nin_skip = (skips > 0).then(|| Layer::nin(params, &format!("{name}.nin_skip"), 2 * skips * f, f, norm, rng)).transpose()?;
        let conv_out = Layer::conv(params, &format!("{name}.conv_out"), 2 * f, 2 * f, kernel, shift, 1, norm, rng)?;
        let class_bias = super::class_bias::Conditioning::of(config).map(|k| ClassBias::new(params, format!("{name}.class_bias"), k, 2 * f)).transpose()?;
        Ok(Block { conv_input, nin_skip, conv_out, class_bias })
    }

    fn forward(&self, x: &Tensor, a: Option<&Tensor>, labels: Option<&Tensor>, dropout: Option<(&Noise, f64, u64)>) -> Result<Tensor> {
        let mut c = self.conv_input.forward(&concat_elu(x)?)?;
        if let (Some(nin), Some(a)) = (&self.nin_skip, a) {
            c = c.f_add(&nin.forward(&concat_elu(a)?)?)?;
        }
        let mut c = concat_elu(&c)?;
        if let Some((noise, p, layer)) = dropout {
            c = noise.dropout(&c, p, layer)?;
        }
        let c2 = class_bias::apply(&self.class_bias, self.conv_out.forward(&c)?, labels)?;
        let halves = c2.f_chunk(2, 1)?;
        Ok(x.f_add(&halves[0].f_mul(&halves[1].f_sigmoid()?)?)?)
    }
}

/// One stage's blocks of the two streams.
pub(crate) struct Stage {
    pub(crate) u: Vec<Block>,
    pub(crate) ul: Vec<Block>,
}

pub struct PixelCnnPp {
    pub config: ModelConfig,
    pub device: Device,
    pub(crate) u_init: Layer,
    pub(crate) ul_init: [Layer; 2],
    pub(crate) up: Vec<Stage>,
    pub(crate) down: Vec<Stage>,
    pub(crate) downsize_u: Vec<Layer>,
    pub(crate) downsize_ul: Vec<Layer>,
    pub(crate) upsize_u: Vec<Layer>,
    pub(crate) upsize_ul: Vec<Layer>,
    pub(crate) nin_out: Layer,
    /// (outC, C, 1, 1) and its channel-group mask, for per-sub-pixel colour outputs.
    pub(crate) pixel_link: Option<(Tensor, Tensor)>,
}

impl PixelCnnPp {
    pub fn new(config: ModelConfig, params: &mut Params, seed: u64) -> Result<Self> {
        let mut rng = Rng::derived(seed, 0x9cc9);
        let rng = &mut rng;
        let (f, c, norm) = (config.filters, config.channels, config.weight_norm == Some(true));
        let r = config.resnet_blocks.unwrap_or(1);
        let cin = config.input_channels();
        let u_init = Layer::conv(params, "u_init", cin + 1, f, [2, 3], Shift::Down, 1, norm, rng)?;
        let ul_init = [
            Layer::conv(params, "ul_init.0", cin + 1, f, [1, 3], Shift::Down, 1, norm, rng)?,
            Layer::conv(params, "ul_init.1", cin + 1, f, [2, 1], Shift::DownRight, 1, norm, rng)?,
        ];
        let stage = |params: &mut Params, rng: &mut Rng, name: String, blocks: i64, skips: (i64, i64)| -> Result<Stage> {
            let mut u = Vec::new();
            let mut ul = Vec::new();
            for j in 0..blocks {
                u.push(Block::new(params, &format!("{name}.u_stream.{j}"), &config, Shift::Down, skips.0, rng)?);
            }
            for j in 0..blocks {
                ul.push(Block::new(params, &format!("{name}.ul_stream.{j}"), &config, Shift::DownRight, skips.1, rng)?);
            }
            Ok(Stage { u, ul })
        };
        // The port registers the down pass's modules first.
        let down = (0..3).map(|i| stage(params, rng, format!("down_layers.{i}"), if i == 0 { r } else { r + 1 }, (1, 2))).collect::<Result<Vec<_>>>()?;
        let up = (0..3).map(|i| stage(params, rng, format!("up_layers.{i}"), r, (0, 1))).collect::<Result<Vec<_>>>()?;
        let mut steps = |kind: &str, shift: Shift, deconv: bool| -> Result<Vec<Layer>> {
            (0..2)
                .map(|i| {
                    let name = format!("{kind}.{i}");
                    let kernel = if shift == Shift::Down { [2, 3] } else { [2, 2] };
                    if deconv { Layer::deconv(params, &name, f, f, kernel, shift, norm, rng) } else { Layer::conv(params, &name, f, f, kernel, shift, 2, norm, rng) }
                })
                .collect()
        };
        let downsize_u = steps("downsize_u_stream", Shift::Down, false)?;
        let downsize_ul = steps("downsize_ul_stream", Shift::DownRight, false)?;
        let upsize_u = steps("upsize_u_stream", Shift::Down, true)?;
        let upsize_ul = steps("upsize_ul_stream", Shift::DownRight, true)?;
        let out = config.output_channels();
        let nin_out = Layer::nin(params, "nin_out", f, out, norm, rng)?;
        let groups = config.channel_groups();
        let pixel_link = if groups.is_one() {
            None
        } else {
            // Starts at zero: a fresh model's colour channels are then those of its network alone.
            let weight = params.zeros("pixel_link.weight".into(), &[out, c, 1, 1])?;
            let per_group = out / groups.0;
            let mask: Vec<f32> = (0..out * c).map(|i| if (i % c) < (i / c) / per_group { 1.0 } else { 0.0 }).collect();
            let mask = if params.allocating() { Tensor::f_from_slice(&mask)?.f_reshape([out, c, 1, 1])?.f_to_device(params.device())? } else { Tensor::new() };
            Some((weight, mask))
        };
        Ok(PixelCnnPp { config, device: params.device(), u_init, ul_init, up, down, downsize_u, downsize_ul, upsize_u, upsize_ul, nin_out, pixel_link })
    }

    /// x: (N, C, H, W) as the network reads it → logits (N, outC, H, W).
    /// `noise`: training dropout (`None`: evaluation, no dropout).
    pub fn forward(&self, x: &Tensor, labels: Option<&Tensor>, noise: Option<&Noise>) -> Result<Tensor> {
        let size = x.size();
        let ones = Tensor::f_ones([size[0], 1, size[2], size[3]], (x.kind(), x.device()))?;
        let mut input = Tensor::f_cat(&[x, &ones], 1)?;
        if self.device == Device::Cpu {
            // oneDNN runs these convolutions fastest channels-last, and the
            // element-wise steps (pads, cat, ELU, gates) keep their inputs'
            // layout, so the whole network runs channels-last from here
            // (forward of 64 images: 1.16× in fp32 and 1.20× in bf16 for the
            // small preset, 1.12× and 1.35× for the full one, BENCHMARKS.md).
            input = super::pixelcnn::channels_last(&input)?;
        }
        let p = self.config.dropout.unwrap_or(0.0);
        let mut layer = 0u64;
        let mut dropout = || {
            layer += 1;
            noise.map(|n| (n, p, layer))
        };
        let mut u_list = vec![down_shift(&self.u_init.forward(&input)?)?];
        let mut ul_list = vec![down_shift(&self.ul_init[0].forward(&input)?)?.f_add(&right_shift(&self.ul_init[1].forward(&input)?)?)?];
        for (i, stage) in self.up.iter().enumerate() {
            for (bu, bul) in stage.u.iter().zip(&stage.ul) {
                let u = bu.forward(u_list.last().expect("one at least"), None, labels, dropout())?;
                let ul = bul.forward(ul_list.last().expect("one at least"), Some(&u), labels, dropout())?;
                u_list.push(u);
                ul_list.push(ul);
            }
            if i < 2 {
                let u = self.downsize_u[i].forward(u_list.last().expect("one at least"))?;
                let ul = self.downsize_ul[i].forward(ul_list.last().expect("one at least"))?;
                u_list.push(u);
                ul_list.push(ul);
            }
        }
        let mut u = u_list.pop().expect("one at least");
        let mut ul = ul_list.pop().expect("one at least");
        for (i, stage) in self.down.iter().enumerate() {
            for (bu, bul) in stage.u.iter().zip(&stage.ul) {
                let skip_u = u_list.pop().ok_or_else(|| Error::Internal("pixelcnn++: up-pass list exhausted".into()))?;
                let skip_ul = ul_list.pop().ok_or_else(|| Error::Internal("pixelcnn++: up-pass list exhausted".into()))?;
                u = bu.forward(&u, Some(&skip_u), labels, dropout())?;
                ul = bul.forward(&ul, Some(&Tensor::f_cat(&[&u, &skip_ul], 1)?), labels, dropout())?;
            }
            if i < 2 {
                u = self.upsize_u[i].forward(&u)?;
                ul = self.upsize_ul[i].forward(&ul)?;
            }
        }
        let mut logits = self.nin_out.forward(&ul.f_elu()?)?;
        if let Some((weight, mask)) = &self.pixel_link {
            let w = cast(&weight.f_mul(mask)?, x.kind())?;
            logits = logits.f_add(&x.f_conv2d(&w, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)?)?;
        }
        Ok(logits)
    }
}
