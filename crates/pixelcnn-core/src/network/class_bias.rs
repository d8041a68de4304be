//! How a class label enters a layer: a learned bias per class and output
//! channel, added to the layer's pre-activation. With one-hot labels h this is
//! the paper's V^T h term; indexing a row is the same thing without the matrix product.

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

    /// The rows of `labels` (B,): (B, channels).
    pub fn rows(&self, labels: &Tensor) -> Result<Tensor> {
        Ok(self.weight.f_index_select(0, labels)?)
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
