//! A `Linear` layer applied to a batch of sequences as one matrix product.

use burn::nn::Linear;
use burn::tensor::Tensor;

/// `linear` applied to `[batch, seq, in]` as one `[batch·seq, in] × [in, out]` product.
///
/// Burn's `Linear` keeps the batched form when `seq` is a multiple of 32 (or when folding
/// would not bring the product closer to square), which on the CPU backends runs one small,
/// single-threaded GEMM per sequence; folding the rows always gives the GEMM one large product
/// it can split over the cores. Same values either way.
///
/// # Shapes
/// - `x`: `[batch, seq, in]`
/// - output: `[batch, seq, out]`
pub(crate) fn linear_rows(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [batch, seq, d_in] = x.dims();
    let y = linear.forward(x.reshape([batch * seq, d_in]));
    let d_out = y.dims()[1];
    y.reshape([batch, seq, d_out])
}
