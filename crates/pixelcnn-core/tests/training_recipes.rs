//! Training recipes (issue 23): schedules, the moving average of the
//! weights, gradient clipping and the non-finite guard, AdamW, keep-best,
//! validation inside epochs, early stopping, named recipes, and resuming
//! exactly with all of them.

mod common;
use common::*;
use pixelcnn_core::checkpoint;
use pixelcnn_core::config::{CheckpointConfig, EarlyStopping, EvalConfig, ModelConfig, TrainConfig};
use pixelcnn_core::ema::Weights;
use pixelcnn_core::evaluate::{mean_loss, predict};
use pixelcnn_core::images::ImagesRef;
use pixelcnn_core::schedule::Schedule;
use pixelcnn_core::state::ModelState;
use pixelcnn_core::train::{fit, TrainEvent};
use pixelcnn_core::Error;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use tch::Device;

/// Runs compared bit for bit train one at a time (see tests/training.rs).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn config() -> ModelConfig {
    ModelConfig { height: 8, width: 8, filters: 16, residual_blocks: Some(1), ..ModelConfig::small() }
}

/// 96 training images (6 steps of 16 per epoch) and 32 validation images.
fn data() -> (Vec<u8>, Vec<u8>) {
    (striped(96, 8, 8, 1), striped(32, 8, 8, 2))
}

fn base(epochs: i64) -> TrainConfig {
    TrainConfig { epochs, batch_size: 16, learning_rate: 5e-3, seed: 7, threads: Some(2), eval_batch_size: 64, ..Default::default() }
}

/// Everything of the issue at once, on a schedule that changes every step.
fn recipe(epochs: i64) -> TrainConfig {
    TrainConfig {
        schedule: Schedule::Exponential { decay: 0.9 },
        ema: Some(0.8),
        clip_grad_norm: Some(0.05),
        weight_decay: 0.01,
        betas: [0.95, 0.9995],
        eps: 1e-8,
        validate_every: 4,
        ..base(epochs)
    }
}

fn train(state: &mut ModelState, config: &TrainConfig) -> pixelcnn_core::Result<()> {
    let (train, test) = data();
    fit(state, split(&train, 96, 8, 8), Some(split(&test, 32, 8, 8)), config, &AtomicBool::new(false), &mut |_| {})
}

