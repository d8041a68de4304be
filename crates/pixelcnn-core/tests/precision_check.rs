//! bf16 where the CPU has no bf16 instructions: a `DeviceUnavailable` error
//! that names the field, unless emulation is asked for. In its own test
//! binary (process), since `tests/precision.rs` sets `PIXELCNN_EMULATED_BF16`.

mod common;
use common::*;
use pixelcnn_core::config::{EvalConfig, ModelConfig, Precision};
use pixelcnn_core::evaluate::predict;
use pixelcnn_core::images::ImagesRef;
use pixelcnn_core::precision::cpu_has_native_bf16;
use pixelcnn_core::Error;

#[test]
fn bf16_runs_only_where_the_cpu_computes_it() {
    if std::env::var("PIXELCNN_EMULATED_BF16").is_ok() {
        return eprintln!("skipped: PIXELCNN_EMULATED_BF16 is set in the environment");
    }
    let state = model(ModelConfig { height: 6, width: 6, ..ModelConfig::gated_small() }, 1);
    let images = random_images(2, 6, 6, 0.4, 3);
    let batch = ImagesRef { count: 2, height: 6, width: 6, channels: 1, data: pixelcnn_core::images::Values::Bytes(&images) };
    match predict(&state, &batch, &EvalConfig { threads: Some(2), precision: Precision::Bf16, ..Default::default() }) {
        Ok(p) => assert!(cpu_has_native_bf16() && p.len() == 72),
        Err(Error::DeviceUnavailable(message)) => {
            assert!(!cpu_has_native_bf16());
            assert!(message.contains("precision") && message.contains("bf16"), "{message}");
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

