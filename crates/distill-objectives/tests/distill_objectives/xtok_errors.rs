//! Cross-tokenizer objectives on bad input: every error names the argument and the shapes or
//! values (`try_` API); the panicking API panics with the same message.

use std::collections::HashMap;

use crate::common::*;
use crate::xtok::{hand_vocab, mined_input, xtok_fixtures};
use distill_objectives::{
    vocabulary_from_token_map, MinedInput, MinedLoss, MinedLossConfig, UldLoss, UldLossConfig,
    UnalignedPositions, VocabIntersection,
};

fn assert_mentions(err: &DistillError, parts: &[&str]) {
    let msg = err.to_string();
    for part in parts {
        assert!(msg.contains(part), "`{msg}` does not mention `{part}`");
    }
}

/// ULD inputs: student `[2, 4, 6]`, teacher `[2, 5, 7]`, all-ones masks.
fn uld_args(device: &Device) -> (Tensor<3>, Tensor<2>, Tensor<3>, Tensor<2>) {
    (
        tensor(pseudo_random(48, 1, 2.0), [2, 4, 6], device, DType::F32),
        Tensor::ones([2, 4], device),
        tensor(pseudo_random(70, 2, 2.0), [2, 5, 7], device, DType::F32),
        Tensor::ones([2, 5], device),
    )
}

fn uld_err(s: Tensor<3>, sm: Tensor<2>, t: Tensor<3>, tm: Tensor<2>) -> DistillError {
    let loss = UldLoss {};
    let err = loss
        .try_forward(
            s.clone(),
            sm.clone(),
            t.clone(),
            tm.clone(),
            Reduction::Mean,
        )
        .unwrap_err();
    assert_eq!(
        err,
        loss.try_forward_no_reduction(s, sm, t, tm).unwrap_err()
    );
    err
}

#[test]
fn uld_reports_shape_mismatches() {
    for (_, device) in devices() {
        let (s, sm, t, tm) = uld_args(&device);
        let t3 = tensor(pseudo_random(105, 3, 2.0), [3, 5, 7], &device, DType::F32);
        let err = uld_err(s.clone(), sm.clone(), t3, tm.clone());
        assert!(matches!(
            err,
            DistillError::Shape {
                arg: "teacher_logits",
                ..
            }
        ));
        assert_mentions(&err, &["batch size 2", "[2, 4, 6]", "[3, 5, 7]"]);

        let err = uld_err(
            s.clone(),
            Tensor::ones([2, 5], &device),
            t.clone(),
            tm.clone(),
        );
        assert!(matches!(
            err,
            DistillError::Shape {
                arg: "student_mask",
                ..
            }
        ));
        assert_mentions(&err, &["[2, 4]", "[2, 5]", "student_logits"]);

        let err = uld_err(
            s.clone(),
            sm.clone(),
            t.clone(),
            Tensor::ones([2, 4], &device),
        );
        assert!(matches!(
            err,
            DistillError::Shape {
                arg: "teacher_mask",
                ..
            }
        ));
        assert_mentions(&err, &["[2, 5]", "[2, 4]", "teacher_logits"]);

        let empty = Tensor::<3>::zeros([2, 4, 0], &device);
        let err = uld_err(empty, sm.clone(), t.clone(), tm.clone());
        assert!(matches!(
            err,
            DistillError::Shape {
                arg: "student_logits",
                ..
            }
        ));
        assert_mentions(&err, &["non-empty", "[2, 4, 0]"]);

        let empty = Tensor::<3>::zeros([2, 5, 0], &device);
        let err = uld_err(s, sm, empty, tm);
        assert!(matches!(
            err,
            DistillError::Shape {
                arg: "teacher_logits",
                ..
            }
        ));
    }
}

#[test]
fn uld_reports_bad_values_and_masks() {
    for (_, device) in devices() {
        let (s, sm, t, tm) = uld_args(&device);
        let mut bad = pseudo_random(70, 2, 2.0);
        bad[17] = f64::NAN;
        let err = uld_err(
            s.clone(),
            sm.clone(),
            tensor(bad, [2, 5, 7], &device, DType::F32),
            tm.clone(),
        );
        assert!(matches!(
            err,
            DistillError::NonFinite {
                arg: "teacher_logits",
                ..
            }
        ));

        let half = tensor(vec![0.5; 10], [2, 5], &device, DType::F32);
        let err = uld_err(s.clone(), sm.clone(), t.clone(), half);
        assert!(matches!(err, DistillError::InvalidMask { .. }));
        assert_mentions(&err, &["teacher_mask", "only 0", "[2, 5]"]);

        let err = uld_err(s, Tensor::zeros([2, 4], &device), t, tm);
        assert!(matches!(err, DistillError::InvalidMask { .. }));
        assert_mentions(&err, &["student_mask", "all zeros"]);
    }
}

