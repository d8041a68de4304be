//! Validation during training: the held-out loss with the weights that will
//! be used (the moving average when the model keeps one), split over a
//! group's ranks; and what follows from it: the best model so far and early
//! stopping.
//!
//! A validation improves when its loss is below the best so far by more
//! than `earlyStopping.minDelta` (0 without early stopping). Each
//! improvement rewrites `checkpoint.best`; `patience` validations in a row
//! without one end the run.

use crate::config::{Precision, TrainConfig};
use crate::distributed::ProcessGroup;
use crate::ema::{AveragedWeights, Weights};
use crate::error::Result;
use crate::evaluate::mean_loss;
use crate::state::{ModelState, TrainingState};
use tch::Tensor;

/// The mean validation loss of `state`'s network on `images`, alone or
/// over all ranks' shares.
pub fn validation_loss(state: &ModelState, images: &Tensor, labels: Option<&Tensor>, config: &TrainConfig, precision: Precision, group: Option<&mut ProcessGroup>) -> Result<f64> {
    let _averaged = AveragedWeights::swap_in(state.ema.as_ref(), &state.net, Weights::Averaged)?;
    match group {
        None => mean_loss(&state.net, images, labels, config.eval_batch_size, precision),
        Some(g) => group_mean_loss(state, g, images, labels, config.eval_batch_size, precision),
    }
}

/// Which weights validation computes with.
pub fn validation_weights(state: &ModelState) -> Option<Weights> {
    state.ema.as_ref().map(|_| Weights::Averaged)
}

/// What a validation decided.
pub struct Verdict {
    /// It is the best so far: `checkpoint.best` is to be written.
    pub improved: bool,
    /// Early stopping ends the run, for this reason.
    pub stop: Option<String>,
}

/// Records validation loss `loss` at optimizer step `step` in `training`.
pub fn judge(training: &mut TrainingState, config: &TrainConfig, loss: f64, step: i64) -> Verdict {
    let min_delta = config.early_stopping.as_ref().map_or(0.0, |e| e.min_delta);
    let improved = training.best_val_loss.is_none_or(|best| loss < best - min_delta);
    if improved {
        training.best_val_loss = Some(loss);
        training.best_step = Some(step);
        training.validations_since_best = 0;
    } else {
        training.validations_since_best += 1;
    }
    let stop = config.early_stopping.as_ref().filter(|e| training.validations_since_best >= e.patience).map(|e| {
        format!(
            "early stopping: validation has not improved for {} validations (patience {}); the best, {:.6} nats per sub-pixel, was at step {}",
            training.validations_since_best,
            e.patience,
            training.best_val_loss.unwrap_or(f64::NAN),
            training.best_step.unwrap_or(0)
        )
    });
    Verdict { improved, stop }
}

/// The mean validation loss over all ranks' shares of the test set.
fn group_mean_loss(state: &ModelState, group: &mut ProcessGroup, images: &Tensor, labels: Option<&Tensor>, batch: i64, precision: Precision) -> Result<f64> {
    let (rank, world, n) = (group.rank(), group.world_size(), images.size()[0]);
    let (start, end) = (rank * n / world, (rank + 1) * n / world);
    let mine = if end > start {
        let share = images.f_narrow(0, start, end - start)?;
        let share_labels = labels.map(|l| l.f_narrow(0, start, end - start)).transpose()?;
        let mean = mean_loss(&state.net, &share, share_labels.as_ref(), batch, precision)?;
        [mean * share.numel() as f64, share.numel() as f64]
    } else {
        [0.0, 0.0]
    };
    let sums = crate::train::collective_on_values(group, &mine, |g, t| g.all_reduce_sum(t))?;
    Ok(sums[0] / sums[1])
}
