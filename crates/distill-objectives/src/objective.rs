//! The full distillation objective: cross-entropy on the labels mixed with a KD divergence.

use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::Reduction;
use burn::tensor::{Int, Tensor};

use crate::checks::{mask_shape, student_dims, ValueChecks};
use crate::cross_entropy::{add_target_checks, check_targets_shape, cross_entropy_per_token};
use crate::error::DistillError;
use crate::kd::{KdLoss, KdLossConfig};
use crate::reduction::reduce_tokens;
use crate::teacher::TeacherTarget;

/// Configuration of [`KdObjective`].
#[derive(Config, Debug)]
pub struct KdObjectiveConfig {
    /// The distillation term.
    pub kd: KdLossConfig,
    /// Weight `α ∈ [0, 1]` of the distillation term (DSKD's `kd_rate`). Default `0.5`.
    #[config(default = 0.5)]
    pub alpha: f64,
}

impl KdObjectiveConfig {
    /// Builds the objective.
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`KdObjectiveConfig::try_init`].
    pub fn init(&self) -> KdObjective {
        self.try_init()
            .unwrap_or_else(|e| panic!("KdObjectiveConfig: {e}"))
    }

    /// Builds the objective, or reports an invalid configuration.
    ///
    /// # Errors
    /// [`DistillError::InvalidConfig`] when `alpha ∉ [0, 1]` or the KD configuration is invalid
    /// ([`KdLossConfig::try_init`]).
    pub fn try_init(&self) -> Result<KdObjective, DistillError> {
        let objective = KdObjective {
            kd: self.kd.try_init()?,
            alpha: self.alpha,
        };
        objective.validate()?;
        Ok(objective)
    }
}

/// Cross-entropy on the labels plus knowledge distillation, as DSKD's `VariousDivergence`:
///
/// ```text
/// L = (1 − α) · CE(student_logits, targets) + α · KD(student_logits, teacher)
/// ```
///
/// with [`masked_cross_entropy`](crate::masked_cross_entropy) (temperature 1) and [`KdLoss`]
/// (its temperature, divergence and `τ²` flag), both reduced over the same mask.
///
/// With `α = 0` the teacher is not evaluated at all (only its shapes are checked), so a
/// placeholder teacher of the right shape is enough; `kd` is then 0.
///
/// References: DSKD (Zhang et al., arXiv 2406.17328), DistiLLM (Ko et al., arXiv 2402.03898).
#[derive(Module, Debug)]
pub struct KdObjective {
    /// The distillation term.
    pub kd: KdLoss,
    /// Weight `α` of the distillation term.
    pub alpha: f64,
}

/// The reduced objective of [`KdObjective::forward`] and its parts.
#[derive(Debug, Clone)]
pub struct KdObjectiveOutput {
    /// `(1 − α) · ce + α · kd`, `[1]`.
    pub loss: Tensor<1>,
    /// The cross-entropy term, `[1]`.
    pub ce: Tensor<1>,
    /// The distillation term, `[1]` (0 when `α = 0`).
    pub kd: Tensor<1>,
    /// Named terms, `[1]` each: `ce`, `kd`, then [`KdOutput::terms`](crate::KdOutput::terms)
    /// of the distillation term (absent when `α = 0`).
    pub terms: Vec<(&'static str, Tensor<1>)>,
}

impl KdObjective {
    /// The reduced objective and its parts.
    ///
    /// # Shapes
    /// - `student_logits`: `[batch, seq, vocab]`
    /// - `targets`: `[batch, seq]`, Int, aligned with the logits (shifted by the caller), any
    ///   value at masked-out positions
    /// - `mask`: `[batch, seq]`, float 0/1
    /// - `teacher`: full logits `[batch, seq, vocab]` or top-k `[batch, seq, k]`
    /// - output: `[1]` tensors
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`KdObjective::try_forward`].
    pub fn forward(
        &self,
        student_logits: Tensor<3>,
        targets: Tensor<2, Int>,
        mask: Tensor<2>,
        teacher: &TeacherTarget,
        reduction: Reduction,
    ) -> KdObjectiveOutput {
        self.try_forward(student_logits, targets, mask, teacher, reduction)
            .unwrap_or_else(|e| panic!("KdObjective: {e}"))
    }

