//! What keeps a run from being ruined by one bad step: the global gradient
//! norm (recorded every step), clipping to a maximum norm, and the guard that
//! skips steps whose loss or gradients are not finite.
//!
//! The global norm is ‖g‖ = √Σ_p ‖g_p‖², over every parameter's gradient, as
//! PyTorch's `clip_grad_norm_` computes it; clipping scales every gradient by
//! max/(‖g‖ + 1e-6) when ‖g‖ exceeds max, so the step keeps its direction.
//! A NaN or an infinity anywhere in the gradients makes the norm non-finite,
//! so the one reduction serves the guard as well. In a data-parallel group
//! it runs after the all-reduce, on gradients every rank holds alike: every
//! rank takes the same decision.

use crate::error::{Error, Result};
use crate::network::Network;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The default number of consecutive non-finite steps after which `fit` gives up.
pub const DEFAULT_MAX_NON_FINITE_STEPS: i64 = 5;

/// The global L2 norm of the accumulated gradients, on the device.
pub fn gradient_norm(net: &Network) -> Result<Tensor> {
    let norms = net
        .parameters()
        .iter()
        .filter_map(|(_, p)| {
            let g = p.grad();
            g.defined().then(|| g.f_to_kind(Kind::Float)?.f_norm())
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if norms.is_empty() {
        return Ok(Tensor::f_zeros([], (Kind::Float, net.device()))?);
    }
    Ok(Tensor::f_stack(&norms, 0)?.f_norm()?)
}

/// Scales the gradients so that their global norm is at most `max`.
pub fn clip_gradients(net: &Network, norm: f64, max: f64) -> Result<()> {
    if norm <= max {
        return Ok(());
    }
    let scale = max / (norm + 1e-6);
    tch::no_grad(|| -> Result<()> {
        for (_, p) in net.parameters() {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.f_mul_scalar_(scale)?;
            }
        }
        Ok(())
    })
}

/// Clears the gradients of a step that is not taken.
pub fn discard_gradients(net: &Network) -> Result<()> {
    tch::no_grad(|| -> Result<()> {
        for (_, p) in net.parameters() {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.f_zero_()?;
            }
        }
        Ok(())
    })
}

/// Counts of steps skipped for a non-finite loss or gradient: saved in the
/// checkpoint, so that a resumed run gives up where an uninterrupted one would.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedSteps {
    /// In a row, up to the last step taken.
    pub consecutive: i64,
    pub total: i64,
}

impl SkippedSteps {
    /// Records a skipped step; past `limit` in a row, the run has diverged.
    pub fn skip(&mut self, limit: i64, epoch: i64, step: i64, loss: f64, norm: f64) -> Result<()> {
        self.consecutive += 1;
        self.total += 1;
        if self.consecutive >= limit {
            return Err(Error::Diverged(format!(
                "{} steps in a row had a non-finite loss or gradient, the last at epoch {epoch}, step {step} (loss {loss}, gradient norm {norm}); none of them was taken and checkpoints saved before are intact; lower learningRate, set clipGradNorm, or train in fp32",
                self.consecutive
            )));
        }
        Ok(())
    }
}
