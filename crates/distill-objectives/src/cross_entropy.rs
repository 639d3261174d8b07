//! The supervised term of a distillation objective: masked next-token cross-entropy.

use burn::nn::loss::Reduction;
use burn::tensor::{Int, Tensor};
use mrl_common::log_softmax_select;

use crate::checks::{mask_shape, student_dims, ValueChecks};
use crate::error::{fmt_shape, DistillError};
use crate::reduction::{apply_mask, reduce_tokens};

/// Masked token cross-entropy at temperature 1:
///
/// ```text
/// ℓ_t = −log softmax(logits_t)[targets_t] · mask_t
/// L   = Σ_t ℓ_t / Σ_t mask_t        (Reduction::Mean, Auto; Sum: Σ_t ℓ_t; BatchMean: Σ_t ℓ_t / batch)
/// ```
///
/// `targets` are aligned with `logits` (position `t` predicts `targets_t`): the caller shifts
/// them for next-token prediction. Targets at positions where `mask = 0` are ignored and may hold
/// anything (e.g. Hugging Face's `−100`).
///
/// # Shapes
/// - `logits`: `[batch, seq, vocab]`
/// - `targets`: `[batch, seq]`, Int, in `0..vocab` where counted
/// - `mask`: `[batch, seq]`, float 0/1
/// - output: `[1]`
///
/// # Panics
/// With the [`DistillError`] message of [`try_masked_cross_entropy`].
pub fn masked_cross_entropy(
    logits: Tensor<3>,
    targets: Tensor<2, Int>,
    mask: Tensor<2>,
    reduction: Reduction,
) -> Tensor<1> {
    try_masked_cross_entropy(logits, targets, mask, reduction)
        .unwrap_or_else(|e| panic!("masked_cross_entropy: {e}"))
}

/// [`masked_cross_entropy`] returning an error on bad input.
///
/// # Errors
/// [`DistillError::Shape`] for mismatched shapes, [`DistillError::NonFinite`] for NaN / ±∞
/// logits, [`DistillError::InvalidMask`] for a mask that is not 0/1 or is all zero,
/// [`DistillError::InvalidIds`] for a counted target outside `0..vocab`.
pub fn try_masked_cross_entropy(
    logits: Tensor<3>,
    targets: Tensor<2, Int>,
    mask: Tensor<2>,
    reduction: Reduction,
) -> Result<Tensor<1>, DistillError> {
    let dims = student_dims(&logits)?;
    check_targets_shape(&targets, "logits", dims)?;
    mask_shape(&mask, "logits", dims)?;
    let mut checks = ValueChecks::new();
    checks.finite("logits", &logits);
    add_target_checks(&mut checks, &targets, &mask, dims[2]);
    checks.mask(&mask);
    checks.run()?;
    let mask = mask.cast(logits.dtype());
    let per_token = cross_entropy_per_token(logits, targets, &mask);
    Ok(reduce_tokens(per_token, &mask, &reduction))
}

/// `targets` must be `[B, S]` like the logits.
pub(crate) fn check_targets_shape(
    targets: &Tensor<2, Int>,
    logits_arg: &'static str,
    dims: [usize; 3],
) -> Result<(), DistillError> {
    let [batch, seq, _] = dims;
    if targets.dims() != [batch, seq] {
        return Err(DistillError::Shape {
            arg: "targets",
            detail: format!(
                "expected [batch, seq] = {} to match `{logits_arg}` {}, got {}",
                fmt_shape(&[batch, seq]),
                fmt_shape(&dims),
                fmt_shape(&targets.dims())
            ),
        });
    }
    Ok(())
}

/// Counted targets must lie in `0..vocab`.
pub(crate) fn add_target_checks(
    checks: &mut ValueChecks,
    targets: &Tensor<2, Int>,
    mask: &Tensor<2>,
    vocab: usize,
) {
    let counted = mask.clone().detach().equal_elem(0.0).bool_not();
    checks.ids_in_range("targets", targets, vocab, Some(counted));
}

/// Per-token cross-entropy `[B, S]`, 0 at masked-out positions; inputs validated, `mask` in the
/// logits' dtype.
pub(crate) fn cross_entropy_per_token(
    logits: Tensor<3>,
    targets: Tensor<2, Int>,
    mask: &Tensor<2>,
) -> Tensor<2> {
    let [batch, seq, vocab] = logits.dims();
    let ignored = mask.clone().equal_elem(0.0);
    let safe_targets = targets.mask_fill(ignored, 0).reshape([batch * seq, 1]);
    // The target's log-probability without the full log-softmax over the vocabulary.
    let nll = log_softmax_select(
        logits.reshape([batch * seq, vocab]),
        safe_targets,
        1.0,
        false,
    )
    .reshape([batch, seq])
    .neg();
    apply_mask(nll, mask)
}
