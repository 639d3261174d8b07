//! Value, property, gradient and bad-input tests of `cka-kernels` on every compiled-in device.
#![allow(deprecated)]

use burn::nn::loss::Reduction;
use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};
use cka_kernels::{
    linear_cka, top_k_cka, top_k_cka_reference, CkaError, CkaImplementation, KSchedule,
    TopKCkaLossConfig, TopKCkaSpec,
};
use serde_json::Value;

/// Every device this build can run the ops on (plain, not autodiff).
#[allow(clippy::vec_init_then_push)] // the pushes are feature-gated
fn devices() -> Vec<(&'static str, Device)> {
    let mut out = Vec::new();
    #[cfg(feature = "ndarray")]
    out.push(("ndarray", Device::ndarray()));
    #[cfg(feature = "flex")]
    out.push(("flex", Device::flex()));
    #[cfg(feature = "wgpu")]
    out.push(("wgpu", Device::wgpu(Default::default())));
    assert!(!out.is_empty(), "no backend feature enabled");
    out
}

/// Devices that support float64 (the CPU backends): used for finite differences.
fn f64_devices() -> Vec<(&'static str, Device)> {
    devices()
        .into_iter()
        .filter(|(name, _)| *name != "wgpu")
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("integer") as usize)
        .collect()
}

fn tensor<const D: usize>(values: Vec<f64>, shape: [usize; D], device: &Device) -> Tensor<D> {
    let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn tensor_f64<const D: usize>(values: Vec<f64>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), (device, DType::F64))
}

fn host(t: Tensor<2>) -> Vec<f64> {
    t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
}

fn host1(t: Tensor<1>) -> Vec<f64> {
    t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
}

fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs() / w.abs().max(1.0);
        assert!(
            err <= tol,
            "{what}[{i}]: got {g}, want {w} (rel err {err:e} > {tol:e})"
        );
    }
}

fn fixtures() -> Value {
    serde_json::from_str(include_str!("fixtures/cka_fixtures.json")).expect("fixture JSON")
}

fn schedule_of(v: &Value) -> KSchedule {
    if let Some(ks) = v.get("explicit") {
        KSchedule::Explicit(usizes(ks))
    } else {
        KSchedule::Gammas {
            gammas: floats(&v["gammas"]),
            k_min: v["k_min"].as_u64().unwrap() as usize,
        }
    }
}

struct TopKCase {
    hidden: Vec<f64>,
    shape: [usize; 3],
    mask: Vec<f64>,
    scores: Vec<f64>,
    spec: TopKCkaSpec,
    expected: Vec<f64>,
}

