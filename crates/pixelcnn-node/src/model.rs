//! `NativeModel`: a model shared between calls. Each long call is an
//! `AsyncTask` (compute on libuv's pool). A model runs one call at a time: a
//! second call while one runs fails at once with a `Busy` error instead of
//! queueing behind a training run that may take hours.
//!
//! Options arrive as JSON and are parsed and validated by the core's config
//! types; this file converts and does not check anything twice.

use crate::cancel::CancelToken;
use crate::errors::{guard, guard_sync, parse_json, Coded, CodedResult};
use crate::images::{ImageBatch, OwnedImages};
use crate::progress::{Progress, ProgressCallback};
use napi::bindgen_prelude::{AsyncTask, Float32Array, Float64Array, Int32Array, Uint8Array};
use napi::{Env, Task};
use napi_derive::napi;
use pixelcnn_core::config::{DataLabels, EvalConfig, ModelConfig, SampleConfig, TrainConfig};
use pixelcnn_core::device::{device_name, parse_device};
use pixelcnn_core::labels;
use pixelcnn_core::sample::{sample, Completion, SampleOutput};
use pixelcnn_core::state::ModelState;
use pixelcnn_core::train::{fit, Split, TrainEvent};
use pixelcnn_core::{checkpoint, evaluate, port_import, Error};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

#[napi]
pub struct NativeModel {
    state: Arc<Mutex<ModelState>>,
    in_use: Arc<AtomicBool>,
    config_json: String,
    device: String,
    parameter_count: i64,
}

/// Marks the model in use from the call until its task is dropped.
pub struct Claim {
    state: Arc<Mutex<ModelState>>,
    in_use: Arc<AtomicBool>,
}

impl Claim {
    fn lock(&self) -> MutexGuard<'_, ModelState> {
        // A poisoned lock only means an earlier call panicked (and was caught); the state is still whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.in_use.store(false, Ordering::Release);
    }
}

impl NativeModel {
    fn wrap(state: ModelState) -> Self {
        NativeModel {
            device: device_name(state.net.device()),
            parameter_count: state.net.parameter_count(),
            config_json: serde_json::to_string(state.net.config()).unwrap_or_default(),
            state: Arc::new(Mutex::new(state)),
            in_use: Arc::new(AtomicBool::new(false)),
        }
    }

    fn claim(&self, what: &str) -> CodedResult<Claim> {
        if self.in_use.swap(true, Ordering::AcqRel) {
            return Err(Coded::busy(what));
        }
        Ok(Claim { state: self.state.clone(), in_use: self.in_use.clone() })
    }
}

fn history_json(state: &ModelState) -> String {
    serde_json::to_string(&state.history).unwrap_or_else(|_| "[]".to_string())
}

/// Settles a task: its core error becomes the JS error, with its code.
fn settle<T>(env: &Env, output: CodedResult<T>) -> napi::Result<T> {
    output.map_err(|e| e.into_napi(env))
}

#[napi]
impl NativeModel {
    /// An untrained model. `config_json`: `{ preset?, architecture?, filters?, classes?, … }`.
    #[napi(factory)]
    pub fn create(env: Env, config_json: String, device: String, seed: f64) -> napi::Result<Self> {
        let state = guard_sync(&env, || {
            let config = ModelConfig::from_json(&parse_json(&config_json, "model")?)?;
            if !(seed.is_finite() && seed.fract() == 0.0 && (0.0..=9.007_199_254_740_991e15).contains(&seed)) {
                return Err(Error::config("seed", format!("must be a non-negative integer, got {seed}")));
            }
            ModelState::new(config, parse_device(&device)?, seed as u64)
        })?;
        Ok(Self::wrap(state))
    }

    #[napi(getter)]
    pub fn config_json(&self) -> String {
        self.config_json.clone()
    }

    #[napi(getter)]
    pub fn device(&self) -> String {
        self.device.clone()
    }

    #[napi(getter)]
    pub fn parameter_count(&self) -> i64 {
        self.parameter_count
    }

    /// The epoch records as JSON; a `Busy` error while another call runs.
    #[napi]
    pub fn history_json(&self, env: Env) -> napi::Result<String> {
        let claim = self.claim("history").map_err(|e| e.into_napi(&env))?;
        let state = claim.lock();
        Ok(history_json(&state))
    }

