//! `swiglu`: the host path of flex/ndarray against Burn's `silu(a) * b` (forward and the
//! gradients Burn's autodiff takes through it), strided inputs, large and non-finite gates,
//! finite differences, the portable body (f64 tensors take it) against the host path, and
//! mismatched shapes.

use burn::tensor::activation::silu;
use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};
use models::swiglu;

use crate::common::{
    assert_finite_differences, devices, f32_values as values, worst_relative as worst,
};

#[test]
fn forward_matches_burns_silu_product_on_contiguous_and_strided_inputs() {
    for (name, device) in devices() {
        // 3 · 50 · 1536 = 230 400 elements: 14 chunks and a ragged one.
        let a = Tensor::<3>::random([3, 50, 1536], Distribution::Normal(0.0, 4.0), &device);
        let b = Tensor::<3>::random([3, 50, 1536], Distribution::Normal(0.0, 1.0), &device);
        let strided = Tensor::<3>::random([1536, 50, 3], Distribution::Normal(0.0, 4.0), &device)
            .swap_dims(0, 2);
        for (layout, a) in [("contiguous", a), ("transposed", strided)] {
            let got = values(swiglu(a.clone(), b.clone()));
            let err = worst(&got, &values(silu(a) * b.clone()));
            assert!(err < 1e-6, "{name} {layout}: max error {err:e}");
        }
    }
}

#[test]
fn saturated_and_non_finite_gates_behave_like_silu() {
    for (name, device) in devices() {
        let a = Tensor::<1>::from_floats([-200.0, -30.0, 30.0, 200.0, f32::NAN], &device);
        let b = Tensor::<1>::from_floats([1.0, 2.0, 3.0, 4.0, 1.0], &device);
        let got = values(swiglu(a, b));
        assert_eq!(got[0], 0.0, "{name}");
        assert!(got[1].abs() < 1e-10, "{name}: {}", got[1]);
        assert_eq!(got[2..4], [90.0, 800.0], "{name}");
        assert!(got[4].is_nan(), "{name}");
    }
}

#[test]
fn backward_matches_burns_autodiff_through_silu() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        let shape = [4, 37, 1536];
        let a = Tensor::<3>::random(shape, Distribution::Normal(0.0, 3.0), &ad).require_grad();
        let b = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let w = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &ad);
        let grads_of = |y: Tensor<3>| {
            let grads = (y * w.clone()).sum().backward();
            [
                values(a.grad(&grads).unwrap()),
                values(b.grad(&grads).unwrap()),
            ]
        };
        let got = grads_of(swiglu(a.clone(), b.clone()));
        let want = grads_of(silu(a.clone()) * b.clone());
        for (what, g, w) in [("gate", &got[0], &want[0]), ("up", &got[1], &want[1])] {
            let err = worst(g, w);
            assert!(err < 1e-5, "{name}: ∂L/∂{what} max error {err:e}");
        }
    }
}

#[test]
fn backward_matches_finite_differences() {
    let n = 12usize;
    let gates: Vec<f32> = (0..n).map(|i| (i as f32 - 5.5) * 0.9).collect();
    let ups: Vec<f32> = (0..n).map(|i| (i as f32 * 0.53).cos() * 1.5).collect();
    let ws: Vec<f32> = (0..n).map(|i| (i as f32 * 0.29).sin() + 0.2).collect();
    for (name, device) in devices() {
        let loss = |a: &[f32], b: &[f32], device: &Device| {
            let t = |v: &[f32]| Tensor::<1>::from_floats(v, device);
            let (a, b) = if device.is_autodiff() {
                (t(a).require_grad(), t(b).require_grad())
            } else {
                (t(a), t(b))
            };
            ((swiglu(a.clone(), b.clone()) * t(&ws)).sum(), a, b)
        };
        let ad = device.clone().autodiff();
        let (l, a, b) = loss(&gates, &ups, &ad);
        let grads = l.backward();
        let analytic = [
            values(a.grad(&grads).unwrap()),
            values(b.grad(&grads).unwrap()),
        ];
        let args = [gates.clone(), ups.clone()];
        assert_finite_differences(name, &args, &analytic, |a| {
            loss(&a[0], &a[1], &device).0.into_scalar::<f32>() as f64
        });
    }
}

#[test]
fn f64_tensors_take_the_portable_body_and_agree_with_the_host_path() {
    let n = 5000usize;
    let gates: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin() * 6.0).collect();
    let ups: Vec<f64> = (0..n).map(|i| (i as f64 * 0.11).cos()).collect();
    let ws: Vec<f64> = (0..n).map(|i| (i as f64 * 0.13).cos()).collect();
    for (name, device) in devices() {
        let ad = device.autodiff();
        let run = |f64_tensors: bool| {
            let dtype = if f64_tensors { DType::F64 } else { DType::F32 };
            let t =
                |v: &[f64]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [n]), (&ad, dtype));
            let (a, b) = (t(&gates).require_grad(), t(&ups).require_grad());
            let y = swiglu(a.clone(), b.clone());
            assert_eq!(y.dtype() == DType::F64, f64_tensors);
            let grads = (y.clone() * t(&ws)).sum().backward();
            [
                values(y),
                values(a.grad(&grads).unwrap()),
                values(b.grad(&grads).unwrap()),
            ]
        };
        let (host, portable) = (run(false), run(true));
        for (what, (h, p)) in ["y", "∂gate", "∂up"]
            .into_iter()
            .zip(host.iter().zip(&portable))
        {
            let err = worst(h, p);
            assert!(
                err < 1e-6,
                "{name}: {what} host vs portable, max error {err:e}"
            );
        }
    }
}

#[test]
#[should_panic(expected = "`gate` [2, 12] and `up` [2, 13] must have the same shape")]
fn mismatched_shapes_are_rejected() {
    let device = Device::flex();
    let _ = swiglu(
        Tensor::<2>::ones([2, 12], &device),
        Tensor::ones([2, 13], &device),
    );
}
