//! The model family: the gated architecture's size and receptive field,
//! class conditioning, configuration errors, and checkpoints of every kind
//! (version 2, and version-1 files written before the family existed).

mod common;
use common::*;
use pixelcnn_core::checkpoint;
use pixelcnn_core::config::{EvalConfig, ModelConfig};
use pixelcnn_core::evaluate::predict;
use pixelcnn_core::images::ImagesRef;
use pixelcnn_core::state::ModelState;
use pixelcnn_core::Error;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

#[test]
fn gated_preset_has_about_the_seeds_parameter_budget() {
    let count = model(ModelConfig::gated(), 0).net.parameter_count();
    assert_eq!(count, 553_793);
    assert!((count as f64 / 532_673.0 - 1.0).abs() < 0.10);
    // The seed stays what it was, conditional or not (a class bias per conv adds classes × channels).
    assert_eq!(model(ModelConfig::seed(), 0).net.parameter_count(), 532_673);
    let per_class = 128 + 5 * (128 + 64 + 128) + 2 * 128 + 1;
    assert_eq!(model(conditional(ModelConfig::seed(), 10), 0).net.parameter_count(), 532_673 + 10 * per_class);
}

/// For each output pixel i of a 9×9 image: which input pixels j the logit at
/// i has a nonzero gradient with respect to, on any of five random inputs.
/// The inputs are continuous in [0, 1) (the dependency structure is the
/// network's, whatever the values): with binary images the first pixels have
/// so few possible contexts that a small head's ReLUs can be off on all of them.
/// Seeded, so the test is deterministic.
fn dependencies(state: &ModelState, labels: Option<&Tensor>) -> Vec<Vec<bool>> {
    let c = state.net.config();
    let n = (c.height * c.width) as usize;
    let mut deps = vec![vec![false; n]; n];
    let mut rng = pixelcnn_core::rng::Rng::new(17);
    for _ in 0..5 {
        let values: Vec<f32> = (0..n).map(|_| rng.uniform_f32()).collect();
        let x = Tensor::from_slice(&values).reshape([1, 1, c.height, c.width]).set_requires_grad(true);
        let logits = state.net.forward(&x, labels, Default::default()).unwrap().reshape([-1]);
        for (i, row) in deps.iter_mut().enumerate() {
            let grad = Tensor::run_backward(&[logits.get(i as i64)], &[&x], true, false);
            let g = Vec::<f32>::try_from(grad[0].reshape([-1])).unwrap();
            for (d, v) in row.iter_mut().zip(&g) {
                *d |= *v != 0.0;
            }
        }
    }
    deps
}

/// The gated network's logit at pixel i depends on every pixel before i in
/// raster order and on none at or after i: no blind spot.
#[test]
fn gated_network_sees_every_earlier_pixel_and_no_later_one() {
    let config = ModelConfig { height: 9, width: 9, filters: 16, layers: Some(3), input_kernel: Some(7), kernel: Some(7), output_layers: Some(1), ..ModelConfig::gated() };
    for (state, labels) in [
        (model(config.clone(), 1), None),
        (model(conditional(config.clone(), 3), 2), Some(Tensor::from_slice(&[2i64]))),
    ] {
        randomize_class_biases(&state);
        let deps = dependencies(&state, labels.as_ref());
        for (i, row) in deps.iter().enumerate() {
            for (j, &depends) in row.iter().enumerate() {
                if j < i {
                    assert!(depends, "the logit at pixel {i} does not depend on earlier pixel {j} (a blind spot)");
                } else {
                    assert!(!depends, "the logit at pixel {i} depends on pixel {j}, which is not before it");
                }
            }
        }
    }
}

/// The seed's architecture, with a receptive field that covers the image,
/// still misses pixels above and to the right: the blind spot the README names.
#[test]
fn the_seeds_architecture_has_a_blind_spot() {
    let config = ModelConfig { height: 9, width: 9, filters: 32, residual_blocks: Some(6), input_kernel: Some(3), residual_kernel: Some(3), output_layers: Some(1), ..ModelConfig::seed() };
    let deps = dependencies(&model(config, 1), None);
    // The prediction at (4, 4) sees (3, 5) and (1, 7) (up-right diagonals)
    // but not (3, 6): one row up, two columns right, inside the cone's reach.
    let at = |r: usize, c: usize| r * 9 + c;
    let i = at(4, 4);
    assert!(deps[i][at(3, 5)] && deps[i][at(1, 7)]);
    assert!(!deps[i][at(3, 6)], "expected the blind spot at (3, 6) for the prediction at (4, 4)");
    assert!((i..81).all(|j| !deps[i][j]), "causal all the same");
}

