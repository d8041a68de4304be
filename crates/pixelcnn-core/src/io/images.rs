//! Batches of images or token grids as they come from the user: row-major
//! N×H×W×C values, bytes for pixels, 32-bit integers for tokens.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use tch::{Device, Tensor};

/// The values of a batch: pixels as bytes (0/1, or 0–255), or a token
/// grid's tokens (0 … vocabulary − 1).
#[derive(Clone, Copy, Debug)]
pub enum Values<'a> {
    Bytes(&'a [u8]),
    Tokens(&'a [i32]),
}

impl<'a> Values<'a> {
    pub fn len(&self) -> usize {
        match self {
            Values::Bytes(b) => b.len(),
            Values::Tokens(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values `range` as f32 (exact: tokens are below 2^24).
    pub fn floats(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        match self {
            Values::Bytes(b) => b[range].iter().map(|&v| v as f32).collect(),
            Values::Tokens(t) => t[range].iter().map(|&v| v as f32).collect(),
        }
    }

    /// The whole batch as a flat tensor (uint8 or int32).
    fn tensor(&self) -> Result<Tensor> {
        Ok(match self {
            Values::Bytes(b) => Tensor::f_from_slice(b)?,
            Values::Tokens(t) => Tensor::f_from_slice(t)?,
        })
    }

    /// That the values are those of `config`'s model: bytes (0/1 for a
    /// binary model) for pixels, tokens of its vocabulary for a token grid.
    /// `what` names the argument and `unit` its values in messages.
    pub fn check(&self, config: &ModelConfig, what: &str) -> Result<()> {
        match (self, config.vocabulary) {
            (Values::Bytes(_), Some(v)) => Err(Error::InvalidData(format!(
                "{what}: the model is a token grid (vocabulary {v}): give its tokens (a TokenGrid), not image bytes"
            ))),
            (Values::Tokens(_), None) => Err(Error::InvalidData(format!(
                "{what}: the model takes images (bytes), not tokens: create it with a vocabulary for token grids"
            ))),
            (Values::Tokens(t), Some(v)) => match t.iter().position(|&x| x < 0 || x as i64 >= v) {
                Some(i) => Err(Error::InvalidData(format!("{what}: token {i} is {} but the vocabulary has {v} tokens (0 … {})", t[i], v - 1))),
                None => Ok(()),
            },
            (Values::Bytes(b), None) => {
                if !config.output.is_bernoulli() {
                    return Ok(()); // every byte is a level of an 8-bit image
                }
                match b.iter().position(|&v| v > 1) {
                    Some(i) => Err(Error::InvalidData(format!(
                        "{what}: byte {i} is {} but a binary (bernoulli) model takes only 0 and 1 (binarize first, or create a model with output: 'categorical' or 'logistic-mixture' for 8-bit images)",
                        b[i]
                    ))),
                    None => Ok(()),
                }
            }
        }
    }
}

/// A borrowed batch: row-major N×H×W×C values.
#[derive(Clone, Copy)]
pub struct ImagesRef<'a> {
    pub count: i64,
    pub height: i64,
    pub width: i64,
    pub channels: i64,
    pub data: Values<'a>,
}

impl ImagesRef<'_> {
    /// The images as a (N, C, H, W) integer tensor (uint8 for pixels, int32
    /// for tokens) on `device`, after checking that they fit `config`.
    /// Callers convert batches to float as they go.
    pub fn to_device(&self, config: &ModelConfig, device: Device, what: &str) -> Result<Tensor> {
        self.check(config, what)?;
        Ok(self
            .data
            .tensor()?
            .f_reshape([self.count, config.height, config.width, config.channels])?
            .f_permute([0, 3, 1, 2])?
            .f_contiguous()?
            .f_to_device(device)?)
    }

    /// `what` names the argument in messages (`"data.train"`, `"images"`).
    pub fn check(&self, config: &ModelConfig, what: &str) -> Result<()> {
        let noun = if config.is_tokens() { "grids" } else { "images" };
        if self.count < 1 {
            return Err(Error::InvalidData(format!("{what}: holds no {noun} (count = {})", self.count)));
        }
        if (self.height, self.width, self.channels) != (config.height, config.width, config.channels) {
            return Err(Error::InvalidData(format!(
                "{what}: {noun} are {}×{}×{} (height×width×channels) but the model expects {}×{}×{}",
                self.height, self.width, self.channels, config.height, config.width, config.channels
            )));
        }
        let expected = self.count * self.height * self.width * self.channels;
        if self.data.len() as i64 != expected {
            let unit = if matches!(self.data, Values::Tokens(_)) { "tokens" } else { "bytes" };
            return Err(Error::InvalidData(format!(
                "{what}: data has {} {unit} but count×height×width×channels = {}×{}×{}×{} = {expected}",
                self.data.len(), self.count, self.height, self.width, self.channels
            )));
        }
        self.data.check(config, what)
    }
}
