//! PixelCNN on libtorch. Knows nothing of Node: the binding in
//! `crates/pixelcnn-node` only converts types and errors.

pub mod adam;
pub mod config;
pub mod device;
pub mod error;
mod json;
pub mod masked_conv;
pub mod model;
pub mod rng;

pub use error::{Error, Result};
pub mod checkpoint;
pub mod evaluate;
pub mod sample;
pub mod state;
pub mod train;
pub mod ceiling;
mod tensor_io;
pub mod diagnostics;
