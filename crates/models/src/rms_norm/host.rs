//! The host implementation of [`RmsNormOps`] for flex and ndarray f32 tensors (other dtypes
//! take the default bodies): blocks of rows split across the cores; per row one pass for the
//! mean square and one for the output or gradient.

use burn::backend::{tensor::FloatTensor, Backend, TensorMetadata};
use burn::tensor::{DType, Shape, TensorData};
use rayon::prelude::*;

use super::{RmsNormGrads, RmsNormOps};
use mrl_common::host_math::{dot_lanes, HostF32};

/// Rows per parallel task (a block of `ROWS × D` values).
const ROWS: usize = 64;

/// `r = 1/√(mean(x²) + ε)` of one row.
#[inline(always)]
fn rstd(row: &[f32], epsilon: f32) -> f32 {
    1.0 / (dot_lanes(row, row) / row.len() as f32 + epsilon).sqrt()
}

fn check(x: &Shape, weight: &Shape) -> usize {
    let d = x[x.num_dims() - 1];
    assert!(
        weight.num_dims() == 1 && weight[0] == d,
        "rms_norm: `weight` {weight:?} must be [{d}], the last axis of `x` {x:?}"
    );
    d
}

fn forward_f32<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    epsilon: f64,
) -> FloatTensor<B> {
    let (device, shape) = (x.device(), x.shape());
    let d = check(&shape, &weight.shape());
    let mut values = HostF32::read::<B>(x, "rms_norm", "x");
    let weight = HostF32::read::<B>(weight, "rms_norm", "weight");
    let weight: &[f32] = &weight;
    let eps = epsilon as f32;
    if d > 0 {
        values.par_chunks_mut(ROWS * d).for_each(|block| {
            for row in block.chunks_mut(d) {
                let r = rstd(row, eps);
                for (v, w) in row.iter_mut().zip(weight) {
                    *v = *v * r * w;
                }
            }
        });
    }
    values.into_tensor::<B>(&device)
}

fn backward_f32<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    epsilon: f64,
) -> RmsNormGrads<B> {
    let (device, shape) = (x.device(), x.shape());
    assert_eq!(
        shape,
        grad.shape(),
        "rms_norm_backward: `x` {:?} and `grad` {:?} must have the same shape",
        shape,
        grad.shape()
    );
    let d = check(&shape, &weight.shape());
    let x = HostF32::read::<B>(x, "rms_norm", "x");
    let weight = HostF32::read::<B>(weight, "rms_norm", "weight");
    let weight: &[f32] = &weight;
    let mut grad = HostF32::read::<B>(grad, "rms_norm", "grad");
    let eps = epsilon as f32;
    let mut dweight = vec![0.0f32; d];
    if d > 0 {
        // Each block writes ∂L/∂x over its `grad` rows and returns its partial Σ g ⊙ x̂.
        let partials: Vec<Vec<f32>> = grad
            .par_chunks_mut(ROWS * d)
            .zip(x.par_chunks(ROWS * d))
            .map(|(g_block, x_block)| {
                let mut pw = vec![0.0f32; d];
                let (mut x_hat, mut g_hat) = (vec![0.0f32; d], vec![0.0f32; d]);
                for (g_row, x_row) in g_block.chunks_mut(d).zip(x_block.chunks(d)) {
                    let r = rstd(x_row, eps);
                    for ((((xh, gh), (g, x)), w), pw) in x_hat
                        .iter_mut()
                        .zip(g_hat.iter_mut())
                        .zip(g_row.iter().zip(x_row))
                        .zip(weight)
                        .zip(pw.iter_mut())
                    {
                        *xh = x * r;
                        *pw += g * *xh;
                        *gh = g * w;
                    }
                    let mean_gx = dot_lanes(&g_hat, &x_hat) / d as f32;
                    for ((g, gh), xh) in g_row.iter_mut().zip(&g_hat).zip(&x_hat) {
                        *g = r * (gh - xh * mean_gx);
                    }
                }
                pw
            })
            .collect();
        for pw in partials {
            dweight.iter_mut().zip(&pw).for_each(|(a, b)| *a += b);
        }
    }
    RmsNormGrads {
        x: grad.into_tensor::<B>(&device),
        weight: B::float_from_data(TensorData::new(dweight, [d]), &device),
    }
}

macro_rules! host_rms_norm_ops {
    ($backend:ty) => {
        impl RmsNormOps for $backend {
            fn rms_norm_fused(
                x: FloatTensor<Self>,
                weight: FloatTensor<Self>,
                epsilon: f64,
            ) -> FloatTensor<Self> {
                if [x.dtype(), weight.dtype()] == [DType::F32; 2] {
                    forward_f32::<Self>(x, weight, epsilon)
                } else {
                    crate::rms_norm::portable::forward::<Self>(x, weight, epsilon)
                }
            }

            fn rms_norm_backward(
                x: FloatTensor<Self>,
                weight: FloatTensor<Self>,
                grad: FloatTensor<Self>,
                epsilon: f64,
            ) -> RmsNormGrads<Self> {
                if [x.dtype(), weight.dtype(), grad.dtype()] == [DType::F32; 3] {
                    backward_f32::<Self>(x, weight, grad, epsilon)
                } else {
                    crate::rms_norm::portable::backward::<Self>(x, weight, grad, epsilon)
                }
            }
        }
    };
}

#[cfg(feature = "flex")]
host_rms_norm_ops!(burn::backend::Flex);

#[cfg(feature = "ndarray")]
#[allow(deprecated)]
mod ndarray_backend {
    use super::*;
    host_rms_norm_ops!(burn::backend::NdArray);
}
