//! Universal Logit Distillation (ULD): a cross-tokenizer baseline comparing the two models'
//! sorted next-token probabilities.

use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::Reduction;
use burn::tensor::activation::softmax;
use burn::tensor::Tensor;

use crate::error::DistillError;
use crate::positions::{
    check_pair_inputs, gather_rows, scatter_rows, zeros_on_graph, ResponsePositions,
};
use crate::reduction::reduce_tokens;

/// Configuration of [`UldLoss`]. ULD has no hyper-parameter (no temperature: DSKD's
/// `universal_logit_distillation.py` compares the plain softmax of each model).
#[derive(Config, Debug)]
pub struct UldLossConfig {}

impl UldLossConfig {
    /// Builds the loss.
    pub fn init(&self) -> UldLoss {
        UldLoss {}
    }
}

/// Universal Logit Distillation (Boizard et al., arXiv 2402.12030), as DSKD (Zhang et al.,
/// arXiv 2406.17328, `code/criterions/universal_logit_distillation.py`) implements it: a
/// teacher and a student with **different tokenizers** compared through their sorted
/// next-token probabilities, which need no vocabulary map.
///
/// In sequence `b`, let `s_1 < … < s_{n_S}` be the student's response positions
/// (`student_mask = 1`) and `t_1 < … < t_{n_T}` the teacher's. They are paired from the start,
/// `(s_k, t_k)` for `k ≤ min(n_S, n_T)`, and at each pair:
///
/// ```text
/// p = sort↓ softmax(student_logits[b, s_k])      ∈ R^{V_S}   (no temperature)
/// r = sort↓ softmax(teacher_logits[b, t_k])      ∈ R^{V_T}
/// ℓ[b, s_k] = Σ_{i < V} |p_i − r_i|,   V = max(V_S, V_T), the shorter one padded with zeros
/// L = Σ_{b,k} ℓ[b, s_k] / Σ student_mask          (Reduction::Mean, Auto)
/// ```
///
/// `Sum` returns `Σ ℓ`, `BatchMean` `Σ ℓ / batch`. As in DSKD, `Mean` divides by the number of
/// **student** response positions (DSKD's loss denominator is the student's label count, for
/// every criterion), so a student position without a teacher partner (`k > n_T`) contributes 0
/// but still counts. DSKD pairs the positions by rotating each sequence to its first response
/// position; with a contiguous response (a prompt, then the response) that is the k-th-to-k-th
/// pairing above, which is how it is defined here for any mask.
///
/// The masks follow the crate's next-token convention (the training crate's `target_mask`):
/// `mask[b, t] = 1` when the logits at `t` predict a response token, i.e. DSKD's
/// `label != -100`. The teacher is data: it receives no gradient. The sort is differentiable
/// (the gradient follows the sorted order); `|·|` has gradient 0 at a tie.
///
/// The `[N, V]` softmax and sort run only on the paired rows.
#[derive(Module, Debug)]
pub struct UldLoss {}

/// The reduced loss of [`UldLoss::forward`].
#[derive(Debug, Clone)]
pub struct UldOutput {
    /// The reduced loss, `[1]`, differentiable w.r.t. the student logits.
    pub loss: Tensor<1>,
    /// Number of paired positions `Σ_b min(n_S, n_T)` (host value).
    pub aligned_positions: usize,
    /// Number of student response positions `Σ student_mask` (host value).
    pub student_positions: usize,
}

