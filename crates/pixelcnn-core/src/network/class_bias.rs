//! How a condition enters a layer: the Gated PixelCNN paper's two kinds,
//! both added to the layer's pre-activation.
//!
//! Global: a learned (K, C) weight V whose product Vᵀh with the image's
//! condition h is the same at every position. For a class label h is one-hot
//! and Vᵀh is row `label` of V, which is how it is computed; a condition
//! vector (`conditionSize`) is multiplied through. Class models and vector
//! models so share their parameters' names and shapes, and a class checkpoint
//! is the vector model of its one-hot labels.
//!
//! Spatial (`conditionMap`): a map m per image (C_m channels, or for a token
//! map its tokens' embedding rows) resized to the layer's resolution — nearest
//! neighbour up, the mean over each output cell's area down — and projected
//! by a learned 1×1 convolution W (C, C_m), zero at first: W ∗ resize(m).
//! The map is given, not generated, so causality is untouched.
//!
//! A batch's conditioning travels as one tensor, sliced along the batch by
//! training, evaluation and the samplers alike: without a map, (B,) int64
//! classes or (B, D) float vectors; with one, (B, G + C_m·H_m·W_m) floats,
//! the global part first (G = 1 for a class index, D for a vector, 0 for
//! none) and the map after it, H_m×W_m×C_m channels-last like images.

use super::params::Params;
use crate::config::ModelConfig;
use crate::error::Result;
use tch::{Kind, Tensor};

/// What a model is conditioned on, as its layers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conditioning {
    /// Rows of the global weight (classes, or the vector's size); `None`: no global part.
    pub rows: Option<i64>,
    /// Whether the global part is a class index (else a vector).
    pub classes: bool,
    /// The map's features per position (C_m, or a token map's embedding width)
    /// and its height and width; `None`: no map.
    pub map: Option<(i64, i64, i64)>,
}

impl Conditioning {
    /// The conditioning of `config`'s model; `None` when it has none.
    pub fn of(config: &ModelConfig) -> Option<Self> {
        let map = config.condition_map.as_ref().map(|m| (m.features(), m.height, m.width));
        let rows = config.condition_rows();
        (rows.is_some() || map.is_some()).then_some(Conditioning { rows, classes: config.classes.is_some(), map })
    }

    /// Columns of the packed tensor before the map: 1 for a class, D for a vector, 0 for none.
    pub fn global_width(&self) -> i64 {
        match self.rows {
            Some(_) if self.classes => 1,
            Some(d) => d,
            None => 0,
        }
    }
}

pub struct ClassBias {
    /// (classes or D, channels); zero at the start, so a fresh conditional model
    /// computes what the unconditional one with the same seed computes.
    pub weight: Option<Tensor>,
    /// (channels, C_m, 1, 1): the map's 1×1 projection, zero at the start.
    pub map_weight: Option<Tensor>,
    pub conditioning: Conditioning,
}

impl ClassBias {
    /// `name`: the global weight's (`….class_bias`); the map's is the same with
    /// `map_conv.weight` for `class_bias`.
    pub fn new(params: &mut Params, name: String, conditioning: Conditioning, channels: i64) -> Result<Self> {
        let weight = conditioning.rows.map(|k| params.zeros(name.clone(), &[k, channels])).transpose()?;
        let map_weight = match conditioning.map {
            Some((features, _, _)) => Some(params.zeros(format!("{}.weight", name.replace("class_bias", "map_conv")), &[channels, features, 1, 1])?),
            None => None,
        };
        Ok(ClassBias { weight, map_weight, conditioning })
    }

    /// Vᵀh for each image: (B, channels), or `None` without a global part.
    /// `labels`: the batch's conditioning tensor (see the module's comment).
    pub fn rows(&self, labels: &Tensor) -> Result<Option<Tensor>> {
        let Some(weight) = &self.weight else { return Ok(None) };
        let global = if self.conditioning.map.is_some() { labels.f_narrow(1, 0, self.conditioning.global_width())? } else { labels.shallow_clone() };
        Ok(Some(if self.conditioning.classes {
            let index = if global.dim() == 2 { global.f_squeeze_dim(1)?.f_to_kind(Kind::Int64)? } else { global.f_to_kind(Kind::Int64)? };
            weight.f_index_select(0, &index)?
        } else {
            global.f_to_kind(weight.kind())?.f_matmul(weight)?
        }))
    }

    /// W ∗ resize(m) at `height` × `width`: (B, channels, height, width) in
    /// fp32, or `None` without a map.
    pub fn map_term(&self, labels: &Tensor, height: i64, width: i64) -> Result<Option<Tensor>> {
        let (Some(weight), Some((features, h, w))) = (&self.map_weight, self.conditioning.map) else { return Ok(None) };
        let batch = labels.size()[0];
        let map = labels.f_narrow(1, self.conditioning.global_width(), features * h * w)?.f_to_kind(Kind::Float)?.f_reshape([batch, h, w, features])?.f_permute([0, 3, 1, 2])?;
        let resized = resize(&map, height, width)?;
        Ok(Some(resized.f_conv2d(weight, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)?))
    }

    /// `x` (B, C, H, W) plus each image's conditioning.
    pub fn add_to_map(&self, x: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let size = x.size();
        let mut out = x.shallow_clone();
        if let Some(rows) = self.rows(labels)? {
            let rows = crate::precision::cast(&rows, x.kind())?;
            let (b, c) = (rows.size()[0], rows.size()[1]);
            out = out.f_add(&rows.f_view([b, c, 1, 1])?)?;
        }
        if let Some(term) = self.map_term(labels, size[2], size[3])? {
            out = out.f_add(&crate::precision::cast(&term, x.kind())?)?;
        }
        Ok(out)
    }
}

/// A map (B, C, h, w) at `height` × `width`: itself, nearest-neighbour
/// upsampled, or averaged over each output cell's area (PyTorch's
/// `F.interpolate(mode='nearest')` and `F.adaptive_avg_pool2d`).
pub fn resize(map: &Tensor, height: i64, width: i64) -> Result<Tensor> {
    let size = map.size();
    let (h, w) = (size[2], size[3]);
    Ok(if (h, w) == (height, width) {
        map.shallow_clone()
    } else if h <= height && w <= width {
        map.f_upsample_nearest2d([height, width], None::<f64>, None::<f64>)?
    } else {
        map.f_adaptive_avg_pool2d([height, width])?
    })
}

/// Adds the conditioning, if the layer has one and labels were given.
pub fn apply(bias: &Option<ClassBias>, x: Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
    match (bias, labels) {
        (Some(b), Some(l)) => b.add_to_map(&x, l),
        _ => Ok(x),
    }
}