    /// `labels_json`: `{ trainLabels?, testLabels? }`, each an array of classes;
    /// or, for a model with `conditionSize`, `train_conditions` and `test_conditions` (N×D each).
    #[napi(ts_return_type = "Promise<string>")]
    #[allow(clippy::too_many_arguments)]
    pub fn fit(
        &self,
        env: Env,
        train: ImageBatch,
        test: Option<ImageBatch>,
        config_json: String,
        labels_json: String,
        train_conditions: Option<Float32Array>,
        test_conditions: Option<Float32Array>,
        cancel: &CancelToken,
        #[napi(ts_arg_type = "((event: string) => void) | undefined | null")] on_progress: Option<ProgressCallback>,
    ) -> napi::Result<AsyncTask<FitTask>> {
        let prepared = (|| -> CodedResult<FitTask> {
            let config = guard(|| TrainConfig::from_json(&parse_json(&config_json, "config")?))?;
            let labels = guard(|| DataLabels::from_json(&parse_json(&labels_json, "data")?))?;
            let train_labels = guard(|| with_vectors(labels::from_json(labels.train_labels.as_ref(), "data.trainLabels")?, train_conditions, "data.trainLabels"))?;
            let test_labels = guard(|| with_vectors(labels::from_json(labels.test_labels.as_ref(), "data.testLabels")?, test_conditions, "data.testLabels"))?;
            Ok(FitTask {
                train: guard(|| OwnedImages::from_js(&train, "data.train"))?,
                test: test.as_ref().map(|t| guard(|| OwnedImages::from_js(t, "data.test"))).transpose()?,
                train_labels,
                test_labels,
                config,
                claim: self.claim("fit")?,
                cancel: cancel.flag.clone(),
                progress: Progress::new(on_progress),
            })
        })();
        prepared.map(AsyncTask::new).map_err(|e| e.into_napi(&env))
    }

    /// p(x_i = 1 | x_<i) per pixel. `options_json`: `{ threads?, batchSize?, labels?, precision? }`.
    #[napi(ts_return_type = "Promise<Float32Array>")]
    pub fn predict(&self, env: Env, images: ImageBatch, options_json: String, conditions: Option<Float32Array>) -> napi::Result<AsyncTask<PredictTask>> {
        self.per_sub_pixel(env, images, options_json, conditions, "predict", evaluate::predict)
    }

    /// log p(x_i | x_<i) per sub-pixel, for every output. Options as for `predict`.
    #[napi(ts_return_type = "Promise<Float32Array>")]
    pub fn log_probs(&self, env: Env, images: ImageBatch, options_json: String, conditions: Option<Float32Array>) -> napi::Result<AsyncTask<PredictTask>> {
        self.per_sub_pixel(env, images, options_json, conditions, "logProbs", evaluate::log_probs)
    }

    /// −log p(x) in nats for each image. `options_json` as for `predict`.
    #[napi(ts_return_type = "Promise<Float64Array>")]
    pub fn nats_per_image(&self, env: Env, images: ImageBatch, options_json: String, conditions: Option<Float32Array>) -> napi::Result<AsyncTask<EvaluateTask>> {
        let prepared = (|| -> CodedResult<EvaluateTask> {
            Ok(EvaluateTask {
                images: guard(|| OwnedImages::from_js(&images, "images"))?,
                config: guard(|| eval_config(&options_json, conditions))?,
                claim: self.claim("evaluate")?,
            })
        })();
        prepared.map(AsyncTask::new).map_err(|e| e.into_napi(&env))
    }

