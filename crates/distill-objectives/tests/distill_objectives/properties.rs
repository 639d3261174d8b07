//! Invariants: identity and positivity, bounds, symmetry, the high-temperature limit, the
//! data-processing inequality of the top-k coarsening, zero teacher tails, AKL between FKL and
//! RKL, masking and reductions.

use crate::common::*;

const SHAPE: [usize; 3] = [3, 4, 13];
const N: usize = 3 * 4 * 13;

fn logits(seed: u64, scale: f64, device: &Device, dtype: DType) -> Tensor<3> {
    tensor(pseudo_random(N, seed, scale), SHAPE, device, dtype)
}

fn ones(device: &Device) -> Tensor<2> {
    Tensor::ones([SHAPE[0], SHAPE[1]], device)
}

fn per_token(
    d: Divergence,
    tau: f64,
    student: &Tensor<3>,
    teacher: &TeacherTarget,
    mask: &Tensor<2>,
) -> Vec<f64> {
    host(kd(d, tau).forward_no_reduction(student.clone(), teacher, mask.clone()))
}

fn mean(
    d: Divergence,
    tau: f64,
    student: &Tensor<3>,
    teacher: &TeacherTarget,
    mask: &Tensor<2>,
) -> f64 {
    scalar(
        &kd(d, tau)
            .forward(student.clone(), teacher, mask.clone(), Reduction::Mean)
            .loss,
    )
}

/// `H(p)` per position of `softmax(logits / τ)`, in f64 on the host.
fn entropy(logits: &[f64], tau: f64, vocab: usize) -> Vec<f64> {
    logits
        .chunks(vocab)
        .map(|row| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = row.iter().map(|x| ((x - m) / tau).exp()).sum();
            row.iter()
                .map(|x| {
                    let lp = (x - m) / tau - z.ln();
                    -lp.exp() * lp
                })
                .sum()
        })
        .collect()
}

