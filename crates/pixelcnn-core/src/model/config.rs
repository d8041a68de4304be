//! Model, training, sampling and evaluation configuration: serde types (each
//! field named once, with its default), parsed by `parse::from_value` and
//! checked by one `validate` per type. The binding and `src/` only pass JSON.

use crate::error::{Error, Result};
use crate::parse::{check_range, check_threads, from_value, quote};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// The seed's network: masked convolutions and residual blocks. Has the
    /// blind spot of stacked masked kernels (pixels up and to the right).
    #[default]
    Pixelcnn,
    /// Gated PixelCNN (van den Oord et al. 2016): vertical and horizontal
    /// stacks, gated units, no blind spot.
    Gated,
    /// PixelCNN++ (Salimans et al. 2017): shifted convolutions, gated ResNet
    /// blocks over three resolutions with U-Net skips.
    #[serde(rename = "pixelcnn++")]
    PixelcnnPp,
}

impl Architecture {
    /// As users write it: "pixelcnn", "gated", "pixelcnn++".
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Pixelcnn => "pixelcnn",
            Architecture::Gated => "gated",
            Architecture::PixelcnnPp => "pixelcnn++",
        }
    }
}

/// The distribution of each sub-pixel given the pixels before it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Output {
    /// Binary images: one logit per sub-pixel, p(x = 1) = σ(logit).
    #[default]
    Bernoulli,
    /// 8-bit images: 256 logits per sub-pixel, a softmax over the levels;
    /// token grids: one logit per token of the vocabulary.
    Categorical,
    /// 8-bit images: PixelCNN++'s discretized mixture of logistics
    /// (Salimans et al. 2017), `mixtures` components per pixel.
    LogisticMixture,
}

impl Output {
    pub fn is_bernoulli(&self) -> bool {
        *self == Output::Bernoulli
    }

    /// As users write it: "bernoulli", "categorical", "logistic-mixture".
    pub fn name(&self) -> &'static str {
        match self {
            Output::Bernoulli => "bernoulli",
            Output::Categorical => "categorical",
            Output::LogisticMixture => "logistic-mixture",
        }
    }
}

/// PixelCNN++'s number of mixture components.
pub const DEFAULT_MIXTURES: i64 = 10;

/// The network's shape, resolved (no preset left) and stored in every
/// checkpoint so that a file describes the model it holds. Fields of one
/// architecture only are `None` for the other.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelConfig {
    /// Absent in version-1 checkpoints, which all hold the seed's family.
    #[serde(default)]
    pub architecture: Architecture,
    /// Image height and width in pixels (MNIST: 28).
    pub height: i64,
    pub width: i64,
    /// Channels per pixel: 1, or 3 (RGB, ordered R → G → B inside a pixel).
    pub channels: i64,
    /// Absent (Bernoulli) in checkpoints of binary models, as before outputs existed.
    #[serde(default, skip_serializing_if = "Output::is_bernoulli")]
    pub output: Output,
    /// logistic-mixture: components per pixel (default 10); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixtures: Option<i64>,
    /// Class-conditional with this many classes; `None`: unconditional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<i64>,
    /// Feature maps of the residual stream (pixelcnn) or of each stack (gated).
    pub filters: i64,
    /// pixelcnn, gated: side of the first layer's kernel, which excludes the centre pixel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_kernel: Option<i64>,
    /// pixelcnn, gated: 1×1 ReLU layers between the last hidden layer and the logits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_layers: Option<i64>,
    /// pixelcnn: residual blocks after the first layer (the seed: 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residual_blocks: Option<i64>,
    /// pixelcnn: side of each block's mask-B convolution (the seed: 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residual_kernel: Option<i64>,
    /// gated: gated layers after the first one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<i64>,
    /// gated: kernel side of the gated layers' stacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<i64>,
    /// pixelcnn++: gated ResNet blocks per stage (the paper's nr_resnet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resnet_blocks: Option<i64>,
    /// pixelcnn++: dropout probability inside every block, in training only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
    /// pixelcnn++: weight-normalised layers (`weight_g`, `weight_v`), as both
    /// published codes train it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_norm: Option<bool>,
    /// Token grids: each position holds one of this many tokens (2 … 65536),
    /// read through a learned embedding and predicted by a categorical over
    /// them; `None`: the values are pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocabulary: Option<i64>,
    /// Token grids: the width of each token's learned embedding (`from_json`'s
    /// default: `filters`, as the gated priors of VQ-VAE codes use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<i64>,
    /// Conditional on a real vector of this size per image: a learned (D, C)
    /// projection of it enters every layer where a class bias enters (a
    /// class is the one-hot case); exclusive with `classes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_size: Option<i64>,
    /// Conditional on a map per image (`network/class_bias.rs`): resized to
    /// each layer's resolution and added through a learned 1×1 convolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_map: Option<ConditionMap>,
}