impl UldLoss {
    /// The reduced loss.
    ///
    /// # Shapes
    /// - `student_logits`: `[batch, seq_S, vocab_S]`
    /// - `student_mask`: `[batch, seq_S]`, float 0/1, 1 = the position predicts a response token
    /// - `teacher_logits`: `[batch, seq_T, vocab_T]` (any `seq_T`, `vocab_T`)
    /// - `teacher_mask`: `[batch, seq_T]`, as `student_mask`
    /// - output: `loss` `[1]`
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`UldLoss::try_forward`].
    pub fn forward(
        &self,
        student_logits: Tensor<3>,
        student_mask: Tensor<2>,
        teacher_logits: Tensor<3>,
        teacher_mask: Tensor<2>,
        reduction: Reduction,
    ) -> UldOutput {
        self.try_forward(
            student_logits,
            student_mask,
            teacher_logits,
            teacher_mask,
            reduction,
        )
        .unwrap_or_else(|e| panic!("UldLoss: {e}"))
    }

    /// [`UldLoss::forward`] returning an error on bad input.
    ///
    /// Validates the shapes on the host, then reads back the two masks and a few statistics
    /// in one transfer.
    ///
    /// # Errors
    /// [`DistillError::Shape`] for empty logits, a batch mismatch or a mask whose shape is not
    /// its logits' `[batch, seq]`; [`DistillError::NonFinite`] for NaN / ±∞ logits;
    /// [`DistillError::InvalidMask`] for a mask that is not 0/1 or is all zero (the reason
    /// names the mask).
    pub fn try_forward(
        &self,
        student_logits: Tensor<3>,
        student_mask: Tensor<2>,
        teacher_logits: Tensor<3>,
        teacher_mask: Tensor<2>,
        reduction: Reduction,
    ) -> Result<UldOutput, DistillError> {
        let mask = student_mask.clone().cast(student_logits.dtype());
        let (per_token, aligned, counted) =
            self.per_token(student_logits, student_mask, teacher_logits, teacher_mask)?;
        Ok(UldOutput {
            loss: reduce_tokens(per_token, &mask, &reduction),
            aligned_positions: aligned,
            student_positions: counted,
        })
    }

    /// Per-position values `ℓ[b, t]` at the student's positions: 0 where the student mask is 0
    /// and at response positions without a teacher partner.
    ///
    /// # Shapes
    /// As [`UldLoss::forward`]; output `[batch, seq_S]`.
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`UldLoss::try_forward`].
    pub fn forward_no_reduction(
        &self,
        student_logits: Tensor<3>,
        student_mask: Tensor<2>,
        teacher_logits: Tensor<3>,
        teacher_mask: Tensor<2>,
    ) -> Tensor<2> {
        self.try_forward_no_reduction(student_logits, student_mask, teacher_logits, teacher_mask)
            .unwrap_or_else(|e| panic!("UldLoss: {e}"))
    }

    /// [`UldLoss::forward_no_reduction`] returning an error on bad input.
    ///
    /// # Errors
    /// As [`UldLoss::try_forward`].
    pub fn try_forward_no_reduction(
        &self,
        student_logits: Tensor<3>,
        student_mask: Tensor<2>,
        teacher_logits: Tensor<3>,
        teacher_mask: Tensor<2>,
    ) -> Result<Tensor<2>, DistillError> {
        self.per_token(student_logits, student_mask, teacher_logits, teacher_mask)
            .map(|(per_token, _, _)| per_token)
    }

    /// Validates, pairs the positions and computes `ℓ` `[B, S_S]`; also the number of pairs
    /// and of student response positions.
    fn per_token(
        &self,
        student_logits: Tensor<3>,
        student_mask: Tensor<2>,
        teacher_logits: Tensor<3>,
        teacher_mask: Tensor<2>,
    ) -> Result<(Tensor<2>, usize, usize), DistillError> {
        let ResponsePositions {
            student: student_pos,
            teacher: teacher_pos,
        } = check_pair_inputs(
            &student_logits,
            &student_mask,
            &teacher_logits,
            &teacher_mask,
        )?;
        let [batch, seq_s, vocab_s] = student_logits.dims();
        let [_, seq_t, vocab_t] = teacher_logits.dims();
        let mut student_rows = Vec::new();
        let mut teacher_rows = Vec::new();
        for (b, (s, t)) in student_pos.iter().zip(&teacher_pos).enumerate() {
            for (&sp, &tp) in s.iter().zip(t) {
                student_rows.push(b * seq_s + sp);
                teacher_rows.push(b * seq_t + tp);
            }
        }
        let counted = student_pos.iter().map(Vec::len).sum();
        let aligned = student_rows.len();
        if aligned == 0 {
            return Ok((zeros_on_graph(&student_logits), 0, counted));
        }
        let dtype = student_logits.dtype();
        let p = softmax(gather_rows(student_logits, &student_rows), 1).sort_descending(1);
        let r = softmax(
            gather_rows(teacher_logits.detach().cast(dtype), &teacher_rows),
            1,
        )
        .sort_descending(1);
        let common = vocab_s.min(vocab_t);
        let n = aligned;
        let mut l1 = (p.clone().narrow(1, 0, common) - r.clone().narrow(1, 0, common))
            .abs()
            .sum_dim(1);
        // Zero padding of the shorter side: |x − 0| = x on the longer side's tail.
        if vocab_s > common {
            l1 = l1 + p.narrow(1, common, vocab_s - common).sum_dim(1);
        } else if vocab_t > common {
            l1 = l1 + r.narrow(1, common, vocab_t - common).sum_dim(1);
        }
        let values = l1.reshape([n]);
        Ok((
            scatter_rows(values, &student_rows, batch, seq_s),
            aligned,
            counted,
        ))
    }
}
