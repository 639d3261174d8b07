//! Layer normalisation as a backend operation with a hand-written backward, and a multi-core
//! host path on the CPU backends.
//!
//! Over the last axis (`D` features), per row: `μ = mean(x)`, `σ² = mean((x − μ)²)` (biased),
//! `r = 1 / √(σ² + ε)`, `x̂ = (x − μ) · r`, `y = γ ⊙ x̂ + β` (Ba, Kiros & Hinton, *Layer
//! Normalization*, arXiv:1607.06450). With `g = ∂L/∂y` and `ĝ = g ⊙ γ`:
//!
//! - `∂L/∂x = r · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))`
//! - `∂L/∂γ = Σ_rows g ⊙ x̂`, `∂L/∂β = Σ_rows g`
//!
//! Under autodiff Burn records its layer norm as eight element-wise operations (mean, subtract,
//! square, mean, add, square root, divide, scale and shift), each a pass over the activations on
//! one core in flex and ndarray, and the same again backwards. Here, on flex and ndarray f32
//! tensors, the forward is one pass per row and the backward another, in row blocks split across
//! the cores; the backward keeps only the input and `γ`. Other backends run Burn's
//! [`burn::nn::LayerNorm`] computation unchanged; other dtypes on flex and ndarray the same
//! formula from backend operations (the default bodies).

mod autodiff;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod host;

use burn::backend::{
    backend_extension, tensor::FloatTensor, Backend, Dispatch, ExtensionType, TensorMetadata,
};
use burn::tensor::{Shape, Tensor};

use mrl_common::is_host_cpu;

/// The gradients of [`LayerNormOps::layer_norm_backward`].
#[derive(Debug, ExtensionType)]
pub struct LayerNormGrads<B: Backend> {
    /// `∂L/∂x`, the shape of `x`.
    pub x: FloatTensor<B>,
    /// `∂L/∂γ`, `[D]`.
    pub gamma: FloatTensor<B>,
    /// `∂L/∂β`, `[D]`.
    pub beta: FloatTensor<B>,
}

/// Layer normalisation over the last axis as a backend operation.
#[backend_extension(
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex"),
    Autodiff,
)]
pub trait LayerNormOps: Backend {
    /// `γ ⊙ (x − μ) / √(σ² + ε) + β` over the last axis. Default: the backend's `layer_norm`.
    fn layer_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        Self::layer_norm(x, gamma, Some(beta), epsilon)
    }

    /// The three gradients of the module docs from `x`, `γ` and `g = ∂L/∂y`. Default: the
    /// formula from backend operations.
    fn layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> LayerNormGrads<Self> {
        portable::backward::<Self>(x, gamma, grad, epsilon)
    }
}

/// `γ ⊙ (x − μ) / √(σ² + ε) + β` over the last axis (the functional form of Burn's
/// [`burn::nn::LayerNorm`]: pass its `gamma`, `beta` and epsilon) as one backend operation with the
/// hand-written backward of the module docs on flex and ndarray; Burn's
/// [`burn::tensor::module::layer_norm`] on every other backend. Same values as Burn's up to f32
/// rounding.
///
/// # Shapes
/// - `x`: `[…, D]`
/// - `gamma`, `beta`: `[D]`
/// - output: the shape of `x`
///
/// # Panics
/// If `gamma` or `beta` is not `[D]` with `D` the last axis of `x`.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex();
/// let x = Tensor::<2>::from_floats([[1.0, 2.0, 3.0]], &device);
/// let (gamma, beta) = (Tensor::ones([3], &device), Tensor::zeros([3], &device));
/// let y = models::layer_norm(x, gamma, beta, 1e-12); // [[-1.2247, 0.0, 1.2247]]
/// # let v = y.into_data().to_vec::<f32>().unwrap();
/// # assert!((v[2] - 1.224_743).abs() < 1e-4 && v[1].abs() < 1e-6);
/// ```
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Tensor<D> {
    let dims = x.dims();
    let d = dims[D - 1];
    for (what, t) in [("gamma", &gamma), ("beta", &beta)] {
        assert_eq!(
            t.dims(),
            [d],
            "layer_norm: `{what}` {:?} must be [{d}], the last axis of `x` {dims:?}",
            t.dims()
        );
    }
    if !is_host_cpu(&x.device()) {
        return burn::tensor::module::layer_norm(x, gamma, Some(beta), epsilon);
    }
    Tensor::from_dispatch(<Dispatch as LayerNormOps>::layer_norm_fused(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    ))
}

/// The default backward from backend operations.
mod portable {
    use super::*;

    pub(super) fn backward<B: Backend>(
        x: FloatTensor<B>,
        gamma: FloatTensor<B>,
        grad: FloatTensor<B>,
        epsilon: f64,
    ) -> LayerNormGrads<B> {
        let shape = x.shape();
        let rank = shape.num_dims();
        let last = rank - 1;
        let d = shape[last];
        let rows = shape.num_elements() / d.max(1);
        let x = B::float_reshape(x, Shape::new([rows, d]));
        let grad = B::float_reshape(grad, Shape::new([rows, d]));
        let gamma = B::float_reshape(gamma, Shape::new([1, d]));

        let mean = B::float_mean_dim(x.clone(), 1);
        let centered = B::float_sub(x, mean);
        let var = B::float_mean_dim(B::float_mul(centered.clone(), centered.clone()), 1);
        let rstd = B::float_recip(B::float_sqrt(B::float_add_scalar(var, epsilon.into())));
        let x_hat = B::float_mul(centered, rstd.clone());

        let g_hat = B::float_mul(grad.clone(), gamma);
        let mean_g = B::float_mean_dim(g_hat.clone(), 1);
        let mean_gx = B::float_mean_dim(B::float_mul(g_hat.clone(), x_hat.clone()), 1);
        let dx = B::float_mul(
            B::float_sub(
                B::float_sub(g_hat, mean_g),
                B::float_mul(x_hat.clone(), mean_gx),
            ),
            rstd,
        );
        let dgamma = B::float_sum_dim(B::float_mul(grad.clone(), x_hat), 0);
        let dbeta = B::float_sum_dim(grad, 0);
        LayerNormGrads {
            x: B::float_reshape(dx, shape),
            gamma: B::float_reshape(dgamma, Shape::new([d])),
            beta: B::float_reshape(dbeta, Shape::new([d])),
        }
    }
}
