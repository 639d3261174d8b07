//! The host path against f64 values and against the composition of Burn operations (values and
//! the gradient Burn's autodiff takes through it), vocabulary-wide and narrow rows, temperatures,
//! teacher classes without mass, finite differences, the portable body (f64 tensors) against the
//! host path, the teacher as a constant, non-finite rows, and bad arguments.

use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};

use super::{composed, kl_div_logits};

fn devices() -> [(&'static str, Device); 2] {
    [("ndarray", Device::ndarray()), ("flex", Device::flex())]
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// `KL(p ‖ q)` per row in f64.
fn reference(x: &[f32], t: &[f32], v: usize, scale: f64) -> Vec<f64> {
    let log_softmax = |row: &[f32]| -> Vec<f64> {
        let y: Vec<f64> = row.iter().map(|&x| x as f64 * scale).collect();
        let max = y.iter().fold(f64::NEG_INFINITY, |m, &y| m.max(y));
        let total = max + y.iter().map(|&y| (y - max).exp()).sum::<f64>().ln();
        y.iter().map(|y| y - total).collect()
    };
    x.chunks(v)
        .zip(t.chunks(v))
        .map(|(x, t)| {
            let (b, a) = (log_softmax(x), log_softmax(t));
            a.iter()
                .zip(&b)
                .filter(|(a, _)| a.exp() > 0.0)
                .map(|(a, b)| a.exp() * (a - b))
                .sum()
        })
        .collect()
}

/// Largest difference to `want` relative to `max(|want|, 1)`.
fn worst_f64(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs() / w.abs().max(1.0))
        .fold(0.0, f64::max)
}

fn worst(got: &[f32], want: &[f32]) -> f64 {
    worst_f64(got, &want.iter().map(|&w| w as f64).collect::<Vec<_>>())
}

#[test]
fn forward_matches_f64_and_the_composition_on_wide_and_narrow_rows() {
    for (name, device) in devices() {
        for (rows, v, scale, std) in [
            (5, 49_152, 1.0, 4.0),
            (3, 49_152, 0.5, 4.0),
            (70, 37, 1.0, 3.0),
            (300, 64, 2.0, 8.0),
        ] {
            let x = Tensor::<2>::random([rows, v], Distribution::Normal(1.0, std), &device);
            let t = Tensor::<2>::random([rows, v], Distribution::Normal(0.0, std), &device);
            let want = reference(&values(x.clone()), &values(t.clone()), v, scale);
            let got = values(kl_div_logits(x.clone(), t.clone(), scale));
            let burn = values(composed(x.clone(), t.clone(), scale));
            let (ours, theirs) = (worst_f64(&got, &want), worst_f64(&burn, &want));
            assert!(
                ours < 5e-6,
                "{name} [{rows}, {v}] scale={scale}: max error {ours:e} (composition {theirs:e})"
            );
            assert!(worst(&got, &burn) < 1e-4, "{name}: vs the composition");
            assert!(got.iter().all(|&kl| kl >= -1e-6), "{name}: KL ≥ 0: {got:?}");
        }
        // Equal rows: 0. Strided logits: the values of their contiguous copy.
        let x = Tensor::<2>::random([64, 30], Distribution::Normal(0.0, 3.0), &device);
        let same = values(kl_div_logits(x.clone(), x.clone(), 1.0));
        assert!(same.iter().all(|kl| kl.abs() < 1e-6), "{name}: {same:?}");
        let t = Tensor::<2>::random([64, 30], Distribution::Normal(0.0, 3.0), &device);
        let strided = x.clone().swap_dims(0, 1).swap_dims(0, 1);
        let want = reference(&values(x), &values(t.clone()), 30, 1.0);
        let got = values(kl_div_logits(strided, t, 1.0));
        assert!(worst_f64(&got, &want) < 5e-6, "{name}: strided");
    }
}

#[test]
fn backward_matches_the_gradient_autodiff_takes_through_the_composition() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        for (rows, v, scale) in [(4, 49_152, 1.0), (4, 49_152, 0.5), (50, 40, 2.0)] {
            let x =
                Tensor::<2>::random([rows, v], Distribution::Normal(0.0, 3.0), &ad).require_grad();
            let t = Tensor::<2>::random([rows, v], Distribution::Normal(0.0, 3.0), &ad);
            let w = Tensor::<1>::random([rows], Distribution::Normal(0.0, 1.0), &ad);
            let grad_of = |y: Tensor<1>| values(x.grad(&(y * w.clone()).sum().backward()).unwrap());
            let got = grad_of(kl_div_logits(x.clone(), t.clone(), scale));
            let want = grad_of(composed(x.clone(), t.clone(), scale));
            let err = worst(&got, &want);
            assert!(
                err < 1e-5,
                "{name} [{rows}, {v}] scale={scale}: ∂x max error {err:e}"
            );
        }
    }
}

