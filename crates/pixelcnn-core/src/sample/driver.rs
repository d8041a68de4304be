//! The one sampling loop: rows, then pixels, then a pixel's channel passes,
//! over any `PixelSource`.
//!
//! Every sampler draws sub-pixel i of image n from the same uniform u[n, i]
//! by the same inverse CDF (`PixelDraws::pass`); what differs between them
//! is only how the network's outputs at a pixel are computed: by a full
//! forward pass (the reference) or incrementally from cached activations
//! (each architecture's plan). So fast equals reference exactly when the
//! sources agree on the outputs at every pixel, given the same values
//! written so far, and nothing else in the loop can make them differ.

use super::{BatchInputs, PixelDraws};
use crate::config::ModelConfig;
use crate::error::Result;
use tch::{Kind, Tensor};

/// How a sampler computes the network's outputs at one pixel at a time, in
/// raster order.
pub(crate) trait PixelSource {
    /// Before the first pixel of row `r`: the rows above are final, so work
    /// that reads only them can be done once for the whole row.
    fn begin_row(&mut self, r: i64) -> Result<()>;
    /// The network's outputs (B, outC) at (r, c), given every value written so
    /// far. With three channel groups it is asked once per channel pass,
    /// after the previous pass's channel was written.
    fn logits_at(&mut self, r: i64, c: i64) -> Result<Tensor>;
    /// Channel `ch` of pixel (r, c) is now `raw` (B,) (0/1 or 0–255), which
    /// the network reads as `input` (B,) (`output::network_input`).
    fn set_value(&mut self, r: i64, c: i64, ch: i64, raw: &Tensor, input: &Tensor) -> Result<()>;
}

/// Samples one batch of `batch` images from `source`; `on_row` after each
/// row (progress, cancellation). Returns (images, probabilities), each
/// (B, H·W·C), on the device of the inputs.
pub(crate) fn run(
    source: &mut dyn PixelSource,
    config: &ModelConfig,
    inputs: &BatchInputs,
    batch: i64,
    on_row: &mut dyn FnMut(i64) -> Result<()>,
) -> Result<(Tensor, Tensor)> {
    let (h, w, channels) = (config.height, config.width, config.channels);
    let options = (Kind::Float, inputs.uniforms.device());
    let pixels = Tensor::f_zeros([batch, h * w * channels], options)?;
    let probs = Tensor::f_zeros([batch, h * w * channels], options)?;
    for r in 0..h {
        source.begin_row(r)?;
        for c in 0..w {
            let mut draws = PixelDraws::new(&pixels, &probs, batch, channels)?;
            for pass in 0..config.passes_per_pixel() {
                let logits = source.logits_at(r, c)?;
                draws.pass(config, inputs, &logits, r * w + c, pass, &mut |ch, raw, input| source.set_value(r, c, ch, raw, input))?;
            }
        }
        on_row(r)?;
    }
    Ok((pixels, probs))
}
