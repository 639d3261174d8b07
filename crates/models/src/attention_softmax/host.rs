//! The host implementation of [`AttentionSoftmaxOps`] for flex and ndarray f32 tensors (other
//! dtypes take the default bodies): row blocks across the cores; per row one pass for the
//! maximum, one for the exponentials and their sum, one to normalise (forward) or one for
//! `Σ g ⊙ p` and one for the gradient (backward).

use burn::backend::{tensor::FloatTensor, Backend, TensorMetadata};
use burn::tensor::DType;
use rayon::prelude::*;

use super::AttentionSoftmaxOps;
use mrl_common::host_math::{
    dot_lanes, exp_nonpositive, max_lanes, rows_per_block, sum_lanes, HostF32,
};

/// One row: `p ← softmax(s · scale + m)`.
#[inline(always)]
fn softmax_row(row: &mut [f32], mask: &[f32], scale: f32) {
    for (v, m) in row.iter_mut().zip(mask) {
        *v = *v * scale + m;
    }
    let max = max_lanes(row);
    for v in row.iter_mut() {
        let y = *v - max;
        let e = exp_nonpositive(y);
        *v = if y < -87.0 { 0.0 } else { e };
    }
    let inv = 1.0 / sum_lanes(row);
    row.iter_mut().for_each(|v| *v *= inv);
}

fn forward_f32<B: Backend>(
    scores: FloatTensor<B>,
    mask: FloatTensor<B>,
    scale: f64,
) -> FloatTensor<B> {
    let device = scores.device();
    let [batch, heads, queries, keys] = scores.shape().dims();
    let mut values = HostF32::read::<B>(scores, "attention_softmax", "scores");
    let mask = HostF32::read::<B>(mask, "attention_softmax", "mask");
    let mask: &[f32] = &mask;
    let (scale, per_batch) = (scale as f32, heads * queries);
    let rows = rows_per_block(keys);
    if keys > 0 {
        values
            .par_chunks_mut(rows * keys)
            .enumerate()
            .for_each(|(block, chunk)| {
                for (r, row) in chunk.chunks_mut(keys).enumerate() {
                    let b = (block * rows + r) / per_batch;
                    softmax_row(row, &mask[b * keys..(b + 1) * keys], scale);
                }
            });
    }
    debug_assert_eq!(values.len(), batch * per_batch * keys);
    values.into_tensor::<B>(&device)
}

fn backward_f32<B: Backend>(
    probs: FloatTensor<B>,
    grad: FloatTensor<B>,
    scale: f64,
) -> FloatTensor<B> {
    let (device, shape) = (grad.device(), grad.shape());
    assert_eq!(
        probs.shape(),
        shape,
        "attention_softmax_backward: `probs` {:?} and `grad` {:?} must have the same shape",
        probs.shape(),
        shape
    );
    let keys = shape[3];
    let probs = HostF32::read::<B>(probs, "attention_softmax", "probs");
    let mut grad = HostF32::read::<B>(grad, "attention_softmax", "grad");
    let scale = scale as f32;
    let rows = rows_per_block(keys);
    if keys > 0 {
        grad.par_chunks_mut(rows * keys)
            .zip(probs.par_chunks(rows * keys))
            .for_each(|(g_block, p_block)| {
                for (g, p) in g_block.chunks_mut(keys).zip(p_block.chunks(keys)) {
                    let dot = dot_lanes(g, p);
                    for (g, p) in g.iter_mut().zip(p) {
                        *g = scale * p * (*g - dot);
                    }
                }
            });
    }
    grad.into_tensor::<B>(&device)
}

macro_rules! host_attention_softmax_ops {
    ($backend:ty) => {
        impl AttentionSoftmaxOps for $backend {
            fn attention_softmax(
                scores: FloatTensor<Self>,
                mask: FloatTensor<Self>,
                scale: f64,
            ) -> FloatTensor<Self> {
                if scores.dtype() == DType::F32 && mask.dtype() == DType::F32 {
                    forward_f32::<Self>(scores, mask, scale)
                } else {
                    crate::attention_softmax::portable::forward::<Self>(scores, mask, scale)
                }
            }

            fn attention_softmax_backward(
                probs: FloatTensor<Self>,
                grad: FloatTensor<Self>,
                scale: f64,
            ) -> FloatTensor<Self> {
                if probs.dtype() == DType::F32 && grad.dtype() == DType::F32 {
                    backward_f32::<Self>(probs, grad, scale)
                } else {
                    crate::attention_softmax::portable::backward::<Self>(probs, grad, scale)
                }
            }
        }
    };
}

#[cfg(feature = "flex")]
host_attention_softmax_ops!(burn::backend::Flex);

#[cfg(feature = "ndarray")]
#[allow(deprecated)]
mod ndarray_backend {
    use super::*;
    host_attention_softmax_ops!(burn::backend::NdArray);
}
