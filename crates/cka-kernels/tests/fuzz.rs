//! Property fuzz of `linear_cka` and `top_k_cka` on the CPU backends (ndarray, flex): seeded
//! random shapes, masks, scores, dims and k-schedules, against a float64 reference written here
//! in plain Rust (not the crate's own reference), within 1e-4; gradients against float64
//! central differences of that reference; and random invalid inputs, which must come back as
//! `CkaError` — never a panic, never NaN.
//!
//! ```text
//! cargo test -p cka-kernels --test fuzz -- --nocapture
//! ```
//!
//! The values cover unit, small (1e-2) and large (1e2) scales with per-feature offsets,
//! constant rows (zero variance, defined value 0), duplicated rows, `y = x` and linear maps
//! of `x`; the masks cover no mask, no padding, random padding anywhere, and all but one row
//! padded; the scores include ties.
#![allow(deprecated)] // Device::ndarray

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use burn::tensor::{DType, Device, Tensor, TensorData};
use cka_kernels::{
    linear_cka, top_k_cka, top_k_cka_reference, CkaError, KSchedule, TopKCkaSpec, CKA_EPS,
};
use mrl_common::SplitMix64;

/// Forward cases per backend: half `linear_cka`, half `top_k_cka` (each also through
/// `top_k_cka_reference`).
const FORWARD_CASES: usize = 10_000;
/// Gradient cases per backend (top-k and linear).
const GRADIENT_CASES: usize = 300;
/// Invalid-input cases per backend.
const INVALID_CASES: usize = 400;
/// Largest absolute error of a CKA value.
const TOLERANCE: f64 = 1e-4;

/// The CPU devices this build has.
#[allow(clippy::vec_init_then_push)] // the pushes are feature-gated
fn devices() -> Vec<(&'static str, Device)> {
    let mut out = Vec::new();
    #[cfg(feature = "ndarray")]
    out.push(("ndarray", Device::ndarray()));
    #[cfg(feature = "flex")]
    out.push(("flex", Device::flex()));
    assert!(!out.is_empty(), "no CPU backend feature enabled");
    out
}

// ------------------------------------------------------------------ the float64 reference

/// Linear CKA of the rows `x` (each `dx` wide) and `y` (each `dy` wide), with the crate's
/// documented norm guard: `⟨Kx, Ky⟩ / (sqrt(‖Kx‖² + ε²) · sqrt(‖Ky‖² + ε²))`, `K = Xc Xcᵀ`.
fn cka_f64(x: &[Vec<f64>], y: &[Vec<f64>]) -> f64 {
    let gram = |rows: &[Vec<f64>]| -> Vec<Vec<f64>> {
        let k = rows.len();
        let width = rows[0].len();
        let means: Vec<f64> = (0..width)
            .map(|f| rows.iter().map(|r| r[f]).sum::<f64>() / k as f64)
            .collect();
        let centred: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| r.iter().zip(&means).map(|(v, m)| v - m).collect())
            .collect();
        (0..k)
            .map(|a| {
                (0..k)
                    .map(|c| centred[a].iter().zip(&centred[c]).map(|(p, q)| p * q).sum())
                    .collect()
            })
            .collect()
    };
    let (kx, ky) = (gram(x), gram(y));
    let dot = |a: &[Vec<f64>], b: &[Vec<f64>]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(r, s)| r.iter().zip(s).map(|(p, q)| p * q).sum::<f64>())
            .sum()
    };
    let eps2 = CKA_EPS * CKA_EPS;
    dot(&kx, &ky) / ((dot(&kx, &kx) + eps2).sqrt() * (dot(&ky, &ky) + eps2).sqrt())
}

/// A batch of rows: `[B, n, d]` flattened, with its shape.
#[derive(Clone, Debug)]
struct Batch {
    shape: [usize; 3],
    values: Vec<f64>,
}

impl Batch {
    fn row(&self, b: usize, t: usize) -> Vec<f64> {
        let [_, n, d] = self.shape;
        self.values[(b * n + t) * d..(b * n + t + 1) * d].to_vec()
    }
}

/// `linear_cka` in float64: one value per example over its real rows.
fn linear_ref(x: &Batch, y: &Batch, mask: &[f64]) -> Vec<f64> {
    let [batch, n, _] = x.shape;
    (0..batch)
        .map(|b| {
            let real: Vec<usize> = (0..n).filter(|&t| mask[b * n + t] == 1.0).collect();
            let xs: Vec<Vec<f64>> = real.iter().map(|&t| x.row(b, t)).collect();
            let ys: Vec<Vec<f64>> = real.iter().map(|&t| y.row(b, t)).collect();
            cka_f64(&xs, &ys)
        })
        .collect()
}

