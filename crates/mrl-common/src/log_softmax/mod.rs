//! Log-softmax over the last axis as a backend operation with a hand-written backward, and a
//! vectorised multi-core host path on the CPU backends.
//!
//! Per row `x` of `D` values: `M = max_k x_k`, `y_k = x_k − M − ln Σ_j exp(x_j − M)`; with
//! `g = ∂L/∂y`: `∂L/∂x_k = g_k − exp(y_k) · Σ_j g_j` (the softmax Jacobian in log space; Bridle,
//! *Probabilistic Interpretation of Feedforward Classification Network Outputs*, 1990, and every
//! cross-entropy since).
//!
//! Distillation takes it over the vocabulary at every position — `[batch, length, 49152]` for
//! SmolLM2 — where Burn's decomposition (max, subtract, exp, sum, log, subtract) is six passes
//! over a 100 MB tensor per batch of 512 positions, `exp` through libm on one core, each pass
//! allocating its output and the autodiff graph keeping several of them for the backward. Here,
//! on flex and ndarray f32 tensors, the forward is three passes per row in place (maximum,
//! sum of exponentials, output), the backward two over the gradient, rows split across the
//! cores and compiled for the widest instruction set (`pulp`), with the vectorised `exp` of
//! [`crate::host_math`]; the backward keeps only the output. Other backends, dtypes and axes
//! use Burn's [`burn::tensor::activation::log_softmax`].
//!
//! Non-finite input gives what Burn's gives: a row with a NaN, a `+∞`, or only `−∞` is NaN
//! throughout; `−∞` entries of an otherwise finite row get `−∞` (probability 0).

mod autodiff;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod host;

use burn::backend::{backend_extension, tensor::FloatTensor, Backend, Dispatch};
use burn::tensor::Tensor;

use crate::host_device::is_host_cpu;

/// Log-softmax over the last axis as a backend operation.
#[backend_extension(
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex"),
    Autodiff,
)]
pub trait LogSoftmaxOps: Backend {
    /// `x − M − ln Σ exp(x − M)` over the last axis. Default: the backend's `log_softmax`.
    fn log_softmax_last(tensor: FloatTensor<Self>) -> FloatTensor<Self> {
        let dim = burn::backend::TensorMetadata::shape(&tensor).num_dims() - 1;
        Self::log_softmax(tensor, dim)
    }

    /// `g − exp(y) · Σ g` per row of the last axis, from the output `y` and `g = ∂L/∂y`.
    /// Default: backend operations.
    fn log_softmax_last_backward(
        output: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        portable_backward::<Self>(output, grad)
    }
}

/// The default backward from backend operations.
fn portable_backward<B: Backend>(output: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    let dim = burn::backend::TensorMetadata::shape(&grad).num_dims() - 1;
    let sum = B::float_sum_dim(grad.clone(), dim);
    B::float_sub(grad, B::float_mul(B::float_exp(output), sum))
}

/// `log softmax` along `dim`: `x_k − ln Σ_j exp(x_j)` (computed from the row maximum).
///
/// Same values as [`burn::tensor::activation::log_softmax`] up to f32 rounding (relative
/// difference ≤ 1e-6 of the row's largest magnitude). Along the last axis on flex and ndarray f32
/// tensors it is one backend operation with the hand-written backward of the module docs,
/// vectorised across the cores; any other axis, dtype or backend runs Burn's. Differentiable
/// on autodiff devices.
///
/// # Shapes
/// - input: `[d_1, …, d_D]`; output: the same shape
///
/// # Panics
/// If `dim >= D`.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex();
/// let x = Tensor::<2>::from_floats([[0.0, 0.0, f32::ln(2.0)]], &device);
/// let y = mrl_common::log_softmax(x, 1); // ln [0.25, 0.25, 0.5]
/// # let v = y.into_data().to_vec::<f32>().unwrap();
/// # assert!((v[0] - 0.25f32.ln()).abs() < 1e-6 && (v[2] - 0.5f32.ln()).abs() < 1e-6);
/// ```
pub fn log_softmax<const D: usize>(tensor: Tensor<D>, dim: usize) -> Tensor<D> {
    assert!(
        dim < D,
        "log_softmax: `dim` {dim} is not an axis of a rank-{D} tensor {:?}",
        tensor.dims()
    );
    if dim != D - 1 || !is_host_cpu(&tensor.device()) {
        return burn::tensor::activation::log_softmax(tensor, dim);
    }
    Tensor::from_dispatch(<Dispatch as LogSoftmaxOps>::log_softmax_last(
        tensor.into_dispatch(),
    ))
}

#[cfg(all(test, feature = "flex", feature = "ndarray"))]
mod tests;
