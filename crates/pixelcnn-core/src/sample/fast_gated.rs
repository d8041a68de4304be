//! The incremental sampler for Gated PixelCNN.
//!
//! The vertical stack at row r depends only on rows above r, so it is final
//! for the whole row before the row's first pixel is drawn: at the start of
//! each row every layer's vertical convolution runs once over that row, as a
//! real convolution over the cached rows above, together with the link into
//! the horizontal stack. Only the horizontal stack is then computed pixel by
//! pixel: a matrix product over the (p+1)-wide strip of the current row for
//! each layer, its gate, and the 1×1 skip and residual products. Over an image
//! that is one forward pass of arithmetic, as for the seed's architecture.
//!
//! Caches: windows (`window.rs`) of the image's latest rows, zero-padded as
//! the first vertical layer reads it, and of each layer's vertical input
//! (padded likewise), as many rows as the next vertical convolution reads;
//! and, for the current row only,
//! the first horizontal layer's input (the image row) and each later layer's
//! horizontal input, channels-last. Entries right of the current pixel hold
//! stale values from the row above but are never read: every strip ends at
//! the current pixel.
//!
//! Number types (`kinds.rs`): the image and vertical caches and the per-row
//! convolutions in the row kind; the links leave them in the pixel kind,
//! which the row caches, strips and the per-pixel chain compute in.

use super::fast_pixelcnn::Pointwise;
use super::driver::PixelSource;
use super::kinds::Kinds;
use super::window::Window;
use super::{BatchInputs, SamplerThreads};
use crate::error::Result;
use crate::config::ModelConfig;
use crate::network::masked_conv::Conv;
use crate::network::shifted_conv::{gate, ShiftedConv};
use crate::network::GatedPixelCnn;
use tch::Tensor;

/// A horizontal convolution as a matrix over the strip left of the pixel.
struct Strip {
    width: i64,
    matrix: Tensor,
    bias: Tensor,
}

impl Strip {
    fn new(conv: &ShiftedConv, kinds: &Kinds) -> Result<Self> {
        Ok(Strip { width: conv.weight.size()[3], matrix: kinds.pixel_weight(&conv.patch_matrix()?)?, bias: kinds.pixel_weight(&conv.bias)? })
    }

    /// The output (B, Cout) at the pixel whose strip starts at `start` in `row` (B, W+pad, Cin).
    fn at(&self, row: &Tensor, start: i64) -> Result<Tensor> {
        self.onto(&self.bias, row, start)
    }

    /// `base` (B, Cout) plus the strip's product, without the bias (for a
    /// `base` that already holds it).
    fn onto(&self, base: &Tensor, row: &Tensor, start: i64) -> Result<Tensor> {
        let batch = row.size()[0];
        let patch = row.f_narrow(1, start, self.width)?.f_reshape([batch, -1])?;
        Ok(base.f_addmm(&patch, &self.matrix)?)
    }
}

/// A convolution's detached weight and bias in the compute type, applied as
/// a real convolution (the vertical stacks and the 1×1 links, once per row).
struct RowConv {
    weight: Tensor,
    bias: Tensor,
    rows: i64,
}

impl RowConv {
    fn vertical(conv: &ShiftedConv, kinds: &Kinds) -> Result<Self> {
        Ok(RowConv { weight: kinds.row_weight(&conv.weight)?, bias: kinds.row_weight(&conv.bias)?, rows: conv.weight.size()[2] })
    }

    fn link(conv: &Conv, kinds: &Kinds) -> Result<Self> {
        Ok(RowConv { weight: kinds.row_weight(&conv.effective_weight()?)?, bias: kinds.row_weight(&conv.bias)?, rows: 1 })
    }

    /// Over the `rows` rows of a padded map from image row `first_row`: (B, Cout, 1, W).
    fn over(&self, map: &Window, first_row: i64) -> Result<Tensor> {
        self.over_rows(&map.rows(first_row, self.rows)?)
    }

    /// Over `rows` (B, Cin, self.rows, W + pad): (B, Cout, 1, W).
    fn over_rows(&self, rows: &Tensor) -> Result<Tensor> {
        Ok(rows.f_conv2d(&self.weight, Some(&self.bias), [1, 1], [0, 0], [1, 1], 1)?)
    }
}

struct Layer {
    v_conv: RowConv,
    link: RowConv,
    h_conv: Strip,
    /// Skip and residual outputs side by side, (B, 2F) in one product; the
    /// last layer's residual output feeds nothing: only its skip.
    skip_residual: Pointwise,
    /// Class biases as (B, 2F, 1, 1), added to whole rows of the gates' inputs.
    v_class: Option<Tensor>,
    h_class: Option<Tensor>,
}

