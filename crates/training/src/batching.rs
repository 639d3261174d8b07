//! A seeded shuffle and length-aware batching that are pure functions of `(seed, epoch)`, so
//! a resumed run sees exactly the batches an uninterrupted one would — for any task whose
//! examples have a length.

/// SplitMix64: a tiny, portable, seedable generator (the data order must not depend on a
/// crate's version).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator for `(seed, stream)`.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut g = Self(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        g.next_u64();
        g
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n >= 1`).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// How one epoch is cut into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Examples per batch.
    pub batch_size: usize,
    /// Sort by length inside pools of `pool_batches × batch_size` shuffled examples.
    pub length_grouping: bool,
    /// Batches per pool.
    pub pool_batches: usize,
    /// The run's seed.
    pub seed: u64,
}

impl Batching {
    /// Batches per epoch for `n` examples (a trailing batch of fewer than two examples is
    /// dropped: in-batch negatives need two).
    pub fn batches_per_epoch(&self, n: usize) -> usize {
        n / self.batch_size + usize::from(n % self.batch_size >= 2)
    }

    /// The batches (example indices) of epoch `epoch`: shuffle with `(seed, epoch)`; with length
    /// grouping, sort each pool of `pool_batches` batches by descending length, cut it into
    /// batches and shuffle the batch order. Deterministic in `(seed, epoch, lengths)`.
    pub fn epoch(&self, lengths: &[usize], epoch: usize) -> Vec<Vec<usize>> {
        let n = lengths.len();
        let mut rng = SplitMix64::new(self.seed, 0x5EED_0000 + epoch as u64);
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        if self.length_grouping {
            let pool = self.batch_size * self.pool_batches;
            for chunk in order.chunks_mut(pool) {
                // Stable sort on a shuffled pool: ties keep their random order.
                chunk.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
            }
        }
        let mut batches: Vec<Vec<usize>> = order
            .chunks(self.batch_size)
            .filter(|b| b.len() >= 2)
            .map(|b| b.to_vec())
            .collect();
        if self.length_grouping {
            rng.shuffle(&mut batches);
        }
        debug_assert_eq!(batches.len(), self.batches_per_epoch(n));
        batches
    }
}
