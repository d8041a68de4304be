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
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable_floats")]
    pub step_losses: Vec<f32>,
    /// The arithmetic the epoch trained in (records from before bf16 existed: fp32).
    #[serde(default)]
    pub precision: crate::config::Precision,
    /// The learning rate of each step (the schedule's), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learning_rates: Vec<f64>,
    /// The global gradient norm of each step, before clipping.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable_floats")]
    pub grad_norms: Vec<f32>,
    /// Steps skipped for a non-finite loss or gradient.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_steps: i64,
    /// Validations inside the epoch (`validateEvery`); the one after it is `val_loss`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validations: Vec<ValidationRecord>,
    /// Which weights validation used: `averaged` when the model keeps a moving average.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_weights: Option<crate::ema::Weights>,
    /// Why training ended after this epoch before its `epochs` were done
    /// (early stopping); the epoch may then be shorter than the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// How the epoch was trained: the recipe and the hyperparameters
    /// (`TrainConfig::summary`); absent in records from before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<serde_json::Value>,
}

/// A skipped step's loss or gradient norm is not finite, which JSON writes
/// as `null`; it reads back as NaN.
fn nullable_floats<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Vec<f32>, D::Error> {
    let values: Vec<Option<f32>> = Deserialize::deserialize(deserializer)?;
    Ok(values.into_iter().map(|v| v.unwrap_or(f32::NAN)).collect())
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// A validation inside an epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationRecord {
    /// The optimizer's step count when it ran (over every `fit`).
    pub step: i64,
    pub val_loss: f64,
}

/// Where the run's decisions stand: skipped steps, the best validation so
/// far and how long since it improved. Saved in checkpoints (`training_state`)
/// so that a resumed run decides as an uninterrupted one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainingState {
    pub skipped: crate::stability::SkippedSteps,
    pub best_val_loss: Option<f64>,
    /// The optimizer step of the best validation.
    pub best_step: Option<i64>,
    /// Validations since the best one.
    pub validations_since_best: i64,
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
    #[serde(default, deserialize_with = "nullable_floats")]
    pub step_losses: Vec<f32>,
    /// What the batch order was derived from; a `fit` with other values starts the epoch afresh.
    pub seed: u64,
    pub batch_size: i64,
    pub train_count: i64,
    #[serde(default)]
    pub learning_rates: Vec<f64>,
    #[serde(default, deserialize_with = "nullable_floats")]
    pub grad_norms: Vec<f32>,
    #[serde(default)]
    pub skipped_steps: i64,
    #[serde(default)]
    pub validations: Vec<ValidationRecord>,
}

impl PartialEpoch {
    /// A new epoch's progress: nothing done yet.
    pub fn fresh(epoch: i64, seed: u64, batch_size: i64, train_count: i64) -> Self {
        PartialEpoch {
            epoch, steps_done: 0, loss_sum: 0.0, seen: 0, step_losses: Vec::new(), seed, batch_size, train_count,
            learning_rates: Vec::new(), grad_norms: Vec::new(), skipped_steps: 0, validations: Vec::new(),
        }
    }

    /// Whether this is the progress of the epoch `other` starts: the same
    /// epoch with the same batch order.
    pub fn continues(&self, other: &PartialEpoch) -> bool {
        (self.epoch, self.seed, self.batch_size, self.train_count) == (other.epoch, other.seed, other.batch_size, other.train_count)
    }
}

pub struct ModelState {
    pub net: Network,
    /// Created by the first `fit`; saved and restored with the weights.
    pub optimizer: Option<Adam>,
    /// The moving average of the weights, when training keeps one (`ema`).
    pub ema: Option<crate::ema::Ema>,
    pub training: TrainingState,
    pub history: Vec<EpochRecord>,
    pub partial_epoch: Option<PartialEpoch>,
    /// The data-parallel group this model trains in, joined by the first
    /// `fit` with `distributed` and kept for the next ones with the same options.
    pub group: Option<(DistributedConfig, ProcessGroup)>,
}

impl ModelState {
    pub fn new(config: ModelConfig, device: Device, seed: u64) -> Result<Self> {
        Ok(ModelState { net: Network::new(config, device, seed)?, optimizer: None, ema: None, training: TrainingState::default(), history: Vec::new(), partial_epoch: None, group: None })
    }
}
