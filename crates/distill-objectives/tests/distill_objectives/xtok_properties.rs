//! Cross-tokenizer objectives: invariants (ULD of a model with itself, vocabulary
//! permutations, MinEdit of identical sequences, MinEdit with one shared tokenizer = forward
//! KL, further padding) and gradients against central finite differences (f64), with no
//! gradient for the teacher or the masked-out positions.

use crate::common::*;
use crate::xtok::{hand_vocab, mined_input, uld_inputs, xtok_fixtures};
use distill_objectives::{
    MinEditAlignment, MinedInput, MinedLossConfig, UldLossConfig, UnalignedPositions,
    VocabIntersection,
};

fn uld_mean(s: Tensor<3>, sm: Tensor<2>, t: Tensor<3>, tm: Tensor<2>) -> f64 {
    scalar(
        &UldLossConfig::new()
            .init()
            .forward(s, sm, t, tm, Reduction::Mean)
            .loss,
    )
}

#[test]
fn uld_of_a_model_with_itself_is_zero() {
    for (dev_name, device) in devices() {
        let logits = tensor(
            pseudo_random(2 * 5 * 11, 3, 4.0),
            [2, 5, 11],
            &device,
            DType::F64,
        );
        let mask = tensor(
            vec![0., 1., 1., 1., 0., 0., 0., 1., 1., 1.],
            [2, 5],
            &device,
            DType::F64,
        );
        let per_token = host(UldLossConfig::new().init().forward_no_reduction(
            logits.clone(),
            mask.clone(),
            logits.clone(),
            mask.clone(),
        ));
        assert!(
            per_token.iter().all(|&v| v.abs() < 1e-14),
            "{dev_name}: {per_token:?}"
        );
        // Also with the teacher's response shifted by a prompt of another length.
        let shifted = Tensor::cat(
            vec![
                tensor(
                    pseudo_random(2 * 2 * 11, 9, 4.0),
                    [2, 2, 11],
                    &device,
                    DType::F64,
                ),
                logits.clone(),
            ],
            1,
        );
        let shifted_mask = Tensor::cat(
            vec![Tensor::zeros([2, 2], (&device, DType::F64)), mask.clone()],
            1,
        );
        let v = uld_mean(logits.clone(), mask.clone(), shifted, shifted_mask);
        assert!(v.abs() < 1e-14, "{dev_name}: {v}");
        // But not with another teacher.
        let other = tensor(
            pseudo_random(2 * 5 * 11, 4, 4.0),
            [2, 5, 11],
            &device,
            DType::F64,
        );
        assert!(
            uld_mean(logits, mask.clone(), other, mask) > 0.01,
            "{dev_name}"
        );
    }
}

/// `x` `[B, S, V]` with its last dim permuted by `perm`.
fn permute_vocab(x: &[f64], vocab: usize, perm: &[usize]) -> Vec<f64> {
    x.chunks(vocab)
        .flat_map(|row| perm.iter().map(move |&p| row[p]))
        .collect()
}

#[test]
fn uld_is_invariant_to_permuting_either_vocabulary() {
    let fx = xtok_fixtures();
    for (dev_name, device) in devices() {
        for case in fx["uld"].as_array().unwrap() {
            let (s, sm, t, tm) = uld_inputs(case, &device, DType::F64);
            let [_, _, vs] = s.dims();
            let [_, _, vt] = t.dims();
            let base = host(UldLossConfig::new().init().forward_no_reduction(
                s.clone(),
                sm.clone(),
                t.clone(),
                tm.clone(),
            ));
            // A reversal and a rotation of each vocabulary.
            let rev_s: Vec<usize> = (0..vs).rev().collect();
            let rot_t: Vec<usize> = (0..vt).map(|i| (i + 3) % vt).collect();
            let s2 = tensor(
                permute_vocab(&floats(&case["student"]), vs, &rev_s),
                s.dims(),
                &device,
                DType::F64,
            );
            let t2 = tensor(
                permute_vocab(&floats(&case["teacher"]), vt, &rot_t),
                t.dims(),
                &device,
                DType::F64,
            );
            let permuted = host(
                UldLossConfig::new()
                    .init()
                    .forward_no_reduction(s2, sm, t2, tm),
            );
            assert_all_close(dev_name, &permuted, &base, 1e-12);
        }
    }
}

