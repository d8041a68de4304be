//! The seed's sampler: for each pixel, one full forward pass over the whole
//! batch of images (H·W passes per image). Slow, obviously right, the oracle
//! that the fast sampler is tested against.

use super::{BatchInputs, PixelDraws};
use crate::error::Result;
use crate::network::Network;
use tch::{Kind, Tensor};

/// Returns (images, probabilities), each (B, H·W·C) on the device.
pub(super) fn sample_batch(net: &Network, inputs: &BatchInputs, batch: i64, on_row: &mut dyn FnMut(i64) -> Result<()>) -> Result<(Tensor, Tensor)> {
    let cfg = net.config();
    let (h, w, channels) = (cfg.height, cfg.width, cfg.channels);
    let device = net.device();
    let x = Tensor::f_zeros([batch, channels, h, w], (Kind::Float, device))?; // (B, C, H, W) pixel values
    let pixels = Tensor::f_zeros([batch, h * w * channels], (Kind::Float, device))?;
    let probs = Tensor::f_zeros([batch, h * w * channels], (Kind::Float, device))?;
    for r in 0..h {
        for c in 0..w {
            let mut draws = PixelDraws::new(&pixels, &probs, batch, channels)?;
            for pass in 0..cfg.passes_per_pixel() {
                let logits = net.forward(&x, inputs.labels.as_ref(), inputs.precision)?.f_select(3, c)?.f_select(2, r)?; // (B, outC)
                // Raw values: the network applies its input scaling itself.
                draws.pass(cfg, inputs, &logits, r * w + c, pass, &mut |ch, value, _| {
                    x.f_select(1, ch)?.f_select(1, r)?.f_select(1, c)?.f_copy_(value)?;
                    Ok(())
                })?;
            }
        }
        on_row(r)?;
    }
    Ok((pixels, probs))
}
