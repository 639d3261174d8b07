//! Ranking real tokens by score and picking the nested top-k sets (host side).
//!
//! The ranking is not differentiable, so it is done once per example on the host from the
//! scores and the padding mask. What comes back is (a) the flat row indices that gather the
//! ranked tokens out of `hidden`, and (b) one row mask per truncated dim that keeps the first
//! `k_i` ranked rows. Because one ranking serves every dim, the kept sets are nested.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::{fmt_shape, CkaError};
use crate::spec::TopKCkaSpec;

/// The tokens top-k CKA keeps, per example and per truncated dim.
#[derive(Debug, Clone, PartialEq)]
pub struct TopKSelection {
    /// Batch size `B`.
    pub batch: usize,
    /// Sequence length `m` of the input.
    pub seq_len: usize,
    /// `K = max_{b,i} k_{b,i}`: the number of ranked rows gathered per example.
    pub k_max: usize,
    /// `ks[b][i]`: rows kept for example `b` and truncated dim `i`.
    pub ks: Vec<Vec<usize>>,
    /// `ranked[b]`: the real token positions of example `b`, best score first, ties by position.
    pub ranked: Vec<Vec<usize>>,
}

/// Reads `[B, m]` host data as `f64`.
fn host_rows(t: &Tensor<2>) -> Vec<f64> {
    t.to_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .expect("a float tensor converts to f64")
}

/// Real lengths from a `[B, m]` 0/1 mask, rejecting other values and all-padding examples.
pub(crate) fn real_lengths(mask: &Tensor<2>) -> Result<Vec<usize>, CkaError> {
    let [batch, len] = mask.dims();
    let values = host_rows(mask);
    let mut lengths = Vec::with_capacity(batch);
    for b in 0..batch {
        let row = &values[b * len..(b + 1) * len];
        if let Some((t, v)) = row
            .iter()
            .enumerate()
            .find(|(_, v)| **v != 0.0 && **v != 1.0)
        {
            return Err(CkaError::InvalidMask {
                reason: format!("mask[{b}, {t}] = {v}; only 0 (padding) and 1 (real) are allowed"),
            });
        }
        let n = row.iter().filter(|v| **v == 1.0).count();
        if n == 0 {
            return Err(CkaError::InvalidMask {
                reason: format!(
                    "example {b} is all padding (mask {}); CKA needs at least one real row",
                    fmt_shape(&[batch, len])
                ),
            });
        }
        lengths.push(n);
    }
    Ok(lengths)
}

impl TopKSelection {
    /// Ranks the real tokens of every example by `scores` (descending, ties by position) and
    /// applies the k-schedule of `spec`.
    ///
    /// `mask` and `scores` are `[B, m]`; `spec` must already be validated.
    pub fn rank(
        mask: &Tensor<2>,
        scores: &Tensor<2>,
        spec: &TopKCkaSpec,
    ) -> Result<Self, CkaError> {
        let [batch, seq_len] = mask.dims();
        let mask_values = host_rows(mask);
        real_lengths(mask)?;
        let score_values = host_rows(scores);
        let mut ranked = Vec::with_capacity(batch);
        let mut ks = Vec::with_capacity(batch);
        for b in 0..batch {
            let mut real: Vec<usize> = (0..seq_len)
                .filter(|&t| mask_values[b * seq_len + t] == 1.0)
                .collect();
            if let Some(&t) = real
                .iter()
                .find(|&&t| !score_values[b * seq_len + t].is_finite())
            {
                return Err(CkaError::NonFiniteScore {
                    example: b,
                    token: t,
                });
            }
            // Stable sort: equal scores keep their position order.
            real.sort_by(|&p, &q| {
                score_values[b * seq_len + q]
                    .partial_cmp(&score_values[b * seq_len + p])
                    .expect("finite scores compare")
            });
            ks.push(
                (0..spec.dims.len())
                    .map(|i| spec.k_for(i, real.len()))
                    .collect::<Vec<_>>(),
            );
            ranked.push(real);
        }
        let k_max = ks.iter().flatten().copied().max().unwrap_or(1);
        Ok(Self {
            batch,
            seq_len,
            k_max,
            ks,
            ranked,
        })
    }

    /// Flat row indices into `hidden.reshape([B * m, D])` that gather `[B, K, D]`.
    ///
    /// Rows past an example's ranked length repeat its best token; the row masks exclude them.
    pub fn gather_indices(&self, device: &Device) -> Tensor<1, Int> {
        let mut idx = Vec::with_capacity(self.batch * self.k_max);
        for (b, ranked) in self.ranked.iter().enumerate() {
            for a in 0..self.k_max {
                let t = ranked.get(a).copied().unwrap_or(ranked[0]);
                idx.push((b * self.seq_len + t) as i64);
            }
        }
        Tensor::from_data(TensorData::new(idx, [self.batch * self.k_max]), device)
    }

    /// Row masks `[B, n, K]`: 1 where ranked row `a < k_{b,i}`.
    pub fn row_masks(&self, device: &Device) -> Tensor<3> {
        let n = self.ks.first().map_or(0, Vec::len);
        let mut values = Vec::with_capacity(self.batch * n * self.k_max);
        for ks in &self.ks {
            for &k in ks {
                values.extend((0..self.k_max).map(|a| if a < k { 1.0f32 } else { 0.0 }));
            }
        }
        Tensor::from_data(TensorData::new(values, [self.batch, n, self.k_max]), device)
    }
}