#[test]
fn min_edit_alignment_of_identical_sequences_is_the_identity() {
    let tokens = [
        "The", "Ġcat", "Ġsat", "Ġon", "Ġthe", "Ġmat", ".", "Ġthe", "Ġthe",
    ];
    let a = MinEditAlignment::new(&tokens, &tokens);
    let identity: Vec<(usize, usize)> = (0..tokens.len()).map(|i| (i, i)).collect();
    assert_eq!(a.path, identity);
    assert_eq!(a.cost, 0);
    assert_eq!(a.aligned, (0..tokens.len()).map(Some).collect::<Vec<_>>());
    // The same text in SentencePiece spelling: the markers fold, still the identity.
    let sp: Vec<String> = tokens.iter().map(|t| t.replace('Ġ', "▁")).collect();
    let a = MinEditAlignment::new(&tokens, &sp);
    assert_eq!(a.path, identity);
    assert_eq!(a.aligned_count(), tokens.len());
    // A split token is paired with both halves: not aligned, its neighbours are.
    let split = ["The", "Ġc", "at", "Ġsat"];
    let a = MinEditAlignment::new(&["The", "Ġcat", "Ġsat"], &split);
    assert_eq!(a.aligned, vec![Some(0), None, Some(3)]);
    assert_eq!(a.student_to_teacher[1], vec![1, 2]);
}

/// One shared vocabulary of `v` tokens, as strings.
fn toy_vocab(v: usize) -> Vec<String> {
    (0..v).map(|i| format!("Ġw{i}")).collect()
}

#[test]
fn mined_with_one_shared_tokenizer_is_the_forward_kl() {
    // Same vocabulary, same tokens, every response position aligned: MinEdit is token-level
    // forward KL at τ (KdLoss), position by position.
    let (b, s, v) = (2, 6, 9);
    let vocab = toy_vocab(v);
    let map = VocabIntersection::from_vocabularies(&vocab, &vocab).unwrap();
    assert_eq!(map.len(), v);
    let ids: Vec<i64> = (0..b * s).map(|i| ((i * 7 + 3) % v) as i64).collect();
    let tokens: Vec<Vec<String>> = ids
        .chunks(s)
        .map(|r| r.iter().map(|&i| vocab[i as usize].clone()).collect())
        .collect();
    let mask_v = vec![0., 1., 1., 1., 1., 0., 0., 0., 1., 1., 1., 1.];
    for (dev_name, device) in devices() {
        let student = tensor(
            pseudo_random(b * s * v, 11, 3.0),
            [b, s, v],
            &device,
            DType::F64,
        );
        let teacher = tensor(
            pseudo_random(b * s * v, 12, 3.0),
            [b, s, v],
            &device,
            DType::F64,
        );
        let mask = tensor(mask_v.clone(), [b, s], &device, DType::F64);
        for tau in [1.0, 2.0] {
            let input = MinedInput {
                student_logits: student.clone(),
                student_mask: mask.clone(),
                student_targets: None,
                teacher_logits: teacher.clone(),
                teacher_mask: mask.clone(),
                student_tokens: tokens.clone(),
                teacher_tokens: tokens.clone(),
            };
            let loss = MinedLossConfig::new()
                .with_temperature(tau)
                .with_unaligned(UnalignedPositions::Skip)
                .init();
            let out = loss.forward(input.clone(), &map, Reduction::Mean);
            assert_eq!(out.aligned_positions, 8, "{dev_name}");
            let got = host(loss.forward_no_reduction(input, &map));
            let want = host(kd(Divergence::ForwardKl, tau).forward_no_reduction(
                student.clone(),
                &TeacherTarget::full(teacher.clone()),
                mask.clone(),
            ));
            assert_all_close(&format!("{dev_name} τ={tau}"), &got, &want, 1e-12);
        }
    }
}

