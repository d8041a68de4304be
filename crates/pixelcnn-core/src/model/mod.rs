//! What a model is: its configuration, its state (weights, optimizer,
//! history), the distribution of its outputs, labels, and the arithmetic it
//! runs in. The networks themselves are in `network/`.

pub mod config;
pub mod labels;
pub(crate) mod mixture_draw;
pub mod output;
pub mod parse;
pub mod precision;
pub mod state;