/// Everything one batch's sampling works on, taken out of the network, with
/// its caches: it owns no reference to the network, so it can run on another thread.
pub(super) struct Plan {
    config: ModelConfig,
    input_v: RowConv,
    input_h: Strip,
    layers: Vec<Layer>,
    head: Vec<Pointwise>,
    output: Pointwise,
    /// The image's latest rows, channels first, pixel (r, c) at column c + p0.
    image: Window,
    /// Layer i's vertical input v_i, (r, c) at column c + p.
    vertical: Vec<Window>,
    /// The current row: image pixel c at c + p0; layer i's horizontal input at c + p.
    image_row: Tensor,
    horizontal: Vec<Tensor>,
    threads: SamplerThreads,
    /// The current row's links into the horizontal gates, (B, W, 2F) per layer.
    links: Vec<Tensor>,
}

impl Plan {
    pub(super) fn new(net: &GatedPixelCnn, inputs: &BatchInputs, batch: i64) -> Result<Self> {
        let cfg = &net.config;
        let (h, w, f, channels) = (cfg.height, cfg.width, cfg.filters, cfg.input_channels());
        let (p0, p) = (cfg.input_kernel() / 2, cfg.kernel() / 2);
        let kinds = &Kinds::of(inputs.precision, net.device, batch);
        let (row_options, pixel_options) = ((kinds.rows, net.device), (kinds.pixels, net.device));
        let labels = inputs.labels.as_ref();
        let count = net.layers.len();
        // The vertical stack's class bias joins a per-row output; the horizontal one, the links in the pixel kind.
        // Each is (B, 2F, 1, 1), or with a condition map (B, 2F, H, W): read at row r (`at_row`).
        let class_rows = |b: &Option<crate::network::class_bias::ClassBias>, kind| -> Result<Option<Tensor>> {
            let (Some(b), Some(l)) = (b, labels) else { return Ok(None) };
            let rows = b.rows(l)?.map(|r| r.f_view([batch, 2 * f, 1, 1])).transpose()?;
            let map = b.map_term(l, h, w)?;
            let total = match (rows, map) {
                (Some(rows), Some(map)) => map.f_add(&rows)?,
                (Some(t), None) | (None, Some(t)) => t,
                (None, None) => return Ok(None),
            };
            Ok(Some(total.f_detach()?.f_to_kind(kinds.rows)?.f_to_kind(kind)?))
        };
        let layers = net
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let pair: &[&Conv] = if i + 1 < count { &[&l.skip, &l.residual] } else { &[&l.skip] };
                Ok(Layer {
                    v_conv: RowConv::vertical(&l.v_conv, kinds)?,
                    link: RowConv::link(&l.link, kinds)?,
                    h_conv: Strip::new(&l.h_conv, kinds)?,
                    skip_residual: Pointwise::stacked(pair, kinds)?,
                    v_class: class_rows(&l.v_class_bias, kinds.rows)?,
                    h_class: class_rows(&l.h_class_bias, kinds.pixels)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Plan {
            config: cfg.clone(),
            input_v: RowConv::vertical(&net.input_v, kinds)?,
            input_h: Strip::new(&net.input_h, kinds)?,
            layers,
            head: net.head.iter().map(|c| Pointwise::new(c, labels, (h, w), kinds)).collect::<Result<Vec<_>>>()?,
            output: Pointwise::new(&net.output, labels, (h, w), kinds)?,
            // The first vertical layer reads image rows r − p0 … r − 1; layer i's, rows r − p … r of v_i.
            image: Window::zeros(&[batch, channels, net.input_v.weight.size()[2], w + 2 * p0], 2, row_options.0, row_options.1)?,
            vertical: net.layers.iter().map(|l| Window::zeros(&[batch, f, l.v_conv.weight.size()[2], w + 2 * p], 2, row_options.0, row_options.1)).collect::<Result<Vec<_>>>()?,
            image_row: Tensor::f_zeros([batch, w + p0, channels], pixel_options)?,
            horizontal: (0..count).map(|_| Tensor::f_zeros([batch, w + p, f], pixel_options)).collect::<std::result::Result<Vec<_>, _>>()?,
            threads: inputs.threads,
            links: Vec::new(),
        })
    }
}

impl PixelSource for Plan {
    /// The vertical stack for row r, and each layer's link into the
    /// horizontal gate along the row, as (B, W, 2F).
    fn begin_row(&mut self, r: i64) -> Result<()> {
        let f = self.config.filters;
        let p = self.config.kernel() / 2;
        let layers = self.layers.len();
        self.threads.for_rows();
        let mut links = Vec::with_capacity(layers);
        let p0 = self.config.input_kernel() / 2;
        let v0 = self.input_v.over(&self.image, r - p0)?; // image rows r−p0 … r−1
        write_row(&self.vertical[0], r, p, &v0)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let a = layer.v_conv.over(&self.vertical[i], r - p)?; // (B, 2F, 1, W)
            // The horizontal convolution's bias joins the link once per row, in the pixel kind.
            let link = layer.link.over_rows(&a)?;
            let mut link = link.f_to_kind(layer.h_conv.bias.kind())?.f_add(&layer.h_conv.bias.f_view([1, 2 * f, 1, 1])?)?;
            if let Some(bias) = &layer.h_class {
                link = link.f_add(&at_row(bias, r)?)?;
            }
            links.push(link.f_squeeze_dim(2)?.f_permute([0, 2, 1])?.f_contiguous()?);
            if i + 1 < layers {
                let a = match &layer.v_class {
                    Some(bias) => a.f_add(&at_row(bias, r)?)?,
                    None => a,
                };
                write_row(&self.vertical[i + 1], r, p, &gate(&a)?)?;
            }
        }
        self.links = links;
        // Row r of the image enters; set_value fills it pixel by pixel.
        self.image.advance_to(r)?;
        self.threads.for_pixels();
        Ok(())
    }

