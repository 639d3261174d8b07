//! The host implementation of [`GeluOps`] for flex and ndarray (f32 tensors; other dtypes take
//! the backend's own `gelu`).
//!
//! The element functions are branch-free straight-line f32 arithmetic (no libm calls, no
//! `mul_add`), so the loop over a chunk vectorises; `pulp` compiles that loop for the widest
//! instruction set the CPU has (AVX2 on x86-64 when present, detected at run time) and rayon
//! splits the chunks across the cores. Without `mul_add` no FMA contraction happens, so every
//! instruction set gives the same bits.

use burn::backend::{tensor::FloatTensor, Backend, TensorMetadata};
use burn::tensor::DType;
use rayon::prelude::*;

use super::GeluOps;
use mrl_common::host_math::{exp_nonpositive, HostF32};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1 / √(2π)`.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// `erf(x)`, branch-free: for `|x| < 1` its Maclaurin series to `x²¹`
/// (`2/√π · Σ (−1)ⁿ x²ⁿ⁺¹ / (n! (2n+1))`, truncation < 2e-9), beyond Abramowitz & Stegun 7.1.26
/// (`1 − (a₁t + … + a₅t⁵) · exp(−x²)`, `t = 1 / (1 + p|x|)`, error ≤ 1.5e-7 in exact arithmetic),
/// odd extension. Both are computed and one is selected, which vectorises as a blend; the series
/// avoids the cancellation of `1 − …` near 0. Measured in f32: absolute error ≤ 1.8e-7.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const SERIES: [f32; 11] = [
        std::f32::consts::FRAC_2_SQRT_PI,
        -0.376_126_38,
        0.112_837_92,
        -0.026_866_172,
        0.005_223_978,
        -0.000_854_832_7,
        0.000_120_553_326,
        -1.492_565e-5,
        1.646_211_4e-6,
        -1.636_584_4e-7,
        1.480_719_3e-8,
    ];
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152,
        1.061_405_4,
    ];
    let a = x.abs();
    let z = x * x;
    let mut series = SERIES[10];
    for c in SERIES[..10].iter().rev() {
        series = series * z + c;
    }
    let small = x * series;
    let t = 1.0 / (1.0 + P * a);
    let poly = ((((A[4] * t + A[3]) * t + A[2]) * t + A[1]) * t + A[0]) * t;
    let large = (1.0 - poly * exp_nonpositive(-z)).copysign(x);
    if a < 1.0 {
        small
    } else {
        large
    }
}

/// `GELU(x) = ½ · x · (1 + erf(x / √2))`.
#[inline(always)]
pub(super) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2))
}

/// `GELU'(x) = ½ · (1 + erf(x / √2)) + x · exp(−x² / 2) / √(2π)`.
#[inline(always)]
pub(super) fn gelu_derivative(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * FRAC_1_SQRT_2)) + x * FRAC_1_SQRT_2PI * exp_nonpositive(-0.5 * x * x)
}

/// `v ← GELU(v)` over a chunk, compiled for the instruction set `pulp` picked (the body is
/// inlined into pulp's `#[target_feature]` entry point, so it vectorises with that width).
struct Forward<'a>(&'a mut [f32]);

impl pulp::WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for v in self.0.iter_mut() {
            *v = gelu(*v);
        }
    }
}

/// `grad ← grad · GELU'(x)` over a chunk (see [`Forward`]).
struct Backward<'a> {
    grad: &'a mut [f32],
    x: &'a [f32],
}

impl pulp::WithSimd for Backward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for (g, &x) in self.grad.iter_mut().zip(self.x) {
            *g *= gelu_derivative(x);
        }
    }
}

/// Forward on the host: `GELU` of every element, in place.
fn forward_f32<B: Backend>(tensor: FloatTensor<B>) -> FloatTensor<B> {
    let device = tensor.device();
    let mut values = HostF32::read::<B>(tensor, "gelu_exact", "tensor");
    let arch = pulp::Arch::new();
    values
        .par_chunks_mut(CHUNK)
        .for_each(|chunk| arch.dispatch(Forward(chunk)));
    values.into_tensor::<B>(&device)
}

