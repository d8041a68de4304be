//! PixelCNN++'s layers: shifted convolutions, shifted transposed
//! convolutions (the stride-2 steps up) and 1×1 `nin` layers, each
//! optionally weight-normalised.
//!
//! Weight normalisation (Salimans & Kingma 2016) trains a direction v and a
//! gain g per slice along the first weight dimension: w = g · v / ‖v‖. Both
//! published codes train PixelCNN++ so; the names and shapes here are
//! PyTorch's `weight_norm` (dim 0) on the PyTorch port's modules: `weight_g`
//! (d0, 1, …), `weight_v`, `bias`. For a transposed convolution the first
//! dimension of the weight (in, out, kh, kw) is the input channel, so the
//! gain there is per input channel, as the port computes it. Without
//! normalisation a layer has a plain `weight`.
//!
//! A down-shifted convolution with a (kh, kw) kernel pads kh − 1 rows on top
//! and (kw − 1)/2 columns each side (it reads the rows above and the current
//! one, centred); a down-right-shifted one pads kh − 1 rows on top and kw − 1
//! columns on the left (it reads up and to the left). Each output then
//! depends on no input below it, nor (down-right) to its right.

use super::params::Params;
use crate::error::Result;
use crate::precision::cast;
use crate::rng::Rng;
use tch::Tensor;

/// Where a convolution's receptive field sits relative to its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shift {
    /// Rows above and the current one, centred horizontally.
    Down,
    /// Rows above and the current one, columns left and the current one.
    DownRight,
}

enum Op {
    /// (left, right, top) zero padding, then a convolution of this stride.
    Conv { pad: [i64; 3], stride: i64 },
    /// A stride-2 transposed convolution (output padding 1), cropped to
    /// twice its input's size: rows from the top, columns as `Shift` says.
    Deconv { shift: Shift },
    /// A 1×1 convolution (the port's `nin`, a Linear over channels).
    Nin,
}

pub struct Layer {
    /// `weight_v` (weight-normalised) or `weight`.
    direction: Tensor,
    /// `weight_g`, with weight normalisation.
    gain: Option<Tensor>,
    bias: Tensor,
    op: Op,
    /// (kh, kw) of the kernel (1×1 for nin).
    kernel: [i64; 2],
}

impl Layer {
    /// A shifted convolution `name` (the port's `<name>.conv`).
    #[allow(clippy::too_many_arguments)]
    pub fn conv(params: &mut Params, name: &str, cin: i64, cout: i64, kernel: [i64; 2], shift: Shift, stride: i64, norm: bool, rng: &mut Rng) -> Result<Self> {
        let [kh, kw] = kernel;
        let pad = match shift {
            Shift::Down => [(kw - 1) / 2, (kw - 1) / 2, kh - 1],
            Shift::DownRight => [kw - 1, 0, kh - 1],
        };
        Self::new(params, &format!("{name}.conv"), [cout, cin, kh, kw], norm, Op::Conv { pad, stride }, rng)
    }

    /// A stride-2 shifted transposed convolution (the port's `<name>.deconv`).
    #[allow(clippy::too_many_arguments)]
    pub fn deconv(params: &mut Params, name: &str, cin: i64, cout: i64, kernel: [i64; 2], shift: Shift, norm: bool, rng: &mut Rng) -> Result<Self> {
        Self::new(params, &format!("{name}.deconv"), [cin, cout, kernel[0], kernel[1]], norm, Op::Deconv { shift }, rng)
    }

    /// A 1×1 layer (the port's `<name>.lin_a`, weight (out, in)).
    pub fn nin(params: &mut Params, name: &str, cin: i64, cout: i64, norm: bool, rng: &mut Rng) -> Result<Self> {
        let mut layer = Self::new(params, &format!("{name}.lin_a"), [cout, cin, 1, 1], norm, Op::Nin, rng)?;
        layer.kernel = [1, 1];
        Ok(layer)
    }

