//! A model as users hold it: the network, the optimizer state that training
//! resumes from, and the history of the epochs it was trained for.

use crate::config::DistributedConfig;
use crate::distributed::ProcessGroup;
use crate::adam::Adam;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::network::Network;
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
    /// The training loss of each step of the epoch, in order (for the training
    /// curve); absent in records written before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_losses: Vec<f32>,    /// The arithmetic the epoch trained in (records from before bf16 existed: fp32).
    #[serde(default)]
    pub precision: crate::config::Precision,
}

/// Where training stands inside an unfinished epoch. Kept in the model (and
/// its checkpoints) so that the next `fit` with the same data, seed and batch
/// size finishes that epoch with the same batches instead of starting over:
/// an interrupted and resumed run then reaches the same weights as an
/// uninterrupted one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialEpoch {
    pub epoch: i64,
    pub steps_done: i64,
    /// Σ batch loss × batch size, and images seen, so far in this epoch.
    pub loss_sum: f64,
    pub seen: i64,
    /// The losses of the steps done so far.
    #[serde(default)]
    pub step_losses: Vec<f32>,
    /// What the batch order was derived from; a `fit` with other values starts the epoch afresh.
    pub seed: u64,
    pub batch_size: i64,
    pub train_count: i64,
}

pub struct ModelState {
    pub net: Network,
    /// Created by the first `fit`; saved and restored with the weights.
    pub optimizer: Option<Adam>,
    pub history: Vec<EpochRecord>,
    pub partial_epoch: Option<PartialEpoch>,
    /// The data-parallel group this model trains in, joined by the first
    /// `fit` with `distributed` and kept for the next ones with the same options.
    pub group: Option<(DistributedConfig, ProcessGroup)>,
}

impl ModelState {
    pub fn new(config: ModelConfig, device: Device, seed: u64) -> Result<Self> {
        Ok(ModelState { net: Network::new(config, device, seed)?, optimizer: None, history: Vec::new(), partial_epoch: None, group: None })
    }
}
