//! The host path against f64 values and against the composition of Burn operations (values and
//! the gradient Burn's autodiff takes through it), vocabulary-wide and narrow rows, strided
//! logits, a temperature, repeated ids and rows where every class is listed, finite
//! differences, the portable body (f64 tensors) against the host path, non-finite rows, and bad
//! arguments.

use burn::tensor::{DType, Device, Distribution, Int, Tensor, TensorData};

use super::{composed, log_softmax_select};
use crate::SplitMix64;

fn devices() -> [(&'static str, Device); 2] {
    [("ndarray", Device::ndarray()), ("flex", Device::flex())]
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// `k` distinct ids in `0..v` per row.
fn distinct_ids(rows: usize, v: usize, k: usize, seed: u64) -> Vec<i64> {
    let mut rng = SplitMix64::new(seed);
    (0..rows)
        .flat_map(|_| {
            let mut row: Vec<i64> = Vec::with_capacity(k);
            while row.len() < k {
                let id = rng.below(v) as i64;
                if !row.contains(&id) {
                    row.push(id);
                }
            }
            row
        })
        .collect()
}

fn id_tensor(ids: &[i64], rows: usize, device: &Device) -> Tensor<2, Int> {
    let k = ids.len() / rows;
    Tensor::from_data(TensorData::new(ids.to_vec(), [rows, k]), device)
}

/// The outputs in f64: `s·x_i − L` per listed id, then `R − L` with `rest`.
fn reference(x: &[f32], v: usize, ids: &[i64], scale: f64, rest: bool) -> Vec<f64> {
    let k = ids.len() / (x.len() / v);
    x.chunks(v)
        .zip(ids.chunks(k))
        .flat_map(|(row, ids)| {
            let y: Vec<f64> = row.iter().map(|&x| x as f64 * scale).collect();
            let max = y.iter().fold(f64::NEG_INFINITY, |m, &y| m.max(y));
            let total = max + y.iter().map(|&y| (y - max).exp()).sum::<f64>().ln();
            let mut out: Vec<f64> = ids.iter().map(|&i| y[i as usize] - total).collect();
            if rest {
                let unlisted: f64 = (0..v)
                    .filter(|c| !ids.contains(&(*c as i64)))
                    .map(|c| (y[c] - max).exp())
                    .sum();
                out.push(max + unlisted.ln() - total);
            }
            out
        })
        .collect()
}

/// Largest difference to `want` relative to `max(|want|, 1)` (equal infinities count as 0).
fn worst_f64(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(&g, &w)| {
            if g as f64 == w {
                0.0
            } else {
                (g as f64 - w).abs() / w.abs().max(1.0)
            }
        })
        .fold(0.0, f64::max)
}

fn worst(got: &[f32], want: &[f32]) -> f64 {
    worst_f64(got, &want.iter().map(|&w| w as f64).collect::<Vec<_>>())
}

#[test]
fn forward_matches_f64_and_the_composition_on_wide_and_narrow_rows() {
    for (name, device) in devices() {
        for (rows, v, k, scale, std) in [
            (5, 49_152, 64, 1.0, 4.0),
            (3, 49_152, 1, 0.5, 4.0),
            (70, 37, 3, 1.0, 3.0),
            (300, 64, 1, 2.0, 8.0),
        ] {
            let x = Tensor::<2>::random([rows, v], Distribution::Normal(1.0, std), &device);
            let ids = distinct_ids(rows, v, k, v as u64 + k as u64);
            for rest in [true, false] {
                let want = reference(&values(x.clone()), v, &ids, scale, rest);
                let got = values(log_softmax_select(
                    x.clone(),
                    id_tensor(&ids, rows, &device),
                    scale,
                    rest,
                ));
                let burn = values(composed(
                    x.clone(),
                    id_tensor(&ids, rows, &device),
                    scale,
                    rest,
                ));
                let (ours, theirs) = (worst_f64(&got, &want), worst_f64(&burn, &want));
                assert!(
                    ours < 2e-6,
                    "{name} [{rows}, {v}] k={k} scale={scale} rest={rest}: max error {ours:e} \
                     (composition {theirs:e})"
                );
                assert!(worst(&got, &burn) < 1e-4, "{name}: vs the composition");
            }
        }
        // Strided logits give the values of their contiguous copy.
        let x = Tensor::<2>::random([64, 30], Distribution::Normal(0.0, 3.0), &device);
        let ids = distinct_ids(64, 30, 4, 7);
        let strided = x.clone().swap_dims(0, 1).swap_dims(0, 1);
        let want = reference(&values(x), 30, &ids, 1.0, true);
        let got = values(log_softmax_select(
            strided,
            id_tensor(&ids, 64, &device),
            1.0,
            true,
        ));
        assert!(worst_f64(&got, &want) < 2e-6, "{name}: strided");
    }
}

#[test]
fn a_tiny_rest_is_summed_directly_not_as_one_minus_the_listed_mass() {
    // The listed class holds all but ~e^-30 of the mass: 1 − p would cancel to 0 in f32.
    let mut x = vec![0.0f32; 1000];
    x[17] = 40.0;
    let want = (999.0f64).ln() + (-40.0f64) - (1.0 + 999.0 * (-40.0f64).exp()).ln();
    for (name, device) in devices() {
        let logits = Tensor::<2>::from_data(TensorData::new(x.clone(), [1, 1000]), &device);
        let got = values(log_softmax_select(
            logits,
            id_tensor(&[17], 1, &device),
            1.0,
            true,
        ));
        assert!(
            ((got[1] as f64 - want) / want).abs() < 1e-6,
            "{name}: rest {} vs {want}",
            got[1]
        );
    }
}

#[test]
fn backward_matches_the_gradient_autodiff_takes_through_the_composition() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        for (rows, v, k, scale, rest) in [
            (4, 49_152, 64, 1.0, true),
            (4, 49_152, 1, 1.0, false),
            (50, 40, 5, 0.5, true),
            (50, 40, 2, 2.0, false),
        ] {
            let x =
                Tensor::<2>::random([rows, v], Distribution::Normal(0.0, 3.0), &ad).require_grad();
            let ids = distinct_ids(rows, v, k, 11 + k as u64);
            let width = k + usize::from(rest);
            let w = Tensor::<2>::random([rows, width], Distribution::Normal(0.0, 1.0), &ad);
            let grad_of = |y: Tensor<2>| values(x.grad(&(y * w.clone()).sum().backward()).unwrap());
            let got = grad_of(log_softmax_select(
                x.clone(),
                id_tensor(&ids, rows, &ad),
                scale,
                rest,
            ));
            let want = grad_of(composed(x.clone(), id_tensor(&ids, rows, &ad), scale, rest));
            let err = worst(&got, &want);
            assert!(
                err < 1e-5,
                "{name} [{rows}, {v}] k={k} scale={scale} rest={rest}: ∂x max error {err:e}"
            );
        }
    }
}

