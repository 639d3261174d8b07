//! The token-level knowledge-distillation loss: a [`Divergence`] between the temperature-scaled
//! teacher and student distributions at every counted position.

use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::Reduction;
use burn::tensor::Tensor;
use mrl_common::kl_div_logits;

use crate::checks::{mask_shape, positive, student_dims, ValueChecks};
use crate::divergence::{Divergence, RowDivergence};
use crate::error::DistillError;
use crate::reduction::{apply_mask, masked_mean, reduce_tokens};
use crate::teacher::TeacherTarget;

/// Configuration of [`KdLoss`].
#[derive(Config, Debug)]
pub struct KdLossConfig {
    /// The divergence between teacher and student.
    pub divergence: Divergence,
    /// Temperature `τ > 0`: the divergence compares `softmax(logits / τ)`. Default `1`.
    #[config(default = 1.0)]
    pub temperature: f64,
    /// Multiply the divergence by `τ²` (Hinton et al.'s scaling, which keeps the gradient
    /// magnitude comparable across temperatures). Default `false` (DSKD, DistiLLM).
    #[config(default = false)]
    pub temperature_squared: bool,
}

impl KdLossConfig {
    /// Builds the loss.
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`KdLossConfig::try_init`].
    pub fn init(&self) -> KdLoss {
        self.try_init()
            .unwrap_or_else(|e| panic!("KdLossConfig: {e}"))
    }

    /// Builds the loss, or reports an invalid configuration.
    ///
    /// # Errors
    /// [`DistillError::InvalidConfig`] when `temperature` is not finite and `> 0`, or the
    /// divergence's parameter is out of `(0, 1)`.
    pub fn try_init(&self) -> Result<KdLoss, DistillError> {
        let loss = KdLoss {
            divergence: self.divergence,
            temperature: self.temperature,
            temperature_squared: self.temperature_squared,
        };
        loss.validate()?;
        Ok(loss)
    }
}

/// Token-level knowledge distillation:
///
/// ```text
/// p_t = softmax(teacher_logits_t / τ),  q_t = softmax(student_logits_t / τ)
/// ℓ_t = s · D(p_t ‖ q_t) · mask_t,       s = τ² if temperature_squared else 1
/// L   = Σ_t ℓ_t / Σ_t mask_t             (Reduction::Mean, Auto)
/// ```
///
/// `D` is one of [`Divergence`]'s (FKL, RKL, JS, TV, skewed FKL / RKL, adaptive KL, DistiLLM's
/// skew KL); the teacher is given as full logits or as its top-k ([`TeacherTarget`]).
/// `Reduction::Sum` returns `Σ_t ℓ_t`, `Reduction::BatchMean` `Σ_t ℓ_t / batch`. The teacher is
/// data: it receives no gradient.
///
/// References: DSKD (Zhang et al., arXiv 2406.17328), DistiLLM (Ko et al., arXiv 2402.03898),
/// AKL (Wu et al., arXiv 2404.02657).
#[derive(Module, Debug)]
pub struct KdLoss {
    /// The divergence.
    #[module(skip)]
    pub divergence: Divergence,
    /// Temperature `τ`.
    pub temperature: f64,
    /// Whether the divergence is multiplied by `τ²`.
    pub temperature_squared: bool,
}

/// The reduced loss of [`KdLoss::forward`] and its breakdown.
#[derive(Debug, Clone)]
pub struct KdOutput {
    /// The reduced loss, `[1]`, differentiable w.r.t. the student logits.
    pub loss: Tensor<1>,
    /// Named terms, `[1]` each: the divergence under its [`Divergence::name`] (equal to `loss`);
    /// for the adaptive KL also `fkl`, `rkl` (reduced and scaled like the loss) and
    /// `akl_head_weight` (the mean of `g_head / (g_head + g_tail)` over counted positions).
    pub terms: Vec<(&'static str, Tensor<1>)>,
}

/// Per-token values `[B, S]` (masked, scaled) and the parts of the adaptive KL.
pub(crate) struct PerToken {
    pub value: Tensor<2>,
    /// `(fkl, rkl, head_weight)`, masked; fkl, rkl scaled like `value`.
    pub adaptive: Option<(Tensor<2>, Tensor<2>, Tensor<2>)>,
}

impl KdLoss {
    /// The reduced loss and its breakdown.
    ///
    /// # Shapes
    /// - `student_logits`: `[batch, seq, vocab]`
    /// - `teacher`: full logits `[batch, seq, vocab]` or top-k `[batch, seq, k]` (see
    ///   [`TeacherTarget`])
    /// - `mask`: `[batch, seq]`, float, 1 = position counted, 0 = ignored
    /// - output: `loss` `[1]`, terms `[1]` each
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`KdLoss::try_forward`].
    pub fn forward(
        &self,
        student_logits: Tensor<3>,
        teacher: &TeacherTarget,
        mask: Tensor<2>,
        reduction: Reduction,
    ) -> KdOutput {
        self.try_forward(student_logits, teacher, mask, reduction)
            .unwrap_or_else(|e| panic!("KdLoss: {e}"))
    }