    /// `options_json`: `{ count, seed, temperature, batchSize, method, threads, labels }`.
    /// With `images` and `known`, completes those images instead. `conditions`:
    /// N×D condition vectors, for a model with `conditionSize`.
    #[napi(ts_return_type = "Promise<SampleResult>")]
    #[allow(clippy::too_many_arguments)]
    pub fn sample(
        &self,
        env: Env,
        options_json: String,
        images: Option<ImageBatch>,
        known: Option<Uint8Array>,
        conditions: Option<Float32Array>,
        cancel: &CancelToken,
        #[napi(ts_arg_type = "((event: string) => void) | undefined | null")] on_progress: Option<ProgressCallback>,
    ) -> napi::Result<AsyncTask<SampleTask>> {
        let prepared = (|| -> CodedResult<SampleTask> {
            let completion = match (images, known) {
                (Some(images), Some(known)) => Some((guard(|| OwnedImages::from_js(&images, "images"))?, known.to_vec())),
                (None, None) => None,
                _ => return Err(Error::InvalidData("complete needs both images and known".into()).into()),
            };
            let count = completion.as_ref().map(|(images, _)| images.count);
            let mut config = guard(|| SampleConfig::from_json(&parse_json(&options_json, "options")?, count))?;
            config.conditions = conditions.map(|c| c.to_vec());
            Ok(SampleTask { claim: self.claim("sample")?, config, completion, cancel: cancel.flag.clone(), progress: Progress::new(on_progress) })
        })();
        prepared.map(AsyncTask::new).map_err(|e| e.into_napi(&env))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn save(&self, env: Env, path: String) -> napi::Result<AsyncTask<SaveTask>> {
        let claim = self.claim("save").map_err(|e| e.into_napi(&env))?;
        Ok(AsyncTask::new(SaveTask { path: PathBuf::from(path), claim }))
    }
}

impl NativeModel {
    fn per_sub_pixel(&self, env: Env, images: ImageBatch, options_json: String, conditions: Option<Float32Array>, what: &str, compute: PerSubPixel) -> napi::Result<AsyncTask<PredictTask>> {
        let prepared = (|| -> CodedResult<PredictTask> {
            Ok(PredictTask {
                images: guard(|| OwnedImages::from_js(&images, "images"))?,
                config: guard(|| eval_config(&options_json, conditions))?,
                claim: self.claim(what)?,
                compute,
            })
        })();
        prepared.map(AsyncTask::new).map_err(|e| e.into_napi(&env))
    }
}

/// Evaluation options from JSON, with the condition vectors that travel beside it.
fn eval_config(options_json: &str, conditions: Option<Float32Array>) -> pixelcnn_core::Result<EvalConfig> {
    let mut config = EvalConfig::from_json(&parse_json(options_json, "options")?)?;
    config.conditions = conditions.map(|c| c.to_vec());
    Ok(config)
}

/// A split's labels from JSON, or its condition vectors: at most one of the two (`field` names the labels).
fn with_vectors(labels: Option<labels::Labels>, vectors: Option<Float32Array>, field: &str) -> pixelcnn_core::Result<Option<labels::Labels>> {
    match (labels, vectors) {
        (Some(_), Some(_)) => Err(Error::config(field, format!("and {} exclude each other: give the one the model takes", labels::vectors_field(field)))),
        (None, Some(v)) => Ok(Some(labels::Labels::Vectors(v.to_vec()))),
        (labels, None) => Ok(labels),
    }
}

/// The resolved config (`ModelConfig` as JSON, presets and defaults filled
/// in, validated) that `create` would build, without building the network:
/// what a resumed run's options must match.
#[napi]
pub fn resolve_model_config(env: Env, config_json: String) -> napi::Result<String> {
    guard_sync(&env, || {
        let config = ModelConfig::from_json(&parse_json(&config_json, "model")?)?;
        config.validate()?;
        serde_json::to_string(&config).map_err(|e| Error::Internal(e.to_string()))
    })
}

/// A training config with its recipe's fields filled in, validated: what
/// `fit` would train with (the CLI reads the batch size a recipe sets).
#[napi]
pub fn resolve_train_config(env: Env, config_json: String) -> napi::Result<String> {
    guard_sync(&env, || {
        let config = TrainConfig::from_json(&parse_json(&config_json, "options")?)?;
        serde_json::to_string(&config).map_err(|e| Error::Internal(e.to_string()))
    })
}

#[napi(ts_return_type = "Promise<NativeModel>")]
pub fn load_model(path: String, device: String) -> AsyncTask<LoadTask> {
    AsyncTask::new(LoadTask { path: PathBuf::from(path), device })
}

#[napi(object)]
pub struct SampleResult {
    /// Pixel models' images; absent for token grids.
    pub images: Option<Uint8Array>,
    /// Token grids' tokens; absent for pixel models.
    pub tokens: Option<Int32Array>,
    pub probabilities: Float32Array,
}

pub struct FitTask {
    claim: Claim,
    train: OwnedImages,
    test: Option<OwnedImages>,
    train_labels: Option<labels::Labels>,
    test_labels: Option<labels::Labels>,
    config: TrainConfig,
    cancel: Arc<AtomicBool>,
    progress: Progress,
}

impl Task for FitTask {
    type Output = CodedResult<String>;
    type JsValue = String;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let mut state = self.claim.lock();
        let progress = &mut self.progress;
        let train = Split { images: self.train.as_ref(), labels: self.train_labels.take() };
        let test = self.test.as_ref().map(|t| Split { images: t.as_ref(), labels: self.test_labels.take() });
        let result = guard(|| {
            fit(&mut state, train, test, &self.config, &self.cancel, &mut |event| match event {
                TrainEvent::Step { epoch, step, steps_per_epoch, loss, images_per_second, learning_rate, grad_norm, skipped } => progress.send(false, || {
                    json!({
                        "type": "step", "epoch": epoch, "step": step, "stepsPerEpoch": steps_per_epoch, "loss": loss,
                        "imagesPerSecond": images_per_second, "learningRate": learning_rate, "gradNorm": grad_norm, "skipped": skipped,
                    })
                }),
                TrainEvent::Validation { epoch, step, val_loss } => progress.send(true, || {
                    json!({ "type": "validation", "epoch": epoch, "step": step, "valLoss": val_loss })
                }),
                TrainEvent::Epoch(record) => progress.send(true, || {
                    let mut value = serde_json::to_value(&record).unwrap_or_default();
                    value["type"] = json!("epoch");
                    value
                }),
            })
        });
        Ok(result.map(|()| history_json(&state)))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<String> {
        settle(&env, output)
    }
}

/// The core's function that computes one value per sub-pixel.
type PerSubPixel = fn(&pixelcnn_core::state::ModelState, &pixelcnn_core::images::ImagesRef, &EvalConfig) -> pixelcnn_core::Result<Vec<f32>>;

pub struct PredictTask {
    claim: Claim,
    images: OwnedImages,
    config: EvalConfig,
    compute: PerSubPixel,
}

impl Task for PredictTask {
    type Output = CodedResult<Vec<f32>>;
    type JsValue = Float32Array;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let state = self.claim.lock();
        Ok(guard(|| (self.compute)(&state, &self.images.as_ref(), &self.config)))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Float32Array> {
        settle(&env, output).map(Float32Array::new)
    }
}

pub struct EvaluateTask {
    claim: Claim,
    images: OwnedImages,
    config: EvalConfig,
}

impl Task for EvaluateTask {
    type Output = CodedResult<Vec<f64>>;
    type JsValue = Float64Array;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let state = self.claim.lock();
        Ok(guard(|| evaluate::nats_per_image(&state, &self.images.as_ref(), &self.config)))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Float64Array> {
        settle(&env, output).map(Float64Array::new)
    }
}

pub struct SampleTask {
    claim: Claim,
    config: SampleConfig,
    completion: Option<(OwnedImages, Vec<u8>)>,
    cancel: Arc<AtomicBool>,
    progress: Progress,
}

impl Task for SampleTask {
    type Output = CodedResult<SampleOutput>;
    type JsValue = SampleResult;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let state = self.claim.lock();
        let progress = &mut self.progress;
        let completion = self.completion.as_ref();
        Ok(guard(|| {
            if let Some((images, _)) = completion {
                images.as_ref().check(state.net.config(), "images")?;
            }
            let completion = completion.map(|(images, known)| Completion { images: images.data.as_values(), known });
            sample(&state, &self.config, completion.as_ref(), &self.cancel, &mut |p| {
                progress.send(p.rows_done == p.rows_total, || json!({ "type": "rows", "rowsDone": p.rows_done, "rowsTotal": p.rows_total }))
            })
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<SampleResult> {
        settle(&env, output).map(|o| {
            let tokens = !o.tokens.is_empty();
            SampleResult {
                images: (!tokens).then(|| Uint8Array::new(o.images)),
                tokens: tokens.then(|| Int32Array::new(o.tokens)),
                probabilities: Float32Array::new(o.probabilities),
            }
        })
    }
}

pub struct SaveTask {
    claim: Claim,
    path: PathBuf,
}

impl Task for SaveTask {
    type Output = CodedResult<()>;
    type JsValue = ();

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let state = self.claim.lock();
        Ok(guard(|| checkpoint::save(&state, &self.path)))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<()> {
        settle(&env, output)
    }
}

/// Imports a `torch.save`d state dict of the PyTorch port of PixelCNN++, as
/// a model of `height` × `width` images (a state dict does not record them).
#[napi(ts_return_type = "Promise<NativeModel>")]
pub fn import_pixelcnn_pp(path: String, height: i64, width: i64, device: String) -> AsyncTask<ImportTask> {
    AsyncTask::new(ImportTask { path: PathBuf::from(path), height, width, device })
}

pub struct ImportTask {
    path: PathBuf,
    height: i64,
    width: i64,
    device: String,
}

impl Task for ImportTask {
    type Output = CodedResult<ModelState>;
    type JsValue = NativeModel;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(guard(|| {
            let options = port_import::ImportOptions { height: self.height, width: self.width, device: parse_device(&self.device)? };
            port_import::import_port(&self.path, &options)
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<NativeModel> {
        settle(&env, output).map(NativeModel::wrap)
    }
}

pub struct LoadTask {
    path: PathBuf,
    device: String,
}

impl Task for LoadTask {
    type Output = CodedResult<ModelState>;
    type JsValue = NativeModel;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(guard(|| checkpoint::load(&self.path, parse_device(&self.device)?)))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<NativeModel> {
        settle(&env, output).map(NativeModel::wrap)
    }
}
