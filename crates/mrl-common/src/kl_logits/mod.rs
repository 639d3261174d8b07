//! The forward Kullback–Leibler divergence between two softmax distributions given by their
//! logits, per row, without materialising either log-softmax: one backend operation with a
//! hand-written backward, and a multi-core host path on the CPU backends.
//!
//! Per row of teacher logits `t` and student logits `x` (`V` classes each) and a scale `s > 0`
//! (`1/τ` for a temperature `τ`): with `L_t = ln Σ_v e^{s t_v}`, `L_x = ln Σ_v e^{s x_v}`,
//! `a_v = s t_v − L_t`, `b_v = s x_v − L_x`, `p_v = e^{a_v}` and `q_v = e^{b_v}`,
//!
//! `KL(p ‖ q) = Σ_v p_v (a_v − b_v)`, and with `g = ∂ℓ/∂KL`: `∂ℓ/∂x_v = g · s · (q_v − p_v)`.
//!
//! The teacher is a constant (its logits are detached: no gradient flows to them), as in
//! knowledge distillation (Hinton et al., *Distilling the Knowledge in a Neural Network*,
//! arXiv:1503.02531) with a full-vocabulary teacher run alongside the student. Over a
//! 49152-token vocabulary the composition of Burn operations — two log-softmaxes, `e^a`, `a − b`,
//! their product and its sum, and the backward of each — makes about fifteen passes over
//! `[positions, vocabulary]` tensors, each allocating 100 MB for a batch of 512 positions; here the
//! forward makes five passes over each pair of rows (two maxima, two sums, the divergence) and
//! allocates only the `[N]` output, and the backward one pass that writes the gradient over (a
//! copy of) the student's logits. On flex and ndarray f32 tensors rows run in blocks across the
//! cores, vectorised by `pulp`, with row sums in f64. Other backends compose Burn's operations.
//!
//! Classes the teacher gives no mass (`p_v` below f32's smallest normal number) contribute 0. A
//! row with a NaN or a `+∞` logit on either side, or only `−∞` logits on one side, gives NaN.

mod autodiff;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod host;

use burn::backend::{backend_extension, tensor::FloatTensor, Backend, Dispatch, ExtensionType};
use burn::tensor::Tensor;

use crate::host_device::is_host_cpu;

/// The outputs of [`KlLogitsOps::kl_logits`].
#[derive(Debug, ExtensionType)]
pub struct KlFromLogits<B: Backend> {
    /// `[N]`: `KL(p ‖ q)` per row.
    pub values: FloatTensor<B>,
    /// `[N, 4]`: per row `m_x, l_x, m_t, l_t` with `L_x = m_x + l_x`, `L_t = m_t + l_t` of the
    /// module docs (`m` the scaled row maximum, `l` the log-sum-exp after subtracting it, kept
    /// apart so that `s y − m − l` stays exact for large logits), for the backward.
    pub log_norms: FloatTensor<B>,
}

/// Columns of [`KlFromLogits::log_norms`].
const NORMS: usize = 4;

/// The row-wise forward KL divergence from logits as a backend operation.
#[backend_extension(
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex"),
    Autodiff,
)]
pub trait KlLogitsOps: Backend {
    /// The outputs of the module docs for `student` and `teacher` logits `[N, V]`. Default:
    /// backend operations.
    fn kl_logits(
        student: FloatTensor<Self>,
        teacher: FloatTensor<Self>,
        scale: f64,
    ) -> KlFromLogits<Self> {
        portable::forward::<Self>(student, teacher, scale)
    }

    /// `∂ℓ/∂x` `[N, V]` of the module docs from both logits, the `log_norms` of the forward and
    /// `grad = ∂ℓ/∂values` `[N]`. Default: backend operations.
    fn kl_logits_backward(
        student: FloatTensor<Self>,
        teacher: FloatTensor<Self>,
        log_norms: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        portable::backward::<Self>(student, teacher, log_norms, grad, scale)
    }
}

/// The default bodies from backend operations.
pub(crate) mod portable {
    use burn::backend::{get_or_init_device_settings, Backend, TensorMetadata};
    use burn::tensor::{Shape, Slice};

    use super::*;

    /// `[m, l]` per row `[N, 2]`: the maximum of `y` and `ln Σ_v e^{y_v − m}` (NaN for a row of
    /// `−∞`, like the host path).
    fn log_norm<B: Backend>(y: FloatTensor<B>) -> FloatTensor<B> {
        let bool_dtype = get_or_init_device_settings::<B>(&y.device()).bool_dtype;
        let max = B::float_max_dim(y.clone(), 1);
        let no_mass = B::float_equal_elem(max.clone(), f64::NEG_INFINITY.into(), bool_dtype);
        let max = B::float_mask_fill(max, no_mass, f64::NAN.into());
        let sum = B::float_sum_dim(B::float_exp(B::float_sub(y, max.clone())), 1);
        B::float_cat(vec![max, B::float_log(sum)], 1)
    }

