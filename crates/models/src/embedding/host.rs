//! The host implementation of [`EmbeddingOps`] for flex and ndarray f32 tensors (other dtypes
//! take the default bodies): the `[rows, D]` gradient is zeroed in blocks split across the cores
//! and written in place, then the rows of `∂L/∂y` are added in id order.

use burn::backend::{
    tensor::{FloatTensor, IntTensor},
    Backend, TensorMetadata,
};
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use super::EmbeddingOps;
use mrl_common::host_math::{read_ids, HostF32};

/// Elements per parallel task when zeroing the table gradient.
const BLOCK: usize = 1 << 16;

fn backward_f32<B: Backend>(
    grad: FloatTensor<B>,
    ids: IntTensor<B>,
    rows: usize,
) -> FloatTensor<B> {
    let device = grad.device();
    let (grad_shape, ids_shape) = (grad.shape(), ids.shape());
    let [batch, seq, width] = grad_shape.dims();
    assert_eq!(
        ids_shape.as_slice(),
        [batch, seq],
        "embedding_backward: `ids` {:?} must be [batch, seq] of `grad` {:?}",
        ids_shape.as_slice(),
        grad_shape.as_slice()
    );
    let ids = read_ids::<B>(ids, rows, "embedding", "ids", "the rows of `weights`");
    let grad = HostF32::read::<B>(grad, "embedding", "grad");
    let mut table: Vec<f32> = Vec::with_capacity(rows * width);
    table.par_extend(rayon::iter::repeat_n(0.0f32, rows * width).with_min_len(BLOCK));
    if width > 0 {
        for (id, row) in ids.iter().zip(grad.chunks_exact(width)) {
            let at = id * width;
            for (t, g) in table[at..at + width].iter_mut().zip(row) {
                *t += g;
            }
        }
    }
    B::float_from_data(TensorData::new(table, [rows, width]), &device)
}

macro_rules! host_embedding_ops {
    ($backend:ty) => {
        impl EmbeddingOps for $backend {
            fn embedding_lookup_backward(
                grad: FloatTensor<Self>,
                ids: IntTensor<Self>,
                rows: usize,
            ) -> FloatTensor<Self> {
                if grad.dtype() == DType::F32 {
                    backward_f32::<Self>(grad, ids, rows)
                } else {
                    crate::embedding::portable::backward::<Self>(grad, ids, rows)
                }
            }
        }
    };
}

#[cfg(feature = "flex")]
host_embedding_ops!(burn::backend::Flex);

#[cfg(feature = "ndarray")]
#[allow(deprecated)]
mod ndarray_backend {
    use super::*;
    host_embedding_ops!(burn::backend::NdArray);
}
