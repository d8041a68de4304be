//! Checkpoints: one `.safetensors` file that describes itself.
//!
//! Tensors (all float32, little-endian):
//! - every parameter by its module name (`input_conv.weight`, `blocks.0.conv1.bias`, …);
//! - Adam's moments as `optimizer.exp_avg.<name>` and `optimizer.exp_avg_sq.<name>`
//!   once the model has been trained;
//! - the moving average of the weights as `ema.<name>`, when training keeps one.
//!
//! Header metadata (`__metadata__`, strings): `format` = "pixelcnn",
//! `format_version` = "2", `config` (the resolved `ModelConfig` as JSON, with
//! its `architecture` and `classes`),
//! `history` (the epoch records as JSON), `optimizer` (`{"step": n}` as JSON)
//! and, when saved mid-epoch, `partial_epoch` (where training stands, JSON);
//! `ema` (`{"decay": d, "updates": t}`) with the average; `training_state` (skipped steps,
//! the best validation so far and the validations since, JSON) once any is set.
//!
//! Files are written through `files::write_atomic` (an exclusively created
//! temporary file beside the target, synced and renamed), so a crash leaves
//! either the old file or the new one, never half, and a link planted in the
//! folder is never written through. Reading accepts only a regular file.
//! Loading checks the header (safetensors refuses offsets outside the file
//! before anything is allocated for tensors), then every name, dtype and shape,
//! and refuses tensors the config does not account for.
//!
//! Version 1 (before the model family) is read as well: its `config` has no
//! `architecture` or `classes` and always describes the seed's family; a
//! version-1 file that claims anything else is refused.

use crate::adam::Adam;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::network::Network;
use crate::ema::Ema;
use crate::state::{EpochRecord, ModelState, TrainingState};
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

pub const FORMAT: &str = "pixelcnn";
pub const FORMAT_VERSION: &str = "2";
/// Versions this library reads.
const READABLE_VERSIONS: &[&str] = &["1", "2"];
/// Far above any model this library builds; refuses to read absurd files whole.
const MAX_FILE_BYTES: u64 = 8 << 30;

struct F32View {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for F32View {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn view(t: &Tensor) -> Result<F32View> {
    let t = t.f_detach()?.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?.f_contiguous()?;
    let mut values = vec![0f32; t.numel()];
    t.f_copy_data(&mut values, t.numel())?;
    Ok(F32View {
        shape: t.size().iter().map(|&d| d as usize).collect(),
        bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    })
}

/// The file's bytes for `state`.
pub fn to_bytes(state: &ModelState) -> Result<Vec<u8>> {
    let params = state.net.parameters();
    let mut tensors: Vec<(String, F32View)> = Vec::new();
    for (name, t) in &params {
        tensors.push((name.clone(), view(t)?));
    }
    let mut metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("config".to_string(), serde_json::to_string(state.net.config()).map_err(|e| Error::Internal(e.to_string()))?),
        ("history".to_string(), serde_json::to_string(&state.history).map_err(|e| Error::Internal(e.to_string()))?),
    ]);
    if let Some(adam) = &state.optimizer {
        for (((name, _), m), v) in params.iter().zip(&adam.exp_avg).zip(&adam.exp_avg_sq) {
            tensors.push((format!("optimizer.exp_avg.{name}"), view(m)?));
            tensors.push((format!("optimizer.exp_avg_sq.{name}"), view(v)?));
        }
        metadata.insert("optimizer".to_string(), format!("{{\"step\":{}}}", adam.step));
    }
    if let Some(ema) = &state.ema {
        for ((name, _), t) in params.iter().zip(&ema.shadow) {
            tensors.push((format!("ema.{name}"), view(t)?));
        }
        metadata.insert("ema".to_string(), serde_json::json!({ "decay": ema.decay, "updates": ema.updates }).to_string());
    }
    if state.training != TrainingState::default() {
        metadata.insert("training_state".to_string(), serde_json::to_string(&state.training).map_err(|e| Error::Internal(e.to_string()))?);
    }
    if let Some(partial) = &state.partial_epoch {
        metadata.insert("partial_epoch".to_string(), serde_json::to_string(partial).map_err(|e| Error::Internal(e.to_string()))?);
    }
    safetensors::tensor::serialize(tensors, Some(metadata)).map_err(|e| Error::Internal(format!("serializing checkpoint: {e}")))
}

