//! `NativeModel`: a model shared between calls. Each long call is an
//! `AsyncTask` (compute on libuv's pool). A model runs one call at a time: a
//! second call while one runs fails at once with a `Busy` error instead of
//! queueing behind a training run that may take hours.

use crate::cancel::CancelToken;
use crate::errors::{busy, guard, parse_json, to_napi};
use crate::images::{ImageBatch, OwnedImages};
use crate::progress::{Progress, ProgressCallback};
use napi::bindgen_prelude::{AsyncTask, Float32Array, Float64Array, Uint8Array};
use napi::{Env, Task};
use napi_derive::napi;
use pixelcnn_core::config::{ModelConfig, SampleConfig, TrainConfig};
use pixelcnn_core::device::{device_name, parse_device};
use pixelcnn_core::sample::{sample, Completion, SampleOutput};
use pixelcnn_core::state::ModelState;
use pixelcnn_core::train::{fit, TrainEvent};
use pixelcnn_core::{checkpoint, evaluate, Error};
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
struct Claim {
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
    fn wrap(state: ModelState) -> napi::Result<Self> {
        let config_json = serde_json::to_string(&state.net.config).map_err(|e| to_napi(Error::Internal(e.to_string())))?;
        Ok(NativeModel {
            device: device_name(state.net.device),
            parameter_count: state.net.parameter_count(),
            config_json,
            state: Arc::new(Mutex::new(state)),
            in_use: Arc::new(AtomicBool::new(false)),
        })
    }

    fn claim(&self, what: &str) -> napi::Result<Claim> {
        if self.in_use.swap(true, Ordering::AcqRel) {
            return Err(busy(what));
        }
        Ok(Claim { state: self.state.clone(), in_use: self.in_use.clone() })
    }
}

fn history_json(state: &ModelState) -> String {
    serde_json::to_string(&state.history).unwrap_or_else(|_| "[]".to_string())
}

#[napi]
impl NativeModel {
    /// An untrained model. `config_json`: `{ preset?, filters?, … }`.
    #[napi(factory)]
    pub fn create(config_json: String, device: String, seed: f64) -> napi::Result<Self> {
        let value = parse_json(&config_json, "model")?;
        let state = guard(|| {
            let config = ModelConfig::from_json(&value)?;
            if !(seed.is_finite() && seed.fract() == 0.0 && (0.0..=9.007_199_254_740_991e15).contains(&seed)) {
                return Err(Error::config("seed", format!("must be a non-negative integer, got {seed}")));
            }
            ModelState::new(config, parse_device(&device)?, seed as u64)
        })?;
        Self::wrap(state)
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
    pub fn history_json(&self) -> napi::Result<String> {
        let claim = self.claim("history")?;
        let state = claim.lock();
        Ok(history_json(&state))
    }

    #[napi(ts_return_type = "Promise<string>")]
    pub fn fit(
        &self,
        train: ImageBatch,
        test: Option<ImageBatch>,
        config_json: String,
        cancel: &CancelToken,
        #[napi(ts_arg_type = "((event: string) => void) | undefined | null")] on_progress: Option<ProgressCallback>,
    ) -> napi::Result<AsyncTask<FitTask>> {
        let config = parse_json(&config_json, "config").and_then(|v| guard(|| TrainConfig::from_json(&v)))?;
        let train = OwnedImages::from_js(&train, "data.train")?;
        let test = test.map(|t| OwnedImages::from_js(&t, "data.test")).transpose()?;
        Ok(AsyncTask::new(FitTask {
            claim: self.claim("fit")?,
            train,
            test,
            config,
            cancel: cancel.flag.clone(),
            progress: Progress::new(on_progress),
        }))
    }

    #[napi(ts_return_type = "Promise<Float32Array>")]
    pub fn predict(&self, images: ImageBatch, threads: Option<i64>) -> napi::Result<AsyncTask<PredictTask>> {
        Ok(AsyncTask::new(PredictTask { images: OwnedImages::from_js(&images, "images")?, threads, claim: self.claim("predict")? }))
    }

    /// −log p(x) in nats for each image.
    #[napi(ts_return_type = "Promise<Float64Array>")]
    pub fn nats_per_image(&self, images: ImageBatch, threads: Option<i64>) -> napi::Result<AsyncTask<EvaluateTask>> {
        Ok(AsyncTask::new(EvaluateTask { images: OwnedImages::from_js(&images, "images")?, threads, claim: self.claim("evaluate")? }))
    }

    /// `options_json`: `{ count, seed, temperature, batchSize, method, threads }`.
    /// With `images` and `known`, completes those images instead.
    #[napi(ts_return_type = "Promise<SampleResult>")]
    pub fn sample(
        &self,
        options_json: String,
        images: Option<ImageBatch>,
        known: Option<Uint8Array>,
        cancel: &CancelToken,
        #[napi(ts_arg_type = "((event: string) => void) | undefined | null")] on_progress: Option<ProgressCallback>,
    ) -> napi::Result<AsyncTask<SampleTask>> {
        let options = parse_json(&options_json, "options")?;
        let completion = match (images, known) {
            (Some(images), Some(known)) => Some((OwnedImages::from_js(&images, "images")?, known.to_vec())),
            (None, None) => None,
            _ => return Err(to_napi(Error::InvalidData("complete needs both images and known".into()))),
        };
        let count = completion.as_ref().map(|(images, _)| images.count);
        let config = guard(|| SampleConfig::from_json(&options, count))?;
        if let Some((images, _)) = &completion {
            let c: ModelConfig = serde_json::from_str(&self.config_json).map_err(|e| to_napi(Error::Internal(e.to_string())))?;
            guard(|| images.as_ref().check(&c, "images"))?;
        }
        Ok(AsyncTask::new(SampleTask { claim: self.claim("sample")?, config, completion, cancel: cancel.flag.clone(), progress: Progress::new(on_progress) }))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn save(&self, path: String) -> napi::Result<AsyncTask<SaveTask>> {
        Ok(AsyncTask::new(SaveTask { path: PathBuf::from(path), claim: self.claim("save")? }))
    }
}

#[napi(ts_return_type = "Promise<NativeModel>")]
pub fn load_model(path: String, device: String) -> AsyncTask<LoadTask> {
    AsyncTask::new(LoadTask { path: PathBuf::from(path), device })
}

#[napi(object)]
pub struct SampleResult {
    pub images: Uint8Array,
    pub probabilities: Float32Array,
}

pub struct FitTask {
    claim: Claim,
    train: OwnedImages,
    test: Option<OwnedImages>,
    config: TrainConfig,
    cancel: Arc<AtomicBool>,
    progress: Progress,
}

impl Task for FitTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> napi::Result<String> {
        let mut state = self.claim.lock();
        let progress = &mut self.progress;
        let test = self.test.as_ref().map(|t| t.as_ref());
        guard(|| {
            fit(&mut state, &self.train.as_ref(), test.as_ref(), &self.config, &self.cancel, &mut |event| match event {
                TrainEvent::Step { epoch, step, steps_per_epoch, loss, images_per_second } => progress.send(false, || {
                    json!({ "type": "step", "epoch": epoch, "step": step, "stepsPerEpoch": steps_per_epoch, "loss": loss, "imagesPerSecond": images_per_second })
                }),
                TrainEvent::Epoch(record) => progress.send(true, || {
                    let mut value = serde_json::to_value(&record).unwrap_or_default();
                    value["type"] = json!("epoch");
                    value
                }),
            })
        })?;
        Ok(history_json(&state))
    }

    fn resolve(&mut self, _env: Env, history: String) -> napi::Result<String> {
        Ok(history)
    }
}

pub struct PredictTask {
    claim: Claim,
    images: OwnedImages,
    threads: Option<i64>,
}

impl Task for PredictTask {
    type Output = Vec<f32>;
    type JsValue = Float32Array;

