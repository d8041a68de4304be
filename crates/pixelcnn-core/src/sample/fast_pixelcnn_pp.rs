//! The incremental sampler for PixelCNN++: every layer's output at each
//! position is computed once, when it is final, from cached inputs.
//!
//! Why this is exact: the u stream at (r, c) depends only on image rows
//! above r, the ul stream only on the pixels before (r, c) (the shifts), at
//! every resolution and in both passes. So when row r starts, every u value of
//! row r (at full resolution, and of rows r/2 and r/4 below it when r is even
//! or a multiple of 4) is final: the u stream runs once per row, as real
//! convolutions over the cached rows above. When pixel (r, c) is drawn, every
//! ul value at (r, c) is final: the ul stream runs at that one position, from
//! its caches. A layer at half resolution produces position (i, j) from full
//! resolution rows 2i−1 … 2i and columns 2j−1 … 2j, which are final at pixel
//! (2i, 2j): it runs there, only at even rows and columns ("run every 2"),
//! and at quarter resolution every 4. A transposed convolution's output at
//! (r, c) reads its input at (r/2, c/2) only (its down-right form) or that
//! row (its down form): computed already. Over an image this is about one
//! forward pass of arithmetic instead of H·W of them (Ramachandran et al.
//! 2017, fast-pixel-cnn, for the same network).
//!
//! Within a row, the ul stream's convolutions split in two: their top kernel
//! row reads the row above, final when the row starts, so that part runs once
//! per row over the whole width (`Conv::top_row`, with the skip input's u
//! half and the condition terms); per pixel only the last kernel row's
//! product is left (`Conv::after_top`).
//!
//! Every map keeps its two latest rows (`Rows`, a `window.rs` window),
//! channels last with a zero column each side: the window's first state, row
//! −1, and those columns are the convolutions' padding.
//!
//! Number types (`kinds.rs`): the caches, the per-position products and the
//! 1×1 layers in the pixel kind; the whole-row convolutions cast the rows they
//! read to the row kind and their outputs back.

use super::driver::PixelSource;
use super::kinds::Kinds;
use super::window::Window;
use super::{BatchInputs, SamplerThreads};
use crate::error::{Error, Result};
use crate::network::pixelcnn_pp::{Block, PixelCnnPp};
use crate::network::weight_norm::{Layer, Shift};
use crate::precision::cast;
use tch::{Device, Kind, Tensor};

/// A shifted convolution's weight in the two forms its modes need.
struct Conv {
    /// (Cout, Cin, kh, kw) and its bias in the row kind: for whole rows.
    weight: Tensor,
    row_bias: Tensor,
    /// The bias in the pixel kind.
    bias: Tensor,
    /// The kernel rows above its last, (Cout, Cin, kh − 1, kw), row kind (None
    /// when kh = 1); and the last kernel row as a (kw·Cin, Cout) matrix, pixel
    /// kind. The top rows read input rows that are final before the output
    /// row's first pixel, so their part runs once per row (`top_row`), and
    /// only the last kernel row's product is left per pixel (`after_top`).
    top_weight: Option<Tensor>,
    last_matrix: Tensor,
    kernel: [i64; 2],
    shift: Shift,
    stride: i64,
}

impl Conv {
    fn new(layer: &Layer, kernel: [i64; 2], shift: Shift, stride: i64, kinds: &Kinds) -> Result<Self> {
        let (w, b) = layer.detached()?;
        let cout = w.size()[0];
        // (kh·kw·Cin, Cout), rows ordered (kernel row, kernel col, channel) as a channels-last patch.
        let matrix = w.f_permute([2, 3, 1, 0])?.f_contiguous()?.f_reshape([-1, cout])?;
        let [kh, kw] = kernel;
        let last_rows = kw * w.size()[1];
        let top_weight = if kh > 1 { Some(kinds.row_weight(&w.f_narrow(2, 0, kh - 1)?.f_contiguous()?)?) } else { None };
        Ok(Conv {
            weight: kinds.row_weight(&w)?,
            row_bias: kinds.row_weight(&b)?,
            last_matrix: kinds.pixel_weight(&matrix.f_narrow(0, (kh - 1) * last_rows, last_rows)?.f_contiguous()?)?,
            bias: kinds.pixel_weight(&b)?,
            top_weight,
            kernel,
            shift,
            stride,
        })
    }

