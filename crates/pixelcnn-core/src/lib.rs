//! PixelCNN on libtorch. Knows nothing of Node: the binding in
//! `crates/pixelcnn-node` only converts types and errors.

pub mod adam;
pub mod allocator;
pub mod batch_split;
pub mod ceiling;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod diagnostics;
pub mod distributed;
pub mod error;
pub mod evaluate;
pub mod files;
pub mod images;
pub mod labels;
pub mod memory;
pub mod network;
pub mod output;
pub mod parse;
pub mod port_import;
pub mod pth;
pub mod precision;
pub mod rng;
pub mod sample;
pub mod state;
mod tensor_io;
pub mod train;

pub use error::{Error, Result};