#[test]
fn divergence_of_a_distribution_with_itself_is_zero() {
    for (dev_name, device) in devices() {
        for (dtype, tol) in [(DType::F32, 1e-6), (DType::F64, 1e-12)] {
            let x = logits(1, 6.0, &device, dtype);
            let mask = ones(&device);
            for tau in [1.0, 3.0] {
                for (mode, teacher) in [
                    ("full", TeacherTarget::full(x.clone())),
                    (
                        "top-4",
                        TeacherTarget::from(teacher_top_k(x.clone(), 4, tau)),
                    ),
                ] {
                    for d in all_divergences() {
                        let got = per_token(d, tau, &x, &teacher, &mask);
                        let want = match d {
                            // DistiLLM's cross-entropy form: −Σ p log p = H(p) at q = p.
                            Divergence::DistillmSkewKl { .. } if mode == "full" => {
                                entropy(&pseudo_random(N, 1, 6.0), tau, SHAPE[2])
                            }
                            Divergence::DistillmSkewKl { .. } => continue,
                            _ => vec![0.0; got.len()],
                        };
                        assert_all_close(
                            &format!("{dev_name} {dtype:?} D(p,p) {d} {mode} τ={tau}"),
                            &got,
                            &want,
                            tol,
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn divergences_are_nonnegative_and_bounded() {
    for (dev_name, device) in devices() {
        let mask = ones(&device);
        for seed in 0..4u64 {
            let s = logits(10 + seed, 5.0, &device, DType::F64);
            let t_logits = logits(20 + seed, 5.0, &device, DType::F64);
            let h = entropy(&pseudo_random(N, 20 + seed, 5.0), 1.0, SHAPE[2]);
            let teacher = TeacherTarget::full(t_logits);
            for d in all_divergences() {
                let values = per_token(d, 1.0, &s, &teacher, &mask);
                for (i, v) in values.iter().enumerate() {
                    let what = format!("{dev_name} seed {seed} {d} position {i}: {v}");
                    assert!(v.is_finite(), "{what}");
                    match d {
                        Divergence::DistillmSkewKl { .. } => {
                            assert!(*v >= h[i] - 1e-12, "{what} < H(p) = {}", h[i])
                        }
                        _ => assert!(*v >= -1e-12, "{what}"),
                    }
                    if let Divergence::JensenShannon { beta } = d {
                        let binary_entropy = -(beta * beta.ln() + (1.0 - beta) * (1.0 - beta).ln());
                        assert!(
                            *v <= binary_entropy + 1e-12 && *v <= std::f64::consts::LN_2 + 1e-12,
                            "{what}"
                        );
                    }
                    if d == Divergence::TotalVariation {
                        assert!(*v <= 1.0 + 1e-12, "{what}");
                    }
                }
            }
        }
        // Nearly disjoint supports: TV → 1, JS → ln 2, from below.
        let v = SHAPE[2];
        let peaked = |hot: usize| {
            let vals: Vec<f64> = (0..N)
                .map(|i| if i % v == hot { 40.0 } else { -40.0 })
                .collect();
            tensor(vals, SHAPE, &device, DType::F64)
        };
        let (s, t) = (peaked(0), TeacherTarget::full(peaked(1)));
        let tv = per_token(Divergence::TotalVariation, 1.0, &s, &t, &mask);
        let js = per_token(Divergence::JensenShannon { beta: 0.5 }, 1.0, &s, &t, &mask);
        for (tv, js) in tv.iter().zip(&js) {
            assert!(
                (1.0 - 1e-9..=1.0).contains(tv),
                "{dev_name} TV of disjoint supports {tv}"
            );
            assert!(
                (std::f64::consts::LN_2 - 1e-9..=std::f64::consts::LN_2 + 1e-12).contains(js),
                "{dev_name} JS of disjoint supports {js}"
            );
        }
    }
}

#[test]
fn skew_kl_is_skewed_forward_kl_plus_teacher_entropy() {
    for (dev_name, device) in devices() {
        let mask = ones(&device);
        let s = logits(3, 4.0, &device, DType::F64);
        let t = TeacherTarget::full(logits(4, 4.0, &device, DType::F64));
        for tau in [1.0, 2.0] {
            let h = entropy(&pseudo_random(N, 4, 4.0), tau, SHAPE[2]);
            for lambda in [0.1, 0.3] {
                let skew = per_token(Divergence::DistillmSkewKl { lambda }, tau, &s, &t, &mask);
                let sfkl = per_token(Divergence::SkewedForwardKl { lambda }, tau, &s, &t, &mask);
                let want: Vec<f64> = sfkl.iter().zip(&h).map(|(a, b)| a + b).collect();
                assert_all_close(
                    &format!("{dev_name} skew_kl:{lambda} τ={tau}"),
                    &skew,
                    &want,
                    1e-12,
                );
            }
        }
    }
}

#[test]
fn jensen_shannon_is_symmetric_at_one_half_and_beta_weights_the_teacher() {
    for (dev_name, device) in devices() {
        let mask = ones(&device);
        let a = logits(5, 4.0, &device, DType::F64);
        let b = logits(6, 4.0, &device, DType::F64);
        let js = |beta, s: &Tensor<3>, t: &Tensor<3>| {
            per_token(
                Divergence::JensenShannon { beta },
                1.5,
                s,
                &TeacherTarget::full(t.clone()),
                &mask,
            )
        };
        assert_all_close(
            &format!("{dev_name} JS(p,q) = JS(q,p)"),
            &js(0.5, &a, &b),
            &js(0.5, &b, &a),
            1e-12,
        );
        // Swapping the roles turns β into 1 − β.
        assert_all_close(
            &format!("{dev_name} JS_β(p,q) = JS_(1−β)(q,p)"),
            &js(0.3, &a, &b),
            &js(0.7, &b, &a),
            1e-12,
        );
        let asymmetric = js(0.3, &a, &b)
            .iter()
            .zip(js(0.3, &b, &a))
            .any(|(x, y)| (x - y).abs() > 1e-6);
        assert!(
            asymmetric,
            "{dev_name}: JS at β = 0.3 should not be symmetric"
        );
    }
}

#[test]
fn high_temperature_drives_every_divergence_to_zero() {
    for (dev_name, device) in devices() {
        let mask = ones(&device);
        let s = logits(7, 5.0, &device, DType::F64);
        let t = TeacherTarget::full(logits(8, 5.0, &device, DType::F64));
        let taus = [2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0];
        for d in all_divergences() {
            let values: Vec<f64> = taus
                .iter()
                .map(|&tau| {
                    let v = mean(d, tau, &s, &t, &mask);
                    match d {
                        // Its minimum is H(p), which tends to ln V: subtract it.
                        Divergence::DistillmSkewKl { .. } => {
                            let h = entropy(&pseudo_random(N, 8, 5.0), tau, SHAPE[2]);
                            v - h.iter().sum::<f64>() / h.len() as f64
                        }
                        _ => v,
                    }
                })
                .collect();
            for w in values.windows(2) {
                assert!(
                    w[1] < w[0],
                    "{dev_name} {d}: not decreasing in τ: {values:?}"
                );
            }
            // KL-type divergences fall as 1/τ², TV as 1/τ.
            let last = values[values.len() - 1];
            assert!(
                last < 1e-2 && last < 1e-2 * values[0],
                "{dev_name} {d} at τ = 1024: {values:?}"
            );
        }
        // skew_kl itself tends to ln V.
        let v = mean(
            Divergence::DistillmSkewKl { lambda: 0.1 },
            1e6,
            &s,
            &t,
            &mask,
        );
        assert_close(
            &format!("{dev_name} skew_kl at τ = 1e6"),
            v,
            (SHAPE[2] as f64).ln(),
            1e-6,
        );
    }
}

#[test]
fn top_k_coarsening_never_exceeds_the_full_divergence() {
    for (dev_name, device) in devices() {
        let mask = ones(&device);
        for seed in 0..3u64 {
            let s = logits(30 + seed, 4.0, &device, DType::F64);
            let t_logits = logits(40 + seed, 4.0, &device, DType::F64);
            let full = TeacherTarget::full(t_logits.clone());
            for tau in [1.0, 2.0] {
                for k in [1, 3, 6, SHAPE[2] - 1, SHAPE[2]] {
                    let top = TeacherTarget::from(teacher_top_k(t_logits.clone(), k, tau));
                    for d in all_divergences() {
                        if let Divergence::AdaptiveKl { .. } = d {
                            continue; // its weights change with the partition: no such inequality
                        }
                        let f = per_token(d, tau, &s, &full, &mask);
                        let c = per_token(d, tau, &s, &top, &mask);
                        let what = format!("{dev_name} seed {seed} {d} k={k} τ={tau}");
                        if k >= SHAPE[2] - 1 {
                            assert_all_close(&format!("{what}: coarse = full"), &c, &f, 1e-12);
                        } else {
                            for (i, (c, f)) in c.iter().zip(&f).enumerate() {
                                assert!(
                                    *c <= f + 1e-12,
                                    "{what} position {i}: coarse {c} > full {f}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn zero_teacher_tail_is_exact_without_reverse_kl_and_rejected_with_it() {
    for (dev_name, device) in devices() {
        for dtype in [DType::F32, DType::F64] {
            let [b, s_len, v] = SHAPE;
            let mask = ones(&device);
            let student = logits(50, 3.0, &device, dtype);
            // A teacher whose mass is all on tokens 0, 1, 2: full logits with −1e30 elsewhere
            // (p underflows to exactly 0), and the same as a top-3 with a −∞ tail.
            let head = pseudo_random(b * s_len * 3, 51, 2.0);
            let mut full_vals = vec![-1e30; N];
            for (pos, chunk) in head.chunks(3).enumerate() {
                full_vals[pos * v..pos * v + 3].copy_from_slice(chunk);
            }
            let full = TeacherTarget::full(tensor(full_vals, SHAPE, &device, dtype));
            let log_probs: Vec<f64> = head
                .chunks(3)
                .flat_map(|c| {
                    let m = c.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = c.iter().map(|x| (x - m).exp()).sum();
                    c.iter().map(move |x| x - m - z.ln()).collect::<Vec<_>>()
                })
                .collect();
            let ids: Vec<i64> = (0..b * s_len).flat_map(|_| [2, 0, 1]).collect();
            let reorder: Vec<f64> = log_probs
                .chunks(3)
                .flat_map(|c| [c[2], c[0], c[1]])
                .collect();
            let top_on = |dev: &Device| {
                TeacherTarget::top_k(
                    int_tensor(ids.clone(), [b, s_len, 3], dev),
                    tensor(reorder.clone(), [b, s_len, 3], dev, dtype),
                    tensor(vec![f64::NEG_INFINITY; b * s_len], [b, s_len], dev, dtype),
                )
            };
            let top = top_on(&device);
            let ad = device.clone().autodiff();
            let top_ad = top_on(&ad);
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
            for d in all_divergences() {
                let what = format!("{dev_name} {dtype:?} {d} with a −∞ tail");
                if d.needs_teacher_support() {
                    let err = kd(d, 1.0)
                        .try_forward(student.clone(), &top, mask.clone(), Reduction::Mean)
                        .unwrap_err();
                    let msg = err.to_string();
                    assert!(
                        matches!(
                            err,
                            DistillError::InvalidTeacher {
                                arg: "tail_log_mass",
                                ..
                            }
                        ),
                        "{what}: {msg}"
                    );
                    assert!(
                        msg.contains("−∞")
                            && msg.contains(&format!("[{b}, {s_len}]"))
                            && msg.contains(d.name()),
                        "{what}: {msg}"
                    );
                    continue;
                }
                // With no teacher mass outside the top-k, merging the other tokens loses nothing
                // for these divergences: the coarse value equals the full one.
                let coarse = per_token(d, 1.0, &student, &top, &mask);
                let full_values = per_token(d, 1.0, &student, &full, &mask);
                assert!(coarse.iter().all(|x| x.is_finite()), "{what}: {coarse:?}");
                assert_all_close(
                    &format!("{what}: coarse = full"),
                    &coarse,
                    &full_values,
                    tol,
                );
                // Finite gradients through the −∞ outcome.
                let x = logits(50, 3.0, &ad, dtype).require_grad();
                let grads = kd(d, 1.0)
                    .forward(x.clone(), &top_ad, ones(&ad), Reduction::Mean)
                    .loss
                    .backward();
                let g = host(x.grad(&grads).unwrap());
                assert!(
                    g.iter().all(|x| x.is_finite()) && g.iter().any(|x| *x != 0.0),
                    "{what}: gradient {g:?}"
                );
            }
            // With k = V the rest bucket is empty, so even RKL is fine.
            let t_logits = logits(52, 3.0, &device, dtype);
            let all = TeacherTarget::from(teacher_top_k(t_logits.clone(), v, 1.0));
            assert!(host(match &all {
                TeacherTarget::TopK(t) => t.tail_log_mass.clone(),
                _ => unreachable!(),
            })
            .iter()
            .all(|x| *x == f64::NEG_INFINITY));
            for d in [
                Divergence::ReverseKl,
                Divergence::AdaptiveKl { head_ratio: 0.5 },
            ] {
                assert_all_close(
                    &format!("{dev_name} {dtype:?} {d} k = V"),
                    &per_token(d, 1.0, &student, &all, &mask),
                    &per_token(
                        d,
                        1.0,
                        &student,
                        &TeacherTarget::full(t_logits.clone()),
                        &mask,
                    ),
                    tol,
                );
            }
        }
    }
}

#[test]
fn adaptive_kl_lies_between_forward_and_reverse_kl() {
    for (dev_name, device) in devices() {
        let mask = ones(&device);
        for seed in 0..3u64 {
            let s = logits(60 + seed, 4.0, &device, DType::F64);
            let t_logits = logits(70 + seed, 4.0, &device, DType::F64);
            for (mode, t) in [
                ("full", TeacherTarget::full(t_logits.clone())),
                (
                    "top-5",
                    TeacherTarget::from(teacher_top_k(t_logits, 5, 1.0)),
                ),
            ] {
                let fkl = per_token(Divergence::ForwardKl, 1.0, &s, &t, &mask);
                let rkl = per_token(Divergence::ReverseKl, 1.0, &s, &t, &mask);
                for head_ratio in [0.5, 0.2, 0.8] {
                    let akl = per_token(Divergence::AdaptiveKl { head_ratio }, 1.0, &s, &t, &mask);
                    for i in 0..akl.len() {
                        let (lo, hi) = (fkl[i].min(rkl[i]), fkl[i].max(rkl[i]));
                        assert!(akl[i] >= lo - 1e-12 && akl[i] <= hi + 1e-12, "{dev_name} {mode} seed {seed} akl:{head_ratio} [{i}]: {} not in [{lo}, {hi}]", akl[i]);
                    }
                }
            }
        }
    }
}

#[test]
fn masked_positions_do_not_count_and_reductions_agree() {
    for (dev_name, device) in devices() {
        let [b, s_len, _] = SHAPE;
        let mask_vals: Vec<f64> = (0..b * s_len)
            .map(|i| if i % 3 == 1 { 0.0 } else { 1.0 })
            .collect();
        let count: f64 = mask_vals.iter().sum();
        let mask = tensor(mask_vals.clone(), [b, s_len], &device, DType::F64);
        let s_vals = pseudo_random(N, 80, 4.0);
        let t = TeacherTarget::full(logits(81, 4.0, &device, DType::F64));
        // Huge values at the masked-out positions change nothing.
        let mut wild = s_vals.clone();
        for (i, x) in wild.iter_mut().enumerate() {
            if mask_vals[i / SHAPE[2]] == 0.0 {
                *x = if i % 2 == 0 { 1e6 } else { -1e6 };
            }
        }
        let s = tensor(s_vals, SHAPE, &device, DType::F64);
        let s_wild = tensor(wild, SHAPE, &device, DType::F64);
        for d in all_divergences() {
            let loss = kd(d, 2.0);
            let tokens = host(loss.forward_no_reduction(s.clone(), &t, mask.clone()));
            for (i, v) in tokens.iter().enumerate() {
                if mask_vals[i] == 0.0 {
                    assert_eq!(*v, 0.0, "{dev_name} {d}: masked position {i}");
                }
            }
            let r =
                |x: &Tensor<3>, red| scalar(&loss.forward(x.clone(), &t, mask.clone(), red).loss);
            let sum = r(&s, Reduction::Sum);
            assert_close(
                &format!("{dev_name} {d} sum"),
                sum,
                tokens.iter().sum(),
                1e-12,
            );
            assert_close(
                &format!("{dev_name} {d} mean"),
                r(&s, Reduction::Mean),
                sum / count,
                1e-12,
            );
            assert_close(
                &format!("{dev_name} {d} auto"),
                r(&s, Reduction::Auto),
                sum / count,
                1e-12,
            );
            assert_close(
                &format!("{dev_name} {d} batch mean"),
                r(&s, Reduction::BatchMean),
                sum / b as f64,
                1e-12,
            );
            assert_close(
                &format!("{dev_name} {d} masked-out values"),
                r(&s_wild, Reduction::Mean),
                sum / count,
                1e-12,
            );
            let squared = KdLossConfig::new(d)
                .with_temperature(2.0)
                .with_temperature_squared(true)
                .init();
            assert_close(
                &format!("{dev_name} {d} τ²"),
                scalar(
                    &squared
                        .forward(s.clone(), &t, mask.clone(), Reduction::Mean)
                        .loss,
                ),
                4.0 * sum / count,
                1e-12,
            );
        }
    }
}

#[test]
fn alpha_zero_never_reads_the_teacher_and_alpha_one_is_pure_kd() {
    for (dev_name, device) in devices() {
        let [b, s_len, v] = SHAPE;
        let mask = ones(&device);
        let s = logits(90, 3.0, &device, DType::F64);
        let targets = int_tensor(
            (0..(b * s_len) as i64).map(|i| i % v as i64).collect(),
            [b, s_len],
            &device,
        );
        let nan_teacher =
            TeacherTarget::full(tensor(vec![f64::NAN; N], SHAPE, &device, DType::F64));
        let ce_only = KdObjectiveConfig::new(KdLossConfig::new(Divergence::ReverseKl))
            .with_alpha(0.0)
            .init();
        let out = ce_only.forward(
            s.clone(),
            targets.clone(),
            mask.clone(),
            &nan_teacher,
            Reduction::Mean,
        );
        let ce = scalar(&masked_cross_entropy(
            s.clone(),
            targets.clone(),
            mask.clone(),
            Reduction::Mean,
        ));
        assert_close(&format!("{dev_name} α = 0"), scalar(&out.loss), ce, 1e-12);
        assert_eq!(scalar(&out.kd), 0.0);
        // ...but the teacher's shapes are still checked.
        let wrong = TeacherTarget::full(tensor(
            vec![0.0; b * s_len * 5],
            [b, s_len, 5],
            &device,
            DType::F64,
        ));
        let err = ce_only
            .try_forward(
                s.clone(),
                targets.clone(),
                mask.clone(),
                &wrong,
                Reduction::Mean,
            )
            .unwrap_err();
        assert!(
            matches!(err, DistillError::Shape { .. }),
            "{dev_name}: {err}"
        );

        let t = TeacherTarget::full(logits(91, 3.0, &device, DType::F64));
        let kd_only = KdObjectiveConfig::new(KdLossConfig::new(Divergence::ReverseKl))
            .with_alpha(1.0)
            .init();
        let out = kd_only.forward(s.clone(), targets, mask.clone(), &t, Reduction::Mean);
        assert_close(
            &format!("{dev_name} α = 1"),
            scalar(&out.loss),
            mean(Divergence::ReverseKl, 1.0, &s, &t, &mask),
            1e-12,
        );
    }
}