/// The k-schedule as documented: explicit `k_i`, or `max(k_min, ceil(γ_i · m))` (a product
/// within 1e-9 of an integer counts as that integer), both capped at the real length `m`.
fn k_of(schedule: &KSchedule, i: usize, real: usize) -> usize {
    let k = match schedule {
        KSchedule::Explicit(ks) => ks[i],
        KSchedule::Gammas { gammas, k_min } => {
            let exact = gammas[i] * real as f64;
            let by_gamma = if (exact - exact.round()).abs() < 1e-9 {
                exact.round()
            } else {
                exact.ceil()
            };
            (by_gamma as usize).max(*k_min)
        }
    };
    k.min(real)
}

/// `top_k_cka` in float64: per example, the real tokens ranked by score (descending, ties by
/// position), and for dim `d_i` the CKA of the first `k_i` of them truncated to `d_i` against
/// the same rows at full width. `[B, n]` flattened.
fn top_k_ref(hidden: &Batch, mask: &[f64], scores: &[f64], spec: &TopKCkaSpec) -> Vec<f64> {
    let [batch, m, width] = hidden.shape;
    let mut out = Vec::new();
    for b in 0..batch {
        let mut real: Vec<usize> = (0..m).filter(|&t| mask[b * m + t] == 1.0).collect();
        real.sort_by(|&p, &q| {
            scores[b * m + q]
                .partial_cmp(&scores[b * m + p])
                .unwrap()
                .then(p.cmp(&q))
        });
        for (i, &d) in spec.dims.iter().enumerate() {
            let k = k_of(&spec.schedule, i, real.len());
            let ys: Vec<Vec<f64>> = real[..k].iter().map(|&t| hidden.row(b, t)).collect();
            let xs: Vec<Vec<f64>> = ys.iter().map(|r| r[..d].to_vec()).collect();
            debug_assert_eq!(ys[0].len(), width);
            out.push(cka_f64(&xs, &ys));
        }
    }
    out
}

// ------------------------------------------------------------------ random cases

fn uniform(rng: &mut SplitMix64, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.next_f64()
}

/// An integer in `lo..=hi`.
fn int(rng: &mut SplitMix64, lo: usize, hi: usize) -> usize {
    lo + rng.below(hi - lo + 1)
}

/// A roughly normal draw (sum of uniforms).
fn normal(rng: &mut SplitMix64) -> f64 {
    (0..4).map(|_| rng.next_f64()).sum::<f64>() - 2.0
}

/// How the real rows of an example are drawn.
#[derive(Clone, Copy, Debug)]
enum Values {
    /// Independent draws at a scale, with per-feature offsets.
    Random,
    /// Every real row the same (zero variance: CKA 0).
    Constant,
    /// Only two distinct rows, repeated.
    Duplicated,
}

fn pick_values(rng: &mut SplitMix64) -> Values {
    match rng.below(10) {
        0 | 1 => Values::Constant,
        2 => Values::Duplicated,
        _ => Values::Random,
    }
}

fn pick_scale(rng: &mut SplitMix64) -> f64 {
    [1e-2, 1.0, 1.0, 1e2][rng.below(4)] * uniform(rng, 0.5, 2.0)
}

/// `[B, n, d]` values: real rows of `kind` at `scale`, padding rows arbitrary (large).
fn draw_batch(
    rng: &mut SplitMix64,
    shape: [usize; 3],
    mask: &[f64],
    kind: Values,
    scale: f64,
) -> Batch {
    let [batch, n, d] = shape;
    let mut values = vec![0.0; batch * n * d];
    for b in 0..batch {
        let offsets: Vec<f64> = (0..d).map(|_| scale * uniform(rng, -2.0, 2.0)).collect();
        let base: Vec<Vec<f64>> = (0..2)
            .map(|_| (0..d).map(|f| offsets[f] + scale * normal(rng)).collect())
            .collect();
        for t in 0..n {
            let row = &mut values[(b * n + t) * d..(b * n + t + 1) * d];
            if mask[b * n + t] == 0.0 {
                row.iter_mut().for_each(|v| *v = uniform(rng, -1e3, 1e3));
                continue;
            }
            match kind {
                Values::Random => row
                    .iter_mut()
                    .zip(&offsets)
                    .for_each(|(v, o)| *v = o + scale * normal(rng)),
                Values::Constant => row.copy_from_slice(&base[0]),
                Values::Duplicated => row.copy_from_slice(&base[rng.below(2)]),
            }
        }
    }
    // Through f32, as the tensors hold them (the reference sees the same numbers).
    let values = values.into_iter().map(|v| v as f32 as f64).collect();
    Batch { shape, values }
}

