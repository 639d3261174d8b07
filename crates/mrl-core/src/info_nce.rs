//! InfoNCE with in-batch negatives: the unsupervised SimCSE objective (MIPIC §1).
//!
//! Gao, Yao, Chen, "SimCSE: Simple Contrastive Learning of Sentence Embeddings",
//! arXiv 2104.08821; van den Oord et al., arXiv 1807.03748.

use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::Reduction;
use burn::tensor::Tensor;

use crate::embedding::{
    check_in_batch_pair, in_batch_cross_entropy, EmbeddingInputs, EmbeddingLoss,
};
use crate::error::MrlError;

/// Configuration of [`InfoNceLoss`].
#[derive(Config, Debug)]
pub struct InfoNceLossConfig {
    /// Temperature `τ` of the cosine logits. Default `0.05` (SimCSE; MIPIC Table 7).
    #[config(default = 0.05)]
    pub temperature: f64,
}

impl InfoNceLossConfig {
    /// Builds the loss.
    ///
    /// # Panics
    /// When `temperature` is not finite and positive.
    pub fn init(&self) -> InfoNceLoss {
        assert!(
            self.temperature.is_finite() && self.temperature > 0.0,
            "InfoNceLossConfig: temperature must be finite and > 0, got {}",
            self.temperature
        );
        InfoNceLoss {
            temperature: self.temperature,
        }
    }
}

/// InfoNCE over the `B × B` cosine logits with the diagonal as positives.
///
/// ```text
/// ℓ_b = −log( exp(cos(a_b, p_b)/τ) / Σ_j exp(cos(a_b, p_j)/τ) )
/// ```
///
/// Unsupervised SimCSE encodes every sentence twice with dropout on and uses the two views as
/// `(anchors, positives)`. Inputs need not be normalised: the cosine normalises them.
#[derive(Module, Debug)]
pub struct InfoNceLoss {
    /// Temperature `τ`.
    pub temperature: f64,
}

impl InfoNceLoss {
    /// Reduced loss (`Mean`, `Auto` and `BatchMean` average over the batch, `Sum` adds).
    ///
    /// # Shapes
    /// - `anchors`, `positives`: `[B, d]`, `B >= 2`
    /// - output: `[1]`
    ///
    /// # Panics
    /// With the [`MrlError`] message of [`InfoNceLoss::try_forward_no_reduction`].
    pub fn forward(
        &self,
        anchors: Tensor<2>,
        positives: Tensor<2>,
        reduction: Reduction,
    ) -> Tensor<1> {
        reduce(self.forward_no_reduction(anchors, positives), reduction)
    }

    /// Per-anchor loss `ℓ_b`.
    ///
    /// # Shapes
    /// - `anchors`, `positives`: `[B, d]`, `B >= 2`
    /// - output: `[B]`
    ///
    /// # Panics
    /// With the [`MrlError`] message of [`InfoNceLoss::try_forward_no_reduction`].
    pub fn forward_no_reduction(&self, anchors: Tensor<2>, positives: Tensor<2>) -> Tensor<1> {
        self.try_forward_no_reduction(anchors, positives)
            .unwrap_or_else(|e| panic!("InfoNceLoss: {e}"))
    }

    /// [`InfoNceLoss::forward_no_reduction`] returning an error on bad input.
    ///
    /// # Errors
    /// [`MrlError::Shape`] when the shapes differ, [`MrlError::BatchTooSmall`] when `B < 2`.
    pub fn try_forward_no_reduction(
        &self,
        anchors: Tensor<2>,
        positives: Tensor<2>,
    ) -> Result<Tensor<1>, MrlError> {
        check_in_batch_pair("anchors", &anchors, "positives", &positives)?;
        Ok(in_batch_cross_entropy(
            anchors,
            positives,
            1.0 / self.temperature,
        ))
    }
}

impl EmbeddingLoss for InfoNceLoss {
    /// Roles: `[anchors, positives]`; mean over the batch.
    fn embedding_loss(&self, inputs: &EmbeddingInputs, _step: u64) -> Result<Tensor<1>, MrlError> {
        if inputs.embeddings.len() != 2 {
            return Err(MrlError::Shape {
                arg: "embeddings",
                detail: format!(
                    "InfoNCE takes exactly 2 roles (anchors, positives), got {}",
                    inputs.embeddings.len()
                ),
            });
        }
        Ok(self
            .try_forward_no_reduction(inputs.embeddings[0].clone(), inputs.embeddings[1].clone())?
            .mean())
    }
}

/// Burn's reduction of a per-example loss `[B]`.
pub(crate) fn reduce(per_example: Tensor<1>, reduction: Reduction) -> Tensor<1> {
    match reduction {
        Reduction::Mean | Reduction::Auto | Reduction::BatchMean => per_example.mean(),
        Reduction::Sum => per_example.sum(),
    }
}
