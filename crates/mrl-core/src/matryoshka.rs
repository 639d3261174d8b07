//! The Matryoshka modifier: any embedding loss at every nested prefix width (MIPIC §1).
//!
//! Kusupati et al., "Matryoshka Representation Learning", NeurIPS 2022, arXiv 2205.13147;
//! as sentence-transformers' `MatryoshkaLoss`, returning every per-dim term.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;
use mrl_common::SplitMix64;

use crate::breakdown::LossBreakdown;
use crate::embedding::{EmbeddingInputs, EmbeddingLoss};
use crate::error::{check_nested_dims, MrlError};
use crate::sampling::{salt, sample_indices};
use crate::weighting::{aggregate, Aggregation, DimWeights};

/// Configuration of [`MatryoshkaLoss`].
#[derive(Config, Debug)]
pub struct MatryoshkaConfig {
    /// Strictly increasing nested widths `d_1 < … < d_K`, the last usually the full width `D`.
    /// Default: the MIPIC paper's `16, 32, 64, 128, 256, 512, 768` (BERT-base).
    #[config(default = "vec![16, 32, 64, 128, 256, 512, 768]")]
    pub dims: Vec<usize>,
    /// Per-dim weights. Default: uniform.
    #[config(default = "DimWeights::Uniform")]
    pub weights: DimWeights,
    /// When set, only this many dims (drawn without replacement from `(seed, step)`) are used at
    /// each step, as sentence-transformers' `n_dims_per_step`. Default: every dim, every step.
    #[config(default = "None")]
    pub n_dims_per_step: Option<usize>,
    /// Seed of the per-step dim sampling. Default `42` (MIPIC Table 7).
    #[config(default = 42)]
    pub seed: u64,
    /// `Sum` (`Σ w_d L_d`, the paper) or `Mean` (`Σ w_d L_d / Σ w_d`). Default `Sum`.
    #[config(default = "Aggregation::Sum")]
    pub aggregation: Aggregation,
}

impl MatryoshkaConfig {
    /// Wraps `base`.
    ///
    /// # Panics
    /// With the [`MrlError`] message of [`MatryoshkaConfig::try_init`].
    pub fn init<L: EmbeddingLoss + Module>(&self, base: L) -> MatryoshkaLoss<L> {
        self.try_init(base)
            .unwrap_or_else(|e| panic!("MatryoshkaConfig: {e}"))
    }

    /// Wraps `base`, or reports a malformed config.
    ///
    /// # Errors
    /// [`MrlError::InvalidDims`] (empty, zero, not strictly increasing), [`MrlError::InvalidConfig`]
    /// (weights of the wrong length or negative, `n_dims_per_step == 0`).
    pub fn try_init<L: EmbeddingLoss + Module>(
        &self,
        base: L,
    ) -> Result<MatryoshkaLoss<L>, MrlError> {
        check_nested_dims("dims", &self.dims, None)?;
        let weights = self.weights.resolve(self.dims.len())?;
        if self.n_dims_per_step == Some(0) {
            return Err(MrlError::InvalidConfig {
                field: "n_dims_per_step",
                reason: "must be >= 1 (or None for every dim)".into(),
            });
        }
        Ok(MatryoshkaLoss {
            base,
            dims: self.dims.clone(),
            weights,
            n_dims_per_step: self.n_dims_per_step,
            seed: self.seed,
            aggregation: self.aggregation,
        })
    }
}

/// A base embedding loss applied at every nested prefix width.
///
/// ```text
/// L_MRL = Σ_{d ∈ dims} w_d · L_base(norm(e_1[:, :d]), norm(e_2[:, :d]), …)
/// ```
///
/// Every role is truncated to its first `d` features and re-normalised at every dim, the full
/// width included. With `Aggregation::Mean` the sum is divided by `Σ w_d` over the dims used.
///
/// # Shapes
/// Every role of the [`EmbeddingInputs`] is `[B, D]` with `D >= d_K`; the total is `[1]`.
#[derive(Module, Debug)]
pub struct MatryoshkaLoss<L> {
    /// The wrapped loss.
    pub base: L,
    /// Nested widths, ascending.
    #[module(skip)]
    pub dims: Vec<usize>,
    /// Weight of each dim.
    #[module(skip)]
    pub weights: Vec<f64>,
    /// Dims used per step (`None` = all).
    #[module(skip)]
    pub n_dims_per_step: Option<usize>,
    /// Seed of the dim sampling.
    #[module(skip)]
    pub seed: u64,
    /// How the per-dim terms are combined.
    #[module(skip)]
    pub aggregation: Aggregation,
}