/// A `[B, n]` 0/1 mask with at least one real row per example.
fn draw_mask(rng: &mut SplitMix64, batch: usize, n: usize) -> (Vec<f64>, &'static str) {
    let kind = rng.below(4);
    let mut mask = vec![0.0; batch * n];
    for b in 0..batch {
        let row = &mut mask[b * n..(b + 1) * n];
        match kind {
            0 => row.fill(1.0),
            // Varied lengths, padding at the end.
            1 => row[..int(rng, 1, n)].fill(1.0),
            // All but one row padded, the real one anywhere.
            2 => row[rng.below(n)] = 1.0,
            // Padding anywhere.
            _ => {
                row.iter_mut()
                    .for_each(|v| *v = if rng.below(3) == 0 { 0.0 } else { 1.0 });
                row[rng.below(n)] = 1.0;
            }
        }
    }
    let name = ["full", "lengths", "one real row", "scattered"][kind];
    (mask, name)
}

fn tensor<const D: usize>(values: &[f64], shape: [usize; D], device: &Device) -> Tensor<D> {
    let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn tensor_f64<const D: usize>(values: &[f64], shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), shape),
        (device, DType::F64),
    )
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
}

/// One random `linear_cka` case: `(x, y, mask, pass the mask?, description)`.
fn linear_case(rng: &mut SplitMix64) -> (Batch, Batch, Vec<f64>, bool, String) {
    let batch = int(rng, 1, 4);
    let n = int(rng, 1, 10);
    let (dx, dy) = (int(rng, 1, 8), int(rng, 1, 8));
    let (mask, mask_kind) = draw_mask(rng, batch, n);
    let pass_mask = !(mask_kind == "full" && rng.below(2) == 0);
    let kind = pick_values(rng);
    let scale = pick_scale(rng);
    let x = draw_batch(rng, [batch, n, dx], &mask, kind, scale);
    let relation = rng.below(4);
    let y = match relation {
        // y = x.
        0 => x.clone(),
        // y = x W + c (a linear map of the same rows).
        1 => {
            let w: Vec<f64> = (0..dx * dy).map(|_| normal(rng)).collect();
            let mut values = vec![0.0; batch * n * dy];
            for r in 0..batch * n {
                for j in 0..dy {
                    let v: f64 = (0..dx).map(|i| x.values[r * dx + i] * w[i * dy + j]).sum();
                    values[r * dy + j] = (v + 0.5 * j as f64) as f32 as f64;
                }
            }
            Batch {
                shape: [batch, n, dy],
                values,
            }
        }
        // Independent rows (of their own kind and scale).
        _ => {
            let (kind, scale) = (pick_values(rng), pick_scale(rng));
            draw_batch(rng, [batch, n, dy], &mask, kind, scale)
        }
    };
    let what = format!(
        "x {:?}, y {:?}, mask {mask_kind}{}, {kind:?} values at scale {scale:.3}, relation {relation}",
        x.shape,
        y.shape,
        if pass_mask { "" } else { " (not passed)" }
    );
    (x, y, mask, pass_mask, what)
}

