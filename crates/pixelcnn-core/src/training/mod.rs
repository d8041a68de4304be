//! Training: the loop (`train`), Adam, the batch split across cores, and
//! data-parallel groups across processes.

pub mod adam;
pub mod batch_split;
pub mod distributed;
pub mod train;
