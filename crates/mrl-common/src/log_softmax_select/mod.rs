//! Log-probabilities at a few listed classes per row — and optionally the log-mass of all the
//! others — without materialising the log-softmax of the whole row: one backend operation with
//! a hand-written backward, and a multi-core host path on the CPU backends.
//!
//! Per row of logits `x` (`V` classes), a scale `s > 0` (`1/τ` for a temperature `τ`) and `k`
//! listed ids `i_1 … i_k` (the set `S`): with `y = s·x`, `L = ln Σ_v e^{y_v}` and
//! `R = ln Σ_{v ∉ S} e^{y_v}`, the outputs are
//! `a_j = y_{i_j} − L` (the log-probability of `i_j`) and, with `rest`, `r = R − L`
//! (the log of the probability of everything not listed; `−∞` when `S` covers every class).
//! With `g_j = ∂ℓ/∂a_j`, `g_r = ∂ℓ/∂r`, `G = Σ_j g_j + g_r`, `p_v = e^{y_v − L}` and
//! `q_v = e^{y_v − R}`:
//! `∂ℓ/∂x_v = s · (Σ_{j: i_j = v} g_j + g_r [v ∉ S] q_v − G p_v)`.
//!
//! Cross-entropy is the case `k = 1` (the target), `s = 1`, no rest; top-k knowledge
//! distillation against a cached teacher (Hinton et al., *Distilling the Knowledge in a Neural
//! Network*, arXiv:1503.02531) the case `k` = the teacher's top-k ids, `s = 1/τ`, with the rest.
//! Over a 49152-token vocabulary the composition of Burn operations — log-softmax, gather, a
//! scattered mask of the listed ids, a masked log-sum-exp — makes a dozen passes over
//! `[positions, vocabulary]` tensors forwards and backwards, each allocating 100 MB for a batch of
//! 512 positions; here the forward makes three passes over each row and allocates only the
//! `[N, k (+1)]` output, and the backward one pass that writes the gradient over (a copy of) the
//! logits. On flex and ndarray f32 tensors rows run in blocks across the cores, vectorised by
//! `pulp`, with row sums in f64 and the rest mass summed over the unlisted classes directly (not
//! as `1 − Σ listed`, which cancels). Other backends compose Burn's operations.
//!
//! A row with a NaN or a `+∞` logit, or only `−∞` logits, gives NaN outputs (as Burn's
//! log-softmax does).

mod autodiff;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod host;

use burn::backend::{
    backend_extension,
    tensor::{FloatTensor, IntTensor},
    Backend, Dispatch, ExtensionType,
};
use burn::tensor::{IndexingUpdateOp, Int, Tensor};

use crate::host_device::is_host_cpu;

/// The outputs of [`LogSoftmaxSelectOps::log_softmax_select`].
#[derive(Debug, ExtensionType)]
pub struct LogSoftmaxSelected<B: Backend> {
    /// `[N, k]` log-probabilities of the listed ids, then (with `rest`) one column with the
    /// log-mass of the unlisted classes: `[N, k + rest]`.
    pub values: FloatTensor<B>,
    /// `[N, 2]`: `L` and `R` of the module docs per row (`R = −∞` when nothing is unlisted;
    /// without `rest` the second column repeats `L` and is not used), kept for the backward.
    pub log_norms: FloatTensor<B>,
}

/// Listed log-probabilities (and the rest mass) as a backend operation.
#[backend_extension(
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex"),
    Autodiff,
)]
pub trait LogSoftmaxSelectOps: Backend {
    /// The outputs of the module docs for `logits` `[N, V]` and `ids` `[N, k]`. Default:
    /// backend operations.
    fn log_softmax_select(
        logits: FloatTensor<Self>,
        ids: IntTensor<Self>,
        scale: f64,
        rest: bool,
    ) -> LogSoftmaxSelected<Self> {
        portable::forward::<Self>(logits, ids, scale, rest)
    }

    /// `∂ℓ/∂x` `[N, V]` of the module docs from the logits, the ids, the `log_norms` of the
    /// forward and `grad = ∂ℓ/∂values` `[N, k + rest]`. Default: backend operations.
    fn log_softmax_select_backward(
        logits: FloatTensor<Self>,
        ids: IntTensor<Self>,
        log_norms: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f64,
        rest: bool,
    ) -> FloatTensor<Self> {
        portable::backward::<Self>(logits, ids, log_norms, grad, scale, rest)
    }
}