/// One random `top_k_cka` case: `(hidden, mask, scores, spec, description)`.
fn top_k_case(rng: &mut SplitMix64) -> (Batch, Vec<f64>, Vec<f64>, TopKCkaSpec, String) {
    let batch = int(rng, 1, 3);
    let m = int(rng, 1, 10);
    let width = int(rng, 1, 12);
    let (mask, mask_kind) = draw_mask(rng, batch, m);
    let kind = pick_values(rng);
    let scale = pick_scale(rng);
    let hidden = draw_batch(rng, [batch, m, width], &mask, kind, scale);
    // Scores: continuous, or a few levels (ties).
    let levels = [0, 2, 3][rng.below(3)];
    let scores: Vec<f64> = (0..batch * m)
        .map(|_| {
            if levels == 0 {
                uniform(rng, -3.0, 3.0) as f32 as f64
            } else {
                rng.below(levels) as f64
            }
        })
        .collect();
    // Strictly increasing dims in 1..=width, the last one sometimes = width.
    let mut dims: Vec<usize> = (1..=width).filter(|_| rng.below(3) == 0).collect();
    if dims.is_empty() {
        dims.push(int(rng, 1, width));
    }
    dims.truncate(4);
    let n = dims.len();
    let schedule = if rng.below(2) == 0 {
        KSchedule::Explicit((0..n).map(|_| int(rng, 1, m + 2)).collect())
    } else {
        KSchedule::Gammas {
            gammas: (0..n)
                .map(|_| (uniform(rng, 0.05, 1.0) * 20.0).round().max(1.0) / 20.0)
                .collect(),
            k_min: int(rng, 1, 4),
        }
    };
    let spec = TopKCkaSpec::new()
        .with_dims(dims)
        .with_schedule(schedule)
        .with_detach_teacher(rng.below(2) == 0);
    let what = format!(
        "hidden {:?}, mask {mask_kind}, {kind:?} values at scale {scale:.3}, {} score levels, \
         dims {:?}, {:?}",
        hidden.shape,
        if levels == 0 {
            "continuous".to_string()
        } else {
            levels.to_string()
        },
        spec.dims,
        spec.schedule
    );
    (hidden, mask, scores, spec, what)
}

/// Compares `got` with `want`; returns a description of the first mismatch.
fn mismatch(got: &[f64], want: &[f64], tol: f64) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("{} values, want {}", got.len(), want.len()));
    }
    got.iter()
        .zip(want)
        .enumerate()
        .find(|(_, (g, w))| {
            let err = (*g - *w).abs();
            err.is_nan() || err > tol
        })
        .map(|(i, (g, w))| format!("[{i}] got {g}, want {w} (|err| {:e})", (g - w).abs()))
}

/// Prints the count, a breakdown of the failures by op and by kind of values, and the first
/// 20; returns the failures prefixed with `what`.
fn report(what: &str, cases: usize, failures: &[String], seconds: f64) -> Vec<String> {
    println!(
        "{what}: {cases} cases, {} failing, {seconds:.2} s",
        failures.len()
    );
    let mut groups = std::collections::BTreeMap::<String, usize>::new();
    for f in failures {
        let op = f.split(' ').next().unwrap_or("");
        let kind = ["Constant", "Duplicated", "Random"]
            .into_iter()
            .find(|k| f.contains(k))
            .unwrap_or("invalid input");
        *groups.entry(format!("{op}, {kind} values")).or_default() += 1;
    }
    for (group, n) in &groups {
        println!("  {n:>5} × {group}");
    }
    for f in failures.iter().take(20) {
        println!("  {f}");
    }
    failures.iter().map(|f| format!("{what}: {f}")).collect()
}

