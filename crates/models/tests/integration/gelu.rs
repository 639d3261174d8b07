//! `gelu_exact`: the host path of flex/ndarray against Burn's own (libm) GELU, forward and
//! backward (the exact gradient), contiguous and strided inputs, finite differences, f64 fallback, NaN.

use burn::tensor::activation::gelu;
use burn::tensor::{Distribution, Tensor, TensorData};
use models::gelu_exact;

use crate::common::devices;

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Largest `|a − b| / max(1, |x|)`.
fn worst(a: &[f32], b: &[f32], x: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .zip(x)
        .map(|((a, b), x)| (a - b).abs() / x.abs().max(1.0))
        .fold(0.0, f32::max)
}

#[test]
fn forward_matches_burn_gelu_on_contiguous_and_strided_inputs() {
    for (name, device) in devices() {
        // 3·50·700 = 105 000 elements: several parallel chunks and a ragged last one.
        let x = Tensor::<3>::random([3, 50, 700], Distribution::Normal(0.0, 3.0), &device);
        for (layout, x) in [
            ("contiguous", x.clone()),
            ("transposed", x.clone().swap_dims(0, 2)),
            ("sliced", x.slice([0..3, 5..45, 100..600])),
        ] {
            let xs = values(x.clone());
            let got = values(gelu_exact(x.clone()));
            let want = values(gelu(x));
            let err = worst(&got, &want, &xs);
            assert!(err < 1e-6, "{name} {layout}: max scaled error {err:e}");
        }
    }
}

/// Reference gradient: Burn's own GELU backward on flex in f64 (the exact formula with libm's
/// `erf`). Not ndarray's: that backend keeps Burn's default `gelu_backward`, the derivative of
/// the *tanh approximation*, which is off from the exact one by up to ~1.5e-3.
fn reference_gradient(x: &[f32], w: &[f32]) -> Vec<f32> {
    let device = burn::tensor::Device::flex().autodiff();
    let as_f64 = |v: &[f32]| {
        let data = TensorData::new(v.iter().map(|&a| a as f64).collect::<Vec<_>>(), [v.len()]);
        Tensor::<1>::from_data(data, &device)
    };
    let x = as_f64(x).require_grad();
    let grads = (gelu(x.clone()) * as_f64(w)).sum().backward();
    values(x.grad(&grads).unwrap())
}

#[test]
fn backward_matches_the_exact_gradient() {
    for (name, device) in devices() {
        let device = device.autodiff();
        let x = Tensor::<2>::random([40, 900], Distribution::Normal(0.0, 3.0), &device);
        let w = Tensor::<2>::random([40, 900], Distribution::Normal(0.0, 1.0), &device);
        let x = x.detach().require_grad();
        let grads = (gelu_exact(x.clone()) * w.clone()).sum().backward();
        let got = values(x.grad(&grads).expect("x has a gradient"));
        let (xs, ws) = (values(x.detach()), values(w));
        let want = reference_gradient(&xs, &ws);
        let scaled: Vec<f32> = xs
            .iter()
            .zip(&ws)
            .map(|(x, w)| x * w.abs().max(1.0))
            .collect();
        let err = worst(&got, &want, &scaled);
        assert!(err < 1e-6, "{name}: max scaled gradient error {err:e}");
    }
}

#[test]
fn backward_matches_finite_differences() {
    let points = [-6.0f32, -3.1, -1.7, -0.9, -0.2, 0.0, 0.3, 1.1, 2.4, 5.0];
    for (name, device) in devices() {
        let ad = device.clone().autodiff();
        let x = Tensor::<1>::from_floats(points, &ad).require_grad();
        let grads = gelu_exact(x.clone()).sum().backward();
        let analytic = values(x.grad(&grads).unwrap());
        let h = 1e-2f32;
        let at = |shift: f32| {
            let shifted: Vec<f32> = points.iter().map(|p| p + shift).collect();
            values(gelu_exact(Tensor::<1>::from_floats(
                shifted.as_slice(),
                &device,
            )))
        };
        let (plus, minus) = (at(h), at(-h));
        for i in 0..points.len() {
            let numeric = (plus[i] - minus[i]) / (2.0 * h);
            assert!(
                (numeric - analytic[i]).abs() < 1e-4,
                "{name}: gelu'({}) = {}, finite difference {numeric}",
                points[i],
                analytic[i]
            );
        }
    }
}

#[test]
fn f64_tensors_take_burns_gelu() {
    for (name, device) in devices() {
        let data = TensorData::new(vec![-2.5f64, -0.5, 0.0, 0.75, 3.0], [5]);
        let x = Tensor::<1>::from_data(data, (&device, burn::tensor::DType::F64));
        let got = gelu_exact(x.clone()).into_data();
        assert_eq!(got.dtype(), burn::tensor::DType::F64, "{name}");
        let want = gelu(x).into_data();
        assert_eq!(
            got, want,
            "{name}: an f64 tensor must go through Burn's gelu unchanged"
        );
    }
}

#[test]
fn nan_propagates_and_infinities_saturate() {
    for (name, device) in devices() {
        let x = Tensor::<1>::from_floats([f32::NAN, f32::INFINITY, 0.0, -30.0], &device);
        let y = values(gelu_exact(x));
        assert!(y[0].is_nan(), "{name}: gelu(NaN) must be NaN, got {}", y[0]);
        assert_eq!(y[1], f32::INFINITY, "{name}: gelu(+inf)");
        assert_eq!(y[2], 0.0, "{name}: gelu(0)");
        assert_eq!(y[3].abs(), 0.0, "{name}: gelu(-30) underflows to zero");
    }
}