fn top_k_cases() -> Vec<TopKCase> {
    fixtures()["top_k"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| {
            let s = usizes(&case["shape"]);
            TopKCase {
                hidden: floats(&case["hidden"]),
                shape: [s[0], s[1], s[2]],
                mask: floats(&case["mask"]),
                scores: floats(&case["scores"]),
                spec: TopKCkaSpec::new()
                    .with_dims(usizes(&case["dims"]))
                    .with_schedule(schedule_of(&case["schedule"])),
                expected: case["expected"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(floats)
                    .collect(),
            }
        })
        .collect()
}

type TopKFn = fn(Tensor<3>, Tensor<2>, Tensor<2>, &TopKCkaSpec) -> Result<Tensor<2>, CkaError>;

const IMPLEMENTATIONS: [(&str, TopKFn); 2] =
    [("fused", top_k_cka), ("reference", top_k_cka_reference)];

// ---------------------------------------------------------------- values vs NumPy float64

#[test]
fn linear_cka_matches_numpy_fixtures() {
    for (name, device) in devices() {
        for (c, case) in fixtures()["linear"].as_array().unwrap().iter().enumerate() {
            let xs = usizes(&case["x_shape"]);
            let ys = usizes(&case["y_shape"]);
            let x = tensor(floats(&case["x"]), [xs[0], xs[1], xs[2]], &device);
            let y = tensor(floats(&case["y"]), [ys[0], ys[1], ys[2]], &device);
            let mask = (!case["mask"].is_null())
                .then(|| tensor(floats(&case["mask"]), [xs[0], xs[1]], &device));
            let got = host1(linear_cka(x, y, mask).unwrap());
            assert_close(
                &format!("{name} linear case {c}"),
                &got,
                &floats(&case["expected"]),
                1e-4,
            );
        }
    }
}

#[test]
fn top_k_cka_matches_numpy_fixtures() {
    for (name, device) in devices() {
        for (c, case) in top_k_cases().into_iter().enumerate() {
            let [b, m, _] = case.shape;
            for (imp, f) in IMPLEMENTATIONS {
                let got = f(
                    tensor(case.hidden.clone(), case.shape, &device),
                    tensor(case.mask.clone(), [b, m], &device),
                    tensor(case.scores.clone(), [b, m], &device),
                    &case.spec,
                )
                .unwrap();
                assert_eq!(got.dims(), [b, case.spec.dims.len()]);
                assert_close(
                    &format!("{name} {imp} top-k case {c}"),
                    &host(got),
                    &case.expected,
                    1e-4,
                );
            }
        }
    }
}

#[test]
fn top_k_cka_matches_numpy_in_float64() {
    for (name, device) in f64_devices() {
        for (c, case) in top_k_cases().into_iter().enumerate() {
            let [b, m, _] = case.shape;
            for (imp, f) in IMPLEMENTATIONS {
                let got = f(
                    tensor_f64(case.hidden.clone(), case.shape, &device),
                    tensor_f64(case.mask.clone(), [b, m], &device),
                    tensor_f64(case.scores.clone(), [b, m], &device),
                    &case.spec,
                )
                .unwrap();
                assert_close(
                    &format!("{name} {imp} f64 case {c}"),
                    &host(got),
                    &case.expected,
                    1e-10,
                );
            }
        }
    }
}

// ---------------------------------------------------------------- properties

fn random3(shape: [usize; 3], device: &Device) -> Tensor<3> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// A random orthogonal `d × d` matrix: a product of Householder reflections, built on the host.
fn orthogonal(d: usize, seed: u64, device: &Device) -> Tensor<2> {
    let mut q = vec![0.0f64; d * d];
    for i in 0..d {
        q[i * d + i] = 1.0;
    }
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    };
    for _ in 0..3 {
        let v: Vec<f64> = (0..d).map(|_| next()).collect();
        let vv: f64 = v.iter().map(|x| x * x).sum();
        // q <- q (I - 2 v vᵀ / vᵀv)
        let mut out = q.clone();
        for r in 0..d {
            let qv: f64 = (0..d).map(|k| q[r * d + k] * v[k]).sum();
            for c in 0..d {
                out[r * d + c] -= 2.0 * qv * v[c] / vv;
            }
        }
        q = out;
    }
    tensor(q, [d, d], device)
}

