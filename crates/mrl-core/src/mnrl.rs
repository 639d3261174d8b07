//! MultipleNegativesRanking: in-batch negatives plus optional hard negatives.
//!
//! Henderson et al., "Efficient Natural Language Response Suggestion for Smart Reply",
//! arXiv 1705.00652; as sentence-transformers' `MultipleNegativesRankingLoss` (scale 20).

use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::Reduction;
use burn::tensor::Tensor;

use crate::embedding::{
    check_in_batch_pair, in_batch_cross_entropy, EmbeddingInputs, EmbeddingLoss,
};
use crate::error::{fmt_shape, MrlError};
use crate::info_nce::reduce;

/// Configuration of [`MultipleNegativesRankingLoss`].
#[derive(Config, Debug)]
pub struct MultipleNegativesRankingLossConfig {
    /// Scale `s` of the cosine logits (`1/τ`). Default `20` (sentence-transformers).
    #[config(default = 20.0)]
    pub scale: f64,
}

impl MultipleNegativesRankingLossConfig {
    /// Builds the loss.
    ///
    /// # Panics
    /// When `scale` is not finite and positive.
    pub fn init(&self) -> MultipleNegativesRankingLoss {
        assert!(
            self.scale.is_finite() && self.scale > 0.0,
            "MultipleNegativesRankingLossConfig: scale must be finite and > 0, got {}",
            self.scale
        );
        MultipleNegativesRankingLoss { scale: self.scale }
    }
}

/// Cross-entropy of each anchor against every positive of the batch and every hard negative.
///
/// With candidates `c = [p_1 … p_B, n¹_1 … n¹_B, …]` (positives first, then each hard-negative
/// column):
///
/// ```text
/// ℓ_b = −log( exp(s·cos(a_b, p_b)) / Σ_j exp(s·cos(a_b, c_j)) )
/// ```
///
/// Without hard negatives this is [`InfoNceLoss`](crate::InfoNceLoss) with `τ = 1/s`.
#[derive(Module, Debug)]
pub struct MultipleNegativesRankingLoss {
    /// Scale `s` of the cosine logits.
    pub scale: f64,
}

impl MultipleNegativesRankingLoss {
    /// Reduced loss (`Mean`, `Auto` and `BatchMean` average over the batch, `Sum` adds).
    ///
    /// # Shapes
    /// - `anchors`, `positives`: `[B, d]`, `B >= 2`
    /// - `negatives`: any number of `[B, d]` (one hard negative per anchor each)
    /// - output: `[1]`
    ///
    /// # Panics
    /// With the [`MrlError`] message of [`MultipleNegativesRankingLoss::try_forward_no_reduction`].
    pub fn forward(
        &self,
        anchors: Tensor<2>,
        positives: Tensor<2>,
        negatives: &[Tensor<2>],
        reduction: Reduction,
    ) -> Tensor<1> {
        reduce(
            self.forward_no_reduction(anchors, positives, negatives),
            reduction,
        )
    }

    /// Per-anchor loss `ℓ_b`, `[B]`.
    ///
    /// # Panics
    /// With the [`MrlError`] message of [`MultipleNegativesRankingLoss::try_forward_no_reduction`].
    pub fn forward_no_reduction(
        &self,
        anchors: Tensor<2>,
        positives: Tensor<2>,
        negatives: &[Tensor<2>],
    ) -> Tensor<1> {
        self.try_forward_no_reduction(anchors, positives, negatives)
            .unwrap_or_else(|e| panic!("MultipleNegativesRankingLoss: {e}"))
    }

    /// [`MultipleNegativesRankingLoss::forward_no_reduction`] returning an error on bad input.
    ///
    /// # Errors
    /// [`MrlError::Shape`] when a shape differs from `anchors`, [`MrlError::BatchTooSmall`] when
    /// `B < 2`.
    pub fn try_forward_no_reduction(
        &self,
        anchors: Tensor<2>,
        positives: Tensor<2>,
        negatives: &[Tensor<2>],
    ) -> Result<Tensor<1>, MrlError> {
        check_in_batch_pair("anchors", &anchors, "positives", &positives)?;
        if let Some((i, n)) = negatives
            .iter()
            .enumerate()
            .find(|(_, n)| n.dims() != anchors.dims())
        {
            return Err(MrlError::Shape {
                arg: "negatives",
                detail: format!(
                    "negative set {i} is {}, expected {} like `anchors`",
                    fmt_shape(&n.dims()),
                    fmt_shape(&anchors.dims())
                ),
            });
        }
        let mut candidates = vec![positives];
        candidates.extend(negatives.iter().cloned());
        Ok(in_batch_cross_entropy(
            anchors,
            Tensor::cat(candidates, 0),
            self.scale,
        ))
    }
}

impl EmbeddingLoss for MultipleNegativesRankingLoss {
    /// Roles: `[anchors, positives, negatives...]`; mean over the batch.
    fn embedding_loss(&self, inputs: &EmbeddingInputs, _step: u64) -> Result<Tensor<1>, MrlError> {
        if inputs.embeddings.len() < 2 {
            return Err(MrlError::Shape {
                arg: "embeddings",
                detail: format!(
                    "MultipleNegativesRanking takes at least 2 roles (anchors, positives, \
                     negatives...), got {}",
                    inputs.embeddings.len()
                ),
            });
        }
        let e = &inputs.embeddings;
        Ok(self
            .try_forward_no_reduction(e[0].clone(), e[1].clone(), &e[2..])?
            .mean())
    }
}
