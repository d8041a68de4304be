//! The seed's parameter count, and causality of the whole network.

mod common;
use common::*;
use pixelcnn_core::config::ModelConfig;
use pixelcnn_core::images::ImagesRef;
use tch::{Kind, Tensor};

#[test]
fn seed_preset_has_the_seeds_532673_parameters() {
    assert_eq!(model(ModelConfig::seed(), 0).net.parameter_count(), 532_673);
}

fn logits(state: &pixelcnn_core::state::ModelState, image: &[u8]) -> Vec<f32> {
    let c = state.net.config();
    let batch = ImagesRef { count: 1, height: c.height, width: c.width, channels: 1, data: pixelcnn_core::images::Values::Bytes(image) };
    let x = batch.to_device(c, state.net.device(), "image").unwrap().to_kind(Kind::Float);
    let out: Tensor = tch::no_grad(|| state.net.forward(&x, None, Default::default()).unwrap()).reshape([-1]);
    Vec::<f32>::try_from(&out).unwrap()
}

/// Changing pixel j must leave the prediction at every i ≤ j unchanged, and
/// changing pixel i−1 must change the prediction at i when both are on one row
/// (the mask is not too strict). Across a row break, i−1 is the far right of
/// the row above, outside i's receptive field by design.
fn check_causality(config: ModelConfig) {
    let state = model(config.clone(), 3);
    let pixels = (config.height * config.width) as usize;
    for trial in 0..2 {
        let image = random_images(1, config.height, config.width, 0.4, 10 + trial);
        let base = logits(&state, &image);
        for j in 0..pixels {
            let mut changed = image.clone();
            changed[j] ^= 1;
            let after = logits(&state, &changed);
            for i in 0..=j {
                assert!(
                    (after[i] - base[i]).abs() <= 1e-5,
                    "pixel {j} changed the prediction at {i}: {} → {}", base[i], after[i]
                );
            }
            if (j + 1) % config.width as usize != 0 {
                assert!(
                    (after[j + 1] - base[j + 1]).abs() > 1e-7,
                    "pixel {j} does not reach the prediction at {}", j + 1
                );
            }
        }
    }
}

#[test]
fn small_preset_is_causal() {
    check_causality(ModelConfig { height: 12, width: 11, ..ModelConfig::small() });
    check_causality(ModelConfig { height: 7, width: 6, ..conditional(ModelConfig::small(), 3) });
}

#[test]
fn custom_kernels_are_causal() {
    check_causality(custom_config());
}

#[test]
fn seed_preset_is_causal_at_full_size() {
    let state = model(ModelConfig::seed(), 5);
    let image = random_images(1, 28, 28, 0.3, 77);
    let base = logits(&state, &image);
    // Every 13th pixel as j keeps this under a few seconds at 28×28×128.
    for j in (0..784).step_by(13) {
        let mut changed = image.clone();
        changed[j] ^= 1;
        let after = logits(&state, &changed);
        assert!((0..=j).all(|i| (after[i] - base[i]).abs() <= 1e-5), "pixel {j} leaked backwards");
        if (j + 1) % 28 != 0 {
            assert!((after[j + 1] - base[j + 1]).abs() > 1e-7, "pixel {j} does not reach {}", j + 1);
        }
    }
}

/// The split masked convolution (live taps only) computes the dense masked one.
#[test]
fn split_masked_convolution_equals_the_dense_one() {
    use pixelcnn_core::network::masked_conv::{Conv, Mask};
    use pixelcnn_core::rng::Rng;
    let mut rng = Rng::new(3);
    for (mask, k, cin, cout) in [(Mask::A, 7, 1, 8), (Mask::B, 3, 6, 4), (Mask::B, 5, 3, 5), (Mask::A, 3, 4, 2)] {
        let conv = Conv::new(&mut pixelcnn_core::network::params::Params::on(tch::Device::Cpu), "c", cin, cout, k, mask, pixelcnn_core::network::channel_groups::Groups::one(), None, &mut rng).unwrap();
        tch::no_grad(|| {
            let _ = conv.bias.shallow_clone().uniform_(-1.0, 1.0);
        });
        let x = Tensor::rand([2, cin, 9, 11], (Kind::Float, tch::Device::Cpu));
        let dense = tch::no_grad(|| conv.forward_dense(&x).unwrap());
        let split = tch::no_grad(|| conv.forward_split(&x).unwrap());
        let worst = (dense - split).abs().max().double_value(&[]);
        assert!(worst < 1e-5, "{mask:?} {k}×{k}: differs by {worst}");
    }
}

#[test]
fn parameter_shapes_match_the_allocated_network() {
    for config in [ModelConfig::seed(), ModelConfig::small(), custom_config(), conditional(custom_config(), 3), ModelConfig::gated(), custom_gated_config(), conditional(custom_gated_config(), 4)] {
        let state = model(config.clone(), 0);
        let actual: Vec<(String, Vec<i64>)> = state.net.parameters().into_iter().map(|(n, t)| (n, t.size())).collect();
        assert_eq!(actual, pixelcnn_core::network::Network::parameter_shapes(&config));
    }
}
