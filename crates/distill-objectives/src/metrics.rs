//! Diagnostics of a distillation run that are not losses.

use burn::tensor::Tensor;

use crate::checks::{mask_shape, student_dims, ValueChecks};
use crate::error::{fmt_shape, DistillError};

/// Top-1 agreement: the fraction of counted positions where the student's most likely token is
/// the teacher's,
///
/// ```text
/// Σ_t mask_t · [argmax student_logits_t = argmax teacher_logits_t] / Σ_t mask_t
/// ```
///
/// Ties resolve to the first index on both sides (Burn's `argmax`). Reads the value back from
/// the device (one sync).
///
/// # Shapes
/// - `student_logits`, `teacher_logits`: `[batch, seq, vocab]`
/// - `mask`: `[batch, seq]`, float 0/1
///
/// # Panics
/// With the [`DistillError`] message of [`try_top1_agreement`].
pub fn top1_agreement(
    student_logits: Tensor<3>,
    teacher_logits: Tensor<3>,
    mask: Tensor<2>,
) -> f64 {
    try_top1_agreement(student_logits, teacher_logits, mask)
        .unwrap_or_else(|e| panic!("top1_agreement: {e}"))
}

/// [`top1_agreement`] returning an error on bad input.
///
/// # Errors
/// [`DistillError::Shape`] for mismatched shapes, [`DistillError::NonFinite`] for NaN / ±∞
/// logits, [`DistillError::InvalidMask`] for a mask that is not 0/1 or is all zero.
pub fn try_top1_agreement(
    student_logits: Tensor<3>,
    teacher_logits: Tensor<3>,
    mask: Tensor<2>,
) -> Result<f64, DistillError> {
    let dims = student_dims(&student_logits)?;
    if teacher_logits.dims() != dims {
        return Err(DistillError::Shape {
            arg: "teacher_logits",
            detail: format!(
                "teacher_logits {} vs student_logits {}: both must be [batch, seq, vocab] over \
                 the same vocabulary",
                fmt_shape(&teacher_logits.dims()),
                fmt_shape(&dims)
            ),
        });
    }
    mask_shape(&mask, "student_logits", dims)?;
    let mask = mask.detach();
    let mut checks = ValueChecks::new();
    checks.finite("student_logits", &student_logits);
    checks.finite("teacher_logits", &teacher_logits);
    checks.mask(&mask);
    let [batch, seq, _] = dims;
    let same = student_logits
        .detach()
        .argmax(2)
        .equal(teacher_logits.detach().argmax(2))
        .reshape([batch, seq])
        .float()
        .cast(mask.dtype());
    let agreeing = (same * mask.clone()).sum();
    let counted = mask.sum();
    let agreeing = checks.value(agreeing);
    let counted = checks.value(counted);
    let values = checks.run()?;
    Ok(values[agreeing] / values[counted])
}
