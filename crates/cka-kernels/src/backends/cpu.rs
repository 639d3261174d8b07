//! CPU backends (flex, ndarray): the host implementation of [`crate::host`] — read the tensors,
//! run the per-example GEMMs and loops in the input's precision (f64 stays f64, everything
//! else runs in f32), write the result back in the input's dtype.

use burn::backend::{tensor::FloatTensor, Backend, TensorMetadata};
use burn::tensor::{try_read_sync, DType, Element, Shape, TensorData};
use nd::NdFloat;

use crate::host::Problem;
use crate::CkaOps;

/// The tensor's values as `T` (a host copy).
fn read<B: Backend, T: Element>(tensor: FloatTensor<B>, what: &str) -> Vec<T> {
    try_read_sync(B::float_into_data(tensor))
        .unwrap_or_else(|| panic!("nested_prefix_cka: `{what}` cannot be read synchronously"))
        .unwrap_or_else(|e| panic!("nested_prefix_cka: reading `{what}` failed: {e:?}"))
        .convert::<T>()
        .try_into_vec::<T>()
        .unwrap_or_else(|e| panic!("nested_prefix_cka: `{what}`: {e:?}"))
}

/// Runs the host implementation in the input's precision: the forward (`[B, n]`) when `grad`
/// is `None`, else the backward (`[B, K, D]`).
fn on_host<B: Backend>(
    hidden: FloatTensor<B>,
    row_mask: FloatTensor<B>,
    dims: &[usize],
    grad: Option<FloatTensor<B>>,
    detach_teacher: bool,
) -> FloatTensor<B> {
    if hidden.dtype() == DType::F64 {
        on_host_as::<B, f64>(hidden, row_mask, dims, grad, detach_teacher)
    } else {
        on_host_as::<B, f32>(hidden, row_mask, dims, grad, detach_teacher)
    }
}

fn on_host_as<B: Backend, T: NdFloat + Element>(
    hidden: FloatTensor<B>,
    row_mask: FloatTensor<B>,
    dims: &[usize],
    grad: Option<FloatTensor<B>>,
    detach_teacher: bool,
) -> FloatTensor<B> {
    let device = hidden.device();
    let dtype = hidden.dtype();
    let [batch, rows, width] = hidden.shape().dims::<3>();
    let hidden = read::<B, T>(hidden, "hidden");
    let row_mask = read::<B, T>(row_mask, "row_mask");
    let problem = Problem {
        hidden: &hidden,
        row_mask: &row_mask,
        batch,
        rows,
        width,
        dims,
    };
    let out = match grad {
        None => TensorData::new(problem.forward(), Shape::new([batch, dims.len()])),
        Some(grad) => TensorData::new(
            problem.backward(&read::<B, T>(grad, "grad"), detach_teacher),
            Shape::new([batch, rows, width]),
        ),
    };
    B::float_from_data(out.convert_dtype(dtype), &device)
}

macro_rules! host_cka_ops {
    ($backend:ty) => {
        impl CkaOps for $backend {
            fn nested_prefix_cka(
                hidden: FloatTensor<Self>,
                row_mask: FloatTensor<Self>,
                dims: Vec<usize>,
                _detach_teacher: bool,
            ) -> FloatTensor<Self> {
                on_host::<Self>(hidden, row_mask, &dims, None, false)
            }

            fn nested_prefix_cka_backward(
                hidden: FloatTensor<Self>,
                row_mask: FloatTensor<Self>,
                dims: Vec<usize>,
                grad: FloatTensor<Self>,
                detach_teacher: bool,
            ) -> FloatTensor<Self> {
                on_host::<Self>(hidden, row_mask, &dims, Some(grad), detach_teacher)
            }
        }
    };
}

#[cfg(feature = "flex")]
host_cka_ops!(burn::backend::Flex);

#[cfg(feature = "ndarray")]
#[allow(deprecated)]
mod ndarray_backend {
    use super::*;
    host_cka_ops!(burn::backend::NdArray);
}
