//! The training loop: Adam on the mean negative log-likelihood per sub-pixel
//! (each pixel predicts its own value from the pixels before it), with the
//! rate of each step from the schedule, validation after each epoch (and
//! every `validateEvery` steps), and the moving average of the weights.
//!
//! A step is two halves, `compute_gradients` and `apply_update`, so that
//! data-parallel training can average the gradients between them. Between
//! them too the loss and the global gradient norm are read back (one
//! transfer, every step): a step whose loss or gradients are not finite is
//! not taken (`stability.rs`). On a GPU the read makes the host wait for the
//! step; the alternative, deciding on the device, would keep a bad step's
//! effects out of the optimizer only by masking every update.

use crate::adam::{Adam, AdamOptions};
use crate::batch_split;
use crate::checkpoint;
use crate::config::{Precision, TrainConfig};
use crate::device::set_threads;
use crate::distributed::{join_within_deadline, ProcessGroup};
use crate::ema::Ema;
use crate::error::{Error, Result};
use crate::images::ImagesRef;
use crate::labels::{self, Labels};
use crate::network::dropout::Noise;
use crate::network::Network;
use crate::rng::Rng;
use crate::schedule::Schedule;
use crate::stability;
use crate::state::{EpochRecord, ModelState, PartialEpoch, ValidationRecord};
use crate::validation::{judge, validation_loss, validation_weights};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::{Kind, Reduction, Tensor};

#[derive(Clone, Debug)]
pub enum TrainEvent {
    /// `skipped`: the step's loss or gradients were not finite and it was not taken.
    Step { epoch: i64, step: i64, steps_per_epoch: i64, loss: f64, images_per_second: f64, learning_rate: f64, grad_norm: f64, skipped: bool },
    /// A validation inside an epoch (`validateEvery`); `step`: the optimizer's step count.
    Validation { epoch: i64, step: i64, val_loss: f64 },
    Epoch(EpochRecord),
}

/// A split of the data with its labels.
pub struct Split<'a> {
    pub images: ImagesRef<'a>,
    /// Conditional models: the class of each image (or one for all).
    pub labels: Option<Labels>,
}

/// Forward and backward pass on one batch; the gradients accumulate in the
/// parameters. Returns the mean loss, still on the device. On the CPU the
/// batch runs as parts on several threads at once (`batch_split.rs`).
/// `noise`: the step's dropout noise for the images of `x` (architectures
/// with dropout; `None`: none).
pub fn compute_gradients(net: &Network, x: &Tensor, labels: Option<&Tensor>, precision: Precision, noise: Option<&Noise>) -> Result<Tensor> {
    match batch_split::parts_for(net.device(), x.size()[0]) {
        1 => backward_share(net, x, labels, precision, 1.0, noise),
        parts => batch_split::gradients_in_parts(net, x, labels, precision, parts, noise),
    }
}

/// Back-propagates `weight` × the mean loss over the images `x` (the share
/// of a batch they are); returns that product, detached.
pub fn backward_share(net: &Network, x: &Tensor, labels: Option<&Tensor>, precision: Precision, weight: f64, noise: Option<&Noise>) -> Result<Tensor> {
    let mut loss = crate::output::nll(net.config(), &net.forward_training(x, labels, precision, noise)?, x, Reduction::Mean)?;
    if weight != 1.0 {
        loss = loss.f_mul_scalar(weight)?;
    }
    loss.f_backward()?;
    Ok(loss.f_detach()?)
}

/// One Adam update (the seed's hyperparameters) from the accumulated gradients, which it then clears.
pub fn apply_update(state: &mut ModelState, learning_rate: f64) -> Result<()> {
    apply_update_with(state, learning_rate, &AdamOptions::default())
}

/// One Adam update with `options`.
pub fn apply_update_with(state: &mut ModelState, learning_rate: f64, options: &AdamOptions) -> Result<()> {
    let params: Vec<&Tensor> = state.net.parameters().into_iter().map(|(_, t)| t).collect();
    if state.optimizer.is_none() {
        state.optimizer = Some(Adam::new(&params)?);
    }
    state.optimizer.as_mut().expect("created above").step(&params, learning_rate, options)
}

/// What one step did, read back to the host.
struct StepOutcome {
    loss: f64,
    learning_rate: f64,
    grad_norm: f64,
    skipped: bool,
}

