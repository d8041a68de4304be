//! The incremental sampler: each step computes every layer's output at the new
//! pixel only, from cached lower-layer activations.
//!
//! Why this is exact: a layer's output at position p depends only on its input
//! at positions up to p in raster order (rows above, and the current row up to
//! p; mask A excludes p itself). When pixel p is generated, every cached value
//! before p is final, so computing layer by layer at p alone gives exactly the
//! logits a full forward pass would give there. Over an image that is one
//! forward pass of arithmetic instead of H·W of them.
//!
//! Only the masked k×k convolutions read neighbours, so only their inputs are
//! cached: the image itself (for the mask-A layer) and each residual block's
//! 1×1 output (for its mask-B layer), each in a window of the k/2 + 1 rows a
//! k×k kernel reads (`RowWindow`), not the whole image. Everything else is pointwise and flows
//! through as (B, F) vectors. A k×k masked kernel's live taps lie in the k/2
//! rows above the pixel and in its own row up to it. The rows above are final
//! once a row starts, so their part runs once per row as one product over the
//! whole row (B·W patches); per pixel only the strip of the current row up
//! to the pixel remains (mask A's centre tap has zero weight and reads a
//! cache entry that is still zero).
//!
//! A conditional model's class biases are constant over the image: each
//! layer's bias rows for the batch's labels are gathered once and added to
//! its bias, so they cost nothing per pixel. A condition map's term differs
//! per pixel: each layer's is computed once for the whole image and read at
//! the row (masked layers) or the pixel (1×1 layers).
//!
//! Number types (`kinds.rs`): the caches and the per-pixel chain in the pixel
//! kind; the per-row products cast their rows of the cache to the row kind.

use super::driver::PixelSource;
use super::kinds::Kinds;
use super::{BatchInputs, SamplerThreads};
use crate::error::Result;
use crate::network::masked_conv::Conv;
use crate::network::PixelCnn;
use tch::Tensor;

/// The conv's bias for each image of the batch, for the per-pixel chain:
/// (Cout,), or (B, Cout) with the class bias of each image's label added;
/// and with a condition map its term at every pixel of an image of `size`,
/// channels-last (B, H, W, Cout).
fn batch_bias(conv: &Conv, labels: Option<&Tensor>, size: (i64, i64), kinds: &Kinds) -> Result<(Tensor, Option<Tensor>)> {
    let bias = conv.bias.f_detach()?;
    let (bias, map) = match (&conv.class_bias, labels) {
        (Some(cb), Some(l)) => {
            let bias = match cb.rows(l)? {
                Some(rows) => rows.f_detach()?.f_add(&bias)?,
                None => bias,
            };
            (bias, map_term(cb, l, size, kinds)?)
        }
        _ => (bias, None),
    };
    Ok((kinds.pixel_weight(&bias)?, map))
}

/// A layer's condition-map term at `size`, channels-last (B, H, W, C) in the pixel kind; `None` without a map.
pub(super) fn map_term(cb: &crate::network::class_bias::ClassBias, labels: &Tensor, size: (i64, i64), kinds: &Kinds) -> Result<Option<Tensor>> {
    match cb.map_term(labels, size.0, size.1)? {
        Some(t) => Ok(Some(kinds.pixel_weight(&t.f_permute([0, 2, 3, 1])?.f_contiguous()?)?)),
        None => Ok(None),
    }
}

/// Input channels from which a conv's rows-above part runs tap by tap on
/// the cache itself rather than on a copied patch matrix (`Above`).
const TAPS_FROM_CHANNELS: i64 = 32;

/// The rows-above part of a masked k×k convolution, in the row kind.
enum Above {
    /// A 1×1 kernel: nothing above.
    None,
    /// Few input channels (the image): one (pad·k·Cin, Cout) matrix, rows
    /// ordered (kernel row, kernel col, channel) to match a patch copied
    /// out of the cache; the copy is pad·k·Cin values per pixel, cheaper
    /// than pad·k passes over the output.
    Unfolded(Tensor),
    /// Many input channels: a (Cin, Cout) matrix per tap, [kernel row][kernel col],
    /// each multiplied straight from a view of the cache: pad·k additions of
    /// Cout values per pixel into the output instead of a copied patch of pad·k·Cin.
    Taps(Vec<Vec<Tensor>>),
}

/// A masked k×k convolution split at its centre row. Its taps in the rows
/// above read only rows that are final when a row starts: they run once per
/// row, for the whole row, as large products. Its centre-row taps (left of
/// the centre, and the centre for mask B) run per pixel on a strip of
/// k/2 + 1 cache entries ending at the pixel.
struct PatchConv {
    pad: i64,
    kernel: i64,
    above: Above,
    /// ((pad+1)·Cin, Cout): the centre row from its first tap to the centre.
    current: Tensor,
    /// (Cout,), or (B, Cout) with each image's class bias.
    bias: Tensor,
    /// (B, H, W, Cout): the condition map's term, for a model with one.
    map: Option<Tensor>,
}

