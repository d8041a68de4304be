//! Files: checkpoints, atomic writes and bounded reads, images in and out of
//! tensors, and PyTorch state dicts of the PixelCNN++ port.

pub mod checkpoint;
pub mod files;
pub mod images;
pub mod port_import;
pub mod pth;
pub(crate) mod tensor_io;
