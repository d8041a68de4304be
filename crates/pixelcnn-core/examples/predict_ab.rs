//! Times bf16 `predict` with the ReLUs fused into the convolutions
//! (`network/conv_relu.rs`) against the composed form, alternating in one
//! process, and prints the largest difference of their probabilities.
//!
//! usage: predict_ab [preset] [pairs] [count] [bf16|fp32]   (libtorch on the loader path)

#[path = "common/mod.rs"]
mod common;
use common::{median, model_config};

use pixelcnn_core::config::{EvalConfig, Precision};
use pixelcnn_core::evaluate::predict;
use pixelcnn_core::images::ImagesRef;
use pixelcnn_core::network::conv_relu;
use pixelcnn_core::state::ModelState;
use std::time::Instant;
use tch::Device;

fn main() -> pixelcnn_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let preset = args.get(1).map_or("seed", String::as_str);
    let pairs: usize = args.get(2).map_or(5, |s| s.parse().unwrap());
    let count: i64 = args.get(3).map_or(81, |s| s.parse().unwrap());
    let precision = if args.get(4).is_some_and(|p| p == "fp32") { Precision::Fp32 } else { Precision::Bf16 };
    pixelcnn_core::device::set_threads(None);
    let config = model_config(preset)?;
    let (h, w) = (config.height, config.width);
    let state = ModelState::new(config, Device::Cpu, 0)?;
    // Seeded binary images with about 30% ones.
    let mut x = 0x2545f491u32;
    let data: Vec<u8> = (0..count * h * w).map(|_| { x ^= x << 13; x ^= x >> 17; x ^= x << 5; u8::from(x % 10 < 3) }).collect();
    let images = ImagesRef { count, height: h, width: w, channels: 1, data: pixelcnn_core::images::Values::Bytes(&data) };
    let eval = EvalConfig { precision, ..Default::default() };
    let run = |fused: bool| -> pixelcnn_core::Result<(f64, Vec<f32>)> {
        conv_relu::set_enabled(fused);
        let t = Instant::now();
        let p = predict(&state, &images, &eval)?;
        Ok((t.elapsed().as_secs_f64(), p))
    };
    let (mut composed, mut fused) = (vec![], vec![]);
    let mut worst = 0f32;
    for i in 0..=pairs {
        let ((a, pa), (b, pb)) = (run(false)?, run(true)?);
        worst = pa.iter().zip(&pb).fold(worst, |m, (x, y)| m.max((x - y).abs()));
        if i > 0 {
            println!("composed {a:.4}s, fused {b:.4}s");
            composed.push(a);
            fused.push(b);
        }
    }
    let (a, b) = (median(&mut composed), median(&mut fused));
    println!("{preset}, {precision:?} predict of {count}: composed {a:.4}s, fused {b:.4}s (median of {pairs}): {:.2}× faster; probabilities differ by at most {worst:.2e}", a / b);
    Ok(())
}