#[test]
#[should_panic(expected = "UldLoss: shape mismatch in `student_mask`")]
fn uld_forward_panics_with_the_message() {
    let (_, device) = devices().remove(0);
    let (s, _, t, tm) = uld_args(&device);
    UldLossConfig::new()
        .init()
        .forward(s, Tensor::ones([2, 3], &device), t, tm, Reduction::Mean);
}

fn mined_err(loss: &MinedLoss, input: MinedInput, map: &VocabIntersection) -> DistillError {
    let err = loss
        .try_forward(input.clone(), map, Reduction::Mean)
        .unwrap_err();
    assert_eq!(err, loss.try_forward_no_reduction(input, map).unwrap_err());
    err
}

#[test]
fn mined_reports_bad_tokens_targets_and_maps() {
    let fx = xtok_fixtures();
    let case = &fx["mined"][0];
    let (_, _, map) = hand_vocab();
    let loss = MinedLossConfig::new().init();
    for (_, device) in devices() {
        let good = || mined_input(case, &device, DType::F32);

        let mut input = good();
        input.student_tokens.pop();
        let err = mined_err(&loss, input, &map);
        assert!(matches!(
            err,
            DistillError::Shape {
                arg: "student_tokens",
                ..
            }
        ));
        assert_mentions(&err, &["expected 3 sequences", "got 2"]);

        let mut input = good();
        input.teacher_tokens[1].push("x".into());
        let err = mined_err(&loss, input, &map);
        assert!(matches!(
            err,
            DistillError::Shape {
                arg: "teacher_tokens",
                ..
            }
        ));
        assert_mentions(&err, &["sequence 1 has 12", "(11)"]);

        let mut input = good();
        input.student_targets = None;
        let err = mined_err(&loss, input.clone(), &map);
        assert!(matches!(
            err,
            DistillError::Shape {
                arg: "student_targets",
                ..
            }
        ));
        assert_mentions(&err, &["missing", "TargetOneHot", "[3, 9]"]);
        // … which `Skip` does not need.
        let skip = MinedLossConfig::new()
            .with_unaligned(UnalignedPositions::Skip)
            .init();
        assert!(skip.try_forward(input, &map, Reduction::Mean).is_ok());

        let mut input = good();
        input.student_targets = Some(int_tensor(vec![0; 3 * 8], [3, 8], &device));
        let err = mined_err(&loss, input, &map);
        assert!(matches!(
            err,
            DistillError::Shape {
                arg: "student_targets",
                ..
            }
        ));
        assert_mentions(&err, &["[3, 9]", "[3, 8]"]);

        let mut input = good();
        let mut targets = ints(&case["student_targets"]);
        targets[1] = 18; // row 0, position 1 is counted; the student vocabulary has 18 ids
        input.student_targets = Some(int_tensor(targets, [3, 9], &device));
        let err = mined_err(&loss, input, &map);
        assert!(matches!(
            err,
            DistillError::InvalidIds {
                arg: "student_targets",
                ..
            }
        ));
        assert_mentions(&err, &["0..18", "18"]);

        // A map built for wider vocabularies than the logits.
        let wide = VocabIntersection::from_pairs([(0, 0), (30, 2)], 40, 40).unwrap();
        let err = mined_err(&loss, good(), &wide);
        assert!(matches!(
            err,
            DistillError::Shape {
                arg: "student_logits",
                ..
            }
        ));
        assert_mentions(&err, &["ids up to 30", "only 18"]);
        let wide = VocabIntersection::from_pairs([(0, 0), (3, 25)], 18, 40).unwrap();
        let err = mined_err(&loss, good(), &wide);
        assert!(matches!(
            err,
            DistillError::Shape {
                arg: "teacher_logits",
                ..
            }
        ));
        assert_mentions(&err, &["ids up to 25", "only 19"]);

        let mut input = good();
        input.teacher_mask = Tensor::zeros([3, 11], &device);
        let err = mined_err(&loss, input, &map);
        assert_mentions(&err, &["teacher_mask", "all zeros"]);
    }
}

