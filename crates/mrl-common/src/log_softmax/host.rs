//! The host implementation of [`LogSoftmaxOps`] for flex and ndarray f32 tensors (other dtypes
//! take the backend's own `log_softmax`): blocks of whole rows across the cores, each block
//! compiled by `pulp` for the widest instruction set of the CPU, sums over a row in f64; the
//! forward writes over its input, the backward over the gradient.

use burn::backend::{tensor::FloatTensor, Backend, TensorMetadata};
use burn::tensor::DType;
use rayon::prelude::*;

use super::LogSoftmaxOps;
use crate::host_math::{exp_or_zero, max_lanes, rows_per_block, sum_f64, HostF32};

/// `row ← log_softmax(row)`.
#[inline(always)]
fn forward_row(row: &mut [f32]) {
    let max = max_lanes(row);
    if !max.is_finite() {
        // Only −∞ (or NaN) entries, or a +∞: Burn's `x − M` is NaN somewhere in every row.
        row.fill(f32::NAN);
        return;
    }
    let log_sum = (sum_f64(row, |x| exp_or_zero(x - max)) as f32).ln();
    // (x − M) − ln Σ, in Burn's order, so the rounding is the same.
    row.iter_mut().for_each(|x| *x = (*x - max) - log_sum);
}

/// `g ← g − exp(y) · Σ g` over one row.
#[inline(always)]
fn backward_row(grad: &mut [f32], output: &[f32]) {
    let total = sum_f64(grad, |g| g) as f32;
    for (g, y) in grad.iter_mut().zip(output) {
        *g -= exp_or_zero(*y) * total;
    }
}

struct Forward<'a> {
    block: &'a mut [f32],
    d: usize,
}

impl pulp::WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        self.block.chunks_mut(self.d).for_each(forward_row);
    }
}

struct Backward<'a> {
    grad: &'a mut [f32],
    output: &'a [f32],
    d: usize,
}

impl pulp::WithSimd for Backward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for (g, y) in self.grad.chunks_mut(self.d).zip(self.output.chunks(self.d)) {
            backward_row(g, y);
        }
    }
}

fn forward_f32<B: Backend>(tensor: FloatTensor<B>) -> FloatTensor<B> {
    let (device, shape) = (tensor.device(), tensor.shape());
    let d = shape[shape.num_dims() - 1];
    let mut values = HostF32::read::<B>(tensor, "log_softmax", "tensor");
    if d > 0 {
        let arch = pulp::Arch::new();
        values
            .par_chunks_mut(rows_per_block(d) * d)
            .for_each(|block| arch.dispatch(Forward { block, d }));
    }
    values.into_tensor::<B>(&device)
}

fn backward_f32<B: Backend>(output: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    let (device, shape) = (grad.device(), grad.shape());
    assert_eq!(
        output.shape(),
        shape,
        "log_softmax_backward: `output` {:?} and `grad` {:?} must have the same shape",
        output.shape(),
        shape
    );
    let d = shape[shape.num_dims() - 1];
    let output = HostF32::read::<B>(output, "log_softmax", "output");
    let mut grad = HostF32::read::<B>(grad, "log_softmax", "grad");
    if d > 0 {
        let rows = rows_per_block(d) * d;
        let arch = pulp::Arch::new();
        grad.par_chunks_mut(rows)
            .zip(output.par_chunks(rows))
            .for_each(|(grad, output)| arch.dispatch(Backward { grad, output, d }));
    }
    grad.into_tensor::<B>(&device)
}

macro_rules! host_log_softmax_ops {
    ($backend:ty) => {
        impl LogSoftmaxOps for $backend {
            fn log_softmax_last(tensor: FloatTensor<Self>) -> FloatTensor<Self> {
                if tensor.dtype() == DType::F32 {
                    forward_f32::<Self>(tensor)
                } else {
                    let dim = tensor.shape().num_dims() - 1;
                    <Self as burn::backend::ops::ActivationOps<Self>>::log_softmax(tensor, dim)
                }
            }

            fn log_softmax_last_backward(
                output: FloatTensor<Self>,
                grad: FloatTensor<Self>,
            ) -> FloatTensor<Self> {
                if output.dtype() == DType::F32 && grad.dtype() == DType::F32 {
                    backward_f32::<Self>(output, grad)
                } else {
                    crate::log_softmax::portable_backward::<Self>(output, grad)
                }
            }
        }
    };
}

#[cfg(feature = "flex")]
host_log_softmax_ops!(burn::backend::Flex);

#[cfg(feature = "ndarray")]
#[allow(deprecated)]
mod ndarray_backend {
    use super::*;
    host_log_softmax_ops!(burn::backend::NdArray);
}
