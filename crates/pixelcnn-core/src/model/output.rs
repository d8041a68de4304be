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
//! Logistic mixture (8-bit images, PixelCNN++): the 256 levels are bins of
//! width 2/255 on [−1, 1], and p(x = k) is the mass that a mixture of K
//! logistics puts on bin k, the outermost bins reaching to ±∞ (see
//! `discretized_logistic_log_prob`). The network reads the same scaled values.
//! For colour it is PixelCNN++'s RGB mixture: one set of component weights per
//! pixel, and the means of G and B shifted linearly by the pixel's R (and G)
//! values, so one network output describes the whole pixel (`MixtureParts`).
//!
//! Colour with the per-sub-pixel outputs (Bernoulli, categorical) needs no
//! change here: the network's channel groups make channel c's outputs depend
//! on the pixel's earlier channels (`network::channel_groups`).
//!
//! A draw turns one uniform u ∈ [0, 1) per sub-pixel into a value with the
//! inverse CDF of the tempered distribution: Bernoulli x = [u < p], and for
//! the 8-bit outputs x = #{k : F(k) ≤ u} with F the cumulative probabilities
//! of the 256 levels. Both samplers use the same u, so they make the same
//! images whenever their logits agree. Temperature T means the same for every
//! output: the level probabilities become p(x)^{1/T}, renormalized (for
//! Bernoulli and categorical that is dividing the logits by T).
//!
//! PixelCNN++ samples its mixture differently (a component by the Gumbel-max
//! trick, then a continuous logistic draw rounded to the nearest level); that
//! draws from the same 256-level distribution at T = 1, with two random
//! numbers per sub-pixel instead of one. The inverse CDF keeps one, so the
//! seed → image contract of the other outputs holds for this one too.

use crate::config::{ModelConfig, Output};
use crate::error::Result;
use tch::{Kind, Reduction, Tensor};

pub(crate) const LEVELS: i64 = 256;
/// Half a bin on the [−1, 1] scale.
pub(crate) const HALF_BIN: f64 = 1.0 / (LEVELS - 1) as f64;
/// PixelCNN++ clamps log-scales from below: narrower logistics than e^−7
/// (far below one bin) only make the loss unstable.
pub(crate) const MIN_LOG_SCALE: f64 = -7.0;

/// Pixel values 0–255 → [−1, 1].
fn scaled(values: &Tensor) -> Result<Tensor> {
    Ok(values.f_mul_scalar(2.0 * HALF_BIN)?.f_sub_scalar(1.0)?)
}

/// The network's input from pixel values (N, C, H, W) (or any shape) in float.
pub fn network_input(config: &ModelConfig, values: &Tensor) -> Result<Tensor> {
    match config.output {
        Output::Bernoulli => Ok(values.shallow_clone()),
        Output::Categorical | Output::LogisticMixture => scaled(values),
    }
}

/// log P(bin of x) under a logistic of `mean` and `log_scale`, all on the
/// [−1, 1] scale and broadcast together, with PixelCNN++'s cases: the CDF
/// difference over x ± half a bin; the bin of 0 takes everything below, the
/// bin of 255 everything above; where the difference underflows (< 1e−5, far
/// in a tail or with a tiny scale) the density at x times the bin width
/// stands in for it (log pdf − log 127.5).
///
/// The published code subtracts two sigmoids, σ(plus) − σ(minus), which in
/// fp32 loses digits when both are near 1 (about 2e−5 nats off on a fresh
/// network, measured against float64). This uses the identity
///   σ(a) − σ(b) = σ(a) · σ(−b) · (1 − e^(b − a)),
///   log(…) = −softplus(−a) − softplus(b) + log(−expm1(−(a − b))),
/// where a − b = 2/(255·scale) is known exactly: no cancellation, within
/// about 1e−6 of the published formula evaluated in float64.
fn discretized_logistic_log_prob(x: &Tensor, mean: &Tensor, log_scale: &Tensor) -> Result<Tensor> {
    let centered = x.f_sub(mean)?;
    let inv_scale = log_scale.f_neg()?.f_exp()?;
    let plus_in = inv_scale.f_mul(&centered.f_add_scalar(HALF_BIN)?)?;
    let min_in = inv_scale.f_mul(&centered.f_sub_scalar(HALF_BIN)?)?;
    let log_cdf_plus = plus_in.f_neg()?.f_softplus()?.f_neg()?;
    let log_one_minus_cdf_min = min_in.f_softplus()?.f_neg()?;
    let bin_width = inv_scale.f_mul_scalar(-2.0 * HALF_BIN)?.f_expm1()?.f_neg()?.f_log()?;
    let log_delta = log_cdf_plus.f_sub(&min_in.f_softplus()?)?.f_add(&bin_width)?;
    let mid_in = inv_scale.f_mul(&centered)?;
    let log_pdf_mid = mid_in.f_sub(log_scale)?.f_sub(&mid_in.f_softplus()?.f_mul_scalar(2.0)?)?;
    let interior = log_delta.f_where_self(&log_delta.f_gt(1e-5f64.ln())?, &log_pdf_mid.f_sub_scalar(((LEVELS - 1) as f64 / 2.0).ln())?)?;
    let upper = log_one_minus_cdf_min.f_where_self(&x.f_gt(0.999)?, &interior)?;
    Ok(log_cdf_plus.f_where_self(&x.f_lt(-0.999)?, &upper)?)
}

