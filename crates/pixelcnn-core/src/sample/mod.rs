//! Sampling in raster order, and completion of partly known images.
//!
//! Both samplers draw sub-pixel i of image n (raster order over pixels, then
//! R → G → B within a colour pixel) from one uniform u[n, i] by the inverse
//! CDF of the model's tempered p(x_i | x_<i) (`output::draw`), where u[n, ·]
//! comes from a generator seeded by (seed, n). So the same seed gives the
//! same images whatever the batch size, and the two samplers, given the same
//! draws, make the same images whenever their probabilities agree.
//!
//! A colour model with three channel groups needs one network pass per
//! sub-pixel (G's outputs depend on the drawn R); the mixture draws a whole
//! pixel's channels from one pass (`pass_channels`).

mod driver;
mod fast_gated;
mod fast_pixelcnn;
mod fast_pixelcnn_pp;
mod kinds;
mod reference;
mod window;

use crate::config::{ModelConfig, SampleConfig, SampleMethod};
use crate::output;
use crate::model::mixture_draw;
use crate::device::set_threads;
use crate::error::{Error, Result};
use crate::labels;
use crate::network::{Architectures, Network};
use crate::rng::Rng;
use crate::tensor_io::append_to_vec;
use crate::state::ModelState;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// Images (or token grids) to complete: `images` holds the known values,
/// `known` is 1 where a value is given and 0 where it is to be sampled (both N×H×W×C).
pub struct Completion<'a> {
    pub images: crate::images::Values<'a>,
    pub known: &'a [u8],
}

pub struct SampleOutput {
    /// Pixel models: N×H×W×C bytes (0/1, or 0–255); empty for token grids.
    pub images: Vec<u8>,
    /// Token grids: N×H×W tokens; empty for pixel models.
    pub tokens: Vec<i32>,
    /// Binary models: p(x = 1) at each pixel when it was drawn (for known
    /// pixels too); 8-bit outputs: the probability of the value it has. N×H×W×C.
    pub probabilities: Vec<f32>,
}

#[derive(Clone, Copy, Debug)]
pub struct SampleProgress {
    pub rows_done: i64,
    pub rows_total: i64,
}

/// What one batch of either sampler works from, all on the model's device.
pub(crate) struct BatchInputs {
    /// (B, H·W) uniform draws in [0, 1).
    pub uniforms: Tensor,
    /// (B, H·W) known pixel values, and 1.0 where known, 0.0 where sampled.
    pub known_values: Tensor,
    pub known_mask: Tensor,
    pub inv_temperature: f64,
    /// (B,) int64 classes, for conditional models.
    pub labels: Option<Tensor>,
    /// Token grids: a detached copy of the embedding (V, E), through which
    /// each drawn token enters the samplers' caches.
    pub embedding: Option<Tensor>,
    pub precision: crate::config::Precision,
    pub threads: SamplerThreads,
    /// The same draws and known values in host memory, for the CPU's scalar
    /// mixture draw (`PixelDraws::pass_mixture_on_cpu`).
    pub host: Arc<HostInputs>,
}

/// `BatchInputs`' uniforms, known values and mask as host vectors, (B, H·W·C) row-major.
pub(crate) struct HostInputs {
    pub uniforms: Vec<f32>,
    pub known_values: Vec<f32>,
    pub known_mask: Vec<f32>,
    /// Sub-pixels per image.
    pub per_image: usize,
}

impl BatchInputs {
    /// The same inputs, sharing their tensors.
    fn shallow(&self) -> BatchInputs {
        BatchInputs {
            uniforms: self.uniforms.shallow_clone(),
            known_values: self.known_values.shallow_clone(),
            known_mask: self.known_mask.shallow_clone(),
            inv_temperature: self.inv_temperature,
            labels: self.labels.as_ref().map(|l| l.shallow_clone()),
            embedding: self.embedding.as_ref().map(|e| e.shallow_clone()),
            precision: self.precision,
            threads: self.threads,
            host: self.host.clone(),
        }
    }
}

/// libtorch threads for the two kinds of work of the fast samplers: the
/// products done once per row over the whole row (large: every core helps)
/// and the chain of small per-pixel products (small batches: one thread, see
/// `sample`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SamplerThreads {
    pub rows: Option<i64>,
    pub pixels: Option<i64>,
}

