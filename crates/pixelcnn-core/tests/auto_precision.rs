//! `precision: auto`, the default of every call from JSON: what it resolves
//! to per kind of work, with the bf16 detection stubbed both ways
//! (`PIXELCNN_AUTO_BF16`, process-wide: one test function in its own binary).

use pixelcnn_core::config::{EvalConfig, Precision, SampleConfig, TrainConfig};
use pixelcnn_core::precision::{native_bf16, Work};
use serde_json::json;
use tch::Device;

#[test]
fn auto_resolves_by_the_kind_of_work_and_explicit_precisions_stay() {
    let train: TrainConfig = serde_json::from_value(json!({})).unwrap();
    let eval = EvalConfig::from_json(&json!({})).unwrap();
    let sample = SampleConfig::from_json(&json!({}), None).unwrap();
    assert_eq!([train.precision, eval.precision, sample.precision], [Precision::Auto; 3]);
    let explicit: TrainConfig = serde_json::from_value(json!({ "precision": "fp32" })).unwrap();
    assert_eq!(explicit.precision, Precision::Fp32);

    if !native_bf16(Device::Cpu) {
        std::env::set_var("PIXELCNN_EMULATED_BF16", "1");
    }
    let works = [Work::Training, Work::Likelihood, Work::Prediction, Work::Sampling];
    for (stub, expected) in [
        ("0", [Precision::Fp32; 4]),
        ("1", [Precision::Bf16, Precision::Fp32, Precision::Bf16, Precision::Fp32]),
    ] {
        std::env::set_var("PIXELCNN_AUTO_BF16", stub);
        let resolved = works.map(|w| Precision::Auto.resolve(Device::Cpu, w, "precision").unwrap());
        assert_eq!(resolved, expected, "PIXELCNN_AUTO_BF16={stub}");
        for explicit in [Precision::Fp32, Precision::Bf16] {
            assert_eq!(works.map(|w| explicit.resolve(Device::Cpu, w, "precision").unwrap()), [explicit; 4]);
        }
    }
    // Without the stub, auto follows the hardware.
    std::env::remove_var("PIXELCNN_AUTO_BF16");
    let native = if native_bf16(Device::Cpu) { Precision::Bf16 } else { Precision::Fp32 };
    assert_eq!(Precision::Auto.resolve(Device::Cpu, Work::Training, "precision").unwrap(), native);
    // A measurement takes a concrete precision.
    let refused = pixelcnn_core::ceiling::matmul_gflops(16, 1, Some(1), "cpu", "auto").unwrap_err().to_string();
    assert!(refused.contains("`precision`") && refused.contains("\"auto\""), "{refused}");
}
