//! `dropout` / `dropout_keyed`: the host path of flex/ndarray against the mask definition
//! (`models::dropout::keep`) and the portable body (f64 tensors take it), strided inputs, the
//! keep rate and independence of the mask, the backward (the same mask, by finite differences
//! too), independence of the thread count, the layer's drop rate, the identity cases and bad
//! probabilities.

use burn::nn::DropoutConfig;
use burn::tensor::{DType, Distribution, Tensor, TensorData};
use models::dropout::keep;
use models::{dropout, dropout_keyed};

use crate::common::devices;

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// `x_i / (1 − p)` where the mask keeps `i`, else 0, computed from the definition.
fn expected(x: &[f32], key: u64, prob: f64) -> Vec<f32> {
    let scale = (1.0 / (1.0 - prob)) as f32;
    x.iter()
        .enumerate()
        .map(|(i, v)| {
            if keep(key, i as u32, prob) {
                v * scale
            } else {
                0.0
            }
        })
        .collect()
}

#[test]
fn host_path_matches_the_mask_definition_and_the_portable_body() {
    for (name, device) in devices() {
        // 3·50·700 = 105 000 elements: several parallel chunks and a ragged last one.
        let x = Tensor::<3>::random([3, 50, 700], Distribution::Normal(0.0, 2.0), &device);
        let xs = values(x.clone());
        for (key, prob) in [(7u64, 0.1), (0xDEAD_BEEF_0123_4567, 0.5), (u64::MAX, 0.9)] {
            let got = values(dropout_keyed(x.clone(), key, prob));
            assert_eq!(
                got,
                expected(&xs, key, prob),
                "{name}: key {key:#x}, p {prob}"
            );
            // f64 tensors take the portable body (the mask uploaded, one multiplication).
            let x64 = Tensor::<3>::from_data(
                TensorData::new(xs.iter().map(|&v| v as f64).collect(), [3, 50, 700]),
                (&device, DType::F64),
            );
            let y64 = dropout_keyed(x64, key, prob);
            assert_eq!(y64.dtype(), DType::F64);
            let portable = values(y64);
            let worst = got
                .iter()
                .zip(&portable)
                .map(|(a, b)| (a - b).abs() / a.abs().max(1.0))
                .fold(0.0f32, f32::max);
            assert!(
                worst < 1e-6,
                "{name}: host vs portable, max error {worst:e}"
            );
        }
    }
}

#[test]
fn strided_inputs_are_masked_in_logical_row_major_order() {
    for (name, device) in devices() {
        let x = Tensor::<3>::random([4, 30, 20], Distribution::Normal(0.0, 1.0), &device);
        for (layout, view) in [
            ("transposed", x.clone().swap_dims(0, 2)),
            ("sliced", x.clone().slice([1..4, 3..27, 2..18])),
        ] {
            let dense = Tensor::<3>::from_data(view.clone().into_data(), &device);
            assert_eq!(
                values(dropout_keyed(view, 99, 0.3)),
                values(dropout_keyed(dense, 99, 0.3)),
                "{name} {layout}"
            );
        }
    }
}

#[test]
fn keep_rate_and_pairs_match_independent_bernoulli_draws() {
    let n = 1_000_000u32;
    for prob in [0.1f64, 0.25, 0.5, 0.9] {
        for key in [0u64, 1, 0x0123_4567_89AB_CDEF] {
            let kept: Vec<bool> = (0..n).map(|i| keep(key, i, prob)).collect();
            let q = 1.0 - prob;
            let count = kept.iter().filter(|&&k| k).count() as f64;
            let sd = (n as f64 * q * prob).sqrt();
            assert!(
                (count - n as f64 * q).abs() < 5.0 * sd,
                "p {prob}, key {key}: kept {count} of {n}"
            );
            // Neighbours (and elements a row of 384 apart) are kept together (1 − p)² of the time.
            for lag in [1usize, 384] {
                let both = kept
                    .iter()
                    .zip(&kept[lag..])
                    .filter(|(a, b)| **a && **b)
                    .count() as f64;
                let m = (n as usize - lag) as f64;
                let sd = (m * q * q * (1.0 - q * q)).sqrt();
                assert!(
                    (both - m * q * q).abs() < 6.0 * sd,
                    "p {prob}, key {key}, lag {lag}: both kept {both} of {m}"
                );
            }
        }
        // Two keys give unrelated masks.
        let agree = (0..n)
            .filter(|&i| keep(11, i, prob) == keep(12, i, prob))
            .count() as f64;
        let p_agree = prob * prob + (1.0 - prob) * (1.0 - prob);
        let sd = (n as f64 * p_agree * (1.0 - p_agree)).sqrt();
        assert!((agree - n as f64 * p_agree).abs() < 5.0 * sd, "p {prob}");
    }
}