/// The mixture's parts from the network's outputs (N, outC, …) in fp32.
struct MixtureParts {
    /// (N, K, …) log mixture weights.
    log_weights: Tensor,
    /// (N, C, K, …) means and clamped log-scales of each channel's logistics.
    means: Tensor,
    log_scales: Tensor,
    /// Colour: (N, 3, K, …) tanh coupling coefficients (G on R, B on R, B on G).
    coeffs: Option<Tensor>,
}

/// Output layout for K components and C channels: K component logits, then
/// C·K means (channel by channel), C·K log-scales and, for colour, 3·K
/// coefficients. Grayscale is the first three blocks with C = 1.
fn mixture_parts(config: &ModelConfig, out: &Tensor) -> Result<MixtureParts> {
    let (k, c) = (config.mixtures(), config.channels);
    let out = out.f_to_kind(Kind::Float)?;
    let per_channel = |start: i64| out.f_narrow(1, start, c * k)?.f_unflatten(1, [c, k]);
    Ok(MixtureParts {
        log_weights: out.f_narrow(1, 0, k)?.f_log_softmax(1, Kind::Float)?,
        means: per_channel(k)?,
        log_scales: per_channel(k + c * k)?.f_clamp_min(MIN_LOG_SCALE)?,
        coeffs: if c == 3 { Some(out.f_narrow(1, k + 2 * c * k, 3 * k)?.f_unflatten(1, [3, k])?.f_tanh()?) } else { None },
    })
}

impl MixtureParts {
    /// Channel `ch`'s means (N, K, …) given the pixel's values x (N, C, 1, …)
    /// on the [−1, 1] scale: PixelCNN++'s linear coupling, m_G = μ_G + c₀·x_R,
    /// m_B = μ_B + c₁·x_R + c₂·x_G (only earlier channels of x are read).
    fn coupled_mean(&self, ch: i64, x: &Tensor) -> Result<Tensor> {
        let mean = self.means.f_select(1, ch)?;
        let Some(coeffs) = &self.coeffs else { return Ok(mean) };
        let term = |j: i64, from: i64| -> Result<Tensor> { Ok(coeffs.f_select(1, j)?.f_mul(&x.f_select(1, from)?)?) };
        Ok(match ch {
            0 => mean,
            1 => mean.f_add(&term(0, 0)?)?,
            _ => mean.f_add(&term(1, 0)?)?.f_add(&term(2, 1)?)?,
        })
    }

    /// log P(x_ch's bin | component) (N, K, …) for each channel, coupled.
    fn channel_log_prob(&self, ch: i64, x: &Tensor) -> Result<Tensor> {
        discretized_logistic_log_prob(&x.f_select(1, ch)?, &self.coupled_mean(ch, x)?, &self.log_scales.f_select(1, ch)?)
    }
}

/// log p(x_c | x_<c of the pixel, earlier pixels) for every channel c, from
/// pixel values x (N, C, H, W) on the [−1, 1] scale: (N, C, H, W).
///
/// The joint p(pixel) = Σ_k w_k Π_c P_c(x_c | k) splits exactly into
/// conditionals: with L_c = logsumexp_k(log w_k + Σ_{c' ≤ c} log P_c'(x_c' | k)),
/// log p(x_c | x_<c) = L_c − L_{c−1} (L_{−1} = 0). For grayscale that is
/// the mixture's log-likelihood itself.
fn mixture_log_prob(config: &ModelConfig, out: &Tensor, x: &Tensor) -> Result<Tensor> {
    let running = mixture_running_log_probs(config, out, x)?;
    let mut previous: Option<Tensor> = None;
    let mut per_channel = Vec::with_capacity(config.channels as usize);
    for total in running {
        let joint = total.f_logsumexp([1i64].as_slice(), true)?; // L_c (N, 1, H, W)
        per_channel.push(match &previous {
            Some(p) => joint.f_sub(p)?,
            None => joint.shallow_clone(),
        });
        previous = Some(joint);
    }
    Ok(Tensor::f_cat(&per_channel, 1)?)
}

