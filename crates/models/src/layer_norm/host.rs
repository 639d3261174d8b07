//! The host implementation of [`LayerNormOps`] for flex and ndarray f32 tensors (other dtypes
//! take the default bodies): blocks of rows split across the cores; per row two passes for the
//! mean and variance (f32, D ≤ a few thousand) and one for the output or gradient.

use burn::backend::{tensor::FloatTensor, Backend, TensorMetadata};
use burn::tensor::{DType, Shape, TensorData};
use rayon::prelude::*;

use super::{LayerNormGrads, LayerNormOps};
use mrl_common::host_math::{dot_lanes, sum_lanes, HostF32};

/// Rows per parallel task (a block of `ROWS × D` values).
const ROWS: usize = 64;

/// `(μ, r = 1/√(σ² + ε))` of one row (`scratch` receives `x − μ`).
#[inline(always)]
fn moments(row: &[f32], scratch: &mut [f32], epsilon: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = sum_lanes(row) / n;
    for (c, v) in scratch.iter_mut().zip(row) {
        *c = v - mean;
    }
    let var = dot_lanes(scratch, scratch) / n;
    (mean, 1.0 / (var + epsilon).sqrt())
}

fn check(x: &Shape, gamma: &Shape, what: &str) -> usize {
    let d = x[x.num_dims() - 1];
    assert!(
        gamma.num_dims() == 1 && gamma[0] == d,
        "layer_norm: `{what}` {gamma:?} must be [{d}], the last axis of `x` {x:?}"
    );
    d
}

fn forward_f32<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
) -> FloatTensor<B> {
    let (device, shape) = (x.device(), x.shape());
    let d = check(&shape, &gamma.shape(), "gamma");
    check(&shape, &beta.shape(), "beta");
    let mut values = HostF32::read::<B>(x, "layer_norm", "x");
    let (gamma, beta) = (
        HostF32::read::<B>(gamma, "layer_norm", "gamma"),
        HostF32::read::<B>(beta, "layer_norm", "beta"),
    );
    let (gamma, beta): (&[f32], &[f32]) = (&gamma, &beta);
    let eps = epsilon as f32;
    if d > 0 {
        values.par_chunks_mut(ROWS * d).for_each(|block| {
            let mut centred = vec![0.0f32; d];
            for row in block.chunks_mut(d) {
                let (_, rstd) = moments(row, &mut centred, eps);
                for (((v, c), g), b) in row.iter_mut().zip(&centred).zip(gamma).zip(beta) {
                    *v = c * rstd * g + b;
                }
            }
        });
    }
    values.into_tensor::<B>(&device)
}

fn backward_f32<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    grad: FloatTensor<B>,
    epsilon: f64,
) -> LayerNormGrads<B> {
    let (device, shape) = (x.device(), x.shape());
    assert_eq!(
        shape,
        grad.shape(),
        "layer_norm_backward: `x` {:?} and `grad` {:?} must have the same shape",
        shape,
        grad.shape()
    );
    let d = check(&shape, &gamma.shape(), "gamma");
    let x = HostF32::read::<B>(x, "layer_norm", "x");
    let gamma = HostF32::read::<B>(gamma, "layer_norm", "gamma");
    let gamma: &[f32] = &gamma;
    let mut grad = HostF32::read::<B>(grad, "layer_norm", "grad");
    let eps = epsilon as f32;
    let (mut dgamma, mut dbeta) = (vec![0.0f32; d], vec![0.0f32; d]);
    if d > 0 {
        // Each block writes ∂L/∂x over its `grad` rows and returns its partial Σ g ⊙ x̂, Σ g.
        let partials: Vec<(Vec<f32>, Vec<f32>)> = grad
            .par_chunks_mut(ROWS * d)
            .zip(x.par_chunks(ROWS * d))
            .map(|(g_block, x_block)| {
                let (mut pg, mut pb) = (vec![0.0f32; d], vec![0.0f32; d]);
                let (mut x_hat, mut g_hat) = (vec![0.0f32; d], vec![0.0f32; d]);
                for (g_row, x_row) in g_block.chunks_mut(d).zip(x_block.chunks(d)) {
                    let (_, rstd) = moments(x_row, &mut x_hat, eps);
                    for ((((xh, gh), g), gamma), (pg, pb)) in x_hat
                        .iter_mut()
                        .zip(g_hat.iter_mut())
                        .zip(g_row.iter())
                        .zip(gamma)
                        .zip(pg.iter_mut().zip(pb.iter_mut()))
                    {
                        *xh *= rstd;
                        *pg += g * *xh;
                        *pb += g;
                        *gh = g * gamma;
                    }
                    let mean_g = sum_lanes(&g_hat) / d as f32;
                    let mean_gx = dot_lanes(&g_hat, &x_hat) / d as f32;
                    for ((g, gh), xh) in g_row.iter_mut().zip(&g_hat).zip(&x_hat) {
                        *g = rstd * (gh - mean_g - xh * mean_gx);
                    }
                }
                (pg, pb)
            })
            .collect();
        for (pg, pb) in partials {
            dgamma.iter_mut().zip(&pg).for_each(|(a, b)| *a += b);
            dbeta.iter_mut().zip(&pb).for_each(|(a, b)| *a += b);
        }
    }
    LayerNormGrads {
        x: grad.into_tensor::<B>(&device),
        gamma: B::float_from_data(TensorData::new(dgamma, [d]), &device),
        beta: B::float_from_data(TensorData::new(dbeta, [d]), &device),
    }
}

macro_rules! host_layer_norm_ops {
    ($backend:ty) => {
        impl LayerNormOps for $backend {
            fn layer_norm_fused(
                x: FloatTensor<Self>,
                gamma: FloatTensor<Self>,
                beta: FloatTensor<Self>,
                epsilon: f64,
            ) -> FloatTensor<Self> {
                if [x.dtype(), gamma.dtype(), beta.dtype()] == [DType::F32; 3] {
                    forward_f32::<Self>(x, gamma, beta, epsilon)
                } else {
                    <Self as burn::backend::ops::ModuleOps<Self>>::layer_norm(
                        x,
                        gamma,
                        Some(beta),
                        epsilon,
                    )
                }
            }

            fn layer_norm_backward(
                x: FloatTensor<Self>,
                gamma: FloatTensor<Self>,
                grad: FloatTensor<Self>,
                epsilon: f64,
            ) -> LayerNormGrads<Self> {
                if [x.dtype(), gamma.dtype(), grad.dtype()] == [DType::F32; 3] {
                    backward_f32::<Self>(x, gamma, grad, epsilon)
                } else {
                    crate::layer_norm::portable::backward::<Self>(x, gamma, grad, epsilon)
                }
            }
        }
    };
}

#[cfg(feature = "flex")]
host_layer_norm_ops!(burn::backend::Flex);

#[cfg(feature = "ndarray")]
#[allow(deprecated)]
mod ndarray_backend {
    use super::*;
    host_layer_norm_ops!(burn::backend::NdArray);
}