/// A conv's input for the rows it reads: a window of pad + 1 rows,
/// (pad+1, B, W+2·pad, Cin). While row r is sampled, slot i holds image row
/// r − pad + i (slot pad is row r itself); pixel column c lives at c + pad,
/// so the zero columns (and the zero slots above the first row) are the
/// convolution's padding. Rows outermost: a slot is one contiguous (B·(W+2·pad), Cin)
/// matrix, which the rows-above products read without a copy; and the
/// window, unlike a whole image of rows, stays in the caches at large batches.
struct RowWindow {
    rows: Tensor,
    pad: i64,
}

impl RowWindow {
    fn new(pad: i64, batch: i64, width: i64, channels: i64, kind: tch::Kind, device: tch::Device) -> Result<Self> {
        Ok(RowWindow { rows: Tensor::f_zeros([pad + 1, batch, width + 2 * pad, channels], (kind, device))?, pad })
    }

    /// Before row r (r > 0): every slot moves up one row and the current slot
    /// starts zero (mask A's centre tap has zero weight and reads it before it is written).
    fn advance(&mut self) -> Result<()> {
        for i in 0..self.pad {
            self.rows.f_select(0, i)?.f_copy_(&self.rows.f_select(0, i + 1)?)?;
        }
        let _ = self.rows.f_select(0, self.pad)?.f_zero_()?;
        Ok(())
    }

    /// Slot `i` as a (B·(W+2·pad), Cin) matrix.
    fn slot_matrix(&self, i: i64) -> Result<Tensor> {
        let s = self.rows.size();
        Ok(self.rows.f_select(0, i)?.f_view([s[1] * s[2], s[3]])?)
    }

    /// Pixel c of the current row, (B, Cin): where its value goes.
    fn at(&self, c: i64) -> Result<Tensor> {
        Ok(self.rows.f_select(0, self.pad)?.f_select(1, c + self.pad)?)
    }

    /// The current row, (B, W+2·pad, Cin).
    fn current(&self) -> Result<Tensor> {
        Ok(self.rows.f_select(0, self.pad)?)
    }

    fn write(&self, c: i64, value: &Tensor) -> Result<()> {
        self.at(c)?.f_copy_(value)?;
        Ok(())
    }
}

impl PatchConv {
    fn new(conv: &Conv, labels: Option<&Tensor>, size: (i64, i64), kinds: &Kinds) -> Result<Self> {
        let (k, pad) = (conv.kernel, conv.kernel / 2);
        let w = conv.effective_weight()?.f_detach()?; // (Cout, Cin, k, k)
        let (cout, cin) = (w.size()[0], w.size()[1]);
        let above = if pad == 0 {
            Above::None
        } else if cin < TAPS_FROM_CHANNELS {
            let rows = w.f_narrow(2, 0, pad)?.f_permute([2, 3, 1, 0])?; // (pad, k, Cin, Cout)
            Above::Unfolded(kinds.row_weight(&rows.f_contiguous()?.f_reshape([-1, cout])?)?)
        } else {
            let tap = |i: i64, j: i64| -> Result<Tensor> { kinds.row_weight(&w.f_select(2, i)?.f_select(2, j)?.f_t_()?.f_contiguous()?) }; // (Cin, Cout)
            Above::Taps((0..pad).map(|i| (0..k).map(|j| tap(i, j)).collect::<Result<Vec<_>>>()).collect::<Result<Vec<_>>>()?)
        };
        let centre = w.f_select(2, pad)?.f_narrow(2, 0, pad + 1)?.f_permute([2, 1, 0])?; // (pad+1, Cin, Cout)
        let current = kinds.pixel_weight(&centre.f_contiguous()?.f_reshape([-1, cout])?)?;
        let (bias, map) = batch_bias(conv, labels, size, kinds)?;
        Ok(PatchConv { pad, kernel: k, above, current, bias, map })
    }

    /// Its zeroed input window for `batch` images of `width` columns of `cin` channels.
    fn window(&self, batch: i64, width: i64, cin: i64, device: tch::Device) -> Result<RowWindow> {
        RowWindow::new(self.pad, batch, width, cin, self.current.kind(), device)
    }

