//! Times training steps before and after a validation pass, in one process:
//! the first step after `mean_loss` on a validation set (eval batches of
//! 500) against the steps before it (issue: the demo's first step of each
//! epoch ran several times slower than the rest).
//!
//! usage: after_validation [preset] [batch] [validation images] [rounds] [fp32|bf16]   (libtorch on the loader path)

use pixelcnn_core::config::{ModelConfig, Precision};
use pixelcnn_core::evaluate::mean_loss;
use pixelcnn_core::state::ModelState;
use pixelcnn_core::train::{apply_update, compute_gradients};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn main() -> pixelcnn_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let preset = args.get(1).map_or("seed", String::as_str);
    let batch: i64 = args.get(2).map_or(128, |s| s.parse().unwrap());
    let validation: i64 = args.get(3).map_or(1000, |s| s.parse().unwrap());
    let rounds: usize = args.get(4).map_or(2, |s| s.parse().unwrap());
    let precision = if args.get(5).is_some_and(|p| p == "bf16") { Precision::Bf16 } else { Precision::Fp32 };
    pixelcnn_core::device::set_threads(None);
    tch::manual_seed(0);
    let config = ModelConfig::preset(preset).expect("preset");
    let images = |n: i64| Tensor::rand([n, config.channels, config.height, config.width], (Kind::Float, Device::Cpu)).lt(0.3).to_kind(Kind::Uint8);
    let (x, val) = (images(batch).to_kind(Kind::Float), images(validation));
    let mut state = ModelState::new(config, Device::Cpu, 0)?;
    let step = |state: &mut ModelState| -> pixelcnn_core::Result<f64> {
        let t = Instant::now();
        let _loss = compute_gradients(&state.net, &x, None, precision, None)?;
        apply_update(state, 1e-3)?;
        Ok(t.elapsed().as_secs_f64())
    };
    for round in 0..rounds {
        let before: Vec<f64> = (0..3).map(|_| step(&mut state)).collect::<Result<_, _>>()?;
        let t = Instant::now();
        mean_loss(&state.net, &val, None, 500, precision)?;
        let validation_seconds = t.elapsed().as_secs_f64();
        let after: Vec<f64> = (0..3).map(|_| step(&mut state)).collect::<Result<_, _>>()?;
        let show = |v: &[f64]| v.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(" ");
        println!("round {round}: steps before {} s | validation {validation_seconds:.2} s | steps after {} s", show(&before), show(&after));
    }
    Ok(())
}