/// `x` `[B, S, V]` (row-major values) padded to `[B, S + extra, V]` with `fill` values.
fn pad_seq(x: &[f64], dims: [usize; 3], extra: usize, fill: &[f64]) -> Vec<f64> {
    let [b, s, v] = dims;
    let mut out = Vec::with_capacity(b * (s + extra) * v);
    for row in 0..b {
        out.extend_from_slice(&x[row * s * v..(row + 1) * s * v]);
        out.extend_from_slice(&fill[row * extra * v..(row + 1) * extra * v]);
    }
    out
}

fn pad_mask(m: &[f64], b: usize, s: usize, extra: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for row in 0..b {
        out.extend_from_slice(&m[row * s..(row + 1) * s]);
        out.extend(std::iter::repeat_n(0.0, extra));
    }
    out
}

/// The per-position values of the padded inputs, with the padding dropped.
fn unpad(x: &[f64], b: usize, s: usize, extra: usize) -> Vec<f64> {
    (0..b)
        .flat_map(|row| x[row * (s + extra)..row * (s + extra) + s].to_vec())
        .collect()
}

#[test]
fn padding_a_batch_further_changes_nothing() {
    let fx = xtok_fixtures();
    let (_, _, map) = hand_vocab();
    for (dev_name, device) in devices() {
        // ULD: 3 more positions on the student side, 2 on the teacher side.
        let uld = UldLossConfig::new().init();
        for case in fx["uld"].as_array().unwrap() {
            let (s, sm, t, tm) = uld_inputs(case, &device, DType::F64);
            let sd = s.dims();
            let td = t.dims();
            let base = host(uld.forward_no_reduction(s.clone(), sm.clone(), t.clone(), tm.clone()));
            let base_sum = scalar(&uld.forward(s, sm, t, tm, Reduction::Sum).loss);
            let s2 = pad_seq(
                &floats(&case["student"]),
                sd,
                3,
                &pseudo_random(sd[0] * 3 * sd[2], 1, 9.0),
            );
            let t2 = pad_seq(
                &floats(&case["teacher"]),
                td,
                2,
                &pseudo_random(td[0] * 2 * td[2], 2, 9.0),
            );
            let args = || {
                (
                    tensor(s2.clone(), [sd[0], sd[1] + 3, sd[2]], &device, DType::F64),
                    tensor(
                        pad_mask(&floats(&case["student_mask"]), sd[0], sd[1], 3),
                        [sd[0], sd[1] + 3],
                        &device,
                        DType::F64,
                    ),
                    tensor(t2.clone(), [td[0], td[1] + 2, td[2]], &device, DType::F64),
                    tensor(
                        pad_mask(&floats(&case["teacher_mask"]), td[0], td[1], 2),
                        [td[0], td[1] + 2],
                        &device,
                        DType::F64,
                    ),
                )
            };
            let (a, b, c, d) = args();
            let padded = host(uld.forward_no_reduction(a, b, c, d));
            assert_all_close(dev_name, &unpad(&padded, sd[0], sd[1], 3), &base, 1e-12);
            let (a, b, c, d) = args();
            assert_close(
                dev_name,
                scalar(&uld.forward(a, b, c, d, Reduction::Sum).loss),
                base_sum,
                1e-12,
            );
        }

        // MinEdit: 2 more positions on each side.
        let case = &fx["mined"][0];
        let loss = MinedLossConfig::new().with_temperature(2.0).init();
        let input = mined_input(case, &device, DType::F64);
        let sd = input.student_logits.dims();
        let td = input.teacher_logits.dims();
        let base = host(loss.forward_no_reduction(input.clone(), &map));
        let base_mean = scalar(&loss.forward(input, &map, Reduction::Mean).loss);
        let padded_targets: Vec<i64> = ints(&case["student_targets"])
            .chunks(sd[1])
            .flat_map(|r| r.iter().copied().chain([0, 0]).collect::<Vec<_>>())
            .collect();
        let pad_tokens = |rows: &Value| -> Vec<Vec<String>> {
            rows.as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let mut r = crate::xtok::strings(r);
                    r.extend(["Ġpad".to_string(), "x".to_string()]);
                    r
                })
                .collect()
        };
        let padded_input = MinedInput {
            student_logits: tensor(
                pad_seq(
                    &floats(&case["student"]),
                    sd,
                    2,
                    &pseudo_random(sd[0] * 2 * sd[2], 3, 9.0),
                ),
                [sd[0], sd[1] + 2, sd[2]],
                &device,
                DType::F64,
            ),
            student_mask: tensor(
                pad_mask(&floats(&case["student_mask"]), sd[0], sd[1], 2),
                [sd[0], sd[1] + 2],
                &device,
                DType::F64,
            ),
            student_targets: Some(int_tensor(padded_targets, [sd[0], sd[1] + 2], &device)),
            teacher_logits: tensor(
                pad_seq(
                    &floats(&case["teacher"]),
                    td,
                    2,
                    &pseudo_random(td[0] * 2 * td[2], 4, 9.0),
                ),
                [td[0], td[1] + 2, td[2]],
                &device,
                DType::F64,
            ),
            teacher_mask: tensor(
                pad_mask(&floats(&case["teacher_mask"]), td[0], td[1], 2),
                [td[0], td[1] + 2],
                &device,
                DType::F64,
            ),
            student_tokens: pad_tokens(&case["student_tokens"]),
            teacher_tokens: pad_tokens(&case["teacher_tokens"]),
        };
        let padded = host(loss.forward_no_reduction(padded_input.clone(), &map));
        assert_all_close(dev_name, &unpad(&padded, sd[0], sd[1], 2), &base, 1e-12);
        assert_close(
            dev_name,
            scalar(&loss.forward(padded_input, &map, Reduction::Mean).loss),
            base_mean,
            1e-12,
        );
    }
}