    fn compute(&mut self) -> napi::Result<Vec<f32>> {
        let state = self.claim.lock();
        guard(|| evaluate::predict(&state, &self.images.as_ref(), 256, self.threads))
    }

    fn resolve(&mut self, _env: Env, output: Vec<f32>) -> napi::Result<Float32Array> {
        Ok(Float32Array::new(output))
    }
}

pub struct EvaluateTask {
    claim: Claim,
    images: OwnedImages,
    threads: Option<i64>,
}

impl Task for EvaluateTask {
    type Output = Vec<f64>;
    type JsValue = Float64Array;

    fn compute(&mut self) -> napi::Result<Vec<f64>> {
        let state = self.claim.lock();
        guard(|| evaluate::nats_per_image(&state, &self.images.as_ref(), 256, self.threads))
    }

    fn resolve(&mut self, _env: Env, output: Vec<f64>) -> napi::Result<Float64Array> {
        Ok(Float64Array::new(output))
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
    type Output = SampleOutput;
    type JsValue = SampleResult;

    fn compute(&mut self) -> napi::Result<SampleOutput> {
        let state = self.claim.lock();
        let completion = self.completion.as_ref().map(|(images, known)| Completion { images: &images.data, known });
        let progress = &mut self.progress;
        guard(|| {
            sample(&state, &self.config, completion.as_ref(), &self.cancel, &mut |p| {
                progress.send(p.rows_done == p.rows_total, || json!({ "type": "rows", "rowsDone": p.rows_done, "rowsTotal": p.rows_total }))
            })
        })
    }

    fn resolve(&mut self, _env: Env, output: SampleOutput) -> napi::Result<SampleResult> {
        Ok(SampleResult { images: Uint8Array::new(output.images), probabilities: Float32Array::new(output.probabilities) })
    }
}

pub struct SaveTask {
    claim: Claim,
    path: PathBuf,
}

impl Task for SaveTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> napi::Result<()> {
        let state = self.claim.lock();
        guard(|| checkpoint::save(&state, &self.path))
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> napi::Result<()> {
        Ok(())
    }
}

pub struct LoadTask {
    path: PathBuf,
    device: String,
}

impl Task for LoadTask {
    type Output = ModelState;
    type JsValue = NativeModel;

    fn compute(&mut self) -> napi::Result<ModelState> {
        guard(|| checkpoint::load(&self.path, parse_device(&self.device)?))
    }

    fn resolve(&mut self, _env: Env, state: ModelState) -> napi::Result<NativeModel> {
        NativeModel::wrap(state)
    }
}
