//! The host implementation of [`SwigluOps`] for flex and ndarray f32 tensors (other dtypes
//! take the default bodies): chunks across the cores, each compiled by `pulp` for the widest
//! instruction set of the CPU; the forward writes over `up`, the backward writes `∂L/∂a` over
//! the saved `a` and `∂L/∂b` over the saved `b`, so neither allocates when the inputs are
//! uniquely owned.

use burn::backend::{tensor::FloatTensor, Backend, TensorMetadata};
use burn::tensor::DType;
use rayon::prelude::*;

use super::{SwigluGrads, SwigluOps};
use mrl_common::host_math::{exp_nonpositive, HostF32};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `σ(a) = 1 / (1 + e^(−a))`, branch-free from `e = e^(−|a|) ≤ 1`: `1/(1+e)` for `a ≥ 0`,
/// `e/(1+e)` below (no overflow for any `a`; `σ(NaN)` is finite, the products with `a` that
/// use it are NaN). Beyond `|a| = 87`, where
/// [`exp_nonpositive`] flushes to `e^−87`, `e` is an exact 0, so `silu(a)` is 0 there as in f32
/// arithmetic with libm's `exp`.
#[inline(always)]
pub(super) fn sigmoid(a: f32) -> f32 {
    let e = if a.abs() > 87.0 {
        0.0
    } else {
        exp_nonpositive(-a.abs())
    };
    let numerator = if a >= 0.0 { 1.0 } else { e };
    numerator / (1.0 + e)
}

/// `up ← silu(gate) ⊙ up` over a chunk.
struct Forward<'a> {
    gate: &'a [f32],
    up: &'a mut [f32],
}

impl pulp::WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for (u, &a) in self.up.iter_mut().zip(self.gate) {
            *u *= a * sigmoid(a);
        }
    }
}

/// `gate ← ∂L/∂a`, `up ← ∂L/∂b` over a chunk.
struct Backward<'a> {
    gate: &'a mut [f32],
    up: &'a mut [f32],
    grad: &'a [f32],
}

impl pulp::WithSimd for Backward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for ((a, b), &g) in self.gate.iter_mut().zip(self.up.iter_mut()).zip(self.grad) {
            let s = sigmoid(*a);
            let a_s = *a * s;
            let d_gate = g * *b * (s + a_s - a_s * s);
            *b = g * a_s;
            *a = d_gate;
        }
    }
}

fn same_shape<B: Backend>(op: &str, a: (&str, &FloatTensor<B>), b: (&str, &FloatTensor<B>)) {
    assert_eq!(
        a.1.shape(),
        b.1.shape(),
        "{op}: `{}` {:?} and `{}` {:?} must have the same shape",
        a.0,
        a.1.shape(),
        b.0,
        b.1.shape()
    );
}

fn forward_f32<B: Backend>(gate: FloatTensor<B>, up: FloatTensor<B>) -> FloatTensor<B> {
    same_shape::<B>("swiglu", ("gate", &gate), ("up", &up));
    let device = up.device();
    let gate = HostF32::read::<B>(gate, "swiglu", "gate");
    let mut up = HostF32::read::<B>(up, "swiglu", "up");
    let arch = pulp::Arch::new();
    up.par_chunks_mut(CHUNK)
        .zip(gate.par_chunks(CHUNK))
        .for_each(|(up, gate)| arch.dispatch(Forward { gate, up }));
    up.into_tensor::<B>(&device)
}

fn backward_f32<B: Backend>(
    gate: FloatTensor<B>,
    up: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> SwigluGrads<B> {
    same_shape::<B>("swiglu_backward", ("gate", &gate), ("up", &up));
    same_shape::<B>("swiglu_backward", ("gate", &gate), ("grad", &grad));
    let device = grad.device();
    let mut gate = HostF32::read::<B>(gate, "swiglu", "gate");
    let mut up = HostF32::read::<B>(up, "swiglu", "up");
    let grad = HostF32::read::<B>(grad, "swiglu", "grad");
    let arch = pulp::Arch::new();
    gate.par_chunks_mut(CHUNK)
        .zip(up.par_chunks_mut(CHUNK))
        .zip(grad.par_chunks(CHUNK))
        .for_each(|((gate, up), grad)| arch.dispatch(Backward { gate, up, grad }));
    SwigluGrads {
        gate: gate.into_tensor::<B>(&device),
        up: up.into_tensor::<B>(&device),
    }
}

macro_rules! host_swiglu_ops {
    ($backend:ty) => {
        impl SwigluOps for $backend {
            fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
                if [gate.dtype(), up.dtype()] == [DType::F32; 2] {
                    forward_f32::<Self>(gate, up)
                } else {
                    crate::swiglu::portable_forward::<Self>(gate, up)
                }
            }

            fn swiglu_backward(
                gate: FloatTensor<Self>,
                up: FloatTensor<Self>,
                grad: FloatTensor<Self>,
            ) -> SwigluGrads<Self> {
                if [gate.dtype(), up.dtype(), grad.dtype()] == [DType::F32; 3] {
                    backward_f32::<Self>(gate, up, grad)
                } else {
                    crate::swiglu::portable_backward::<Self>(gate, up, grad)
                }
            }
        }
    };
}

#[cfg(feature = "flex")]
host_swiglu_ops!(burn::backend::Flex);

#[cfg(feature = "ndarray")]
#[allow(deprecated)]
mod ndarray_backend {
    use super::*;
    host_swiglu_ops!(burn::backend::NdArray);
}

#[cfg(test)]
mod tests {
    use super::sigmoid;

    #[test]
    fn sigmoid_matches_the_f64_formula_over_the_whole_range() {
        for i in -2_000..=2_000 {
            let a = i as f32 * 0.05;
            let want = 1.0 / (1.0 + (-(a as f64)).exp());
            let got = sigmoid(a) as f64;
            assert!((got - want).abs() < 2e-7, "σ({a}) = {got}, want {want}");
        }
        assert_eq!(sigmoid(f32::INFINITY), 1.0);
        assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
        assert!((f32::NAN * sigmoid(f32::NAN)).is_nan());
    }
}
