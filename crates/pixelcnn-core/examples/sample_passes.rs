//! The fast sampler's time in forward passes: sampling COUNT images against
//! `log_probs` of COUNT images (one forward pass), alternating in one process.
//! The sampling goals of issues 22 and 24 are stated in these units.
//!
//! usage: sample_passes [preset | config JSON] [rounds] [count] [fp32|bf16] [sample-only|forward-only: for a profiler] [batch size]   (libtorch on the loader path)

#[path = "common/mod.rs"]
mod common;
use common::{median, model_config};

use pixelcnn_core::config::{EvalConfig, Precision, SampleConfig};
use pixelcnn_core::evaluate::log_probs;
use pixelcnn_core::images::ImagesRef;
use pixelcnn_core::sample::sample;
use pixelcnn_core::state::ModelState;
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use tch::Device;

fn main() -> pixelcnn_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let preset = args.get(1).map_or("pixelcnn++-small", String::as_str);
    let rounds: usize = args.get(2).map_or(3, |s| s.parse().unwrap());
    let count: i64 = args.get(3).map_or(64, |s| s.parse().unwrap());
    let precision = if args.get(4).is_some_and(|p| p == "bf16") { Precision::Bf16 } else { Precision::Fp32 };
    let only = args.get(5).map(String::as_str);
    let batch_size: Option<i64> = args.get(6).map(|s| s.parse().unwrap());
    let (sample_only, forward_only) = (only == Some("sample-only"), only == Some("forward-only"));
    pixelcnn_core::device::set_threads(None);
    let config = model_config(preset)?;
    let (h, w, c) = (config.height, config.width, config.channels);
    let levels = if config.output == pixelcnn_core::config::Output::Bernoulli { 2 } else { config.levels() };
    let state = ModelState::new(config, Device::Cpu, 0)?;
    let mut x = 0x2545f491u32;
    let data: Vec<u8> = (0..count * h * w * c).map(|_| { x ^= x << 13; x ^= x >> 17; x ^= x << 5; (x % levels as u32) as u8 }).collect();
    let images = ImagesRef { count, height: h, width: w, channels: c, data: pixelcnn_core::images::Values::Bytes(&data) };
    let cancel = AtomicBool::new(false);
    let (mut forward, mut fast) = (vec![], vec![]);
    for i in 0..=rounds {
        let t = Instant::now();
        if !sample_only {
            log_probs(&state, &images, &EvalConfig { precision, ..Default::default() })?;
        }
        let a = t.elapsed().as_secs_f64();
        let t = Instant::now();
        if !forward_only {
            sample(&state, &SampleConfig { count, seed: 1, precision, batch_size, ..SampleConfig::default() }, None, &cancel, &mut |_| {})?;
        }
        let b = t.elapsed().as_secs_f64();
        if i > 0 {
            println!("forward {a:.3}s, fast sampling {b:.3}s");
            forward.push(a);
            fast.push(b);
        }
    }
    let (a, b) = (median(&mut forward), median(&mut fast));
    println!("{preset}, {precision:?}, {count} images: forward {a:.3}s, fast sampling {b:.3}s (medians of {rounds}) = {:.2} forward passes", b / a);
    Ok(())
}
