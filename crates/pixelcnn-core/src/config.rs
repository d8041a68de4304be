//! Model, training and sampling configuration: every field has a default and a
//! reason, and `from_json` is the one place that decides what is valid.

use crate::error::{Error, Result};
use crate::json::Fields;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The network's shape. Resolved (no preset left) and JSON-serializable: it is
/// stored in every checkpoint so that a file describes the model it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelConfig {
    /// Image height in pixels (MNIST: 28).
    pub height: i64,
    /// Image width in pixels (MNIST: 28).
    pub width: i64,
    /// Channels per pixel. Only 1 (binary images) is supported for now.
    pub channels: i64,
    /// Feature maps of the residual stream (the seed: 128).
    pub filters: i64,
    /// Residual blocks after the first layer (the seed: 5).
    pub residual_blocks: i64,
    /// Side of the first, mask-A convolution (the seed: 7).
    pub input_kernel: i64,
    /// Side of each block's mask-B convolution (the seed: 3).
    pub residual_kernel: i64,
    /// 1×1 ReLU layers between the residual stream and the logit (the seed: 2).
    pub output_layers: i64,
}

impl ModelConfig {
    /// The Keras example this project started from: 532,673 parameters.
    pub fn seed() -> Self {
        ModelConfig {
            height: 28,
            width: 28,
            channels: 1,
            filters: 128,
            residual_blocks: 5,
            input_kernel: 7,
            residual_kernel: 3,
            output_layers: 2,
        }
    }

    /// A network small enough for tests and quick experiments on two cores.
    pub fn small() -> Self {
        ModelConfig { filters: 32, residual_blocks: 2, input_kernel: 5, output_layers: 1, ..Self::seed() }
    }

    pub const KEYS: &'static [&'static str] = &[
        "preset", "height", "width", "channels", "filters", "residualBlocks", "inputKernel",
        "residualKernel", "outputLayers",
    ];

    /// `{ preset?, ...overrides }`; explicit fields override the preset's.
    pub fn from_json(value: &Value) -> Result<Self> {
        let f = Fields::new(value, "model", Self::KEYS)?;
        let base = match f.string("preset", "seed", Some(&["seed", "small"]))?.as_str() {
            "small" => Self::small(),
            _ => Self::seed(),
        };
        let config = ModelConfig {
            height: f.integer("height", base.height, 1, 1024)?,
            width: f.integer("width", base.width, 1, 1024)?,
            channels: f.integer("channels", base.channels, 1, 1)?,
            filters: f.integer("filters", base.filters, 2, 4096)?,
            residual_blocks: f.integer("residualBlocks", base.residual_blocks, 0, 64)?,
            input_kernel: f.integer("inputKernel", base.input_kernel, 3, 31)?,
            residual_kernel: f.integer("residualKernel", base.residual_kernel, 1, 31)?,
            output_layers: f.integer("outputLayers", base.output_layers, 0, 16)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks that hold however the config was made (JSON, a checkpoint, code).
    pub fn validate(&self) -> Result<()> {
        let field = |name: &str, ok: bool, what: String| if ok { Ok(()) } else { Err(Error::config(format!("model.{name}"), what)) };
        field("height", (1..=1024).contains(&self.height), format!("must be between 1 and 1024, got {}", self.height))?;
        field("width", (1..=1024).contains(&self.width), format!("must be between 1 and 1024, got {}", self.width))?;
        field("channels", self.channels == 1, format!("must be 1 (binary single-channel images), got {}", self.channels))?;
        field("filters", self.filters >= 2 && self.filters % 2 == 0 && self.filters <= 4096,
            format!("must be an even number between 2 and 4096 (blocks use filters / 2), got {}", self.filters))?;
        field("residualBlocks", (0..=64).contains(&self.residual_blocks), format!("must be between 0 and 64, got {}", self.residual_blocks))?;
        // A mask-A kernel of side 1 sees nothing at all; even sides have no centre.
        field("inputKernel", self.input_kernel >= 3 && self.input_kernel % 2 == 1 && self.input_kernel <= 31,
            format!("must be an odd number between 3 and 31, got {}", self.input_kernel))?;
        field("residualKernel", self.residual_kernel >= 1 && self.residual_kernel % 2 == 1 && self.residual_kernel <= 31,
            format!("must be an odd number between 1 and 31, got {}", self.residual_kernel))?;
        field("outputLayers", (0..=16).contains(&self.output_layers), format!("must be between 0 and 16, got {}", self.output_layers))?;
        Ok(())
    }

    pub fn pixels_per_image(&self) -> i64 {
        self.height * self.width * self.channels
    }
}

/// How to train. Defaults are the seed's: Adam 5e-4, batch 128.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainConfig {
    pub epochs: i64,
    pub batch_size: i64,
    pub learning_rate: f64,
    /// Seeds the data order (and, for `train`, the initial weights).
    pub seed: u64,
    /// libtorch intra-op threads; `None` means every core.
    pub threads: Option<i64>,
    /// Images per validation forward pass (memory only; no effect on the result).
    pub eval_batch_size: i64,
    /// Save a checkpoint here every `checkpoint_every` steps and after each epoch.
    pub checkpoint_path: Option<String>,
    pub checkpoint_every: i64,
}