    /// Directions drawn as PyTorch initialises the port's layers
    /// (kaiming-uniform with a = √5: U(±1/√fan_in)), gains equal to their
    /// norms (so w = v at the start), zero biases. Glorot's bound, which the
    /// other architectures use, is about twice this for the 2×3 convolutions
    /// of 2F → F channels; over PixelCNN++'s dozens of residual blocks that
    /// starts the full preset at 15 nats per sub-pixel and diverges at Adam
    /// 5e-4, where the port's initialisation starts at 6.3 and trains.
    /// `shape` is the 4-d weight; a nin's is stored 2-d.
    fn new(params: &mut Params, name: &str, shape: [i64; 4], norm: bool, op: Op, rng: &mut Rng) -> Result<Self> {
        let stored: Vec<i64> = if matches!(op, Op::Nin) { shape[..2].to_vec() } else { shape.to_vec() };
        // PyTorch's fan-in is the weight's second dimension times the taps:
        // the input channels of a convolution or a Linear, the output
        // channels of a transposed convolution (stored (in, out, kh, kw)).
        let fan_in = shape[1] * shape[2] * shape[3];
        let bound = 1.0 / (fan_in as f32).sqrt();
        let draw = |device| -> Result<Tensor> {
            let values: Vec<f32> = (0..stored.iter().product::<i64>()).map(|_| (rng.uniform_f32() * 2.0 - 1.0) * bound).collect();
            Ok(Tensor::f_from_slice(&values)?.f_reshape(stored.as_slice())?.f_to_device(device)?)
        };
        let bias_len = match op {
            Op::Deconv { .. } => shape[1],
            _ => shape[0],
        };
        let bias = params.zeros(format!("{name}.bias"), &[bias_len])?;
        let (direction, gain) = if norm {
            let v = params.add(format!("{name}.weight_v"), &stored, draw)?;
            let mut gain_shape = vec![stored[0]];
            gain_shape.extend(std::iter::repeat(1).take(stored.len() - 1));
            let g = params.add(format!("{name}.weight_g"), &gain_shape, |_| Ok(norm_of(&v.f_detach()?)?))?;
            (v, Some(g))
        } else {
            (params.add(format!("{name}.weight"), &stored, draw)?, None)
        };
        Ok(Layer { direction, gain, bias, op, kernel: [shape[2], shape[3]] })
    }

    /// The weight the layer computes with: g · v / ‖v‖, or the plain weight.
    pub fn weight(&self) -> Result<Tensor> {
        let w = match &self.gain {
            Some(g) => self.direction.f_mul(&g.f_div(&norm_of(&self.direction)?)?)?,
            None => self.direction.shallow_clone(),
        };
        Ok(match self.op {
            Op::Nin => w.f_unsqueeze(-1)?.f_unsqueeze(-1)?,
            _ => w,
        })
    }

    /// The weight (4-d, detached: (out, in, kh, kw), or (in, out, kh, kw) for a
    /// transposed convolution) and bias, for the incremental sampler.
    pub fn detached(&self) -> Result<(Tensor, Tensor)> {
        Ok((self.weight()?.f_detach()?, self.bias.f_detach()?))
    }

    /// x: (N, in, H, W) → (N, out, H', W'); in the type of `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = cast(&self.weight()?, x.kind())?;
        let b = cast(&self.bias, x.kind())?;
        let [kh, kw] = self.kernel;
        Ok(match self.op {
            Op::Conv { pad: [left, right, top], stride } => {
                x.f_constant_pad_nd([left, right, top, 0])?.f_conv2d(&w, Some(&b), [stride, stride], [0, 0], [1, 1], 1)?
            }
            Op::Nin => x.f_conv2d(&w, Some(&b), [1, 1], [0, 0], [1, 1], 1)?,
            Op::Deconv { shift } => {
                let y = x.f_conv_transpose2d(&w, Some(&b), [2, 2], [0, 0], [1, 1], 1, [1, 1])?;
                let (h, wd) = (y.size()[2], y.size()[3]);
                let y = y.f_narrow(2, 0, h - kh + 1)?;
                match shift {
                    Shift::Down => y.f_narrow(3, (kw - 1) / 2, wd - 2 * ((kw - 1) / 2))?,
                    Shift::DownRight => y.f_narrow(3, 0, wd - kw + 1)?,
                }
            }
        })
    }
}

/// ‖v‖ over every dimension but the first, kept for broadcasting.
fn norm_of(v: &Tensor) -> Result<Tensor> {
    let dims: Vec<i64> = (1..v.dim() as i64).collect();
    Ok(v.f_square()?.f_sum_dim_intlist(dims.as_slice(), true, tch::Kind::Float)?.f_sqrt()?)
}

/// The map moved one row down (a zero row on top): nothing of a row reaches itself.
pub fn down_shift(x: &Tensor) -> Result<Tensor> {
    let h = x.size()[2];
    Ok(x.f_narrow(2, 0, h - 1)?.f_constant_pad_nd([0, 0, 1, 0])?)
}

/// The map moved one column right (a zero column on the left).
pub fn right_shift(x: &Tensor) -> Result<Tensor> {
    let w = x.size()[3];
    Ok(x.f_narrow(3, 0, w - 1)?.f_constant_pad_nd([1, 0, 0, 0])?)
}

/// elu([x, −x]) along the channels: PixelCNN++'s non-linearity, which keeps
/// both signs' information (twice the channels).
pub fn concat_elu(x: &Tensor) -> Result<Tensor> {
    Ok(Tensor::f_cat(&[x, &x.f_neg()?], 1)?.f_elu()?)
}
