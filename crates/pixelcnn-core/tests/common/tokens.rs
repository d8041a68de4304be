//! Helpers of the token-grid and conditioning tests: small token configs of
//! every architecture, random grids, and which positions each output reads
//! (by gradients through the embedding).

use pixelcnn_core::config::{ModelConfig, Precision};
use pixelcnn_core::images::{ImagesRef, Values};
use pixelcnn_core::network::{gated, pixelcnn, pixelcnn_pp, Network};
use pixelcnn_core::rng::Rng;
use tch::{Kind, Tensor};

/// A token-grid config of each architecture, small: V tokens, h×w.
pub fn token_configs(v: i64, h: i64, w: i64) -> Vec<ModelConfig> {
    let tokens = |c: ModelConfig| ModelConfig {
        height: h,
        width: w,
        channels: 1,
        output: pixelcnn_core::config::Output::Categorical,
        mixtures: None,
        vocabulary: Some(v),
        embedding: Some(6),
        ..c
    };
    vec![
        tokens(ModelConfig { filters: 8, residual_blocks: Some(2), input_kernel: Some(3), output_layers: Some(1), ..pixelcnn::small_preset() }),
        tokens(ModelConfig { filters: 8, layers: Some(3), output_layers: Some(1), ..gated::small_preset() }),
        tokens(ModelConfig { filters: 4, resnet_blocks: Some(1), ..pixelcnn_pp::small_preset() }),
    ]
}

pub fn random_tokens(count: usize, positions: i64, v: i64, seed: u64) -> Vec<i32> {
    let mut rng = Rng::new(seed);
    (0..count * positions as usize).map(|_| rng.below(v as usize) as i32).collect()
}

pub fn grids<'a>(tokens: &'a [i32], config: &ModelConfig) -> ImagesRef<'a> {
    let count = tokens.len() as i64 / (config.height * config.width);
    ImagesRef { count, height: config.height, width: config.width, channels: 1, data: Values::Tokens(tokens) }
}

/// Which positions each output position reads, by the gradient of its logits
/// with respect to the embedding map of random tokens (the tokens themselves
/// have no gradient): out[i][j] is true when output i depends on position j,
/// on any of three random grids (one can hide a path behind a dead ReLU).
pub fn dependencies(net: &Network, labels: Option<&Tensor>) -> Vec<Vec<bool>> {
    let mut all = dependencies_at(net, labels, 0);
    for seed in 1..3 {
        for (row, other) in all.iter_mut().zip(dependencies_at(net, labels, seed)) {
            row.iter_mut().zip(other).for_each(|(a, b)| *a |= b);
        }
    }
    all
}

fn dependencies_at(net: &Network, labels: Option<&Tensor>, seed: u64) -> Vec<Vec<bool>> {
    let c = net.config();
    let (h, w) = (c.height, c.width);
    let tokens = Tensor::from_slice(&random_tokens(1, h * w, c.vocabulary.unwrap(), seed)).reshape([1, 1, h, w]);
    let emb = net.embedding().unwrap().detach();
    let input = emb.index_select(0, &tokens.reshape([-1]).to_kind(Kind::Int64)).reshape([1, h, w, -1]).permute([0, 3, 1, 2]).contiguous();
    let input = input.set_requires_grad(true);
    let logits = net.forward_from_input(&input, labels, Precision::Fp32, None).unwrap();
    let mut table = Vec::new();
    for r in 0..h {
        for col in 0..w {
            let y = logits.select(3, col).select(2, r).sum(Kind::Float);
            let g = Tensor::run_backward(&[&y], &[&input], true, false).remove(0).abs().sum_dim_intlist([1i64].as_slice(), false, Kind::Float).reshape([-1]);
            table.push(Vec::<f32>::try_from(&g).unwrap().iter().map(|&v| v > 0.0).collect());
        }
    }
    table
}

pub fn perturb(net: &Network) {
    let mut rng = Rng::new(0x7e57);
    tch::no_grad(|| {
        for (_, p) in net.parameters() {
            let values: Vec<f32> = (0..p.numel()).map(|_| (rng.uniform_f32() - 0.5) * 0.6).collect();
            let _ = p.shallow_clone().g_add_(&Tensor::from_slice(&values).reshape(p.size()));
        }
    });
}

