//! ESE (Espresso Sentence Embeddings): Matryoshka over dims plus one sampled earlier layer.
//!
//! Li et al., "ESE: Espresso Sentence Embeddings" (first released as "2D Matryoshka Sentence
//! Embeddings"), arXiv 2402.14776; MIPIC §6 baseline.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;
use mrl_common::{Pooling, SplitMix64};

use crate::breakdown::LossBreakdown;
use crate::embedding::{EmbeddingLoss, LayeredInputs};
use crate::error::MrlError;
use crate::matryoshka::{MatryoshkaConfig, MatryoshkaLoss, MrlBreakdown};
use crate::sampling::salt;
use crate::weighting::{Aggregation, DimWeights};

/// Configuration of [`EseLoss`].
#[derive(Config, Debug)]
pub struct EseConfig {
    /// Nested dims, strictly increasing. Default `16 … 512, 768`.
    #[config(default = "vec![16, 32, 64, 128, 256, 512, 768]")]
    pub dims: Vec<usize>,
    /// Per-dim weights. Default: ESE log weights ([`DimWeights::EseLog`]).
    #[config(default = "DimWeights::EseLog")]
    pub weights: DimWeights,
    /// Pooling of every layer's token states. Default: mean (ESE).
    #[config(default = "Pooling::Mean")]
    pub pooling: Pooling,
    /// Seed of the per-step layer sampling. Default `42`.
    #[config(default = 42)]
    pub seed: u64,
    /// Aggregation over dims. Default `Sum`.
    #[config(default = "Aggregation::Sum")]
    pub aggregation: Aggregation,
}

impl EseConfig {
    /// Wraps `base`.
    ///
    /// # Panics
    /// With the [`MrlError`] message of [`EseConfig::try_init`].
    pub fn init<L: EmbeddingLoss + Module>(&self, base: L) -> EseLoss<L> {
        self.try_init(base)
            .unwrap_or_else(|e| panic!("EseConfig: {e}"))
    }

    /// Wraps `base`, or reports a malformed config.
    ///
    /// # Errors
    /// See [`MatryoshkaConfig::try_init`].
    pub fn try_init<L: EmbeddingLoss + Module>(&self, base: L) -> Result<EseLoss<L>, MrlError> {
        let matryoshka = MatryoshkaConfig::new()
            .with_dims(self.dims.clone())
            .with_weights(self.weights.clone())
            .with_seed(self.seed)
            .with_aggregation(self.aggregation)
            .try_init(base)?;
        Ok(EseLoss {
            matryoshka,
            pooling: self.pooling,
            seed: self.seed,
        })
    }
}

/// ESE: the Matryoshka loss at the last layer, plus the same loss at one randomly sampled
/// intermediate layer.
///
/// With `L` the last layer and `l ~ U{1, …, L−1}` drawn from `(seed, step)`:
///
/// ```text
/// L_ESE = L_MRL(pool(H^(L))) + 1 / (1 + ln(L − l)) · L_MRL(pool(H^(l)))
/// L_MRL = Σ_d w_d L_base(norm(e[:, :d]), …),   w_d = 1 / (1 + ln(i + 1))
/// ```
///
/// (`i` counts the dims from the largest, see [`DimWeights::EseLog`]). With a single layer
/// (`L = 1`) there is no intermediate layer and only the first term remains.
///
/// # Shapes
/// [`LayeredInputs`]: per role, `[B, m, D]` for every hidden state `0 ..= L`, and a `[B, m]` mask.
#[derive(Module, Debug)]
pub struct EseLoss<L> {
    /// The Matryoshka loss applied at both layers.
    pub matryoshka: MatryoshkaLoss<L>,
    /// Pooling of every layer.
    #[module(skip)]
    pub pooling: Pooling,
    /// Seed of the layer sampling.
    #[module(skip)]
    pub seed: u64,
}

/// The sampled-layer term of ESE.
#[derive(Debug, Clone)]
pub struct EseLayerTerm {
    /// Hidden-state index `l` of the sampled layer.
    pub layer: usize,
    /// `1 / (1 + ln(L − l))`.
    pub weight: f64,
    /// The Matryoshka loss at that layer.
    pub loss: MrlBreakdown,
}

/// The total and every term of ESE.
#[derive(Debug, Clone)]
pub struct EseBreakdown {
    /// `L_ESE`, `[1]`, differentiable.
    pub total: Tensor<1>,
    /// The Matryoshka loss at the last layer.
    pub last: MrlBreakdown,
    /// The sampled intermediate layer (`None` when the encoder has one layer).
    pub sampled: Option<EseLayerTerm>,
}

impl LossBreakdown for EseBreakdown {
    fn total(&self) -> Tensor<1> {
        self.total.clone()
    }

    fn named_terms(&self) -> Vec<(String, Tensor<1>)> {
        let mut out = vec![("ese/total".to_string(), self.total.clone())];
        out.extend(
            self.last
                .named_terms()
                .into_iter()
                .map(|(n, t)| (format!("ese/last/{n}"), t)),
        );
        if let Some(s) = &self.sampled {
            out.extend(
                s.loss
                    .named_terms()
                    .into_iter()
                    .map(|(n, t)| (format!("ese/layer_{}/{n}", s.layer), t)),
            );
        }
        out
    }
}

impl<L: EmbeddingLoss + Module> EseLoss<L> {
    /// The intermediate layer used at `step` for an encoder with `last` layers (`None` if
    /// `last < 2`).
    pub fn sampled_layer(&self, last: usize, step: u64) -> Option<usize> {
        (last >= 2)
            .then(|| 1 + SplitMix64::for_step(self.seed, step, salt::ESE_LAYER).below(last - 1))
    }

    /// The loss at `step`.
    ///
    /// # Panics
    /// With the [`MrlError`] message of [`EseLoss::try_forward`].
    pub fn forward(&self, inputs: &LayeredInputs, step: u64) -> EseBreakdown {
        self.try_forward(inputs, step)
            .unwrap_or_else(|e| panic!("EseLoss: {e}"))
    }

    /// [`EseLoss::forward`] returning an error on bad input.
    ///
    /// # Errors
    /// [`MrlError::Shape`] / [`MrlError::InvalidLayers`] for malformed inputs, and the errors of
    /// the Matryoshka and base losses.
    pub fn try_forward(&self, inputs: &LayeredInputs, step: u64) -> Result<EseBreakdown, MrlError> {
        let last_layer = inputs.check()? - 1;
        let last = self
            .matryoshka
            .try_forward(&inputs.pooled_at(last_layer, self.pooling)?, step)?;
        let sampled = match self.sampled_layer(last_layer, step) {
            Some(layer) => {
                let weight = 1.0 / (1.0 + ((last_layer - layer) as f64).ln());
                let loss = self
                    .matryoshka
                    .try_forward(&inputs.pooled_at(layer, self.pooling)?, step)?;
                Some(EseLayerTerm {
                    layer,
                    weight,
                    loss,
                })
            }
            None => None,
        };
        let total = match &sampled {
            Some(s) => last.total.clone() + s.loss.total.clone().mul_scalar(s.weight),
            None => last.total.clone(),
        };
        Ok(EseBreakdown {
            total,
            last,
            sampled,
        })
    }
}