/// The shape of a model's condition maps: `channels` real values per
/// position, or with `vocabulary` one token per position read through an
/// embedding of `embedding` values (as VQ-VAE-2's bottom prior reads the top codes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConditionMap {
    pub channels: i64,
    pub height: i64,
    pub width: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocabulary: Option<i64>,
    /// Token maps: the embedding's width (`from_json`'s default: the model's `filters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<i64>,
}

impl ConditionMap {
    /// Values per position as the layers read them: the channels, or a token map's embedding width.
    pub fn features(&self) -> i64 {
        if self.vocabulary.is_some() { self.embedding.unwrap_or(self.channels) } else { self.channels }
    }

    /// Values per image as given: channels × height × width.
    pub fn values(&self) -> i64 {
        self.channels * self.height * self.width
    }

    fn validate(&self) -> Result<()> {
        check_range("model.conditionMap.channels", self.channels, 1, 4096)?;
        check_range("model.conditionMap.height", self.height, 1, 1024)?;
        check_range("model.conditionMap.width", self.width, 1, 1024)?;
        match (self.vocabulary, self.embedding) {
            (Some(v), Some(e)) => {
                check_range("model.conditionMap.vocabulary", v, 2, 65_536)?;
                check_range("model.conditionMap.embedding", e, 1, 4096)?;
                if self.channels != 1 {
                    return Err(Error::config("model.conditionMap.channels", format!("must be 1 for a token map (conditionMap.vocabulary is set), got {}", self.channels)));
                }
                Ok(())
            }
            (Some(_), None) => Err(Error::config("model.conditionMap.embedding", "is required for a token map")),
            (None, Some(e)) => Err(Error::config("model.conditionMap.embedding", format!("applies only to token maps (set conditionMap.vocabulary), got {e}"))),
            (None, None) => Ok(()),
        }
    }
}

/// The named starting points of `create({ preset })`.
pub const PRESETS: &[&str] = &["seed", "small", "gated", "gated-small", "pixelcnn++", "pixelcnn++-small"];

impl ModelConfig {
    /// The Keras example this project started from (`network/pixelcnn.rs`).
    pub fn seed() -> Self {
        crate::network::pixelcnn::preset()
    }

    /// The seed's family, small enough for tests and quick experiments.
    pub fn small() -> Self {
        crate::network::pixelcnn::small_preset()
    }

    /// Gated PixelCNN at about the seed's parameter budget (`network/gated.rs`).
    pub fn gated() -> Self {
        crate::network::gated::preset()
    }