#[test]
fn backward_applies_the_same_mask_to_the_gradient() {
    for (name, device) in devices() {
        let ad = device.clone().autodiff();
        let x = Tensor::<2>::random([40, 900], Distribution::Normal(0.0, 1.0), &ad)
            .detach()
            .require_grad();
        let w = Tensor::<2>::random([40, 900], Distribution::Normal(0.0, 1.0), &ad);
        let grads = (dropout_keyed(x.clone(), 5, 0.4) * w.clone())
            .sum()
            .backward();
        let got = values(x.grad(&grads).expect("x has a gradient"));
        assert_eq!(got, expected(&values(w), 5, 0.4), "{name}");
    }
}

#[test]
fn backward_matches_finite_differences() {
    for (name, device) in devices() {
        let ad = device.clone().autodiff();
        let points: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin() * 2.0).collect();
        let weights: Vec<f32> = (0..64).map(|i| (i as f32 * 0.11).cos()).collect();
        let w = Tensor::<1>::from_floats(weights.as_slice(), &device);
        let loss = |x: Tensor<1>, w: Tensor<1>| (dropout_keyed(x, 3, 0.5) * w).sum();
        let x = Tensor::<1>::from_floats(points.as_slice(), &ad).require_grad();
        let grads = loss(x.clone(), Tensor::from_floats(weights.as_slice(), &ad)).backward();
        let analytic = values(x.grad(&grads).unwrap());
        let h = 1e-2f32;
        for i in 0..points.len() {
            let at = |shift: f32| {
                let mut p = points.clone();
                p[i] += shift;
                loss(Tensor::from_floats(p.as_slice(), &device), w.clone()).into_scalar::<f32>()
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            assert!(
                (numeric - analytic[i]).abs() < 1e-3,
                "{name}: element {i}: analytic {}, finite difference {numeric}",
                analytic[i]
            );
        }
    }
}

#[test]
fn the_mask_does_not_depend_on_the_thread_count() {
    for (name, device) in devices() {
        let x = Tensor::<2>::random([300, 384], Distribution::Normal(0.0, 1.0), &device);
        let all = values(dropout_keyed(x.clone(), 17, 0.1));
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| values(dropout_keyed(x, 17, 0.1)));
        assert_eq!(all, one_thread, "{name}");
    }
}

#[test]
fn the_layer_drops_with_its_probability_and_scales_the_rest() {
    let layer = DropoutConfig::new(0.1).init();
    for (name, device) in devices() {
        let ad = device.autodiff();
        let got = values(dropout(&layer, Tensor::<2>::ones([64, 384], &ad)));
        let zeros = got.iter().filter(|v| **v == 0.0).count();
        // 24 576 draws at p = 0.1: mean 2458, sd 47.
        assert!(
            (2200..2720).contains(&zeros),
            "{name}: {zeros} of 24576 dropped"
        );
        let scale = (1.0f64 / 0.9) as f32;
        assert!(
            got.iter().all(|v| *v == 0.0 || *v == scale),
            "{name}: kept values are 1/(1 − p)"
        );
    }
}

#[test]
fn identity_without_autodiff_at_zero_probability_and_when_frozen() {
    for (name, device) in devices() {
        let x = Tensor::<2>::random([8, 16], Distribution::Normal(0.0, 1.0), &device);
        let layer = DropoutConfig::new(0.5).init();
        assert_eq!(
            values(dropout(&layer, x.clone())),
            values(x.clone()),
            "{name}: inference"
        );
        let ad = device.autodiff();
        let xa = Tensor::<2>::from_data(x.clone().into_data(), &ad);
        let zero = DropoutConfig::new(0.0).init();
        assert_eq!(
            values(dropout(&zero, xa.clone())),
            values(x.clone()),
            "{name}: p = 0"
        );
        let mut frozen = DropoutConfig::new(0.5).init();
        frozen.training = frozen.training.with_value(false);
        assert_eq!(values(dropout(&frozen, xa)), values(x), "{name}: frozen");
    }
}

#[test]
fn bad_probabilities_are_rejected_naming_prob() {
    for prob in [1.0f64, -0.1, f64::NAN, f64::INFINITY] {
        let result = std::panic::catch_unwind(|| {
            dropout_keyed(
                Tensor::<1>::ones([4], &burn::tensor::Device::flex()),
                1,
                prob,
            )
        });
        let message = result.expect_err("a bad probability must panic");
        let text = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            text.contains("`prob`") && text.contains("[0, 1)"),
            "{prob}: {text}"
        );
    }
}
