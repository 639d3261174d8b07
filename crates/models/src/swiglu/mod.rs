//! The SwiGLU gate `silu(a) ⊙ b` as a backend operation with a hand-written backward, and a
//! vectorised multi-core host path on the CPU backends.
//!
//! `y = silu(a) ⊙ b` with `silu(a) = a · σ(a)`, `σ(a) = 1 / (1 + e^(−a))` (Shazeer, *GLU
//! Variants Improve Transformer*, arXiv:2002.05202; the Llama / Qwen MLP, `a` the gate and `b`
//! the up projection). With `g = ∂L/∂y`:
//!
//! - `∂L/∂a = g ⊙ b ⊙ σ(a) ⊙ (1 + a ⊙ (1 − σ(a)))`
//! - `∂L/∂b = g ⊙ a ⊙ σ(a)`
//!
//! Under autodiff Burn records `silu` as a sigmoid and a product and the gate as another
//! product, each a pass over the `[batch, seq, intermediate]` activations saving its inputs;
//! here the forward is one pass and the backward another that writes both gradients over the
//! saved inputs, on flex and ndarray f32 tensors in chunks across the cores, with the
//! vectorised `exp` of [`crate::gelu_exact`]'s host path. Other backends, and other dtypes,
//! compute `silu(a) * b` from Burn's operations.

mod autodiff;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod host;

use burn::backend::{backend_extension, tensor::FloatTensor, Backend, Dispatch, ExtensionType};
use burn::tensor::activation::silu;
use burn::tensor::Tensor;

use mrl_common::is_host_cpu;

/// The gradients of [`SwigluOps::swiglu_backward`].
#[derive(Debug, ExtensionType)]
pub struct SwigluGrads<B: Backend> {
    /// `∂L/∂a` (the gate), the shape of `a`.
    pub gate: FloatTensor<B>,
    /// `∂L/∂b` (the up projection), the shape of `b`.
    pub up: FloatTensor<B>,
}

/// The SwiGLU gate as a backend operation.
#[backend_extension(
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex"),
    Autodiff,
)]
pub trait SwigluOps: Backend {
    /// `silu(gate) ⊙ up`, element-wise (same shapes). Default: backend operations.
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        portable_forward::<Self>(gate, up)
    }

    /// The two gradients of the module docs from `gate`, `up` and `g = ∂L/∂y`. Default: the
    /// formula from backend operations.
    fn swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> SwigluGrads<Self> {
        portable_backward::<Self>(gate, up, grad)
    }
}

/// The default forward from backend operations.
fn portable_forward<B: Backend>(gate: FloatTensor<B>, up: FloatTensor<B>) -> FloatTensor<B> {
    let sigmoid = B::sigmoid(gate.clone());
    B::float_mul(B::float_mul(gate, sigmoid), up)
}

/// The default backward from backend operations.
fn portable_backward<B: Backend>(
    gate: FloatTensor<B>,
    up: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> SwigluGrads<B> {
    let sigmoid = B::sigmoid(gate.clone());
    let a_sigmoid = B::float_mul(gate, sigmoid.clone());
    let d_up = B::float_mul(grad.clone(), a_sigmoid.clone());
    // σ ⊙ (1 + a ⊙ (1 − σ)) = σ + a ⊙ σ − a ⊙ σ ⊙ σ
    let slope = B::float_add(
        sigmoid.clone(),
        B::float_sub(a_sigmoid.clone(), B::float_mul(a_sigmoid, sigmoid)),
    );
    SwigluGrads {
        gate: B::float_mul(B::float_mul(grad, up), slope),
        up: d_up,
    }
}

/// `silu(gate) ⊙ up` (the gated unit of a SwiGLU feed-forward block) as one backend operation
/// with the hand-written backward of the module docs on flex and ndarray (vectorised, across
/// the cores), and as Burn's `silu(gate) * up` on every other backend. Same values as Burn's up to
/// f32 rounding.
///
/// # Shapes
/// - `gate`, `up`: the same shape `[d_1, …, d_D]`
/// - output: that shape
///
/// # Panics
/// If `gate` and `up` differ in shape.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex();
/// let gate = Tensor::<1>::from_floats([0.0, 1.0], &device);
/// let up = Tensor::<1>::from_floats([5.0, 2.0], &device);
/// let y = models::swiglu(gate, up); // [0, 2 · 0.7310586]
/// # let v = y.into_data().to_vec::<f32>().unwrap();
/// # assert!(v[0] == 0.0 && (v[1] - 1.462_117_2).abs() < 1e-6);
/// ```
pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    assert_eq!(
        gate.dims(),
        up.dims(),
        "swiglu: `gate` {:?} and `up` {:?} must have the same shape",
        gate.dims(),
        up.dims()
    );
    if !is_host_cpu(&gate.device()) {
        return silu(gate) * up;
    }
    Tensor::from_dispatch(<Dispatch as SwigluOps>::swiglu(
        gate.into_dispatch(),
        up.into_dispatch(),
    ))
}