    pub fn gated_small() -> Self {
        crate::network::gated::small_preset()
    }

    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "seed" => Some(Self::seed()),
            "small" => Some(Self::small()),
            "gated" => Some(Self::gated()),
            "gated-small" => Some(Self::gated_small()),
            "pixelcnn++" => Some(crate::network::pixelcnn_pp::preset()),
            "pixelcnn++-small" => Some(crate::network::pixelcnn_pp::small_preset()),
            _ => None,
        }
    }

    /// `{ preset?, architecture?, ...overrides }`: the preset (by default
    /// `seed`, or `gated` when `architecture: 'gated'` is asked for) with the
    /// given fields on top.
    pub fn from_json(value: &Value) -> Result<Self> {
        let mut fields = match value {
            Value::Object(m) => m.clone(),
            Value::Null => Default::default(),
            other => return Err(Error::config("model", format!("must be an object, got {}", quote(other)))),
        };
        fields.retain(|_, v| !v.is_null());
        let architecture = match fields.get("architecture") {
            Some(a) => Some(from_value::<ArchitectureOnly>(&serde_json::json!({ "architecture": a }), "model")?.architecture),
            None => None,
        };
        let base = match fields.remove("preset") {
            Some(Value::String(name)) => Self::preset(&name).ok_or_else(|| {
                Error::config("model.preset", format!("must be one of {}, got {}", PRESETS.join(", "), quote(&Value::String(name.clone()))))
            })?,
            Some(other) => return Err(Error::config("model.preset", format!("must be a string, got {}", quote(&other)))),
            None if architecture == Some(Architecture::Gated) => Self::gated(),
            None if architecture == Some(Architecture::PixelcnnPp) => crate::network::pixelcnn_pp::preset(),
            None => Self::seed(),
        };
        if let Some(a) = architecture {
            if a != base.architecture {
                return Err(Error::config(
                    "model.architecture",
                    format!("is '{}' but the preset is a '{}' network; leave one of them out", a.name(), base.architecture.name()),
                ));
            }
        }
        let mut merged = match serde_json::to_value(&base) {
            Ok(Value::Object(m)) => m,
            _ => return Err(Error::Internal("a preset did not serialize to an object".into())),
        };
        // A preset's mixture count goes with its mixture output: asking for
        // another output without a count drops it.
        let other_output = fields.get("output").is_some_and(|o| o.as_str() != Some("logistic-mixture"));
        if other_output && !fields.contains_key("mixtures") {
            merged.remove("mixtures");
        }
        // A token grid's only output is the categorical over its vocabulary:
        // asking for a vocabulary picks it, and drops a preset's other one.
        // A token grid has one channel: a colour preset's three go with its pixels.
        let tokens = fields.contains_key("vocabulary");
        if tokens && !fields.contains_key("channels") {
            merged.insert("channels".into(), Value::from(1));
        }
        if tokens && !fields.contains_key("output") {
            merged.insert("output".into(), Value::String(Output::Categorical.name().into()));
            if !fields.contains_key("mixtures") {
                merged.remove("mixtures");
            }
        }
        merged.extend(fields);
        let mut config: ModelConfig = from_value(&Value::Object(merged), "model")?;
        if config.output == Output::LogisticMixture && config.mixtures.is_none() {
            config.mixtures = Some(DEFAULT_MIXTURES);
        }
        if config.vocabulary.is_some() && config.embedding.is_none() {
            config.embedding = Some(config.filters);
        }
        if let Some(map) = config.condition_map.as_mut().filter(|m| m.vocabulary.is_some() && m.embedding.is_none()) {
            map.embedding = Some(config.filters);
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks that hold however the config was made (JSON, a checkpoint, code).
    pub fn validate(&self) -> Result<()> {
        let field = |name: &str, ok: bool, what: String| if ok { Ok(()) } else { Err(Error::config(format!("model.{name}"), what)) };
        check_range("model.height", self.height, 1, 1024)?;
        check_range("model.width", self.width, 1, 1024)?;
        field("channels", self.channels == 1 || self.channels == 3, format!("must be 1 (grayscale or binary) or 3 (RGB), got {}", self.channels))?;
        if let Some(k) = self.classes {
            field("classes", (2..=100_000).contains(&k), format!("must be between 2 and 100000 (leave it out for an unconditional model), got {k}"))?;
        }
        if let Some(map) = &self.condition_map {
            map.validate()?;
            if self.classes.is_some() {
                return Err(Error::config("model.conditionMap", "and model.classes exclude each other: with a map, give the class as a one-hot vector (conditionSize = classes)"));
            }
        }
        if let Some(d) = self.condition_size {
            check_range("model.conditionSize", d, 1, 65_536)?;
            if self.classes.is_some() {
                return Err(Error::config("model.conditionSize", "and model.classes exclude each other: a class is the one-hot vector of conditionSize = classes"));
            }
        }
        match (self.output, self.mixtures) {
            (Output::LogisticMixture, Some(k)) => check_range("model.mixtures", k, 1, 256)?,
            (Output::LogisticMixture, None) => return Err(Error::config("model.mixtures", "is required for output 'logistic-mixture'")),
            (other, Some(k)) => {
                return Err(Error::config("model.mixtures", format!("applies only to output 'logistic-mixture', not '{}' (got {k})", other.name())))
            }
            (_, None) => {}
        }
        // Another architecture's fields must be absent: set by mistake they would be silently ignored.
        let shown = |v: Option<i64>| v.map(|v| v.to_string());
        let foreign: Vec<(&str, Option<String>)> = vec![
            ("inputKernel", shown(self.input_kernel)),
            ("outputLayers", shown(self.output_layers)),
            ("residualBlocks", shown(self.residual_blocks)),
            ("residualKernel", shown(self.residual_kernel)),
            ("layers", shown(self.layers)),
            ("kernel", shown(self.kernel)),
            ("resnetBlocks", shown(self.resnet_blocks)),
            ("dropout", self.dropout.map(|v| v.to_string())),
            ("weightNorm", self.weight_norm.map(|v| v.to_string())),
        ];
        let own: &[&str] = match self.architecture {
            Architecture::Pixelcnn => crate::network::pixelcnn::FIELDS,
            Architecture::Gated => crate::network::gated::FIELDS,
            Architecture::PixelcnnPp => crate::network::pixelcnn_pp::FIELDS,
        };
        for (name, value) in foreign {
            if let Some(v) = value.filter(|_| !own.contains(&name)) {
                return Err(Error::config(format!("model.{name}"), format!("does not apply to architecture '{}' (got {v})", self.architecture.name())));
            }
        }
        match self.architecture {
            Architecture::Pixelcnn => crate::network::pixelcnn::validate(self)?,
            Architecture::Gated => crate::network::gated::validate(self)?,
            Architecture::PixelcnnPp => crate::network::pixelcnn_pp::validate(self)?,
        }
        self.validate_tokens()?;
        let groups = self.channel_groups().0;
        // PixelCNN++ reads a pixel's earlier channels only at its output (`pixel_link`).
        if groups > 1 && self.architecture != Architecture::PixelcnnPp {
            // Each layer's channels are split into R, G and B groups: the narrowest layer needs one of each.
            let (narrowest, least) = match self.architecture {
                Architecture::Pixelcnn => (self.filters / 2, 2 * groups),
                _ => (self.filters, groups),
            };
            field("filters", narrowest >= groups, format!(
                "must be at least {least} with channels: 3 and output '{}' (every layer splits its channels into R, G and B groups), got {}",
                self.output.name(), self.filters
            ))?;
        }
        Ok(())
    }

    fn validate_tokens(&self) -> Result<()> {
        let Some(v) = self.vocabulary else {
            return match self.embedding {
                Some(e) => Err(Error::config("model.embedding", format!("applies only to token grids (set model.vocabulary), got {e}"))),
                None => Ok(()),
            };
        };
        check_range("model.vocabulary", v, 2, 65_536)?;
        if self.channels != 1 {
            return Err(Error::config("model.channels", format!("must be 1 for a token grid (model.vocabulary is set), got {}", self.channels)));
        }
        if self.output != Output::Categorical {
            return Err(Error::config("model.output", format!("must be 'categorical' for a token grid (model.vocabulary is set), got '{}'", self.output.name())));
        }
        match self.embedding {
            Some(e) => check_range("model.embedding", e, 1, 4096),
            None => Err(Error::config("model.embedding", "is required for a token grid (model.vocabulary is set)")),
        }
    }

    /// Values per image of the condition vectors given with the data: the
    /// vector (`conditionSize`) followed by the map (`conditionMap`), either optional.
    pub fn condition_values(&self) -> Option<i64> {
        let (d, m) = (self.condition_size.unwrap_or(0), self.condition_map.as_ref().map_or(0, |m| m.values()));
        (d + m > 0).then_some(d + m)
    }

    /// The rows of every layer's conditioning weight: one per class, or one per
    /// component of the condition vector; `None`: unconditional.
    pub fn condition_rows(&self) -> Option<i64> {
        self.classes.or(self.condition_size)
    }

    /// Whether the values are tokens of a vocabulary rather than pixels.
    pub fn is_tokens(&self) -> bool {
        self.vocabulary.is_some()
    }

    /// The values a sub-pixel or token can take: the vocabulary, or 256 levels.
    pub fn levels(&self) -> i64 {
        self.vocabulary.unwrap_or(256)
    }

    /// Channels of the network's input per position: the embedding's width
    /// for tokens, one per sub-pixel for pixels.
    pub fn input_channels(&self) -> i64 {
        self.embedding.filter(|_| self.is_tokens()).unwrap_or(self.channels)
    }

    /// The network's input channels per value written (`input_channels() / channels`).
    pub fn input_width(&self) -> i64 {
        self.input_channels() / self.channels
    }

    /// Output channels of the network: one logit per sub-pixel (Bernoulli),
    /// 256 (categorical, level k of channel c at c·256 + k; a token grid:
    /// one per token), or for a mixture
    /// of K logistics K component logits, then per channel K means and K
    /// log-scales, and for colour 3K coupling coefficients (see output.rs).
    pub fn output_channels(&self) -> i64 {
        match self.output {
            Output::Bernoulli => self.channels,
            Output::Categorical => self.channels * self.levels(),
            Output::LogisticMixture => self.mixtures() * (1 + 2 * self.channels + if self.channels == 3 { 3 } else { 0 }),
        }
    }

    /// Channel groups of the network (`network::channel_groups`): three for a
    /// colour model predicted sub-pixel by sub-pixel (Bernoulli, categorical),
    /// one otherwise (grayscale, and the mixture, which predicts whole pixels).
    pub fn channel_groups(&self) -> crate::network::channel_groups::Groups {
        use crate::network::channel_groups::Groups;
        if self.channels == 3 && self.output != Output::LogisticMixture { Groups(3) } else { Groups::one() }
    }

    /// Whether a sampler draws the channels of a pixel one network pass at a
    /// time (three groups) or all from one pass.
    pub fn passes_per_pixel(&self) -> i64 {
        self.channel_groups().0
    }

    pub fn mixtures(&self) -> i64 {
        self.mixtures.unwrap_or(DEFAULT_MIXTURES)
    }

    pub fn pixels_per_image(&self) -> i64 {
        self.height * self.width * self.channels
    }

    // The fields of one architecture. Validation (which every network build
    // and checkpoint load goes through) requires each of its own, so on the
    // configs these are called on they are set: an unset one is a bug, not a
    // default to fall back to (the fallbacks these had differed from the presets).
    pub fn residual_blocks(&self) -> i64 {
        self.residual_blocks.expect("a validated pixelcnn config has residualBlocks")
    }
    pub fn residual_kernel(&self) -> i64 {
        self.residual_kernel.expect("a validated pixelcnn config has residualKernel")
    }
    pub fn layers(&self) -> i64 {
        self.layers.expect("a validated gated config has layers")
    }
    pub fn kernel(&self) -> i64 {
        self.kernel.expect("a validated gated config has kernel")
    }
    pub fn input_kernel(&self) -> i64 {
        self.input_kernel.expect("a validated pixelcnn or gated config has inputKernel")
    }
    pub fn output_layers(&self) -> i64 {
        self.output_layers.expect("a validated pixelcnn or gated config has outputLayers")
    }
}

#[derive(Deserialize)]
struct ArchitectureOnly {
    architecture: Architecture,
}

/// The arithmetic of forward passes: fp32 throughout, or bf16 mixed
/// precision (convolutions and matrix products in bfloat16, weights, optimizer,
/// loss and draws in fp32; see `precision.rs`), or `auto`: whichever of the
/// two the device and the kind of work call for (`Precision::resolve`), the
/// default of every call from JSON. `Default` stays fp32 for configs built
/// in Rust.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
    Auto,
}

