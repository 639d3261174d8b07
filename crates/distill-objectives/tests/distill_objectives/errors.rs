//! Bad input: every error names the argument and the shapes or values, from the `try_` API; the
//! panicking API panics with the same message.

use crate::common::*;

const SHAPE: [usize; 3] = [2, 3, 5];

struct Fx {
    device: Device,
    student: Tensor<3>,
    teacher: Tensor<3>,
    mask: Tensor<2>,
    targets: Tensor<2, Int>,
}

fn fx(device: &Device) -> Fx {
    let n = SHAPE.iter().product();
    Fx {
        device: device.clone(),
        student: tensor(pseudo_random(n, 1, 2.0), SHAPE, device, DType::F32),
        teacher: tensor(pseudo_random(n, 2, 2.0), SHAPE, device, DType::F32),
        mask: Tensor::ones([2, 3], device),
        targets: int_tensor(vec![0, 1, 2, 3, 4, 0], [2, 3], device),
    }
}

/// `err`'s message contains every one of `parts`.
fn assert_mentions(err: &DistillError, parts: &[&str]) {
    let msg = err.to_string();
    for part in parts {
        assert!(msg.contains(part), "`{msg}` does not mention `{part}`");
    }
}

fn kd_err(
    loss: &KdLoss,
    f: &Fx,
    student: Tensor<3>,
    teacher: &TeacherTarget,
    mask: Tensor<2>,
) -> DistillError {
    let err = loss
        .try_forward(student.clone(), teacher, mask.clone(), Reduction::Mean)
        .unwrap_err();
    let again = loss
        .try_forward_no_reduction(student, teacher, mask)
        .unwrap_err();
    assert_eq!(err, again, "forward and forward_no_reduction disagree");
    let _ = f;
    err
}

#[test]
fn shape_mismatches_name_both_shapes() {
    for (_, device) in devices() {
        let f = fx(&device);
        let loss = kd(Divergence::ForwardKl, 1.0);
        let wide = tensor(vec![0.0; 2 * 3 * 7], [2, 3, 7], &device, DType::F32);
        let err = kd_err(
            &loss,
            &f,
            f.student.clone(),
            &TeacherTarget::full(wide),
            f.mask.clone(),
        );
        assert!(matches!(
            err,
            DistillError::Shape {
                arg: "teacher logits",
                ..
            }
        ));
        assert_mentions(
            &err,
            &["vocabulary", "[2, 3, 7]", "[2, 3, 5]", "student_logits"],
        );

        let long = tensor(vec![0.0; 2 * 4 * 5], [2, 4, 5], &device, DType::F32);
        let err = kd_err(
            &loss,
            &f,
            f.student.clone(),
            &TeacherTarget::full(long),
            f.mask.clone(),
        );
        assert_mentions(&err, &["batch / seq", "[2, 4, 5]", "[2, 3, 5]"]);

        let err = kd_err(
            &loss,
            &f,
            f.student.clone(),
            &TeacherTarget::full(f.teacher.clone()),
            Tensor::ones([2, 4], &device),
        );
        assert!(matches!(err, DistillError::Shape { arg: "mask", .. }));
        assert_mentions(&err, &["`mask`", "[2, 4]", "[2, 3]", "[2, 3, 5]"]);

        let empty = Tensor::<3>::zeros([2, 0, 5], &device);
        let err = kd_err(
            &loss,
            &f,
            empty,
            &TeacherTarget::full(f.teacher.clone()),
            f.mask.clone(),
        );
        assert_mentions(&err, &["student_logits", "non-empty", "[2, 0, 5]"]);

        // Top-k shapes.
        let top = teacher_top_k(f.teacher.clone(), 2, 1.0);
        let bad_ids = TeacherTarget::top_k(
            int_tensor(vec![0; 4 * 2], [1, 4, 2], &device),
            top.log_probs.clone(),
            top.tail_log_mass.clone(),
        );
        assert_mentions(
            &kd_err(&loss, &f, f.student.clone(), &bad_ids, f.mask.clone()),
            &["teacher ids", "[1, 4, 2]", "[2, 3, 5]"],
        );
        let bad_lp = TeacherTarget::top_k(
            top.ids.clone(),
            Tensor::zeros([2, 3, 3], &device),
            top.tail_log_mass.clone(),
        );
        assert_mentions(
            &kd_err(&loss, &f, f.student.clone(), &bad_lp, f.mask.clone()),
            &["teacher log_probs", "[2, 3, 2]", "[2, 3, 3]"],
        );
        let bad_tail = TeacherTarget::top_k(
            top.ids.clone(),
            top.log_probs.clone(),
            Tensor::zeros([2, 2], &device),
        );
        assert_mentions(
            &kd_err(&loss, &f, f.student.clone(), &bad_tail, f.mask.clone()),
            &["tail_log_mass", "[2, 3]", "[2, 2]"],
        );

        // Cross-entropy and top-1 agreement.
        let err = try_masked_cross_entropy(
            f.student.clone(),
            int_tensor(vec![0; 4], [2, 2], &device),
            f.mask.clone(),
            Reduction::Mean,
        )
        .unwrap_err();
        assert_mentions(&err, &["targets", "[2, 2]", "[2, 3]"]);
        let err = try_masked_cross_entropy(
            f.student.clone(),
            f.targets.clone(),
            Tensor::ones([3, 3], &device),
            Reduction::Mean,
        )
        .unwrap_err();
        assert_mentions(&err, &["mask", "[3, 3]", "[2, 3]"]);
        let err = try_top1_agreement(
            f.student.clone(),
            Tensor::zeros([2, 3, 4], &device),
            f.mask.clone(),
        )
        .unwrap_err();
        assert_mentions(&err, &["teacher_logits", "[2, 3, 4]", "[2, 3, 5]"]);
        // The objective checks targets too.
        let objective = KdObjectiveConfig::new(KdLossConfig::new(Divergence::ForwardKl)).init();
        let err = objective
            .try_forward(
                f.student.clone(),
                int_tensor(vec![0; 2], [1, 2], &device),
                f.mask.clone(),
                &TeacherTarget::full(f.teacher.clone()),
                Reduction::Mean,
            )
            .unwrap_err();
        assert_mentions(&err, &["targets", "[1, 2]"]);
    }
}