#[test]
fn linear_cka_properties() {
    for (name, device) in devices() {
        let x = random3([3, 12, 6], &device);
        let y = random3([3, 12, 5], &device);
        // CKA(X, X) = 1
        assert_close(
            &format!("{name} self"),
            &host1(linear_cka(x.clone(), x.clone(), None).unwrap()),
            &[1.0; 3],
            1e-5,
        );
        let base = host1(linear_cka(x.clone(), y.clone(), None).unwrap());
        // symmetry
        assert_close(
            &format!("{name} symmetry"),
            &host1(linear_cka(y.clone(), x.clone(), None).unwrap()),
            &base,
            1e-5,
        );
        // orthogonal transforms and isotropic scaling of either side
        let q = orthogonal(6, 7, &device)
            .unsqueeze_dim::<3>(0)
            .repeat_dim(0, 3);
        let xq = x.clone().matmul(q) * 3.5;
        assert_close(
            &format!("{name} invariance"),
            &host1(linear_cka(xq, y.clone() * 0.2, None).unwrap()),
            &base,
            1e-4,
        );
        // range
        assert!(
            base.iter().all(|v| (0.0..=1.0).contains(v)),
            "{name}: {base:?} outside [0, 1]"
        );
        // padding rows do not matter, whatever they hold
        let mask = tensor(
            (0..3 * 12)
                .map(|i| if i % 12 < 9 { 1.0 } else { 0.0 })
                .collect(),
            [3, 12],
            &device,
        );
        let garbage = random3([3, 12, 6], &device) * 100.0;
        let keep = mask.clone().unsqueeze_dim::<3>(2);
        let x_noisy = x.clone() * keep.clone() + garbage * (keep.neg() + 1.0);
        let clean = host1(
            linear_cka(
                x.clone().slice([0..3, 0..9, 0..6]),
                y.clone().slice([0..3, 0..9, 0..5]),
                None,
            )
            .unwrap(),
        );
        let masked = host1(linear_cka(x_noisy, y, Some(mask)).unwrap());
        assert_close(&format!("{name} padding"), &masked, &clean, 1e-4);
    }
}

#[test]
fn top_k_cka_properties() {
    for (name, device) in devices() {
        let (b, m, d) = (2, 16, 24);
        let hidden = random3([b, m, d], &device);
        let mask = Tensor::<2>::ones([b, m], &device);
        let scores = Tensor::<2>::random([b, m], Distribution::Default, &device);
        let spec = TopKCkaSpec::new()
            .with_dims(vec![6, 12, 24])
            .with_schedule(KSchedule::Gammas {
                gammas: vec![0.5, 0.75, 1.0],
                k_min: 4,
            });
        for (imp, f) in IMPLEMENTATIONS {
            let base = host(f(hidden.clone(), mask.clone(), scores.clone(), &spec).unwrap());
            // d = D compares the states with themselves: CKA = 1
            assert!(
                (base[2] - 1.0).abs() < 1e-5 && (base[5] - 1.0).abs() < 1e-5,
                "{name} {imp}: {base:?}"
            );
            assert!(
                base.iter().all(|v| (-1e-6..=1.0 + 1e-6).contains(v)),
                "{name} {imp}: {base:?}"
            );
            // isotropic scaling of the whole state leaves every CKA unchanged
            let scaled =
                host(f(hidden.clone() * 4.0, mask.clone(), scores.clone(), &spec).unwrap());
            assert_close(&format!("{name} {imp} scale"), &scaled, &base, 1e-4);
            // an orthogonal transform of all features that preserves the prefix blocks:
            // rotate features within (12, 24] only — X for d = 6, 12 is unchanged, Y is rotated
            let q = orthogonal(12, 3, &device);
            let tail = hidden
                .clone()
                .slice([0..b, 0..m, 12..24])
                .matmul(q.unsqueeze_dim::<3>(0).repeat_dim(0, b));
            let rotated = Tensor::cat(vec![hidden.clone().slice([0..b, 0..m, 0..12]), tail], 2);
            let got = host(f(rotated, mask.clone(), scores.clone(), &spec).unwrap());
            assert_close(&format!("{name} {imp} rotation"), &got, &base, 1e-4);
        }
    }
}

// ---------------------------------------------------------------- gradients

/// Loss `Σ c_{b,i} CKA[b,i]` with fixed weights, on the given device, as f64 on the host.
fn weighted(cka: Tensor<2>, weights: &Tensor<2>) -> Tensor<1> {
    (cka * weights.clone()).sum()
}

fn grad_of(
    f: TopKFn,
    hidden: Tensor<3>,
    mask: &Tensor<2>,
    scores: &Tensor<2>,
    spec: &TopKCkaSpec,
    weights: &Tensor<2>,
) -> Vec<f64> {
    let hidden = hidden.require_grad();
    let loss = weighted(
        f(hidden.clone(), mask.clone(), scores.clone(), spec).unwrap(),
        weights,
    );
    let grads = loss.backward();
    hidden
        .grad(&grads)
        .expect("hidden has a gradient")
        .into_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .unwrap()
}