fn default_auto() -> Precision {
    Precision::Auto
}

fn default_epochs() -> i64 { 1 }

fn default_batch() -> i64 { 128 }
fn default_learning_rate() -> f64 { 5e-4 }
fn default_eval_batch() -> i64 { 500 }

/// Where and how often to save during training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckpointConfig {
    pub path: String,
    /// Also save every this many steps inside an epoch (0: only after epochs).
    #[serde(default)]
    pub every: i64,
    /// Also keep the model with the lowest validation loss so far in this
    /// file, rewritten (atomically) whenever a validation improves on it.
    #[serde(default)]
    pub best: Option<String>,
}

/// Stop when validation has not improved (by more than `min_delta` nats)
/// for `patience` validations in a row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EarlyStopping {
    pub patience: i64,
    #[serde(default)]
    pub min_delta: f64,
}

/// How to train. Defaults are the seed's: Adam 5e-4, batch 128.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrainConfig {
    #[serde(default = "default_epochs")]
    pub epochs: i64,
    #[serde(default = "default_batch")]
    pub batch_size: i64,
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    /// Seeds the data order (and, for `train`, the initial weights).
    #[serde(default)]
    pub seed: u64,
    /// libtorch intra-op threads; `None` means every core.
    #[serde(default)]
    pub threads: Option<i64>,
    /// Images per validation forward pass (memory only; no effect on the result).
    #[serde(default = "default_eval_batch")]
    pub eval_batch_size: i64,
    /// Save a checkpoint here after each epoch, every `every` steps, and when aborted.
    #[serde(default)]
    pub checkpoint: Option<CheckpointConfig>,
    #[serde(default = "default_auto")]
    pub precision: Precision,
    /// Train as one rank of a data-parallel group (see `train::fit_in_group`).
    #[serde(default)]
    pub distributed: Option<DistributedConfig>,
    /// The learning rate of each step (`training/schedule.rs`).
    #[serde(default)]
    pub schedule: crate::schedule::Schedule,
    /// Keep an exponential moving average of the weights with this decay
    /// (`training/ema.rs`); evaluation and sampling then use it.
    #[serde(default)]
    pub ema: Option<f64>,
    /// Scale the gradients to at most this global L2 norm.
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
    /// Give up (`Error::Diverged`) after this many steps in a row with a
    /// non-finite loss or gradient; each is skipped.
    #[serde(default = "default_max_non_finite")]
    pub max_non_finite_steps: i64,
    /// Adam's β1 and β2.
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    /// Adam's ε (Keras's 1e-7, which the seed used; PyTorch's is 1e-8).
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Decoupled weight decay λ (AdamW); 0: plain Adam.
    #[serde(default)]
    pub weight_decay: f64,
    /// Also validate every this many steps (0: only after each epoch).
    #[serde(default)]
    pub validate_every: i64,
    #[serde(default)]
    pub early_stopping: Option<EarlyStopping>,
    /// The named recipe the other fields were completed from (`training/recipes.rs`); kept for the record.
    #[serde(default)]
    pub recipe: Option<String>,
}

