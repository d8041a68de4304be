//! Dropout whose masks depend only on (the step's key, the image, the layer):
//! not on the batch's split into parts or ranks, nor on any generator shared
//! between threads, so a run repeats bit for bit and a resumed run continues
//! as the uninterrupted one would.

use crate::error::Result;
use crate::rng::Rng;
use tch::{Device, Tensor};

/// The training noise of one step for the images of one forward pass.
pub struct Noise {
    /// Drawn from (seed, epoch, step) by `fit`.
    pub key: u64,
    /// Each image's index in the training set, in batch order.
    pub ids: Vec<i64>,
}

impl Noise {
    /// The noise of images `start … start + len` of this batch.
    pub fn part(&self, start: i64, len: i64) -> Noise {
        Noise { key: self.key, ids: self.ids[start as usize..(start + len) as usize].to_vec() }
    }

    /// Inverted dropout of `x` (N, C, H, W) at rate `p` in layer `layer`:
    /// each value kept with probability 1 − p and scaled by 1/(1 − p), so
    /// that the expectation is `x` and evaluation needs no rescaling.
    pub fn dropout(&self, x: &Tensor, p: f64, layer: u64) -> Result<Tensor> {
        if p <= 0.0 {
            return Ok(x.shallow_clone());
        }
        let size = x.size();
        let per_image = (size[1] * size[2] * size[3]) as usize;
        let scale = (1.0 / (1.0 - p)) as f32;
        let mut keep = Vec::with_capacity(per_image * self.ids.len());
        let layer_key = Rng::derived(self.key, layer).next_u64();
        for &id in &self.ids {
            let mut rng = Rng::derived(layer_key, id as u64);
            keep.extend((0..per_image).map(|_| if (rng.uniform_f32() as f64) < p { 0.0 } else { scale }));
        }
        let mask = Tensor::f_from_slice(&keep)?.f_reshape(size.as_slice())?;
        let mask = if x.device() == Device::Cpu { mask } else { mask.f_to_device(x.device())? };
        Ok(x.f_mul(&mask.f_to_kind(x.kind())?)?)
    }
}

/// A step's key: from the run's seed and the step's place in it.
pub fn step_key(seed: u64, epoch: i64, step: i64) -> u64 {
    Rng::derived(seed ^ 0xd20f_0a7c_5eed, ((epoch as u64) << 32) | step as u64).next_u64()
}