/// The point a gradient is checked at: logits values and shapes, and the student mask.
struct Point {
    student: Vec<f64>,
    student_dims: [usize; 3],
    student_mask: Vec<f64>,
    teacher: Vec<f64>,
    teacher_dims: [usize; 3],
}

impl Point {
    fn of(case: &Value) -> Self {
        Self {
            student: floats(&case["student"]),
            student_dims: crate::xtok::shape(&case["student_shape"]),
            student_mask: floats(&case["student_mask"]),
            teacher: floats(&case["teacher"]),
            teacher_dims: crate::xtok::shape(&case["teacher_shape"]),
        }
    }
}

/// Checks the student gradient of `f` against finite differences, that masked-out student
/// positions (`mask[b, t] = 0`) get exactly none, and that the teacher gets none.
fn check_gradient(
    what: &str,
    point: &Point,
    device: &Device,
    f: impl Fn(Tensor<3>, Tensor<3>) -> Tensor<1>,
) {
    let Point {
        student,
        student_dims,
        student_mask,
        teacher,
        teacher_dims,
    } = point;
    let (student_dims, teacher_dims) = (*student_dims, *teacher_dims);
    let ad = device.clone().autodiff();
    let x = tensor(student.to_vec(), student_dims, &ad, DType::F64).require_grad();
    let t = tensor(teacher.to_vec(), teacher_dims, &ad, DType::F64).require_grad();
    let grads = f(x.clone(), t.clone()).backward();
    let analytic = host(x.grad(&grads).expect("student gradient"));
    let teacher_t = tensor(teacher.to_vec(), teacher_dims, &ad, DType::F64);
    let numeric = finite_differences(student, 0..student.len(), |v| {
        scalar(&f(
            tensor(v, student_dims, &ad, DType::F64),
            teacher_t.clone(),
        ))
    });
    assert_gradient(what, &analytic, &numeric);
    for (i, g) in analytic.iter().enumerate() {
        if student_mask[i / student_dims[2]] == 0.0 {
            assert_eq!(*g, 0.0, "{what}: gradient at masked-out logit {i}");
        }
    }
    if let Some(g) = t.grad(&grads) {
        assert!(
            host(g).iter().all(|&v| v == 0.0),
            "{what}: the teacher got a gradient"
        );
    }
}