#[test]
fn repeated_ids_and_rows_with_every_class_listed_match_the_composition() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        // Row 0 lists id 2 twice; row 1 lists all four classes (empty rest: −∞, no NaN).
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![0.5f32, -1.0, 2.0, 0.0, 1.0, 3.0, -2.0, 0.25], [2, 4]),
            &ad,
        )
        .require_grad();
        let ids = [2i64, 2, 0, 1, 3, 0, 2, 1, 0, 0][..8].to_vec();
        let w = Tensor::<2>::from_data(
            TensorData::new(
                vec![1.0f32, -0.5, 2.0, 0.3, 0.7, 1.5, -1.0, 0.2, 0.9, 1.1],
                [2, 5],
            ),
            &ad,
        );
        let run = |f: fn(Tensor<2>, Tensor<2, Int>, f64, bool) -> Tensor<2>, rest: bool| {
            let y = f(x.clone(), id_tensor(&ids, 2, &ad), 0.8, rest);
            let w = w.clone().narrow(1, 0, 4 + usize::from(rest));
            let grads = (y.clone().mask_fill(y.clone().is_inf(), 0.0) * w)
                .sum()
                .backward();
            (values(y), values(x.grad(&grads).unwrap()))
        };
        let (got, got_grad) = run(log_softmax_select, true);
        let (want, want_grad) = run(composed, true);
        assert_eq!(got[9], f32::NEG_INFINITY, "{name}: empty rest");
        assert!(
            got_grad.iter().all(|g| g.is_finite()),
            "{name}: {got_grad:?}"
        );
        assert!(worst(&got, &want) < 1e-6, "{name}: {got:?} vs {want:?}");
        // Row 0 against the composition; row 1 (whose composed gradient is NaN: the log of an
        // empty sum) against the same ids without the rest column.
        assert!(
            worst(&got_grad[..4], &want_grad[..4]) < 1e-5,
            "{name}: {got_grad:?} vs {want_grad:?}"
        );
        let (_, no_rest) = run(composed, false);
        assert!(
            worst(&got_grad[4..], &no_rest[4..]) < 1e-5,
            "{name}: {got_grad:?} vs {no_rest:?}"
        );
    }
}

