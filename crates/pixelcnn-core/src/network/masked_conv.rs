//! Convolutions whose kernels may be masked, and their initialisation.
//!
//! PixelCNN factorises p(x) = Π_i p(x_i | x_<i) in raster order. A masked k×k
//! kernel keeps the taps that lie strictly before the centre in raster order:
//! every row above the centre, and the centre row's taps left of the centre.
//! Mask A (first layer) stops there, so a pixel's output never sees its own
//! input; mask B (later layers) also keeps the centre, which by then holds only
//! information from earlier pixels. For k = 7 mask A keeps 3·7 + 3 = 24 taps.
//!
//! The mask is a fixed buffer multiplied into the weight at each forward pass
//! (the weight itself is never rewritten, unlike the Keras seed), and masked
//! taps start at zero: their gradient is zero, so they stay zero and a saved
//! weight can be loaded into a plain `nn.Conv2d`.
//!
//! A colour model with per-sub-pixel outputs also masks the centre tap by
//! channel group (`channel_groups.rs`); the mask is then per (output, input)
//! channel pair instead of per tap.

use super::channel_groups::Groups;
use super::class_bias::{self, ClassBias, Conditioning};
use super::conv_relu;
use super::params::Params;
use crate::error::Result;
use crate::precision::cast;
use crate::rng::Rng;
use tch::{Device, Kind, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mask {
    None,
    A,
    B,
}

impl Mask {
    /// Whether tap (row, col) of a k×k kernel is live.
    pub fn keeps(self, k: i64, row: i64, col: i64) -> bool {
        let c = k / 2;
        match self {
            Mask::None => true,
            Mask::A => row < c || (row == c && col < c),
            Mask::B => row < c || (row == c && col <= c),
        }
    }

    /// Whether tap (row, col) of a k×k kernel from input channel `input` (of
    /// `cin`) to output channel `output` (of `cout`) is live, with the centre
    /// tap split by channel group.
    pub fn keeps_channel(self, groups: Groups, k: i64, (output, cout): (i64, i64), (input, cin): (i64, i64), row: i64, col: i64) -> bool {
        let c = k / 2;
        match self {
            Mask::None => true,
            _ if row == c && col == c => groups.centre_keeps(groups.of(output, cout), input, cin, self == Mask::A),
            _ => row < c || (row == c && col < c),
        }
    }

    /// 1×1 convolutions need no mask in one group, and mask B in three.
    pub fn pointwise(groups: Groups) -> Mask {
        if groups.is_one() { Mask::None } else { Mask::B }
    }

    /// The (1, 1, k, k) mask broadcast over channels (one group), or the
    /// (cout, cin, k, k) one with the centre split by channel group.
    fn tensor(self, groups: Groups, k: i64, cout: i64, cin: i64, device: Device) -> Result<Tensor> {
        let shape = if groups.is_one() { [1, 1, k, k] } else { [cout, cin, k, k] };
        let values: Vec<f32> = (0..shape.iter().product::<i64>())
            .map(|i| {
                let (o, ci, tap) = (i / (shape[1] * k * k), (i / (k * k)) % shape[1], i % (k * k));
                if self.keeps_channel(groups, k, (o, cout), (ci, cin), tap / k, tap % k) { 1.0 } else { 0.0 }
            })
            .collect();
        Ok(Tensor::f_from_slice(&values)?.f_reshape(shape)?.f_to_device(device)?)
    }
}

/// Glorot-uniform (cout, cin, kh, kw) weights, as Keras initialises the seed;
/// taps where `keep(output, input, row, col)` is false start at zero. Every
/// tap takes one draw, kept or not, so the stream of draws does not depend on
/// the mask.
pub fn glorot(cout: i64, cin: i64, kh: i64, kw: i64, device: Device, rng: &mut Rng, keep: impl Fn(i64, i64, i64, i64) -> bool) -> Result<Tensor> {
    let taps = kh * kw;
    let limit = (6.0 / ((cin + cout) * taps) as f64).sqrt() as f32;
    let values: Vec<f32> = (0..cout * cin * taps)
        .map(|i| {
            let tap = i % taps;
            let draw = (rng.uniform_f32() * 2.0 - 1.0) * limit;
            if keep(i / (cin * taps), (i / taps) % cin, tap / kw, tap % kw) { draw } else { 0.0 }
        })
        .collect();
    Ok(Tensor::f_from_slice(&values)?.f_reshape([cout, cin, kh, kw])?.f_to_device(device)?)
}

/// A stride-1, "same"-padded convolution with an optional causal mask.
/// Parameters: `<name>.weight` (out, in, k, k), PyTorch's OIHW layout,
/// `<name>.bias` (out,), and for conditional models `<name>.class_bias`.
pub struct Conv {
    pub weight: Tensor,
    /// (out,)
    pub bias: Tensor,
    pub kernel: i64,
    pub mask: Mask,
    mask_tensor: Option<Tensor>,
    /// Conditional models: a learned bias per class.
    pub class_bias: Option<ClassBias>,
}

impl Conv {
    /// Glorot-uniform weights and zero biases, as Keras initialises the seed.
    #[allow(clippy::too_many_arguments)]
    pub fn new(params: &mut Params, name: &str, cin: i64, cout: i64, kernel: i64, mask: Mask, groups: Groups, conditioning: Option<Conditioning>, rng: &mut Rng) -> Result<Self> {
        let weight = params.add(format!("{name}.weight"), &[cout, cin, kernel, kernel], |device| {
            glorot(cout, cin, kernel, kernel, device, rng, |o, i, r, c| mask.keeps_channel(groups, kernel, (o, cout), (i, cin), r, c))
        })?;
        let bias = params.zeros(format!("{name}.bias"), &[cout])?;
        let class_bias = conditioning.map(|k| ClassBias::new(params, format!("{name}.class_bias"), k, cout)).transpose()?;
        let mask_tensor = match mask {
            Mask::None => None,
            _ if !params.allocating() => None,
            m => Some(m.tensor(groups, kernel, cout, cin, params.device())?),
        };
        Ok(Conv { weight, bias, kernel, mask, mask_tensor, class_bias })
    }

    /// The weight the network uses: masked taps forced to zero.
    pub fn effective_weight(&self) -> Result<Tensor> {
        Ok(match &self.mask_tensor {
            Some(mask) => self.weight.f_mul(mask)?,
            None => self.weight.shallow_clone(),
        })
    }

    /// The effective weight and the bias in `kind` (the type of the input).
    fn weight_and_bias(&self, kind: Kind) -> Result<(Tensor, Tensor)> {
        Ok((cast(&self.effective_weight()?, kind)?, cast(&self.bias, kind)?))
    }

    /// x: (N, in, H, W) → (N, out, H, W), plus the class bias of `labels` (N,).
    pub fn forward(&self, x: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        let out = if self.splits() { self.forward_split(x)? } else { self.forward_dense(x)? };
        class_bias::apply(&self.class_bias, out, labels)
    }

    /// relu(forward(x)), with the ReLU fused into the convolution where
    /// `conv_relu` applies (bf16 inference on the CPU) and no class bias
    /// comes between them.
    pub fn forward_relu(&self, x: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        if self.class_bias.is_none() && conv_relu::applies(x) {
            let split = self.splits();
            let (weight, bias, pad) = self.prepared(x, split)?;
            if let Some(y) = conv_relu::conv_relu(x, &weight, &bias, (pad, pad))? {
                return keep_rows(y, x, split);
            }
        }
        Ok(self.forward(x, labels)?.f_relu_()?)
    }

    /// Whether `forward` runs the split form (`forward_split`).
    fn splits(&self) -> bool {
        matches!(self.mask, Mask::A | Mask::B) && self.kernel > 1 && split_masked_convolutions()
    }

    /// The weight and bias in x's type and the padding of the split form
    /// (`forward_split`: the kernel rows below the centre dropped) or the dense one.
    fn prepared(&self, x: &Tensor, split: bool) -> Result<(Tensor, Tensor, i64)> {
        let c = self.kernel / 2;
        let (weight, bias) = self.weight_and_bias(x.kind())?;
        let weight = if split { weight.f_narrow(2, 0, c + 1)? } else { weight }; // (out, in, c+1, k) when split
        Ok((weight, bias, c))
    }

    /// One k×k convolution with the masked weight: simple, and the reference.
    pub fn forward_dense(&self, x: &Tensor) -> Result<Tensor> {
        let (weight, bias, pad) = self.prepared(x, false)?;
        Ok(x.f_conv2d(&weight, Some(&bias), [1, 1], [pad, pad], [1, 1], 1)?)
    }

    /// The same function without the kernel rows below the centre, which the
    /// mask zeroes entirely: a (c+1)×k convolution (c = k/2) over rows r−c … r.
    /// A 3×3 kernel then costs 6 taps instead of 9, a 7×7 one 28 instead of 49;
    /// the few taps right of the centre in the last row stay (masked to zero),
    /// since splitting them off into a second convolution measured slower.
    /// On this project's 2-core CPU it trains about 10% faster and infers
    /// about 1.5× faster than the dense form (BENCHMARKS.md).
    pub fn forward_split(&self, x: &Tensor) -> Result<Tensor> {
        let (weight, bias, pad) = self.prepared(x, true)?;
        keep_rows(x.f_conv2d(&weight, Some(&bias), [1, 1], [pad, pad], [1, 1], 1)?, x, true)
    }
}

/// The split form's output has H + c rows (padding (c, c)) and its row r
/// reads input rows r−c … r, so the first H rows are the answer; the dense
/// form's output is the answer as it is.
fn keep_rows(y: Tensor, x: &Tensor, split: bool) -> Result<Tensor> {
    Ok(if split { y.f_narrow(2, 0, x.size()[2])? } else { y })
}

/// Whether masked convolutions skip their all-zero rows (`forward_split`, the
/// default) or run densely with the masked weight. `PIXELCNN_MASKED_CONV=dense`
/// selects the latter, for benchmarks that compare the two; it is read once
/// per process.
pub fn split_masked_convolutions() -> bool {
    static SPLIT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SPLIT.get_or_init(|| std::env::var("PIXELCNN_MASKED_CONV").map_or(true, |v| v != "dense"))
}