    /// The first cached column output column j reads (cache coordinates).
    fn first_column(&self, j: i64) -> i64 {
        let kw = self.kernel[1];
        let left = match self.shift {
            Shift::Down => (kw - 1) / 2,
            Shift::DownRight => kw - 1,
        };
        self.stride * j - left + 1
    }

    /// The outputs of row i, (B, W_out, Cout), from the input cache: one
    /// convolution over the rows it reads, every column at once.
    fn row(&self, input: &Rows, i: i64, width: i64) -> Result<Tensor> {
        self.rows_through(input, i, width, &self.weight, self.kernel[0])
    }

    /// Row i's outputs through the kernel's top rows only, with the bias,
    /// (B, W_out, Cout) in the pixel kind: what `after_top` completes.
    fn top_row(&self, input: &Rows, i: i64, width: i64) -> Result<Tensor> {
        match &self.top_weight {
            Some(top) => self.rows_through(input, i, width, top, self.kernel[0] - 1),
            None => Ok(self.bias.f_expand([input.slots().size()[0], width, self.bias.size()[0]], false)?.f_contiguous()?),
        }
    }

    /// `weight`'s convolution over `rows` input rows from the first that
    /// output row i reads, every output column at once, plus the bias.
    fn rows_through(&self, input: &Rows, i: i64, width: i64, weight: &Tensor, rows: i64) -> Result<Tensor> {
        let [kh, kw] = self.kernel;
        let first = self.first_column(0);
        let span = self.stride * (width - 1) + kw;
        let x = input.rows(self.stride * i - kh + 1, rows)?.f_narrow(2, first, span)?.f_permute([0, 3, 1, 2])?; // (B, Cin, rows, span)
        let x = cast(&x, weight.kind())?;
        let out = x.f_conv2d(weight, Some(&self.row_bias), [1, self.stride], [0, 0], [1, 1], 1)?; // (B, Cout, 1, width)
        cast(&out.f_squeeze_dim(2)?.f_permute([0, 2, 1])?, self.bias.kind())
    }

    /// The output at (i, j), (B, Cout): `top` (this position's `top_row`
    /// value) plus the last kernel row's product. That row's kw positions
    /// lie side by side in the channels-last cache, so the patch is a view.
    fn after_top(&self, input: &Rows, top: &Tensor, i: i64, j: i64) -> Result<Tensor> {
        let kw = self.kernel[1];
        let batch = input.slots().size()[0];
        let patch = input.rows(self.stride * i, 1)?.f_narrow(2, self.first_column(j), kw)?.f_reshape([batch, -1])?;
        Ok(top.f_addmm(&patch, &self.last_matrix)?)
    }
}

/// A 1×1 layer as a (Cin, Cout) matrix.
struct Nin {
    matrix: Tensor,
    bias: Tensor,
}

impl Nin {
    fn new(layer: &Layer, kinds: &Kinds) -> Result<Self> {
        let (w, b) = layer.detached()?; // (Cout, Cin, 1, 1)
        let cout = w.size()[0];
        Ok(Nin { matrix: kinds.pixel_weight(&w.f_reshape([cout, -1])?.f_t_()?.f_contiguous()?)?, bias: kinds.pixel_weight(&b)? })
    }

    /// x: (…, Cin) → (…, Cout).
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_matmul(&self.matrix)?.f_add(&self.bias)?)
    }

    /// For an input concat_elu((p, q)) with p and q of `f` channels each,
    /// whose rows are (p, q, −p, −q): the layer on concat_elu(p) (rows p and
    /// −p, with the bias), and the matrix of rows q and −q (no bias).
    fn halves(&self, f: i64) -> Result<(Nin, Tensor)> {
        let rows = |first: i64, second: i64| -> Result<Tensor> { Ok(Tensor::f_cat(&[self.matrix.f_narrow(0, first, f)?, self.matrix.f_narrow(0, second, f)?], 0)?) };
        Ok((Nin { matrix: rows(0, 2 * f)?, bias: self.bias.shallow_clone() }, rows(f, 3 * f)?))
    }
}

/// A transposed stride-2 convolution: output (r, c) reads input row r/2
/// through kernel row r % 2.
struct Deconv {
    /// (Cin, Cout, 2, kw) and the bias, in the pixel kind (one position) and the row kind (whole rows).
    weight: Tensor,
    bias: Tensor,
    row_weight: Tensor,
    row_bias: Tensor,
    shift: Shift,
}