#[test]
fn backward_matches_finite_differences_of_the_f64_values() {
    let (rows, v, k) = (3usize, 9usize, 2usize);
    let xs: Vec<f32> = (0..rows * v)
        .map(|i| (i as f32 * 0.71).sin() * 3.0)
        .collect();
    let ids = distinct_ids(rows, v, k, 5);
    let ws: Vec<f64> = (0..rows * (k + 1))
        .map(|i| (i as f64 * 0.29).cos())
        .collect();
    let scale = 0.7;
    let loss = |x: &[f32]| -> f64 {
        reference(x, v, &ids, scale, true)
            .iter()
            .zip(&ws)
            .map(|(y, w)| y * w)
            .sum()
    };
    for (name, device) in devices() {
        let ad = device.autodiff();
        let x = Tensor::<2>::from_data(TensorData::new(xs.clone(), [rows, v]), &ad).require_grad();
        let w = Tensor::<2>::from_data(
            TensorData::new(
                ws.iter().map(|&w| w as f32).collect::<Vec<_>>(),
                [rows, k + 1],
            ),
            &ad,
        );
        let y = log_softmax_select(x.clone(), id_tensor(&ids, rows, &ad), scale, true);
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
    let (rows, v, k) = (30usize, 500usize, 8usize);
    let xs: Vec<f64> = (0..rows * v)
        .map(|i| (i as f64 * 0.37).sin() * 5.0)
        .collect();
    let ids = distinct_ids(rows, v, k, 3);
    let ws: Vec<f64> = (0..rows * (k + 1))
        .map(|i| (i as f64 * 0.13).cos())
        .collect();
    for (name, device) in devices() {
        let ad = device.autodiff();
        for rest in [true, false] {
            let width = k + usize::from(rest);
            let run = |f64_tensors: bool| {
                let dtype = if f64_tensors { DType::F64 } else { DType::F32 };
                let x =
                    Tensor::<2>::from_data(TensorData::new(xs.clone(), [rows, v]), (&ad, dtype))
                        .require_grad();
                let y = log_softmax_select(x.clone(), id_tensor(&ids, rows, &ad), 1.5, rest);
                assert_eq!(y.dtype() == DType::F64, f64_tensors);
                let w: Vec<f64> = ws.chunks(k + 1).flat_map(|r| r[..width].to_vec()).collect();
                let w = Tensor::<2>::from_data(TensorData::new(w, [rows, width]), (&ad, dtype));
                let grads = (y.clone() * w).sum().backward();
                [values(y), values(x.grad(&grads).unwrap())]
            };
            let (host, portable) = (run(false), run(true));
            for (what, (h, p)) in ["values", "∂x"].into_iter().zip(host.iter().zip(&portable)) {
                let err = worst(h, p);
                assert!(
                    err < 1e-5,
                    "{name} rest={rest}: {what} host vs portable, max error {err:e}"
                );
            }
        }
    }
}

#[test]
fn rows_with_nan_or_infinite_logits_give_nan() {
    for (name, device) in devices() {
        let x = Tensor::<2>::from_data(
            TensorData::new(
                vec![
                    0.0f32,
                    f32::NAN,
                    1.0,
                    0.0,
                    f32::INFINITY,
                    1.0,
                    f32::NEG_INFINITY,
                    f32::NEG_INFINITY,
                    f32::NEG_INFINITY,
                    0.0,
                    1.0,
                    2.0,
                ],
                [4, 3],
            ),
            &device,
        );
        let ids = id_tensor(&[2, 2, 2, 2], 4, &device);
        let got = values(log_softmax_select(x, ids, 1.0, true));
        assert!(got[..6].iter().all(|v| v.is_nan()), "{name}: {got:?}");
        assert!(got[6..].iter().all(|v| v.is_finite()), "{name}: {got:?}");
    }
}

#[test]
#[should_panic(expected = "`ids` [3, 2] must have the 2 rows of `logits` [2, 5]")]
fn ids_with_other_rows_are_rejected() {
    let device = Device::flex();
    let x = Tensor::<2>::zeros([2, 5], &device);
    log_softmax_select(x, Tensor::<2, Int>::zeros([3, 2], &device), 1.0, true);
}

#[test]
#[should_panic(expected = "`ids` [1, 2] holds 5 at flat index 1, outside 0..5")]
fn an_id_outside_the_classes_is_rejected() {
    let device = Device::flex();
    let x = Tensor::<2>::zeros([1, 5], &device);
    log_softmax_select(x, id_tensor(&[0, 5], 1, &device), 1.0, false);
}

#[test]
#[should_panic(expected = "`scale` must be finite and positive, got 0")]
fn a_zero_scale_is_rejected() {
    let device = Device::flex();
    let x = Tensor::<2>::zeros([1, 5], &device);
    log_softmax_select(x, id_tensor(&[0], 1, &device), 0.0, false);
}

#[test]
#[should_panic(expected = "nothing to compute")]
fn no_ids_without_the_rest_is_rejected() {
    let device = Device::flex();
    let x = Tensor::<2>::zeros([1, 5], &device);
    log_softmax_select(x, Tensor::<2, Int>::zeros([1, 0], &device), 1.0, false);
}
