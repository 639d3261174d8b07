//! CoSENT: a ranking loss over the cosine similarities of scored sentence pairs.
//!
//! Su Jianlin, "CoSENT" (2022, <https://kexue.fm/archives/8847>); as sentence-transformers'
//! `CoSENTLoss` (scale 20). Also the base of AnglE (arXiv 2309.12871).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;
use mrl_common::l2_normalize;

use crate::embedding::{check_in_batch_pair, EmbeddingInputs, EmbeddingLoss};
use crate::error::{fmt_shape, MrlError};

/// Stands in for `−∞` on the pairs that do not count (as in sentence-transformers).
const NOT_A_PAIR: f64 = -1e12;

/// Configuration of [`CosentLoss`].
#[derive(Config, Debug)]
pub struct CosentLossConfig {
    /// Scale applied to the cosine similarities (`1/τ`). Default `20` (sentence-transformers).
    #[config(default = 20.0)]
    pub scale: f64,
}

impl CosentLossConfig {
    /// Builds the loss.
    ///
    /// # Panics
    /// When `scale` is not finite and positive.
    pub fn init(&self) -> CosentLoss {
        assert!(
            self.scale.is_finite() && self.scale > 0.0,
            "CosentLossConfig: scale must be finite and > 0, got {}",
            self.scale
        );
        CosentLoss { scale: self.scale }
    }
}

/// CoSENT: every pair of pairs whose gold scores are ordered should have its cosines ordered.
///
/// With `s_b = scale · cos(u_b, v_b)` and gold scores `y_b`:
///
/// ```text
/// L = log(1 + Σ_{(i, j): y_i < y_j} exp(s_i − s_j))
/// ```
///
/// The loss is defined on the batch as a whole (it has no per-example form), so there is no
/// `forward_no_reduction`.
#[derive(Module, Debug)]
pub struct CosentLoss {
    /// Scale applied to the cosine similarities.
    pub scale: f64,
}

impl CosentLoss {
    /// The loss of the batch.
    ///
    /// # Shapes
    /// - `first`, `second`: `[B, d]`, `B >= 2`
    /// - `scores`: `[B]`, gold similarity of each pair (any monotone scale)
    /// - output: `[1]`
    ///
    /// # Panics
    /// With the [`MrlError`] message of [`CosentLoss::try_forward`].
    pub fn forward(&self, first: Tensor<2>, second: Tensor<2>, scores: Tensor<1>) -> Tensor<1> {
        self.try_forward(first, second, scores)
            .unwrap_or_else(|e| panic!("CosentLoss: {e}"))
    }

    /// [`CosentLoss::forward`] returning an error on bad input.
    ///
    /// # Errors
    /// [`MrlError::Shape`] for mismatched shapes, [`MrlError::BatchTooSmall`] when `B < 2`.
    pub fn try_forward(
        &self,
        first: Tensor<2>,
        second: Tensor<2>,
        scores: Tensor<1>,
    ) -> Result<Tensor<1>, MrlError> {
        check_in_batch_pair("first", &first, "second", &second)?;
        let [batch, _] = first.dims();
        if scores.dims() != [batch] {
            return Err(MrlError::Shape {
                arg: "scores",
                detail: format!(
                    "expected one score per pair [{batch}], got {}",
                    fmt_shape(&scores.dims())
                ),
            });
        }
        let cos = (l2_normalize(first) * l2_normalize(second))
            .sum_dim(1)
            .reshape([batch]);
        let s = cos.mul_scalar(self.scale);
        // diff[i, j] = s_i − s_j, kept where y_i < y_j.
        let diff = s.clone().reshape([batch, 1]) - s.reshape([1, batch]);
        let labels = scores.cast(diff.dtype());
        let y_i = labels.clone().reshape([batch, 1]).expand([batch, batch]);
        let y_j = labels.reshape([1, batch]).expand([batch, batch]);
        let ordered = y_i.lower(y_j);
        let diff = diff
            .mask_fill(ordered.bool_not(), NOT_A_PAIR)
            .reshape([batch * batch]);
        // log(1 + Σ exp(x)) = logsumexp([0, x...]), shifted by the (constant) max for stability.
        let with_one = Tensor::cat(vec![diff.zeros_like().narrow(0, 0, 1), diff], 0);
        let shift = with_one.clone().max().detach();
        Ok((with_one - shift.clone()).exp().sum().log() + shift)
    }
}

impl EmbeddingLoss for CosentLoss {
    /// Roles: `[first, second]` plus `labels`.
    fn embedding_loss(&self, inputs: &EmbeddingInputs, _step: u64) -> Result<Tensor<1>, MrlError> {
        if inputs.embeddings.len() != 2 {
            return Err(MrlError::Shape {
                arg: "embeddings",
                detail: format!(
                    "CoSENT takes exactly 2 roles, got {}",
                    inputs.embeddings.len()
                ),
            });
        }
        let labels = inputs.labels.clone().ok_or(MrlError::Shape {
            arg: "labels",
            detail: "CoSENT needs one gold score per pair; `labels` is None".into(),
        })?;
        self.try_forward(
            inputs.embeddings[0].clone(),
            inputs.embeddings[1].clone(),
            labels,
        )
    }
}
