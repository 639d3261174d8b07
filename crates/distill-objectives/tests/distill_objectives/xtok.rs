//! Cross-tokenizer objectives against the NumPy reference
//! (`scripts/make_xtok_reference.py` → `tests/fixtures/xtok.json`): the exact-string
//! vocabulary intersection of a hand vocabulary pair, MinEdit alignments (path, cost, aligned
//! tokens), ULD and MinEdit per-position values and every reduction, in f32 and f64.

use crate::common::*;
use distill_objectives::{
    MinEditAlignment, MinedInput, MinedLossConfig, UldLossConfig, UnalignedPositions,
    VocabIntersection,
};

pub fn xtok_fixtures() -> Value {
    serde_json::from_str(include_str!("../fixtures/xtok.json")).expect("fixture JSON")
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("string").to_string())
        .collect()
}

pub fn shape<const D: usize>(v: &Value) -> [usize; D] {
    let s: Vec<usize> = ints(v).into_iter().map(|x| x as usize).collect();
    s.try_into().expect("rank")
}

/// The fixture's hand vocabulary pair and its intersection.
pub fn hand_vocab() -> (Vec<String>, Vec<String>, VocabIntersection) {
    let fx = xtok_fixtures();
    let student = strings(&fx["vocab"]["student"]);
    let teacher = strings(&fx["vocab"]["teacher"]);
    let map = VocabIntersection::from_vocabularies(&student, &teacher).unwrap();
    (student, teacher, map)
}