    /// The bias plus the rows-above taps for every pixel of row r: (B, W', Cout),
    /// pixel c at column c (W' is W, or W + 2·pad when the taps ran on the cache,
    /// whose last 2·pad columns are not pixels).
    fn row(&self, input: &RowWindow, r: i64) -> Result<Tensor> {
        let s = input.rows.size();
        let (batch, padded, width) = (s[1], s[2], s[2] - 2 * self.pad);
        let cout = self.current.size()[1];
        let kind = self.current.kind();
        let columns = if matches!(self.above, Above::Taps(_)) { padded } else { width };
        let mut out = Tensor::f_empty([batch, columns, cout], (kind, input.rows.device()))?;
        let bias = match self.bias.dim() {
            1 => self.bias.f_view([1, 1, cout])?,
            _ => self.bias.f_unsqueeze(1)?,
        };
        out.f_copy_(&bias)?;
        if let Some(map) = &self.map {
            let _ = out.f_narrow(1, 0, width)?.f_add_(&map.f_select(1, r)?)?;
        }
        match &self.above {
            Above::None => {}
            Above::Unfolded(above) => {
                let patches = input
                    .rows
                    .f_narrow(0, 0, self.pad)? // (pad, B, W+2·pad, Cin): image rows r−pad … r−1
                    .f_to_kind(above.kind())? // a no-op unless the rows compute in bf16
                    .f_unfold(2, self.kernel, 1)? // (pad, B, W, Cin, k)
                    .f_permute([1, 2, 0, 4, 3])? // (B, W, pad, k, Cin)
                    .f_reshape([batch * width, -1])?;
                let flat = out.f_view([batch * width, cout])?;
                add_product(&flat, &patches, above)?;
            }
            Above::Taps(taps) => {
                // In the flattened (B·(W+2·pad)) rows, output column c of an image reads
                // input column c + j for tap j: the same matrix shifted by j rows, which
                // never crosses into the next image for the W pixel columns (c + j < W + 2·pad).
                // Rows past an image's W pixels come out as unused values.
                let len = batch * padded - 2 * self.pad;
                let flat = out.f_view([batch * padded, cout])?.f_narrow(0, 0, len)?;
                for (i, row_taps) in taps.iter().enumerate() {
                    let slot = input.slot_matrix(i as i64)?.f_to_kind(row_taps[0].kind())?;
                    for (j, tap) in row_taps.iter().enumerate() {
                        add_product(&flat, &slot.f_narrow(0, j as i64, len)?, tap)?;
                    }
                }
            }
        }
        Ok(out)
    }

    /// The output at (r, c), (B, Cout), before the activation, from the row's
    /// rows-above part `row` (B, W', Cout).
    fn at(&self, input: &RowWindow, row: &Tensor, c: i64) -> Result<Tensor> {
        let batch = row.size()[0];
        let strip = input.current()?.f_narrow(1, c, self.pad + 1)?.f_reshape([batch, -1])?; // a view: (pad+1)·Cin contiguous values per image
        Ok(row.f_select(1, c)?.f_addmm(&strip, &self.current)?)
    }
}

/// out += a · b, in out's kind (a product in bf16 is rounded to bf16 once, then added).
fn add_product(out: &Tensor, a: &Tensor, b: &Tensor) -> Result<()> {
    let mut out = out.shallow_clone(); // a handle on the same view
    if out.kind() == b.kind() {
        let _ = out.f_addmm_(a, b)?;
    } else {
        let _ = out.f_add_(&a.f_mm(b)?)?;
    }
    Ok(())
}

/// A 1×1 convolution as a (Cin, Cout) matrix for (B, Cin) vectors.
pub(super) struct Pointwise {
    matrix: Tensor,
    bias: Tensor,
    /// (B, H, W, Cout): the condition map's term, for a model with one.
    map: Option<Tensor>,
}

impl Pointwise {
    /// `size`: the image's height and width (where a condition map's term is read).
    pub(super) fn new(conv: &Conv, labels: Option<&Tensor>, size: (i64, i64), kinds: &Kinds) -> Result<Self> {
        let w = conv.effective_weight()?.f_detach()?; // (Cout, Cin, 1, 1)
        let cout = w.size()[0];
        let matrix = kinds.pixel_weight(&w.f_reshape([cout, -1])?.f_t_()?.f_contiguous()?)?;
        let (bias, map) = batch_bias(conv, labels, size, kinds)?;
        Ok(Pointwise { matrix, bias, map })
    }

    /// Several 1×1 convolutions of the same input as one: their outputs side
    /// by side (one product instead of several small ones per pixel).
    pub(super) fn stacked(convs: &[&Conv], kinds: &Kinds) -> Result<Self> {
        let parts = convs.iter().map(|c| Pointwise::new(c, None, (0, 0), kinds)).collect::<Result<Vec<_>>>()?;
        Ok(Pointwise {
            matrix: Tensor::f_cat(&parts.iter().map(|p| &p.matrix).collect::<Vec<_>>(), 1)?,
            bias: Tensor::f_cat(&parts.iter().map(|p| &p.bias).collect::<Vec<_>>(), 0)?,
            map: None,
        })
    }