impl SamplerThreads {
    pub fn for_rows(&self) {
        set_threads(self.rows);
    }
    pub fn for_pixels(&self) {
        set_threads(self.pixels);
    }
}

/// The channels a sampler draws from one network pass at a pixel: all of
/// them with one channel group (grayscale, and the mixture, which draws a
/// colour pixel's channels in turn from one output), one per pass with three.
pub(crate) fn pass_channels(config: &ModelConfig, pass: i64) -> std::ops::Range<i64> {
    if config.passes_per_pixel() == 1 { 0..config.channels } else { pass..pass + 1 }
}

/// What one pixel's draws write to: the batch's results (B, H·W·C) and the
/// pixel's values so far (B, C).
pub(crate) struct PixelDraws<'a> {
    pub pixels: &'a Tensor,
    pub probs: &'a Tensor,
    pub pixel: Tensor,
    /// The pixel's values so far in host memory (B·C), for the scalar mixture draw.
    host_pixel: Vec<f64>,
}

impl<'a> PixelDraws<'a> {
    pub fn new(pixels: &'a Tensor, probs: &'a Tensor, batch: i64, channels: i64) -> Result<Self> {
        Ok(PixelDraws {
            pixels,
            probs,
            pixel: Tensor::f_zeros([batch, channels], (Kind::Float, pixels.device()))?,
            host_pixel: vec![0.0; (batch * channels) as usize],
        })
    }

    /// Shared by both samplers: draws the channels of `pass` at pixel `index`
    /// (raster order) from the network's outputs there, `logits` (B, outC),
    /// possibly bf16 (the probabilities and draws are fp32, `output::draw`);
    /// a known sub-pixel keeps its value. Each value goes to `write` (channel,
    /// value (B,), the value as the network reads it (B, k)) for the sampler's
    /// caches before the next channel is drawn.
    pub fn pass(
        &mut self,
        config: &ModelConfig,
        inputs: &BatchInputs,
        logits: &Tensor,
        index: i64,
        pass: i64,
        write: &mut dyn FnMut(i64, &Tensor, &Tensor) -> Result<()>,
    ) -> Result<()> {
        if config.output == crate::config::Output::LogisticMixture && logits.device() == Device::Cpu {
            return self.pass_mixture_on_cpu(config, inputs, logits, index, pass, write);
        }
        let outputs = output::pixel_outputs(config, logits)?;
        for ch in pass_channels(config, pass) {
            let pos = index * config.channels + ch;
            let (drawn, probs) = output::draw(config, &outputs, ch, &self.pixel, &inputs.uniforms.f_select(1, pos)?, inputs.inv_temperature)?;
            let known = inputs.known_mask.f_select(1, pos)?;
            let value = drawn.f_lerp_tensor(&inputs.known_values.f_select(1, pos)?, &known)?; // known ? given : drawn
            let reported = output::reported_probability(config, &probs, &value)?;
            self.record(config, inputs, ch, pos, &value, &reported, write)?;
        }
        Ok(())
    }

    /// Sub-pixel `ch` (at `pos` of the raster) is `value` (B,), reported with
    /// probability `reported` (B,): into the pixel, the results and the sampler's caches.
    #[allow(clippy::too_many_arguments)]
    fn record(&mut self, config: &ModelConfig, inputs: &BatchInputs, ch: i64, pos: i64, value: &Tensor, reported: &Tensor, write: &mut dyn FnMut(i64, &Tensor, &Tensor) -> Result<()>) -> Result<()> {
        self.pixel.f_select(1, ch)?.f_copy_(value)?;
        self.pixels.f_select(1, pos)?.f_copy_(value)?;
        self.probs.f_select(1, pos)?.f_copy_(reported)?;
        write(ch, value, &crate::network::token_embedding::value_input(config, inputs.embedding.as_ref(), value)?)
    }

