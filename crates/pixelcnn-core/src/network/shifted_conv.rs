//! Convolutions whose kernels are cut to the causal part instead of masked:
//! the gated network's stacks read a rectangle above the pixel (vertical) or
//! a strip to its left (horizontal), so every tap they hold is live.
//!
//! libtorch's convolution pads symmetrically, so the input is padded here
//! instead: pt rows on top and kh − 1 − pt below (pl and kw − 1 − pl columns),
//! then convolved unpadded, which gives exactly H × W outputs whose row r reads
//! input rows r − pt … r − pt + kh − 1. (Padding symmetrically and cutting the
//! extra output rows computes the same thing, but leaves non-contiguous views
//! for the gates and a zero-fill and copy in the backward pass; this form
//! trained the gated preset about 5% faster on the development machine.)

use super::channel_groups::{centre_table, Groups};
use super::class_bias::ClassBias;
use super::masked_conv::glorot;
use super::params::Params;
use crate::error::Result;
use crate::precision::cast;
use crate::rng::Rng;
use tch::Tensor;

/// A horizontal convolution of a colour model with three channel groups
/// reads the current pixel through its last kernel column, which is masked
/// by channel group (`channel_groups.rs`).
#[derive(Clone, Copy, Debug)]
pub struct CentreMask {
    pub groups: Groups,
    /// Mask A (the first layer, reading the image) or B.
    pub strict: bool,
    /// The outputs are a gate's 2F channels, whose halves share the groups of F.
    pub gate_outputs: bool,
}

impl CentreMask {
    /// The (cout·cin) live pairs of the centre column.
    fn table(self, cout: i64, cin: i64) -> Vec<bool> {
        let half = if self.gate_outputs { cout / 2 } else { cout };
        centre_table(self.groups, cout, cin, self.strict, |o| self.groups.of(o % half, half))
    }
}

/// Parameters `<name>.weight` (out, in, kh, kw), PyTorch's OIHW layout, and
/// `<name>.bias` (out,).
pub struct ShiftedConv {
    pub weight: Tensor,
    pub bias: Tensor,
    /// (top, left) padding; output row r reads input rows r − top … r − top + kh − 1.
    pub padding: [i64; 2],
    /// (out, in, 1, kw) with the centre column split by channel group.
    mask: Option<Tensor>,
}

impl ShiftedConv {
    #[allow(clippy::too_many_arguments)]
    pub fn new(params: &mut Params, name: &str, cin: i64, cout: i64, kernel: [i64; 2], padding: [i64; 2], centre: Option<CentreMask>, rng: &mut Rng) -> Result<Self> {
        let [kh, kw] = kernel;
        let table = centre.map(|m| m.table(cout, cin));
        let live = |o: i64, i: i64, _r: i64, c: i64| match &table {
            Some(t) if c == kw - 1 => t[(o * cin + i) as usize],
            _ => true,
        };
        let weight = params.add(format!("{name}.weight"), &[cout, cin, kh, kw], |device| glorot(cout, cin, kh, kw, device, rng, &live))?;
        let bias = params.zeros(format!("{name}.bias"), &[cout])?;
        let mask = match &table {
            Some(_) if params.allocating() => {
                let values: Vec<f32> = (0..cout * cin * kh * kw)
                    .map(|i| if live(i / (cin * kh * kw), (i / (kh * kw)) % cin, 0, i % kw) { 1.0 } else { 0.0 })
                    .collect();
                Some(Tensor::f_from_slice(&values)?.f_reshape([cout, cin, kh, kw])?.f_to_device(params.device())?)
            }
            _ => None,
        };
        Ok(ShiftedConv { weight, bias, padding, mask })
    }

    /// The weight the network uses: masked centre pairs forced to zero.
    pub fn effective_weight(&self) -> Result<Tensor> {
        Ok(match &self.mask {
            Some(mask) => self.weight.f_mul(mask)?,
            None => self.weight.shallow_clone(),
        })
    }

    /// x: (N, in, H, W) → (N, out, H, W).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (weight, bias) = (cast(&self.effective_weight()?, x.kind())?, cast(&self.bias, x.kind())?);
        let (kh, kw) = (self.weight.size()[2], self.weight.size()[3]);
        let [top, left] = self.padding;
        // Negative padding crops: the first layer's vertical kernel (p0 rows
        // above, none of the current row) drops the image's last row.
        let padded = x.f_constant_pad_nd([left, kw - 1 - left, top, kh - 1 - top])?;
        Ok(padded.f_conv2d(&weight, Some(&bias), [1, 1], [0, 0], [1, 1], 1)?)
    }

    /// The weight as a ((kh·kw·in), out) matrix whose rows follow a
    /// channels-last patch (kernel row, kernel column, channel): the fast
    /// sampler multiplies patches of its caches by it.
    pub fn patch_matrix(&self) -> Result<Tensor> {
        let cout = self.weight.size()[0];
        Ok(self.effective_weight()?.f_detach()?.f_permute([2, 3, 1, 0])?.f_contiguous()?.f_reshape([-1, cout])?)
    }
}

/// `tanh(a) ⊙ σ(b)` over the two halves of the channels of `x` (dim 1);
/// in training on the CPU in one fused pass (`fused_gate.rs`).
pub fn gate(x: &Tensor) -> Result<Tensor> {
    if let Some(g) = super::fused_gate::gate(x)? {
        return Ok(g);
    }
    let halves = x.f_chunk(2, 1)?;
    Ok(halves[0].f_tanh()?.f_mul(&halves[1].f_sigmoid()?)?)
}

/// A class bias over 2F gate channels, `<layer>.v_class_bias` / `.h_class_bias`.
pub fn gate_bias(params: &mut Params, name: String, conditioning: Option<super::class_bias::Conditioning>, channels: i64) -> Result<Option<ClassBias>> {
    conditioning.map(|k| ClassBias::new(params, name, k, channels)).transpose()
}