#[test]
fn teacher_classes_without_mass_contribute_nothing() {
    // The teacher gives the last two classes no mass (−∞, and a logit 200 below the others);
    // the student gives the last one none either: 0 · ∞ must not appear.
    let x = vec![0.5f32, -1.0, 2.0, 0.0, f32::NEG_INFINITY];
    let t = vec![1.0f32, 0.0, -1.0, -200.0, f32::NEG_INFINITY];
    let want = reference(&x, &t, 5, 1.0);
    for (name, device) in devices() {
        let ad = device.autodiff();
        let xs = Tensor::<2>::from_data(TensorData::new(x.clone(), [1, 5]), &ad).require_grad();
        let ts = Tensor::<2>::from_data(TensorData::new(t.clone(), [1, 5]), &ad);
        let kl = kl_div_logits(xs.clone(), ts, 1.0);
        let got = values(kl.clone());
        assert!(worst_f64(&got, &want) < 1e-6, "{name}: {got:?} vs {want:?}");
        let grad = values(xs.grad(&kl.sum().backward()).unwrap());
        assert!(grad.iter().all(|g| g.is_finite()), "{name}: {grad:?}");
        assert_eq!(grad[4], 0.0, "{name}: no mass on either side, no gradient");
    }
}

#[test]
fn backward_matches_finite_differences_of_the_f64_values() {
    let (rows, v) = (3usize, 9usize);
    let xs: Vec<f32> = (0..rows * v)
        .map(|i| (i as f32 * 0.71).sin() * 3.0)
        .collect();
    let ts: Vec<f32> = (0..rows * v)
        .map(|i| (i as f32 * 0.43).cos() * 2.0)
        .collect();
    let ws: Vec<f64> = (0..rows).map(|i| (i as f64 * 0.29).cos()).collect();
    let scale = 0.7;
    let loss = |x: &[f32]| -> f64 {
        reference(x, &ts, v, scale)
            .iter()
            .zip(&ws)
            .map(|(y, w)| y * w)
            .sum()
    };
    for (name, device) in devices() {
        let ad = device.autodiff();
        let x = Tensor::<2>::from_data(TensorData::new(xs.clone(), [rows, v]), &ad).require_grad();
        let t = Tensor::<2>::from_data(TensorData::new(ts.clone(), [rows, v]), &ad);
        let w = Tensor::<1>::from_data(
            TensorData::new(ws.iter().map(|&w| w as f32).collect::<Vec<_>>(), [rows]),
            &ad,
        );
        let y = kl_div_logits(x.clone(), t, scale);
        let analytic = values(x.grad(&(y * w).sum().backward()).unwrap());
        let h = 1e-2f32;
        for i in 0..xs.len() {
            let at = |shift: f32| {
                let mut x = xs.clone();
                x[i] += shift;
                loss(&x)
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h as f64);
            let a = analytic[i] as f64;
            assert!(
                (numeric - a).abs() < 1e-3 * a.abs().max(1.0),
                "{name}: element {i}: analytic {a}, finite difference {numeric}"
            );
        }
    }
}

