//! The exact (erf) GELU as a backend operation, with a fast host path on the CPU backends.
//!
//! `GELU(x) = x · Φ(x) = ½ · x · (1 + erf(x / √2))`, and
//! `GELU'(x) = Φ(x) + x · φ(x)` with `φ(x) = exp(−x² / 2) / √(2π)`
//! (Hendrycks & Gimpel, *Gaussian Error Linear Units*, arXiv:1606.08415).
//!
//! BERT-family checkpoints use the exact form (`hidden_act = "gelu"`); the tanh approximation
//! moves MiniLM's embeddings by ~1e-3 and is not an option. Burn's flex and ndarray backends
//! evaluate `erf` one element at a time through libm on one core, which took about a fifth of an
//! encoder forward pass ([`docs/benchmarks.md`]). Here flex and ndarray run a host
//! implementation (module `host`): a branch-free `erf` (Maclaurin series below 1, Abramowitz &
//! Stegun 7.1.26 — the polynomial PyTorch's vectorised CPU GELU uses — beyond; absolute error
//! ≤ 1.8e-7 in f32) and a Cephes-style `exp`, written so the compiler vectorises them, over
//! chunks split across the cores. Other backends (CubeCL, and flex/ndarray tensors that are
//! not f32) use Burn's own `gelu`, and autodiff routes the backward to
//! [`GeluOps::gelu_exact_backward`] of the inner backend.
//!
//! [`docs/benchmarks.md`]: https://github.com/burn-mrl/burn-mrl/blob/main/docs/benchmarks.md

mod autodiff;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod host;

use burn::backend::{backend_extension, tensor::FloatTensor, Backend, Dispatch};
use burn::tensor::Tensor;

use mrl_common::is_host_cpu;

/// The exact GELU as a backend operation (forward and hand-written backward).
#[backend_extension(
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex"),
    Autodiff,
)]
pub trait GeluOps: Backend {
    /// `½ · x · (1 + erf(x / √2))`, element-wise. Default: the backend's own `gelu`.
    fn gelu_exact(tensor: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::gelu(tensor)
    }

    /// `grad · (Φ(x) + x · φ(x))`, element-wise (same shapes). Default: the backend's own
    /// `gelu_backward`.
    fn gelu_exact_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::gelu_backward(x, grad)
    }
}

/// The exact GELU, `½ · x · (1 + erf(x / √2))`, element-wise.
///
/// Same values as [`burn::tensor::activation::gelu`] (within 1e-6 relative for f32); on flex
/// and ndarray f32 tensors it runs the vectorised multi-core host path, on every other backend
/// and dtype it is Burn's `gelu`. Differentiable on autodiff devices.
///
/// # Shapes
/// - input: any shape `[d_1, …, d_D]`
/// - output: the same shape
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex();
/// let x = Tensor::<1>::from_floats([-1.0, 0.0, 1.0], &device);
/// let y = models::gelu_exact(x); // [-0.15865526, 0.0, 0.8413447]
/// # assert!((y.into_data().try_to_vec::<f32>().unwrap()[2] - 0.841_344_7).abs() < 1e-6);
/// ```
pub fn gelu_exact<const D: usize>(tensor: Tensor<D>) -> Tensor<D> {
    if is_host_cpu(&tensor.device()) {
        Tensor::from_dispatch(<Dispatch as GeluOps>::gelu_exact(tensor.into_dispatch()))
    } else {
        burn::tensor::activation::gelu(tensor)
    }
}