/// Fails the test with the first 20 of `failures` (from every device).
fn assert_none(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{what}: {} failing cases; the first:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ------------------------------------------------------------------ forward

#[test]
fn forward_matches_the_float64_reference() {
    let mut all = Vec::new();
    for (name, device) in devices() {
        let start = Instant::now();
        let mut rng = SplitMix64::new(0xC0FFEE);
        let mut failures = Vec::new();
        for case in 0..FORWARD_CASES / 2 {
            let (x, y, mask, pass_mask, what) = linear_case(&mut rng);
            let want = linear_ref(&x, &y, &mask);
            let [batch, n, _] = x.shape;
            let got = linear_cka(
                tensor(&x.values, x.shape, &device),
                tensor(&y.values, y.shape, &device),
                pass_mask.then(|| tensor(&mask, [batch, n], &device)),
            );
            match got {
                Ok(t) => {
                    if let Some(m) = mismatch(&host(t), &want, TOLERANCE) {
                        failures.push(format!("linear case {case} ({what}): {m}"));
                    }
                }
                Err(e) => failures.push(format!("linear case {case} ({what}): error {e}")),
            }
        }
        for case in 0..FORWARD_CASES / 2 {
            let (hidden, mask, scores, spec, what) = top_k_case(&mut rng);
            let want = top_k_ref(&hidden, &mask, &scores, &spec);
            let [batch, m, _] = hidden.shape;
            for (imp, f) in [
                ("top_k_cka", top_k_cka as TopKFn),
                ("top_k_cka_reference", top_k_cka_reference),
            ] {
                let got = f(
                    tensor(&hidden.values, hidden.shape, &device),
                    tensor(&mask, [batch, m], &device),
                    tensor(&scores, [batch, m], &device),
                    &spec,
                );
                match got {
                    Ok(t) => {
                        if let Some(mm) = mismatch(&host(t), &want, TOLERANCE) {
                            failures.push(format!("{imp} case {case} ({what}): {mm}"));
                        }
                    }
                    Err(e) => failures.push(format!("{imp} case {case} ({what}): error {e}")),
                }
            }
        }
        all.extend(report(
            &format!("{name}: forward"),
            FORWARD_CASES,
            &failures,
            start.elapsed().as_secs_f64(),
        ));
    }
    assert_none("forward", &all);
}

type TopKFn = fn(Tensor<3>, Tensor<2>, Tensor<2>, &TopKCkaSpec) -> Result<Tensor<2>, CkaError>;

// ------------------------------------------------------------------ gradients

/// Central differences of `f` at `x` (step `h`).
fn numeric_grad(x: &[f64], h: f64, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut point = x.to_vec();
    (0..x.len())
        .map(|i| {
            point[i] = x[i] + h;
            let plus = f(&point);
            point[i] = x[i] - h;
            let minus = f(&point);
            point[i] = x[i];
            (plus - minus) / (2.0 * h)
        })
        .collect()
}

/// The gradient is checked in float64 (the backward formula, not f32 rounding), on unit-scale
/// random rows (no constant rows: CKA is not differentiable where the variance vanishes).
#[test]
fn gradients_match_float64_finite_differences() {
    let mut all = Vec::new();
    for (name, device) in devices() {
        let start = Instant::now();
        let device = device.autodiff();
        let mut rng = SplitMix64::new(0xBADC0DE);
        let mut failures = Vec::new();
        let mut checked = 0;
        while checked < GRADIENT_CASES {
            let (hidden, mask, scores, spec, what) = top_k_case(&mut rng);
            if what.contains("Constant")
                || what.contains("Duplicated")
                || what.contains("scale 0.0")
            {
                continue;
            }
            checked += 1;
            let [batch, m, _] = hidden.shape;
            let n = spec.dims.len();
            let weights: Vec<f64> = (0..batch * n)
                .map(|_| uniform(&mut rng, -1.0, 1.0))
                .collect();
            // The loss Σ w·CKA; the teacher side is a constant when detached.
            let loss_ref = |values: &[f64]| -> f64 {
                let h = Batch {
                    shape: hidden.shape,
                    values: values.to_vec(),
                };
                let cka = if spec.detach_teacher {
                    detached_top_k_ref(&h, &hidden, &mask, &scores, &spec)
                } else {
                    top_k_ref(&h, &mask, &scores, &spec)
                };
                cka.iter().zip(&weights).map(|(c, w)| c * w).sum()
            };
            // The finite-difference step follows the real rows (padding rows hold values up to
            // 1e3 that no CKA reads).
            let scale = (0..batch * m)
                .filter(|&r| mask[r] == 1.0)
                .flat_map(|r| hidden.row(r / m, r % m))
                .fold(1.0f64, |a, v| a.max(v.abs()));
            let numeric = numeric_grad(&hidden.values, 1e-6 * scale, loss_ref);
            let tol = 1e-6 * numeric.iter().fold(1.0f64, |a, g| a.max(g.abs()));
            for (imp, f) in [
                ("top_k_cka", top_k_cka as TopKFn),
                ("top_k_cka_reference", top_k_cka_reference),
            ] {
                let h = tensor_f64(&hidden.values, hidden.shape, &device).require_grad();
                let cka = f(
                    h.clone(),
                    tensor_f64(&mask, [batch, m], &device),
                    tensor_f64(&scores, [batch, m], &device),
                    &spec,
                )
                .unwrap();
                let loss = (cka * tensor_f64(&weights, [batch, n], &device)).sum();
                let grads = loss.backward();
                let analytic = host(h.grad(&grads).expect("hidden has a gradient"));
                if let Some(mm) = mismatch(&analytic, &numeric, tol) {
                    failures.push(format!("{imp} gradient ({what}): {mm}"));
                }
            }
            // linear_cka of the first truncation against the full width, per example.
            if checked % 3 == 0 {
                let d = spec.dims[0];
                let w: Vec<f64> = weights.iter().step_by(n).copied().collect();
                let loss_ref = |values: &[f64]| -> f64 {
                    let full = Batch {
                        shape: hidden.shape,
                        values: values.to_vec(),
                    };
                    linear_ref(&truncate(&full, d), &full, &mask)
                        .iter()
                        .zip(&w)
                        .map(|(c, w)| c * w)
                        .sum()
                };
                let numeric = numeric_grad(&hidden.values, 1e-6 * scale, loss_ref);
                let tol = 1e-6 * numeric.iter().fold(1.0f64, |a, g| a.max(g.abs()));
                let h = tensor_f64(&hidden.values, hidden.shape, &device).require_grad();
                let x = h.clone().slice([0..batch, 0..m, 0..d]);
                let cka =
                    linear_cka(x, h.clone(), Some(tensor_f64(&mask, [batch, m], &device))).unwrap();
                let loss = (cka * tensor_f64(&w, [batch], &device)).sum();
                let grads = loss.backward();
                let analytic = host(h.grad(&grads).expect("hidden has a gradient"));
                if let Some(mm) = mismatch(&analytic, &numeric, tol) {
                    failures.push(format!("linear_cka gradient ({what}): {mm}"));
                }
            }
        }
        all.extend(report(
            &format!("{name}: gradients"),
            GRADIENT_CASES,
            &failures,
            start.elapsed().as_secs_f64(),
        ));
    }
    assert_none("gradients", &all);
}

/// The first `d` features of every row.
fn truncate(b: &Batch, d: usize) -> Batch {
    let [batch, n, width] = b.shape;
    let values = b
        .values
        .chunks(width)
        .flat_map(|r| r[..d].to_vec())
        .collect();
    Batch {
        shape: [batch, n, d],
        values,
    }
}

/// `top_k_ref` with the full-width side held at `teacher` (a detached teacher).
fn detached_top_k_ref(
    student: &Batch,
    teacher: &Batch,
    mask: &[f64],
    scores: &[f64],
    spec: &TopKCkaSpec,
) -> Vec<f64> {
    let [batch, m, _] = student.shape;
    let mut out = Vec::new();
    for b in 0..batch {
        let mut real: Vec<usize> = (0..m).filter(|&t| mask[b * m + t] == 1.0).collect();
        real.sort_by(|&p, &q| {
            scores[b * m + q]
                .partial_cmp(&scores[b * m + p])
                .unwrap()
                .then(p.cmp(&q))
        });
        for (i, &d) in spec.dims.iter().enumerate() {
            let k = k_of(&spec.schedule, i, real.len());
            let ys: Vec<Vec<f64>> = real[..k].iter().map(|&t| teacher.row(b, t)).collect();
            let xs: Vec<Vec<f64>> = real[..k]
                .iter()
                .map(|&t| student.row(b, t)[..d].to_vec())
                .collect();
            out.push(cka_f64(&xs, &ys));
        }
    }
    out
}

// ------------------------------------------------------------------ invalid inputs

/// The `CkaError` variant an invalid input must produce.
fn variant(e: &CkaError) -> &'static str {
    match e {
        CkaError::ShapeMismatch { .. } => "ShapeMismatch",
        CkaError::Empty { .. } => "Empty",
        CkaError::InvalidDims { .. } => "InvalidDims",
        CkaError::InvalidSchedule { .. } => "InvalidSchedule",
        CkaError::InvalidMask { .. } => "InvalidMask",
        CkaError::NonFiniteScore { .. } => "NonFiniteScore",
    }
}