fn default_max_non_finite() -> i64 { crate::stability::DEFAULT_MAX_NON_FINITE_STEPS }
fn default_betas() -> [f64; 2] { [crate::adam::BETA1, crate::adam::BETA2] }
fn default_eps() -> f64 { crate::adam::EPSILON }

/// The collective backend: Gloo on CPUs, NCCL between GPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Gloo,
    Nccl,
}

/// One rank's place in a data-parallel group, as `torchrun` describes it
/// (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DistributedConfig {
    pub rank: i64,
    pub world_size: i64,
    #[serde(default = "default_master_addr")]
    pub master_addr: String,
    #[serde(default = "default_master_port")]
    pub master_port: i64,
    #[serde(default)]
    pub backend: Backend,
    /// How long to wait for the other ranks at the rendezvous and in each collective.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: f64,
}

fn default_master_addr() -> String { "127.0.0.1".into() }
fn default_master_port() -> i64 { 29500 }
fn default_timeout_seconds() -> f64 { 60.0 }

impl DistributedConfig {
    pub fn group_options(&self) -> crate::distributed::GroupOptions {
        crate::distributed::GroupOptions {
            rank: self.rank,
            world_size: self.world_size,
            master_addr: self.master_addr.clone(),
            master_port: self.master_port,
            timeout: std::time::Duration::from_secs_f64(self.timeout_seconds),
        }
    }

