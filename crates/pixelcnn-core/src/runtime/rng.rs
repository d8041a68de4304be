//! A small seeded generator (SplitMix64) owned by each call, so that weight
//! initialisation, data order and sampling draws never touch libtorch's global
//! generator: two models trained at once in one process stay reproducible.

#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { state: seed ^ 0x9E37_79B9_7F4A_7C15 }
    }

    /// A generator for an independent stream derived from this seed and `stream`.
    /// A generator for an independent stream derived from this seed and `stream`
    /// (one per epoch, say), so that resuming at epoch k needs no replay.
    pub fn derived(seed: u64, stream: u64) -> Self {
        Rng::new(Rng::new(seed).next_u64() ^ Rng::new(!stream).next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 random bits, exactly representable in f32.
    pub fn uniform_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        // Multiply-shift: unbiased enough for shuffling indices below 2^32.
        ((self.next_u64() >> 32) * n as u64 >> 32) as usize
    }

    /// Fisher–Yates shuffle of 0..n.
    pub fn permutation(&mut self, n: usize) -> Vec<i64> {
        let mut order: Vec<i64> = (0..n as i64).collect();
        for i in (1..n).rev() {
            order.swap(i, self.below(i + 1));
        }
        order
    }
}