impl TrainConfig {
    pub const KEYS: &'static [&'static str] =
        &["epochs", "batchSize", "learningRate", "seed", "threads", "evalBatchSize", "checkpoint"];

    pub fn from_json(value: &Value) -> Result<Self> {
        let f = Fields::new(value, "", Self::KEYS)?;
        let (checkpoint_path, checkpoint_every) = match f.get("checkpoint") {
            None => (None, 0),
            Some(c) => {
                let c = Fields::new(c, "checkpoint", &["path", "every"])?;
                let path = c.string("path", "", None)?;
                if path.is_empty() {
                    return Err(Error::config("checkpoint.path", "must be a file path"));
                }
                (Some(path), c.integer("every", 0, 0, 1_000_000_000)?)
            }
        };
        Ok(TrainConfig {
            epochs: f.integer("epochs", 1, 1, 1_000_000)?,
            batch_size: f.integer("batchSize", 128, 1, 65_536)?,
            learning_rate: f.positive("learningRate", 5e-4, 10.0)?,
            seed: f.integer("seed", 0, 0, (1i64 << 53) - 1)? as u64,
            threads: f.optional_integer("threads", 1, 1024)?,
            eval_batch_size: f.integer("evalBatchSize", 500, 1, 65_536)?,
            checkpoint_path,
            checkpoint_every,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SampleMethod {
    /// Incremental: each step computes only the activations the new pixel changes.
    Fast,
    /// The seed's loop: one full forward pass per pixel. Kept as the oracle.
    Reference,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SampleConfig {
    pub count: i64,
    pub seed: u64,
    /// Logits are divided by it: below 1 sharpens, above 1 flattens.
    pub temperature: f64,
    /// Images generated together; memory grows with it, per-image cost falls.
    pub batch_size: i64,
    pub method: SampleMethod,
    pub threads: Option<i64>,
}

impl SampleConfig {
    pub const KEYS: &'static [&'static str] = &["count", "seed", "temperature", "batchSize", "method", "threads"];

    /// `count_required`: false for completion, where the images give the count.
    pub fn from_json(value: &Value, count_default: Option<i64>) -> Result<Self> {
        let f = Fields::new(value, "", Self::KEYS)?;
        let count = match count_default {
            Some(n) => {
                if f.get("count").is_some() {
                    return Err(Error::config("count", "is given by the images to complete; leave it out"));
                }
                n
            }
            None => f.integer("count", 1, 1, 10_000_000)?,
        };
        let method = match f.string("method", "fast", Some(&["fast", "reference"]))?.as_str() {
            "reference" => SampleMethod::Reference,
            _ => SampleMethod::Fast,
        };
        Ok(SampleConfig {
            count,
            seed: f.integer("seed", 0, 0, (1i64 << 53) - 1)? as u64,
            temperature: f.positive("temperature", 1.0, 100.0)?,
            batch_size: f.integer("batchSize", count.clamp(1, 256), 1, 65_536)?,
            method,
            threads: f.optional_integer("threads", 1, 1024)?,
        })
    }
}
