//! How a token grid enters the network: each token t of the vocabulary owns
//! a learned row e_t of width E, and the network reads the grid (N, 1, H, W)
//! as the map (N, E, H, W) of its tokens' rows, where pixels would give their
//! scaled values. Nothing else changes: the first layer's masks exclude the
//! current position whatever the number of input channels, so causality holds
//! as for pixels, and the output is the categorical over the V tokens.
//!
//! The lookup is done in fp32 before any cast to bf16, because the tokens
//! themselves (up to 65535) are not exact in bf16; the rows then are cast
//! like any input. Stored as `embedding.weight` (V, E), the layout of
//! PyTorch's `nn.Embedding`, initialised N(0, 1) as it is.

use super::params::Params;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::rng::Rng;
use tch::{Kind, Tensor};

pub struct TokenEmbedding {
    /// (V, E)
    pub weight: Tensor,
}

impl TokenEmbedding {
    /// The embedding of a token-grid config, `None` for pixels. Its draws come
    /// from their own stream, so a network's other weights are those of the
    /// same seed without it.
    pub fn new(config: &ModelConfig, params: &mut Params, seed: u64) -> Result<Option<Self>> {
        let (Some(v), Some(e)) = (config.vocabulary, config.embedding.filter(|_| config.is_tokens())) else { return Ok(None) };
        Self::register(params, "embedding.weight", v, e, Rng::derived(seed, 0xe3b)).map(Some)
    }

    /// A token condition map's embedding, `condition_map.embedding.weight`; `None` for other models.
    pub fn for_map(config: &ModelConfig, params: &mut Params, seed: u64) -> Result<Option<Self>> {
        let Some(map) = config.condition_map.as_ref() else { return Ok(None) };
        let (Some(v), Some(e)) = (map.vocabulary, map.embedding) else { return Ok(None) };
        Self::register(params, "condition_map.embedding.weight", v, e, Rng::derived(seed, 0x3a9)).map(Some)
    }

    fn register(params: &mut Params, name: &str, v: i64, e: i64, mut rng: Rng) -> Result<Self> {
        let weight = params.add(name.into(), &[v, e], |device| {
            let values: Vec<f32> = (0..v * e).map(|_| standard_normal(&mut rng)).collect();
            Ok(Tensor::f_from_slice(&values)?.f_reshape([v, e])?.f_to_device(device)?)
        })?;
        Ok(TokenEmbedding { weight })
    }

    /// Tokens (N, 1, H, W) in any numeric kind → their rows (N, E, H, W) in fp32.
    pub fn map(&self, tokens: &Tensor) -> Result<Tensor> {
        Ok(rows(&self.weight, &tokens.f_squeeze_dim(1)?)?.f_permute([0, 3, 1, 2])?)
    }
}

/// The rows of `weight` (V, E) for `tokens` of any shape S (any numeric
/// kind, whole values): (S…, E).
pub fn rows(weight: &Tensor, tokens: &Tensor) -> Result<Tensor> {
    let index = tokens.f_to_kind(Kind::Int64)?;
    let shape = index.size();
    let flat = weight.f_index_select(0, &index.f_reshape([-1])?)?;
    let mut out = shape.clone();
    out.push(weight.size()[1]);
    Ok(flat.f_reshape(out.as_slice())?)
}

/// One N(0, 1) draw by Box–Muller from two uniforms (the first kept off 0).
fn standard_normal(rng: &mut Rng) -> f32 {
    let u1 = (rng.uniform_f32() as f64).max(1e-12);
    let u2 = rng.uniform_f32() as f64;
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// What the network reads for values just written at one position, `values`
/// (B,) raw (0/1, 0–255, or tokens): (B, k) with k = `input_width()`, the
/// embedding rows (`weight`) of tokens, or pixels' scaled values (k = 1). The
/// samplers write it into their input caches.
pub fn value_input(config: &ModelConfig, weight: Option<&Tensor>, values: &Tensor) -> Result<Tensor> {
    match weight {
        Some(w) if config.is_tokens() => rows(w, values),
        _ => Ok(crate::output::network_input(config, values)?.f_unsqueeze(-1)?),
    }
}