fn probabilities(state: &ModelState, images: &[u8], count: i64, labels: Option<Value>) -> pixelcnn_core::Result<Vec<f32>> {
    let c = state.net.config();
    let batch = ImagesRef { count, height: c.height, width: c.width, channels: 1, data: pixelcnn_core::images::Values::Bytes(images) };
    predict(state, &batch, &EvalConfig { threads: Some(2), labels, ..Default::default() })
}

#[test]
fn labels_condition_every_architecture_and_are_checked() {
    for config in [conditional(ModelConfig::small(), 10), conditional(ModelConfig::gated_small(), 10)] {
        let state = model(config, 3);
        randomize_class_biases(&state);
        let images = random_images(2, 28, 28, 0.3, 4);
        let three = probabilities(&state, &images, 2, Some(json!(3))).unwrap();
        let seven = probabilities(&state, &images, 2, Some(json!([7, 7]))).unwrap();
        assert_ne!(three, seven, "the label changes the model's probabilities");
        let mixed = probabilities(&state, &images, 2, Some(json!([3, 7]))).unwrap();
        let half = three.len() / 2;
        assert_eq!(&mixed[..half], &three[..half]);
        assert_eq!(&mixed[half..], &seven[half..]);

        let message = |r: pixelcnn_core::Result<Vec<f32>>| match r {
            Err(Error::InvalidConfig { field, message }) => format!("{field} {message}"),
            other => panic!("expected a config error, got {other:?}"),
        };
        assert!(message(probabilities(&state, &images, 2, None)).contains("labels is required"));
        assert!(message(probabilities(&state, &images, 2, Some(json!(10)))).contains("labels is 10 but the model has 10 classes"));
        assert!(message(probabilities(&state, &images, 2, Some(json!([1, -1])))).contains("labels[1] is -1"));
        assert!(message(probabilities(&state, &images, 2, Some(json!([1])))).contains("has 1 labels but there are 2 images"));
        assert!(message(probabilities(&state, &images, 2, Some(json!([1, "2"])))).contains("labels[1] must be an integer class, got \"2\""));
        assert!(message(probabilities(&state, &images, 2, Some(json!(1.5)))).contains("must be an integer class, got 1.5"));
    }
    let unconditional = model(ModelConfig::gated_small(), 3);
    let images = random_images(1, 28, 28, 0.3, 4);
    assert!(matches!(probabilities(&unconditional, &images, 1, Some(json!(1))), Err(Error::InvalidConfig { .. })));
}

fn config_error(value: Value) -> String {
    match ModelConfig::from_json(&value) {
        Err(Error::InvalidConfig { field, message }) => format!("{field} {message}"),
        other => panic!("expected a config error for {value}, got {other:?}"),
    }
}