    /// The output at pixel (r, c) for its input `x` (B, Cin) there.
    pub(super) fn at(&self, x: &Tensor, r: i64, c: i64) -> Result<Tensor> {
        let out = self.bias.f_addmm(x, &self.matrix)?;
        Ok(match &self.map {
            Some(map) => out.f_add(&map.f_select(1, r)?.f_select(1, c)?)?,
            None => out,
        })
    }
}

struct Block {
    conv1: Pointwise,
    masked: PatchConv,
    conv2: Pointwise,
    /// conv1's outputs, the masked conv's input.
    window: RowWindow,
}

/// Everything one batch's sampling works on (detached weights in the compute
/// type, this batch's class biases) with its caches: it owns no reference to
/// the network, so it can run on another thread.
pub(super) struct Plan {
    input: PatchConv,
    /// The image as the network reads it.
    image: RowWindow,
    blocks: Vec<Block>,
    head: Vec<Pointwise>,
    output: Pointwise,
    threads: SamplerThreads,
    /// The current row's rows-above parts: the input conv's, and each block's.
    input_row: Option<Tensor>,
    block_rows: Vec<Tensor>,
}

impl Plan {
    pub(super) fn new(net: &PixelCnn, inputs: &BatchInputs, batch: i64) -> Result<Self> {
        let cfg = &net.config;
        let (h, w, f) = (cfg.height, cfg.width, cfg.filters);
        let device = net.device;
        let labels = inputs.labels.as_ref();
        let kinds = &Kinds::of(inputs.precision, device, batch);
        let size = (h, w);
        let input = PatchConv::new(&net.input_conv, labels, size, kinds)?;
        let image = input.window(batch, w, cfg.input_channels(), device)?;
        let mut blocks = Vec::with_capacity(net.blocks.len());
        for b in &net.blocks {
            let masked = PatchConv::new(&b.masked_conv, labels, size, kinds)?;
            let window = masked.window(batch, w, f, device)?;
            blocks.push(Block { conv1: Pointwise::new(&b.conv1, labels, size, kinds)?, masked, conv2: Pointwise::new(&b.conv2, labels, size, kinds)?, window });
        }
        let head = net.head.iter().map(|c| Pointwise::new(c, labels, size, kinds)).collect::<Result<Vec<_>>>()?;
        let output = Pointwise::new(&net.output, labels, size, kinds)?;
        Ok(Plan { input, image, blocks, head, output, threads: inputs.threads, input_row: None, block_rows: Vec::new() })
    }
}

impl PixelSource for Plan {
    fn begin_row(&mut self, r: i64) -> Result<()> {
        self.threads.for_rows();
        if r > 0 {
            self.image.advance()?;
            for b in &mut self.blocks {
                b.window.advance()?;
            }
        }
        self.input_row = Some(self.input.row(&self.image, r)?);
        self.block_rows = self.blocks.iter().map(|b| b.masked.row(&b.window, r)).collect::<Result<Vec<_>>>()?;
        self.threads.for_pixels();
        Ok(())
    }

    /// The pixel's chain through every layer. With three channel groups each
    /// pass recomputes it now that the previous channel is in the image
    /// cache; the last pass leaves every cache entry of the pixel final.
    fn logits_at(&mut self, r: i64, c: i64) -> Result<Tensor> {
        let input_row = self.input_row.as_ref().expect("begin_row comes first");
        let mut x = self.input.at(&self.image, input_row, c)?.f_relu_()?; // (B, F)
        for (b, block_row) in self.blocks.iter().zip(&self.block_rows) {
            let t = b.conv1.at(&x, r, c)?.f_relu_()?; // (B, F)
            b.window.write(c, &t)?;
            let t = b.masked.at(&b.window, block_row, c)?.f_relu_()?; // (B, F/2)
            let t = b.conv2.at(&t, r, c)?.f_relu_()?; // (B, F)
            x = x.f_add_(&t)?;
        }
        for layer in &self.head {
            x = layer.at(&x, r, c)?.f_relu_()?;
        }
        self.output.at(&x, r, c) // (B, outC)
    }

    fn set_value(&mut self, _r: i64, c: i64, ch: i64, _raw: &Tensor, input: &Tensor) -> Result<()> {
        let k = input.size()[1];
        self.image.at(c)?.f_narrow(1, ch * k, k)?.f_copy_(input)?;
        Ok(())
    }
}
