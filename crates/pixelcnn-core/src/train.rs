//! The training loop: Adam on the mean per-pixel binary cross-entropy between
//! the logits and the image itself (each pixel predicts its own value from the
//! pixels before it), with validation after each epoch.

use crate::adam::Adam;
use crate::config::TrainConfig;
use crate::device::set_threads;
use crate::error::{Error, Result};
use crate::evaluate::mean_loss;
use crate::model::ImagesRef;
use crate::rng::Rng;
use crate::state::{EpochRecord, ModelState, PartialEpoch};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::{Kind, Reduction, Tensor};

#[derive(Clone, Debug)]
pub enum TrainEvent {
    Step { epoch: i64, step: i64, steps_per_epoch: i64, loss: f64, images_per_second: f64 },
    Epoch(EpochRecord),
}

/// Continues training `state` for `config.epochs` epochs. On abort the steps
/// already taken are kept (weights and optimizer agree), the unfinished epoch
/// is not recorded, and `Error::Aborted` is returned.
pub fn fit(
    state: &mut ModelState,
    train: &ImagesRef,
    test: Option<&ImagesRef>,
    config: &TrainConfig,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<()> {
    set_threads(config.threads);
    let net_config = state.net.config.clone();
    let device = state.net.device;
    // All images stay on the device as bytes (N, 1, H, W); batches are gathered from them.
    let train_images = train.to_device(&net_config, device, "data.train")?;
    let test_images = match test {
        Some(t) => Some(t.to_device(&net_config, device, "data.test")?),
        None => None,
    };
    if state.optimizer.is_none() {
        let params: Vec<&Tensor> = state.net.parameters().into_iter().map(|(_, t)| t).collect();
        state.optimizer = Some(Adam::new(&params)?);
    }
    let n = train.count as usize;
    let batch = config.batch_size as usize;
    let steps_per_epoch = n.div_ceil(batch) as i64;

    if let Some(path) = &config.checkpoint_path {
        // Fail before hours of training, not at the first save.
        crate::checkpoint::check_writable(std::path::Path::new(path))?;
    }
    let checkpoint = |state: &ModelState| -> Result<()> {
        match &config.checkpoint_path {
            Some(path) => crate::checkpoint::save(state, std::path::Path::new(path)),
            None => Ok(()),
        }
    };
    for _ in 0..config.epochs {
        let epoch = state.history.len() as i64 + 1;
        let started = Instant::now();
        // The order depends only on (seed, epoch): a resumed run sees the same batches.
        let order = Rng::derived(config.seed, epoch as u64).permutation(n);
        let resumable = PartialEpoch { epoch, steps_done: 0, loss_sum: 0.0, seen: 0, seed: config.seed, batch_size: config.batch_size, train_count: train.count };
        let mut progress = match state.partial_epoch.take() {
            Some(p) if PartialEpoch { steps_done: 0, loss_sum: 0.0, seen: 0, ..p.clone() } == resumable => p,
            _ => resumable,
        };
        let seen_before = progress.seen;
        for (step, chunk) in order.chunks(batch).enumerate().skip(progress.steps_done as usize) {
            if cancel.load(Ordering::Relaxed) {
                state.partial_epoch = Some(progress);
                return Err(Error::Aborted(format!("training stopped in epoch {epoch} after {step} steps")));
            }
            let index = Tensor::f_from_slice(chunk)?.f_to_device(device)?;
            let x = train_images.f_index_select(0, &index)?.f_to_kind(Kind::Float)?; // (B, 1, H, W)
            let loss = state.net.forward(&x)?.f_binary_cross_entropy_with_logits::<Tensor>(&x, None, None, Reduction::Mean)?;
            loss.f_backward()?;
            let params: Vec<&Tensor> = state.net.parameters().into_iter().map(|(_, t)| t).collect();
            state.optimizer.as_mut().expect("created above").step(&params, config.learning_rate)?;
            let loss = loss.f_double_value(&[])?;
            if !loss.is_finite() {
                return Err(Error::Internal(format!(
                    "training diverged: loss is {loss} at epoch {epoch}, step {} (lower learningRate)", step + 1
                )));
            }
            progress.loss_sum += loss * chunk.len() as f64;
            progress.seen += chunk.len() as i64;
            progress.steps_done = step as i64 + 1;
            on_event(TrainEvent::Step {
                epoch,
                step: step as i64 + 1,
                steps_per_epoch,
                loss,
                images_per_second: (progress.seen - seen_before) as f64 / started.elapsed().as_secs_f64(),
            });
            if config.checkpoint_every > 0 && progress.steps_done % config.checkpoint_every == 0 && progress.steps_done < steps_per_epoch {
                state.partial_epoch = Some(progress.clone());
                checkpoint(state)?;
                state.partial_epoch = None;
            }
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let val_loss = match &test_images {
            Some(images) => Some(mean_loss(&state.net, images, config.eval_batch_size)?),
            None => None,
        };
        let record = EpochRecord {
            epoch,
            train_loss: progress.loss_sum / progress.seen as f64,
            val_loss,
            seconds: started.elapsed().as_secs_f64(),
            images_per_second: (progress.seen - seen_before) as f64 / train_seconds,
        };
        state.history.push(record.clone());
        checkpoint(state)?;
        on_event(TrainEvent::Epoch(record));
    }
    Ok(())
}