struct GradCase {
    shape: [usize; 3],
    hidden: Vec<f64>,
    mask: Vec<f64>,
    scores: Vec<f64>,
    weights: Vec<f64>,
    spec: TopKCkaSpec,
}

fn grad_case(detach_teacher: bool) -> GradCase {
    let case = &top_k_cases()[2]; // padding, ties, k_min above some real lengths
    let [b, m, d] = case.shape;
    let n = case.spec.dims.len();
    GradCase {
        shape: [b, m, d],
        hidden: case.hidden.clone(),
        mask: case.mask.clone(),
        scores: case.scores.clone(),
        weights: (0..b * n).map(|i| 0.3 + 0.17 * (i % 5) as f64).collect(),
        spec: case.spec.clone().with_detach_teacher(detach_teacher),
    }
}

#[test]
fn gradients_match_finite_differences_in_float64() {
    for (name, device) in f64_devices() {
        let device = device.autodiff();
        {
            let g = grad_case(false);
            let [b, m, d] = g.shape;
            let n = g.spec.dims.len();
            let mask = tensor_f64(g.mask.clone(), [b, m], &device);
            let scores = tensor_f64(g.scores.clone(), [b, m], &device);
            let weights = tensor_f64(g.weights.clone(), [b, n], &device);
            for (imp, f) in IMPLEMENTATIONS {
                let analytic = grad_of(
                    f,
                    tensor_f64(g.hidden.clone(), g.shape, &device),
                    &mask,
                    &scores,
                    &g.spec,
                    &weights,
                );
                let eval = |h: Vec<f64>| -> f64 {
                    let spec = g.spec.clone();
                    let cka = f(
                        tensor_f64(h, g.shape, &device),
                        mask.clone(),
                        scores.clone(),
                        &spec,
                    )
                    .unwrap();
                    host1(weighted(cka, &weights).reshape([1]))[0]
                };
                let step = 1e-6;
                for idx in (0..b * m * d).step_by(7) {
                    let mut plus = g.hidden.clone();
                    plus[idx] += step;
                    let mut minus = g.hidden.clone();
                    minus[idx] -= step;
                    let numeric = (eval(plus) - eval(minus)) / (2.0 * step);
                    let err = (analytic[idx] - numeric).abs();
                    assert!(
                        err <= 1e-6 * numeric.abs().max(1.0),
                        "{name} {imp}: d/dH[{idx}] analytic {} vs numeric {numeric}",
                        analytic[idx]
                    );
                }
            }
        }
    }
}

#[test]
fn fused_and_reference_agree_on_values_and_gradients() {
    for (name, device) in devices() {
        let device = device.autodiff();
        for detach in [false, true] {
            let g = grad_case(detach);
            let [b, m, _] = g.shape;
            let n = g.spec.dims.len();
            let mask = tensor(g.mask.clone(), [b, m], &device);
            let scores = tensor(g.scores.clone(), [b, m], &device);
            let weights = tensor(g.weights.clone(), [b, n], &device);
            let fused = grad_of(
                top_k_cka,
                tensor(g.hidden.clone(), g.shape, &device),
                &mask,
                &scores,
                &g.spec,
                &weights,
            );
            let reference = grad_of(
                top_k_cka_reference,
                tensor(g.hidden.clone(), g.shape, &device),
                &mask,
                &scores,
                &g.spec,
                &weights,
            );
            let scale = reference.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            for (i, (f, r)) in fused.iter().zip(&reference).enumerate() {
                assert!(
                    (f - r).abs() <= 1e-4 * scale.max(1e-3),
                    "{name} detach={detach}: grad[{i}] fused {f} vs reference {r} (scale {scale})"
                );
            }
            if detach {
                // detaching the teacher changes the gradient
                let full = grad_of(
                    top_k_cka,
                    tensor(g.hidden.clone(), g.shape, &device),
                    &mask,
                    &scores,
                    &g.spec.clone().with_detach_teacher(false),
                    &weights,
                );
                let diff = full
                    .iter()
                    .zip(&fused)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(diff > 1e-3 * scale, "{name}: detach_teacher had no effect");
            }
        }
    }
}

