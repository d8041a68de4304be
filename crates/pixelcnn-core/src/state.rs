//! A model as users hold it: the network, the optimizer state that training
//! resumes from, and the history of the epochs it was trained for.

use crate::adam::Adam;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::model::PixelCnn;
use serde::{Deserialize, Serialize};
use tch::Device;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EpochRecord {
    /// 1-based, counted over every `fit` call of this model.
    pub epoch: i64,
    /// Mean binary cross-entropy per pixel (nats) over the epoch's batches.
    pub train_loss: f64,
    /// The same on the validation images, after the epoch; absent without them.
    pub val_loss: Option<f64>,
    pub seconds: f64,
    pub images_per_second: f64,
}

pub struct ModelState {
    pub net: PixelCnn,
    /// Created by the first `fit`; saved and restored with the weights.
    pub optimizer: Option<Adam>,
    pub history: Vec<EpochRecord>,
}

impl ModelState {
    pub fn new(config: ModelConfig, device: Device, seed: u64) -> Result<Self> {
        Ok(ModelState { net: PixelCnn::new(config, device, seed)?, optimizer: None, history: Vec::new() })
    }
}
