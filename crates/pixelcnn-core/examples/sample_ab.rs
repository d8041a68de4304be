//! Times fast sampling in fp32 against bf16, alternating in one process so
//! that the machine's drift hits both alike (issue 24: bf16 sampling should
//! be at least as fast as fp32 on a CPU with native bf16).
//!
//! usage: sample_ab [preset] [pairs] [count] [only: fp32|bf16, for a profiler]   (libtorch on the loader path)

#[path = "common/mod.rs"]
mod common;
use common::{median, model_config};

use pixelcnn_core::config::{Precision, SampleConfig};
use pixelcnn_core::sample::sample;
use pixelcnn_core::state::ModelState;
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use tch::Device;

fn main() -> pixelcnn_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let preset = args.get(1).map_or("seed", String::as_str);
    let pairs: usize = args.get(2).map_or(4, |s| s.parse().unwrap());
    let count: i64 = args.get(3).map_or(81, |s| s.parse().unwrap());
    let only = args.get(4).map(String::as_str);
    pixelcnn_core::device::set_threads(None);
    let config = model_config(preset)?;
    let state = ModelState::new(config, Device::Cpu, 0)?;
    let cancel = AtomicBool::new(false);
    let run = |precision| -> pixelcnn_core::Result<f64> {
        let config = SampleConfig { count, seed: 1, precision, ..SampleConfig::default() };
        let t = Instant::now();
        sample(&state, &config, None, &cancel, &mut |_| {})?;
        Ok(t.elapsed().as_secs_f64())
    };
    let (mut fp32, mut bf16) = (vec![], vec![]);
    for i in 0..=pairs {
        let a = if only == Some("bf16") { 0.0 } else { run(Precision::Fp32)? };
        let b = if only == Some("fp32") { 0.0 } else { run(Precision::Bf16)? };
        if i > 0 {
            println!("fp32 {a:.3}s, bf16 {b:.3}s");
            fp32.push(a);
            bf16.push(b);
        }
    }
    let (a, b) = (median(&mut fp32), median(&mut bf16));
    println!("{}, {count} images: fp32 {a:.3}s, bf16 {b:.3}s (median of {pairs}); bf16 takes {:.2}× fp32's time", if preset.starts_with('{') { "that config" } else { preset }, b / a);
    Ok(())
}
