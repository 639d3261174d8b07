//! The attention probabilities `softmax(s · scale + m)` as one backend operation with a
//! hand-written backward, and a multi-core host path on the CPU backends.
//!
//! For scores `s` `[B, H, Q, K]`, an additive key mask `m` `[B, K]` (0 at real keys, a large
//! negative number at padded ones) and a scale `c` (`1/√d_head`):
//! `p_{bhqk} = exp(c·s_{bhqk} + m_{bk} − M) / Σ_k' exp(c·s_{bhqk'} + m_{bk'} − M)` with `M` the row
//! maximum (Vaswani et al., *Attention Is All You Need*, arXiv:1706.03762, Eq. 1), and with
//! `g = ∂L/∂p`: `∂L/∂s = c · p ⊙ (g − Σ_k g ⊙ p)` per row.
//!
//! Under autodiff Burn records the scale, the mask addition and its softmax (max, subtract, exp,
//! sum, divide) as separate operations over the `[B, H, Q, K]` scores, each a pass on one core in
//! flex and ndarray, and again backwards. Here it is one operation whose backward keeps only the
//! probabilities; on flex and ndarray f32 tensors both directions run row blocks across the
//! cores with a vectorised `exp` (the one of [`crate::gelu_exact`]'s host path; exactly 0 below
//! `e^−87`, so padded keys get 0 as with libm's `exp`). Other backends run Burn's own operations.

mod autodiff;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod host;

use burn::backend::{backend_extension, tensor::FloatTensor, Backend, Dispatch, TensorMetadata};
use burn::tensor::{activation::softmax, Shape, Tensor};

use mrl_common::is_host_cpu;

/// The attention softmax as a backend operation.
#[backend_extension(
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex"),
    Autodiff,
)]
pub trait AttentionSoftmaxOps: Backend {
    /// `softmax(scores · scale + mask)` over the last axis, `mask` `[B, K]` broadcast over heads
    /// and queries. Default: backend operations.
    fn attention_softmax(
        scores: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        portable::forward::<Self>(scores, mask, scale)
    }

    /// `scale · p ⊙ (g − Σ_k g ⊙ p)` from the probabilities `p` and `g = ∂L/∂p` (same shapes).
    /// Default: backend operations.
    fn attention_softmax_backward(
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        portable::backward::<Self>(probs, grad, scale)
    }
}

/// The default bodies from backend operations.
mod portable {
    use super::*;

    pub(super) fn forward<B: Backend>(
        scores: FloatTensor<B>,
        mask: FloatTensor<B>,
        scale: f64,
    ) -> FloatTensor<B> {
        let [batch, keys] = mask.shape().dims();
        let mask = B::float_reshape(mask, Shape::new([batch, 1, 1, keys]));
        let logits = B::float_add(B::float_mul_scalar(scores, scale.into()), mask);
        B::softmax(logits, 3)
    }

    pub(super) fn backward<B: Backend>(
        probs: FloatTensor<B>,
        grad: FloatTensor<B>,
        scale: f64,
    ) -> FloatTensor<B> {
        let dot = B::float_sum_dim(B::float_mul(grad.clone(), probs.clone()), 3);
        let centred = B::float_sub(grad, dot);
        B::float_mul_scalar(B::float_mul(probs, centred), scale.into())
    }
}

/// The attention probabilities `softmax(scores · scale + mask)` over the keys (see the module
/// docs), differentiable with respect to `scores`; `mask` is a constant.
///
/// # Shapes
/// - `scores`: `[B, H, Q, K]`
/// - `mask`: `[B, K]`, additive (0 at real keys, e.g. `f32::MIN` at padded ones)
/// - output: `[B, H, Q, K]`
///
/// # Panics
/// If `mask` is not `[B, K]` for the `B` and `K` of `scores`, or `scale` is not finite.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex();
/// let scores = Tensor::<4>::from_floats([[[[1.0, 2.0, 3.0]]]], &device);
/// let mask = Tensor::<2>::from_floats([[0.0, 0.0, f32::MIN]], &device);
/// let p = models::attention_softmax(scores, mask, 0.5); // [[[[0.3775, 0.6225, 0.0]]]]
/// # let v = p.into_data().to_vec::<f32>().unwrap();
/// # assert!((v[0] - 0.377_540_7).abs() < 1e-6 && v[2] == 0.0);
/// ```
pub fn attention_softmax(scores: Tensor<4>, mask: Tensor<2>, scale: f64) -> Tensor<4> {
    let [batch, _, _, keys] = scores.dims();
    assert_eq!(
        mask.dims(),
        [batch, keys],
        "attention_softmax: `mask` {:?} must be [batch, keys] = [{batch}, {keys}] for `scores` {:?}",
        mask.dims(),
        scores.dims()
    );
    assert!(
        scale.is_finite(),
        "attention_softmax: `scale` must be finite, got {scale}"
    );
    let mask = mask.detach();
    if !is_host_cpu(&scores.device()) {
        return softmax(
            scores.mul_scalar(scale) + mask.reshape([batch, 1, 1, keys]),
            3,
        );
    }
    Tensor::from_dispatch(<Dispatch as AttentionSoftmaxOps>::attention_softmax(
        scores.into_dispatch(),
        mask.into_dispatch(),
        scale,
    ))
}