    /// `(y − m) − l` from the `[N, 2k..2k + 2]` columns of `norms`.
    fn log_softmax<B: Backend>(
        y: FloatTensor<B>,
        norms: &FloatTensor<B>,
        k: usize,
    ) -> FloatTensor<B> {
        let [n, _] = y.shape().dims();
        let column =
            |c: usize| B::float_slice(norms.clone(), &[Slice::from(0..n), Slice::from(c..c + 1)]);
        B::float_sub(B::float_sub(y, column(2 * k)), column(2 * k + 1))
    }

    pub(crate) fn forward<B: Backend>(
        student: FloatTensor<B>,
        teacher: FloatTensor<B>,
        scale: f64,
    ) -> KlFromLogits<B> {
        let [n, _] = student.shape().dims();
        let bool_dtype = get_or_init_device_settings::<B>(&student.device()).bool_dtype;
        let y = B::float_mul_scalar(student, scale.into());
        let z = B::float_mul_scalar(teacher, scale.into());
        let log_norms = B::float_cat(vec![log_norm::<B>(y.clone()), log_norm::<B>(z.clone())], 1);
        let a = log_softmax::<B>(z, &log_norms, 1);
        let b = log_softmax::<B>(y, &log_norms, 0);
        let p = B::float_exp(a.clone());
        // Classes without teacher mass contribute 0 (not 0 · ∞ when the student's is 0 too).
        let no_mass = B::float_equal_elem(p.clone(), 0.0.into(), bool_dtype);
        let terms = B::float_mask_fill(B::float_mul(p, B::float_sub(a, b)), no_mass, 0.0.into());
        let values = B::float_reshape(B::float_sum_dim(terms, 1), Shape::new([n]));
        KlFromLogits { values, log_norms }
    }

    pub(crate) fn backward<B: Backend>(
        student: FloatTensor<B>,
        teacher: FloatTensor<B>,
        log_norms: FloatTensor<B>,
        grad: FloatTensor<B>,
        scale: f64,
    ) -> FloatTensor<B> {
        let [n, _] = student.shape().dims();
        let q = B::float_exp(log_softmax::<B>(
            B::float_mul_scalar(student, scale.into()),
            &log_norms,
            0,
        ));
        let p = B::float_exp(log_softmax::<B>(
            B::float_mul_scalar(teacher, scale.into()),
            &log_norms,
            1,
        ));
        let g = B::float_mul_scalar(B::float_reshape(grad, Shape::new([n, 1])), scale.into());
        B::float_mul(B::float_sub(q, p), g)
    }
}

/// `KL(softmax(scale · teacher) ‖ softmax(scale · student))` of each row (see the module docs),
/// differentiable with respect to `student`; `teacher` is detached (a constant).
///
/// Distillation with a temperature `τ` passes `scale = 1/τ` (and multiplies by `τ²` itself if it
/// wants Hinton et al.'s gradient scale).
///
/// # Shapes
/// - `student`, `teacher`: `[N, V]`
/// - output: `[N]`
///
/// # Panics
/// If the shapes differ, or `scale` is not finite and positive.
///
/// # Example
/// ```
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex();
/// let student = Tensor::<2>::from_floats([[0.0, 0.0]], &device);
/// let teacher = Tensor::<2>::from_floats([[0.0, f32::ln(3.0)]], &device);
/// // p = (1/4, 3/4), q = (1/2, 1/2)
/// let kl = mrl_common::kl_div_logits(student, teacher, 1.0);
/// # let v = kl.into_data().try_to_vec::<f32>().unwrap();
/// let want = 0.25 * f32::ln(0.5) + 0.75 * f32::ln(1.5);
/// # assert!((v[0] - want).abs() < 1e-6, "{v:?}");
/// ```
pub fn kl_div_logits(student: Tensor<2>, teacher: Tensor<2>, scale: f64) -> Tensor<1> {
    assert_eq!(
        student.dims(),
        teacher.dims(),
        "kl_div_logits: `student` {:?} and `teacher` {:?} must have the same shape",
        student.dims(),
        teacher.dims()
    );
    assert!(
        scale.is_finite() && scale > 0.0,
        "kl_div_logits: `scale` must be finite and positive, got {scale}"
    );
    let teacher = teacher.detach();
    if !is_host_cpu(&student.device()) {
        return composed(student, teacher, scale);
    }
    Tensor::from_dispatch(
        <Dispatch as KlLogitsOps>::kl_logits(
            student.into_dispatch(),
            teacher.into_dispatch(),
            scale,
        )
        .values,
    )
}

/// The same from Burn's tensor operations (differentiated by Burn's autodiff).
pub(crate) fn composed(student: Tensor<2>, teacher: Tensor<2>, scale: f64) -> Tensor<1> {
    let [n, _] = student.dims();
    let log_q = crate::log_softmax(student.mul_scalar(scale), 1);
    let log_p = crate::log_softmax(teacher.mul_scalar(scale), 1);
    let p = log_p.clone().exp();
    let no_mass = p.clone().equal_elem(0.0);
    (p * (log_p - log_q))
        .mask_fill(no_mass, 0.0)
        .sum_dim(1)
        .reshape([n])
}

#[cfg(all(test, feature = "flex", feature = "ndarray"))]
mod tests;
