//! Deliberate failures, so that tests can prove the boundary holds: a Rust
//! panic and a libtorch (C++) exception must each reach JavaScript as an
//! ordinary error, never abort the process.

use crate::error::{Error, Result};
use tch::{Device, Kind, Tensor};

pub fn provoke(kind: &str) -> Result<()> {
    match kind {
        "panic" => panic!("deliberate panic for testing the boundary"),
        // Multiplying (2×3) by (4×5) throws a c10::Error inside libtorch; tch's
        // f_ functions catch it in C++ and return it as a TchError.
        "torch" => {
            let a = Tensor::f_zeros([2, 3], (Kind::Float, Device::Cpu))?;
            let b = Tensor::f_zeros([4, 5], (Kind::Float, Device::Cpu))?;
            let _product = a.f_matmul(&b)?;
            Err(Error::Internal("libtorch accepted a shape mismatch".into()))
        }
        other => Err(Error::config("kind", format!("must be \"panic\" or \"torch\", got {other:?}"))),
    }
}
