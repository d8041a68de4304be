//! The fast sampler against the reference loop: same draws, same images, and
//! per-pixel probabilities within 1e-5, across architectures, batch sizes and
//! temperatures; completion keeps what is known.

mod common;
use common::*;
use pixelcnn_core::config::{ModelConfig, SampleConfig, SampleMethod};
use pixelcnn_core::sample::{sample, Completion, SampleOutput};
use pixelcnn_core::state::ModelState;
use serde_json::{json, Value};
use std::sync::atomic::AtomicBool;

fn sample_config(count: i64, batch: i64, temperature: f64, method: SampleMethod, labels: Option<Value>) -> SampleConfig {
    SampleConfig { count, seed: 11, temperature, batch_size: Some(batch), method, threads: Some(2), labels, precision: Default::default(), ..Default::default() }
}

/// Labels for a conditional model (cycling through the classes), none otherwise.
fn labels_for(state: &ModelState, count: i64) -> Option<Value> {
    state.net.config().classes.map(|k| json!((0..count).map(|i| (i * 7 + 3) % k).collect::<Vec<_>>()))
}

fn run(state: &ModelState, count: i64, batch: i64, temperature: f64, method: SampleMethod, completion: Option<&Completion>) -> SampleOutput {
    let config = sample_config(count, batch, temperature, method, labels_for(state, count));
    sample(state, &config, completion, &AtomicBool::new(false), &mut |_| {}).unwrap()
}

fn assert_same(fast: &SampleOutput, reference: &SampleOutput, what: &str) {
    let worst = fast.probabilities.iter().zip(&reference.probabilities).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1e-5, "{what}: probabilities differ by up to {worst}");
    assert_eq!(fast.images, reference.images, "{what}: images differ");
}

fn check(config: ModelConfig, cases: &[(i64, i64, f64)]) {
    let state = model(config, 2);
    randomize_class_biases(&state);
    for &(count, batch, temperature) in cases {
        let what = format!("count {count}, batch {batch}, temperature {temperature}");
        let fast = run(&state, count, batch, temperature, SampleMethod::Fast, None);
        let reference = run(&state, count, batch, temperature, SampleMethod::Reference, None);
        assert_same(&fast, &reference, &what);
        assert!(fast.images.iter().all(|&v| v <= 1), "{what}: not binary");
        let ones = fast.images.iter().filter(|&&v| v == 1).count();
        assert!(ones > 0 && ones < fast.images.len(), "{what}: degenerate samples");
    }
}

#[test]
fn fast_matches_reference_for_the_seed_preset() {
    check(ModelConfig::seed(), &[(2, 2, 1.0)]);
}

#[test]
fn fast_matches_reference_for_the_small_preset() {
    check(ModelConfig::small(), &[(3, 3, 1.0), (5, 2, 0.7), (1, 1, 1.5)]);
}

#[test]
fn fast_matches_reference_for_other_kernel_sizes() {
    check(custom_config(), &[(4, 4, 1.0), (3, 2, 0.5), (2, 1, 2.0)]);
}

#[test]
fn fast_matches_reference_when_wide_layers_run_tap_by_tap() {
    // From 32 input channels the rows-above products run tap by tap on the row window
    // (sample/fast_pixelcnn.rs); custom_config's 5×5 kernels read two rows above.
    let wide = ModelConfig { filters: 32, ..custom_config() };
    check(wide.clone(), &[(3, 2, 1.0), (2, 1, 0.5)]);
    check(conditional(wide, 3), &[(3, 3, 1.0)]);
}

#[test]
fn fast_matches_reference_for_conditional_seed_family_nets() {
    check(conditional(ModelConfig::small(), 10), &[(3, 3, 1.0), (5, 5, 0.7)]);
    check(conditional(custom_config(), 3), &[(4, 4, 1.0), (2, 1, 2.0)]);
}

#[test]
fn fast_matches_reference_for_the_gated_preset() {
    check(ModelConfig::gated(), &[(2, 2, 1.0)]);
}

#[test]
fn fast_matches_reference_for_the_conditional_gated_preset() {
    check(conditional(ModelConfig::gated(), 10), &[(1, 1, 0.8)]);
}

#[test]
fn fast_matches_reference_for_small_and_custom_gated_nets() {
    check(ModelConfig::gated_small(), &[(3, 3, 1.0), (5, 2, 0.7), (1, 1, 1.5)]);
    check(conditional(ModelConfig::gated_small(), 4), &[(4, 4, 1.0), (2, 1, 0.5)]);
    check(custom_gated_config(), &[(4, 4, 1.0), (3, 2, 0.5), (2, 1, 2.0)]);
    check(conditional(custom_gated_config(), 3), &[(5, 5, 1.0), (3, 3, 1.3)]);
}

