//! Deterministic, stateless sampling of dims and layers per training step.
//!
//! Losses keep no RNG state (so they shard by batch and replay exactly): the subset used at a
//! step is a pure function of `(seed, step, salt)`, drawn with SplitMix64 (Steele et al., 2014)
//! and a partial Fisher–Yates shuffle. The stream is fixed by this file, not by a dependency.

/// SplitMix64: a tiny, well-mixed 64-bit generator.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator for `(seed, step, salt)`.
    pub(crate) fn for_step(seed: u64, step: u64, salt: u64) -> Self {
        let mut g = SplitMix64(seed ^ salt.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let s = g.next_u64() ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        SplitMix64(s)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by rejection so there is no modulo bias.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return (v % n) as usize;
            }
        }
    }
}

/// `k` distinct indices out of `0..n`, sorted ascending; all of them when `k >= n`.
pub(crate) fn sample_indices(n: usize, k: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    if k >= n {
        return idx;
    }
    for i in 0..k {
        let j = i + rng.below(n - i);
        idx.swap(i, j);
    }
    let mut out = idx[..k].to_vec();
    out.sort_unstable();
    out
}

/// Salts that keep the streams of different modifiers independent.
pub(crate) mod salt {
    pub(crate) const DIMS: u64 = 1;
    pub(crate) const LAYERS: u64 = 2;
    pub(crate) const ESE_LAYER: u64 = 3;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_deterministic_distinct_and_covers_all_indices() {
        let a = sample_indices(7, 3, &mut SplitMix64::for_step(42, 5, salt::DIMS));
        let b = sample_indices(7, 3, &mut SplitMix64::for_step(42, 5, salt::DIMS));
        assert_eq!(a, b);
        assert_eq!(a.len(), 3);
        assert!(a.windows(2).all(|w| w[0] < w[1]) && a.iter().all(|&i| i < 7));
        let mut seen = [false; 7];
        for step in 0..200 {
            for i in sample_indices(7, 1, &mut SplitMix64::for_step(42, step, salt::DIMS)) {
                seen[i] = true;
            }
        }
        assert!(
            seen.iter().all(|s| *s),
            "every index is drawn over 200 steps: {seen:?}"
        );
        assert_eq!(
            sample_indices(4, 9, &mut SplitMix64::for_step(1, 1, 1)),
            vec![0, 1, 2, 3]
        );
    }
}
