//! The fast sampler against the reference loop: same draws, same images, and
//! per-pixel probabilities within 1e-5, across architectures, batch sizes and
//! temperatures; completion keeps what is known.

mod common;
use common::*;
use pixelcnn_core::config::{ModelConfig, SampleConfig, SampleMethod};
use pixelcnn_core::sample::{sample, Completion, SampleOutput};
use pixelcnn_core::state::ModelState;
use std::sync::atomic::AtomicBool;

fn run(state: &ModelState, count: i64, batch: i64, temperature: f64, method: SampleMethod, completion: Option<&Completion>) -> SampleOutput {
    let config = SampleConfig { count, seed: 11, temperature, batch_size: batch, method, threads: Some(2) };
    sample(state, &config, completion, &AtomicBool::new(false), &mut |_| {}).unwrap()
}

fn assert_same(fast: &SampleOutput, reference: &SampleOutput, what: &str) {
    let worst = fast.probabilities.iter().zip(&reference.probabilities).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1e-5, "{what}: probabilities differ by up to {worst}");
    assert_eq!(fast.images, reference.images, "{what}: images differ");
}

fn check(config: ModelConfig, cases: &[(i64, i64, f64)]) {
    let state = model(config, 2);
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
fn same_seed_gives_same_samples_whatever_the_batch_size() {
    let state = model(custom_config(), 4);
    let a = run(&state, 6, 6, 1.0, SampleMethod::Fast, None);
    let b = run(&state, 6, 4, 1.0, SampleMethod::Fast, None);
    assert_eq!(a.images, b.images);
    let other = sample(&state, &SampleConfig { seed: 12, ..SampleConfig { count: 6, seed: 0, temperature: 1.0, batch_size: 6, method: SampleMethod::Fast, threads: Some(2) } }, None, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_ne!(a.images, other.images, "a different seed should give different images");
}

#[test]
fn completion_keeps_known_pixels_and_matches_reference() {
    let config = custom_config();
    let state = model(config.clone(), 6);
    let pixels = (config.height * config.width) as usize;
    let images = random_images(3, config.height, config.width, 0.5, 9);
    // Top four rows known, plus a scattered pixel further down.
    let mut known = vec![0u8; images.len()];
    for n in 0..3 {
        for i in 0..pixels {
            known[n * pixels + i] = (i < 4 * config.width as usize || i == pixels - 5) as u8;
        }
    }
    let done = Completion { images: &images, known: &known };
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
    let config = SampleConfig { count: 2, seed: 0, temperature: 1.0, batch_size: 2, method: SampleMethod::Fast, threads: Some(1) };
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
