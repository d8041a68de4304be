//! The model family: one `Network` over the architectures, each in its own
//! file. Everything outside this module (training, likelihoods, samplers,
//! checkpoints) sees a network through these methods only, except the fast
//! sampler, which has one incremental form per architecture.

pub mod channel_groups;
pub mod class_bias;
pub mod conv_relu;
pub mod dropout;
pub mod fused_gate;
pub mod gated;
pub mod masked_conv;
pub mod params;
pub mod pixelcnn;
pub mod pixelcnn_pp;
pub mod shifted_conv;
pub mod token_embedding;
pub mod weight_norm;

use crate::config::{Architecture, ModelConfig, Precision};
use crate::error::Result;
use params::Params;
use tch::{Device, Kind, Tensor};

pub use gated::GatedPixelCnn;
pub use pixelcnn::PixelCnn;
pub use pixelcnn_pp::PixelCnnPp;

/// A network of one architecture, with its parameters as it registered them
/// (`params.rs`).
pub struct Network {
    net: Architectures,
    /// Token grids: how tokens enter (`token_embedding.rs`).
    embedding: Option<token_embedding::TokenEmbedding>,
    /// A token condition map's embedding.
    map_embedding: Option<token_embedding::TokenEmbedding>,
    parameters: Vec<(String, Tensor)>,
}

/// One variant per architecture, each in its own file.
pub enum Architectures {
    PixelCnn(PixelCnn),
    Gated(GatedPixelCnn),
    PixelCnnPp(PixelCnnPp),
}

impl Architectures {
    /// Builds the network of `config`, its parameters asked of `params`.
    fn build(config: ModelConfig, params: &mut Params, seed: u64) -> Result<Self> {
        Ok(match config.architecture {
            Architecture::Pixelcnn => Architectures::PixelCnn(PixelCnn::new(config, params, seed)?),
            Architecture::Gated => Architectures::Gated(GatedPixelCnn::new(config, params, seed)?),
            Architecture::PixelcnnPp => Architectures::PixelCnnPp(PixelCnnPp::new(config, params, seed)?),
        })
    }
}

impl Network {
    /// A fresh network with weights drawn from `seed`.
    pub fn new(config: ModelConfig, device: Device, seed: u64) -> Result<Self> {
        config.validate()?;
        crate::memory::check_model(&config, device)?;
        let mut params = Params::on(device);
        let embedding = token_embedding::TokenEmbedding::new(&config, &mut params, seed)?;
        let map_embedding = token_embedding::TokenEmbedding::for_map(&config, &mut params, seed)?;
        let net = Architectures::build(config, &mut params, seed)?;
        Ok(Network { net, embedding, map_embedding, parameters: params.into_list() })
    }

    /// The architecture's own network (for its incremental sampler).
    pub fn architecture(&self) -> &Architectures {
        &self.net
    }

    pub fn config(&self) -> &ModelConfig {
        match &self.net {
            Architectures::PixelCnn(n) => &n.config,
            Architectures::Gated(n) => &n.config,
            Architectures::PixelCnnPp(n) => &n.config,
        }
    }

    pub fn device(&self) -> Device {
        match &self.net {
            Architectures::PixelCnn(n) => n.device,
            Architectures::Gated(n) => n.device,
            Architectures::PixelCnnPp(n) => n.device,
        }
    }

    /// The name and shape of every parameter of a network with this config, in
    /// `parameters()` order, computed without allocating it: a checkpoint's
    /// claims are checked against these before any weight is created.
    /// `config` must be valid (`ModelConfig::validate`).
    pub fn parameter_shapes(config: &ModelConfig) -> Vec<(String, Vec<i64>)> {
        let mut params = Params::shapes_only();
        // Shape-only building allocates and computes nothing, so nothing can fail but a bug.
        let built = token_embedding::TokenEmbedding::new(config, &mut params, 0)
            .and_then(|_| token_embedding::TokenEmbedding::for_map(config, &mut params, 0))
            .and_then(|_| Architectures::build(config.clone(), &mut params, 0));
        match built {
            Ok(_) => params.into_shapes(),
            Err(_) => Vec::new(),
        }
    }