#[test]
fn f64_tensors_take_the_portable_body_and_agree_with_the_host_path() {
    let (rows, v) = (30usize, 500usize);
    let xs: Vec<f64> = (0..rows * v)
        .map(|i| (i as f64 * 0.37).sin() * 5.0)
        .collect();
    let ts: Vec<f64> = (0..rows * v)
        .map(|i| (i as f64 * 0.21).cos() * 4.0)
        .collect();
    let ws: Vec<f64> = (0..rows).map(|i| (i as f64 * 0.13).cos()).collect();
    for (name, device) in devices() {
        let ad = device.autodiff();
        let run = |f64_tensors: bool| {
            let dtype = if f64_tensors { DType::F64 } else { DType::F32 };
            let tensor = |v: &[f64], shape: [usize; 2]| {
                Tensor::<2>::from_data(TensorData::new(v.to_vec(), shape), (&ad, dtype))
            };
            let x = tensor(&xs, [rows, v]).require_grad();
            let y = kl_div_logits(x.clone(), tensor(&ts, [rows, v]), 1.5);
            assert_eq!(y.dtype() == DType::F64, f64_tensors);
            let w = Tensor::<1>::from_data(TensorData::new(ws.clone(), [rows]), (&ad, dtype));
            let grads = (y.clone() * w).sum().backward();
            [values(y), values(x.grad(&grads).unwrap())]
        };
        let (host, portable) = (run(false), run(true));
        for (what, (h, p)) in ["values", "∂x"].into_iter().zip(host.iter().zip(&portable)) {
            let err = worst(h, p);
            assert!(
                err < 1e-5,
                "{name}: {what} host vs portable, max error {err:e}"
            );
        }
    }
}

#[test]
fn the_teacher_is_a_constant() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        let x = Tensor::<2>::random([3, 7], Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let t = Tensor::<2>::random([3, 7], Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let grads = kl_div_logits(x.clone(), t.clone(), 1.0).sum().backward();
        assert!(
            x.grad(&grads).is_some(),
            "{name}: the student has a gradient"
        );
        assert!(t.grad(&grads).is_none(), "{name}: the teacher has none");
    }
}

#[test]
fn rows_with_nan_or_infinite_logits_give_nan() {
    for (name, device) in devices() {
        let nan = f32::NAN;
        let (inf, neg) = (f32::INFINITY, f32::NEG_INFINITY);
        #[rustfmt::skip]
        let x = [
            0.0, nan, 1.0,   // NaN in the student
            0.0, inf, 1.0,   // +∞ in the student
            neg, neg, neg,   // no student mass
            0.0, 1.0, 2.0,   // NaN in the teacher
            0.0, 1.0, 2.0,   // +∞ in the teacher
            0.0, 1.0, 2.0,   // finite
        ];
        #[rustfmt::skip]
        let t = [
            0.0, 1.0, 2.0,
            0.0, 1.0, 2.0,
            0.0, 1.0, 2.0,
            nan, 1.0, 2.0,
            0.0, 1.0, inf,
            2.0, 1.0, 0.0,
        ];
        let tensor =
            |v: &[f32]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [6, 3]), &device);
        let got = values(kl_div_logits(tensor(&x), tensor(&t), 1.0));
        assert!(got[..5].iter().all(|v| v.is_nan()), "{name}: {got:?}");
        assert!(got[5].is_finite(), "{name}: {got:?}");
    }
}

#[test]
#[should_panic(expected = "`student` [2, 5] and `teacher` [2, 4] must have the same shape")]
fn logits_of_other_shapes_are_rejected() {
    let device = Device::flex();
    kl_div_logits(
        Tensor::<2>::zeros([2, 5], &device),
        Tensor::<2>::zeros([2, 4], &device),
        1.0,
    );
}

#[test]
#[should_panic(expected = "`scale` must be finite and positive, got 0")]
fn a_zero_scale_is_rejected() {
    let device = Device::flex();
    let x = Tensor::<2>::zeros([1, 5], &device);
    kl_div_logits(x.clone(), x, 0.0);
}