#[test]
fn model_configs_resolve_presets_and_name_the_bad_field() {
    assert_eq!(ModelConfig::from_json(&json!({})).unwrap(), ModelConfig::seed());
    assert_eq!(ModelConfig::from_json(&json!({ "architecture": "gated" })).unwrap(), ModelConfig::gated());
    let custom = ModelConfig::from_json(&json!({ "architecture": "gated", "layers": 2, "filters": 12, "classes": 10 })).unwrap();
    assert_eq!((custom.layers, custom.filters, custom.classes, custom.kernel), (Some(2), 12, Some(10), Some(3)));
    assert!(config_error(json!({ "architecture": "transformer" })).starts_with("model.architecture "));
    assert!(config_error(json!({ "architecture": "gated", "layers": 0 })).starts_with("model.layers must be between 1 and 64, got 0"));
    assert!(config_error(json!({ "classes": 1 })).starts_with("model.classes must be between 2"));
    assert!(config_error(json!({ "filters": 2.5 })).starts_with("model.filters must be an integer, got 2.5"));
    assert!(config_error(json!({ "filtres": 64 })).starts_with("model.filtres is not a known option (known: architecture, height"));
    assert!(config_error(json!({ "architecture": "gated", "residualBlocks": 3 })).starts_with("model.residualBlocks does not apply to architecture 'gated'"));
    assert!(config_error(json!({ "layers": 3 })).starts_with("model.layers does not apply to architecture 'pixelcnn'"));
    assert!(config_error(json!({ "preset": "gated", "architecture": "pixelcnn" })).starts_with("model.architecture "));
    assert!(config_error(json!({ "preset": "huge" })).starts_with("model.preset must be one of seed, small, gated, gated-small"));
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pixelcnn-family-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn gated_conditional_checkpoints_round_trip_with_format_version_2() {
    let dir = temp_dir("v2");
    let path = dir.join("gated.safetensors");
    let state = model(conditional(custom_gated_config(), 4), 9);
    randomize_class_biases(&state);
    checkpoint::save(&state, &path).unwrap();
    let loaded = checkpoint::load(&path, Device::Cpu).unwrap();
    assert_eq!(loaded.net.config(), state.net.config());
    let images = random_images(3, 9, 7, 0.4, 1);
    let labels = Some(json!([0, 3, 1]));
    assert_eq!(probabilities(&loaded, &images, 3, labels.clone()).unwrap(), probabilities(&state, &images, 3, labels).unwrap());
    let (_, header) = safetensors::SafeTensors::read_metadata(&std::fs::read(&path).unwrap()).unwrap();
    let metadata = header.metadata().as_ref().unwrap();
    assert_eq!(metadata["format_version"], "2");
    let config: Value = serde_json::from_str(&metadata["config"]).unwrap();
    assert_eq!((config["architecture"].as_str(), config["classes"].as_i64()), (Some("gated"), Some(4)));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rewrites a checkpoint's metadata (and optionally drops tensors) through safetensors itself.
fn rewrite(from: &Path, to: &Path, edit: impl Fn(&mut std::collections::HashMap<String, String>)) {
    let bytes = std::fs::read(from).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap();
    edit(&mut metadata);
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = file.tensors();
    std::fs::write(to, safetensors::tensor::serialize(tensors, Some(metadata)).unwrap()).unwrap();
}

#[test]
fn a_checkpoint_whose_config_does_not_match_its_tensors_is_refused() {
    let dir = temp_dir("mismatch");
    let gated = dir.join("gated.safetensors");
    checkpoint::save(&model(custom_gated_config(), 1), &gated).unwrap();
    let refused = |edit: &dyn Fn(&mut std::collections::HashMap<String, String>), expect: &str| {
        let bad = dir.join("bad.safetensors");
        rewrite(&gated, &bad, edit);
        match checkpoint::load(&bad, Device::Cpu) {
            Err(Error::Checkpoint { message, .. }) => assert!(message.contains(expect), "{message}"),
            Err(other) => panic!("expected a checkpoint error, got {other:?}"),
            Ok(_) => panic!("a mismatched checkpoint loaded"),
        }
    };
    // Claims the seed's architecture: its tensors are not there.
    let seed_like = serde_json::to_string(&custom_config()).unwrap();
    refused(&|m| { m.insert("config".into(), seed_like.clone()); }, "tensor `input_conv.weight` is missing");
    // Claims classes it has no biases for.
    let with_classes = serde_json::to_string(&conditional(custom_gated_config(), 3)).unwrap();
    refused(&|m| { m.insert("config".into(), with_classes.clone()); }, "v_class_bias` is missing");
    // Claims fewer layers: the extra tensors are refused, not ignored.
    let fewer = serde_json::to_string(&pixelcnn_core::config::ModelConfig { layers: Some(2), ..custom_gated_config() }).unwrap();
    refused(&|m| { m.insert("config".into(), fewer.clone()); }, "tensor `layers.2.");
    // An old file never loads as another architecture.
    let as_v1 = serde_json::to_string(&custom_gated_config()).unwrap();
    refused(&|m| { m.insert("format_version".into(), "1".into()); m.insert("config".into(), as_v1.clone()); }, "which version-1 files do not have");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A checkpoint written by the library before the model family (format
/// version 1, kept in tests/fixtures with the probabilities that version
/// computed) loads as the seed's architecture and predicts the same.
#[test]
fn version_1_checkpoints_still_load_and_predict_the_same() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let state = checkpoint::load(&fixtures.join("v1-pixelcnn.safetensors"), Device::Cpu).unwrap();
    let c = state.net.config();
    assert_eq!((c.architecture, c.classes, c.residual_blocks), (Default::default(), None, Some(1)));
    assert_eq!(state.history.len(), 1);
    assert!(state.optimizer.is_some());
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(fixtures.join("v1-pixelcnn.expected.json")).unwrap()).unwrap();
    let images: Vec<u8> = expected["images"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
    let want: Vec<f64> = expected["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let got = probabilities(&state, &images, 2, None).unwrap();
    let worst = got.iter().zip(&want).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-6, "version-1 probabilities differ by {worst}");
}

/// The seed's family is what it was before the model family, bit for bit:
/// the same config and seed give exactly the initial weights the earlier
/// library saved (tests/fixtures/v1-pixelcnn-init.safetensors), and the same
/// training run gives the probabilities it computed after training.
#[test]
fn the_seeds_family_initialises_and_trains_exactly_as_before() {
    use pixelcnn_core::config::TrainConfig;
    use pixelcnn_core::train::{fit, Split};
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let before = checkpoint::load(&fixtures.join("v1-pixelcnn-init.safetensors"), Device::Cpu).unwrap();
    let config = before.net.config().clone();
    tch::set_num_threads(1);
    let mut now = ModelState::new(config.clone(), Device::Cpu, 3).unwrap();
    for ((name, a), (_, b)) in before.net.parameters().into_iter().zip(now.net.parameters()) {
        assert!(a.equal(b), "initial `{name}` differs from the earlier library's");
    }
    // The fixture's run: 8 seeded images, batch 4, one epoch, learning rate 1e-2, seed 1, one thread.
    let mut rng = pixelcnn_core::rng::Rng::new(5);
    let train: Vec<u8> = (0..8 * 30).map(|_| (rng.uniform_f32() < 0.4) as u8).collect();
    let images = ImagesRef { count: 8, height: 6, width: 5, channels: 1, data: pixelcnn_core::images::Values::Bytes(&train) };
    let run = TrainConfig { epochs: 1, batch_size: 4, learning_rate: 1e-2, seed: 1, threads: Some(1), eval_batch_size: 8, checkpoint: None, precision: Default::default(), distributed: None, ..Default::default() };
    fit(&mut now, Split { images: ImagesRef { ..images }, labels: None }, Some(Split { images, labels: None }), &run, &std::sync::atomic::AtomicBool::new(false), &mut |_| {}).unwrap();
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(fixtures.join("v1-pixelcnn.expected.json")).unwrap()).unwrap();
    let want: Vec<f64> = expected["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let got = predict(&now, &ImagesRef { count: 2, height: 6, width: 5, channels: 1, data: pixelcnn_core::images::Values::Bytes(&train[..60]) }, &EvalConfig { threads: Some(1), batch_size: Some(8), ..Default::default() }).unwrap();
    // The fixture holds f32 values printed in their shortest form, computed on
    // an AVX2 CPU: there they are reproduced exactly. MKL and oneDNN pick
    // their kernels by instruction set, and on an AVX-512 CPU (measured on a
    // Xeon with AVX-512 and AMX) the same run differs by a few ulps (at most
    // 1.2e-7 here), so elsewhere the test allows 1e-6.
    let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    eprintln!("largest difference from the earlier library's probabilities: {worst:e}");
    assert_eq!(got.len(), want.len());
    if cpu_is_avx2_only() {
        assert_eq!(got, want, "after the same training, the probabilities differ from the earlier library's");
    } else {
        assert!(worst <= 1e-6, "after the same training, the probabilities differ from the earlier library's by {worst}");
    }
}

/// Whether the CPU has AVX2 but no AVX-512 (the fixtures' machine).
fn cpu_is_avx2_only() -> bool {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> = info.lines().find(|l| l.starts_with("flags")).map(|l| l.split_whitespace().collect()).unwrap_or_default();
    flags.contains(&"avx2") && !flags.contains(&"avx512f")
}