impl Deconv {
    fn new(layer: &Layer, shift: Shift, kinds: &Kinds) -> Result<Self> {
        let (w, b) = layer.detached()?;
        Ok(Deconv { weight: kinds.pixel_weight(&w)?, bias: kinds.pixel_weight(&b)?, row_weight: kinds.row_weight(&w)?, row_bias: kinds.row_weight(&b)?, shift })
    }

    /// Down-right form (kernel 2×2): output (r, c) = bias + input(r/2, c/2) · W[:, :, r%2, c%2].
    fn at(&self, input: &Rows, r: i64, c: i64) -> Result<Tensor> {
        let x = input.at(r / 2, c / 2)?; // (B, Cin)
        let w = self.weight.f_select(2, r % 2)?.f_select(2, c % 2)?; // (Cin, Cout)
        Ok(self.bias.f_addmm(&x, &w)?)
    }

    /// Down form (kernel 2×3), a whole output row r of width 2·W_in: a
    /// transposed convolution along the row with kernel row r % 2, cropped
    /// by one column on the left as the network crops it.
    fn row(&self, input: &Rows, r: i64, width: i64) -> Result<Tensor> {
        debug_assert_eq!(self.shift, Shift::Down);
        let inner = width / 2;
        let x = input.rows(r / 2, 1)?.f_narrow(2, 1, inner)?.f_permute([0, 3, 1, 2])?; // (B, Cin, 1, W/2)
        let x = cast(&x, self.row_weight.kind())?;
        let w = self.row_weight.f_narrow(2, r % 2, 1)?; // (Cin, Cout, 1, 3)
        let out = x.f_conv_transpose2d(&w, Some(&self.row_bias), [1, 2], [0, 0], [0, 1], 1, [1, 1])?; // (B, Cout, 1, W + 2)
        cast(&out.f_narrow(3, 1, width)?.f_squeeze_dim(2)?.f_permute([0, 2, 1])?, self.bias.kind())
    }
}

/// A gated ResNet block's weights and its two caches: concat_elu of its
/// input (read by `conv_input`) and of its hidden map (read by `conv_out`).
struct GatedBlock {
    conv_input: Conv,
    nin_skip: Option<Nin>,
    /// The down pass's ul blocks: `nin_skip` split by the halves of its
    /// input a = (u, ul): concat_elu(a) = elu(u, ul, −u, −ul), so its matrix's
    /// rows for u and −u make the (Nin) part of u, final when the row starts,
    /// and the rows for ul and −ul the per-pixel matrix.
    skip_halves: Option<(Nin, Tensor)>,
    conv_out: Conv,
    /// (B, 2F): each image's class bias.
    class: Option<Tensor>,
    /// (B, h, w, 2F): the condition map's term at the block's resolution.
    map: Option<Tensor>,
    input: Rows,
    hidden: Rows,
    /// A ul block's terms of the current row that read only what is final
    /// before its first pixel: (conv_input's top rows + the skip's u part,
    /// (B, w, F); conv_out's top rows + the condition terms, (B, w, 2F)).
    row_terms: Option<(Tensor, Tensor)>,
}

impl GatedBlock {
    fn new(block: &Block, shift: Shift, shape: [i64; 3], labels: Option<&Tensor>, kinds: &Kinds, device: Device) -> Result<Self> {
        let kernel = if shift == Shift::Down { [2, 3] } else { [2, 2] };
        let [batch, h, w] = shape;
        let f = block.conv_input.detached()?.0.size()[0];
        let (class, map) = match (&block.class_bias, labels) {
            (Some(b), Some(l)) => (b.rows(l)?.map(|r| kinds.pixel_weight(&r)).transpose()?, super::fast_pixelcnn::map_term(b, l, (h, w), kinds)?),
            _ => (None, None),
        };
        let nin_skip = block.nin_skip.as_ref().map(|n| Nin::new(n, kinds)).transpose()?;
        // Two skip inputs of F channels each, (u, ul): only the down pass's ul blocks.
        let skip_halves = match &nin_skip {
            Some(nin) if shift == Shift::DownRight && nin.matrix.size()[0] == 4 * f => Some(nin.halves(f)?),
            _ => None,
        };
        Ok(GatedBlock {
            conv_input: Conv::new(&block.conv_input, kernel, shift, 1, kinds)?,
            nin_skip,
            skip_halves,
            conv_out: Conv::new(&block.conv_out, kernel, shift, 1, kinds)?,
            class,
            map,
            input: Rows::zeros(batch, w, 2 * f, kinds.pixels, device)?,
            hidden: Rows::zeros(batch, w, 2 * f, kinds.pixels, device)?,
            row_terms: None,
        })
    }