    /// With three channel groups the first horizontal strip also reads the
    /// pixel itself (its drawn channels, through the centre mask), and each
    /// pass recomputes the pixel's chain.
    fn logits_at(&mut self, r: i64, c: i64) -> Result<Tensor> {
        let f = self.config.filters;
        let p = self.config.kernel() / 2;
        let layers = self.layers.len();
        let mut x = self.input_h.at(&self.image_row, c)?; // (B, F): cols c−p0 … c−1 (… c with groups)
        let mut skip: Option<Tensor> = None;
        for (i, layer) in self.layers.iter().enumerate() {
            write_column(&self.horizontal[i], c + p, &x)?;
            let b = layer.h_conv.onto(&self.links[i].f_select(1, c)?, &self.horizontal[i], c)?; // (B, 2F)
            let g = gate(&b)?; // (B, F)
            let sr = layer.skip_residual.at(&g, r, c)?; // (B, 2F), or (B, F) for the last layer
            let s = sr.f_narrow(1, 0, f)?;
            skip = Some(match skip {
                Some(mut total) => total.f_add_(&s)?,
                None => s.f_contiguous()?,
            });
            if i + 1 < layers {
                x = x.f_add(&sr.f_narrow(1, f, f)?)?;
            }
        }
        let mut s = skip.expect("validated: at least one layer").f_relu_()?;
        for layer in &self.head {
            s = layer.at(&s, r, c)?.f_relu_()?;
        }
        self.output.at(&s, r, c) // (B, outC)
    }

    fn set_value(&mut self, r: i64, c: i64, ch: i64, _raw: &Tensor, input: &Tensor) -> Result<()> {
        let p0 = self.config.input_kernel() / 2;
        let k = input.size()[1];
        self.image.row(r)?.f_narrow(1, ch * k, k)?.f_select(2, c + p0)?.f_copy_(input)?;
        self.image_row.f_select(1, c + p0)?.f_narrow(1, ch * k, k)?.f_copy_(input)?;
        Ok(())
    }
}

/// Writes row r (B, C, 1, W) into a window whose rows have `pad` zero columns each side.
fn write_row(map: &Window, r: i64, pad: i64, row: &Tensor) -> Result<()> {
    map.advance_to(r)?;
    map.rows(r, 1)?.f_narrow(3, pad, row.size()[3])?.f_copy_(row)?;
    Ok(())
}

/// A per-row term (B, C, 1, 1) as it is, or row r (B, C, 1, W) of a per-pixel one (B, C, H, W).
fn at_row(term: &Tensor, r: i64) -> Result<Tensor> {
    Ok(if term.size()[2] == 1 { term.shallow_clone() } else { term.f_narrow(2, r, 1)? })
}

/// Writes `value` (B, C) at position `at` of a channels-last row cache (B, W', C).
fn write_column(row: &Tensor, at: i64, value: &Tensor) -> Result<()> {
    row.f_select(1, at)?.f_copy_(value)?;
    Ok(())
}