/// The default bodies from backend operations.
pub(crate) mod portable {
    use burn::backend::{get_or_init_device_settings, Backend, TensorMetadata};
    use burn::tensor::{IndexingUpdateOp, Shape, Slice};

    use super::*;

    /// `ln Σ_v e^{y_v}` per row `[N, 1]`, shifted by the row maximum; `−∞` for a row of `−∞`.
    fn log_sum_exp<B: Backend>(y: FloatTensor<B>) -> FloatTensor<B> {
        let bool_dtype = get_or_init_device_settings::<B>(&y.device()).bool_dtype;
        let max = B::float_max_dim(y.clone(), 1);
        let no_mass = B::float_equal_elem(max.clone(), f64::NEG_INFINITY.into(), bool_dtype);
        let shift = B::float_mask_fill(max, no_mass, 0.0.into());
        let sum = B::float_sum_dim(B::float_exp(B::float_sub(y, shift.clone())), 1);
        B::float_add(B::float_log(sum), shift)
    }

    /// `true` at the listed ids, `[N, V]`.
    fn listed<B: Backend>(
        like: &FloatTensor<B>,
        ids: IntTensor<B>,
    ) -> burn::backend::tensor::BoolTensor<B> {
        let device = like.device();
        let dtype = like.dtype().into();
        let bool_dtype = get_or_init_device_settings::<B>(&device).bool_dtype;
        let zeros = B::float_zeros(like.shape(), &device, dtype);
        let ones = B::float_ones(ids.shape(), &device, dtype);
        let marks = B::float_scatter(1, zeros, ids, ones, IndexingUpdateOp::Assign);
        B::float_greater_elem(marks, 0.5.into(), bool_dtype)
    }

    pub(crate) fn forward<B: Backend>(
        logits: FloatTensor<B>,
        ids: IntTensor<B>,
        scale: f64,
        rest: bool,
    ) -> LogSoftmaxSelected<B> {
        let y = B::float_mul_scalar(logits, scale.into());
        let total = log_sum_exp::<B>(y.clone());
        let top = B::float_sub(B::float_gather(1, y.clone(), ids.clone()), total.clone());
        let unlisted = if rest {
            let listed = listed::<B>(&y, ids);
            log_sum_exp::<B>(B::float_mask_fill(y, listed, f64::NEG_INFINITY.into()))
        } else {
            total.clone()
        };
        let values = if rest {
            B::float_cat(vec![top, B::float_sub(unlisted.clone(), total.clone())], 1)
        } else {
            top
        };
        LogSoftmaxSelected {
            values,
            log_norms: B::float_cat(vec![total, unlisted], 1),
        }
    }

    pub(crate) fn backward<B: Backend>(
        logits: FloatTensor<B>,
        ids: IntTensor<B>,
        log_norms: FloatTensor<B>,
        grad: FloatTensor<B>,
        scale: f64,
        rest: bool,
    ) -> FloatTensor<B> {
        let [n, k] = ids.shape().dims();
        let bool_dtype = get_or_init_device_settings::<B>(&logits.device()).bool_dtype;
        let column = |t: FloatTensor<B>, c: usize| {
            B::float_slice(t, &[Slice::from(0..n), Slice::from(c..c + 1)])
        };
        let y = B::float_mul_scalar(logits, scale.into());
        let g_top = B::float_slice(grad.clone(), &[Slice::from(0..n), Slice::from(0..k)]);
        let g_all = B::float_sum_dim(grad.clone(), 1);
        let p = B::float_exp(B::float_sub(y.clone(), column(log_norms.clone(), 0)));
        let mut dy = B::float_neg(B::float_mul(p, g_all));
        if rest {
            let unlisted = column(log_norms, 1);
            let empty = B::float_equal_elem(unlisted.clone(), f64::NEG_INFINITY.into(), bool_dtype);
            let unlisted = B::float_mask_fill(unlisted, empty.clone(), 0.0.into());
            let q = B::float_exp(B::float_sub(y.clone(), unlisted));
            let [_, v] = y.shape().dims();
            let skip = B::bool_or(
                listed::<B>(&y, ids.clone()),
                B::bool_expand(empty, Shape::new([n, v])),
            );
            let q = B::float_mask_fill(q, skip, 0.0.into());
            dy = B::float_add(dy, B::float_mul(q, column(grad, k)));
        }
        let dy = B::float_scatter(1, dy, ids, g_top, IndexingUpdateOp::Add);
        B::float_mul_scalar(dy, scale.into())
    }
}