fn probabilities(state: &ModelState, weights: Weights) -> Vec<f32> {
    let images = striped(4, 8, 8, 3);
    let batch = ImagesRef { count: 4, height: 8, width: 8, channels: 1, data: pixelcnn_core::images::Values::Bytes(&images) };
    predict(state, &batch, &EvalConfig { threads: Some(2), weights, ..Default::default() }).unwrap()
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pixelcnn-recipes-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The history without its timings, which no two runs share.
fn untimed(state: &ModelState) -> Vec<pixelcnn_core::state::EpochRecord> {
    state.history.iter().map(|r| pixelcnn_core::state::EpochRecord { seconds: 0.0, images_per_second: 0.0, ..r.clone() }).collect()
}

fn ema_tensors(state: &ModelState) -> Vec<Vec<f32>> {
    state.ema.as_ref().expect("an average").shadow.iter().map(|t| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()).collect()
}

#[test]
fn the_schedule_sets_every_steps_rate_and_history_records_it() {
    let _serial = serial();
    let mut state = model(config(), 7);
    train(&mut state, &TrainConfig { schedule: Schedule::Exponential { decay: 0.5 }, ..base(2) }).unwrap();
    let rates: Vec<f64> = state.history.iter().flat_map(|r| r.learning_rates.clone()).collect();
    let expected: Vec<f64> = (0..12).map(|t| 5e-3 * 0.5f64.powi(t)).collect();
    assert_eq!(rates, expected);
    let mut constant = model(config(), 7);
    train(&mut constant, &base(2)).unwrap();
    assert!(constant.history.iter().all(|r| r.learning_rates.iter().all(|&lr| lr == 5e-3)));

    let mut cosine = model(config(), 7);
    train(&mut cosine, &TrainConfig { schedule: Schedule::Cosine { warmup_steps: 3, total_steps: None, min_learning_rate: 0.0 }, ..base(2) }).unwrap();
    let rates: Vec<f64> = cosine.history.iter().flat_map(|r| r.learning_rates.clone()).collect();
    assert_eq!(&rates[..3], &[5e-3 / 3.0, 5e-3 * 2.0 / 3.0, 5e-3]);
    assert!(rates[11].abs() < 1e-12, "the cosine schedule ends at the fit's last step: {rates:?}");
    assert!(rates.windows(2).skip(2).all(|w| w[1] <= w[0]), "{rates:?}");
}

#[test]
fn the_average_is_what_validation_evaluation_and_sampling_use_unless_raw_is_asked() {
    let _serial = serial();
    let mut state = model(config(), 7);
    train(&mut state, &TrainConfig { ema: Some(0.9), ..base(2) }).unwrap();
    let record = state.history.last().unwrap();
    assert_eq!(record.val_weights, Some(Weights::Averaged));

    let averaged = probabilities(&state, Weights::Averaged);
    let raw = probabilities(&state, Weights::Raw);
    assert_ne!(averaged, raw, "the average should differ from the last weights");
    // The swap is undone: raw weights again after a call with the average.
    assert_eq!(raw, probabilities(&state, Weights::Raw));

    // The recorded validation is the average's.
    let (_, test) = data();
    let x = tch::Tensor::from_slice(&test).reshape([32, 1, 8, 8]);
    let raw_loss = mean_loss(&state.net, &x, None, 64, pixelcnn_core::config::Precision::Fp32).unwrap();
    assert_ne!(record.val_loss.unwrap(), raw_loss);
    let mut raw_only = model(config(), 7);
    train(&mut raw_only, &base(2)).unwrap();
    assert_eq!(raw_only.history.last().unwrap().val_weights, None);

    // The average is θ̄ ← d·θ̄ + (1 − d)·θ after every step: with d = 0 it is the weights.
    let mut follows = model(config(), 7);
    train(&mut follows, &TrainConfig { ema: Some(0.0), ..base(1) }).unwrap();
    assert_eq!(probabilities(&follows, Weights::Averaged), probabilities(&follows, Weights::Raw));

    // Sampling uses it too: the same seed gives other images with the raw weights.
    let with = |weights| {
        let config = pixelcnn_core::config::SampleConfig { count: 4, seed: 1, threads: Some(2), weights, ..Default::default() };
        pixelcnn_core::sample::sample(&state, &config, None, &AtomicBool::new(false), &mut |_| {}).unwrap().probabilities
    };
    assert_ne!(with(Weights::Averaged), with(Weights::Raw));
}

/// Every parameter, flattened into one vector.
fn raw_weights(state: &ModelState) -> Vec<f32> {
    state.net.parameters().iter().flat_map(|(_, t)| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()).collect()
}

#[test]
fn the_average_leaves_the_initial_weights_out() {
    // One step per fit (the whole set in one batch): the weights after each step, θ_1, θ_2, θ_3.
    let _serial = serial();
    let mut state = model(config(), 7);
    let d = 0.5f64;
    let mut steps = Vec::new();
    for _ in 0..3 {
        train(&mut state, &TrainConfig { ema: Some(d), batch_size: 96, ..base(1) }).unwrap();
        steps.push(raw_weights(&state));
    }
    // θ̄_3 = (d²·θ_1 + d·θ_2 + θ_3) / (d² + d + 1): no share of the initial draw θ_0.
    let ema = state.ema.as_ref().unwrap();
    assert_eq!(ema.updates, 3);
    let average: Vec<f32> = ema.shadow.iter().flat_map(|t| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()).collect();
    let norm = d * d + d + 1.0;
    let worst = (0..average.len())
        .map(|i| ((d * d * steps[0][i] as f64 + d * steps[1][i] as f64 + steps[2][i] as f64) / norm - average[i] as f64).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-6, "the average is off the debiased one by {worst}");
    // After one step the average is that step's weights exactly.
    let mut once = model(config(), 7);
    train(&mut once, &TrainConfig { ema: Some(0.999), batch_size: 96, ..base(1) }).unwrap();
    assert_eq!(probabilities(&once, Weights::Averaged), probabilities(&once, Weights::Raw));
}

#[test]
fn checkpoints_keep_the_average_and_the_runs_decisions() {
    let _serial = serial();
    let dir = temp_dir("roundtrip");
    let path = dir.join("m.safetensors");
    let mut state = model(config(), 7);
    train(&mut state, &recipe(1)).unwrap();
    checkpoint::save(&state, &path).unwrap();
    let loaded = checkpoint::load(&path, Device::Cpu).unwrap();
    assert_eq!(ema_tensors(&loaded), ema_tensors(&state));
    assert_eq!(loaded.ema.as_ref().unwrap().decay, 0.8);
    assert_eq!(loaded.ema.as_ref().unwrap().updates, 6, "one update per step of the epoch");
    assert_eq!(loaded.training, state.training);
    assert!(loaded.training.best_val_loss.is_some());
    assert_eq!(probabilities(&loaded, Weights::Averaged), probabilities(&state, Weights::Averaged));
    assert_eq!(loaded.history, state.history);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_killed_run_with_every_option_resumes_to_the_same_weights_and_average() {
    let _serial = serial();
    let dir = temp_dir("resume");
    let path = dir.join("run.safetensors");
    let best = dir.join("best.safetensors");
    let checkpointed = |epochs| TrainConfig {
        checkpoint: Some(CheckpointConfig { path: path.display().to_string(), every: 1, best: Some(best.display().to_string()) }),
        ..recipe(epochs)
    };
    let (train_data, test) = data();
    let mut interrupted = model(config(), 7);
    let cancel = AtomicBool::new(false);
    // Step 5 of epoch 2: after the validation at optimizer step 8.
    let result = fit(&mut interrupted, split(&train_data, 96, 8, 8), Some(split(&test, 32, 8, 8)), &checkpointed(2), &cancel, &mut |e| {
        if let TrainEvent::Step { epoch: 2, step: 5, .. } = e {
            cancel.store(true, Ordering::Relaxed);
        }
    });
    assert!(matches!(result, Err(Error::Aborted(_))));
    drop(interrupted);
    let mut resumed = checkpoint::load(&path, Device::Cpu).unwrap();
    train(&mut resumed, &checkpointed(1)).unwrap();

    let mut straight = model(config(), 7);
    train(&mut straight, &recipe(2)).unwrap();
    assert_eq!(untimed(&resumed), untimed(&straight));
    assert_eq!(ema_tensors(&resumed), ema_tensors(&straight));
    assert_eq!(probabilities(&resumed, Weights::Raw), probabilities(&straight, Weights::Raw));
    assert_eq!(resumed.training, straight.training);
    assert_eq!(resumed.history[1].validations.iter().map(|v| v.step).collect::<Vec<_>>(), vec![8]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gradient_norms_are_recorded_and_clipping_bounds_the_step() {
    let _serial = serial();
    let mut plain = model(config(), 7);
    train(&mut plain, &base(1)).unwrap();
    let norms = &plain.history[0].grad_norms;
    assert_eq!(norms.len(), 6);
    assert!(norms.iter().all(|n| n.is_finite() && *n > 0.0), "{norms:?}");
    let mut clipped = model(config(), 7);
    train(&mut clipped, &TrainConfig { clip_grad_norm: Some(norms[0] as f64 / 100.0), ..base(1) }).unwrap();
    // The recorded norm is the one before clipping: the first step's is the same.
    assert_eq!(clipped.history[0].grad_norms[0], norms[0]);
    assert_ne!(probabilities(&clipped, Weights::Raw), probabilities(&plain, Weights::Raw));
}

#[test]
fn decoupled_weight_decay_shrinks_the_weights() {
    let _serial = serial();
    let norm = |s: &ModelState| s.net.parameters().iter().map(|(_, p)| p.square().sum(tch::Kind::Double).double_value(&[])).sum::<f64>();
    let mut plain = model(config(), 7);
    train(&mut plain, &base(1)).unwrap();
    let mut decayed = model(config(), 7);
    train(&mut decayed, &TrainConfig { weight_decay: 10.0, ..base(1) }).unwrap();
    assert!(norm(&decayed) < norm(&plain) * 0.95, "{} against {}", norm(&decayed), norm(&plain));
}

#[test]
fn a_diverging_run_ends_in_a_typed_error_and_leaves_the_checkpoint_intact() {
    let _serial = serial();
    let dir = temp_dir("diverge");
    let path = dir.join("m.safetensors");
    // A rate of 1e6 makes the weights overflow float32 within a step or two.
    let mut state = model(config(), 7);
    let checkpointed = |c: TrainConfig| TrainConfig { checkpoint: Some(CheckpointConfig { path: path.display().to_string(), every: 0, best: None }), ..c };
    train(&mut state, &checkpointed(base(1))).unwrap();
    let saved = std::fs::read(&path).unwrap();
    let mut steps = Vec::new();
    let (train_data, test) = data();
    let result = fit(&mut state, split(&train_data, 96, 8, 8), Some(split(&test, 32, 8, 8)), &checkpointed(TrainConfig { learning_rate: 1e6, max_non_finite_steps: 3, ..base(20) }), &AtomicBool::new(false), &mut |e| {
        if let TrainEvent::Step { epoch, step, skipped, .. } = e {
            steps.push((epoch, step, skipped));
        }
    });
    let Err(Error::Diverged(message)) = result else { panic!("expected Diverged, got {:?}", result.map(|_| ())) };
    // The third non-finite step in a row ends the run (it has no step
    // event); the two before it were skipped.
    let (epoch, step, _) = *steps.last().unwrap();
    assert!(message.contains(&format!("3 steps in a row")) && message.contains(&format!("epoch {epoch}, step {}", step + 1)), "{message}");
    assert!(steps.iter().rev().take(2).all(|s| s.2), "{steps:?}");
    assert!(!steps.iter().rev().nth(2).unwrap().2, "{steps:?}");
    assert_eq!(std::fs::read(&path).unwrap(), saved, "the checkpoint was rewritten");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn keep_best_and_early_stopping() {
    let _serial = serial();
    let dir = temp_dir("best");
    let path = dir.join("m.safetensors");
    let best = dir.join("best.safetensors");
    let checkpoint = Some(CheckpointConfig { path: path.display().to_string(), every: 0, best: Some(best.display().to_string()) });
    let mut state = model(config(), 7);
    train(&mut state, &TrainConfig { checkpoint: checkpoint.clone(), validate_every: 2, ..base(3) }).unwrap();
    let losses: Vec<(i64, f64)> = state.history.iter().flat_map(|r| r.validations.iter().map(|v| (v.step, v.val_loss)).chain([(r.epoch * 6, r.val_loss.unwrap())])).collect();
    assert_eq!(losses.iter().map(|l| l.0).collect::<Vec<_>>(), vec![2, 4, 6, 8, 10, 12, 14, 16, 18]);
    let (best_step, best_loss) = losses.iter().copied().fold((0, f64::INFINITY), |a, l| if l.1 < a.1 { l } else { a });
    assert_eq!(state.training.best_val_loss, Some(best_loss));
    assert_eq!(state.training.best_step, Some(best_step));
    let kept = checkpoint::load(&best, Device::Cpu).unwrap();
    assert_eq!(kept.optimizer.as_ref().unwrap().step, best_step);

    // A minimum improvement no validation reaches: the first validation
    // sets the best, the next `patience` do not improve on it.
    let mut stopped = model(config(), 7);
    let early = TrainConfig { validate_every: 2, early_stopping: Some(EarlyStopping { patience: 2, min_delta: 1e9 }), ..base(5) };
    train(&mut stopped, &early).unwrap();
    assert_eq!(stopped.history.len(), 1, "stopped inside the first epoch");
    let record = &stopped.history[0];
    assert_eq!(record.step_losses.len(), 6);
    assert!(record.stop_reason.as_deref().unwrap().contains("early stopping"), "{:?}", record.stop_reason);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_values_are_refused_naming_the_field_and_value() {
    let cases = [
        (json!({ "schedule": { "type": "linear" } }), "schedule"),
        (json!({ "schedule": { "type": "exponential", "decay": 0 } }), "schedule.decay"),
        (json!({ "schedule": { "type": "step", "every": 0, "factor": 0.5 } }), "schedule.every"),
        (json!({ "ema": 1 }), "ema"),
        (json!({ "ema": -0.5 }), "ema"),
        (json!({ "clipGradNorm": 0 }), "clipGradNorm"),
        (json!({ "earlyStopping": { "patience": 0 } }), "earlyStopping.patience"),
        (json!({ "recipe": "sota" }), "recipe"),
        (json!({ "betas": [0.9, 1.0] }), "betas[1]"),
        (json!({ "weightDecay": -1 }), "weightDecay"),
        (json!({ "validateEvery": -2 }), "validateEvery"),
    ];
    for (value, field) in cases {
        let err = TrainConfig::from_json(&value).unwrap_err().to_string();
        assert!(err.contains(&format!("`{field}")), "{value}: {err}");
    }
    // A warm-up as long as training is known only at `fit`.
    let _serial = serial();
    let mut state = model(config(), 7);
    let err = train(&mut state, &TrainConfig { schedule: Schedule::Cosine { warmup_steps: 6, total_steps: None, min_learning_rate: 0.0 }, ..base(1) }).unwrap_err();
    assert!(err.to_string().contains("schedule.warmupSteps") && err.to_string().contains("got 6"), "{err}");
    // Keep-best without validation data.
    let (train_data, _) = data();
    let err = fit(&mut state, split(&train_data, 96, 8, 8), None, &TrainConfig { early_stopping: Some(EarlyStopping { patience: 1, min_delta: 0.0 }), ..base(1) }, &AtomicBool::new(false), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("earlyStopping") && err.to_string().contains("data.test"), "{err}");
}

#[test]
fn a_recipe_fills_in_what_the_config_leaves_out() {
    let c = TrainConfig::from_json(&json!({ "recipe": "pixelcnn++-cifar10", "learningRate": 2e-4 })).unwrap();
    assert_eq!(c.learning_rate, 2e-4);
    assert_eq!((c.batch_size, c.ema, c.betas, c.eps), (16, Some(0.9995), [0.95, 0.9995], 1e-8));
    assert_eq!(c.schedule, Schedule::Exponential { decay: 0.999995 });
    assert_eq!(c.recipe.as_deref(), Some("pixelcnn++-cifar10"));
    let seed = TrainConfig::from_json(&json!({ "recipe": "seed" })).unwrap();
    assert_eq!(TrainConfig { recipe: None, ..seed }, TrainConfig { epochs: 50, ..Default::default() });
}