    /// The class and condition-map terms of c2 along row i, (B, 1 or w, 2F).
    fn condition_terms(&self, mut c2: Tensor, i: i64) -> Result<Tensor> {
        if let Some(class) = &self.class {
            c2 = c2.f_add(&class.f_unsqueeze(1)?)?;
        }
        if let Some(map) = &self.map {
            c2 = c2.f_add(&map.f_select(1, i)?)?;
        }
        Ok(c2)
    }

    /// x + gate(c2), on (…, 2F).
    fn gated(x: &Tensor, c2: &Tensor) -> Result<Tensor> {
        let halves = c2.f_chunk(2, -1)?;
        Ok(x.f_add(&halves[0].f_mul(&halves[1].f_sigmoid()?)?)?)
    }

    /// A ul block at row i: the terms above, given the u part of its skip
    /// input along the row, (B, w, F) (the up pass: all of it).
    fn begin_ul_row(&mut self, u: Option<&Tensor>, i: i64) -> Result<()> {
        let width = self.input.slots().size()[2] - 2;
        let mut input_terms = self.conv_input.top_row(&self.input, i, width)?;
        let skip_u = self.skip_halves.as_ref().map(|(u_part, _)| u_part).or(self.nin_skip.as_ref());
        if let (Some(nin), Some(u)) = (skip_u, u) {
            input_terms = input_terms.f_add(&nin.apply(&concat_elu_last(u)?)?)?;
        }
        let out_terms = self.condition_terms(self.conv_out.top_row(&self.hidden, i, width)?, i)?;
        self.row_terms = Some((input_terms, out_terms));
        Ok(())
    }

    /// A ul block's output at (i, j), (B, F), given its input x and the ul
    /// half of its skip input there (the down pass), after `begin_ul_row(i)`.
    fn at(&self, x: &Tensor, ul: Option<&Tensor>, i: i64, j: i64) -> Result<Tensor> {
        let Some((input_terms, out_terms)) = &self.row_terms else {
            return Err(Error::Internal("a PixelCNN++ ul block ran before its row began".into()));
        };
        self.input.write(i, j, &concat_elu_last(x)?)?;
        let mut t = self.conv_input.after_top(&self.input, &input_terms.f_select(1, j)?, i, j)?;
        if let (Some((_, ul_matrix)), Some(ul)) = (&self.skip_halves, ul) {
            t = t.f_addmm(&concat_elu_last(ul)?, ul_matrix)?;
        }
        self.hidden.write(i, j, &concat_elu_last(&t)?)?;
        let c2 = self.conv_out.after_top(&self.hidden, &out_terms.f_select(1, j)?, i, j)?;
        Self::gated(x, &c2)
    }

    /// A u block's outputs along row i, (B, W, F).
    fn row(&self, x: &Tensor, a: Option<&Tensor>, i: i64) -> Result<Tensor> {
        let width = x.size()[1];
        self.input.write_row(i, &concat_elu_last(x)?)?;
        let mut t = self.conv_input.row(&self.input, i, width)?;
        if let (Some(nin), Some(a)) = (&self.nin_skip, a) {
            t = t.f_add(&nin.apply(&concat_elu_last(a)?)?)?;
        }
        self.hidden.write_row(i, &concat_elu_last(&t)?)?;
        let c2 = self.condition_terms(self.conv_out.row(&self.hidden, i, width)?, i)?;
        Self::gated(x, &c2)
    }
}

/// concat_elu along the last (channel) dimension.
fn concat_elu_last(x: &Tensor) -> Result<Tensor> {
    let last = x.dim() as i64 - 1;
    Ok(Tensor::f_cat(&[x, &x.f_neg()?], last)?.f_elu()?)
}

/// A map's two latest rows (`window.rs`), channels last with a zero column
/// each side, (B, 2, w + 2, C): every layer here reads its input at its
/// output's row and the row above (the stride-2 ones at rows 2i − 1 and 2i
/// of the finer map, the latest two there when row i is computed).
struct Rows(Window);