/// Backward on the host: `grad · GELU'(x)`, written over `grad`.
fn backward_f32<B: Backend>(x: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    assert_eq!(
        x.shape(),
        grad.shape(),
        "gelu_exact_backward: `x` {:?} and `grad` {:?} must have the same shape",
        x.shape(),
        grad.shape()
    );
    let device = grad.device();
    let x = HostF32::read::<B>(x, "gelu_exact", "x");
    let mut grad = HostF32::read::<B>(grad, "gelu_exact", "grad");
    let arch = pulp::Arch::new();
    grad.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(grad, x)| arch.dispatch(Backward { grad, x }));
    grad.into_tensor::<B>(&device)
}

macro_rules! host_gelu_ops {
    ($backend:ty) => {
        impl GeluOps for $backend {
            fn gelu_exact(tensor: FloatTensor<Self>) -> FloatTensor<Self> {
                if tensor.dtype() == DType::F32 {
                    forward_f32::<Self>(tensor)
                } else {
                    <Self as burn::backend::ops::ActivationOps<Self>>::gelu(tensor)
                }
            }

            fn gelu_exact_backward(
                x: FloatTensor<Self>,
                grad: FloatTensor<Self>,
            ) -> FloatTensor<Self> {
                if x.dtype() == DType::F32 && grad.dtype() == DType::F32 {
                    backward_f32::<Self>(x, grad)
                } else {
                    <Self as burn::backend::ops::ActivationOps<Self>>::gelu_backward(x, grad)
                }
            }
        }
    };
}

#[cfg(feature = "flex")]
host_gelu_ops!(burn::backend::Flex);

#[cfg(feature = "ndarray")]
#[allow(deprecated)]
mod ndarray_backend {
    use super::*;
    host_gelu_ops!(burn::backend::NdArray);
}

#[cfg(test)]
mod tests {
    use super::{erf, gelu, gelu_derivative};

    /// `erf` in f64 (Abramowitz & Stegun 7.1.28 is not accurate enough; this is the
    /// Taylor series for |x| < 3 and the continued fraction of erfc beyond), an independent
    /// reference for the f32 polynomial.
    fn erf_f64(x: f64) -> f64 {
        let a = x.abs();
        let value = if a < 3.0 {
            // erf(x) = 2/√π Σ (−1)ⁿ x^(2n+1) / (n! (2n+1))
            let (mut term, mut sum, mut n) = (a, a, 0.0);
            while term.abs() > 1e-17 * sum.abs() {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc(x) = exp(−x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + …))))
            let mut frac = 0.0;
            for k in (1..=60).rev() {
                frac = (k as f64 / 2.0) / (a + frac);
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + frac)
        };
        value.copysign(x)
    }

    fn grid() -> impl Iterator<Item = f32> {
        (-12_000..=12_000).map(|i| i as f32 * 1e-3)
    }

    #[test]
    fn erf_is_within_the_polynomial_bound() {
        let worst = grid()
            .map(|x| (erf(x) as f64 - erf_f64(x as f64)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 2e-7, "max |erf error| = {worst:e}");
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(erf(f32::NEG_INFINITY), -1.0);
    }

    #[test]
    fn gelu_and_derivative_match_the_f64_formula() {
        for x in grid() {
            let xd = x as f64;
            let cdf = 0.5 * (1.0 + erf_f64(xd / std::f64::consts::SQRT_2));
            let want = xd * cdf;
            let dwant = cdf + xd * (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let tol = 1.5e-7 * xd.abs().max(1.0);
            assert!((gelu(x) as f64 - want).abs() < tol, "gelu({x})");
            assert!(
                (gelu_derivative(x) as f64 - dwant).abs() < tol,
                "gelu'({x})"
            );
        }
        assert!(gelu(f32::NAN).is_nan());
        assert!(gelu_derivative(f32::NAN).is_nan());
        assert_eq!(gelu(f32::INFINITY), f32::INFINITY);
    }
}