    /// Every trainable tensor with its name, in a fixed order.
    pub fn parameters(&self) -> Vec<(String, &Tensor)> {
        self.parameters.iter().map(|(name, t)| (name.clone(), t)).collect()
    }

    pub fn parameter_count(&self) -> i64 {
        self.parameters().iter().map(|(_, t)| t.numel() as i64).sum()
    }

    /// The batch's conditioning tensor as the layers read it: as given, but
    /// for a token condition map with the map's tokens replaced by their
    /// embedding rows (global part, then H_m×W_m×E features; `class_bias.rs`).
    pub fn condition_features(&self, labels: Option<&Tensor>) -> Result<Option<Tensor>> {
        let (Some(labels), Some(embedding), Some(map)) = (labels, &self.map_embedding, self.config().condition_map.as_ref()) else {
            return Ok(labels.map(|l| l.shallow_clone()));
        };
        let global = self.config().condition_size.unwrap_or(0);
        let n = labels.size()[0];
        let tokens = labels.f_narrow(1, global, map.height * map.width)?.f_reshape([n, map.height, map.width])?;
        let features = token_embedding::rows(&embedding.weight, &tokens)?.f_reshape([n, -1])?; // (N, H_m·W_m·E)
        Ok(Some(Tensor::f_cat(&[labels.f_narrow(1, 0, global)?.f_to_kind(features.kind())?, features], 1)?))
    }

    /// A token grid's embedding (V, E), for the samplers' caches.
    pub fn embedding(&self) -> Option<&Tensor> {
        self.embedding.as_ref().map(|e| &e.weight)
    }

    /// x: (N, C, H, W) pixel values in float (0/1, or 0–255 for an 8-bit
    /// model; a token grid: its tokens, C = 1), labels: (N,) int64 for a conditional model → logits
    /// (N, outC, H, W) (`ModelConfig::output_channels`), where the logits at
    /// pixel i depend only on the pixels before i in raster order.
    ///
    /// In bf16 the input is cast once and each layer computes in the type of
    /// its input; the logits come back as fp32 for the loss and the draws.
    pub fn forward(&self, x: &Tensor, labels: Option<&Tensor>, precision: Precision) -> Result<Tensor> {
        self.forward_training(x, labels, precision, None)
    }

    /// `forward` with a training step's noise (`noise`: the architecture's
    /// dropout, if it has any; `None`: evaluation).
    pub fn forward_training(&self, x: &Tensor, labels: Option<&Tensor>, precision: Precision, noise: Option<&dropout::Noise>) -> Result<Tensor> {
        let input = match &self.embedding {
            Some(e) => e.map(x)?,
            None => crate::output::network_input(self.config(), x)?,
        };
        self.forward_from_input(&input, labels, precision, noise)
    }

    /// The forward pass from what the first layer reads, (N, Cin, H, W) in
    /// fp32 (`ModelConfig::input_channels`): scaled pixel values, or a token
    /// grid's embedding rows. Its gradient is how tests see which positions
    /// each output reads when the values are tokens.
    pub fn forward_from_input(&self, input: &Tensor, labels: Option<&Tensor>, precision: Precision, noise: Option<&dropout::Noise>) -> Result<Tensor> {
        let x = crate::precision::cast(input, precision.kind())?;
        let labels = self.condition_features(labels)?;
        let labels = labels.as_ref();
        let logits = match &self.net {
            Architectures::PixelCnn(n) => n.forward(&x, labels)?,
            Architectures::Gated(n) => n.forward(&x, labels)?,
            Architectures::PixelCnnPp(n) => n.forward(&x, labels, noise)?,
        };
        crate::precision::cast(&logits, Kind::Float)
    }
}
