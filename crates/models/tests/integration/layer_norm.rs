//! `layer_norm`: the host path of flex/ndarray against Burn's own `LayerNorm` (forward and the
//! gradients Burn's autodiff takes through its decomposition), contiguous and strided inputs,
//! finite differences, the portable body (f64 tensors take it) against the host path, and a
//! mismatched width.

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};
use models::layer_norm;

const EPS: f64 = 1e-12;

use crate::common::{
    assert_finite_differences, devices, f32_values as values, worst_relative as worst,
    RequireGradIfAutodiff,
};

/// A layer of width `d` with random `γ` (around 1) and `β` on `device`.
fn layer(d: usize, device: &Device) -> LayerNorm {
    let mut norm = LayerNormConfig::new(d).with_epsilon(EPS).init(device);
    norm.gamma = Param::from_tensor(
        Tensor::<1>::random([d], Distribution::Normal(1.0, 0.3), device).require_grad_if_autodiff(),
    );
    norm.beta = Some(Param::from_tensor(
        Tensor::<1>::random([d], Distribution::Normal(0.0, 0.5), device).require_grad_if_autodiff(),
    ));
    norm
}

/// `models::layer_norm` with `norm`'s parameters and [`EPS`].
fn apply<const D: usize>(norm: &LayerNorm, x: Tensor<D>) -> Tensor<D> {
    let beta = norm.beta.as_ref().expect("a bias");
    layer_norm(x, norm.gamma.val(), beta.val(), EPS)
}

#[test]
fn forward_matches_burns_layer_norm_on_contiguous_and_strided_inputs() {
    for (name, device) in devices() {
        let norm = layer(384, &device);
        // 150 rows: two full blocks of 64 and a ragged one.
        let x = Tensor::<3>::random([3, 50, 384], Distribution::Normal(0.5, 2.0), &device);
        let strided = Tensor::<3>::random([384, 50, 3], Distribution::Normal(0.0, 1.0), &device)
            .swap_dims(0, 2);
        for (layout, x) in [("contiguous", x), ("transposed", strided)] {
            let err = worst(&values(apply(&norm, x.clone())), &values(norm.forward(x)));
            assert!(err < 2e-5, "{name} {layout}: max error {err:e}");
        }
    }
}

#[test]
fn backward_matches_burns_autodiff_through_its_decomposition() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        let norm = layer(384, &ad);
        let x = Tensor::<3>::random([4, 37, 384], Distribution::Normal(0.3, 1.5), &ad)
            .detach()
            .require_grad();
        let w = Tensor::<3>::random([4, 37, 384], Distribution::Normal(0.0, 1.0), &ad);
        let grads_of = |y: Tensor<3>| {
            let grads = (y * w.clone()).sum().backward();
            [
                values(x.grad(&grads).unwrap()),
                values(norm.gamma.val().grad(&grads).unwrap()),
                values(norm.beta.as_ref().unwrap().val().grad(&grads).unwrap()),
            ]
        };
        let got = grads_of(apply(&norm, x.clone()));
        let want = grads_of(norm.forward(x.clone()));
        for (what, tol, g, w) in [
            ("x", 1e-4, &got[0], &want[0]),
            ("gamma", 1e-3, &got[1], &want[1]),
            ("beta", 1e-3, &got[2], &want[2]),
        ] {
            let err = worst(g, w);
            assert!(err < tol, "{name}: ∂L/∂{what} max error {err:e}");
        }
    }
}