#[test]
fn same_seed_gives_same_samples_whatever_the_batch_size() {
    let state = model(custom_config(), 4);
    let a = run(&state, 6, 6, 1.0, SampleMethod::Fast, None);
    let b = run(&state, 6, 4, 1.0, SampleMethod::Fast, None);
    assert_eq!(a.images, b.images);
    let other = sample(&state, &SampleConfig { seed: 12, ..sample_config(6, 6, 1.0, SampleMethod::Fast, None) }, None, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_ne!(a.images, other.images, "a different seed should give different images");
}

#[test]
fn completion_keeps_known_pixels_and_matches_reference() {
    for config in [custom_config(), custom_gated_config(), conditional(custom_gated_config(), 5), conditional(custom_config(), 2)] {
        completion_matches_reference(config);
    }
}

fn completion_matches_reference(config: ModelConfig) {
    let state = model(config.clone(), 6);
    randomize_class_biases(&state);
    let pixels = (config.height * config.width) as usize;
    let images = random_images(3, config.height, config.width, 0.5, 9);
    // Top four rows known, plus a scattered pixel further down.
    let mut known = vec![0u8; images.len()];
    for n in 0..3 {
        for i in 0..pixels {
            known[n * pixels + i] = (i < 4 * config.width as usize || i == pixels - 5) as u8;
        }
    }
    let done = Completion { images: pixelcnn_core::images::Values::Bytes(&images), known: &known };
    let fast = run(&state, 3, 3, 1.0, SampleMethod::Fast, Some(&done));
    let reference = run(&state, 3, 2, 1.0, SampleMethod::Reference, Some(&done));
    assert_same(&fast, &reference, "completion");
    for i in 0..images.len() {
        if known[i] == 1 {
            assert_eq!(fast.images[i], images[i], "known pixel {i} was changed");
        }
    }
}

#[test]
fn abort_stops_sampling() {
    let state = model(custom_config(), 1);
    let cancel = AtomicBool::new(false);
    let config = SampleConfig { threads: Some(1), ..sample_config(2, 2, 1.0, SampleMethod::Fast, None) };
    let mut rows = 0;
    let result = sample(&state, &config, None, &cancel, &mut |p| {
        rows = p.rows_done;
        if p.rows_done == 2 {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    assert!(matches!(result, Err(pixelcnn_core::Error::Aborted(_))));
    assert_eq!(rows, 2);
}

/// A batch of 16 or more on two threads is sampled as sub-batches on separate
/// threads: the same images and probabilities as one image at a time, and as
/// the reference sampler, for both architectures, conditional, and completion;
/// aborting stops every sub-batch.
#[test]
fn batches_split_across_threads_give_the_same_images() {
    for config in [custom_config(), conditional(custom_gated_config(), 3)] {
        let state = model(config.clone(), 5);
        randomize_class_biases(&state);
        let split = run(&state, 19, 19, 1.0, SampleMethod::Fast, None); // two sub-batches of 10 and 9
        let one_by_one = run(&state, 19, 1, 1.0, SampleMethod::Fast, None);
        assert_same(&split, &one_by_one, "split batch against one image at a time");
        let reference = run(&state, 19, 19, 1.0, SampleMethod::Reference, None);
        assert_same(&split, &reference, "split batch against the reference sampler");

        let pixels = (config.height * config.width) as usize;
        let images = random_images(17, config.height, config.width, 0.5, 3);
        let known: Vec<u8> = (0..images.len()).map(|i| (i % pixels < 3 * config.width as usize) as u8).collect();
        let done = Completion { images: pixelcnn_core::images::Values::Bytes(&images), known: &known };
        let split = run(&state, 17, 17, 1.0, SampleMethod::Fast, Some(&done));
        let one_by_one = run(&state, 17, 1, 1.0, SampleMethod::Fast, Some(&done));
        assert_same(&split, &one_by_one, "split completion against one image at a time");
    }
    let state = model(custom_config(), 1);
    let cancel = AtomicBool::new(false);
    let result = sample(&state, &sample_config(32, 32, 1.0, SampleMethod::Fast, None), None, &cancel, &mut |p| {
        if p.rows_done == 2 {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    assert!(matches!(result, Err(pixelcnn_core::Error::Aborted(_))), "expected Aborted, got {:?}", result.map(|o| o.images.len()));
}
