//! The process the core runs in: devices and threads, the tensor allocator,
//! memory estimates, the seeded generator, diagnostics and speed ceilings.

pub mod allocator;
pub mod ceiling;
pub mod device;
pub mod diagnostics;
pub mod memory;
pub mod rng;
