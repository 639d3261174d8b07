//! The host path against f64 values and Burn's `log_softmax` (forward and the gradient autodiff
//! takes through Burn's decomposition), contiguous and strided inputs, rows in and across blocks, finite
//! differences, the portable body (f64 tensors) against the host path, non-finite rows, and a bad
//! axis.

use burn::tensor::activation::log_softmax as burn_log_softmax;
use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};

use super::log_softmax;

fn devices() -> [(&'static str, Device); 2] {
    [("ndarray", Device::ndarray()), ("flex", Device::flex())]
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0, f32::max)
}

/// Log-softmax of each row of `d` values, in f64.
fn reference(x: &[f32], d: usize) -> Vec<f64> {
    x.chunks(d)
        .flat_map(|row| {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let log_sum = row
                .iter()
                .map(|&v| (v as f64 - max).exp())
                .sum::<f64>()
                .ln();
            row.iter().map(move |&v| v as f64 - max - log_sum)
        })
        .collect()
}

/// Largest difference to the f64 values relative to `max(|want|, 1)`.
fn worst_f64(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w).abs() / w.abs().max(1.0))
        .fold(0.0, f64::max)
}

#[test]
fn forward_matches_f64_and_burn_on_wide_and_narrow_rows_contiguous_and_strided() {
    for (name, device) in devices() {
        // A vocabulary-wide row (one block per row) and 64-wide rows (256 rows per block).
        for (shape, std) in [([2, 3, 49_152], 4.0), ([3, 300, 64], 8.0)] {
            let x = Tensor::<3>::random(shape, Distribution::Normal(1.0, std), &device);
            let want = reference(&values(x.clone()), shape[2]);
            let got = values(log_softmax(x.clone(), 2));
            let burn = values(burn_log_softmax(x, 2));
            let (ours, theirs) = (worst_f64(&got, &want), worst_f64(&burn, &want));
            // Burn's f32 sum over a 49152-wide row is off by ~1e-5; ours sums in f64.
            assert!(
                ours < 2e-6,
                "{name} {shape:?}: max error {ours:e} (Burn's {theirs:e})"
            );
            assert!(worst(&got, &burn) < 1e-4, "{name} {shape:?}: vs Burn");
        }
        let strided = Tensor::<3>::random([64, 40, 3], Distribution::Normal(0.0, 3.0), &device)
            .swap_dims(0, 2);
        let want = reference(&values(strided.clone()), 64);
        let err = worst_f64(&values(log_softmax(strided, 2)), &want);
        assert!(err < 2e-6, "{name} strided: max error {err:e}");
    }
}

#[test]
fn other_axes_are_burns() {
    let device = Device::flex();
    let x = Tensor::<3>::random([4, 5, 6], Distribution::Normal(0.0, 2.0), &device);
    assert_eq!(
        values(log_softmax(x.clone(), 1)),
        values(burn_log_softmax(x, 1))
    );
}

#[test]
fn backward_matches_the_f64_gradient_and_burns_autodiff() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        for shape in [[2, 5, 49_152], [3, 300, 64]] {
            let d = shape[2];
            let x = Tensor::<3>::random(shape, Distribution::Normal(0.0, 3.0), &ad).require_grad();
            let w = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &ad);
            let grad_of = |y: Tensor<3>| values(x.grad(&(y * w.clone()).sum().backward()).unwrap());
            // ∂/∂x_k Σ_j w_j y_j = w_k − p_k Σ_j w_j.
            let log_p = reference(&values(x.clone()), d);
            let ws = values(w.clone());
            let want: Vec<f64> = ws
                .chunks(d)
                .zip(log_p.chunks(d))
                .flat_map(|(w, lp)| {
                    let total: f64 = w.iter().map(|&v| v as f64).sum();
                    w.iter()
                        .zip(lp)
                        .map(move |(&w, lp)| w as f64 - lp.exp() * total)
                })
                .collect();
            let got = grad_of(log_softmax(x.clone(), 2));
            let burn = grad_of(burn_log_softmax(x.clone(), 2));
            let (ours, theirs) = (worst_f64(&got, &want), worst_f64(&burn, &want));
            assert!(
                ours < 1e-5,
                "{name} {shape:?}: ∂L/∂x max error {ours:e} (Burn's {theirs:e})"
            );
            assert!(worst(&got, &burn) < 5e-4, "{name} {shape:?}: vs Burn");
        }
    }
}

