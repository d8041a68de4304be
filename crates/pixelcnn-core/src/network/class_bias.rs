//! How a condition enters a layer: a learned (K, C) weight V whose product
//! Vᵀh with the image's condition h is added to the layer's pre-activation,
//! the same at every position (the Gated PixelCNN paper's global conditioning).
//! For a class label h is one-hot and Vᵀh is row `label` of V, which is how
//! it is computed; a condition vector (`conditionSize`) is multiplied through.
//! Class models and vector models so share their parameters' names and
//! shapes, and a class checkpoint is the vector model of its one-hot labels.

use super::params::Params;
use crate::error::Result;
use tch::Tensor;

pub struct ClassBias {
    /// (classes, channels); zero at the start, so a fresh conditional model
    /// computes what the unconditional one with the same seed computes.
    pub weight: Tensor,
}

impl ClassBias {
    pub fn new(params: &mut Params, name: String, classes: i64, channels: i64) -> Result<Self> {
        Ok(ClassBias { weight: params.zeros(name, &[classes, channels])? })
    }

    /// Vᵀh for each image: `labels` (B,) int64 classes pick rows, (B, K)
    /// float condition vectors multiply them: (B, channels).
    pub fn rows(&self, labels: &Tensor) -> Result<Tensor> {
        if labels.kind() == tch::Kind::Int64 {
            Ok(self.weight.f_index_select(0, labels)?)
        } else {
            Ok(labels.f_to_kind(self.weight.kind())?.f_matmul(&self.weight)?)
        }
    }

    /// `x` (B, C, H, W) plus each image's class bias.
    pub fn add_to_map(&self, x: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let rows = crate::precision::cast(&self.rows(labels)?, x.kind())?;
        let (b, c) = (rows.size()[0], rows.size()[1]);
        Ok(x.f_add(&rows.f_view([b, c, 1, 1])?)?)
    }
}

/// Adds the class bias, if the layer has one and labels were given.
pub fn apply(bias: &Option<ClassBias>, x: Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
    match (bias, labels) {
        (Some(b), Some(l)) => b.add_to_map(&x, l),
        _ => Ok(x),
    }
}
