//! Likelihoods: per-pixel probabilities, per-image negative log-likelihoods in
//! nats, and bits per dimension (nats / (H·W·C · ln 2)), the unit of the
//! published binarized-MNIST results.

use crate::device::set_threads;
use crate::error::Result;
use crate::model::{ImagesRef, PixelCnn};
use crate::state::ModelState;
use crate::tensor_io::append_to_vec;
use tch::{Kind, Reduction, Tensor};

/// Runs `f` on float batches (B, C, H, W) of a byte image tensor, without gradients.
fn for_batches(images: &Tensor, batch: i64, mut f: impl FnMut(&Tensor) -> Result<()>) -> Result<()> {
    let n = images.size()[0];
    tch::no_grad(|| {
        let mut start = 0;
        while start < n {
            let len = batch.min(n - start);
            f(&images.f_narrow(0, start, len)?.f_to_kind(Kind::Float)?)?;
            start += len;
        }
        Ok(())
    })
}

/// Mean binary cross-entropy per pixel, as Keras reports `val_loss`.
pub fn mean_loss(net: &PixelCnn, images: &Tensor, batch: i64) -> Result<f64> {
    let mut total = 0.0;
    for_batches(images, batch, |x| {
        let loss = net.forward(x)?.f_binary_cross_entropy_with_logits::<Tensor>(x, None, None, Reduction::Sum)?;
        total += loss.f_double_value(&[])?;
        Ok(())
    })?;
    Ok(total / images.numel() as f64)
}

/// p(x_i = 1 | x_<i) for every pixel, N×H×W×C like the input.
pub fn predict(state: &ModelState, images: &ImagesRef, batch: i64, threads: Option<i64>) -> Result<Vec<f32>> {
    set_threads(threads);
    let net = &state.net;
    let x = images.to_device(&net.config, net.device, "images")?;
    let mut out = Vec::with_capacity(images.data.len());
    for_batches(&x, batch, |x| {
        append_to_vec(&mut out, &net.forward(x)?.f_sigmoid()?.f_permute([0, 2, 3, 1])?)
    })?;
    Ok(out)
}

/// −log p(x) in nats for each image: the sum of its pixels' cross-entropies.
pub fn nats_per_image(state: &ModelState, images: &ImagesRef, batch: i64, threads: Option<i64>) -> Result<Vec<f64>> {
    set_threads(threads);
    let net = &state.net;
    let x = images.to_device(&net.config, net.device, "images")?;
    let mut out = Vec::with_capacity(images.count as usize);
    for_batches(&x, batch, |x| {
        let per_pixel = net.forward(x)?.f_binary_cross_entropy_with_logits::<Tensor>(x, None, None, Reduction::None)?;
        append_to_vec(&mut out, &per_pixel.f_to_kind(Kind::Double)?.f_sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double)?)
    })?;
    Ok(out)
}
