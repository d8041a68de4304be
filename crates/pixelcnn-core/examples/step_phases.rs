//! Times the phases of one training step (forward, backward, Adam) of a
//! preset at batch 128 on random binary images: where a step's time goes.
//! STEP_THREAD=1 runs it on a spawned thread (as Node's worker threads do),
//! STEP_FIT=1 times whole `train::fit` calls of one batch instead.
//!
//! usage (libtorch's directory on the loader path):
//!   LD_LIBRARY_PATH=$(python -c "import torch,os;print(os.path.dirname(torch.__file__)+'/lib')") \
//!   cargo run --release --example step_phases -- [preset] [repeats]

use pixelcnn_core::config::{ModelConfig, Precision};
use pixelcnn_core::state::ModelState;
use pixelcnn_core::train::apply_update;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn main() -> pixelcnn_core::Result<()> {
    if std::env::var("STEP_THREAD").is_ok() {
        return std::thread::spawn(run).join().unwrap();
    }
    run()
}

fn run() -> pixelcnn_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let preset = args.get(1).map_or("gated", String::as_str);
    let repeats: usize = args.get(2).map_or(3, |s| s.parse().unwrap());
    tch::set_num_threads(2);
    tch::manual_seed(0);
    let mut state = ModelState::new(ModelConfig::preset(preset).expect("preset"), Device::Cpu, 0)?;
    if std::env::var("STEP_FIT").is_ok() {
        return through_fit(&mut state, repeats);
    }
    let x = Tensor::rand([128, 1, 28, 28], (Kind::Float, Device::Cpu)).lt(0.3).to_kind(Kind::Float);
    for i in 0..=repeats {
        let t0 = Instant::now();
        let logits = state.net.forward(&x, None, Precision::Fp32)?;
        let loss = logits.binary_cross_entropy_with_logits::<Tensor>(&x, None, None, tch::Reduction::Mean);
        let t1 = Instant::now();
        loss.backward();
        let t2 = Instant::now();
        apply_update(&mut state, 1e-3)?;
        let t3 = Instant::now();
        if i > 0 {
            println!("forward {:.3}s backward {:.3}s adam {:.3}s total {:.3}s", (t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64(), (t3 - t2).as_secs_f64(), (t3 - t0).as_secs_f64());
        }
    }
    Ok(())
}

/// The same step through `train::fit` (one epoch of one batch), as the Node API runs it.
pub fn through_fit(state: &mut ModelState, repeats: usize) -> pixelcnn_core::Result<()> {
    use pixelcnn_core::images::ImagesRef;
    use pixelcnn_core::train::{fit, Split};
    let data: Vec<u8> = (0..128 * 784).map(|i| ((i * 2654435761u64 as usize) >> 7 & 3 == 0) as u8).collect();
    let config = pixelcnn_core::config::TrainConfig::from_json(&serde_json::json!({"epochs": 1, "batchSize": 128})).unwrap();
    let cancel = std::sync::atomic::AtomicBool::new(false);
    for _ in 0..=repeats {
        let t0 = Instant::now();
        let train = Split { images: ImagesRef { count: 128, height: 28, width: 28, channels: 1, data: pixelcnn_core::images::Values::Bytes(&data) }, labels: None };
        fit(state, train, None, &config, &cancel, &mut |_| {})?;
        println!("fit {:.3}s", t0.elapsed().as_secs_f64());
    }
    Ok(())
}
