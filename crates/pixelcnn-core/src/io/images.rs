//! Batches of images as they come from the user: row-major N×H×W×C bytes.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use tch::{Device, Tensor};

/// A borrowed batch of binary images: row-major N×H×W×C bytes.
pub struct ImagesRef<'a> {
    pub count: i64,
    pub height: i64,
    pub width: i64,
    pub channels: i64,
    pub data: &'a [u8],
}

impl ImagesRef<'_> {
    /// The images as a (N, C, H, W) byte tensor on `device`, after checking
    /// that they fit `config`. Callers convert batches to float as they go.
    pub fn to_device(&self, config: &ModelConfig, device: Device, what: &str) -> Result<Tensor> {
        self.check(config, what)?;
        Ok(Tensor::f_from_slice(self.data)?
            .f_reshape([self.count, config.height, config.width, config.channels])?
            .f_permute([0, 3, 1, 2])?
            .f_contiguous()?
            .f_to_device(device)?)
    }

    /// `what` names the argument in messages (`"data.train"`, `"images"`).
    pub fn check(&self, config: &ModelConfig, what: &str) -> Result<()> {
        if self.count < 1 {
            return Err(Error::InvalidData(format!("{what}: holds no images (count = {})", self.count)));
        }
        if (self.height, self.width, self.channels) != (config.height, config.width, config.channels) {
            return Err(Error::InvalidData(format!(
                "{what}: images are {}×{}×{} (height×width×channels) but the model expects {}×{}×{}",
                self.height, self.width, self.channels, config.height, config.width, config.channels
            )));
        }
        let expected = self.count * self.height * self.width * self.channels;
        if self.data.len() as i64 != expected {
            return Err(Error::InvalidData(format!(
                "{what}: data has {} bytes but count×height×width×channels = {}×{}×{}×{} = {expected}",
                self.data.len(), self.count, self.height, self.width, self.channels
            )));
        }
        if !config.output.is_bernoulli() {
            return Ok(()); // every byte is a level of an 8-bit image
        }
        if let Some(i) = self.data.iter().position(|&v| v > 1) {
            return Err(Error::InvalidData(format!(
                "{what}: byte {i} is {} but a binary (bernoulli) model takes only 0 and 1 (binarize first, or create a model with output: 'categorical' or 'logistic-mixture' for 8-bit images)",
                self.data[i]
            )));
        }
        Ok(())
    }
}