#[test]
fn bad_masks_are_rejected() {
    for (_, device) in devices() {
        let f = fx(&device);
        let loss = kd(Divergence::ForwardKl, 1.0);
        let teacher = TeacherTarget::full(f.teacher.clone());
        let err = kd_err(
            &loss,
            &f,
            f.student.clone(),
            &teacher,
            Tensor::zeros([2, 3], &device),
        );
        assert!(matches!(err, DistillError::InvalidMask { .. }));
        assert_mentions(&err, &["mask", "[2, 3]", "all zeros"]);
        let half = tensor(
            vec![1.0, 0.5, 1.0, 1.0, 0.0, 1.0],
            [2, 3],
            &device,
            DType::F32,
        );
        let err = kd_err(&loss, &f, f.student.clone(), &teacher, half.clone());
        assert_mentions(&err, &["mask", "[2, 3]", "only 0", "1"]);
        let err = try_masked_cross_entropy(
            f.student.clone(),
            f.targets.clone(),
            Tensor::zeros([2, 3], &device),
            Reduction::Mean,
        )
        .unwrap_err();
        assert_mentions(&err, &["all zeros"]);
        let err = try_top1_agreement(f.student.clone(), f.teacher.clone(), half).unwrap_err();
        assert_mentions(&err, &["only 0"]);
    }
}

