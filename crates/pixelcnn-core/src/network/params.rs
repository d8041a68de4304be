//! The one place a network's parameters are made. Each layer asks for its
//! tensors by name as the network is built; `Network::parameters()`, the
//! checkpoint's tensor names and the shape-only `parameter_shapes()` (which
//! checks a checkpoint's claims, and estimates memory, before anything is
//! allocated) all come from that single description, as candle's
//! `VarBuilder` or tch's `nn::Path` do for their networks.

use crate::error::{Error, Result};
use tch::{Device, Tensor};

pub struct Params {
    device: Device,
    /// False: record names and shapes only; no initialiser runs.
    allocate: bool,
    entries: Vec<(String, Vec<i64>, Tensor)>,
}

impl Params {
    /// Parameters on `device`, each initialised as it is asked for.
    pub fn on(device: Device) -> Self {
        Params { device, allocate: true, entries: Vec::new() }
    }

    /// Names and shapes only: the tensors handed out are undefined, and
    /// nothing is allocated or drawn.
    pub fn shapes_only() -> Self {
        Params { device: Device::Cpu, allocate: false, entries: Vec::new() }
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Whether tensors are really made (layers skip their other buffers, the
    /// masks, when not).
    pub fn allocating(&self) -> bool {
        self.allocate
    }

    /// A trainable tensor `name` of `shape`, made by `init` (not called in
    /// shape-only mode). Names must be unique: they are the checkpoint's keys.
    pub fn add(&mut self, name: String, shape: &[i64], init: impl FnOnce(Device) -> Result<Tensor>) -> Result<Tensor> {
        if self.entries.iter().any(|(n, _, _)| *n == name) {
            return Err(Error::Internal(format!("parameter {name} is registered twice")));
        }
        let tensor = if self.allocate {
            let t = init(self.device)?;
            if t.size() != shape {
                return Err(Error::Internal(format!("parameter {name} was made with shape {:?}, registered as {shape:?}", t.size())));
            }
            t.set_requires_grad(true)
        } else {
            Tensor::new()
        };
        self.entries.push((name, shape.to_vec(), tensor.shallow_clone()));
        Ok(tensor)
    }

    /// A zero-initialised parameter.
    pub fn zeros(&mut self, name: String, shape: &[i64]) -> Result<Tensor> {
        self.add(name, shape, |device| Ok(Tensor::f_zeros(shape, (tch::Kind::Float, device))?))
    }

    /// Every parameter with its name, in the order they were asked for.
    pub fn into_list(self) -> Vec<(String, Tensor)> {
        self.entries.into_iter().map(|(name, _, t)| (name, t)).collect()
    }

    pub fn into_shapes(self) -> Vec<(String, Vec<i64>)> {
        self.entries.into_iter().map(|(name, shape, _)| (name, shape)).collect()
    }
}