/// log p(pixel) (N, 1, H, W), the last L_c alone: what training's summed or
/// averaged loss needs, without the other channels' logsumexps.
fn mixture_joint_log_prob(config: &ModelConfig, out: &Tensor, x: &Tensor) -> Result<Tensor> {
    let last = mixture_running_log_probs(config, out, x)?.pop().expect("at least one channel");
    Ok(last.f_logsumexp([1i64].as_slice(), true)?)
}

/// For each channel c, log w_k + Σ_{c' ≤ c} log P_c'(x_c' | k): (N, K, H, W).
fn mixture_running_log_probs(config: &ModelConfig, out: &Tensor, x: &Tensor) -> Result<Vec<Tensor>> {
    let parts = mixture_parts(config, out)?;
    let x = x.f_unsqueeze(2)?; // (N, C, 1, H, W), against components (N, K, H, W)
    let mut running: Vec<Tensor> = Vec::with_capacity(config.channels as usize);
    for ch in 0..config.channels {
        let lp = parts.channel_log_prob(ch, &x)?;
        running.push(match running.last() {
            Some(r) => r.f_add(&lp)?,
            None => lp.f_add(&parts.log_weights)?,
        });
    }
    Ok(running)
}

/// The network's outputs at one pixel, (B, outC), readied once for drawing
/// its channels: in fp32, and for the mixture split into its parts (a colour
/// pixel draws three channels from them).
pub struct PixelOutputs {
    logits: Tensor,
    mixture: Option<MixtureParts>,
    /// Values per sub-pixel of a categorical: 256, or a token grid's vocabulary.
    levels: i64,
}

pub fn pixel_outputs(config: &ModelConfig, logits: &Tensor) -> Result<PixelOutputs> {
    let logits = logits.f_to_kind(Kind::Float)?;
    let mixture = match config.output {
        Output::LogisticMixture => Some(mixture_parts(config, &logits)?),
        _ => None,
    };
    Ok(PixelOutputs { logits, mixture, levels: config.levels() })
}

/// The tempered probabilities (B, L) of the L levels (256, or a token
/// grid's vocabulary) of sub-pixel `ch`
/// given the values of the pixel's earlier channels in `pixel` (B, C)
/// (0–255; later entries are not read): the 8-bit outputs' sampling distribution.
fn level_probabilities(outputs: &PixelOutputs, ch: i64, pixel: &Tensor, inverse_temperature: f64) -> Result<Tensor> {
    let Some(parts) = &outputs.mixture else {
        // Categorical: level k of channel c at c·L + k.
        let levels = outputs.levels;
        return Ok(outputs.logits.f_narrow(1, ch * levels, levels)?.f_log_softmax(1, Kind::Float)?.f_mul_scalar(inverse_temperature)?.f_softmax(1, Kind::Float)?);
    };
    let probs = mixture_level_probabilities(parts, ch, pixel)?;
    if inverse_temperature == 1.0 {
        return Ok(probs);
    }
    // p^(1/T), renormalized; a level of mass 0 stays at 0.
    Ok(probs.f_log()?.f_mul_scalar(inverse_temperature)?.f_softmax(1, Kind::Float)?)
}

/// The mixture's mass on each of the 256 levels of sub-pixel `ch`, as
/// differences of its CDF at the 255 edges between the bins: F(edge) =
/// Σ_k w_k σ((edge − m_k) / s_k), level 0 taking everything below the first
/// edge and level 255 everything above the last, as in the likelihood. That
/// is the same distribution as `discretized_logistic_log_prob` (whose
/// density fallback for bins under 1e−5 moves masses by less than that), for
/// a sixth of its arithmetic: the per-pixel draw is the hot path of sampling.
/// For colour the weights are the posterior given the pixel's earlier
/// channels, w_k · Π_{c' < ch} P(x_c' | k), renormalized, and the means are
/// coupled to them.
fn mixture_level_probabilities(parts: &MixtureParts, ch: i64, pixel: &Tensor) -> Result<Tensor> {
    let x = scaled(&pixel.f_to_kind(Kind::Float)?)?.f_unsqueeze(2)?; // (B, C, 1)
    let mut log_weights = parts.log_weights.shallow_clone();
    for earlier in 0..ch {
        log_weights = log_weights.f_add(&parts.channel_log_prob(earlier, &x)?)?;
    }
    let weights = log_weights.f_softmax(1, Kind::Float)?.f_unsqueeze(1)?; // (B, 1, K)
    // The edges x_k + half a bin of levels 0 … 254, on the [−1, 1] scale: (1, 1, 255).
    let device = parts.log_weights.device();
    let edges = scaled(&Tensor::f_arange(LEVELS - 1, (Kind::Float, device))?)?.f_add_scalar(HALF_BIN)?.f_view([1, 1, LEVELS - 1])?;
    let mean = parts.coupled_mean(ch, &x)?.f_unsqueeze(2)?; // (B, K, 1)
    let inv_scale = parts.log_scales.f_select(1, ch)?.f_neg()?.f_exp()?.f_unsqueeze(2)?;
    let cdf = edges.f_sub(&mean)?.f_mul(&inv_scale)?.f_sigmoid()?; // (B, K, 255)
    let at_edges = weights.f_bmm(&cdf)?.f_squeeze_dim(1)?; // (B, 255), non-decreasing
    let batch = at_edges.size()[0];
    let options = (Kind::Float, device);
    let upper = Tensor::f_cat(&[&at_edges, &Tensor::f_ones([batch, 1], options)?], 1)?;
    let lower = Tensor::f_cat(&[&Tensor::f_zeros([batch, 1], options)?, &at_edges], 1)?;
    // Rounding in the weighted sum can make a difference a hair negative.
    Ok(upper.f_sub(&lower)?.f_clamp_min(0.0)?)
}