    fn validate(&self) -> Result<()> {
        if !(self.timeout_seconds.is_finite() && self.timeout_seconds >= 1.0 && self.timeout_seconds <= 86_400.0) {
            return Err(Error::config("distributed.timeoutSeconds", format!("must be between 1 and 86400, got {}", self.timeout_seconds)));
        }
        self.group_options().validate()
    }
}

impl Default for TrainConfig {
    /// Every field at its default (the seed's training).
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every TrainConfig field has a default")
    }
}

impl TrainConfig {
    /// Parses a training config; a `recipe` fills in the fields it sets that
    /// `value` leaves out.
    pub fn from_json(value: &Value) -> Result<Self> {
        let completed = crate::recipes::complete(value)?;
        let config: TrainConfig = from_value(&completed, "")?;
        config.validate()?;
        Ok(config)
    }

    /// The hyperparameters that shape the trajectory, as JSON (camelCase,
    /// like the config): what each epoch record keeps of how it was trained.
    /// Paths, threads and the group are left out.
    pub fn summary(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            for key in ["checkpoint", "distributed", "threads", "evalBatchSize", "epochs"] {
                object.remove(key);
            }
            object.retain(|_, v| !v.is_null());
        }
        value
    }

    pub fn adam_options(&self) -> crate::adam::AdamOptions {
        crate::adam::AdamOptions { beta1: self.betas[0], beta2: self.betas[1], epsilon: self.eps, weight_decay: self.weight_decay }
    }

    /// Whether anything needs validation data (`field`: the first that does).
    pub fn needs_validation(&self) -> Option<&'static str> {
        if self.checkpoint.as_ref().is_some_and(|c| c.best.is_some()) {
            Some("checkpoint.best")
        } else if self.early_stopping.is_some() {
            Some("earlyStopping")
        } else if self.validate_every > 0 {
            Some("validateEvery")
        } else {
            None
        }
    }

    pub fn validate(&self) -> Result<()> {
        check_range("epochs", self.epochs, 1, 1_000_000)?;
        check_range("batchSize", self.batch_size, 1, 65_536)?;
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1e6) {
            return Err(Error::config("learningRate", format!("must be greater than 0 and at most 1e6, got {}", self.learning_rate)));
        }
        check_seed("seed", self.seed)?;
        check_threads("threads", self.threads)?;
        check_range("evalBatchSize", self.eval_batch_size, 1, 65_536)?;
        if let Some(c) = &self.checkpoint {
            if c.path.is_empty() {
                return Err(Error::config("checkpoint.path", "must be a file path"));
            }
            check_range("checkpoint.every", c.every, 0, 1_000_000_000)?;
            if c.best.as_deref() == Some("") {
                return Err(Error::config("checkpoint.best", "must be a file path"));
            }
            if c.best.as_deref() == Some(c.path.as_str()) {
                return Err(Error::config("checkpoint.best", format!("must be another file than checkpoint.path ({:?})", c.path)));
            }
        }
        self.schedule.validate(self.learning_rate)?;
        if let Some(d) = self.ema {
            if !(0.0..1.0).contains(&d) {
                return Err(Error::config("ema", format!("must be in [0, 1) (the decay of the average per step), got {d}")));
            }
        }
        if let Some(c) = self.clip_grad_norm {
            if !(c > 0.0 && c.is_finite()) {
                return Err(Error::config("clipGradNorm", format!("must be a positive number, got {c}")));
            }
        }
        check_range("maxNonFiniteSteps", self.max_non_finite_steps, 1, 1_000_000)?;
        for (i, b) in self.betas.iter().enumerate() {
            if !(0.0..1.0).contains(b) {
                return Err(Error::config(format!("betas[{i}]"), format!("must be in [0, 1), got {b}")));
            }
        }
        if !(self.eps > 0.0 && self.eps < 1.0) {
            return Err(Error::config("eps", format!("must be in (0, 1), got {}", self.eps)));
        }
        if !(0.0..1.0).contains(&(self.weight_decay * self.learning_rate)) || !(self.weight_decay >= 0.0) {
            return Err(Error::config("weightDecay", format!("must be 0 or more, with learningRate × weightDecay below 1, got {}", self.weight_decay)));
        }
        check_range("validateEvery", self.validate_every, 0, 1_000_000_000)?;
        if let Some(e) = &self.early_stopping {
            check_range("earlyStopping.patience", e.patience, 1, 1_000_000)?;
            if !(e.min_delta >= 0.0 && e.min_delta.is_finite()) {
                return Err(Error::config("earlyStopping.minDelta", format!("must be 0 or more, got {}", e.min_delta)));
            }
        }
        if let Some(d) = &self.distributed {
            d.validate()?;
        }
        Ok(())
    }
}

