//! The machine's ceilings as libtorch reaches them: the throughput of a large
//! square matrix product in fp32 or bf16, against which training throughput
//! (in useful FLOPs) is reported as a fraction.

use crate::config::Precision;
use crate::device::{parse_device, set_threads};
use crate::error::{Error, Result};
use serde_json::Value;
use std::time::Instant;
use tch::{Kind, Tensor};

/// GFLOP/s of an n×n by n×n product (2n³ FLOPs) in `precision` ("fp32" or
/// "bf16"), median of `repeats` after one warm-up.
pub fn matmul_gflops(n: i64, repeats: usize, threads: Option<i64>, device: &str, precision: &str) -> Result<f64> {
    set_threads(threads);
    let device = parse_device(device)?;
    // The enum's own (serde) names, as everywhere else precision is read.
    let kind = serde_json::from_value::<Precision>(Value::String(precision.to_string()))
        .ok()
        .filter(|p| *p != Precision::Auto)
        .ok_or_else(|| Error::config("precision", format!("must be \"fp32\" or \"bf16\", got {precision:?}")))?
        .kind();
    let a = Tensor::f_ones([n, n], (kind, device))?.f_mul_scalar(0.5)?;
    let b = Tensor::f_ones([n, n], (kind, device))?.f_mul_scalar(0.25)?;
    let _ = a.f_matmul(&b)?.f_sum(Kind::Float)?.f_double_value(&[])?;
    let mut seconds = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let started = Instant::now();
        // Reading one value back waits for the product (CUDA runs asynchronously).
        let _ = a.f_matmul(&b)?.f_select(0, 0)?.f_select(0, 0)?.f_double_value(&[])?;
        seconds.push(started.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    Ok(2.0 * (n as f64).powi(3) / seconds[seconds.len() / 2] / 1e9)
}