#[test]
fn linear_cka_gradient_matches_finite_differences() {
    for (name, device) in f64_devices() {
        let device = device.autodiff();
        let case = &fixtures()["linear"][1];
        let xs = usizes(&case["x_shape"]);
        let ys = usizes(&case["y_shape"]);
        let xv = floats(&case["x"]);
        let y = tensor_f64(floats(&case["y"]), [ys[0], ys[1], ys[2]], &device);
        let mask = tensor_f64(floats(&case["mask"]), [xs[0], xs[1]], &device);
        let x = tensor_f64(xv.clone(), [xs[0], xs[1], xs[2]], &device).require_grad();
        let grads = linear_cka(x.clone(), y.clone(), Some(mask.clone()))
            .unwrap()
            .sum()
            .backward();
        let analytic = x
            .grad(&grads)
            .unwrap()
            .into_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .unwrap();
        let eval = |v: Vec<f64>| {
            host1(
                linear_cka(
                    tensor_f64(v, [xs[0], xs[1], xs[2]], &device),
                    y.clone(),
                    Some(mask.clone()),
                )
                .unwrap()
                .sum()
                .reshape([1]),
            )[0]
        };
        for idx in 0..xv.len() {
            let step = 1e-6;
            let mut p = xv.clone();
            p[idx] += step;
            let mut q = xv.clone();
            q[idx] -= step;
            let numeric = (eval(p) - eval(q)) / (2.0 * step);
            assert!(
                (analytic[idx] - numeric).abs() <= 1e-6 * numeric.abs().max(1.0),
                "{name}: dX[{idx}] {} vs {numeric}",
                analytic[idx]
            );
        }
    }
}

// ---------------------------------------------------------------- degenerate and bad input

#[test]
fn zero_variance_and_single_token_give_zero_not_nan() {
    for (name, device) in devices() {
        let constant = Tensor::<3>::ones([2, 6, 8], &device) * 3.0;
        let other = random3([2, 6, 8], &device);
        let v = host1(linear_cka(constant.clone(), other.clone(), None).unwrap());
        assert_eq!(v, vec![0.0, 0.0], "{name}: constant rows");
        let v = host1(linear_cka(constant.clone(), constant.clone(), None).unwrap());
        assert_eq!(v, vec![0.0, 0.0], "{name}: constant rows on both sides");
        // an example with one real token keeps k = 1: CKA is 0 there, finite gradients everywhere
        let autodiff = device.clone().autodiff();
        let mut mask = vec![1.0; 12];
        for v in mask.iter_mut().skip(7) {
            *v = 0.0; // example 1 has exactly one real token
        }
        let mask = tensor(mask, [2, 6], &autodiff);
        let scores = Tensor::<2>::random([2, 6], Distribution::Default, &autodiff);
        let spec = TopKCkaSpec::new()
            .with_dims(vec![4])
            .with_schedule(KSchedule::Explicit(vec![5]));
        for (imp, f) in IMPLEMENTATIONS {
            let h = random3([2, 6, 8], &autodiff).require_grad();
            let cka = f(h.clone(), mask.clone(), scores.clone(), &spec).unwrap();
            let values = host(cka.clone());
            assert_eq!(values[1], 0.0, "{name} {imp}: {values:?}");
            let grad = h
                .grad(&cka.sum().backward())
                .unwrap()
                .into_data()
                .convert::<f64>()
                .into_vec::<f64>()
                .unwrap();
            assert!(
                grad.iter().all(|g| g.is_finite()),
                "{name} {imp}: non-finite gradient"
            );
        }
    }
}