    /// `pass` for the logistic mixture on the CPU: the same draws, image by
    /// image in scalar code (`mixture_draw.rs`), from one copy of the logits
    /// to host memory, instead of a hundred tiny tensor operations per channel.
    fn pass_mixture_on_cpu(
        &mut self,
        config: &ModelConfig,
        inputs: &BatchInputs,
        logits: &Tensor,
        index: i64,
        pass: i64,
        write: &mut dyn FnMut(i64, &Tensor, &Tensor) -> Result<()>,
    ) -> Result<()> {
        let logits = logits.f_to_kind(Kind::Float)?.f_contiguous()?;
        let (batch, width) = (logits.size()[0] as usize, logits.size()[1] as usize);
        let mut outputs = Vec::with_capacity(batch * width);
        append_to_vec(&mut outputs, &logits)?;
        let (channels, host) = (config.channels as usize, &inputs.host);
        for ch in pass_channels(config, pass) {
            let pos = (index * config.channels + ch) as usize;
            let (mut values, mut probs) = (vec![0f32; batch], vec![0f32; batch]);
            for n in 0..batch {
                let mixture = mixture_draw::PixelMixture::new(&outputs[n * width..(n + 1) * width], config.mixtures() as usize, channels);
                let pixel = &mut self.host_pixel[n * channels..(n + 1) * channels];
                let cdf = mixture.channel(ch as usize, pixel);
                let at = n * host.per_image + pos;
                let (drawn, masses) = cdf.draw(host.uniforms[at] as f64, inputs.inv_temperature);
                let value = if host.known_mask[at] > 0.5 { host.known_values[at] as i64 } else { drawn };
                pixel[ch as usize] = value as f64;
                values[n] = value as f32;
                probs[n] = cdf.probability(value, masses.as_deref()) as f32;
            }
            self.record(config, inputs, ch, pos as i64, &Tensor::f_from_slice(&values)?, &Tensor::f_from_slice(&probs)?, write)?;
        }
        Ok(())
    }
}

/// Generates `config.count` images, or completes `completion`'s images.
pub fn sample(
    state: &ModelState,
    config: &SampleConfig,
    completion: Option<&Completion>,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(SampleProgress),
) -> Result<SampleOutput> {
    let _release = crate::allocator::ReleaseWhenDone;
    let _weights = crate::ema::AveragedWeights::swap_in(state.ema.as_ref(), &state.net, config.weights)?;
    let net = &state.net;
    let batch_size = config.batch_size();
    // The fast sampler's per-pixel products are small: below a few hundred
    // images per batch, one thread beats two on a CPU (81 images: 0.80 s with
    // 1 thread, 1.49 s with 2; 512 images: 4.82 s vs 4.51 s, BENCHMARKS.md).
    let method = config.method;
    let small_cpu_batches = net.device() == Device::Cpu && method == SampleMethod::Fast && batch_size <= 256;
    let threads = SamplerThreads { rows: config.threads, pixels: config.threads.or(small_cpu_batches.then_some(1)) };
    threads.for_pixels();
    let c = net.config();
    let all_labels = labels::resolve(config.labels.as_ref(), config.conditions.as_deref(), c, config.count, "labels")?;
    // Every batch below reads the precision that runs, not `auto`; the labels,
    // resolved above, are not copied.
    let precision = config.precision.resolve(net.device(), crate::precision::Work::Sampling, "precision")?;
    let config = &SampleConfig {
        count: config.count,
        seed: config.seed,
        temperature: config.temperature,
        batch_size: config.batch_size,
        method,
        threads: config.threads,
        labels: None,
        conditions: None,
        precision,
        weights: config.weights,
    };
    let pixels = c.pixels_per_image() as usize;
    if let Some(done) = completion {
        let expected = config.count as usize * pixels;
        if done.images.len() != expected || done.known.len() != expected {
            return Err(Error::InvalidData(format!(
                "complete: images have {} values and known has {}, but {} images of {}×{}×{} need {expected} each",
                done.images.len(), done.known.len(), config.count, c.height, c.width, c.channels
            )));
        }
        if let Some(i) = done.known.iter().position(|&v| v > 1) {
            return Err(Error::InvalidData(format!("complete: byte {i} of known is {}, not 0 or 1", done.known[i])));
        }
        done.images.check(c, "complete: images")?;
    }
    crate::memory::check_sampling(c, config.count, batch_size, config.method, net.device())?;
    let mut out = SampleOutput { images: Vec::new(), tokens: Vec::new(), probabilities: Vec::new() };
    // Reserved fallibly: a failure here is an error, not the process aborting.
    let total = config.count as usize * pixels;
    let reserve_failed = |_| Error::Resource(format!("`count`: the results of {} images could not be allocated ({}); lower `count`", config.count, crate::memory::human_bytes(total as u64 * 5)));
    if c.is_tokens() {
        out.tokens.try_reserve_exact(total).map_err(reserve_failed)?;
    } else {
        out.images.try_reserve_exact(total).map_err(reserve_failed)?;
    }
    out.probabilities.try_reserve_exact(total).map_err(reserve_failed)?;
    let rows_total = ((config.count + batch_size - 1) / batch_size) * c.height;
    let mut rows_done = 0;
    let mut start = 0;
    while start < config.count {
        let len = batch_size.min(config.count - start);
        let mut on_row = |_row: i64| -> Result<()> {
            rows_done += 1;
            on_progress(SampleProgress { rows_done, rows_total });
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Aborted(format!("sampling stopped after {rows_done} of {rows_total} rows")));
            }
            Ok(())
        };
        let parts = parallel_parts(net.device(), config, len);
        let results = if parts > 1 {
            sample_in_parts(net, config, completion, all_labels.as_ref(), start, len, parts, pixels, cancel, &mut on_row)?
        } else {
            let mut inputs = batch_inputs(config, completion, start, len, pixels, net.device(), threads)?;
            inputs.labels = labels::batch(all_labels.as_ref(), start, len, net.device())?;
            inputs.embedding = detached_embedding(net)?;
            vec![tch::no_grad(|| match config.method {
                SampleMethod::Fast => driver::run(&mut *fast_plan(net, &inputs, len)?, c, &inputs, len, &mut on_row),
                SampleMethod::Reference => driver::run(&mut reference::Reference::new(net, &inputs, len)?, c, &inputs, len, &mut on_row),
            })?]
        };
        for (images, probs) in results {
            if c.is_tokens() {
                append_to_vec(&mut out.tokens, &images.f_to_kind(Kind::Int)?)?;
            } else {
                append_to_vec(&mut out.images, &images.f_to_kind(Kind::Uint8)?)?;
            }
            append_to_vec(&mut out.probabilities, &probs)?;
        }
        start += len;
    }
    Ok(out)
}

