//! Likelihoods: per-pixel probabilities, per-image negative log-likelihoods in
//! nats, and bits per dimension (nats / (H·W·C · ln 2)), the unit of the
//! published binarized-MNIST results.

use crate::ema::AveragedWeights;
use crate::config::{EvalConfig, Precision};
use crate::device::set_threads;
use crate::error::{Error, Result};
use crate::output::nll;
use crate::precision::Work;
use crate::batch_split::map_in_parts;
use crate::images::ImagesRef;
use crate::labels;
use crate::network::Network;
use crate::state::ModelState;
use crate::tensor_io::append_to_vec;
use tch::{Kind, Reduction, Tensor};

/// Runs `f` on float batches (B, C, H, W) of a byte image tensor and their
/// labels, without gradients.
fn for_batches(images: &Tensor, labels: Option<&Tensor>, batch: i64, mut f: impl FnMut(&Tensor, Option<&Tensor>) -> Result<()>) -> Result<()> {
    let n = images.size()[0];
    tch::no_grad(|| {
        let mut start = 0;
        while start < n {
            let len = batch.min(n - start);
            let y = labels.map(|l| l.f_narrow(0, start, len)).transpose()?;
            f(&images.f_narrow(0, start, len)?.f_to_kind(Kind::Float)?, y.as_ref())?;
            start += len;
        }
        Ok(())
    })
}

/// Mean binary cross-entropy per pixel, as Keras reports `val_loss`.
pub fn mean_loss(net: &Network, images: &Tensor, labels: Option<&Tensor>, batch: i64, precision: Precision) -> Result<f64> {
    let mut total = 0.0;
    for_batches(images, labels, batch, |x, y| {
        let sums = map_in_parts(net, x, y, &|net, x, y| nll(net.config(), &net.forward(x, y, precision)?, x, Reduction::Sum)?.f_reshape([1]).map_err(Into::into))?;
        total += sums.f_sum(Kind::Double)?.f_double_value(&[])?;
        Ok(())
    })?;
    Ok(total / images.numel() as f64)
}

/// The images and their labels on the model's device, after checking both,
/// and the precision `work` runs in (`auto` resolved).
fn inputs(state: &ModelState, images: &ImagesRef, config: &EvalConfig, work: Work) -> Result<(Tensor, Option<Tensor>, Precision)> {
    set_threads(config.threads);
    let net = &state.net;
    let precision = config.precision.resolve(net.device(), work, "precision")?;
    let x = images.to_device(net.config(), net.device(), "images")?;
    let y = labels::resolve(config.labels.as_ref(), config.conditions.as_deref(), net.config(), images.count, "labels")?;
    Ok((x, labels::batch(y.as_ref(), 0, images.count, net.device())?, precision))
}

/// p(x_i = 1 | x_<i) for every pixel, N×H×W×C like the input (binary models).
pub fn predict(state: &ModelState, images: &ImagesRef, config: &EvalConfig) -> Result<Vec<f32>> {
    let _release = crate::allocator::ReleaseWhenIdle::start();
    let _weights = AveragedWeights::swap_in(state.ema.as_ref(), &state.net, config.weights)?;
    if !state.net.config().output.is_bernoulli() {
        let output = state.net.config().output.name();
        return Err(Error::config("model.output", format!("is \"{output}\": predict gives p(x = 1) of binary (bernoulli) models; use logProbs")));
    }
    let (x, y, precision) = inputs(state, images, config, Work::Prediction)?;
    let mut out = Vec::with_capacity(images.data.len());
    for_batches(&x, y.as_ref(), config.batch_size(), |x, y| {
        let p = map_in_parts(&state.net, x, y, &|net, x, y| Ok(net.forward(x, y, precision)?.f_sigmoid()?.f_permute([0, 2, 3, 1])?))?;
        append_to_vec(&mut out, &p)
    })?;
    Ok(out)
}

/// −log p(x) in nats for each image: the sum of its pixels' cross-entropies.
pub fn nats_per_image(state: &ModelState, images: &ImagesRef, config: &EvalConfig) -> Result<Vec<f64>> {
    let _release = crate::allocator::ReleaseWhenIdle::start();
    let _weights = AveragedWeights::swap_in(state.ema.as_ref(), &state.net, config.weights)?;
    let (x, y, precision) = inputs(state, images, config, Work::Likelihood)?;
    let mut out = Vec::with_capacity(images.count as usize);
    for_batches(&x, y.as_ref(), config.batch_size(), |x, y| {
        let nats = map_in_parts(&state.net, x, y, &|net, x, y| {
            let per_pixel = nll(net.config(), &net.forward(x, y, precision)?, x, Reduction::None)?;
            Ok(per_pixel.f_to_kind(Kind::Double)?.f_sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double)?)
        })?;
        append_to_vec(&mut out, &nats)
    })?;
    Ok(out)
}

/// log p(x_i | x_<i) in nats of every sub-pixel's actual value, N×H×W×C like
/// the input, for every output distribution (their sum over an image is
/// −`nats_per_image`).
pub fn log_probs(state: &ModelState, images: &ImagesRef, config: &EvalConfig) -> Result<Vec<f32>> {
    let _release = crate::allocator::ReleaseWhenIdle::start();
    let _weights = AveragedWeights::swap_in(state.ema.as_ref(), &state.net, config.weights)?;
    let (x, y, precision) = inputs(state, images, config, Work::Likelihood)?;
    let mut out = Vec::with_capacity(images.data.len());
    for_batches(&x, y.as_ref(), config.batch_size(), |x, y| {
        let log_p = map_in_parts(&state.net, x, y, &|net, x, y| {
            Ok(nll(net.config(), &net.forward(x, y, precision)?, x, Reduction::None)?.f_neg()?.f_permute([0, 2, 3, 1])?)
        })?;
        append_to_vec(&mut out, &log_p)
    })?;
    Ok(out)
}
