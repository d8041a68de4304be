//! Polyak averaging: an exponential moving average of the weights,
//! θ̄ ← d · θ̄ + (1 − d) · θ after every step, started at the weights the
//! averaging began with (as TensorFlow's `ExponentialMovingAverage`, which
//! openai/pixel-cnn evaluates and samples with at d = 0.9995).
//!
//! The average lives beside the network, one tensor per parameter in
//! `Network::parameters` order. Evaluation and sampling compute with it by
//! swapping it into the parameters for the call (`AveragedWeights`), so each
//! architecture's forward passes and samplers need no second set of weights;
//! the swap is undone when the guard drops, also on an error.

use crate::error::Result;
use crate::network::Network;
use tch::Tensor;

pub struct Ema {
    pub decay: f64,
    pub shadow: Vec<Tensor>,
}

impl Ema {
    /// Starts the average at the network's current weights.
    pub fn new(net: &Network, decay: f64) -> Result<Self> {
        let shadow = tch::no_grad(|| net.parameters().iter().map(|(_, p)| duplicate(p)).collect::<Result<Vec<_>>>())?;
        Ok(Ema { decay, shadow })
    }

    /// One step of the average towards the network's weights.
    pub fn update(&mut self, net: &Network) -> Result<()> {
        let weight = 1.0 - self.decay;
        tch::no_grad(|| -> Result<()> {
            for ((_, p), s) in net.parameters().iter().zip(&mut self.shadow) {
                // lerp: s + (1 − d)(θ − s) = d·s + (1 − d)·θ.
                let _ = s.f_lerp_(p, weight)?;
            }
            Ok(())
        })
    }
}

/// A detached copy of `t` in new memory.
fn duplicate(t: &Tensor) -> Result<Tensor> {
    let mut copy = t.f_detach()?.f_zeros_like()?;
    copy.f_copy_(t)?;
    Ok(copy)
}

/// Which weights a call computes with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Weights {
    /// The moving average when the model keeps one, else the raw weights.
    #[default]
    Averaged,
    /// The weights training last wrote.
    Raw,
}

/// While alive, the network computes with the average (when there is one and
/// it was asked for); dropping it puts the raw weights back. The raw weights
/// are copied aside up front, so that putting them back only copies into
/// memory that exists: it cannot fail for want of memory in `drop`.
pub struct AveragedWeights<'a> {
    swapped: Option<(&'a Network, Vec<Tensor>)>,
}

impl<'a> AveragedWeights<'a> {
    pub fn swap_in(ema: Option<&Ema>, net: &'a Network, which: Weights) -> Result<Self> {
        let Some(ema) = ema.filter(|_| which == Weights::Averaged) else { return Ok(AveragedWeights { swapped: None }) };
        tch::no_grad(|| -> Result<Self> {
            let params = net.parameters();
            let raw = params.iter().map(|(_, p)| duplicate(p)).collect::<Result<Vec<_>>>()?;
            for ((_, p), s) in params.iter().zip(&ema.shadow) {
                p.shallow_clone().f_copy_(s)?;
            }
            Ok(AveragedWeights { swapped: Some((net, raw)) })
        })
    }
}

impl Drop for AveragedWeights<'_> {
    fn drop(&mut self) {
        if let Some((net, raw)) = self.swapped.take() {
            tch::no_grad(|| {
                for ((_, p), r) in net.parameters().iter().zip(&raw) {
                    let _ = p.shallow_clone().f_copy_(r);
                }
            });
        }
    }
}
