//! Likelihoods of images under a model: `predict`, `logProbs`, `evaluate`.

pub mod evaluate;
