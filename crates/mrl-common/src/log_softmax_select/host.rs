//! The host implementation of [`LogSoftmaxSelectOps`] for flex and ndarray f32 logits (other
//! dtypes take the portable body): blocks of whole rows across the cores, each block compiled by
//! `pulp` for the widest instruction set of the CPU, row sums in f64; the forward allocates only
//! its `[N, k (+1)]` outputs, the backward writes the gradient over the logits it was given.

use burn::backend::{
    tensor::{FloatTensor, IntTensor},
    Backend, TensorMetadata,
};
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use super::{portable, LogSoftmaxSelectOps, LogSoftmaxSelected};
use crate::host_math::{self, exp_or_zero, max_lanes, rows_per_block, sum_f64, HostF32};

/// The ids as row-major `usize`s, each checked against `0..vocab`.
fn read_ids<B: Backend>(ids: IntTensor<B>, vocab: usize) -> Vec<usize> {
    host_math::read_ids::<B>(
        ids,
        vocab,
        "log_softmax_select",
        "ids",
        "the classes of `logits`",
    )
}

/// The distinct ids of a row in increasing order, into `sorted`.
fn sorted_distinct(ids: &[usize], sorted: &mut Vec<usize>) {
    sorted.clear();
    sorted.extend_from_slice(ids);
    sorted.sort_unstable();
    sorted.dedup();
}

/// `Σ_{v ∉ sorted} f(x_v)` over the gaps between the (sorted, distinct) listed ids.
#[inline(always)]
fn sum_unlisted(x: &[f32], sorted: &[usize], f: impl Fn(f32) -> f32 + Copy) -> f64 {
    let mut start = 0;
    let mut sum = 0.0;
    for &id in sorted {
        sum += sum_f64(&x[start..id], f);
        start = id + 1;
    }
    sum + sum_f64(&x[start..], f)
}

/// One row: the values `[k (+1)]` and the log-normalisers `[L, R]`.
#[inline(always)]
fn forward_row(
    x: &[f32],
    ids: &[usize],
    scale: f32,
    values: &mut [f32],
    norms: &mut [f32],
    sorted: &mut Vec<usize>,
) {
    let rest = values.len() > ids.len();
    let max = max_lanes(x) * scale;
    if !max.is_finite() {
        // Only −∞ (or NaN) logits, or a +∞: NaN, as Burn's log-softmax gives.
        values.fill(f32::NAN);
        norms.fill(f32::NAN);
        return;
    }
    let term = move |v: f32| exp_or_zero(v * scale - max);
    let sum_all = sum_f64(x, term);
    let ln_all = (sum_all as f32).ln();
    for (out, &id) in values.iter_mut().zip(ids) {
        *out = (x[id] * scale - max) - ln_all;
    }
    norms[0] = max + ln_all;
    norms[1] = norms[0];
    if rest {
        sorted_distinct(ids, sorted);
        let sum_rest = sum_unlisted(x, sorted, term);
        let (r, unlisted) = if sum_rest == 0.0 {
            (f32::NEG_INFINITY, f32::NEG_INFINITY)
        } else {
            let ln_rest = sum_rest.ln();
            ((ln_rest - sum_all.ln()) as f32, max + ln_rest as f32)
        };
        values[ids.len()] = r;
        norms[1] = unlisted;
    }
}

/// One row of the gradient, written over the row's logits `x`.
#[inline(always)]
fn backward_row(
    x: &mut [f32],
    ids: &[usize],
    norms: &[f32],
    grad: &[f32],
    scale: f32,
    saved: &mut Vec<(usize, f32)>,
) {
    let k = ids.len();
    let (total, unlisted) = (norms[0], norms[1]);
    let g_all = sum_f64(grad, |g| g) as f32;
    let g_rest = if grad.len() > k { grad[k] } else { 0.0 };
    // The listed logits, before the row is overwritten.
    saved.clear();
    saved.extend(ids.iter().map(|&id| (id, x[id])));
    saved.sort_unstable_by_key(|&(id, _)| id);
    saved.dedup_by_key(|&mut (id, _)| id);
    if g_rest != 0.0 && unlisted != f32::NEG_INFINITY {
        for v in x.iter_mut() {
            let y = *v * scale;
            *v = scale * (g_rest * exp_or_zero(y - unlisted) - g_all * exp_or_zero(y - total));
        }
    } else {
        for v in x.iter_mut() {
            *v = -scale * g_all * exp_or_zero(*v * scale - total);
        }
    }
    // Listed classes have no rest term.
    for &(id, logit) in saved.iter() {
        x[id] = -scale * g_all * exp_or_zero(logit * scale - total);
    }
    for (&id, &g) in ids.iter().zip(grad) {
        x[id] += scale * g;
    }
}

struct Forward<'a> {
    x: &'a [f32],
    ids: &'a [usize],
    values: &'a mut [f32],
    norms: &'a mut [f32],
    v: usize,
    k: usize,
    scale: f32,
}

impl pulp::WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let rows = self.x.len() / self.v;
        let width = self.values.len() / rows;
        let mut sorted = Vec::with_capacity(self.k);
        for row in 0..rows {
            forward_row(
                &self.x[row * self.v..(row + 1) * self.v],
                &self.ids[row * self.k..(row + 1) * self.k],
                self.scale,
                &mut self.values[row * width..(row + 1) * width],
                &mut self.norms[row * 2..row * 2 + 2],
                &mut sorted,
            );
        }
    }
}

