//! `attention_softmax`: the host path of flex/ndarray against Burn's own operations (forward,
//! and the gradient Burn's autodiff takes through them), padded keys getting exactly 0, a fully
//! padded row, finite differences, the portable body (f64 tensors) against the host path, and
//! bad shapes.

use burn::tensor::activation::softmax;
use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};
use models::attention_softmax;

use crate::common::{devices, f32_values as values, worst_relative as worst};

fn dtype(f64_tensors: bool) -> DType {
    if f64_tensors {
        DType::F64
    } else {
        DType::F32
    }
}

/// Burn's operations: `softmax(scores · scale + mask[b, None, None, :])`.
fn reference(scores: Tensor<4>, mask: Tensor<2>, scale: f64) -> Tensor<4> {
    let [batch, keys] = mask.dims();
    softmax(
        scores.mul_scalar(scale) + mask.reshape([batch, 1, 1, keys]),
        3,
    )
}

/// An additive mask `[batch, keys]`: row `b` pads its last `b` keys with `f32::MIN`.
fn padding_mask(batch: usize, keys: usize, device: &Device) -> Tensor<2> {
    let values: Vec<f32> = (0..batch * keys)
        .map(|i| {
            if i % keys >= keys - i / keys {
                f32::MIN
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [batch, keys]), device)
}

#[test]
fn forward_matches_burns_operations_and_padded_keys_get_zero() {
    for (name, device) in devices() {
        // 5·12·37 = 2220 rows of 37 keys: several blocks and a ragged last one.
        let scores = Tensor::<4>::random([5, 12, 37, 37], Distribution::Normal(0.0, 4.0), &device);
        let mask = padding_mask(5, 37, &device);
        let got = values(attention_softmax(scores.clone(), mask.clone(), 0.125));
        let want = values(reference(scores, mask, 0.125));
        let err = worst(&got, &want);
        assert!(err < 1e-6, "{name}: max error {err:e}");
        for (i, p) in got.iter().enumerate() {
            let (b, k) = (i / (12 * 37 * 37), i % 37);
            if k >= 37 - b {
                assert_eq!(*p, 0.0, "{name}: padded key {k} of batch row {b}");
            }
        }
        for row in got.chunks(37) {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "{name}: a row sums to {sum}");
        }
    }
}

#[test]
fn a_fully_padded_row_is_uniform_as_in_burn_and_transformers() {
    for (name, device) in devices() {
        let scores = Tensor::<4>::random([1, 2, 3, 4], Distribution::Normal(0.0, 1.0), &device);
        let mask = Tensor::<2>::full([1, 4], f32::MIN, &device);
        let got = values(attention_softmax(scores.clone(), mask.clone(), 1.0));
        assert_eq!(got.len(), 24);
        let want = values(reference(scores, mask, 1.0));
        assert!(worst(&got, &want) < 1e-6, "{name}: {got:?} vs {want:?}");
        assert!(
            got.iter().all(|p| (p - 0.25).abs() < 1e-6),
            "{name}: {got:?}"
        );
    }
}

#[test]
fn backward_matches_burns_autodiff_through_its_operations() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        let scores = Tensor::<4>::random([3, 4, 20, 20], Distribution::Normal(0.0, 3.0), &ad)
            .detach()
            .require_grad();
        let mask = padding_mask(3, 20, &ad);
        let w = Tensor::<4>::random([3, 4, 20, 20], Distribution::Normal(0.0, 1.0), &ad);
        let grad_of = |p: Tensor<4>| {
            let grads = (p * w.clone()).sum().backward();
            values(scores.grad(&grads).unwrap())
        };
        let got = grad_of(attention_softmax(scores.clone(), mask.clone(), 0.3));
        let want = grad_of(reference(scores.clone(), mask, 0.3));
        let err = worst(&got, &want);
        assert!(err < 1e-5, "{name}: ∂L/∂scores max error {err:e}");
    }
}

#[test]
fn backward_matches_finite_differences() {
    let (b, h, q, k) = (2usize, 1usize, 2usize, 5usize);
    let n = b * h * q * k;
    let xs: Vec<f32> = (0..n).map(|i| (i as f32 * 0.83).sin() * 2.0).collect();
    let ws: Vec<f32> = (0..n).map(|i| (i as f32 * 0.41).cos()).collect();
    for (name, device) in devices() {
        let loss = |x: &[f32], device: &Device| {
            let s = Tensor::<4>::from_data(TensorData::new(x.to_vec(), [b, h, q, k]), device);
            let s = if device.is_autodiff() {
                s.require_grad()
            } else {
                s
            };
            let w = Tensor::<4>::from_data(TensorData::new(ws.clone(), [b, h, q, k]), device);
            let mask = padding_mask(b, k, device);
            ((attention_softmax(s.clone(), mask, 0.7) * w).sum(), s)
        };
        let ad = device.clone().autodiff();
        let (l, s) = loss(&xs, &ad);
        let analytic = values(s.grad(&l.backward()).unwrap());
        let hstep = 1e-2f32;
        for i in 0..n {
            let at = |shift: f32| {
                let mut x = xs.clone();
                x[i] += shift;
                loss(&x, &device).0.into_scalar::<f32>() as f64
            };
            let numeric = ((at(hstep) - at(-hstep)) / (2.0 * hstep as f64)) as f32;
            assert!(
                (numeric - analytic[i]).abs() < 1e-3,
                "{name}: element {i}: analytic {}, finite difference {numeric}",
                analytic[i]
            );
        }
    }
}

#[test]
fn f64_tensors_take_the_portable_body_and_agree_with_the_host_path() {
    let n = 2 * 3 * 9 * 9;
    let xs: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin() * 3.0).collect();
    let ws: Vec<f64> = (0..n).map(|i| (i as f64 * 0.13).cos()).collect();
    for (name, device) in devices() {
        let ad = device.autodiff();
        let run = |f64_tensors: bool| {
            let tensor = |v: &[f64]| {
                let data = TensorData::new(v.to_vec(), [2, 3, 9, 9]);
                Tensor::<4>::from_data(data, (&ad, dtype(f64_tensors)))
            };
            let mask = padding_mask(2, 9, &ad);
            let mask = if f64_tensors {
                mask.cast(burn::tensor::DType::F64)
            } else {
                mask
            };
            let s = tensor(&xs).require_grad();
            let p = attention_softmax(s.clone(), mask, 0.4);
            assert_eq!(p.dtype(), dtype(f64_tensors));
            let grads = (p.clone() * tensor(&ws)).sum().backward();
            [values(p), values(s.grad(&grads).unwrap())]
        };
        let (host, portable) = (run(false), run(true));
        for (what, (h, p)) in ["p", "∂s"].into_iter().zip(host.iter().zip(&portable)) {
            let err = worst(h, p);
            assert!(
                err < 1e-5,
                "{name}: {what} host vs portable, max error {err:e}"
            );
        }
    }
}

#[test]
#[should_panic(expected = "`mask` [2, 7] must be [batch, keys] = [2, 6]")]
fn a_mask_of_the_wrong_shape_is_rejected() {
    let device = Device::flex();
    let _ = attention_softmax(
        Tensor::<4>::zeros([2, 1, 6, 6], &device),
        Tensor::<2>::zeros([2, 7], &device),
        1.0,
    );
}