/// One invalid call: what it breaks, the variant it must return, and the call.
type Invalid = (
    String,
    &'static str,
    Box<dyn FnOnce() -> Result<Vec<f64>, CkaError>>,
);

fn invalid_case(rng: &mut SplitMix64, device: &Device) -> Invalid {
    let batch = int(rng, 1, 3);
    let m = int(rng, 2, 8);
    let width = int(rng, 2, 10);
    let values =
        |rng: &mut SplitMix64, len: usize| -> Vec<f64> { (0..len).map(|_| normal(rng)).collect() };
    let h = values(rng, batch * m * width);
    let ones = vec![1.0; batch * m];
    let scores = values(rng, batch * m);
    let good_spec = TopKCkaSpec::new()
        .with_dims(vec![1, width])
        .with_schedule(KSchedule::Explicit(vec![2, 2]));
    let d = device.clone();
    let top_k = move |h: Vec<f64>,
                      hs: [usize; 3],
                      mask: Vec<f64>,
                      ms: [usize; 2],
                      scores: Vec<f64>,
                      ss: [usize; 2],
                      spec: TopKCkaSpec,
                      reference: bool|
          -> Box<dyn FnOnce() -> Result<Vec<f64>, CkaError>> {
        Box::new(move || {
            let f: TopKFn = if reference {
                top_k_cka_reference
            } else {
                top_k_cka
            };
            f(
                tensor(&h, hs, &d),
                tensor(&mask, ms, &d),
                tensor(&scores, ss, &d),
                &spec,
            )
            .map(host)
        })
    };
    let reference = rng.below(2) == 0;
    let hs = [batch, m, width];
    let bm = [batch, m];
    let spec_with = |dims: Vec<usize>, schedule: KSchedule| {
        TopKCkaSpec::new().with_dims(dims).with_schedule(schedule)
    };
    let kind = rng.below(16);
    match kind {
        0 => {
            let dims: Vec<usize> = vec![];
            (
                "top-k: no dims".into(),
                "InvalidDims",
                top_k(
                    h,
                    hs,
                    ones.clone(),
                    bm,
                    scores,
                    bm,
                    spec_with(dims, KSchedule::Explicit(vec![])),
                    reference,
                ),
            )
        }
        1 => {
            let a = int(rng, 1, width);
            let dims = vec![a, a];
            (
                "top-k: duplicate dims".into(),
                "InvalidDims",
                top_k(
                    h,
                    hs,
                    ones.clone(),
                    bm,
                    scores,
                    bm,
                    spec_with(dims, KSchedule::Explicit(vec![2, 2])),
                    reference,
                ),
            )
        }
        2 => (
            "top-k: decreasing dims".into(),
            "InvalidDims",
            top_k(
                h,
                hs,
                ones.clone(),
                bm,
                scores,
                bm,
                spec_with(vec![width, 1], KSchedule::Explicit(vec![2, 2])),
                reference,
            ),
        ),
        3 => (
            "top-k: dim 0".into(),
            "InvalidDims",
            top_k(
                h,
                hs,
                ones.clone(),
                bm,
                scores,
                bm,
                spec_with(vec![0, width], KSchedule::Explicit(vec![2, 2])),
                reference,
            ),
        ),
        4 => {
            let over = width + int(rng, 1, 5);
            (
                format!("top-k: dim {over} > D = {width}"),
                "InvalidDims",
                top_k(
                    h,
                    hs,
                    ones.clone(),
                    bm,
                    scores,
                    bm,
                    spec_with(vec![1, over], KSchedule::Explicit(vec![2, 2])),
                    reference,
                ),
            )
        }
        5 => (
            "top-k: k = 0".into(),
            "InvalidSchedule",
            top_k(
                h,
                hs,
                ones.clone(),
                bm,
                scores,
                bm,
                spec_with(vec![1, width], KSchedule::Explicit(vec![0, 2])),
                reference,
            ),
        ),
        6 => (
            "top-k: ks length != dims length".into(),
            "InvalidSchedule",
            top_k(
                h,
                hs,
                ones.clone(),
                bm,
                scores,
                bm,
                spec_with(vec![1, width], KSchedule::Explicit(vec![2])),
                reference,
            ),
        ),
        7 => {
            let g = [0.0, -0.5, 1.5, f64::NAN, f64::INFINITY][rng.below(5)];
            (
                format!("top-k: gamma {g}"),
                "InvalidSchedule",
                top_k(
                    h,
                    hs,
                    ones.clone(),
                    bm,
                    scores,
                    bm,
                    spec_with(
                        vec![1, width],
                        KSchedule::Gammas {
                            gammas: vec![0.5, g],
                            k_min: 1,
                        },
                    ),
                    reference,
                ),
            )
        }
        8 => (
            "top-k: k_min = 0".into(),
            "InvalidSchedule",
            top_k(
                h,
                hs,
                ones.clone(),
                bm,
                scores,
                bm,
                spec_with(
                    vec![1, width],
                    KSchedule::Gammas {
                        gammas: vec![0.5, 0.5],
                        k_min: 0,
                    },
                ),
                reference,
            ),
        ),
        9 => {
            let bad = [0.5, 2.0, -1.0, f64::NAN][rng.below(4)];
            let mut mask = ones.clone();
            mask[rng.below(batch * m)] = bad;
            (
                format!("top-k: mask value {bad}"),
                "InvalidMask",
                top_k(h, hs, mask, bm, scores, bm, good_spec, reference),
            )
        }
        10 => {
            let mut mask = ones.clone();
            let b = rng.below(batch);
            mask[b * m..(b + 1) * m].fill(0.0);
            (
                format!("top-k: example {b} all padding"),
                "InvalidMask",
                top_k(h, hs, mask, bm, scores, bm, good_spec, reference),
            )
        }
        11 => {
            let bad = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][rng.below(3)];
            let mut s = scores.clone();
            s[rng.below(batch * m)] = bad;
            (
                format!("top-k: score {bad} on a real token"),
                "NonFiniteScore",
                top_k(h, hs, ones.clone(), bm, s, bm, good_spec, reference),
            )
        }
        12 => {
            let which = rng.below(2);
            let wrong = [batch, m + 1];
            let (ms, ss) = if which == 0 { (wrong, bm) } else { (bm, wrong) };
            (
                format!("top-k: {} [B, m + 1]", ["mask", "scores"][which]),
                "ShapeMismatch",
                top_k(
                    h,
                    hs,
                    vec![1.0; batch * (m + 1)]
                        .into_iter()
                        .take(ms[0] * ms[1])
                        .collect(),
                    ms,
                    values(rng, ss[0] * ss[1]),
                    ss,
                    good_spec,
                    reference,
                ),
            )
        }
        13 => {
            let d = device.clone();
            let (bx, by) = if rng.below(2) == 0 {
                (batch, batch + 1)
            } else {
                (batch + 1, batch)
            };
            let (x, y) = (values(rng, bx * m * width), values(rng, by * m * width));
            (
                format!("linear: batch {bx} vs {by}"),
                "ShapeMismatch",
                Box::new(move || {
                    linear_cka(
                        tensor(&x, [bx, m, width], &d),
                        tensor(&y, [by, m, width], &d),
                        None,
                    )
                    .map(host)
                }),
            )
        }
        14 => {
            let d = device.clone();
            let (x, y) = (
                values(rng, batch * m * width),
                values(rng, batch * (m + 1) * width),
            );
            (
                "linear: row counts differ".into(),
                "ShapeMismatch",
                Box::new(move || {
                    linear_cka(
                        tensor(&x, [batch, m, width], &d),
                        tensor(&y, [batch, m + 1, width], &d),
                        None,
                    )
                    .map(host)
                }),
            )
        }
        _ => {
            let d = device.clone();
            let x = values(rng, batch * m * width);
            let sub = rng.below(4);
            let (what, want, mask, ms): (String, &'static str, Vec<f64>, [usize; 2]) = match sub {
                0 => (
                    "linear: mask [B, m + 1]".into(),
                    "ShapeMismatch",
                    vec![1.0; batch * (m + 1)],
                    [batch, m + 1],
                ),
                1 => {
                    let mut mask = vec![1.0; batch * m];
                    mask[rng.below(batch * m)] = 0.5;
                    ("linear: mask value 0.5".into(), "InvalidMask", mask, bm)
                }
                2 => {
                    let mut mask = vec![1.0; batch * m];
                    let b = rng.below(batch);
                    mask[b * m..(b + 1) * m].fill(0.0);
                    (
                        "linear: an example all padding".into(),
                        "InvalidMask",
                        mask,
                        bm,
                    )
                }
                _ => (
                    "linear: mask NaN".into(),
                    "InvalidMask",
                    {
                        let mut mask = vec![1.0; batch * m];
                        mask[0] = f64::NAN;
                        mask
                    },
                    bm,
                ),
            };
            (
                what,
                want,
                Box::new(move || {
                    linear_cka(
                        tensor(&x, [batch, m, width], &d),
                        tensor(&x, [batch, m, width], &d),
                        Some(tensor(&mask, ms, &d)),
                    )
                    .map(host)
                }),
            )
        }
    }
}

#[test]
fn invalid_inputs_return_cka_errors() {
    let mut all = Vec::new();
    for (name, device) in devices() {
        let start = Instant::now();
        let mut rng = SplitMix64::new(0xDEAD);
        let mut failures = Vec::new();
        for case in 0..INVALID_CASES {
            let (what, want, call) = invalid_case(&mut rng, &device);
            match catch_unwind(AssertUnwindSafe(call)) {
                Err(_) => failures.push(format!("case {case} ({what}): panicked")),
                Ok(Ok(values)) => failures.push(format!(
                    "case {case} ({what}): returned {values:?}, want {want}"
                )),
                Ok(Err(e)) if variant(&e) != want => failures.push(format!(
                    "case {case} ({what}): {} `{e}`, want {want}",
                    variant(&e)
                )),
                Ok(Err(_)) => {}
            }
        }
        all.extend(report(
            &format!("{name}: invalid inputs"),
            INVALID_CASES,
            &failures,
            start.elapsed().as_secs_f64(),
        ));
    }
    assert_none("invalid inputs", &all);
}