impl Rows {
    fn zeros(batch: i64, width: i64, channels: i64, kind: Kind, device: Device) -> Result<Self> {
        Ok(Rows(Window::zeros(&[batch, 2, width + 2, channels], 1, kind, device)?))
    }

    fn slots(&self) -> &Tensor {
        &self.0.slots
    }

    /// Rows first … first + n − 1, (B, n, w + 2, C).
    fn rows(&self, first: i64, n: i64) -> Result<Tensor> {
        self.0.rows(first, n)
    }

    /// Writes row i (B, w, C).
    fn write_row(&self, i: i64, row: &Tensor) -> Result<()> {
        let width = row.size()[1];
        self.0.advance_to(i)?;
        self.0.row(i)?.f_narrow(1, 1, width)?.f_copy_(row)?;
        Ok(())
    }

    /// Writes position (i, j), (B, C).
    fn write(&self, i: i64, j: i64, value: &Tensor) -> Result<()> {
        self.0.advance_to(i)?;
        self.0.row(i)?.f_select(1, j + 1)?.f_copy_(value)?;
        Ok(())
    }

    /// A map's values (not a layer's input): row i (B, w, C) or position (i, j) (B, C).
    fn row(&self, i: i64, width: i64) -> Result<Tensor> {
        Ok(self.0.row(i)?.f_narrow(1, 1, width)?)
    }

    fn at(&self, i: i64, j: i64) -> Result<Tensor> {
        Ok(self.0.row(i)?.f_select(1, j + 1)?)
    }
}

pub(super) struct Plan {
    width: i64,
    /// Blocks per stage in the up pass.
    blocks: usize,
    /// The image as the network reads it (C channels, then the ones channel).
    image: Rows,
    /// A row of it before any value is drawn, (B, W + 2, C + 1): what the
    /// reference reads there (the unsampled values and the ones), zero
    /// columns each side.
    blank_row: Tensor,
    u_init: Conv,
    ul_init: [Conv; 2],
    /// [level][block]: the up pass's blocks, u and ul.
    up_u: Vec<Vec<GatedBlock>>,
    up_ul: Vec<Vec<GatedBlock>>,
    /// [stage][block]: the down pass's blocks (stage 0 at quarter resolution).
    down_u: Vec<Vec<GatedBlock>>,
    down_ul: Vec<Vec<GatedBlock>>,
    downsize_u: Vec<Conv>,
    downsize_ul: Vec<Conv>,
    upsize_u: Vec<Deconv>,
    upsize_ul: Vec<Deconv>,
    nin_out: Nin,
    /// (C, outC) masked, for the current pixel's drawn channels.
    pixel_link: Option<Tensor>,
    /// The up pass's outputs, the U-Net skips: entry e of the network's list
    /// (0: the input layers, then each block, and each downsizing).
    skips_u: Vec<Rows>,
    skips_ul: Vec<Rows>,
    /// The down pass's u at each block's output, [stage][block]: the ul blocks' `a` beside it.
    down_u_out: Vec<Vec<Rows>>,
    /// The down pass's ul entering each stage after upsizing ([1], [2]); and
    /// the output of each stage's last block ([0], [1]), read by the upsizing.
    down_ul_last: Vec<Rows>,
    down_u_last: Vec<Rows>,
    /// Each level's entry into the ul stream along its current row, the part
    /// final before the row's first pixel, (B, w, F): level 0, at column j,
    /// down_shift(ul_init0(x)) + ul_init1's top kernel row at column j − 1
    /// (its right shift); levels 1 and 2, the downsizing's top kernel row.
    ul_entry_terms: Vec<Option<Tensor>>,
    threads: SamplerThreads,
    /// The logits of the last pixel computed, before `pixel_link` (the
    /// network proper does not read the pixel itself, so further channel passes reuse them).
    last: Option<((i64, i64), Tensor)>,
}

