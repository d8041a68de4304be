//! Data parallelism across the cores of one process: on the CPU a training
//! batch is cut into parts, each part's forward and backward pass runs on a
//! thread of its own with its share of libtorch's threads, and the
//! gradients meet in the parameters.
//!
//! Why: with every core on one pass, each of a step's ~200 operations is
//! split across the cores and ends in a barrier, and the element-wise ones
//! (gates, residual sums, the split backward) cannot keep two cores busy
//! between them. Independent parts keep each core on its own images from the
//! first layer to the last. On the 2-core development machine this trained
//! the gated preset 3–12% faster at batch 128 and the seed's 13%, alternating
//! in one process (BENCHMARKS.md); on the GPU there is one part.
//!
//! The gradient is the whole batch's: part p of n_p images of a batch of N
//! back-propagates mean_p · n_p / N, and Σ_p n_p/N · ∇mean_p = ∇mean. Only
//! rounding differs from one pass (the per-part sums are added in a
//! different order). The split depends only on the batch size and the
//! thread count, so a run is as reproducible as before for a given
//! `threads`.
//!
//! Inference (`predict`, `evaluate`, `logProbs`, validation) is split the same
//! way (`map_in_parts`), each part without gradients: the per-image results
//! are the same computations on fewer images at a time. The samplers are not
//! split here (they split whole sub-batches themselves, `sample/mod.rs`), so
//! fast and reference sampling still run the same kernels.

use crate::config::Precision;
use crate::device::set_threads_of_this_thread;
use crate::error::{Error, Result};
use crate::network::dropout::Noise;
use crate::network::Network;
use crate::train::backward_share;
use tch::{Device, Tensor};

/// The smallest part. Parts of 8 still paid on the development machine (the
/// gated preset at batch 16: 1.06×); smaller ones were not measured, and
/// per-operation overhead grows as parts shrink.
pub const MIN_PART_IMAGES: i64 = 8;

/// How many parts a batch of `batch` images on `device` runs as, given
/// libtorch's current thread count: one per thread on the CPU, at most one
/// per `MIN_PART_IMAGES` images.
pub fn parts_for(device: Device, batch: i64) -> i64 {
    if device != Device::Cpu {
        return 1;
    }
    (tch::get_num_threads() as i64).min(batch / MIN_PART_IMAGES).max(1)
}

/// The network shared by the part threads.
///
/// SAFETY: the parts only read the network's tensors (each forward builds
/// its own masked weights and activations), which libtorch allows from
/// several threads, and their backward passes meet only in the parameters'
/// gradient accumulators, which libtorch serialises with a mutex per
/// parameter (`AccumulateGrad`). Nothing in `Network` mutates through `&self`.
struct SharedNetwork<'a>(&'a Network);
unsafe impl Sync for SharedNetwork<'_> {}

/// Runs `job` on `parts` consecutive slices of the batch at once, one thread
/// each (this one included), each with its share of libtorch's threads; the
/// results come back in order. `job` gets the network, a slice, its labels,
/// its weight (slice size / batch size) and where it starts in the batch.
fn in_parts<T: Send>(
    net: &Network,
    x: &Tensor,
    labels: Option<&Tensor>,
    parts: i64,
    job: &(dyn Fn(&Network, &Tensor, Option<&Tensor>, f64, i64) -> Result<T> + Sync),
) -> Result<Vec<T>> {
    let batch = x.size()[0];
    let threads = tch::get_num_threads();
    // Every part sets its share of the threads itself (see the function).
    let share = (threads as i64 / parts).max(1) as i32;
    set_threads_of_this_thread(share);
    let part_len = (batch + parts - 1) / parts;
    let slices: Vec<(Tensor, Option<Tensor>, f64, i64)> = (0..parts)
        .map(|p| {
            let start = p * part_len;
            let len = part_len.min(batch - start);
            let labels = labels.map(|l| l.f_narrow(0, start, len)).transpose()?;
            Ok((x.f_narrow(0, start, len)?, labels, len as f64 / batch as f64, start))
        })
        .collect::<Result<_>>()?;
    let shared = SharedNetwork(net);
    let shared = &shared;
    let results: Vec<Result<T>> = std::thread::scope(|scope| {
        let mut slices = slices.into_iter();
        let (x0, y0, w0, s0) = slices.next().expect("at least one part");
        let handles: Vec<_> = slices
            .map(|(x, y, w, start)| {
                scope.spawn(move || {
                    set_threads_of_this_thread(share);
                    job(shared.0, &x, y.as_ref(), w, start)
                })
            })
            .collect();
        let mut results = vec![job(net, &x0, y0.as_ref(), w0, s0)];
        for handle in handles {
            results.push(handle.join().unwrap_or_else(|_| Err(Error::Internal("a thread of the batch split panicked".into()))));
        }
        results
    });
    tch::set_num_threads(threads);
    results.into_iter().collect()
}

/// Back-propagates each of `parts` consecutive slices of the batch at once
/// (`train::backward_share`) and returns the sum of their losses: the batch's
/// mean loss, still on the device.
pub fn gradients_in_parts(net: &Network, x: &Tensor, labels: Option<&Tensor>, precision: Precision, parts: i64, noise: Option<&Noise>) -> Result<Tensor> {
    let losses = in_parts(net, x, labels, parts, &|net, x, y, weight, start| {
        let noise = noise.map(|n| n.part(start, x.size()[0]));
        backward_share(net, x, y, precision, weight, noise.as_ref())
    })?;
    Ok(Tensor::f_stack(&losses, 0)?.f_sum(tch::Kind::Float)?)
}

/// `f` (a no-grad computation whose result has the images along dimension 0)
/// on one part of the batch per thread, the results joined in order.
/// `PIXELCNN_INFERENCE_SPLIT=off` runs the whole batch on every thread instead
/// (for comparison).
pub fn map_in_parts(
    net: &Network,
    x: &Tensor,
    labels: Option<&Tensor>,
    f: &(dyn Fn(&Network, &Tensor, Option<&Tensor>) -> Result<Tensor> + Sync),
) -> Result<Tensor> {
    let parts = if std::env::var("PIXELCNN_INFERENCE_SPLIT").is_ok_and(|v| v == "off") { 1 } else { parts_for(x.device(), x.size()[0]) };
    if parts <= 1 {
        return tch::no_grad(|| f(net, x, labels));
    }
    // Grad mode is per thread: each part enters no-grad itself.
    let outputs = in_parts(net, x, labels, parts, &|net, x, y, _, _| tch::no_grad(|| f(net, x, y)))?;
    Ok(Tensor::f_cat(&outputs, 0)?)
}