#[test]
fn mined_rejects_a_bad_temperature() {
    for tau in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = MinedLossConfig::new()
            .with_temperature(tau)
            .try_init()
            .unwrap_err();
        assert!(matches!(
            err,
            DistillError::InvalidConfig {
                field: "temperature",
                ..
            }
        ));
    }
}

#[test]
#[should_panic(expected = "MinedLoss: shape mismatch in `student_tokens`")]
fn mined_forward_panics_with_the_message() {
    let fx = xtok_fixtures();
    let (_, _, map) = hand_vocab();
    let (_, device) = devices().remove(0);
    let mut input = mined_input(&fx["mined"][0], &device, DType::F32);
    input.student_tokens.clear();
    MinedLossConfig::new()
        .init()
        .forward(input, &map, Reduction::Mean);
}

#[test]
fn vocabularies_must_be_usable() {
    let empty: Vec<String> = Vec::new();
    let some = vec!["a".to_string(), "Ġb".to_string()];
    let err = VocabIntersection::from_vocabularies(&empty, &some).unwrap_err();
    assert!(matches!(
        err,
        DistillError::InvalidVocabulary {
            arg: "student vocabulary",
            ..
        }
    ));
    assert_mentions(&err, &["empty"]);
    let err = VocabIntersection::from_vocabularies(&some, &empty).unwrap_err();
    assert!(matches!(
        err,
        DistillError::InvalidVocabulary {
            arg: "teacher vocabulary",
            ..
        }
    ));

    let with_blank = vec!["a".to_string(), String::new()];
    let err = VocabIntersection::from_vocabularies(&with_blank, &some).unwrap_err();
    assert_mentions(&err, &["student vocabulary", "id 1", "empty string"]);

    let disjoint = vec!["c".to_string()];
    let err = VocabIntersection::from_vocabularies(&some, &disjoint).unwrap_err();
    assert_mentions(&err, &["share no token", "(2 tokens)", "(1 tokens)"]);

    let err = VocabIntersection::from_pairs([(0, 1), (0, 2)], 3, 3).unwrap_err();
    assert_mentions(&err, &["student id 0 appears in two pairs"]);
    let err = VocabIntersection::from_pairs([(0, 1), (2, 1)], 3, 3).unwrap_err();
    assert_mentions(&err, &["teacher id 1 appears in two pairs"]);
    let err = VocabIntersection::from_pairs([(0, 3)], 3, 3).unwrap_err();
    assert_mentions(
        &err,
        &["teacher id 3 is outside the teacher vocabulary of 3 tokens"],
    );
    let err = VocabIntersection::from_pairs([], 3, 3).unwrap_err();
    assert_mentions(&err, &["share no token"]);

    let gap: HashMap<String, u32> = [("a".to_string(), 0), ("b".to_string(), 2)].into();
    let err = vocabulary_from_token_map("teacher vocabulary", &gap).unwrap_err();
    assert_mentions(&err, &["teacher vocabulary", "no token has the id 1"]);
    let dup: HashMap<String, u32> = [("a".to_string(), 0), ("b".to_string(), 0)].into();
    let err = vocabulary_from_token_map("student vocabulary", &dup).unwrap_err();
    assert_mentions(&err, &["\"a\" and \"b\" share the id 0"]);
    let err = vocabulary_from_token_map("student vocabulary", &HashMap::new()).unwrap_err();
    assert_mentions(&err, &["student vocabulary", "empty"]);
}

#[test]
fn selecting_columns_checks_the_width() {
    let (_, _, map) = hand_vocab();
    for (_, device) in devices() {
        let narrow = Tensor::<2>::zeros([2, 10], &device);
        let err = map.try_select_student(narrow.clone()).unwrap_err();
        assert!(matches!(
            err,
            DistillError::Shape {
                arg: "student_logits",
                ..
            }
        ));
        assert_mentions(&err, &["ids up to 16", "only 10", "[2, 10]"]);
        let err = map.try_select_teacher(narrow).unwrap_err();
        assert!(matches!(
            err,
            DistillError::Shape {
                arg: "teacher_logits",
                ..
            }
        ));
    }
}