impl Plan {
    pub(super) fn new(net: &PixelCnnPp, inputs: &BatchInputs, batch: i64) -> Result<Self> {
        let cfg = &net.config;
        let (h, w, f, c) = (cfg.height, cfg.width, cfg.filters, cfg.channels);
        let device = net.device;
        let kinds = &Kinds::of(inputs.precision, device, batch);
        let kind = kinds.pixels;
        let labels = inputs.labels.as_ref();
        let level = |l: i64| [batch, h >> l, w >> l];
        let blocks = |stage: &[Block], shift: Shift, l: i64| stage.iter().map(|b| GatedBlock::new(b, shift, level(l), labels, kinds, device)).collect::<Result<Vec<_>>>();
        let up_u = net.up.iter().enumerate().map(|(l, s)| blocks(&s.u, Shift::Down, l as i64)).collect::<Result<Vec<_>>>()?;
        let up_ul = net.up.iter().enumerate().map(|(l, s)| blocks(&s.ul, Shift::DownRight, l as i64)).collect::<Result<Vec<_>>>()?;
        let down_u = net.down.iter().enumerate().map(|(s, st)| blocks(&st.u, Shift::Down, 2 - s as i64)).collect::<Result<Vec<_>>>()?;
        let down_ul = net.down.iter().enumerate().map(|(s, st)| blocks(&st.ul, Shift::DownRight, 2 - s as i64)).collect::<Result<Vec<_>>>()?;
        let r = up_u[0].len();
        // The skips' levels: the input layers and stage 0 at full resolution, then a downsizing and a stage per level.
        let skip_level = |e: usize| if e <= r { 0 } else if e <= 2 * r + 1 { 1 } else { 2 };
        let map = |l: i64| Rows::zeros(batch, w >> l, f, kind, device);
        let skips_u = (0..3 * r + 3).map(|e| map(skip_level(e))).collect::<Result<Vec<_>>>()?;
        let skips_ul = (0..3 * r + 3).map(|e| map(skip_level(e))).collect::<Result<Vec<_>>>()?;
        let down_u_out = down_u.iter().enumerate().map(|(s, st)| st.iter().map(|_| map(2 - s as i64)).collect::<Result<Vec<_>>>()).collect::<Result<Vec<_>>>()?;
        let image = Rows::zeros(batch, w, cfg.input_channels() + 1, kind, device)?;
        let blank_row = Tensor::f_zeros([batch, w + 2, cfg.input_channels() + 1], (kind, device))?;
        // Every position reads as the reference's unsampled image (values 0) with its channel of ones.
        let zeros = Tensor::f_zeros([1, c], (Kind::Float, device))?;
        let blank = crate::network::token_embedding::value_input(cfg, inputs.embedding.as_ref(), &zeros)?.f_reshape([1, 1, 1, cfg.input_channels()])?;
        let ones = Tensor::f_ones([1, 1, 1, 1], (Kind::Float, device))?;
        blank_row.f_narrow(1, 1, w)?.f_copy_(&cast(&Tensor::f_cat(&[blank, ones], 3)?, kind)?.f_reshape([1, 1, -1])?)?;
        let pixel_link = match &net.pixel_link {
            Some((weight, mask)) => Some(kinds.pixel_weight(&weight.f_mul(mask)?.f_flatten(1, 3)?.f_t_()?.f_contiguous()?)?),
            None => None,
        };
        Ok(Plan {
            width: w,
            blocks: r,
            image,
            blank_row,
            u_init: Conv::new(&net.u_init, [2, 3], Shift::Down, 1, kinds)?,
            ul_init: [Conv::new(&net.ul_init[0], [1, 3], Shift::Down, 1, kinds)?, Conv::new(&net.ul_init[1], [2, 1], Shift::DownRight, 1, kinds)?],
            downsize_u: net.downsize_u.iter().map(|l| Conv::new(l, [2, 3], Shift::Down, 2, kinds)).collect::<Result<Vec<_>>>()?,
            downsize_ul: net.downsize_ul.iter().map(|l| Conv::new(l, [2, 2], Shift::DownRight, 2, kinds)).collect::<Result<Vec<_>>>()?,
            upsize_u: net.upsize_u.iter().map(|l| Deconv::new(l, Shift::Down, kinds)).collect::<Result<Vec<_>>>()?,
            upsize_ul: net.upsize_ul.iter().map(|l| Deconv::new(l, Shift::DownRight, kinds)).collect::<Result<Vec<_>>>()?,
            nin_out: Nin::new(&net.nin_out, kinds)?,
            pixel_link,
            up_u,
            up_ul,
            down_u,
            down_ul,
            skips_u,
            skips_ul,
            down_u_out,
            down_ul_last: vec![map(2)?, map(1)?],
            down_u_last: vec![map(2)?, map(1)?],
            ul_entry_terms: vec![None, None, None],
            threads: inputs.threads,
            last: None,
        })
    }