/// Logits (N, C·L, H, W) → (N, C, L, H, W) log-probabilities of the levels.
fn level_log_probs(config: &ModelConfig, logits: &Tensor) -> Result<Tensor> {
    let s = logits.size();
    Ok(logits.f_view([s[0], config.channels, config.levels(), s[2], s[3]])?.f_log_softmax(2, Kind::Float)?)
}

/// −log p(x_i | x_<i) in nats from the network's logits (N, outC, H, W) and
/// the pixel values x (N, C, H, W) in float: per sub-pixel (`Reduction::None`),
/// summed or averaged over all of them.
pub fn nll(config: &ModelConfig, logits: &Tensor, x: &Tensor, reduction: Reduction) -> Result<Tensor> {
    let per_sub_pixel = match config.output {
        Output::Bernoulli => return Ok(logits.f_binary_cross_entropy_with_logits::<Tensor>(x, None, None, reduction)?),
        Output::Categorical => {
            let index = x.f_to_kind(Kind::Int64)?.f_unsqueeze(2)?; // (N, C, 1, H, W)
            level_log_probs(config, logits)?.f_gather(2, &index, false)?.f_squeeze_dim(2)?.f_neg()?
        }
        Output::LogisticMixture if reduction != Reduction::None => {
            // The per-channel conditionals sum to the joint: the loss needs only that.
            let total = mixture_joint_log_prob(config, logits, &scaled(x)?)?.f_sum(Kind::Float)?.f_neg()?;
            return Ok(match reduction {
                Reduction::Sum => total,
                _ => total.f_div_scalar(x.numel() as f64)?,
            });
        }
        Output::LogisticMixture => mixture_log_prob(config, logits, &scaled(x)?)?.f_neg()?,
    };
    Ok(match reduction {
        Reduction::None => per_sub_pixel,
        Reduction::Sum => per_sub_pixel.f_sum(Kind::Float)?,
        _ => per_sub_pixel.f_mean(Kind::Float)?,
    })
}

/// Sub-pixel `ch` of each image of a batch from the outputs at its pixel,
/// `pixel` (B, C) the values of the pixel so far (the mixture reads the
/// earlier channels), `u` (B,) uniforms. Returns the drawn values (B,) in
/// float, and the tempered probabilities: (B,) p(x = 1) for Bernoulli,
/// (B, L) for the others (L = `config.levels()`).
pub fn draw(config: &ModelConfig, outputs: &PixelOutputs, ch: i64, pixel: &Tensor, u: &Tensor, inverse_temperature: f64) -> Result<(Tensor, Tensor)> {
    match config.output {
        Output::Bernoulli => {
            let p = outputs.logits.f_select(1, ch)?.f_mul_scalar(inverse_temperature)?.f_sigmoid()?;
            Ok((u.f_lt_tensor(&p)?.f_to_kind(Kind::Float)?, p))
        }
        Output::Categorical | Output::LogisticMixture => {
            let probs = level_probabilities(outputs, ch, pixel, inverse_temperature)?; // (B, L)
            let below = probs.f_cumsum(1, Kind::Float)?.f_le_tensor(&u.f_unsqueeze(1)?)?; // F(k) ≤ u
            // Rounding can leave F(L − 1) a hair below 1: clamp so that u near 1 still draws the last level.
            let value = below.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?.f_clamp_max(outputs.levels as f64 - 1.0)?;
            Ok((value, probs))
        }
    }
}

/// The probability reported for a sub-pixel whose value ended as `value` (B,):
/// Bernoulli p(x = 1) whatever the value (as before outputs existed),
/// the 8-bit outputs p(x = value).
pub fn reported_probability(config: &ModelConfig, probs: &Tensor, value: &Tensor) -> Result<Tensor> {
    match config.output {
        Output::Bernoulli => Ok(probs.shallow_clone()),
        Output::Categorical | Output::LogisticMixture => Ok(probs.f_gather(1, &value.f_to_kind(Kind::Int64)?.f_unsqueeze(1)?, false)?.f_squeeze_dim(1)?),
    }
}
