//! The host implementation of [`DropoutOps`] for flex and ndarray (f32 tensors; other dtypes
//! take the portable body): chunks of the row-major values split across the cores, each filled
//! by a loop the compiler vectorises (`pulp` picks the instruction set at run time).

use burn::backend::{tensor::FloatTensor, Backend, TensorMetadata};
use burn::tensor::DType;
use rayon::prelude::*;

use super::{mask_hash, threshold, DropoutOps};
use mrl_common::host_math::HostF32;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `v ← v · scale` where the mask keeps element `start + j`, else 0, over one chunk.
struct Apply<'a> {
    values: &'a mut [f32],
    start: u32,
    key: u64,
    threshold: u32,
    scale: f32,
}

impl pulp::WithSimd for Apply<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Apply {
            values,
            start,
            key,
            threshold,
            scale,
        } = self;
        for (j, v) in values.iter_mut().enumerate() {
            let kept = mask_hash(key, start.wrapping_add(j as u32)) >= threshold;
            *v = if kept { *v * scale } else { 0.0 };
        }
    }
}

fn dropout_f32<B: Backend>(tensor: FloatTensor<B>, key: u64, prob: f64) -> FloatTensor<B> {
    let device = tensor.device();
    let mut values = HostF32::read::<B>(tensor, "dropout_keyed", "tensor");
    let (threshold, scale) = (threshold(prob), (1.0 / (1.0 - prob)) as f32);
    let arch = pulp::Arch::new();
    values
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            arch.dispatch(Apply {
                values: chunk,
                start: (c * CHUNK) as u32,
                key,
                threshold,
                scale,
            })
        });
    values.into_tensor::<B>(&device)
}

macro_rules! host_dropout_ops {
    ($backend:ty) => {
        impl DropoutOps for $backend {
            fn dropout_keyed(tensor: FloatTensor<Self>, key: u64, prob: f64) -> FloatTensor<Self> {
                if tensor.dtype() == DType::F32 {
                    dropout_f32::<Self>(tensor, key, prob)
                } else {
                    crate::dropout::portable::dropout_keyed::<Self>(tensor, key, prob)
                }
            }
        }
    };
}

#[cfg(feature = "flex")]
host_dropout_ops!(burn::backend::Flex);

#[cfg(feature = "ndarray")]
#[allow(deprecated)]
mod ndarray_backend {
    use super::*;
    host_dropout_ops!(burn::backend::NdArray);
}
