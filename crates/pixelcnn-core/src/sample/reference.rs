//! The seed's sampler: for each pixel, one full forward pass over the whole
//! batch of images (H·W passes per image). Slow, obviously right, the oracle
//! that the fast samplers are tested against.

use super::driver::PixelSource;
use super::BatchInputs;
use crate::config::Precision;
use crate::error::Result;
use crate::network::Network;
use tch::{Kind, Tensor};

pub(super) struct Reference<'a> {
    net: &'a Network,
    labels: Option<Tensor>,
    precision: Precision,
    /// (B, C, H, W): the values drawn so far, raw (the network scales its input itself).
    x: Tensor,
}

impl<'a> Reference<'a> {
    pub(super) fn new(net: &'a Network, inputs: &BatchInputs, batch: i64) -> Result<Self> {
        let cfg = net.config();
        let x = Tensor::f_zeros([batch, cfg.channels, cfg.height, cfg.width], (Kind::Float, net.device()))?;
        let labels = inputs.labels.as_ref().map(|l| l.shallow_clone());
        Ok(Reference { net, labels, precision: inputs.precision, x })
    }
}

impl PixelSource for Reference<'_> {
    fn begin_row(&mut self, _r: i64) -> Result<()> {
        Ok(())
    }

    fn logits_at(&mut self, r: i64, c: i64) -> Result<Tensor> {
        Ok(self.net.forward(&self.x, self.labels.as_ref(), self.precision)?.f_select(3, c)?.f_select(2, r)?) // (B, outC)
    }

    fn set_value(&mut self, r: i64, c: i64, ch: i64, raw: &Tensor, _input: &Tensor) -> Result<()> {
        self.x.f_select(1, ch)?.f_select(1, r)?.f_select(1, c)?.f_copy_(raw)?;
        Ok(())
    }
}
