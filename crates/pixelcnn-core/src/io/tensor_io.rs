//! Copying tensors out of libtorch into Rust vectors.

use crate::error::Result;
use tch::{Device, Tensor};

/// Appends the values of `t` (any device, any layout) to `out`, in row-major order.
pub fn append_to_vec<T: tch::kind::Element + Default + Clone>(out: &mut Vec<T>, t: &Tensor) -> Result<()> {
    let t = t.f_to_device(Device::Cpu)?.f_contiguous()?;
    let start = out.len();
    out.resize(start + t.numel(), T::default());
    t.f_copy_data(&mut out[start..], t.numel())?;
    Ok(())
}