/// The incremental sampler of `net`'s architecture for one batch: it owns
/// detached copies of the weights, so it can run on another thread.
fn fast_plan(net: &Network, inputs: &BatchInputs, batch: i64) -> Result<Box<dyn driver::PixelSource + Send>> {
    // The plans read the conditioning as the layers do (a token map embedded); the reference passes it raw to forward.
    let features = BatchInputs { labels: net.condition_features(inputs.labels.as_ref())?.map(|l| l.f_detach()).transpose()?, ..inputs.shallow() };
    let inputs = &features;
    Ok(match net.architecture() {
        Architectures::PixelCnn(n) => Box::new(fast_pixelcnn::Plan::new(n, inputs, batch)?),
        Architectures::Gated(n) => Box::new(fast_gated::Plan::new(n, inputs, batch)?),
        Architectures::PixelCnnPp(n) => Box::new(fast_pixelcnn_pp::Plan::new(n, inputs, batch)?),
    })
}

/// Images per sub-batch below which splitting a batch does not pay.
const MIN_PART: i64 = 8;

/// How many sub-batches of a batch the fast sampler runs side by side on the
/// CPU, each on its own thread with one libtorch thread. The per-pixel chain
/// of small products is sequential within an image, and splitting each
/// product over two threads costs as much as it saves; images are
/// independent, so whole sub-batches on separate cores scale. Each image's
/// draws depend only on (seed, its index), so the images are the same however
/// the batch is split.
fn parallel_parts(device: Device, config: &SampleConfig, len: i64) -> i64 {
    if device != Device::Cpu || config.method != SampleMethod::Fast {
        return 1;
    }
    let cores = config.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as i64));
    (len / MIN_PART).clamp(1, cores.max(1))
}