    /// (B, width, F) zeros: a down-shifted map's first row.
    fn zeros_row(&self, width: i64) -> Result<Tensor> {
        let f = self.skips_u[0].slots().size()[3];
        Ok(Tensor::f_zeros([self.blank_row.size()[0], width, f], (self.blank_row.kind(), self.blank_row.device()))?)
    }

    /// The first skip entry a down-pass stage pops (then one less per block).
    fn first_pop(&self, stage: usize) -> usize {
        let r = self.blocks;
        [3 * r + 1, 2 * r + 1, r][stage]
    }

    /// Row i of the up pass's u at `level` (its stage's blocks, after the
    /// layer that enters the level), stored in the skips.
    fn up_u_row(&self, level: usize, i: i64) -> Result<()> {
        let r = self.blocks;
        let width = self.width >> level;
        let first = [0, r + 1, 2 * r + 2][level];
        let mut u = match level {
            0 if i == 0 => self.zeros_row(width)?,
            // down_shift(u_init(x)): u_init's output at row i − 1.
            0 => self.u_init.row(&self.image, i - 1, width)?,
            l => self.downsize_u[l - 1].row(&self.skips_u[first - 1], i, width)?,
        };
        self.skips_u[first].write_row(i, &u)?;
        for (k, block) in self.up_u[level].iter().enumerate() {
            u = block.row(&u, None, i)?;
            self.skips_u[first + 1 + k].write_row(i, &u)?;
        }
        Ok(())
    }

    /// Row i of the down pass's u at stage s (level 2 − s).
    fn down_u_row(&self, stage: usize, i: i64) -> Result<()> {
        let level = 2 - stage;
        let width = self.width >> level;
        let mut u = match stage {
            0 => self.skips_u[3 * self.blocks + 2].row(i, width)?,
            s => self.upsize_u[s - 1].row(&self.down_u_last[s - 1], i, width)?,
        };
        let mut pop = self.first_pop(stage);
        for (k, block) in self.down_u[stage].iter().enumerate() {
            let skip = self.skips_u[pop].row(i, width)?;
            u = block.row(&u, Some(&skip), i)?;
            self.down_u_out[stage][k].write_row(i, &u)?;
            pop = pop.wrapping_sub(1);
        }
        if stage < 2 {
            self.down_u_last[stage].write_row(i, &u)?;
        }
        Ok(())
    }

    /// Before row i of `level`'s first pixel: the terms of its ul stream that
    /// read only rows above i (final now) or the u stream's row i (computed
    /// by `begin_row` before this).
    fn begin_ul_row(&mut self, level: usize, i: i64) -> Result<()> {
        let r = self.blocks;
        let first = [0, r + 1, 2 * r + 2][level];
        let width = self.width >> level;
        let entry = match level {
            0 => {
                let above = if i > 0 { self.ul_init[0].row(&self.image, i - 1, width)? } else { self.zeros_row(width)? };
                // Column j adds ul_init1's output at j − 1; column 0 nothing (the right shift's zeros).
                let left = self.ul_init[1].top_row(&self.image, i, width)?;
                Tensor::f_cat(&[above.f_narrow(1, 0, 1)?, above.f_narrow(1, 1, width - 1)?.f_add(&left.f_narrow(1, 0, width - 1)?)?], 1)?
            }
            l => self.downsize_ul[l - 1].top_row(&self.skips_ul[first - 1], i, width)?,
        };
        self.ul_entry_terms[level] = Some(entry);
        for k in 0..self.up_ul[level].len() {
            let u = self.skips_u[first + 1 + k].row(i, width)?;
            self.up_ul[level][k].begin_ul_row(Some(&u), i)?;
        }
        let stage = 2 - level;
        for k in 0..self.down_ul[stage].len() {
            let u = self.down_u_out[stage][k].row(i, width)?;
            self.down_ul[stage][k].begin_ul_row(Some(&u), i)?;
        }
        Ok(())
    }