    /// [`KdLoss::forward`] returning an error on bad input.
    ///
    /// Validates the shapes on the host, then reads back one small vector of statistics from
    /// the device (finiteness, mask values, top-k ids and normalisation).
    ///
    /// # Errors
    /// [`DistillError::Shape`] for mismatched shapes (student / teacher vocabulary, batch / seq,
    /// mask), [`DistillError::InvalidConfig`] for an invalid `τ` / parameter or `k > vocab`,
    /// [`DistillError::NonFinite`] for NaN / ±∞ logits (naming student or teacher),
    /// [`DistillError::InvalidMask`] for a mask that is not 0/1 or is all zero,
    /// [`DistillError::InvalidIds`] for top-k ids out of the vocabulary or repeated,
    /// [`DistillError::InvalidTeacher`] for top-k values that are not a distribution, or a `−∞`
    /// tail under a reverse-KL term.
    pub fn try_forward(
        &self,
        student_logits: Tensor<3>,
        teacher: &TeacherTarget,
        mask: Tensor<2>,
        reduction: Reduction,
    ) -> Result<KdOutput, DistillError> {
        self.validate_inputs(&student_logits, teacher, &mask, ValueChecks::new())?;
        let mask = mask.cast(student_logits.dtype());
        let per_token = self.per_token(student_logits, teacher, &mask);
        Ok(self.reduce(per_token, &mask, &reduction))
    }

    /// Per-token values `ℓ_t` (0 at masked-out positions), `[batch, seq]`.
    ///
    /// # Shapes
    /// As [`KdLoss::forward`]; output `[batch, seq]`.
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`KdLoss::try_forward`].
    pub fn forward_no_reduction(
        &self,
        student_logits: Tensor<3>,
        teacher: &TeacherTarget,
        mask: Tensor<2>,
    ) -> Tensor<2> {
        self.try_forward_no_reduction(student_logits, teacher, mask)
            .unwrap_or_else(|e| panic!("KdLoss: {e}"))
    }

    /// [`KdLoss::forward_no_reduction`] returning an error on bad input.
    ///
    /// # Errors
    /// As [`KdLoss::try_forward`].
    pub fn try_forward_no_reduction(
        &self,
        student_logits: Tensor<3>,
        teacher: &TeacherTarget,
        mask: Tensor<2>,
    ) -> Result<Tensor<2>, DistillError> {
        self.validate_inputs(&student_logits, teacher, &mask, ValueChecks::new())?;
        let mask = mask.cast(student_logits.dtype());
        Ok(self.per_token(student_logits, teacher, &mask).value)
    }

    /// Checks the configuration (the fields are public, so it is checked again at every call).
    pub(crate) fn validate(&self) -> Result<(), DistillError> {
        positive("temperature", self.temperature)?;
        self.divergence.validate()
    }

    /// Shape checks and the shared value checks (plus any already in `checks`), one sync.
    pub(crate) fn validate_inputs(
        &self,
        student_logits: &Tensor<3>,
        teacher: &TeacherTarget,
        mask: &Tensor<2>,
        mut checks: ValueChecks,
    ) -> Result<(), DistillError> {
        self.validate()?;
        let dims = student_dims(student_logits)?;
        teacher.check_shapes(dims)?;
        mask_shape(mask, "student_logits", dims)?;
        checks.finite("student_logits", student_logits);
        teacher.add_value_checks(
            &mut checks,
            dims[2],
            self.divergence.needs_teacher_support(),
            self.divergence.name(),
        );
        checks.mask(mask);
        checks.run().map(|_| ())
    }

    /// The scale `s` of the divergence: `τ²` or 1.
    fn scale(&self) -> f64 {
        if self.temperature_squared {
            self.temperature * self.temperature
        } else {
            1.0
        }
    }

    /// Per-token values on validated inputs; `mask` in the student's dtype.
    pub(crate) fn per_token(
        &self,
        student_logits: Tensor<3>,
        teacher: &TeacherTarget,
        mask: &Tensor<2>,
    ) -> PerToken {
        let [batch, seq, vocab] = student_logits.dims();
        let rows = match (teacher, &self.divergence) {
            // Forward KL against the full teacher: one operation from both logits, without
            // either log-softmax over the vocabulary.
            (TeacherTarget::Full { logits }, Divergence::ForwardKl) => {
                let n = batch * seq;
                let teacher = logits.clone().cast(student_logits.dtype());
                RowDivergence {
                    value: kl_div_logits(
                        student_logits.reshape([n, vocab]),
                        teacher.reshape([n, vocab]),
                        self.temperature.recip(),
                    ),
                    adaptive: None,
                }
            }
            _ => {
                let (log_p, log_q, p_has_zeros) =
                    teacher.log_prob_rows(student_logits, self.temperature);
                self.divergence.per_row(log_p, log_q, p_has_zeros)
            }
        };
        let scale = self.scale();
        let tokens = |t: Tensor<1>, scale: f64| {
            let t = t.reshape([batch, seq]);
            let t = if scale == 1.0 { t } else { t.mul_scalar(scale) };
            apply_mask(t, mask)
        };
        PerToken {
            value: tokens(rows.value, scale),
            adaptive: rows.adaptive.map(|a| {
                (
                    tokens(a.fkl, scale),
                    tokens(a.rkl, scale),
                    tokens(a.head_weight, 1.0),
                )
            }),
        }
    }

    /// The reduced loss and terms of per-token values.
    pub(crate) fn reduce(
        &self,
        per_token: PerToken,
        mask: &Tensor<2>,
        reduction: &Reduction,
    ) -> KdOutput {
        let loss = reduce_tokens(per_token.value, mask, reduction);
        let mut terms = vec![(self.divergence.name(), loss.clone())];
        if let Some((fkl, rkl, head_weight)) = per_token.adaptive {
            terms.push(("fkl", reduce_tokens(fkl, mask, reduction)));
            terms.push(("rkl", reduce_tokens(rkl, mask, reduction)));
            terms.push(("akl_head_weight", masked_mean(head_weight, mask)));
        }
        KdOutput { loss, terms }
    }
}
