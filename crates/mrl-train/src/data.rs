//! Training data: unlabeled sentences (SimCSE), pairs, triplets and scored pairs; a seeded
//! shuffle and length-aware batching that are pure functions of `(seed, epoch)`, so a resumed
//! run sees exactly the batches an uninterrupted one would.

use std::path::{Path, PathBuf};

use crate::config::{DataFormat, DataSection};
use crate::error::{Result, TrainError};

/// One training example.
#[derive(Debug, Clone, PartialEq)]
pub enum Example {
    /// An unlabeled sentence (two dropout views make the positive pair).
    Sentence(String),
    /// `(anchor, positive)`.
    Pair(String, String),
    /// `(anchor, positive, hard negative)`.
    Triplet(String, String, String),
    /// `(score, sentence1, sentence2)`.
    Scored(f32, String, String),
}

impl Example {
    /// The texts of the example, in role order.
    pub fn texts(&self) -> Vec<&str> {
        match self {
            Example::Sentence(s) => vec![s],
            Example::Pair(a, p) => vec![a, p],
            Example::Triplet(a, p, n) => vec![a, p, n],
            Example::Scored(_, a, b) => vec![a, b],
        }
    }

    /// Length used for length-aware batching: characters of the longest text.
    pub fn length(&self) -> usize {
        self.texts()
            .iter()
            .map(|t| t.chars().count())
            .max()
            .unwrap_or(0)
    }
}

/// A training corpus.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// How the examples were read.
    pub format: DataFormat,
    /// The examples, in file order.
    pub examples: Vec<Example>,
    /// The file they came from.
    pub path: PathBuf,
}

impl Corpus {
    /// Reads the file described by `section` (`${MRL_SHARED}` expanded).
    ///
    /// # Errors
    /// [`TrainError::Io`] when the file cannot be read, [`TrainError::Data`] naming the line of a
    /// malformed row, or the file when it holds fewer than two examples.
    pub fn load(section: &DataSection) -> Result<Self> {
        let path = crate::config::expand_path(&section.path);
        let text = std::fs::read_to_string(&path).map_err(crate::error::io_err(&path))?;
        Self::parse(&text, &path, section)
    }

    /// Parses `text` as [`Corpus::load`] would; `path` names it in errors.
    ///
    /// # Errors
    /// As [`Corpus::load`].
    pub fn parse(text: &str, path: &Path, section: &DataSection) -> Result<Self> {
        let data_err = |line: usize, message: String| TrainError::Data {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut examples = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let skip = usize::from(section.skip_header);
        for (i, line) in text.lines().enumerate().skip(skip) {
            let n = i + 1;
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            let col = |k: usize| -> Result<String> {
                let c = section.first_column + k;
                let s = cols.get(c).ok_or_else(|| {
                    data_err(
                        n,
                        format!(
                            "expected a column {c} (0-based), found {} columns",
                            cols.len()
                        ),
                    )
                })?;
                let s = s.trim();
                if s.is_empty() {
                    return Err(data_err(n, format!("column {c} is empty")));
                }
                Ok(s.to_string())
            };
            let example = match section.format {
                DataFormat::Sentences => {
                    let s = match section.column {
                        Some(c) => cols
                            .get(c)
                            .ok_or_else(|| {
                                data_err(
                                    n,
                                    format!(
                                        "expected a column {c} (0-based), found {} columns",
                                        cols.len()
                                    ),
                                )
                            })?
                            .trim()
                            .to_string(),
                        None => line.trim().to_string(),
                    };
                    if s.is_empty() || !seen.insert(s.clone()) {
                        continue; // SimCSE: duplicates would be false in-batch negatives
                    }
                    Example::Sentence(s)
                }
                DataFormat::Pairs => Example::Pair(col(0)?, col(1)?),
                DataFormat::Triplets => Example::Triplet(col(0)?, col(1)?, col(2)?),
                DataFormat::ScoredPairs => {
                    let raw = col(0)?;
                    let score: f32 = raw
                        .parse()
                        .ok()
                        .filter(|s: &f32| s.is_finite())
                        .ok_or_else(|| data_err(n, format!("score `{raw}` is not a number")))?;
                    Example::Scored(score, col(1)?, col(2)?)
                }
            };
            examples.push(example);
            if section.max_examples.is_some_and(|m| examples.len() >= m) {
                break;
            }
        }
        if examples.len() < 2 {
            return Err(data_err(
                0,
                format!("needs at least 2 examples, found {}", examples.len()),
            ));
        }
        Ok(Self {
            format: section.format,
            examples,
            path: path.to_path_buf(),
        })
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether the corpus is empty (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
}

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
