//! Deterministic, stateless sampling of dims and layers per training step.
//!
//! Losses keep no RNG state (so they shard by batch and replay exactly): the subset used at a
//! step is a pure function of `(seed, step, salt)`, drawn with the workspace's SplitMix64
//! ([`SplitMix64::for_step`], in `mrl-common`) and a partial Fisher–Yates shuffle.

use mrl_common::SplitMix64;

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