/// The fixture's MinEdit case as an input, on `device` in `dtype`.
pub fn mined_input(fx: &Value, device: &Device, dtype: DType) -> MinedInput {
    let ss: [usize; 3] = shape(&fx["student_shape"]);
    let ts: [usize; 3] = shape(&fx["teacher_shape"]);
    MinedInput {
        student_logits: tensor(floats(&fx["student"]), ss, device, dtype),
        student_mask: tensor(floats(&fx["student_mask"]), [ss[0], ss[1]], device, dtype),
        student_targets: Some(int_tensor(
            ints(&fx["student_targets"]),
            [ss[0], ss[1]],
            device,
        )),
        teacher_logits: tensor(floats(&fx["teacher"]), ts, device, dtype),
        teacher_mask: tensor(floats(&fx["teacher_mask"]), [ts[0], ts[1]], device, dtype),
        student_tokens: fx["student_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(strings)
            .collect(),
        teacher_tokens: fx["teacher_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(strings)
            .collect(),
    }
}

/// The fixture's ULD case: student logits, student mask, teacher logits, teacher mask.
pub fn uld_inputs(
    fx: &Value,
    device: &Device,
    dtype: DType,
) -> (Tensor<3>, Tensor<2>, Tensor<3>, Tensor<2>) {
    let ss: [usize; 3] = shape(&fx["student_shape"]);
    let ts: [usize; 3] = shape(&fx["teacher_shape"]);
    (
        tensor(floats(&fx["student"]), ss, device, dtype),
        tensor(floats(&fx["student_mask"]), [ss[0], ss[1]], device, dtype),
        tensor(floats(&fx["teacher"]), ts, device, dtype),
        tensor(floats(&fx["teacher_mask"]), [ts[0], ts[1]], device, dtype),
    )
}

fn reductions() -> [(Reduction, &'static str); 4] {
    [
        (Reduction::Mean, "mean"),
        (Reduction::Auto, "mean"),
        (Reduction::Sum, "sum"),
        (Reduction::BatchMean, "batch_mean"),
    ]
}

#[test]
fn hand_vocabulary_intersection_matches_reference() {
    let fx = xtok_fixtures();
    let (_, _, map) = hand_vocab();
    let want: Vec<(u32, u32)> = fx["vocab"]["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let p = ints(p);
            (p[0] as u32, p[1] as u32)
        })
        .collect();
    let got: Vec<(u32, u32)> = map.pairs().collect();
    assert_eq!(got, want);
    assert_eq!(map.len(), want.len());
    assert_eq!(map.student_vocab_size(), 18);
    assert_eq!(map.teacher_vocab_size(), 19);
    // `Ġcat` (student 2) ↔ `▁cat` (teacher 4): the markers fold; `Ġa` / `▁a` collide on both
    // sides and the lowest ids (16 ↔ 16) are paired.
    assert!(got.contains(&(2, 4)));
    assert!(got.contains(&(16, 16)));
    assert!(!got.iter().any(|&(s, t)| s == 17 || t == 18));
}

#[test]
fn intersection_selects_the_paired_columns_on_both_sides() {
    let (_, _, map) = hand_vocab();
    for (dev_name, device) in devices() {
        let s = pseudo_random(2 * 3 * 18, 7, 2.0);
        let t = pseudo_random(2 * 3 * 19, 8, 2.0);
        let student = tensor(s.clone(), [2, 3, 18], &device, DType::F64);
        let teacher = tensor(t.clone(), [2, 3, 19], &device, DType::F64);
        let got_s = host(map.select_student(student));
        let got_t = host(map.select_teacher(teacher));
        let k = map.len();
        for row in 0..6 {
            for (c, (sid, tid)) in map.pairs().enumerate() {
                assert_eq!(got_s[row * k + c], s[row * 18 + sid as usize], "{dev_name}");
                assert_eq!(got_t[row * k + c], t[row * 19 + tid as usize], "{dev_name}");
            }
        }
    }
}

#[test]
fn min_edit_alignments_match_reference() {
    let fx = xtok_fixtures();
    let cases = fx["alignments"].as_array().unwrap();
    assert!(cases.len() > 10);
    let mut aligned_total = 0;
    for (n, case) in cases.iter().enumerate() {
        let student = strings(&case["student"]);
        let teacher = strings(&case["teacher"]);
        let got = MinEditAlignment::new(&student, &teacher);
        let path: Vec<(usize, usize)> = case["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let p = ints(p);
                (p[0] as usize, p[1] as usize)
            })
            .collect();
        let what = format!("case {n}: {student:?} vs {teacher:?}");
        assert_eq!(got.path, path, "{what}: path");
        assert_eq!(got.cost, case["cost"].as_u64().unwrap(), "{what}: cost");
        let s2t: Vec<Vec<usize>> = case["student_to_teacher"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| ints(v).into_iter().map(|x| x as usize).collect())
            .collect();
        assert_eq!(got.student_to_teacher, s2t, "{what}: student_to_teacher");
        let aligned: Vec<Option<usize>> = ints(&case["aligned"])
            .into_iter()
            .map(|x| usize::try_from(x).ok())
            .collect();
        assert_eq!(got.aligned, aligned, "{what}: aligned");
        aligned_total += got.aligned_count();
    }
    assert!(aligned_total > 20, "the cases exercise aligned tokens");
}

#[test]
fn uld_matches_reference() {
    let fx = xtok_fixtures();
    let loss = UldLossConfig::new().init();
    for (dev_name, device) in devices() {
        for (dtype, tol) in PRECISIONS {
            for case in fx["uld"].as_array().unwrap() {
                let what = format!("{dev_name} {dtype:?} {}", case["name"].as_str().unwrap());
                let (s, sm, t, tm) = uld_inputs(case, &device, dtype);
                let per_token =
                    loss.forward_no_reduction(s.clone(), sm.clone(), t.clone(), tm.clone());
                assert_eq!(per_token.dims(), [s.dims()[0], s.dims()[1]]);
                assert_all_close(
                    &format!("{what} per token"),
                    &host(per_token),
                    &floats(&case["per_token"]),
                    tol,
                );
                for (reduction, key) in reductions() {
                    let out = loss.forward(s.clone(), sm.clone(), t.clone(), tm.clone(), reduction);
                    assert_close(
                        &format!("{what} {key}"),
                        scalar(&out.loss),
                        case[key].as_f64().unwrap(),
                        tol,
                    );
                    assert_eq!(
                        out.aligned_positions as u64,
                        case["aligned_positions"].as_u64().unwrap(),
                        "{what}"
                    );
                    assert_eq!(
                        out.student_positions as f64,
                        floats(&case["student_mask"]).iter().sum::<f64>(),
                        "{what}"
                    );
                }
            }
        }
    }
}

#[test]
fn mined_matches_reference() {
    let fx = xtok_fixtures();
    let (_, _, map) = hand_vocab();
    let case = &fx["mined"][0];
    // The alignment of each sequence's response tokens, as the reference computed it.
    let s_tokens: Vec<Vec<String>> = case["student_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(strings)
        .collect();
    let t_tokens: Vec<Vec<String>> = case["teacher_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(strings)
        .collect();
    let [b, ss, _]: [usize; 3] = shape(&case["student_shape"]);
    let [_, ts, _]: [usize; 3] = shape(&case["teacher_shape"]);
    let sm = floats(&case["student_mask"]);
    let tm = floats(&case["teacher_mask"]);
    for row in 0..b {
        let s: Vec<&String> = (0..ss)
            .filter(|&p| sm[row * ss + p] == 1.0)
            .map(|p| &s_tokens[row][p])
            .collect();
        let t: Vec<&String> = (0..ts)
            .filter(|&p| tm[row * ts + p] == 1.0)
            .map(|p| &t_tokens[row][p])
            .collect();
        let got = MinEditAlignment::new(&s, &t);
        let want: Vec<Option<usize>> = ints(&case["alignments"][row]["aligned"])
            .into_iter()
            .map(|x| usize::try_from(x).ok())
            .collect();
        assert_eq!(got.aligned, want, "row {row}");
    }

    for (dev_name, device) in devices() {
        for (dtype, tol) in PRECISIONS {
            for entry in case["losses"].as_array().unwrap() {
                let tau = entry["temperature"].as_f64().unwrap();
                let unaligned: UnalignedPositions =
                    serde_json::from_value(entry["unaligned"].clone()).unwrap();
                let what = format!("{dev_name} {dtype:?} τ={tau} {unaligned:?}");
                let loss = MinedLossConfig::new()
                    .with_temperature(tau)
                    .with_unaligned(unaligned)
                    .init();
                let per_token = loss.forward_no_reduction(mined_input(case, &device, dtype), &map);
                assert_all_close(
                    &format!("{what} per token"),
                    &host(per_token),
                    &floats(&entry["per_token"]),
                    tol,
                );
                for (reduction, key) in reductions() {
                    let out = loss.forward(mined_input(case, &device, dtype), &map, reduction);
                    assert_close(
                        &format!("{what} {key}"),
                        scalar(&out.loss),
                        entry[key].as_f64().unwrap(),
                        tol,
                    );
                    assert_eq!(
                        out.aligned_positions as u64,
                        case["aligned_positions"].as_u64().unwrap(),
                        "{what}"
                    );
                    assert_eq!(
                        out.student_positions as f64,
                        sm.iter().sum::<f64>(),
                        "{what}"
                    );
                }
            }
        }
    }
}