    /// [`KdObjective::forward`] returning an error on bad input.
    ///
    /// # Errors
    /// Those of [`KdLoss::try_forward`] (teacher values only when `α > 0`) and of
    /// [`try_masked_cross_entropy`](crate::try_masked_cross_entropy), from one validation pass.
    pub fn try_forward(
        &self,
        student_logits: Tensor<3>,
        targets: Tensor<2, Int>,
        mask: Tensor<2>,
        teacher: &TeacherTarget,
        reduction: Reduction,
    ) -> Result<KdObjectiveOutput, DistillError> {
        self.validate_inputs(&student_logits, &targets, &mask, teacher)?;
        let mask = mask.cast(student_logits.dtype());
        let ce = reduce_tokens(
            cross_entropy_per_token(student_logits.clone(), targets, &mask),
            &mask,
            &reduction,
        );
        let (kd, kd_terms) = if self.alpha == 0.0 {
            (ce.zeros_like(), Vec::new())
        } else {
            let per_token = self.kd.per_token(student_logits, teacher, &mask);
            let out = self.kd.reduce(per_token, &mask, &reduction);
            (out.loss, out.terms)
        };
        let mut terms = vec![("ce", ce.clone()), ("kd", kd.clone())];
        terms.extend(kd_terms);
        let loss = ce.clone().mul_scalar(1.0 - self.alpha) + kd.clone().mul_scalar(self.alpha);
        Ok(KdObjectiveOutput {
            loss,
            ce,
            kd,
            terms,
        })
    }

    /// Per-token objective `(1 − α) ce_t + α kd_t` (0 at masked-out positions), `[batch, seq]`.
    ///
    /// # Shapes
    /// As [`KdObjective::forward`]; output `[batch, seq]`.
    ///
    /// # Panics
    /// With the [`DistillError`] message of [`KdObjective::try_forward`].
    pub fn forward_no_reduction(
        &self,
        student_logits: Tensor<3>,
        targets: Tensor<2, Int>,
        mask: Tensor<2>,
        teacher: &TeacherTarget,
    ) -> Tensor<2> {
        self.try_forward_no_reduction(student_logits, targets, mask, teacher)
            .unwrap_or_else(|e| panic!("KdObjective: {e}"))
    }

    /// [`KdObjective::forward_no_reduction`] returning an error on bad input.
    ///
    /// # Errors
    /// As [`KdObjective::try_forward`].
    pub fn try_forward_no_reduction(
        &self,
        student_logits: Tensor<3>,
        targets: Tensor<2, Int>,
        mask: Tensor<2>,
        teacher: &TeacherTarget,
    ) -> Result<Tensor<2>, DistillError> {
        self.validate_inputs(&student_logits, &targets, &mask, teacher)?;
        let mask = mask.cast(student_logits.dtype());
        let ce = cross_entropy_per_token(student_logits.clone(), targets, &mask);
        if self.alpha == 0.0 {
            return Ok(ce);
        }
        let kd = self.kd.per_token(student_logits, teacher, &mask).value;
        Ok(ce.mul_scalar(1.0 - self.alpha) + kd.mul_scalar(self.alpha))
    }

    fn validate(&self) -> Result<(), DistillError> {
        if !(self.alpha.is_finite() && (0.0..=1.0).contains(&self.alpha)) {
            return Err(DistillError::InvalidConfig {
                field: "alpha",
                value: self.alpha,
                reason: "the weight of the distillation term must lie in [0, 1]".into(),
            });
        }
        self.kd.validate()
    }

    /// One validation pass: shapes of everything, values of the student, targets and mask, and
    /// of the teacher only when it is used (`α > 0`).
    fn validate_inputs(
        &self,
        student_logits: &Tensor<3>,
        targets: &Tensor<2, Int>,
        mask: &Tensor<2>,
        teacher: &TeacherTarget,
    ) -> Result<(), DistillError> {
        self.validate()?;
        let dims = student_dims(student_logits)?;
        check_targets_shape(targets, "student_logits", dims)?;
        mask_shape(mask, "student_logits", dims)?;
        let mut checks = ValueChecks::new();
        add_target_checks(&mut checks, targets, mask, dims[2]);
        if self.alpha == 0.0 {
            teacher.check_shapes(dims)?;
            checks.finite("student_logits", student_logits);
            checks.mask(mask);
            checks.run().map(|_| ())
        } else {
            self.kd
                .validate_inputs(student_logits, teacher, mask, checks)
        }
    }
}