    /// The up pass's ul at (i, j) of `level`.
    fn up_ul_at(&self, level: usize, i: i64, j: i64) -> Result<()> {
        let r = self.blocks;
        let first = [0, r + 1, 2 * r + 2][level];
        let Some(entry) = &self.ul_entry_terms[level] else {
            return Err(Error::Internal("a PixelCNN++ ul level ran before its row began".into()));
        };
        let entry = entry.f_select(1, j)?;
        let mut ul = match level {
            0 if j == 0 => entry,
            0 => self.ul_init[1].after_top(&self.image, &entry, i, j - 1)?,
            l => self.downsize_ul[l - 1].after_top(&self.skips_ul[first - 1], &entry, i, j)?,
        };
        self.skips_ul[first].write(i, j, &ul)?;
        for (k, block) in self.up_ul[level].iter().enumerate() {
            ul = block.at(&ul, None, i, j)?;
            self.skips_ul[first + 1 + k].write(i, j, &ul)?;
        }
        Ok(())
    }

    /// The down pass's ul at (i, j) of stage s; returns the stage's output there.
    fn down_ul_at(&self, stage: usize, i: i64, j: i64) -> Result<Tensor> {
        let mut ul = match stage {
            0 => self.skips_ul[3 * self.blocks + 2].at(i, j)?,
            s => self.upsize_ul[s - 1].at(&self.down_ul_last[s - 1], i, j)?,
        };
        let mut pop = self.first_pop(stage);
        for block in self.down_ul[stage].iter() {
            ul = block.at(&ul, Some(&self.skips_ul[pop].at(i, j)?), i, j)?;
            pop = pop.wrapping_sub(1);
        }
        if stage < 2 {
            self.down_ul_last[stage].write(i, j, &ul)?;
        }
        Ok(ul)
    }
}

impl PixelSource for Plan {
    /// The u stream of row r, and of rows r/2 and r/4 at the lower
    /// resolutions when r is even or a multiple of 4 (their inputs, rows
    /// up to r at full resolution, are final now).
    fn begin_row(&mut self, r: i64) -> Result<()> {
        self.threads.for_rows();
        self.up_u_row(0, r)?;
        if r % 2 == 0 {
            self.up_u_row(1, r / 2)?;
        }
        if r % 4 == 0 {
            self.up_u_row(2, r / 4)?;
            self.down_u_row(0, r / 4)?;
        }
        if r % 2 == 0 {
            self.down_u_row(1, r / 2)?;
        }
        self.down_u_row(2, r)?;
        self.begin_ul_row(0, r)?;
        if r % 2 == 0 {
            self.begin_ul_row(1, r / 2)?;
        }
        if r % 4 == 0 {
            self.begin_ul_row(2, r / 4)?;
        }
        // Everything that reads the image rows above has run: row r enters, as yet undrawn.
        self.image.0.advance_to(r)?;
        self.image.0.row(r)?.f_copy_(&self.blank_row)?;
        self.threads.for_pixels();
        Ok(())
    }

    /// The ul stream at (r, c), and at (r/2, c/2) and (r/4, c/4) when they
    /// fall on this pixel; then the logits.
    fn logits_at(&mut self, r: i64, c: i64) -> Result<Tensor> {
        let logits = match &self.last {
            Some((at, logits)) if *at == (r, c) => logits.shallow_clone(),
            _ => {
                self.up_ul_at(0, r, c)?;
                let (half, quarter) = (r % 2 == 0 && c % 2 == 0, r % 4 == 0 && c % 4 == 0);
                if half {
                    self.up_ul_at(1, r / 2, c / 2)?;
                }
                if quarter {
                    self.up_ul_at(2, r / 4, c / 4)?;
                    let _ = self.down_ul_at(0, r / 4, c / 4)?;
                }
                if half {
                    let _ = self.down_ul_at(1, r / 2, c / 2)?;
                }
                let ul = self.down_ul_at(2, r, c)?;
                let logits = self.nin_out.apply(&ul.f_elu()?)?;
                self.last = Some(((r, c), logits.shallow_clone()));
                logits
            }
        };
        match &self.pixel_link {
            Some(link) => {
                let channels = self.image.slots().size()[3] - 1;
                let pixel = self.image.at(r, c)?.f_narrow(1, 0, channels)?;
                Ok(logits.f_add(&pixel.f_matmul(link)?)?)
            }
            None => Ok(logits),
        }
    }

    fn set_value(&mut self, r: i64, c: i64, ch: i64, _raw: &Tensor, input: &Tensor) -> Result<()> {
        let k = input.size()[1];
        self.image.at(r, c)?.f_narrow(1, ch * k, k)?.f_copy_(input)?;
        Ok(())
    }
}
