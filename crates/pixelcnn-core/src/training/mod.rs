//! Training: the loop (`train`), Adam, the learning-rate schedules, the
//! moving average of the weights, the guards against bad steps, the named
//! recipes, the batch split across cores, and data-parallel groups across
//! processes.

pub mod adam;
pub mod batch_split;
pub mod distributed;
pub mod ema;
pub mod recipes;
pub mod schedule;
pub mod stability;
pub mod train;
pub mod validation;