#[test]
fn backward_matches_finite_differences() {
    let (rows, d) = (3usize, 8usize);
    let xs: Vec<f32> = (0..rows * d)
        .map(|i| (i as f32 * 0.71).sin() * 2.0)
        .collect();
    let ws: Vec<f32> = (0..rows * d).map(|i| (i as f32 * 0.29).cos()).collect();
    let gs: Vec<f32> = (0..d).map(|i| 1.0 + 0.1 * i as f32).collect();
    let bs: Vec<f32> = (0..d).map(|i| 0.05 * i as f32 - 0.2).collect();
    for (name, device) in devices() {
        let loss = |x: &[f32], g: &[f32], b: &[f32], device: &Device| {
            let mut norm = LayerNormConfig::new(d).with_epsilon(EPS).init(device);
            norm.gamma =
                Param::from_tensor(Tensor::<1>::from_floats(g, device).require_grad_if_autodiff());
            norm.beta = Some(Param::from_tensor(
                Tensor::<1>::from_floats(b, device).require_grad_if_autodiff(),
            ));
            let x = Tensor::<2>::from_data(TensorData::new(x.to_vec(), [rows, d]), device)
                .require_grad_if_autodiff();
            let w = Tensor::<2>::from_data(TensorData::new(ws.clone(), [rows, d]), device);
            ((apply(&norm, x.clone()) * w).sum(), x, norm)
        };
        let ad = device.clone().autodiff();
        let (l, x, norm) = loss(&xs, &gs, &bs, &ad);
        let grads = l.backward();
        let analytic = [
            values(x.grad(&grads).unwrap()),
            values(norm.gamma.val().grad(&grads).unwrap()),
            values(norm.beta.as_ref().unwrap().val().grad(&grads).unwrap()),
        ];
        let args = [xs.clone(), gs.clone(), bs.clone()];
        assert_finite_differences(name, &args, &analytic, |a| {
            loss(&a[0], &a[1], &a[2], &device).0.into_scalar::<f32>() as f64
        });
    }
}

#[test]
fn f64_tensors_take_the_portable_body_and_agree_with_the_host_path() {
    let (rows, d) = (70usize, 96usize);
    let xs: Vec<f64> = (0..rows * d)
        .map(|i| (i as f64 * 0.37).sin() * 1.7 + 0.2)
        .collect();
    let ws: Vec<f64> = (0..rows * d).map(|i| (i as f64 * 0.13).cos()).collect();
    let gs: Vec<f64> = (0..d).map(|i| 1.0 + 0.3 * (i as f64 * 0.5).sin()).collect();
    let bs: Vec<f64> = (0..d).map(|i| 0.4 * (i as f64 * 0.2).cos()).collect();
    for (name, device) in devices() {
        let ad = device.autodiff();
        let run = |f64_tensors: bool| {
            let tensor = |v: &[f64], shape: Vec<usize>| {
                let dtype = if f64_tensors { DType::F64 } else { DType::F32 };
                Tensor::<2>::from_data(TensorData::new(v.to_vec(), shape), (&ad, dtype))
            };
            let mut norm = LayerNormConfig::new(d).with_epsilon(EPS).init(&ad);
            norm.gamma = Param::from_tensor(
                tensor(&gs, vec![1, d])
                    .reshape([d])
                    .require_grad_if_autodiff(),
            );
            norm.beta = Some(Param::from_tensor(
                tensor(&bs, vec![1, d])
                    .reshape([d])
                    .require_grad_if_autodiff(),
            ));
            let x = tensor(&xs, vec![rows, d]).require_grad();
            let y = apply(&norm, x.clone());
            assert_eq!(y.dtype() == DType::F64, f64_tensors);
            let grads = (y.clone() * tensor(&ws, vec![rows, d])).sum().backward();
            [
                values(y),
                values(x.grad(&grads).unwrap()),
                values(norm.gamma.val().grad(&grads).unwrap()),
                values(norm.beta.as_ref().unwrap().val().grad(&grads).unwrap()),
            ]
        };
        let (host, portable) = (run(false), run(true));
        for (what, (h, p)) in ["y", "∂x", "∂γ", "∂β"]
            .into_iter()
            .zip(host.iter().zip(&portable))
        {
            let err = worst(h, p);
            assert!(
                err < 1e-4,
                "{name}: {what} host vs portable, max error {err:e}"
            );
        }
    }
}

#[test]
#[should_panic(expected = "`gamma` [16] must be [12], the last axis of `x` [2, 12]")]
fn a_mismatched_width_is_rejected() {
    let device = Device::flex();
    let norm = LayerNormConfig::new(16).init(&device);
    let _ = apply(&norm, Tensor::<2>::ones([2, 12], &device));
}
