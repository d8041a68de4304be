//! The seed's sampler: for each pixel, one full forward pass over the whole
//! batch of images (H·W passes per image). Slow, obviously right, the oracle
//! that the fast sampler is tested against.

use super::{draw, BatchInputs};
use crate::error::Result;
use crate::network::Network;
use tch::{Kind, Tensor};

/// Returns (images, probabilities), each (B, H·W) on the device.
pub(super) fn sample_batch(net: &Network, inputs: &BatchInputs, batch: i64, on_row: &mut dyn FnMut(i64) -> Result<()>) -> Result<(Tensor, Tensor)> {
    let (h, w) = (net.config().height, net.config().width);
    let device = net.device();
    let x = Tensor::f_zeros([batch, 1, h, w], (Kind::Float, device))?; // (B, 1, H, W)
    let probs = Tensor::f_zeros([batch, h * w], (Kind::Float, device))?;
    for r in 0..h {
        for c in 0..w {
            let pos = r * w + c;
            let logits = net.forward(&x, inputs.labels.as_ref(), inputs.precision)?.f_select(3, c)?.f_select(2, r)?; // (B, outC)
            let (value, p) = draw(net.config(), inputs, &logits, pos)?;
            x.f_select(1, 0)?.f_select(1, r)?.f_select(1, c)?.f_copy_(&value)?;
            probs.f_select(1, pos)?.f_copy_(&p)?;
        }
        on_row(r)?;
    }
    Ok((x.f_reshape([batch, h * w])?, probs))
}