fn expect_err(result: Result<Tensor<2>, CkaError>, needle: &str) {
    match result {
        Ok(_) => panic!("expected an error mentioning {needle:?}"),
        Err(err) => {
            let msg = err.to_string();
            assert!(
                msg.contains(needle),
                "error {msg:?} does not mention {needle:?}"
            );
        }
    }
}

#[test]
fn bad_inputs_are_named_errors() {
    let device = devices()[0].1.clone();
    let h = random3([2, 5, 8], &device);
    let mask = Tensor::<2>::ones([2, 5], &device);
    let scores = Tensor::<2>::zeros([2, 5], &device);
    let spec = |dims: Vec<usize>, ks: Vec<usize>| {
        TopKCkaSpec::new()
            .with_dims(dims)
            .with_schedule(KSchedule::Explicit(ks))
    };
    let ok = spec(vec![2, 4], vec![3, 3]);
    for f in [top_k_cka as TopKFn, top_k_cka_reference] {
        expect_err(
            f(
                h.clone(),
                Tensor::ones([3, 5], &device),
                scores.clone(),
                &ok,
            ),
            "mask",
        );
        expect_err(
            f(h.clone(), mask.clone(), Tensor::zeros([2, 4], &device), &ok),
            "[2, 4]",
        );
        expect_err(
            f(
                h.clone(),
                mask.clone(),
                scores.clone(),
                &spec(vec![4, 2], vec![3, 3]),
            ),
            "strictly increasing",
        );
        expect_err(
            f(
                h.clone(),
                mask.clone(),
                scores.clone(),
                &spec(vec![4, 4], vec![3, 3]),
            ),
            "strictly increasing",
        );
        expect_err(
            f(
                h.clone(),
                mask.clone(),
                scores.clone(),
                &spec(vec![2, 9], vec![3, 3]),
            ),
            "exceeds the hidden width D = 8",
        );
        expect_err(
            f(
                h.clone(),
                mask.clone(),
                scores.clone(),
                &spec(vec![], vec![]),
            ),
            "no dims",
        );
        expect_err(
            f(
                h.clone(),
                mask.clone(),
                scores.clone(),
                &spec(vec![2, 4], vec![3]),
            ),
            "1 ks for 2 dims",
        );
        let gammas = TopKCkaSpec::new()
            .with_dims(vec![2, 4])
            .with_schedule(KSchedule::Gammas {
                gammas: vec![0.5],
                k_min: 2,
            });
        expect_err(
            f(h.clone(), mask.clone(), scores.clone(), &gammas),
            "1 gammas for 2 dims",
        );
        let bad_gamma = TopKCkaSpec::new()
            .with_dims(vec![2, 4])
            .with_schedule(KSchedule::Gammas {
                gammas: vec![0.5, 1.5],
                k_min: 2,
            });
        expect_err(
            f(h.clone(), mask.clone(), scores.clone(), &bad_gamma),
            "(0, 1]",
        );
        let padded = tensor(
            vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [2, 5],
            &device,
        );
        expect_err(
            f(h.clone(), padded, scores.clone(), &ok),
            "example 1 is all padding",
        );
        let fuzzy = tensor(
            vec![1.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            [2, 5],
            &device,
        );
        expect_err(f(h.clone(), fuzzy, scores.clone(), &ok), "mask[0, 1] = 0.5");
        let nan = tensor(
            vec![0.0, f64::NAN, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [2, 5],
            &device,
        );
        expect_err(f(h.clone(), mask.clone(), nan, &ok), "token 1 of example 0");
    }
    let err = linear_cka(h.clone(), random3([2, 4, 8], &device), None).unwrap_err();
    assert!(
        err.to_string().contains("x [2, 5, 8], y [2, 4, 8]"),
        "{err}"
    );
    let err = linear_cka(h.clone(), h.clone(), Some(Tensor::zeros([2, 5], &device))).unwrap_err();
    assert!(err.to_string().contains("all padding"), "{err}");
    let err = linear_cka(h.clone(), h.clone(), Some(Tensor::ones([2, 6], &device))).unwrap_err();
    assert!(err.to_string().contains("mask [2, 6]"), "{err}");
}

// ---------------------------------------------------------------- loss module

#[test]
fn loss_module_reductions_and_panics() {
    for (name, device) in devices() {
        let hidden = random3([3, 10, 16], &device);
        let mask = Tensor::<2>::ones([3, 10], &device);
        let scores = Tensor::<2>::random([3, 10], Distribution::Default, &device);
        let spec = TopKCkaSpec::new()
            .with_dims(vec![4, 8])
            .with_schedule(KSchedule::Gammas {
                gammas: vec![0.4, 0.8],
                k_min: 3,
            });
        let cka =
            host(top_k_cka_reference(hidden.clone(), mask.clone(), scores.clone(), &spec).unwrap());
        for implementation in [CkaImplementation::Fused, CkaImplementation::Reference] {
            let loss = TopKCkaLossConfig::new()
                .with_spec(spec.clone())
                .with_implementation(implementation)
                .init();
            let per = host(loss.forward_no_reduction(hidden.clone(), mask.clone(), scores.clone()));
            let want: Vec<f64> = cka.iter().map(|c| 1.0 - c).collect();
            assert_close(
                &format!("{name} {implementation:?} no reduction"),
                &per,
                &want,
                1e-5,
            );
            let total: f64 = want.iter().sum();
            for (reduction, value) in [
                (Reduction::Mean, total / 6.0),
                (Reduction::Auto, total / 6.0),
                (Reduction::Sum, total),
                (Reduction::BatchMean, total / 3.0),
            ] {
                let got = host1(loss.forward(
                    hidden.clone(),
                    mask.clone(),
                    scores.clone(),
                    reduction.clone(),
                ));
                assert_close(&format!("{name} {reduction:?}"), &got, &[value], 1e-5);
            }
        }
    }
}

#[test]
#[should_panic(expected = "TopKCkaLoss: invalid `dims`: dim 32 exceeds the hidden width D = 16")]
fn loss_module_panics_with_the_error() {
    let device = devices()[0].1.clone();
    let loss = TopKCkaLossConfig::new()
        .with_spec(
            TopKCkaSpec::new()
                .with_dims(vec![8, 32])
                .with_schedule(KSchedule::Explicit(vec![4, 4])),
        )
        .init();
    let _ = loss.forward_no_reduction(
        random3([1, 6, 16], &device),
        Tensor::ones([1, 6], &device),
        Tensor::zeros([1, 6], &device),
    );
}

#[test]
#[should_panic(expected = "TopKCkaLossConfig: invalid `dims`: dims must be strictly increasing")]
fn loss_config_rejects_unordered_dims() {
    let _ = TopKCkaLossConfig::new()
        .with_spec(
            TopKCkaSpec::new()
                .with_dims(vec![8, 8])
                .with_schedule(KSchedule::Explicit(vec![4, 4])),
        )
        .init();
}

#[test]
fn paper_schedule_matches_the_spec() {
    let spec = TopKCkaSpec::paper(vec![16, 32, 64, 128, 256, 512]);
    // m = 100: k_i = max(8, ceil(gamma_i m)) = 20, 30, 40, 50, 60, 70
    let ks: Vec<usize> = (0..6).map(|i| spec.k_for(i, 100)).collect();
    assert_eq!(ks, vec![20, 30, 40, 50, 60, 70]);
    // m = 10: k_min = 8 dominates, capped at 10
    let ks: Vec<usize> = (0..6).map(|i| spec.k_for(i, 10)).collect();
    assert_eq!(ks, vec![8, 8, 8, 8, 8, 8]);
    let ks: Vec<usize> = (0..6).map(|i| spec.k_for(i, 5)).collect();
    assert_eq!(ks, vec![5; 6]);
    assert_eq!(spec, TopKCkaSpec::new());
}

// ---------------------------------------------------------------- implementations of CkaOps

/// `[B, n, K]` row masks: prefix masks (as `top_k_cka` builds them) with the example's own
/// ks, or (`general`) arbitrary 0/1 rows, which the op also accepts.
fn row_mask(b: usize, n: usize, k: usize, general: bool, device: &Device) -> Tensor<3> {
    let mut values = Vec::with_capacity(b * n * k);
    for e in 0..b {
        for i in 0..n {
            for a in 0..k {
                let keep = if general {
                    (a * 7 + i * 3 + e) % 5 != 0
                } else {
                    a < (2 + i * 2 + e).min(k)
                };
                values.push(if keep { 1.0f32 } else { 0.0 });
            }
        }
    }
    Tensor::from_data(TensorData::new(values, [b, n, k]), device)
}

/// The CPU backends' host implementation (`nested_prefix_cka` there) agrees with the portable
/// body of backend ops, forward and backward, in f32 and f64, with a trailing feature block
/// and without, with prefix and arbitrary row masks, with and without `detach_teacher`.
#[test]
fn host_and_portable_implementations_agree() {
    use burn::backend::Dispatch;
    use cka_kernels::CkaOps;

    for (name, device) in f64_devices() {
        for dtype in [DType::F32, DType::F64] {
            let tol = if dtype == DType::F64 { 1e-10 } else { 2e-4 };
            for dims in [vec![4, 8, 16], vec![4, 12, 24]] {
                for general in [false, true] {
                    let (b, k, d, n) = (3, 10, 24, dims.len());
                    let hidden = random3([b, k, d], &device).cast(dtype);
                    let mask = row_mask(b, n, k, general, &device).cast(dtype);
                    let grad = Tensor::<2>::random([b, n], Distribution::Normal(0.0, 1.0), &device)
                        .cast(dtype);
                    let what = format!("{name} {dtype:?} dims {dims:?} general {general}");
                    let host_fwd =
                        Tensor::<2>::from_dispatch(<Dispatch as CkaOps>::nested_prefix_cka(
                            hidden.clone().into_dispatch(),
                            mask.clone().into_dispatch(),
                            dims.clone(),
                            false,
                        ));
                    let portable_fwd = Tensor::<2>::from_dispatch(
                        <Dispatch as CkaOps>::nested_prefix_cka_portable(
                            hidden.clone().into_dispatch(),
                            mask.clone().into_dispatch(),
                            dims.clone(),
                        ),
                    );
                    assert_eq!(host_fwd.dtype(), dtype, "{what}");
                    assert_close(
                        &format!("{what} forward"),
                        &host(host_fwd),
                        &host(portable_fwd),
                        tol,
                    );
                    for detach in [false, true] {
                        let run = |portable: bool| -> Vec<f64> {
                            let args = (
                                hidden.clone().into_dispatch(),
                                mask.clone().into_dispatch(),
                                dims.clone(),
                                grad.clone().into_dispatch(),
                                detach,
                            );
                            let out = if portable {
                                <Dispatch as CkaOps>::nested_prefix_cka_portable_backward(
                                    args.0, args.1, args.2, args.3, args.4,
                                )
                            } else {
                                <Dispatch as CkaOps>::nested_prefix_cka_backward(
                                    args.0, args.1, args.2, args.3, args.4,
                                )
                            };
                            Tensor::<3>::from_dispatch(out)
                                .into_data()
                                .convert::<f64>()
                                .into_vec::<f64>()
                                .unwrap()
                        };
                        let (got, want) = (run(false), run(true));
                        let scale = want.iter().fold(1e-3f64, |a, v| a.max(v.abs()));
                        let rel: Vec<f64> = got.iter().map(|v| v / scale).collect();
                        let rel_want: Vec<f64> = want.iter().map(|v| v / scale).collect();
                        assert_close(
                            &format!("{what} detach {detach} backward"),
                            &rel,
                            &rel_want,
                            tol,
                        );
                    }
                }
            }
        }
    }
}