/// Log-probabilities `log softmax(scale · logits)` at the listed `ids` of each row, and with
/// `rest` one more column with the log of the probability of all unlisted classes (see the
/// module docs), differentiable with respect to `logits`.
///
/// The ids of a row should be distinct for the rest column to mean "the others" (a repeated id
/// is gathered twice and excluded once).
///
/// # Shapes
/// - `logits`: `[N, V]`
/// - `ids`: `[N, k]`, Int, each in `0..V`
/// - output: `[N, k + 1]` with `rest`, else `[N, k]`
///
/// # Panics
/// If `ids` is not `[N, k]` for the `N` of `logits`, `k = 0` without `rest`, `scale` is not
/// finite and positive, or (on flex and ndarray) an id is outside `0..V`.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Int, Tensor};
///
/// let device = Device::flex();
/// let logits = Tensor::<2>::from_floats([[0.0, f32::ln(2.0), 0.0, f32::ln(4.0)]], &device);
/// let ids = Tensor::<2, Int>::from_ints([[3, 1]], &device);
/// // ln [4/8, 2/8] and the rest ln (2/8)
/// let out = mrl_common::log_softmax_select(logits, ids, 1.0, true);
/// # let v = out.into_data().try_to_vec::<f32>().unwrap();
/// # assert!((v[0] - 0.5f32.ln()).abs() < 1e-6 && (v[1] - 0.25f32.ln()).abs() < 1e-6);
/// # assert!((v[2] - 0.25f32.ln()).abs() < 1e-6);
/// ```
pub fn log_softmax_select(
    logits: Tensor<2>,
    ids: Tensor<2, Int>,
    scale: f64,
    rest: bool,
) -> Tensor<2> {
    let [n, _] = logits.dims();
    let [ids_n, k] = ids.dims();
    assert_eq!(
        ids_n,
        n,
        "log_softmax_select: `ids` {:?} must have the {n} rows of `logits` {:?}",
        ids.dims(),
        logits.dims()
    );
    assert!(
        k > 0 || rest,
        "log_softmax_select: nothing to compute: `ids` {:?} lists no id and `rest` is false",
        ids.dims()
    );
    assert!(
        scale.is_finite() && scale > 0.0,
        "log_softmax_select: `scale` must be finite and positive, got {scale}"
    );
    if !is_host_cpu(&logits.device()) {
        return composed(logits, ids, scale, rest);
    }
    Tensor::from_dispatch(
        <Dispatch as LogSoftmaxSelectOps>::log_softmax_select(
            logits.into_dispatch(),
            ids.into_dispatch(),
            scale,
            rest,
        )
        .values,
    )
}

/// The same from Burn's tensor operations (differentiated by Burn's autodiff).
pub(crate) fn composed(
    logits: Tensor<2>,
    ids: Tensor<2, Int>,
    scale: f64,
    rest: bool,
) -> Tensor<2> {
    let log_p = crate::log_softmax(logits.mul_scalar(scale), 1);
    let top = log_p.clone().gather(1, ids.clone());
    if !rest {
        return top;
    }
    let ones = Tensor::<2>::ones(ids.dims(), (&log_p.device(), log_p.dtype()));
    let listed = log_p
        .clone()
        .detach()
        .zeros_like()
        .scatter(1, ids, ones, IndexingUpdateOp::Assign)
        .greater_elem(0.5);
    let others = log_p.mask_fill(listed, f64::NEG_INFINITY);
    let max = others.clone().detach().max_dim(1);
    let shift = max.clone().mask_fill(max.is_inf(), 0.0);
    let unlisted = (others - shift.clone()).exp().sum_dim(1).log() + shift;
    Tensor::cat(vec![top, unlisted], 1)
}

#[cfg(all(test, feature = "flex", feature = "ndarray"))]
mod tests;