pub fn save(state: &ModelState, path: &Path) -> Result<()> {
    crate::files::write_atomic(path, &to_bytes(state)?)
}

pub fn load(path: &Path, device: Device) -> Result<ModelState> {
    let too_large = |size| Error::checkpoint(path, format!("file is {size} bytes, larger than any pixelcnn checkpoint"));
    let bytes = crate::files::read_regular(path, MAX_FILE_BYTES, too_large)?;
    from_bytes(&bytes, path, device)
}

fn meta<'a>(map: &'a HashMap<String, String>, key: &str, path: &Path) -> Result<&'a str> {
    map.get(key).map(String::as_str).ok_or_else(|| Error::checkpoint(path, format!("header metadata has no `{key}` entry")))
}

pub fn from_bytes(bytes: &[u8], path: &Path, device: Device) -> Result<ModelState> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| Error::checkpoint(path, format!("not a valid safetensors file ({e})")))?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| Error::checkpoint(path, format!("not a valid safetensors file ({e})")))?;
    let metadata = header.metadata().as_ref().ok_or_else(|| Error::checkpoint(path, "has no pixelcnn metadata (was it written by pixelcnn?)"))?;
    let config = config_of(metadata, path)?;
    let history: Vec<EpochRecord> = match metadata.get("history") {
        Some(h) => serde_json::from_str(h).map_err(|e| Error::checkpoint(path, format!("metadata `history` is malformed: {e}")))?,
        None => Vec::new(),
    };

    let partial_epoch = match metadata.get("partial_epoch") {
        Some(p) => Some(serde_json::from_str(p).map_err(|e| Error::checkpoint(path, format!("metadata `partial_epoch` is malformed: {e}")))?),
        None => None,
    };
    let training: TrainingState = match metadata.get("training_state") {
        Some(t) => serde_json::from_str(t).map_err(|e| Error::checkpoint(path, format!("metadata `training_state` is malformed: {e}")))?,
        None => TrainingState::default(),
    };
    let ema_decay = match metadata.get("ema") {
        Some(e) => {
            let malformed = || Error::checkpoint(path, format!("metadata `ema` is malformed: {e:?}"));
            let value = serde_json::from_str::<serde_json::Value>(e).map_err(|_| malformed())?;
            let decay = value.get("decay").and_then(|d| d.as_f64()).filter(|d| (0.0..1.0).contains(d)).ok_or_else(malformed)?;
            let updates = match value.get("updates") {
                None => crate::ema::UPDATES_OF_AN_OLD_AVERAGE,
                Some(u) => u.as_i64().filter(|u| *u >= 0).ok_or_else(malformed)?,
            };
            Some((decay, updates))
        }
        None => None,
    };
    check_tensors(&file, &config, metadata.contains_key("optimizer"), ema_decay.is_some(), path)?;
    let mut state = ModelState::new(config, device, 0)?;
    state.history = history;
    state.partial_epoch = partial_epoch;
    state.training = training;
    let read = |name: &str, like: &Tensor| -> Result<Tensor> {
        let t = file.tensor(name).map_err(|_| Error::checkpoint(path, format!("tensor `{name}` is missing")))?;
        let values: Vec<f32> = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::checkpoint(path, format!("tensor `{name}` holds a non-finite value ({bad})")));
        }
        Ok(Tensor::f_from_slice(&values)?.f_reshape(like.size())?.f_to_device(device)?)
    };
    let params = state.net.parameters();
    let mut loaded = Vec::with_capacity(params.len());
    for (name, t) in &params {
        loaded.push(read(name, t)?);
    }
    tch::no_grad(|| -> Result<()> {
        for ((_, t), value) in params.iter().zip(&loaded) {
            t.shallow_clone().f_copy_(value)?;
        }
        Ok(())
    })?;
    if let Some(opt) = metadata.get("optimizer") {
        let step = serde_json::from_str::<serde_json::Value>(opt)
            .ok()
            .and_then(|v| v.get("step").and_then(|s| s.as_i64()))
            .filter(|s| *s >= 0)
            .ok_or_else(|| Error::checkpoint(path, format!("metadata `optimizer` is malformed: {opt:?}")))?;
        let mut exp_avg = Vec::new();
        let mut exp_avg_sq = Vec::new();
        for (name, t) in &params {
            exp_avg.push(read(&format!("optimizer.exp_avg.{name}"), t)?);
            exp_avg_sq.push(read(&format!("optimizer.exp_avg_sq.{name}"), t)?);
        }
        state.optimizer = Some(Adam { step, exp_avg, exp_avg_sq });
    }
    if let Some((decay, updates)) = ema_decay {
        let shadow = params.iter().map(|(name, t)| read(&format!("ema.{name}"), t)).collect::<Result<Vec<_>>>()?;
        state.ema = Some(Ema { decay, shadow, updates });
    }
    drop(params);
    Ok(state)
}