#[test]
fn invalid_configuration_values_are_rejected() {
    let cases: Vec<(KdLossConfig, &str, &str)> = vec![
        (
            KdLossConfig::new(Divergence::ForwardKl).with_temperature(0.0),
            "temperature",
            "0",
        ),
        (
            KdLossConfig::new(Divergence::ForwardKl).with_temperature(-1.0),
            "temperature",
            "-1",
        ),
        (
            KdLossConfig::new(Divergence::ForwardKl).with_temperature(f64::NAN),
            "temperature",
            "NaN",
        ),
        (
            KdLossConfig::new(Divergence::ForwardKl).with_temperature(f64::INFINITY),
            "temperature",
            "inf",
        ),
        (
            KdLossConfig::new(Divergence::JensenShannon { beta: 0.0 }),
            "beta",
            "(0, 1)",
        ),
        (
            KdLossConfig::new(Divergence::JensenShannon { beta: 1.0 }),
            "beta",
            "(0, 1)",
        ),
        (
            KdLossConfig::new(Divergence::SkewedForwardKl { lambda: 1.2 }),
            "lambda",
            "1.2",
        ),
        (
            KdLossConfig::new(Divergence::SkewedReverseKl { lambda: 0.0 }),
            "lambda",
            "srkl",
        ),
        (
            KdLossConfig::new(Divergence::DistillmSkewKl { lambda: -0.5 }),
            "lambda",
            "skew_kl",
        ),
        (
            KdLossConfig::new(Divergence::AdaptiveKl { head_ratio: 1.0 }),
            "head_ratio",
            "akl",
        ),
        (
            KdLossConfig::new(Divergence::AdaptiveKl {
                head_ratio: f64::NAN,
            }),
            "head_ratio",
            "NaN",
        ),
    ];
    for (config, field, value) in cases {
        let err = config.try_init().unwrap_err();
        assert!(
            matches!(err, DistillError::InvalidConfig { field: f, .. } if f == field),
            "{err}"
        );
        assert_mentions(&err, &[field, value]);
    }
    for alpha in [-0.1, 1.5, f64::NAN] {
        let err = KdObjectiveConfig::new(KdLossConfig::new(Divergence::ForwardKl))
            .with_alpha(alpha)
            .try_init()
            .unwrap_err();
        assert_mentions(&err, &["alpha", "[0, 1]"]);
    }
    // A mutated field is caught at the next forward.
    for (_, device) in devices() {
        let f = fx(&device);
        let mut loss = kd(Divergence::ForwardKl, 1.0);
        loss.temperature = 0.0;
        let err = kd_err(
            &loss,
            &f,
            f.student.clone(),
            &TeacherTarget::full(f.teacher.clone()),
            f.mask.clone(),
        );
        assert_mentions(&err, &["temperature"]);
    }
}

#[test]
#[should_panic(expected = "KdLossConfig: invalid `temperature` = 0")]
fn init_panics_with_the_error_message() {
    KdLossConfig::new(Divergence::ForwardKl)
        .with_temperature(0.0)
        .init();
}

#[test]
#[should_panic(expected = "KdLoss: shape mismatch in `teacher logits`: vocabulary mismatch")]
fn forward_panics_with_the_error_message() {
    let device = devices()[0].1.clone();
    let f = fx(&device);
    let wide = TeacherTarget::full(Tensor::zeros([2, 3, 6], &device));
    kd(Divergence::ForwardKl, 1.0).forward(f.student, &wide, f.mask, Reduction::Mean);
}

