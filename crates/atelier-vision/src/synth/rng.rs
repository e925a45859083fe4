//! Seeded random streams. Every image, design and plan draws from its own stream derived
//! from the run seed, so output does not depend on thread scheduling.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Which part of a run a random stream belongs to; keeps streams for the same index apart.
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    Plan = 1,
    Design = 2,
    Shot = 3,
    LabelNoise = 4,
    Preview = 5,
    Family = 6,
    Variant = 7,
}

/// One 64-bit step of SplitMix64, used to spread (seed, stream, index) over the key.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A random stream with the handful of draws the renderer needs; never panics on
/// degenerate ranges.
pub struct Dice(ChaCha8Rng);

impl Dice {
    pub fn new(seed: u64, stream: Stream, index: u64) -> Dice {
        let mut state =
            seed ^ (stream as u64).rotate_left(56) ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        let mut key = [0u8; 32];
        for chunk in key.chunks_exact_mut(8) {
            chunk.copy_from_slice(&splitmix(&mut state).to_le_bytes());
        }
        Dice(ChaCha8Rng::from_seed(key))
    }

    /// A fresh 64-bit value, e.g. to seed a sub-stream.
    pub fn next_u64(&mut self) -> u64 {
        self.0.random()
    }

    /// Uniform in `[lo, hi)`; returns `lo` when the range is empty.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        let t: f32 = self.0.random();
        lo + (hi - lo) * t
    }

    /// Uniform integer in `lo..=hi`; returns `lo` when `hi < lo`.
    pub fn int(&mut self, lo: usize, hi: usize) -> usize {
        if hi <= lo {
            lo
        } else {
            self.0.random_range(lo..=hi)
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        let t: f64 = self.0.random();
        t < p
    }

    /// Symmetric jitter: uniform in `[-amount, amount)`.
    pub fn jitter(&mut self, amount: f32) -> f32 {
        self.range(-amount, amount)
    }

    /// Index drawn with probability proportional to `weights` (non-negative, not all zero).
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut target = self.0.random::<f64>() * total;
        for (i, &w) in weights.iter().enumerate() {
            if target < w {
                return i;
            }
            target -= w;
        }
        // Rounding can leave a sliver past the last bucket; give it to the last non-zero one.
        weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.int(0, items.len() - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map(|_| Dice::new(7, Stream::Shot, 3).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let b = Dice::new(7, Stream::Shot, 4).next_u64();
        let c = Dice::new(7, Stream::Design, 3).next_u64();
        let d = Dice::new(8, Stream::Shot, 3).next_u64();
        assert!(a[0] != b && a[0] != c && a[0] != d && b != c);
    }

    #[test]
    fn weighted_draw_follows_weights() {
        let mut dice = Dice::new(1, Stream::Plan, 0);
        let mut counts = [0usize; 3];
        for _ in 0..30_000 {
            counts[dice.weighted(&[1.0, 0.0, 3.0])] += 1;
        }
        assert_eq!(counts[1], 0);
        let ratio = counts[2] as f64 / counts[0] as f64;
        assert!((2.7..3.3).contains(&ratio), "ratio {ratio}");
    }
}