#[test]
fn backward_matches_finite_differences() {
    let (rows, d) = (3usize, 7usize);
    let xs: Vec<f32> = (0..rows * d)
        .map(|i| (i as f32 * 0.71).sin() * 3.0)
        .collect();
    let ws: Vec<f32> = (0..rows * d).map(|i| (i as f32 * 0.29).cos()).collect();
    for (name, device) in devices() {
        let loss = |x: &[f32], device: &Device| {
            let x = Tensor::<2>::from_data(TensorData::new(x.to_vec(), [rows, d]), device);
            let x = if device.is_autodiff() {
                x.require_grad()
            } else {
                x
            };
            let w = Tensor::<2>::from_data(TensorData::new(ws.clone(), [rows, d]), device);
            ((log_softmax(x.clone(), 1) * w).sum(), x)
        };
        let ad = device.clone().autodiff();
        let (l, x) = loss(&xs, &ad);
        let analytic = values(x.grad(&l.backward()).unwrap());
        let h = 1e-2f32;
        for i in 0..xs.len() {
            let at = |shift: f32| {
                let mut x = xs.clone();
                x[i] += shift;
                loss(&x, &device).0.into_scalar::<f32>() as f64
            };
            let numeric = ((at(h) - at(-h)) / (2.0 * h as f64)) as f32;
            let a = analytic[i];
            assert!(
                (numeric - a).abs() < 2e-3 * a.abs().max(1.0),
                "{name}: element {i}: analytic {a}, finite difference {numeric}"
            );
        }
    }
}

#[test]
fn f64_tensors_take_the_portable_body_and_agree_with_the_host_path() {
    let (rows, d) = (40usize, 500usize);
    let xs: Vec<f64> = (0..rows * d)
        .map(|i| (i as f64 * 0.37).sin() * 5.0)
        .collect();
    let ws: Vec<f64> = (0..rows * d).map(|i| (i as f64 * 0.13).cos()).collect();
    for (name, device) in devices() {
        let ad = device.autodiff();
        let run = |f64_tensors: bool| {
            let dtype = if f64_tensors { DType::F64 } else { DType::F32 };
            let t = |v: &[f64]| {
                Tensor::<2>::from_data(TensorData::new(v.to_vec(), [rows, d]), (&ad, dtype))
            };
            let x = t(&xs).require_grad();
            let y = log_softmax(x.clone(), 1);
            assert_eq!(y.dtype() == DType::F64, f64_tensors);
            let grads = (y.clone() * t(&ws)).sum().backward();
            [values(y), values(x.grad(&grads).unwrap())]
        };
        let (host, portable) = (run(false), run(true));
        for (what, (h, p)) in ["y", "∂x"].into_iter().zip(host.iter().zip(&portable)) {
            let err = worst(h, p);
            assert!(
                err < 1e-5,
                "{name}: {what} host vs portable, max error {err:e}"
            );
        }
    }
}

#[test]
fn non_finite_rows_are_what_burn_gives() {
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    let rows: [[f32; 4]; 5] = [
        [0.0, -inf, 1.0, -inf], // −∞ entries of a finite row: −∞
        [0.0, nan, 1.0, 2.0],   // a NaN: NaN row
        [0.0, inf, 1.0, 2.0],   // a +∞: NaN row
        [-inf; 4],              // only −∞: NaN row
        [1e30, -1e30, 0.0, 3.0],
    ];
    for (name, device) in devices() {
        let x = Tensor::<2>::from_data(TensorData::new(rows.concat(), [5, 4]), &device);
        let got = values(log_softmax(x.clone(), 1));
        let want = values(burn_log_softmax(x, 1));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let same = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() < 1e-6 * w.abs();
            assert!(same, "{name}: element {i}: {g} vs Burn's {w}");
        }
        assert_eq!(got[1], f32::NEG_INFINITY, "{name}");
        assert!(got[4..16].iter().all(|v| v.is_nan()), "{name}: {got:?}");
    }
}

#[test]
#[should_panic(expected = "`dim` 3 is not an axis of a rank-3 tensor [2, 3, 4]")]
fn a_bad_axis_is_rejected() {
    let _ = log_softmax(Tensor::<3>::zeros([2, 3, 4], &Device::flex()), 3);
}
