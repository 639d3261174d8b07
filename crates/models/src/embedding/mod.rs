//! Embedding lookup as a backend operation whose backward builds the dense table gradient in
//! one pass on the CPU backends.
//!
//! Forward, for a table `W` of `V` rows of width `D` and ids `i_{b,s}`: `y_{b,s} = W[i_{b,s}]`.
//! Backward, with `g = ∂L/∂y`: `∂L/∂W[v] = Σ_{(b,s) : i_{b,s} = v} g_{b,s}`, zero for the rows no
//! id names (a dense `[V, D]` gradient, as `torch.nn.Embedding` without `sparse=True`).
//!
//! Burn's flex backward allocates the `[V, D]` zeros as an unaligned byte buffer and copies it
//! once more into an aligned one before adding the rows: for MiniLM's 30 522 × 384 table that
//! is 47 MB zeroed, copied and page-faulted in on every training step, on one core. Here, on
//! flex and ndarray f32 tensors, the zeros are written straight into the gradient's buffer,
//! split across the cores, and the rows are added in id order (so the sums are the same on every
//! run). The forward is the backend's own `embedding`. Other backends and dtypes run Burn's
//! `embedding_backward` unchanged.

mod autodiff;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod host;

use burn::backend::{
    backend_extension,
    tensor::{FloatTensor, IntTensor},
    Backend, Dispatch, TensorMetadata,
};
use burn::tensor::{Int, Shape, Tensor};

use mrl_common::is_host_cpu;

/// Embedding lookup as a backend operation (forward and hand-written backward).
#[backend_extension(
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex"),
    Autodiff,
)]
pub trait EmbeddingOps: Backend {
    /// `W[ids]`: `[V, D]` and `[B, S]` → `[B, S, D]`. Default: the backend's `embedding`.
    fn embedding_lookup(weights: FloatTensor<Self>, ids: IntTensor<Self>) -> FloatTensor<Self> {
        Self::embedding(weights, ids)
    }

    /// The dense `[rows, D]` gradient of the table from `grad = ∂L/∂y` (`[B, S, D]`) and the
    /// `ids` (`[B, S]`) of the forward. Default: zeros plus a row-wise scatter-add from backend
    /// operations (Burn's `embedding_backward` without the table).
    fn embedding_lookup_backward(
        grad: FloatTensor<Self>,
        ids: IntTensor<Self>,
        rows: usize,
    ) -> FloatTensor<Self> {
        portable::backward::<Self>(grad, ids, rows)
    }
}

/// `weights[ids]`, the functional form of Burn's [`burn::nn::Embedding`] (pass its `weight`), as
/// one backend operation whose backward on flex and ndarray f32 tensors writes the dense table
/// gradient directly (see the module docs); Burn's [`burn::tensor::module::embedding`] on every
/// other backend. Same values as Burn's, forward and backward.
///
/// # Shapes
/// - `weights`: `[V, D]`
/// - `ids`: `[B, S]`, each in `0..V`
/// - output: `[B, S, D]`
///
/// # Panics
/// In the backward on flex and ndarray, if an id is outside `0..V` (the forward already fails
/// on such an id in Burn's lookup).
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
///
/// let device = Device::flex();
/// let table = Tensor::<2>::from_floats([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], &device);
/// let ids = Tensor::<2, Int>::from_ints([[2, 0]], &device);
/// let y = models::embedding(table, ids); // [[[4.0, 5.0], [0.0, 1.0]]]
/// # assert_eq!(y.into_data().to_vec::<f32>().unwrap(), vec![4.0, 5.0, 0.0, 1.0]);
/// ```
pub fn embedding(weights: Tensor<2>, ids: Tensor<2, Int>) -> Tensor<3> {
    if !is_host_cpu(&weights.device()) {
        return burn::tensor::module::embedding(weights, ids);
    }
    Tensor::from_dispatch(<Dispatch as EmbeddingOps>::embedding_lookup(
        weights.into_dispatch(),
        ids.into_dispatch(),
    ))
}

/// The default backward from backend operations.
mod portable {
    use super::*;
    use burn::tensor::IndexingUpdateOp;

    pub(super) fn backward<B: Backend>(
        grad: FloatTensor<B>,
        ids: IntTensor<B>,
        rows: usize,
    ) -> FloatTensor<B> {
        let [batch, seq, width] = grad.shape().dims();
        let (device, dtype) = (grad.device(), grad.dtype());
        let ids = B::int_reshape(ids, Shape::new([batch * seq]));
        let grad = B::float_reshape(grad, Shape::new([batch * seq, width]));
        let table = B::float_zeros(Shape::new([rows, width]), &device, dtype.into());
        B::float_select_assign(table, 0, ids, grad, IndexingUpdateOp::Add)
    }
}
