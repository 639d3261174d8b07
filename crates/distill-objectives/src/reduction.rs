//! Masked token reductions: what `Reduction` means for per-token values `[batch, seq]`.

use burn::nn::loss::Reduction;
use burn::tensor::Tensor;

/// Zeroes the positions where `mask` is 0 (exactly, whatever the value there).
pub(crate) fn apply_mask(per_token: Tensor<2>, mask: &Tensor<2>) -> Tensor<2> {
    let ignored = mask.clone().equal_elem(0.0);
    per_token.mask_fill(ignored, 0.0)
}

/// Reduces masked per-token values `[B, S]` (0 at ignored positions) to `[1]`:
/// `Mean` and `Auto` divide the sum by the number of counted positions (DSKD's token mean),
/// `BatchMean` by the batch size `B`, `Sum` returns the sum.
pub(crate) fn reduce_tokens(
    per_token: Tensor<2>,
    mask: &Tensor<2>,
    reduction: &Reduction,
) -> Tensor<1> {
    let [batch, _] = per_token.dims();
    let sum = per_token.sum();
    match reduction {
        Reduction::Mean | Reduction::Auto => {
            let count = mask.clone().detach().cast(sum.dtype()).sum();
            sum / count
        }
        Reduction::BatchMean => sum.div_scalar(batch as f64),
        Reduction::Sum => sum,
    }
}

/// The mean of `values` `[B, S]` over the counted positions of `mask`, `[1]`.
pub(crate) fn masked_mean(values: Tensor<2>, mask: &Tensor<2>) -> Tensor<1> {
    reduce_tokens(apply_mask(values, mask), mask, &Reduction::Mean)
}
