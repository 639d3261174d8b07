//! Pooling token states into one vector per example, and Matryoshka truncation.
//!
//! Tensor-level helpers so that any encoder's `[B, m, D]` output can feed the losses of this
//! crate. Evaluation and training use the same order: pool, truncate to `d`, L2-normalise
//! (MRL, arXiv 2205.13147).

use burn::config::Config;
use burn::tensor::Tensor;

use crate::error::{fmt_shape, MrlError};

/// Floor of the L2 norm in [`l2_normalize`] (PyTorch's `F.normalize` default).
pub const NORM_EPS: f64 = 1e-12;

/// How token states become one sentence vector.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum Pooling {
    /// The first token (`[CLS]` for BERT-family encoders): `h[:, 0, :]`.
    Cls,
    /// The mean over real (non-padding) tokens, as in sentence-transformers.
    Mean,
}

/// Pools `hidden` `[B, m, D]` into `[B, D]`.
///
/// - [`Pooling::Cls`]: `h[:, 0, :]`.
/// - [`Pooling::Mean`]: `Σ_j mask_j h_j / max(Σ_j mask_j, 1e-9)`.
///
/// # Shapes
/// - `hidden`: `[B, m, D]`
/// - `mask`: `[B, m]`, 1 = real token, 0 = padding
/// - output: `[B, D]`
///
/// # Errors
/// [`MrlError::Shape`] when `mask` is not `[B, m]` or `hidden` is empty.
pub fn pool(hidden: Tensor<3>, mask: Tensor<2>, pooling: Pooling) -> Result<Tensor<2>, MrlError> {
    let [batch, len, width] = hidden.dims();
    if batch == 0 || len == 0 || width == 0 {
        return Err(MrlError::Shape {
            arg: "hidden",
            detail: format!(
                "expected a non-empty [B, m, D], got {}",
                fmt_shape(&hidden.dims())
            ),
        });
    }
    if mask.dims() != [batch, len] {
        return Err(MrlError::Shape {
            arg: "mask",
            detail: format!(
                "expected [B, m] = {} to match hidden {}, got {}",
                fmt_shape(&[batch, len]),
                fmt_shape(&hidden.dims()),
                fmt_shape(&mask.dims())
            ),
        });
    }
    Ok(match pooling {
        Pooling::Cls => hidden
            .slice([0..batch, 0..1, 0..width])
            .reshape([batch, width]),
        Pooling::Mean => {
            let w = mask.cast(hidden.dtype()).unsqueeze_dim::<3>(2); // [B, m, 1]
            let count = w.clone().sum_dim(1).clamp_min(1e-9); // [B, 1, 1]
            ((hidden * w).sum_dim(1) / count).reshape([batch, width])
        }
    })
}

/// Row-wise L2 normalisation `x / max(‖x‖, 1e-12)`.
///
/// # Shapes
/// - `x`: `[N, d]`, output: `[N, d]`
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = (x.clone() * x.clone())
        .sum_dim(1)
        .sqrt()
        .clamp_min(NORM_EPS);
    x / norm
}

/// The Matryoshka prefix `x[:, :d]`, L2-normalised.
///
/// # Shapes
/// - `x`: `[N, D]` with `d <= D`, output: `[N, d]`
///
/// # Panics
/// When `d` is 0 or larger than `D` (the losses validate this before calling).
pub fn truncate_normalize(x: Tensor<2>, d: usize) -> Tensor<2> {
    let [n, width] = x.dims();
    assert!(
        d > 0 && d <= width,
        "truncate_normalize: d = {d} must lie in 1..={width}"
    );
    l2_normalize(x.slice([0..n, 0..d]))
}
