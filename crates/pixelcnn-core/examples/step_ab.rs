//! Times two forms of a training step alternating in one process, so that
//! the machine's drift hits both alike: the batch on all threads at once
//! against the batch split in parts across the threads (`batch_split.rs`),
//! or with `gate` as the fourth argument, the composed gate against the
//! fused one (both split).
//!
//! usage: step_ab [preset] [pairs] [batch] [split|gate]   (libtorch on the loader path)

#[path = "common/mod.rs"]
mod common;
use common::{median, model_config};

use pixelcnn_core::config::Precision;
use pixelcnn_core::network::fused_gate;
use pixelcnn_core::state::ModelState;
use pixelcnn_core::train::{apply_update, backward_share, compute_gradients};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn main() -> pixelcnn_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let preset = args.get(1).map_or("gated", String::as_str);
    let pairs: usize = args.get(2).map_or(4, |s| s.parse().unwrap());
    let batch: i64 = args.get(3).map_or(128, |s| s.parse().unwrap());
    let gate = args.get(4).is_some_and(|s| s == "gate");
    let (first, second) = if gate { ("composed gate", "fused gate") } else { ("whole batch", "split batch") };
    pixelcnn_core::device::set_threads(None);
    tch::manual_seed(0);
    let config = model_config(preset)?;
    let shape = [batch, config.channels, config.height, config.width];
    let x = match config.output {
        pixelcnn_core::config::Output::Bernoulli => Tensor::rand(shape, (Kind::Float, Device::Cpu)).lt(0.3).to_kind(Kind::Float),
        _ => Tensor::randint(256, shape, (Kind::Float, Device::Cpu)),
    };
    let mut state = ModelState::new(config, Device::Cpu, 0)?;
    let parts = pixelcnn_core::batch_split::parts_for(Device::Cpu, batch);
    let (mut whole, mut split) = (vec![], vec![]);
    for i in 0..=pairs {
        let t0 = Instant::now();
        if gate {
            fused_gate::set_enabled(false);
            let _ = compute_gradients(&state.net, &x, None, Precision::Fp32, None)?;
            fused_gate::set_enabled(true);
        } else {
            let _ = backward_share(&state.net, &x, None, Precision::Fp32, 1.0, None)?;
        }
        apply_update(&mut state, 1e-4)?;
        let t1 = Instant::now();
        let _ = compute_gradients(&state.net, &x, None, Precision::Fp32, None)?;
        apply_update(&mut state, 1e-4)?;
        let t2 = Instant::now();
        if i > 0 {
            whole.push((t1 - t0).as_secs_f64());
            split.push((t2 - t1).as_secs_f64());
            println!("{first} {:.3}s, {second} {:.3}s ({parts} parts)", (t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64());
        }
    }
    let (w, s) = (median(&mut whole), median(&mut split));
    println!("{preset} batch {batch}: median {first} {w:.3}s, {second} {s:.3}s, ratio {:.3}", w / s);
    Ok(())
}
