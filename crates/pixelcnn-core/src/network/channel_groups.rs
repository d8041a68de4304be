//! The order of the sub-pixels inside one pixel (PixelRNN, section 3.4).
//!
//! A colour model whose output is per sub-pixel (Bernoulli or categorical)
//! factorises p(pixel) = p(R | x_<i) · p(G | R, x_<i) · p(B | R, G, x_<i):
//! within a pixel, G may see R and B may see R and G. Every layer's feature
//! channels are split into three groups, contiguous thirds (channel j of n
//! belongs to group ⌊3j / n⌋), and at the centre tap, the only tap that reads
//! the pixel being predicted, a connection from input group a to output
//! group b is kept when a < b (mask A, the first layer, which reads the
//! image) or a ≤ b (mask B, every later layer, 1×1 ones included: they too
//! mix channels of the same pixel). Taps of earlier pixels are unrestricted.
//! Since the image's own channels are groups 0, 1, 2 and the output's
//! channels are laid out channel by channel, the logits of channel c depend
//! on the current pixel's channels before c only.
//!
//! A grayscale model has one group, for which both rules reduce to the plain
//! masks. The logistic mixture has one group whatever its channels: it
//! predicts a whole pixel from the earlier pixels and couples the channels
//! inside its distribution (output.rs).

/// How many sub-pixel groups a network's feature channels are split into: 1 or 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Groups(pub i64);

impl Groups {
    pub fn one() -> Self {
        Groups(1)
    }

    pub fn is_one(self) -> bool {
        self.0 == 1
    }

    /// The group of channel `index` of `count`.
    pub fn of(self, index: i64, count: i64) -> i64 {
        index * self.0 / count
    }

    /// Whether the centre tap connects input channel `input` (of `inputs`)
    /// to an output channel of group `out_group`; `strict` is mask A.
    pub fn centre_keeps(self, out_group: i64, input: i64, inputs: i64, strict: bool) -> bool {
        let in_group = self.of(input, inputs);
        if strict {
            in_group < out_group
        } else {
            in_group <= out_group
        }
    }
}

/// Which (output, input) channel pairs of a kernel's centre tap are live, as
/// a (cout × cin) row-major table; `out_group` gives each output channel's
/// group (a gate's 2F channels repeat the F channels' groups).
pub fn centre_table(groups: Groups, cout: i64, cin: i64, strict: bool, out_group: impl Fn(i64) -> i64) -> Vec<bool> {
    (0..cout * cin).map(|i| groups.centre_keeps(out_group(i / cin), i % cin, cin, strict)).collect()
}