struct Backward<'a> {
    x: &'a mut [f32],
    ids: &'a [usize],
    norms: &'a [f32],
    grad: &'a [f32],
    v: usize,
    k: usize,
    width: usize,
    scale: f32,
}

impl pulp::WithSimd for Backward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let mut saved = Vec::with_capacity(self.k);
        let rows = self.x.len() / self.v;
        for row in 0..rows {
            let x = &mut self.x[row * self.v..(row + 1) * self.v];
            let ids = &self.ids[row * self.k..(row + 1) * self.k];
            let norms = &self.norms[row * 2..row * 2 + 2];
            let grad = &self.grad[row * self.width..(row + 1) * self.width];
            backward_row(x, ids, norms, grad, self.scale, &mut saved);
        }
    }
}

fn forward_f32<B: Backend>(
    logits: FloatTensor<B>,
    ids: IntTensor<B>,
    scale: f64,
    rest: bool,
) -> LogSoftmaxSelected<B> {
    let device = logits.device();
    let [n, v] = logits.shape().dims();
    let k = ids.shape().dims::<2>()[1];
    let width = k + usize::from(rest);
    let ids = read_ids::<B>(ids, v);
    let x = HostF32::read::<B>(logits, "log_softmax_select", "logits");
    let mut values = vec![0.0f32; n * width];
    let mut norms = vec![0.0f32; n * 2];
    if n > 0 && v > 0 {
        let rows = rows_per_block(v);
        let arch = pulp::Arch::new();
        let scale = scale as f32;
        x.par_chunks(rows * v)
            .zip(norms.par_chunks_mut(rows * 2))
            .enumerate()
            .zip(values.par_chunks_mut(rows * width))
            .for_each(|((block, (x, norms)), values)| {
                let first = block * rows;
                let count = x.len() / v;
                arch.dispatch(Forward {
                    x,
                    ids: &ids[first * k..(first + count) * k],
                    values: &mut values[..count * width],
                    norms,
                    v,
                    k,
                    scale,
                })
            });
    } else {
        // No classes (the ids were checked against an empty range, so there are none either):
        // the rest of an empty distribution.
        values.fill(f32::NAN);
        norms.fill(f32::NAN);
    }
    LogSoftmaxSelected {
        values: B::float_from_data(TensorData::new(values, [n, width]), &device),
        log_norms: B::float_from_data(TensorData::new(norms, [n, 2]), &device),
    }
}

fn backward_f32<B: Backend>(
    logits: FloatTensor<B>,
    ids: IntTensor<B>,
    log_norms: FloatTensor<B>,
    grad: FloatTensor<B>,
    scale: f64,
) -> FloatTensor<B> {
    let device = logits.device();
    let [n, v] = logits.shape().dims();
    let k = ids.shape().dims::<2>()[1];
    let width = grad.shape().dims::<2>()[1];
    let ids = read_ids::<B>(ids, v);
    let norms = HostF32::read::<B>(log_norms, "log_softmax_select", "log_norms");
    let grad = HostF32::read::<B>(grad, "log_softmax_select", "grad");
    let mut x = HostF32::read::<B>(logits, "log_softmax_select", "logits");
    if n > 0 && v > 0 {
        let rows = rows_per_block(v);
        let arch = pulp::Arch::new();
        let scale = scale as f32;
        x.par_chunks_mut(rows * v)
            .enumerate()
            .for_each(|(block, x)| {
                let first = block * rows;
                let count = x.len() / v;
                arch.dispatch(Backward {
                    x,
                    ids: &ids[first * k..(first + count) * k],
                    norms: &norms[first * 2..(first + count) * 2],
                    grad: &grad[first * width..(first + count) * width],
                    v,
                    k,
                    width,
                    scale,
                })
            });
    }
    x.into_tensor::<B>(&device)
}

macro_rules! host_log_softmax_select_ops {
    ($backend:ty) => {
        impl LogSoftmaxSelectOps for $backend {
            fn log_softmax_select(
                logits: FloatTensor<Self>,
                ids: IntTensor<Self>,
                scale: f64,
                rest: bool,
            ) -> LogSoftmaxSelected<Self> {
                if logits.dtype() == DType::F32 {
                    forward_f32::<Self>(logits, ids, scale, rest)
                } else {
                    portable::forward::<Self>(logits, ids, scale, rest)
                }
            }

            fn log_softmax_select_backward(
                logits: FloatTensor<Self>,
                ids: IntTensor<Self>,
                log_norms: FloatTensor<Self>,
                grad: FloatTensor<Self>,
                scale: f64,
                rest: bool,
            ) -> FloatTensor<Self> {
                if [&logits, &log_norms, &grad]
                    .iter()
                    .all(|t| t.dtype() == DType::F32)
                {
                    backward_f32::<Self>(logits, ids, log_norms, grad, scale)
                } else {
                    portable::backward::<Self>(logits, ids, log_norms, grad, scale, rest)
                }
            }
        }
    };
}

#[cfg(feature = "flex")]
host_log_softmax_select_ops!(burn::backend::Flex);

#[cfg(feature = "ndarray")]
#[allow(deprecated)]
mod ndarray_backend {
    use super::*;
    host_log_softmax_select_ops!(burn::backend::NdArray);
}
