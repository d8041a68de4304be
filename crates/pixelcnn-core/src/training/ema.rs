//! Polyak averaging: an exponential moving average of the weights after
//! every step, θ̄_t ∝ Σ_{i ≤ t} d^(t−i) · θ_i, with the weights of
//! the t steps since the averaging began (openai/pixel-cnn evaluates and
//! samples with such an average at d = 0.9995).
//!
//! Why debiased: TensorFlow's `ExponentialMovingAverage` starts the average at
//! the initial weights and updates θ̄ ← d·θ̄ + (1 − d)·θ, so after t steps a
//! share d^t of it is still the initial, random draw. Over the hundreds of
//! thousands of steps of a CIFAR-10 run that share vanishes; over the 710
//! steps of the demo's recipe at d = 0.999 it is 49%, and such an average
//! evaluated at 254 nats per image against the raw weights' 70 (BENCHMARKS.md).
//! Normalising by the weights' sum (1 − d^t)/(1 − d), as Adam corrects its
//! moments, leaves the initial draw out. Recursively, with t counting updates:
//!   θ̄_t = d_t · θ̄_(t−1) + (1 − d_t) · θ_t,  d_t = d · (1 − d^(t−1)) / (1 − d^t),
//! so d_1 = 0 (the average starts at the first step's weights) and d_t → d.
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
    /// Updates made so far (t above); saved with the average, so that a
    /// resumed run goes on with the same d_t.
    pub updates: i64,
}

/// The checkpoint of an average written before `updates` was saved: its
/// average began at the initial weights and was never debiased, so it goes on
/// with d_t = d, which is what a count this large gives.
pub const UPDATES_OF_AN_OLD_AVERAGE: i64 = 1 << 40;

impl Ema {
    /// Starts the average at the network's current weights.
    pub fn new(net: &Network, decay: f64) -> Result<Self> {
        let shadow = tch::no_grad(|| net.parameters().iter().map(|(_, p)| duplicate(p)).collect::<Result<Vec<_>>>())?;
        Ok(Ema { decay, shadow, updates: 0 })
    }

    /// d_t for the update that makes the count `t`.
    fn decay_at(&self, t: i64) -> f64 {
        let d = self.decay;
        d * (1.0 - d.powf((t - 1) as f64)) / (1.0 - d.powf(t as f64))
    }

    /// One step of the average towards the network's weights.
    pub fn update(&mut self, net: &Network) -> Result<()> {
        let weight = 1.0 - self.decay_at(self.updates + 1);
        tch::no_grad(|| -> Result<()> {
            for ((_, p), s) in net.parameters().iter().zip(&mut self.shadow) {
                // lerp: s + (1 − d)(θ − s) = d·s + (1 − d)·θ.
                let _ = s.f_lerp_(p, weight)?;
            }
            Ok(())
        })?;
        self.updates += 1;
        Ok(())
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