/// One per-dim term of a Matryoshka loss.
#[derive(Debug, Clone)]
pub struct DimTerm {
    /// Prefix width `d`.
    pub dim: usize,
    /// Its weight `w_d`.
    pub weight: f64,
    /// The unweighted base loss at width `d`, `[1]`.
    pub loss: Tensor<1>,
}

/// The total and every per-dim term of a Matryoshka loss.
#[derive(Debug, Clone)]
pub struct MrlBreakdown {
    /// `Σ w_d L_d` (or the weighted mean), `[1]`, differentiable.
    pub total: Tensor<1>,
    /// The dims used this step, ascending.
    pub terms: Vec<DimTerm>,
}

impl LossBreakdown for MrlBreakdown {
    fn total(&self) -> Tensor<1> {
        self.total.clone()
    }

    fn named_terms(&self) -> Vec<(String, Tensor<1>)> {
        let mut out = vec![("mrl/total".to_string(), self.total.clone())];
        out.extend(
            self.terms
                .iter()
                .map(|t| (format!("mrl/dim_{}", t.dim), t.loss.clone())),
        );
        out
    }
}

impl<L: EmbeddingLoss + Module> MatryoshkaLoss<L> {
    /// Indices (into `dims`) of the dims used at `step`, ascending.
    pub fn active_dims(&self, step: u64) -> Vec<usize> {
        match self.n_dims_per_step {
            Some(n) if n < self.dims.len() => sample_indices(
                self.dims.len(),
                n,
                &mut SplitMix64::for_step(self.seed, step, salt::DIMS),
            ),
            _ => (0..self.dims.len()).collect(),
        }
    }

    /// The loss and its per-dim terms at `step` (the step only matters with `n_dims_per_step`).
    ///
    /// # Panics
    /// With the [`MrlError`] message of [`MatryoshkaLoss::try_forward`].
    pub fn forward(&self, inputs: &EmbeddingInputs, step: u64) -> MrlBreakdown {
        self.try_forward(inputs, step)
            .unwrap_or_else(|e| panic!("MatryoshkaLoss: {e}"))
    }

    /// [`MatryoshkaLoss::forward`] returning an error on bad input.
    ///
    /// # Errors
    /// [`MrlError::InvalidDims`] when the largest dim exceeds the embedding width, and every error
    /// of the base loss.
    pub fn try_forward(
        &self,
        inputs: &EmbeddingInputs,
        step: u64,
    ) -> Result<MrlBreakdown, MrlError> {
        let (_, width) = inputs.check()?;
        check_nested_dims("dims", &self.dims, Some(width))?;
        let mut terms = Vec::new();
        for i in self.active_dims(step) {
            let d = self.dims[i];
            let loss = self
                .base
                .embedding_loss(&inputs.truncate_normalize(d)?, step)?;
            terms.push(DimTerm {
                dim: d,
                weight: self.weights[i],
                loss,
            });
        }
        let weights: Vec<f64> = terms.iter().map(|t| t.weight).collect();
        let total = aggregate(
            terms.iter().map(|t| t.loss.clone()).collect(),
            &weights,
            self.aggregation,
        );
        Ok(MrlBreakdown { total, terms })
    }
}

impl<L: EmbeddingLoss + Module> EmbeddingLoss for MatryoshkaLoss<L> {
    fn embedding_loss(&self, inputs: &EmbeddingInputs, step: u64) -> Result<Tensor<1>, MrlError> {
        Ok(self.try_forward(inputs, step)?.total)
    }
}