#[test]
fn uld_gradient_matches_finite_differences() {
    let fx = xtok_fixtures();
    let uld = UldLossConfig::new().init();
    for (dev_name, device) in devices() {
        for case in fx["uld"].as_array().unwrap() {
            let point = Point::of(case);
            let (sd, td) = (point.student_dims, point.teacher_dims);
            let ad = device.clone().autodiff();
            let sm_t = tensor(point.student_mask.clone(), [sd[0], sd[1]], &ad, DType::F64);
            let tm_t = tensor(
                floats(&case["teacher_mask"]),
                [td[0], td[1]],
                &ad,
                DType::F64,
            );
            for reduction in [Reduction::Mean, Reduction::Sum] {
                check_gradient(
                    &format!("{dev_name} ULD {} {reduction:?}", case["name"]),
                    &point,
                    &device,
                    |x, t| {
                        uld.forward(x, sm_t.clone(), t, tm_t.clone(), reduction.clone())
                            .loss
                    },
                );
            }
        }
    }
}

#[test]
fn mined_gradient_matches_finite_differences() {
    let fx = xtok_fixtures();
    let (_, _, map) = hand_vocab();
    let case = &fx["mined"][0];
    for (dev_name, device) in devices() {
        let ad = device.clone().autodiff();
        let template = mined_input(case, &ad, DType::F64);
        let point = Point::of(case);
        for unaligned in [UnalignedPositions::TargetOneHot, UnalignedPositions::Skip] {
            for tau in [1.0, 2.0] {
                let loss = MinedLossConfig::new()
                    .with_temperature(tau)
                    .with_unaligned(unaligned)
                    .init();
                check_gradient(
                    &format!("{dev_name} MinEdit {unaligned:?} τ={tau}"),
                    &point,
                    &device,
                    |x, t| {
                        let input = MinedInput {
                            student_logits: x,
                            teacher_logits: t,
                            ..template.clone()
                        };
                        loss.forward(input, &map, Reduction::Mean).loss
                    },
                );
            }
        }
    }
}

#[test]
fn without_any_pair_the_losses_are_zero_with_a_zero_gradient() {
    // The student's response is in row 0, the teacher's in row 1: nothing to pair.
    let (b, s, v) = (2, 3, 5);
    let vocab = toy_vocab(v);
    let map = VocabIntersection::from_vocabularies(&vocab, &vocab).unwrap();
    let tokens = vec![vocab[..s].to_vec(), vocab[..s].to_vec()];
    for (dev_name, device) in devices() {
        let ad = device.clone().autodiff();
        let x = tensor(pseudo_random(b * s * v, 5, 2.0), [b, s, v], &ad, DType::F64).require_grad();
        let t = tensor(pseudo_random(b * s * v, 6, 2.0), [b, s, v], &ad, DType::F64);
        let sm = tensor(vec![1., 1., 0., 0., 0., 0.], [b, s], &ad, DType::F64);
        let tm = tensor(vec![0., 0., 0., 0., 1., 1.], [b, s], &ad, DType::F64);
        let uld = UldLossConfig::new().init().forward(
            x.clone(),
            sm.clone(),
            t.clone(),
            tm.clone(),
            Reduction::Mean,
        );
        assert_eq!(
            (uld.aligned_positions, uld.student_positions),
            (0, 2),
            "{dev_name}"
        );
        let mined = MinedLossConfig::new()
            .with_unaligned(UnalignedPositions::Skip)
            .init()
            .forward(
                MinedInput {
                    student_logits: x.clone(),
                    student_mask: sm,
                    student_targets: None,
                    teacher_logits: t,
                    teacher_mask: tm,
                    student_tokens: tokens.clone(),
                    teacher_tokens: tokens.clone(),
                },
                &map,
                Reduction::Mean,
            );
        assert_eq!(mined.aligned_positions, 0, "{dev_name}");
        for loss in [uld.loss, mined.loss] {
            assert_eq!(scalar(&loss), 0.0, "{dev_name}");
            let grads = loss.backward();
            let g = host(x.grad(&grads).expect("a gradient, of zeros"));
            assert!(g.iter().all(|&v| v == 0.0), "{dev_name}");
        }
    }
}
