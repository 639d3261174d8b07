//! The host implementation of [`KlLogitsOps`] for flex and ndarray f32 logits (other dtypes take
//! the portable body): blocks of whole rows across the cores, each block compiled by `pulp` for
//! the widest instruction set of the CPU, row sums in f64; the forward allocates only its `[N]`
//! and `[N, 4]` outputs, the backward writes the gradient over the student logits it was given.

use burn::backend::{tensor::FloatTensor, Backend, TensorMetadata};
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use super::{portable, KlFromLogits, KlLogitsOps, NORMS};
use crate::host_math::{exp_or_zero, max_lanes, rows_per_block, sum2_f64, sum_f64, HostF32};

const OP: &str = "kl_div_logits";

/// `(m, l)` of a row: the scaled maximum `m = s·max_v y_v` and `l = ln Σ_v e^{s y_v − m}`, so that
/// `log softmax(s·y)_v = (s y_v − m) − l` keeps its precision however large `m` is (NaN when
/// `m` is not finite: a `+∞`, or only `−∞`).
#[inline(always)]
fn log_norm(y: &[f32], scale: f32) -> (f32, f32) {
    let max = max_lanes(y) * scale;
    if !max.is_finite() {
        return (f32::NAN, f32::NAN);
    }
    (
        max,
        sum_f64(y, move |v| exp_or_zero(v * scale - max)).ln() as f32,
    )
}

/// One row: `KL(p ‖ q)` and `[m_x, l_x, m_t, l_t]`.
#[inline(always)]
fn forward_row(x: &[f32], t: &[f32], scale: f32, norms: &mut [f32]) -> f32 {
    let (m_x, l_x) = log_norm(x, scale);
    let (m_t, l_t) = log_norm(t, scale);
    norms.copy_from_slice(&[m_x, l_x, m_t, l_t]);
    if !(l_x.is_finite() && l_t.is_finite()) {
        return f32::NAN;
    }
    sum2_f64(t, x, move |t, x| {
        let a = (t * scale - m_t) - l_t;
        let p = exp_or_zero(a);
        // No teacher mass: 0 (a NaN `a` keeps `p` NaN, which the product carries).
        if p == 0.0 {
            0.0
        } else {
            p * (a - ((x * scale - m_x) - l_x))
        }
    }) as f32
}

struct Forward<'a> {
    x: &'a [f32],
    t: &'a [f32],
    values: &'a mut [f32],
    norms: &'a mut [f32],
    v: usize,
    scale: f32,
}

impl pulp::WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let v = self.v;
        for (row, value) in self.values.iter_mut().enumerate() {
            *value = forward_row(
                &self.x[row * v..(row + 1) * v],
                &self.t[row * v..(row + 1) * v],
                self.scale,
                &mut self.norms[row * NORMS..(row + 1) * NORMS],
            );
        }
    }
}

struct Backward<'a> {
    x: &'a mut [f32],
    t: &'a [f32],
    norms: &'a [f32],
    grad: &'a [f32],
    v: usize,
    scale: f32,
}

impl pulp::WithSimd for Backward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (v, scale) = (self.v, self.scale);
        for (row, &g) in self.grad.iter().enumerate() {
            let x = &mut self.x[row * v..(row + 1) * v];
            let t = &self.t[row * v..(row + 1) * v];
            let n = &self.norms[row * NORMS..(row + 1) * NORMS];
            let (m_x, l_x, m_t, l_t) = (n[0], n[1], n[2], n[3]);
            let gs = g * scale;
            for (x, &t) in x.iter_mut().zip(t) {
                let q = exp_or_zero((*x * scale - m_x) - l_x);
                let p = exp_or_zero((t * scale - m_t) - l_t);
                *x = gs * (q - p);
            }
        }
    }
}

fn forward_f32<B: Backend>(
    student: FloatTensor<B>,
    teacher: FloatTensor<B>,
    scale: f64,
) -> KlFromLogits<B> {
    let device = student.device();
    let [n, v] = student.shape().dims();
    let x = HostF32::read::<B>(student, OP, "student");
    let t = HostF32::read::<B>(teacher, OP, "teacher");
    let mut values = vec![0.0f32; n];
    let mut norms = vec![0.0f32; n * NORMS];
    if n > 0 && v > 0 {
        let rows = rows_per_block(v);
        let arch = pulp::Arch::new();
        let scale = scale as f32;
        x.par_chunks(rows * v)
            .zip(t.par_chunks(rows * v))
            .zip(values.par_chunks_mut(rows))
            .zip(norms.par_chunks_mut(rows * NORMS))
            .for_each(|(((x, t), values), norms)| {
                arch.dispatch(Forward {
                    x,
                    t,
                    values,
                    norms,
                    v,
                    scale,
                })
            });
    } else {
        // No classes: no distribution on either side.
        values.fill(f32::NAN);
        norms.fill(f32::NAN);
    }
    KlFromLogits {
        values: B::float_from_data(TensorData::new(values, [n]), &device),
        log_norms: B::float_from_data(TensorData::new(norms, [n, NORMS]), &device),
    }
}

fn backward_f32<B: Backend>(
    student: FloatTensor<B>,
    teacher: FloatTensor<B>,
    log_norms: FloatTensor<B>,
    grad: FloatTensor<B>,
    scale: f64,
) -> FloatTensor<B> {
    let device = student.device();
    let [n, v] = student.shape().dims();
    let norms = HostF32::read::<B>(log_norms, OP, "log_norms");
    let grad = HostF32::read::<B>(grad, OP, "grad");
    let t = HostF32::read::<B>(teacher, OP, "teacher");
    let mut x = HostF32::read::<B>(student, OP, "student");
    if n > 0 && v > 0 {
        let rows = rows_per_block(v);
        let arch = pulp::Arch::new();
        let scale = scale as f32;
        x.par_chunks_mut(rows * v)
            .zip(t.par_chunks(rows * v))
            .zip(norms.par_chunks(rows * NORMS))
            .zip(grad.par_chunks(rows))
            .for_each(|(((x, t), norms), grad)| {
                arch.dispatch(Backward {
                    x,
                    t,
                    norms,
                    grad,
                    v,
                    scale,
                })
            });
    }
    x.into_tensor::<B>(&device)
}

macro_rules! host_kl_logits_ops {
    ($backend:ty) => {
        impl KlLogitsOps for $backend {
            fn kl_logits(
                student: FloatTensor<Self>,
                teacher: FloatTensor<Self>,
                scale: f64,
            ) -> KlFromLogits<Self> {
                if [&student, &teacher].iter().all(|t| t.dtype() == DType::F32) {
                    forward_f32::<Self>(student, teacher, scale)
                } else {
                    portable::forward::<Self>(student, teacher, scale)
                }
            }

            fn kl_logits_backward(
                student: FloatTensor<Self>,
                teacher: FloatTensor<Self>,
                log_norms: FloatTensor<Self>,
                grad: FloatTensor<Self>,
                scale: f64,
            ) -> FloatTensor<Self> {
                if [&student, &teacher, &log_norms, &grad]
                    .iter()
                    .all(|t| t.dtype() == DType::F32)
                {
                    backward_f32::<Self>(student, teacher, log_norms, grad, scale)
                } else {
                    portable::backward::<Self>(student, teacher, log_norms, grad, scale)
                }
            }
        }
    };
}

#[cfg(feature = "flex")]
host_kl_logits_ops!(burn::backend::Flex);

#[cfg(feature = "ndarray")]
#[allow(deprecated)]
mod ndarray_backend {
    use super::*;
    host_kl_logits_ops!(burn::backend::NdArray);
}
