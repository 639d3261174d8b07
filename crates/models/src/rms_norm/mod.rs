//! Root-mean-square layer normalisation as a backend operation with a hand-written backward,
//! and a multi-core host path on the CPU backends.
//!
//! Over the last axis (`D` features), per row: `r = 1 / √(mean(x²) + ε)`, `x̂ = x · r`,
//! `y = w ⊙ x̂` (Zhang & Sennrich, *Root Mean Square Layer Normalization*, arXiv:1910.07467;
//! the Llama / Qwen `RMSNorm`). With `g = ∂L/∂y` and `ĝ = g ⊙ w`:
//!
//! - `∂L/∂x = r · (ĝ − x̂ · mean(ĝ ⊙ x̂))`
//! - `∂L/∂w = Σ_rows g ⊙ x̂`
//!
//! Under autodiff the tensor-operation form (square, mean, add, square root, reciprocal, two
//! products) is seven passes over the activations on one core in flex and ndarray, each saving
//! its inputs, and as many again backwards. Here, on flex and ndarray f32 tensors, the forward
//! is one pass per row and the backward another, in row blocks split across the cores; the
//! backward keeps only the input and `w`. Other backends, and other dtypes, compute the same
//! formula from tensor operations (the default bodies).

mod autodiff;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod host;

use burn::backend::{
    backend_extension, tensor::FloatTensor, Backend, Dispatch, ExtensionType, TensorMetadata,
};
use burn::tensor::{Shape, Tensor};

use mrl_common::is_host_cpu;

/// The gradients of [`RmsNormOps::rms_norm_backward`].
#[derive(Debug, ExtensionType)]
pub struct RmsNormGrads<B: Backend> {
    /// `∂L/∂x`, the shape of `x`.
    pub x: FloatTensor<B>,
    /// `∂L/∂w`, `[D]`.
    pub weight: FloatTensor<B>,
}

/// RMS normalisation over the last axis as a backend operation.
#[backend_extension(
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex"),
    Autodiff,
)]
pub trait RmsNormOps: Backend {
    /// `w ⊙ x / √(mean(x²) + ε)` over the last axis. Default: the formula from backend
    /// operations.
    fn rms_norm_fused(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        portable::forward::<Self>(x, weight, epsilon)
    }

    /// The two gradients of the module docs from `x`, `w` and `g = ∂L/∂y`. Default: the
    /// formula from backend operations.
    fn rms_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> RmsNormGrads<Self> {
        portable::backward::<Self>(x, weight, grad, epsilon)
    }
}

/// `w ⊙ x / √(mean(x²) + ε)` over the last axis, as one backend operation with the
/// hand-written backward of the module docs on flex and ndarray, and as tensor operations (the
/// same formula, differentiated by autodiff) on every other backend.
///
/// # Shapes
/// - `x`: `[…, D]`
/// - `weight`: `[D]`
/// - output: the shape of `x`
///
/// # Panics
/// If `weight` is not `[D]` with `D` the last axis of `x`.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex();
/// let x = Tensor::<2>::from_floats([[3.0, 4.0]], &device);
/// let w = Tensor::<1>::from_floats([1.0, 2.0], &device);
/// let y = models::rms_norm(x, w, 0.0); // rms = √12.5: [[0.8485, 2.2627]]
/// # let v = y.into_data().to_vec::<f32>().unwrap();
/// # assert!((v[0] - 0.848_528).abs() < 1e-5 && (v[1] - 2.262_742).abs() < 1e-5);
/// ```
pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: Tensor<1>, epsilon: f64) -> Tensor<D> {
    let dims = x.dims();
    let d = dims[D - 1];
    assert_eq!(
        weight.dims(),
        [d],
        "rms_norm: `weight` {:?} must be [{d}], the last axis of `x` {dims:?}",
        weight.dims()
    );
    if !is_host_cpu(&x.device()) {
        let inv_rms = x
            .clone()
            .square()
            .mean_dim(D - 1)
            .add_scalar(epsilon)
            .sqrt()
            .recip();
        return x * inv_rms * weight.unsqueeze::<D>();
    }
    Tensor::from_dispatch(<Dispatch as RmsNormOps>::rms_norm_fused(
        x.into_dispatch(),
        weight.into_dispatch(),
        epsilon,
    ))
}

/// The default bodies from backend operations.
mod portable {
    use super::*;

    /// `(x as [rows, D], r as [rows, 1])`.
    fn rows_and_rstd<B: Backend>(
        x: FloatTensor<B>,
        epsilon: f64,
    ) -> (FloatTensor<B>, FloatTensor<B>) {
        let shape = x.shape();
        let d = shape[shape.num_dims() - 1];
        let rows = shape.num_elements() / d.max(1);
        let x = B::float_reshape(x, Shape::new([rows, d]));
        let mean_sq = B::float_mean_dim(B::float_mul(x.clone(), x.clone()), 1);
        let rstd = B::float_recip(B::float_sqrt(B::float_add_scalar(mean_sq, epsilon.into())));
        (x, rstd)
    }

    pub(super) fn forward<B: Backend>(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        epsilon: f64,
    ) -> FloatTensor<B> {
        let shape = x.shape();
        let d = shape[shape.num_dims() - 1];
        let (x, rstd) = rows_and_rstd::<B>(x, epsilon);
        let weight = B::float_reshape(weight, Shape::new([1, d]));
        B::float_reshape(B::float_mul(B::float_mul(x, rstd), weight), shape)
    }

    pub(super) fn backward<B: Backend>(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        grad: FloatTensor<B>,
        epsilon: f64,
    ) -> RmsNormGrads<B> {
        let shape = x.shape();
        let d = shape[shape.num_dims() - 1];
        let rows = shape.num_elements() / d.max(1);
        let (x, rstd) = rows_and_rstd::<B>(x, epsilon);
        let grad = B::float_reshape(grad, Shape::new([rows, d]));
        let weight = B::float_reshape(weight, Shape::new([1, d]));
        let x_hat = B::float_mul(x, rstd.clone());
        let g_hat = B::float_mul(grad.clone(), weight);
        let mean_gx = B::float_mean_dim(B::float_mul(g_hat.clone(), x_hat.clone()), 1);
        let dx = B::float_mul(
            B::float_sub(g_hat, B::float_mul(x_hat.clone(), mean_gx)),
            rstd,
        );
        let dweight = B::float_sum_dim(B::float_mul(grad, x_hat), 0);
        RmsNormGrads {
            x: B::float_reshape(dx, shape),
            weight: B::float_reshape(dweight, Shape::new([d])),
        }
    }
}
