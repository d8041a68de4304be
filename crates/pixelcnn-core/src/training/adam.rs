//! Adam, written out so that its state (step and both moments) can be saved in
//! a checkpoint and restored exactly: resuming continues the same trajectory.
//!
//! m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²,
//! θ ← θ − lr · (m / (1−β1^t)) / (√(v / (1−β2^t)) + ε).
//! ε = 1e-7 is Keras's default, which the seed used (PyTorch's is 1e-8).
//! With a weight decay λ the decay is decoupled from the gradient (AdamW,
//! Loshchilov & Hutter 2019, as PyTorch's `AdamW`): θ ← θ · (1 − lr·λ)
//! before the update above.

use crate::error::Result;
use tch::Tensor;

pub const BETA1: f64 = 0.9;
pub const BETA2: f64 = 0.999;
pub const EPSILON: f64 = 1e-7;

/// β1, β2, ε and the decoupled weight decay; the defaults are the seed's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamOptions {
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    pub weight_decay: f64,
}

impl Default for AdamOptions {
    fn default() -> Self {
        AdamOptions { beta1: BETA1, beta2: BETA2, epsilon: EPSILON, weight_decay: 0.0 }
    }
}

pub struct Adam {
    pub step: i64,
    /// First and second moments, one per parameter, in `PixelCnn::parameters` order.
    pub exp_avg: Vec<Tensor>,
    pub exp_avg_sq: Vec<Tensor>,
}

impl Adam {
    pub fn new(params: &[&Tensor]) -> Result<Self> {
        let zeros = |p: &&Tensor| p.f_zeros_like().map_err(Into::into);
        Ok(Adam {
            step: 0,
            exp_avg: params.iter().map(zeros).collect::<Result<_>>()?,
            exp_avg_sq: params.iter().map(zeros).collect::<Result<_>>()?,
        })
    }

    /// Applies one update from the gradients in `params`, then clears them.
    pub fn step(&mut self, params: &[&Tensor], lr: f64, options: &AdamOptions) -> Result<()> {
        let AdamOptions { beta1, beta2, epsilon, weight_decay } = *options;
        self.step += 1;
        let t = self.step as f64;
        let correction1 = 1.0 - beta1.powf(t);
        let correction2_sqrt = (1.0 - beta2.powf(t)).sqrt();
        tch::no_grad(|| -> Result<()> {
            for ((p, m), v) in params.iter().zip(&mut self.exp_avg).zip(&mut self.exp_avg_sq) {
                let mut grad = p.f_grad()?;
                if !grad.defined() {
                    continue;
                }
                let _ = m.f_lerp_(&grad, 1.0 - beta1)?;
                let _ = v.f_mul_scalar_(beta2)?;
                let _ = v.f_add_(&grad.f_square()?.f_mul_scalar(1.0 - beta2)?)?;
                let denom = v.f_sqrt()?.f_div_scalar_(correction2_sqrt)?.f_add_scalar_(epsilon)?;
                let update = m.f_div(&denom)?.f_mul_scalar_(lr / correction1)?;
                let mut param = p.shallow_clone();
                if weight_decay > 0.0 {
                    let _ = param.f_mul_scalar_(1.0 - lr * weight_decay)?;
                }
                let _ = param.f_sub_(&update)?;
                let _ = grad.f_zero_()?;
            }
            Ok(())
        })
    }
}
