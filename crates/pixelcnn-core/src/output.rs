//! The output distribution: how pixel values enter the network, the negative
//! log-likelihood of each sub-pixel given the network's outputs, and how a
//! sampler draws one.
//!
//! Bernoulli (binary images): one logit per sub-pixel, p(x = 1) = σ(logit);
//! the network reads the 0/1 values as they are.
//! Categorical (8-bit images): 256 logits per sub-pixel, p(x = k) =
//! softmax(logits)_k; the network reads values scaled to [−1, 1] (x·2/255 − 1),
//! so that inputs have the range of the binary case's and do not saturate the
//! first layer.
//!
//! A draw turns one uniform u ∈ [0, 1) per sub-pixel into a value with the
//! inverse CDF of the tempered distribution: Bernoulli x = [u < p], categorical
//! x = #{k : F(k) ≤ u} with F the cumulative probabilities. Both samplers use
//! the same u, so they make the same images whenever their logits agree.

use crate::config::{ModelConfig, Output};
use crate::error::Result;
use tch::{Kind, Reduction, Tensor};

const LEVELS: i64 = 256;

/// The network's input from pixel values (N, C, H, W) (or any shape) in float.
pub fn network_input(config: &ModelConfig, values: &Tensor) -> Result<Tensor> {
    Ok(match config.output {
        Output::Bernoulli => values.shallow_clone(),
        Output::Categorical => values.f_mul_scalar(2.0 / (LEVELS - 1) as f64)?.f_sub_scalar(1.0)?,
    })
}

/// Logits (N, C·L, H, W) → (N, C, L, H, W) log-probabilities of the levels.
fn level_log_probs(config: &ModelConfig, logits: &Tensor) -> Result<Tensor> {
    let s = logits.size();
    Ok(logits.f_to_kind(Kind::Float)?.f_view([s[0], config.channels, LEVELS, s[2], s[3]])?.f_log_softmax(2, Kind::Float)?)
}

/// −log p(x_i | x_<i) in nats from the network's logits (N, outC, H, W) and
/// the pixel values x (N, C, H, W) in float: per sub-pixel (`Reduction::None`),
/// summed or averaged over all of them.
pub fn nll(config: &ModelConfig, logits: &Tensor, x: &Tensor, reduction: Reduction) -> Result<Tensor> {
    match config.output {
        Output::Bernoulli => Ok(logits.f_binary_cross_entropy_with_logits::<Tensor>(x, None, None, reduction)?),
        Output::Categorical => {
            let index = x.f_to_kind(Kind::Int64)?.f_unsqueeze(2)?; // (N, C, 1, H, W)
            let per_sub_pixel = level_log_probs(config, logits)?.f_gather(2, &index, false)?.f_squeeze_dim(2)?.f_neg()?;
            Ok(match reduction {
                Reduction::None => per_sub_pixel,
                Reduction::Sum => per_sub_pixel.f_sum(Kind::Float)?,
                _ => per_sub_pixel.f_mean(Kind::Float)?,
            })
        }
    }
}

/// One sub-pixel of each image of a batch: `logits` (B, outC) at the pixel
/// (channel 0: the only one so far), `u` (B,) uniforms. Returns the drawn
/// values (B,) in float, and the tempered probabilities: (B,) p(x = 1) for
/// Bernoulli, (B, 256) for categorical.
pub fn draw(config: &ModelConfig, logits: &Tensor, u: &Tensor, inverse_temperature: f64) -> Result<(Tensor, Tensor)> {
    let logits = logits.f_to_kind(Kind::Float)?.f_mul_scalar(inverse_temperature)?;
    match config.output {
        Output::Bernoulli => {
            let p = logits.f_select(1, 0)?.f_sigmoid()?;
            Ok((u.f_lt_tensor(&p)?.f_to_kind(Kind::Float)?, p))
        }
        Output::Categorical => {
            let probs = logits.f_narrow(1, 0, LEVELS)?.f_softmax(1, Kind::Float)?; // (B, 256)
            let below = probs.f_cumsum(1, Kind::Float)?.f_le_tensor(&u.f_unsqueeze(1)?)?; // F(k) ≤ u
            // Rounding can leave F(255) a hair below 1: clamp so that u near 1 still draws 255.
            let value = below.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?.f_clamp_max(LEVELS as f64 - 1.0)?;
            Ok((value, probs))
        }
    }
}

/// The probability reported for a sub-pixel whose value ended as `value` (B,):
/// Bernoulli p(x = 1) whatever the value (as before outputs existed),
/// categorical p(x = value).
pub fn reported_probability(config: &ModelConfig, probs: &Tensor, value: &Tensor) -> Result<Tensor> {
    match config.output {
        Output::Bernoulli => Ok(probs.shallow_clone()),
        Output::Categorical => Ok(probs.f_gather(1, &value.f_to_kind(Kind::Int64)?.f_unsqueeze(1)?, false)?.f_squeeze_dim(1)?),
    }
}
