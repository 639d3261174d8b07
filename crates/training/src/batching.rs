//! A seeded shuffle and length-aware batching that are pure functions of `(seed, epoch)`, so
//! a resumed run sees exactly the batches an uninterrupted one would — for any task whose
//! examples have a length.

use mrl_common::SplitMix64;

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
    /// A trailing batch smaller than this is dropped (2 for in-batch negatives, 1 when every
    /// example stands alone).
    pub min_batch: usize,
}

impl Batching {
    /// Batches per epoch for `n` examples (a trailing batch of fewer than `min_batch`
    /// examples is dropped).
    pub fn batches_per_epoch(&self, n: usize) -> usize {
        let min = self.min_batch.max(1);
        n / self.batch_size + usize::from(n % self.batch_size >= min)
    }

    /// The batches (example indices) of epoch `epoch`: shuffle with `(seed, epoch)`; with length
    /// grouping, sort each pool of `pool_batches` batches by descending length, cut it into
    /// batches and shuffle the batch order. Deterministic in `(seed, epoch, lengths)`.
    pub fn epoch(&self, lengths: &[usize], epoch: usize) -> Vec<Vec<usize>> {
        let n = lengths.len();
        let mut rng = SplitMix64::with_stream(self.seed, 0x5EED_0000 + epoch as u64);
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
            .filter(|b| b.len() >= self.min_batch.max(1))
            .map(|b| b.to_vec())
            .collect();
        if self.length_grouping {
            rng.shuffle(&mut batches);
        }
        debug_assert_eq!(batches.len(), self.batches_per_epoch(n));
        batches
    }
}

/// The batch of every step of a run: [`Batching`] over examples of given lengths, epoch after
/// epoch, keeping the current epoch's batches. A pure function of `(seed, step)`, so a resumed
/// run asks for the same batches.
#[derive(Debug, Clone)]
pub struct StepBatches {
    batching: Batching,
    lengths: Vec<usize>,
    epoch: Option<(usize, Vec<Vec<usize>>)>,
}

impl StepBatches {
    /// Batches of `batching` over examples of `lengths`.
    pub fn new(batching: Batching, lengths: Vec<usize>) -> Self {
        Self {
            batching,
            lengths,
            epoch: None,
        }
    }

    /// Batches per epoch.
    pub fn per_epoch(&self) -> usize {
        self.batching.batches_per_epoch(self.lengths.len())
    }

    /// The example indices of 0-based step `step`.
    pub fn batch_at(&mut self, step: usize) -> Vec<usize> {
        let per_epoch = self.per_epoch().max(1);
        let (epoch, index) = (step / per_epoch, step % per_epoch);
        if self.epoch.as_ref().map(|(e, _)| *e) != Some(epoch) {
            self.epoch = Some((epoch, self.batching.epoch(&self.lengths, epoch)));
        }
        self.epoch.as_ref().expect("just set").1[index].clone()
    }
}