/// Continues training `state` for `config.epochs` epochs. On abort the steps
/// already taken are kept (weights and optimizer agree) and, with a
/// checkpoint configured, saved with where the epoch stands; the unfinished
/// epoch is not recorded, and `Error::Aborted` is returned.
pub fn fit(
    state: &mut ModelState,
    train: Split,
    test: Option<Split>,
    config: &TrainConfig,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<()> {
    let Some(options) = &config.distributed else {
        return fit_in_group(state, train, test, config, None, cancel, on_event);
    };
    let mut group = joined_group(state, options, cancel)?;
    let result = fit_in_group(state, train, test, config, Some(&mut group), cancel, on_event);
    // Kept for the next `fit` (the CLI trains one epoch per call), unless this
    // one failed or was aborted: then leaving the group at once makes the
    // other ranks' pending collective fail now instead of at its timeout.
    if result.is_ok() {
        state.group = Some((options.clone(), group));
    }
    result
}

/// The group `state` already belongs to with these options, or a new one,
/// joined within the group's timeout and abortable (`join_within_deadline`).
fn joined_group(state: &mut ModelState, options: &crate::config::DistributedConfig, cancel: &AtomicBool) -> Result<ProcessGroup> {
    if let Some((joined, group)) = state.group.take() {
        if &joined == options {
            return Ok(group);
        }
    }
    let group_options = options.group_options();
    let join_options = group_options.clone();
    match (options.backend, state.net.device()) {
        (crate::config::Backend::Gloo, _) => join_within_deadline(&group_options, cancel, move || ProcessGroup::gloo(&join_options)),
        // Collectives on this rank's GPU: the model's device.
        (crate::config::Backend::Nccl, device @ tch::Device::Cuda(_)) => {
            join_within_deadline(&group_options, cancel, move || ProcessGroup::nccl(&join_options, device))
        }
        (crate::config::Backend::Nccl, _) => {
            Err(Error::DeviceUnavailable("distributed.backend: \"nccl\" needs a CUDA model (device: 'cuda'); use \"gloo\" on the CPU".into()))
        }
    }
}

/// `fit` as one rank of a data-parallel group (`None`: alone). Every rank is
/// given the same data and config. Rank 0's weights are broadcast first; each
/// step every rank takes its contiguous share of the global batch (the shares
/// are disjoint and together exactly the single-process batch), computes its
/// gradients, and one all-reduce over all of them (and the loss) makes every
/// rank's gradients those of the whole batch, so every rank applies the same
/// Adam update (and moving-average update). Validation is split the same way
/// and reduced. Only rank 0 saves checkpoints.
pub fn fit_in_group(
    state: &mut ModelState,
    train: Split,
    test: Option<Split>,
    config: &TrainConfig,
    mut group: Option<&mut ProcessGroup>,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<()> {
    let _release = crate::allocator::ReleaseWhenDone;
    set_threads(config.threads);
    let device = state.net.device();
    let precision = config.precision.resolve(device, crate::precision::Work::Training, "precision")?;
    // Under `auto` validation is a reported likelihood: fp32, whatever trains.
    let val_precision = config.precision.resolve(device, crate::precision::Work::Likelihood, "precision")?;
    if let (Some(field), None) = (config.needs_validation(), &test) {
        return Err(Error::config(field, "needs validation data (data.test)"));
    }
    let data = DeviceData::new(state, train, test, config)?;
    let (rank, world) = group.as_ref().map_or((0, 1), |g| (g.rank(), g.world_size()));
    if let Some(g) = group.as_deref_mut() {
        broadcast_parameters(state, g)?;
        check_same_progress(state, g)?;
    }
    // Only rank 0 writes checkpoints.
    let checkpoint = if rank == 0 { config.checkpoint.as_ref() } else { None };
    if let Some(c) = checkpoint {
        // Fail before hours of training, not at the first save.
        crate::files::check_writable(Path::new(&c.path))?;
        if let Some(best) = &c.best {
            crate::files::check_writable(Path::new(best))?;
        }
    }
    let schedule = config.schedule.resolved(last_step_of(state, &data, config))?;
    // Started after the broadcast: every rank averages the same weights.
    match (&mut state.ema, config.ema) {
        (Some(ema), Some(decay)) => ema.decay = decay,
        (None, Some(decay)) => state.ema = Some(Ema::new(&state.net, decay)?),
        _ => {}
    }
    let run = Run { config, precision, val_precision, checkpoint, rank, world, schedule };
    for _ in 0..config.epochs {
        let epoch = state.history.len() as i64 + 1;
        let started = Instant::now();
        let (progress, seen_before, stopped) = run.train_epoch(state, &data, epoch, group.as_deref_mut(), cancel, started, on_event)?;
        let train_seconds = started.elapsed().as_secs_f64();
        // Stopped inside the epoch: its last validation is the epoch's.
        let (val_loss, verdict) = match (&data.test, &stopped) {
            (Some(_), Some(_)) => (progress.validations.last().map(|v| v.val_loss), None),
            (Some((images, labels)), None) => {
                let loss = validation_loss(state, images, labels.as_ref(), config, val_precision, group.as_deref_mut())?;
                let step = state.optimizer.as_ref().map_or(0, |o| o.step);
                (Some(loss), Some(judge(&mut state.training, config, loss, step)))
            }
            (None, _) => (None, None),
        };
        let stop_reason = stopped.or_else(|| verdict.as_ref().and_then(|v| v.stop.clone()));
        let record = EpochRecord {
            epoch,
            train_loss: progress.loss_sum / progress.seen.max(1) as f64,
            val_loss,
            seconds: started.elapsed().as_secs_f64(),
            images_per_second: (progress.seen - seen_before) as f64 / train_seconds,
            step_losses: progress.step_losses,
            precision,
            learning_rates: progress.learning_rates,
            grad_norms: progress.grad_norms,
            skipped_steps: progress.skipped_steps,
            validations: progress.validations,
            val_weights: validation_weights(state),
            stop_reason: stop_reason.clone(),
            training: Some(config.summary()),
        };
        state.history.push(record.clone());
        if let Some(c) = checkpoint {
            checkpoint::save(state, Path::new(&c.path))?;
            if let (Some(best), Some(true)) = (&c.best, verdict.as_ref().map(|v| v.improved)) {
                checkpoint::save(state, Path::new(best))?;
            }
        }
        on_event(TrainEvent::Epoch(record));
        if stop_reason.is_some() {
            break;
        }
    }
    Ok(())
}

/// The optimizer step at which this `fit` will end, if no step is skipped:
/// where a schedule without a set end ends.
fn last_step_of(state: &ModelState, data: &DeviceData, config: &TrainConfig) -> i64 {
    let steps_per_epoch = (data.count + config.batch_size - 1) / config.batch_size;
    let done_in_epoch = state.partial_epoch.as_ref().map_or(0, |p| p.steps_done);
    state.optimizer.as_ref().map_or(0, |o| o.step) + config.epochs * steps_per_epoch - done_in_epoch
}

/// The training (and validation) images and labels on the model's device,
/// as bytes (N, C, H, W): batches are gathered from them.
struct DeviceData {
    train_images: Tensor,
    train_labels: Option<Tensor>,
    count: i64,
    test: Option<(Tensor, Option<Tensor>)>,
}

impl DeviceData {
    fn new(state: &ModelState, train: Split, test: Option<Split>, config: &TrainConfig) -> Result<Self> {
        let net_config = state.net.config();
        let device = state.net.device();
        // Each rank of a group computes on its share of the global batch.
        let world_size = config.distributed.as_ref().map_or(1, |d| d.world_size.max(1));
        let rank_batch = (config.batch_size.min(train.images.count.max(1)) + world_size - 1) / world_size;
        crate::memory::check_training(net_config, rank_batch, device)?;
        let count = train.images.count;
        let train_images = train.images.to_device(net_config, device, "data.train")?;
        let train_labels = labels::check(train.labels, net_config, count, "data.trainLabels")?;
        let train_labels = labels::batch(train_labels.as_ref(), 0, count, device)?;
        let test = match test {
            Some(t) => {
                let y = labels::check(t.labels, net_config, t.images.count, "data.testLabels")?;
                Some((t.images.to_device(net_config, device, "data.test")?, labels::batch(y.as_ref(), 0, t.images.count, device)?))
            }
            None => None,
        };
        Ok(DeviceData { train_images, train_labels, count, test })
    }
}

/// What every epoch of one `fit` shares.
struct Run<'a> {
    config: &'a TrainConfig,
    precision: Precision,
    val_precision: Precision,
    /// Rank 0's checkpoint; `None` elsewhere.
    checkpoint: Option<&'a crate::config::CheckpointConfig>,
    rank: i64,
    world: i64,
    /// The config's schedule with its end fixed for this `fit`.
    schedule: Schedule,
}

impl Run<'_> {
    /// Saves `state` to `path` with `progress` as its unfinished epoch.
    fn save_partial(&self, state: &mut ModelState, progress: &PartialEpoch, path: &str) -> Result<()> {
        state.partial_epoch = Some(progress.clone());
        let saved = checkpoint::save(state, Path::new(path));
        state.partial_epoch = None;
        saved
    }

    /// The steps of `epoch` (from where a resumed run stopped): returns the
    /// epoch's progress, the images it had seen before this call, and why
    /// training stopped inside it (early stopping), if it did.
    #[allow(clippy::too_many_arguments)]
    fn train_epoch(
        &self,
        state: &mut ModelState,
        data: &DeviceData,
        epoch: i64,
        mut group: Option<&mut ProcessGroup>,
        cancel: &AtomicBool,
        started: Instant,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<(PartialEpoch, i64, Option<String>)> {
        let config = self.config;
        let (n, batch) = (data.count as usize, config.batch_size as usize);
        let steps_per_epoch = n.div_ceil(batch) as i64;
        let checkpoint_every = self.checkpoint.map_or(0, |c| c.every);
        // The order depends only on (seed, epoch): a resumed run sees the same batches.
        let order = Rng::derived(config.seed, epoch as u64).permutation(n);
        let fresh = PartialEpoch::fresh(epoch, config.seed, config.batch_size, data.count);
        let mut progress = match state.partial_epoch.take() {
            Some(p) if p.continues(&fresh) => p,
            _ => fresh,
        };
        let seen_before = progress.seen;
        for (step, chunk) in order.chunks(batch).enumerate().skip(progress.steps_done as usize) {
            if cancel.load(Ordering::Relaxed) {
                if let Some(c) = self.checkpoint {
                    self.save_partial(state, &progress, &c.path)?;
                }
                state.partial_epoch = Some(progress);
                return Err(Error::Aborted(format!("training stopped in epoch {epoch} after {step} steps")));
            }
            let outcome = self.step(state, data, chunk, epoch, step as i64, group.as_deref_mut())?;
            progress.steps_done = step as i64 + 1;
            progress.learning_rates.push(outcome.learning_rate);
            progress.grad_norms.push(outcome.grad_norm as f32);
            if outcome.skipped {
                progress.skipped_steps += 1;
            } else {
                progress.loss_sum += outcome.loss * chunk.len() as f64;
                progress.seen += chunk.len() as i64;
            }
            progress.step_losses.push(outcome.loss as f32);
            let rate = (progress_seen_estimate(progress.steps_done, batch, n) - seen_before) as f64 / started.elapsed().as_secs_f64();
            on_event(TrainEvent::Step {
                epoch, step: progress.steps_done, steps_per_epoch, loss: outcome.loss, images_per_second: rate,
                learning_rate: outcome.learning_rate, grad_norm: outcome.grad_norm, skipped: outcome.skipped,
            });
            let last = progress.steps_done == steps_per_epoch;
            let optimizer_step = state.optimizer.as_ref().map_or(0, |o| o.step);
            if !outcome.skipped && !last && config.validate_every > 0 && optimizer_step % config.validate_every == 0 {
                if let Some(stop) = self.validate_inside(state, data, &mut progress, epoch, optimizer_step, group.as_deref_mut(), on_event)? {
                    return Ok((progress, seen_before, Some(stop)));
                }
            }
            if checkpoint_every > 0 && progress.steps_done % checkpoint_every == 0 && !last {
                if let Some(c) = self.checkpoint {
                    self.save_partial(state, &progress, &c.path)?;
                }
            }
        }
        Ok((progress, seen_before, None))
    }

    /// A validation after optimizer step `step`, inside an epoch: recorded,
    /// the best model kept, and early stopping's reason if it ends the run.
    #[allow(clippy::too_many_arguments)]
    fn validate_inside(
        &self,
        state: &mut ModelState,
        data: &DeviceData,
        progress: &mut PartialEpoch,
        epoch: i64,
        step: i64,
        group: Option<&mut ProcessGroup>,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<Option<String>> {
        let Some((images, labels)) = &data.test else { return Ok(None) };
        let val_loss = validation_loss(state, images, labels.as_ref(), self.config, self.val_precision, group)?;
        progress.validations.push(ValidationRecord { step, val_loss });
        let verdict = judge(&mut state.training, self.config, val_loss, step);
        if let (true, Some(best)) = (verdict.improved, self.checkpoint.and_then(|c| c.best.as_ref())) {
            self.save_partial(state, progress, best)?;
        }
        on_event(TrainEvent::Validation { epoch, step, val_loss });
        Ok(verdict.stop)
    }

    /// One step on the images `chunk` of the training set: this rank's
    /// share's gradients, averaged over the group, checked, clipped, then
    /// Adam at the schedule's rate and the moving average.
    fn step(&self, state: &mut ModelState, data: &DeviceData, chunk: &[i64], epoch: i64, step: i64, group: Option<&mut ProcessGroup>) -> Result<StepOutcome> {
        let device = state.net.device();
        let share = share_of(chunk, self.rank, self.world);
        let weight = share.len() as f64 / chunk.len() as f64;
        // A batch smaller than the group leaves some ranks nothing: they
        // compute on one image with weight 0, which contributes nothing
        // but keeps every rank's gradients defined and the collective whole.
        let share = if share.is_empty() { &chunk[..1] } else { share };
        let index = Tensor::f_from_slice(share)?.f_to_device(device)?;
        let x = data.train_images.f_index_select(0, &index)?.f_to_kind(Kind::Float)?; // (B, C, H, W)
        let y = data.train_labels.as_ref().map(|l| l.f_index_select(0, &index)).transpose()?;
        // Dropout masks follow each image (its index in the data) and the
        // step: the same whatever the batch's split into parts or ranks.
        let noise = Noise { key: crate::network::dropout::step_key(self.config.seed, epoch, step), ids: share.to_vec() };
        let loss = compute_gradients(&state.net, &x, y.as_ref(), self.precision, Some(&noise))?;
        let loss = match group {
            Some(g) => average_gradients(state, g, &loss, weight)?,
            None => loss,
        };
        let norm = stability::gradient_norm(&state.net)?;
        let both = Tensor::f_stack(&[loss.f_to_kind(Kind::Float)?.f_reshape([1])?, norm.f_reshape([1])?], 0)?;
        let read = Vec::<f64>::try_from(both.f_reshape([2])?.f_to_kind(Kind::Double)?.f_to_device(tch::Device::Cpu)?)?;
        let (loss, grad_norm) = (read[0], read[1]);
        let learning_rate = self.schedule.rate(self.config.learning_rate, state.optimizer.as_ref().map_or(0, |o| o.step) + 1);
        if !(loss.is_finite() && grad_norm.is_finite()) {
            stability::discard_gradients(&state.net)?;
            state.training.skipped.skip(self.config.max_non_finite_steps, epoch, step + 1, loss, grad_norm)?;
            return Ok(StepOutcome { loss, learning_rate, grad_norm, skipped: true });
        }
        state.training.skipped.consecutive = 0;
        if let Some(max) = self.config.clip_grad_norm {
            stability::clip_gradients(&state.net, grad_norm, max)?;
        }
        apply_update_with(state, learning_rate, &self.config.adam_options())?;
        if let Some(ema) = state.ema.as_mut() {
            ema.update(&state.net)?;
        }
        Ok(StepOutcome { loss, learning_rate, grad_norm, skipped: false })
    }
}

/// Rank `rank`'s contiguous share of a batch split over `world` ranks.
fn share_of(chunk: &[i64], rank: i64, world: i64) -> &[i64] {
    let n = chunk.len() as i64;
    &chunk[(rank * n / world) as usize..((rank + 1) * n / world) as usize]
}

/// Every parameter, flattened into one contiguous buffer on the group's
/// device (one collective for the whole model), or written back from one.
/// Gloo's buffer is on the CPU (a copy from a CUDA model); NCCL's stays on
/// the model's GPU.
fn flatten(tensors: &[Tensor], device: tch::Device) -> Result<Tensor> {
    let flat = tensors.iter().map(|t| t.f_detach()?.f_reshape([-1])).collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Tensor::f_cat(&flat, 0)?.f_to_device(device)?.f_contiguous()?)
}

fn unflatten_into(buffer: &Tensor, tensors: &[Tensor]) -> Result<()> {
    let mut offset = 0;
    for t in tensors {
        let n = t.numel() as i64;
        let mut target = t.shallow_clone();
        tch::no_grad(|| target.f_copy_(&buffer.f_narrow(0, offset, n)?.f_view(t.size().as_slice())?))?;
        offset += n;
    }
    Ok(())
}

/// Rank 0's weights on every rank.
fn broadcast_parameters(state: &ModelState, group: &mut ProcessGroup) -> Result<()> {
    let params: Vec<Tensor> = state.net.parameters().into_iter().map(|(_, t)| t.shallow_clone()).collect();
    let mut buffer = flatten(&params, group.device())?;
    group.broadcast(&mut buffer, 0)?;
    unflatten_into(&buffer, &params)
}

/// A collective over a few f64 values: on the group's device (the GPU for
/// NCCL), read back on the CPU.
pub(crate) fn collective_on_values(group: &mut ProcessGroup, values: &[f64], op: impl FnOnce(&mut ProcessGroup, &mut Tensor) -> Result<()>) -> Result<Vec<f64>> {
    let mut t = Tensor::f_from_slice(values)?.f_to_device(group.device())?;
    op(group, &mut t)?;
    Ok(Vec::<f64>::try_from(&t.f_to_device(tch::Device::Cpu)?)?)
}

/// Every rank must start where rank 0 starts: the same epochs done, steps into
/// the current epoch and Adam step. Ranks that resumed from different
/// checkpoint files (one machine's copy older, or missing) would otherwise
/// train different batches with the same weights and drift apart silently.
/// Rank 0's position is broadcast and a flag all-reduced, so that every rank
/// fails, at once and before the first step: the ranks that differ name their
/// own position, the others how many differ.
fn check_same_progress(state: &ModelState, group: &mut ProcessGroup) -> Result<()> {
    let steps = state.partial_epoch.as_ref().map_or(0, |p| p.steps_done);
    let adam = state.optimizer.as_ref().map_or(0, |o| o.step);
    let mine = [state.history.len() as f64, steps as f64, adam as f64];
    let first = collective_on_values(group, &mine, |g, t| g.broadcast(t, 0))?;
    let differing = collective_on_values(group, &[if first[..] == mine[..] { 0.0 } else { 1.0 }], |g, t| g.all_reduce_sum(t))?[0];
    let describe = |v: &[f64]| format!("{} epochs done, {} steps into the next, Adam step {}", v[0], v[1], v[2]);
    if first[..] != mine[..] {
        return Err(Error::Distributed(format!(
            "rank {} starts from another training state than rank 0 ({} here, {} on rank 0): every rank must resume from the same checkpoint (on several machines, put it on a shared file system or copy it to each)",
            group.rank(), describe(&mine), describe(&first)
        )));
    }
    if differing > 0.0 {
        return Err(Error::Distributed(format!(
            "{differing} rank(s) start from another training state than rank 0 ({}): every rank must resume from the same checkpoint",
            describe(&first)
        )));
    }
    Ok(())
}

/// Turns this rank's gradients of the mean loss over its share (a fraction
/// `weight` of the batch) into the gradients of the mean loss over the whole
/// batch: Σ_r weight_r · ∇L_r, summed by one all-reduce over the flattened
/// gradients with the weighted loss appended. Returns the batch's mean loss.
fn average_gradients(state: &ModelState, group: &mut ProcessGroup, loss: &Tensor, weight: f64) -> Result<Tensor> {
    let grads: Vec<Tensor> = state.net.parameters().into_iter().map(|(_, p)| p.f_grad()).collect::<std::result::Result<_, _>>()?;
    // Parameters outside the graph have no gradient (the gated network's last
    // vertical gate feeds nothing); the same ones on every rank, since every
    // rank runs the same network, so leaving them out keeps the buffers
    // aligned, and Adam skips them as in one process.
    let grads: Vec<Tensor> = grads.into_iter().filter(|g| g.defined()).collect();
    let mut parts: Vec<Tensor> = grads.iter().map(|g| g.shallow_clone()).collect();
    parts.push(loss.f_reshape([1])?.f_to_kind(Kind::Float)?);
    let mut buffer = flatten(&parts, group.device())?.f_mul_scalar(weight)?;
    group.all_reduce_sum(&mut buffer)?;
    // Back to the model's device (Gloo: from the CPU; NCCL: already there).
    let reduced = buffer.f_to_device(loss.device())?;
    unflatten_into(&reduced, &grads)?;
    let total = grads.iter().map(|g| g.numel() as i64).sum::<i64>();
    Ok(reduced.f_narrow(0, total, 1)?.f_reshape([])?)
}

/// Images seen by the end of `step` (1-based) of an epoch of `n` images.
fn progress_seen_estimate(step: i64, batch: usize, n: usize) -> i64 {
    (step as usize * batch).min(n) as i64
}