/// Samples images start … start+len in `parts` sub-batches on as many
/// threads (this one included, which reports progress); returns their
/// results in order.
#[allow(clippy::too_many_arguments)]
fn sample_in_parts(
    net: &Network,
    config: &SampleConfig,
    completion: Option<&Completion>,
    all_labels: Option<&labels::Conditions>,
    start: i64,
    len: i64,
    parts: i64,
    pixels: usize,
    cancel: &AtomicBool,
    on_row: &mut dyn FnMut(i64) -> Result<()>,
) -> Result<Vec<(Tensor, Tensor)>> {
    let one = SamplerThreads { rows: Some(1), pixels: Some(1) };
    let part_len = (len + parts - 1) / parts;
    let mut jobs = Vec::with_capacity(parts as usize);
    let mut part_start = start;
    while part_start < start + len {
        let n = part_len.min(start + len - part_start);
        let mut inputs = batch_inputs(config, completion, part_start, n, pixels, net.device(), one)?;
        inputs.labels = labels::batch(all_labels, part_start, n, net.device())?;
        inputs.embedding = detached_embedding(net)?;
        // Built here: the plans own detached copies of the weights, so the threads never touch the network.
        jobs.push((tch::no_grad(|| fast_plan(net, &inputs, n))?, inputs, n));
        part_start += n;
    }
    set_threads(Some(1));
    // Set when this thread's part fails, so that the others stop at their next row.
    let failed = AtomicBool::new(false);
    let stop_requested = || cancel.load(Ordering::Relaxed) || failed.load(Ordering::Relaxed);
    std::thread::scope(|scope| {
        let mut jobs = jobs.into_iter();
        let (mut first, first_inputs, first_len) = jobs.next().expect("at least one part");
        let c = net.config();
        let others: Vec<_> = jobs
            .map(|(mut plan, inputs, n)| {
                scope.spawn(move || {
                    crate::device::set_threads_of_this_thread(1);
                    let mut check = |_row: i64| if stop_requested() { Err(Error::Aborted("sampling stopped".into())) } else { Ok(()) };
                    tch::no_grad(|| driver::run(&mut *plan, c, &inputs, n, &mut check))
                })
            })
            .collect();
        let mine = tch::no_grad(|| driver::run(&mut *first, c, &first_inputs, first_len, on_row));
        if mine.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        let mut results = vec![mine];
        for handle in others {
            results.push(handle.join().unwrap_or_else(|_| Err(Error::Internal("a sampling thread panicked".into()))));
        }
        // This thread's error (an abort with its row count) comes first.
        results.into_iter().collect()
    })
}
fn batch_inputs(
    config: &SampleConfig,
    completion: Option<&Completion>,
    start: i64,
    len: i64,
    pixels: usize,
    device: Device,
    threads: SamplerThreads,
) -> Result<BatchInputs> {
    let mut uniforms = Vec::with_capacity(len as usize * pixels);
    for n in start..start + len {
        let mut rng = Rng::derived(config.seed, n as u64);
        uniforms.extend((0..pixels).map(|_| rng.uniform_f32()));
    }
    let to_tensor = |values: &[f32]| -> Result<Tensor> {
        Ok(Tensor::f_from_slice(values)?.f_reshape([len, pixels as i64])?.f_to_device(device)?)
    };
    let range = start as usize * pixels..(start + len) as usize * pixels;
    let (known_values, known_mask) = match completion {
        Some(done) => (
            done.images.floats(range.clone()),
            done.known[range].iter().map(|&v| v as f32).collect(),
        ),
        None => (vec![0.0; uniforms.len()], vec![0.0; uniforms.len()]),
    };
    Ok(BatchInputs {
        uniforms: to_tensor(&uniforms)?,
        known_values: to_tensor(&known_values)?,
        known_mask: to_tensor(&known_mask)?,
        inv_temperature: 1.0 / config.temperature,
        labels: None,
        embedding: None,
        precision: config.precision,
        threads,
        host: Arc::new(HostInputs { uniforms, known_values, known_mask, per_image: pixels }),
    })
}

/// A copy of a token grid's embedding that a sampling thread may own.
fn detached_embedding(net: &Network) -> Result<Option<Tensor>> {
    Ok(net.embedding().map(|e| e.f_detach()).transpose()?)
}