/// Every tensor the config implies (and Adam's moments and the moving
/// average, when the file says it has them) must be in the file, float32,
/// with that shape, and nothing else: checked before the model is allocated,
/// so the file's size bounds the allocation.
fn check_tensors(file: &SafeTensors, config: &ModelConfig, with_optimizer: bool, with_ema: bool, path: &Path) -> Result<()> {
    let weights = Network::parameter_shapes(config);
    let mut prefixes = Vec::new();
    if with_optimizer {
        prefixes.extend(["optimizer.exp_avg.", "optimizer.exp_avg_sq."]);
    }
    if with_ema {
        prefixes.push("ema.");
    }
    let mut expected = weights.clone();
    for prefix in prefixes {
        expected.extend(weights.iter().map(|(n, shape)| (format!("{prefix}{n}"), shape.clone())));
    }
    for (name, shape) in &expected {
        let t = file.tensor(name).map_err(|_| Error::checkpoint(path, format!("tensor `{name}` is missing")))?;
        if t.dtype() != Dtype::F32 {
            return Err(Error::checkpoint(path, format!("tensor `{name}` is {:?}, expected F32", t.dtype())));
        }
        let want: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        if t.shape() != want.as_slice() {
            return Err(Error::checkpoint(path, format!("tensor `{name}` has shape {:?} but the model in `config` needs {want:?}", t.shape())));
        }
    }
    if let Some(extra) = file.names().into_iter().find(|n| !expected.iter().any(|(e, _)| e == *n)) {
        return Err(Error::checkpoint(path, format!(
            "tensor `{extra}` is not part of the {} network that metadata `config` describes",
            config.architecture.name()
        )));
    }
    Ok(())
}

/// The model config a file's metadata describes, once its format and version
/// are ones this library reads.
fn config_of(metadata: &HashMap<String, String>, path: &Path) -> Result<ModelConfig> {
    let format = meta(metadata, "format", path)?;
    if format != FORMAT {
        return Err(Error::checkpoint(path, format!("format is {format:?}, expected {FORMAT:?}")));
    }
    let version = meta(metadata, "format_version", path)?;
    if !READABLE_VERSIONS.contains(&version) {
        return Err(Error::checkpoint(path, format!("format_version is {version:?}; this library reads {}", READABLE_VERSIONS.join(" and "))));
    }
    let config_text = meta(metadata, "config", path)?;
    if version == "1" {
        // Version 1 knew one architecture and no classes: a file that names
        // either was not written by a version-1 library.
        let raw: serde_json::Value = serde_json::from_str(config_text)
            .map_err(|e| Error::checkpoint(path, format!("metadata `config` is not JSON: {e}")))?;
        if let Some(key) = ["architecture", "classes", "layers", "kernel"].iter().find(|k| raw.get(**k).is_some()) {
            return Err(Error::checkpoint(path, format!("metadata `config` has `{key}`, which version-1 files do not have")));
        }
    }
    let config: ModelConfig = serde_json::from_str(config_text)
        .map_err(|e| Error::checkpoint(path, format!("metadata `config` is not a model config: {e}")))?;
    config.validate().map_err(|e| Error::checkpoint(path, format!("metadata `config` is invalid: {e}")))?;
    Ok(config)
}