/// The finiteness check sums the logits first: finite logits whose sum overflows f32 are still
/// accepted (the exact test decides), and an overflowing tensor that does hold an ∞ is refused.
#[test]
fn finite_logits_whose_sum_overflows_are_accepted() {
    for (_, device) in devices() {
        let f = fx(&device);
        let n: usize = SHAPE.iter().product();
        let huge = tensor(vec![3.0e38; n], SHAPE, &device, DType::F32);
        let loss = kd(Divergence::ForwardKl, 1.0);
        let teacher = TeacherTarget::full(f.teacher.clone());
        let value = loss
            .try_forward(huge.clone(), &teacher, f.mask.clone(), Reduction::Mean)
            .expect("finite logits are valid however large their sum");
        assert!(scalar(&value.loss).is_finite(), "{}", scalar(&value.loss));
        let uniform = loss
            .try_forward(
                tensor(vec![0.0; n], SHAPE, &device, DType::F32),
                &teacher,
                f.mask.clone(),
                Reduction::Mean,
            )
            .unwrap();
        assert_close(
            "equal logits",
            scalar(&value.loss),
            scalar(&uniform.loss),
            1e-5,
        );
        let mut vals = vec![3.0e38; n];
        vals[11] = f64::INFINITY;
        let err = kd_err(
            &loss,
            &f,
            tensor(vals, SHAPE, &device, DType::F32),
            &teacher,
            f.mask.clone(),
        );
        assert!(
            matches!(
                err,
                DistillError::NonFinite {
                    arg: "student_logits",
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn non_finite_logits_name_student_or_teacher() {
    for (_, device) in devices() {
        let f = fx(&device);
        let n: usize = SHAPE.iter().product();
        let mut vals = pseudo_random(n, 3, 2.0);
        vals[7] = f64::NAN;
        let nan = tensor(vals.clone(), SHAPE, &device, DType::F32);
        vals[7] = f64::INFINITY;
        let inf = tensor(vals, SHAPE, &device, DType::F32);
        for d in [
            Divergence::ForwardKl,
            Divergence::AdaptiveKl { head_ratio: 0.5 },
        ] {
            let loss = kd(d, 1.0);
            for bad in [&nan, &inf] {
                let err = kd_err(
                    &loss,
                    &f,
                    bad.clone(),
                    &TeacherTarget::full(f.teacher.clone()),
                    f.mask.clone(),
                );
                assert!(
                    matches!(
                        err,
                        DistillError::NonFinite {
                            arg: "student_logits",
                            ..
                        }
                    ),
                    "{err}"
                );
                assert_mentions(&err, &["student_logits", "[2, 3, 5]", "NaN or infinite"]);
                let err = kd_err(
                    &loss,
                    &f,
                    f.student.clone(),
                    &TeacherTarget::full(bad.clone()),
                    f.mask.clone(),
                );
                assert!(
                    matches!(
                        err,
                        DistillError::NonFinite {
                            arg: "teacher logits",
                            ..
                        }
                    ),
                    "{err}"
                );
            }
        }
        let err = try_masked_cross_entropy(
            nan.clone(),
            f.targets.clone(),
            f.mask.clone(),
            Reduction::Mean,
        )
        .unwrap_err();
        assert_mentions(&err, &["`logits`", "NaN"]);
        let err = try_top1_agreement(f.student.clone(), inf.clone(), f.mask.clone()).unwrap_err();
        assert_mentions(&err, &["teacher_logits"]);
        let err = try_teacher_top_k(nan, 2, 1.0).unwrap_err();
        assert_mentions(&err, &["teacher_logits", "[2, 3, 5]"]);
        // Top-k teacher values.
        let top = teacher_top_k(f.teacher.clone(), 2, 1.0);
        let mut lp = host(top.log_probs.clone());
        lp[3] = f64::NAN;
        let t = TeacherTarget::top_k(
            top.ids.clone(),
            tensor(lp, [2, 3, 2], &device, DType::F32),
            top.tail_log_mass.clone(),
        );
        let err = kd_err(
            &kd(Divergence::ForwardKl, 1.0),
            &f,
            f.student.clone(),
            &t,
            f.mask.clone(),
        );
        assert_mentions(&err, &["teacher log_probs", "[2, 3, 2]"]);
        for bad in [f64::NAN, f64::INFINITY] {
            let mut tail = host(top.tail_log_mass.clone());
            tail[1] = bad;
            let t = TeacherTarget::top_k(
                top.ids.clone(),
                top.log_probs.clone(),
                tensor(tail, [2, 3], &device, DType::F32),
            );
            let err = kd_err(
                &kd(Divergence::ForwardKl, 1.0),
                &f,
                f.student.clone(),
                &t,
                f.mask.clone(),
            );
            assert_mentions(&err, &["tail_log_mass", "[2, 3]", "finite or −∞"]);
        }
    }
}

#[test]
fn bad_top_k_teachers_are_rejected() {
    for (_, device) in devices() {
        let f = fx(&device);
        let loss = kd(Divergence::ForwardKl, 1.0);
        let top = teacher_top_k(f.teacher.clone(), 2, 1.0);
        let ids = host_int(top.ids.clone());
        let with_ids = |ids: Vec<i64>| {
            TeacherTarget::top_k(
                int_tensor(ids, [2, 3, 2], &device),
                top.log_probs.clone(),
                top.tail_log_mass.clone(),
            )
        };

        let mut out_of_vocab = ids.clone();
        out_of_vocab[5] = 5;
        let err = kd_err(
            &loss,
            &f,
            f.student.clone(),
            &with_ids(out_of_vocab),
            f.mask.clone(),
        );
        assert!(matches!(
            err,
            DistillError::InvalidIds {
                arg: "teacher ids",
                ..
            }
        ));
        assert_mentions(&err, &["teacher ids", "[2, 3, 2]", "0..5", "to 5"]);
        let mut negative = ids.clone();
        negative[0] = -3;
        assert_mentions(
            &kd_err(
                &loss,
                &f,
                f.student.clone(),
                &with_ids(negative),
                f.mask.clone(),
            ),
            &["from -3"],
        );
        let mut duplicate = ids.clone();
        duplicate[3] = duplicate[2];
        assert_mentions(
            &kd_err(
                &loss,
                &f,
                f.student.clone(),
                &with_ids(duplicate),
                f.mask.clone(),
            ),
            &["teacher ids", "twice"],
        );

        // k > vocab.
        let k6 = TeacherTarget::top_k(
            int_tensor(vec![0; 36], [2, 3, 6], &device),
            Tensor::zeros([2, 3, 6], &device),
            top.tail_log_mass.clone(),
        );
        let err = kd_err(&loss, &f, f.student.clone(), &k6, f.mask.clone());
        assert!(matches!(
            err,
            DistillError::InvalidConfig { field: "k", .. }
        ));
        assert_mentions(&err, &["k = 6", "1..=5", "[2, 3, 5]"]);
        for k in [0, 6] {
            let err = try_teacher_top_k(f.teacher.clone(), k, 1.0).unwrap_err();
            assert_mentions(&err, &["`k`", "1..=5", "[2, 3, 5]"]);
        }
        let err = try_teacher_top_k(f.teacher.clone(), 2, 0.0).unwrap_err();
        assert_mentions(&err, &["temperature"]);

        // Raw logits instead of log-probabilities.
        let (raw, _) = f.teacher.clone().topk_with_indices(2, 2);
        let t = TeacherTarget::top_k(top.ids.clone(), raw, top.tail_log_mass.clone());
        let err = kd_err(&loss, &f, f.student.clone(), &t, f.mask.clone());
        assert!(matches!(
            err,
            DistillError::InvalidTeacher {
                arg: "log_probs",
                ..
            }
        ));
        assert_mentions(
            &err,
            &["log_probs", "[2, 3, 2]", "distribution", "not logits"],
        );
    }
}

#[test]
fn cross_entropy_targets_are_checked_only_where_counted() {
    for (_, device) in devices() {
        let f = fx(&device);
        let mask = tensor(
            vec![1.0, 1.0, 0.0, 1.0, 1.0, 0.0],
            [2, 3],
            &device,
            DType::F32,
        );
        // -100 and 99 at the masked-out positions are fine...
        let targets = int_tensor(vec![0, 4, -100, 1, 2, 99], [2, 3], &device);
        let ce = masked_cross_entropy(f.student.clone(), targets, mask.clone(), Reduction::Mean);
        assert!(scalar(&ce).is_finite());
        // ...but not where the mask counts.
        let targets = int_tensor(vec![0, 5, 0, 1, 2, 0], [2, 3], &device);
        let err = try_masked_cross_entropy(
            f.student.clone(),
            targets.clone(),
            mask.clone(),
            Reduction::Mean,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            DistillError::InvalidIds { arg: "targets", .. }
        ));
        assert_mentions(&err, &["targets", "[2, 3]", "0..5", "to 5"]);
        let objective = KdObjectiveConfig::new(KdLossConfig::new(Divergence::ForwardKl)).init();
        let err = objective
            .try_forward(
                f.student.clone(),
                targets,
                mask,
                &TeacherTarget::full(f.teacher.clone()),
                Reduction::Mean,
            )
            .unwrap_err();
        assert_mentions(&err, &["targets", "0..5"]);
        let _ = &f.device;
    }
}