/// Seeds travel through JavaScript numbers: beyond 2^53 they would not round-trip.
fn check_seed(field: &str, seed: u64) -> Result<()> {
    if seed < (1u64 << 53) { Ok(()) } else { Err(Error::config(field, format!("must be below 2^53, got {seed}"))) }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SampleMethod {
    /// Incremental: each step computes only the activations the new pixel changes.
    #[default]
    Fast,
    /// The seed's loop: one full forward pass per pixel. Kept as the oracle.
    Reference,
}

fn default_count() -> i64 { 1 }
fn default_temperature() -> f64 { 1.0 }

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SampleConfig {
    #[serde(default = "default_count")]
    pub count: i64,
    #[serde(default)]
    pub seed: u64,
    /// Logits are divided by it: below 1 sharpens, above 1 flattens.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Images generated together; memory grows with it, per-image cost falls.
    /// Default: `min(count, 256)`.
    #[serde(default)]
    pub batch_size: Option<i64>,
    #[serde(default)]
    pub method: SampleMethod,
    #[serde(default)]
    pub threads: Option<i64>,
    /// One class for every image, or one per image (conditional models only).
    #[serde(default)]
    pub labels: Option<Value>,
    /// Models with `conditionSize: D`: N×D condition values, one vector per
    /// image (given beside the JSON, as a typed array).
    #[serde(skip)]
    pub conditions: Option<Vec<f32>>,
    #[serde(default = "default_auto")]
    pub precision: Precision,
    /// The moving average of the weights (when the model keeps one) or the raw ones.
    #[serde(default)]
    pub weights: crate::ema::Weights,
}

impl Default for SampleConfig {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every SampleConfig field has a default")
    }
}

