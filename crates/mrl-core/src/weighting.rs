//! Weights of the nested dims and how terms are aggregated.

use burn::config::Config;

use crate::error::MrlError;

/// Weights `w_d` of the per-dim terms of a Matryoshka loss.
#[derive(Config, Debug, PartialEq)]
pub enum DimWeights {
    /// `w_d = 1` for every dim (MRL, arXiv 2205.13147; the MIPIC default).
    Uniform,
    /// One weight per dim, in the order of the (ascending) dims.
    Custom(Vec<f64>),
    /// ESE log weights `w = 1 / (1 + ln(i + 1))` (arXiv 2402.14776), with `i` the position of the
    /// dim counted from the largest: the full width has `i = 0` and weight 1, the next smaller
    /// dim `1 / (1 + ln 2)`, and so on (the same rule as sentence-transformers' `"log"` layer
    /// weighting, applied to the dims listed largest first).
    EseLog,
}

impl DimWeights {
    /// The weight of each of `n` ascending dims.
    pub fn resolve(&self, n: usize) -> Result<Vec<f64>, MrlError> {
        match self {
            DimWeights::Uniform => Ok(vec![1.0; n]),
            DimWeights::Custom(w) => {
                if w.len() != n {
                    return Err(MrlError::InvalidConfig {
                        field: "weights",
                        reason: format!("{} custom weights for {n} dims ({w:?})", w.len()),
                    });
                }
                if let Some(v) = w.iter().find(|v| !v.is_finite() || **v < 0.0) {
                    return Err(MrlError::InvalidConfig {
                        field: "weights",
                        reason: format!("weights must be finite and >= 0, got {v} in {w:?}"),
                    });
                }
                Ok(w.clone())
            }
            DimWeights::EseLog => Ok((0..n)
                .map(|k| {
                    let i = (n - 1 - k) as f64;
                    1.0 / (1.0 + (i + 1.0).ln())
                })
                .collect()),
        }
    }
}

/// How the terms of a multi-term loss are combined.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum Aggregation {
    /// `Σ_t w_t L_t` (the MIPIC paper).
    Sum,
    /// `Σ_t w_t L_t / Σ_t w_t` (the authors' notebook).
    Mean,
}

/// Combines weighted `[1]` terms.
pub(crate) fn aggregate(
    terms: Vec<burn::tensor::Tensor<1>>,
    weights: &[f64],
    aggregation: Aggregation,
) -> burn::tensor::Tensor<1> {
    assert!(!terms.is_empty(), "aggregate: no terms");
    let total_weight: f64 = weights.iter().sum();
    let sum = terms
        .into_iter()
        .zip(weights)
        .map(|(t, &w)| t.mul_scalar(w))
        .reduce(|a, b| a + b)
        .expect("non-empty");
    match aggregation {
        Aggregation::Sum => sum,
        Aggregation::Mean => {
            if total_weight > 0.0 {
                sum.div_scalar(total_weight)
            } else {
                sum
            }
        }
    }
}
