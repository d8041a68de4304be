//! PixelCNN on libtorch. Knows nothing of Node: the binding in
//! `crates/pixelcnn-node` only converts types and errors.
//!
//! The parts: `model/` (what a model is), `network/` (one file per
//! architecture), `training/`, `likelihood/`, `sample/`, `io/` and
//! `runtime/`. Each module is also re-exported at the root, so that a path
//! names a module, not where it lives (`pixelcnn_core::checkpoint`).

pub mod error;
pub mod io;
pub mod likelihood;
pub mod model;
pub mod network;
pub mod runtime;
pub mod sample;
pub mod training;

pub use error::{Error, Result};
pub use io::{checkpoint, files, images, port_import, pth};
pub(crate) use io::tensor_io;
pub use likelihood::evaluate;
pub use model::{config, labels, output, parse, precision, state};
pub use runtime::{allocator, ceiling, device, diagnostics, memory, rng};
pub use training::{adam, batch_split, distributed, ema, recipes, schedule, stability, train, validation};