impl SampleConfig {
    /// `images`: for completion, the number of images given (`count` must then be left out).
    pub fn from_json(value: &Value, images: Option<i64>) -> Result<Self> {
        let mut config: SampleConfig = from_value(value, "")?;
        if let Some(n) = images {
            if value.get("count").is_some_and(|v| !v.is_null()) {
                return Err(Error::config("count", "is given by the images to complete; leave it out"));
            }
            config.count = n;
        }
        config.validate()?;
        Ok(config)
    }

    pub fn batch_size(&self) -> i64 {
        self.batch_size.unwrap_or(self.count.clamp(1, 256))
    }

    pub fn validate(&self) -> Result<()> {
        check_range("count", self.count, 1, 10_000_000)?;
        check_seed("seed", self.seed)?;
        if !(self.temperature > 0.0 && self.temperature <= 100.0) {
            return Err(Error::config("temperature", format!("must be greater than 0 and at most 100, got {}", self.temperature)));
        }
        if let Some(b) = self.batch_size {
            check_range("batchSize", b, 1, 65_536)?;
        }
        check_threads("threads", self.threads)
    }
}

/// Options of `predict` and `evaluate`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EvalConfig {
    #[serde(default)]
    pub threads: Option<i64>,
    /// Images per forward pass (memory only). Default 256.
    #[serde(default)]
    pub batch_size: Option<i64>,
    /// One class per image, or one for all (conditional models only).
    #[serde(default)]
    pub labels: Option<Value>,
    /// Models with `conditionSize: D`: N×D condition values (beside the JSON).
    #[serde(skip)]
    pub conditions: Option<Vec<f32>>,
    #[serde(default = "default_auto")]
    pub precision: Precision,
    /// The moving average of the weights (when the model keeps one) or the raw ones.
    #[serde(default)]
    pub weights: crate::ema::Weights,
}

impl EvalConfig {
    pub fn from_json(value: &Value) -> Result<Self> {
        let config: EvalConfig = from_value(value, "")?;
        check_threads("threads", config.threads)?;
        if let Some(b) = config.batch_size {
            check_range("batchSize", b, 1, 65_536)?;
        }
        Ok(config)
    }

    pub fn batch_size(&self) -> i64 {
        self.batch_size.unwrap_or(256)
    }
}

/// The labels that come with `fit`'s data (`data.trainLabels`, `data.testLabels`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataLabels {
    #[serde(default)]
    pub train_labels: Option<Value>,
    #[serde(default)]
    pub test_labels: Option<Value>,
}

impl DataLabels {
    pub fn from_json(value: &Value) -> Result<Self> {
        from_value(value, "data")
    }
}
