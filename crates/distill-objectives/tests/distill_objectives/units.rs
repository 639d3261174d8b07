//! MTA units: token membership against the Python reference (the real SmolLM2 tokenizer's
//! character offsets, `scripts/make_units_reference.py` → `tests/fixtures/units_reference.json`),
//! the dense membership tensor on every device, the overlap filter, validation and bad input.

use distill_objectives::{
    filter_overlaps, membership_tensor, unit_membership, Granularity, Membership, Span, UnitError,
    Units,
};

use crate::common::*;

fn reference() -> Value {
    serde_json::from_str(include_str!("../fixtures/units_reference.json")).expect("fixture JSON")
}

fn usizes(v: &Value) -> Vec<usize> {
    ints(v).into_iter().map(|x| x as usize).collect()
}

struct RefCase {
    name: String,
    fx: Value,
    prompt_chars: usize,
    offsets: Vec<(usize, usize)>,
    eligible: Vec<bool>,
    units: Units,
}

fn cases() -> Vec<RefCase> {
    reference()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|fx| RefCase {
            name: fx["name"].as_str().unwrap().to_string(),
            prompt_chars: fx["prompt_chars"].as_u64().unwrap() as usize,
            offsets: fx["token_offsets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    let o = usizes(o);
                    (o[0], o[1])
                })
                .collect(),
            eligible: fx["eligible"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_bool().unwrap())
                .collect(),
            units: serde_json::from_value(fx["units"].clone()).expect("units JSON"),
            fx: fx.clone(),
        })
        .collect()
}

fn expected(fx: &Value, g: Granularity) -> Membership {
    let e = &fx["expected"][g.name()];
    Membership {
        units: e["units"].as_array().unwrap().iter().map(usizes).collect(),
        kept: usizes(&e["kept"]),
    }
}

/// The characters `[start, end)` of `text` (Unicode scalar values, as Python slices `str`).
fn chars(text: &str, start: usize, end: usize) -> String {
    text.chars().skip(start).take(end - start).collect()
}

#[test]
fn reference_offsets_are_character_offsets_in_rust_too() {
    for case in cases() {
        let prompt = case.fx["prompt"].as_str().unwrap();
        let response = case.fx["response"].as_str().unwrap();
        let text = format!("{prompt}{response}");
        assert_eq!(prompt.chars().count(), case.prompt_chars, "{}", case.name);
        assert_eq!(
            response.chars().count(),
            case.fx["response_chars"].as_u64().unwrap() as usize,
            "{}",
            case.name
        );
        for (j, (&(s, e), want)) in case
            .offsets
            .iter()
            .zip(case.fx["token_text"].as_array().unwrap())
            .enumerate()
        {
            assert_eq!(
                chars(&text, s, e),
                want.as_str().unwrap(),
                "{} token {j}",
                case.name
            );
        }
    }
    // Characters ≠ UTF-16 units ≠ bytes in the fixture: it has non-BMP characters.
    assert!(cases().iter().any(|c| c.fx["response"]
        .as_str()
        .unwrap()
        .chars()
        .any(|ch| u32::from(ch) > 0xFFFF)));
}

#[test]
fn membership_matches_the_python_reference() {
    let cases = cases();
    assert!(cases.len() >= 5);
    let mut two_units = 0;
    for case in &cases {
        let response_chars = case.fx["response_chars"].as_u64().unwrap() as usize;
        case.units.validate(response_chars).unwrap();
        for g in Granularity::ALL {
            let got = unit_membership(
                &case.offsets,
                &case.eligible,
                case.prompt_chars,
                case.units.get(g),
            )
            .unwrap();
            let want = expected(&case.fx, g);
            assert_eq!(got, want, "{} {g}", case.name);
            assert_eq!(got.len(), got.kept.len());
            assert_eq!(got.pairs(), want.units.iter().map(Vec::len).sum::<usize>());
            for members in &got.units {
                assert!(!members.is_empty());
                assert!(members.windows(2).all(|w| w[0] < w[1]), "ascending");
                assert!(members.iter().all(|&j| case.eligible[j]));
            }
            let mut seen = std::collections::HashMap::new();
            for &j in got.units.iter().flatten() {
                *seen.entry(j).or_insert(0) += 1;
            }
            two_units += seen.values().filter(|&&n| n >= 2).count();
        }
    }
    assert!(two_units > 0, "the reference has a token in two units");

    // The hard cases the fixture is for, checked on the Rust side.
    let by_name = |n: &str| cases.iter().find(|c| c.name == n).unwrap();
    let hard = by_name("quotes_bullets_numbers_emoji");
    let phrases = unit_membership(
        &hard.offsets,
        &hard.eligible,
        hard.prompt_chars,
        &hard.units.phrases,
    )
    .unwrap();
    // "• The" starts at 0: the prompt's final "\n" would match the rule but is not eligible.
    let last_prompt = hard.eligible.iter().position(|&e| e).unwrap() - 1;
    assert_eq!(hard.offsets[last_prompt].1, hard.prompt_chars);
    assert!(!phrases.units[0].contains(&last_prompt));
    // "café reviews." ends the response: the EOS would match but is not eligible.
    let eos = hard.offsets.len() - 1;
    assert!(phrases.units.iter().all(|m| !m.contains(&eos)));
    // "odel scored" starts inside " model": " scored" is its only member, while " model" is
    // in both "The “best” model" and "model scored" (a token in two units).
    let text = |j: usize| hard.fx["token_text"][j].as_str().unwrap();
    let members = |i: usize| {
        let k = phrases.kept.iter().position(|&k| k == i).unwrap();
        phrases.units[k]
            .iter()
            .map(|&j| text(j))
            .collect::<Vec<_>>()
    };
    assert_eq!(hard.units.phrases[3], Span::new(14, 25));
    assert_eq!(members(3), [" scored"]);
    assert!(members(1).contains(&" model") && members(2).contains(&" model"));

    let truncated = by_name("truncated");
    let max_length = truncated.fx["max_length"].as_u64().unwrap() as usize;
    assert_eq!(truncated.offsets.len(), max_length);
    let words = unit_membership(
        &truncated.offsets,
        &truncated.eligible,
        truncated.prompt_chars,
        &truncated.units.words,
    )
    .unwrap();
    assert!(
        words.kept.len() < truncated.units.words.len(),
        "units cut off"
    );

    let nothing = by_name("nothing_kept");
    for g in Granularity::ALL {
        let m = unit_membership(
            &nothing.offsets,
            &nothing.eligible,
            nothing.prompt_chars,
            nothing.units.get(g),
        )
        .unwrap();
        assert!(m.is_empty() && m.pairs() == 0, "{g}");
    }
}

#[test]
fn membership_rule_by_hand() {
    // Prompt of 4 chars "abc\n"; response "xy zw" at 4..9; tokens:
    // 0 "abc" (0,3) 1 "\n" (3,4) 2 "xy" (4,6) 3 " z" (6,8) 4 "w" (8,9) 5 EOS (9,9)
    let offsets = [(0, 3), (3, 4), (4, 6), (6, 8), (8, 9), (9, 9)];
    let eligible = [false, false, true, true, true, false];
    let units = [
        Span::new(0, 2), // "xy": token 2 (token 1 matches the rule but is a prompt token)
        Span::new(3, 5), // "zw": " z" via the +1, and "w"
        Span::new(3, 4), // "z": " z" ends at 8 = 4 + 4 ✓; "w" ends past it
        Span::new(4, 5), // "w": " z" starts at 6, 6 + 1 < 8 → not a member; "w" is
        Span::new(2, 3), // " ": inside " z", which ends at 8 > 3 + 4 → no member, dropped
        Span::new(0, 5), // everything eligible: tokens 2, 3, 4 (not the EOS)
    ];
    let m = unit_membership(&offsets, &eligible, 4, &units).unwrap();
    assert_eq!(
        m,
        Membership {
            units: vec![vec![2], vec![3, 4], vec![3], vec![4], vec![2, 3, 4]],
            kept: vec![0, 1, 2, 3, 5],
        }
    );
    assert_eq!(m.pairs(), 8);
    assert_eq!(m.len(), 5);
    // With every token eligible, the prompt's "\n" and the EOS join the units at the edges.
    let all = unit_membership(&offsets, &[true; 6], 4, &units).unwrap();
    assert_eq!(all.kept, [0, 1, 2, 3, 5]);
    assert_eq!(all.units[0], [1, 2]);
    assert_eq!(all.units[4], [1, 2, 3, 4, 5]);
    // The +1 also admits a token that starts one character into the unit's first word:
    // "y" = [1, 2) gets "xy" (4 + 1 ≥ 1 + 4).
    let y = unit_membership(&offsets, &eligible, 4, &[Span::new(1, 2)]).unwrap();
    assert_eq!(y.units, [vec![2]]);
    // No unit, no token.
    assert!(unit_membership(&offsets, &eligible, 4, &[])
        .unwrap()
        .is_empty());
    assert!(unit_membership(&[], &[], 4, &units).unwrap().is_empty());
}

#[test]
fn membership_tensor_matches_the_memberships_on_every_device() {
    let cases = cases();
    let seq = cases.iter().map(|c| c.offsets.len()).max().unwrap();
    for g in Granularity::ALL {
        let batch: Vec<Membership> = cases.iter().map(|c| expected(&c.fx, g)).collect();
        let max_units = batch.iter().map(Membership::len).max().unwrap();
        assert!(max_units > 1);
        for (dev_name, device) in devices() {
            let (dense, mask) = membership_tensor(&batch, seq, &device);
            assert_eq!(dense.dims(), [batch.len(), max_units, seq], "{dev_name}");
            assert_eq!(mask.dims(), [batch.len(), max_units], "{dev_name}");
            let dense = host(dense);
            let mask = host(mask);
            for (b, m) in batch.iter().enumerate() {
                for u in 0..max_units {
                    assert_eq!(mask[b * max_units + u], f64::from(u8::from(u < m.len())));
                    for j in 0..seq {
                        let member = m.units.get(u).is_some_and(|us| us.contains(&j));
                        assert_eq!(
                            dense[(b * max_units + u) * seq + j],
                            f64::from(u8::from(member)),
                            "{dev_name} {g} example {b} unit {u} token {j}"
                        );
                    }
                }
            }
            let ones = dense.iter().filter(|&&x| x == 1.0).count();
            assert_eq!(ones, batch.iter().map(Membership::pairs).sum::<usize>());
        }
    }
}

#[test]
fn membership_tensor_has_one_zero_unit_when_nothing_is_kept() {
    for (dev_name, device) in devices() {
        let batch = vec![Membership::default(), Membership::default()];
        let (dense, mask) = membership_tensor(&batch, 3, &device);
        assert_eq!(dense.dims(), [2, 1, 3], "{dev_name}");
        assert_eq!(mask.dims(), [2, 1], "{dev_name}");
        assert!(host(dense).iter().all(|&x| x == 0.0));
        assert!(host(mask).iter().all(|&x| x == 0.0));
    }
}

#[test]
#[should_panic(expected = "`batch`[1] unit 0 has token position 4 ≥ `seq_len` = 4")]
fn membership_tensor_rejects_positions_past_seq_len() {
    let (_, device) = devices().remove(0);
    let batch = vec![
        Membership {
            units: vec![vec![0, 3]],
            kept: vec![0],
        },
        Membership {
            units: vec![vec![1, 4]],
            kept: vec![2],
        },
    ];
    membership_tensor(&batch, 4, &device);
}

#[test]
#[should_panic(expected = "`batch` is empty")]
fn membership_tensor_rejects_an_empty_batch() {
    let (_, device) = devices().remove(0);
    membership_tensor(&[], 4, &device);
}

#[test]
#[should_panic(expected = "`seq_len` is 0")]
fn membership_tensor_rejects_seq_len_zero() {
    let (_, device) = devices().remove(0);
    membership_tensor(&[Membership::default()], 0, &device);
}

fn spans(list: &[(usize, usize)]) -> Vec<Span> {
    list.iter().map(|&(s, e)| Span::new(s, e)).collect()
}

#[test]
fn overlap_filter_by_hand() {
    assert_eq!(filter_overlaps(vec![]), vec![]);
    // Unsorted input; equal starts keep the longest; contained spans go; partial overlaps and
    // the span after the containing one stay; duplicates collapse.
    let got = filter_overlaps(spans(&[
        (10, 12),
        (0, 5),
        (0, 9),
        (2, 4),
        (7, 11),
        (7, 11),
        (8, 9),
        (9, 11),
        (20, 21),
    ]));
    assert_eq!(got, spans(&[(0, 9), (7, 11), (10, 12), (20, 21)]));
    // (1, 3) is not inside the previous input span (0, 2) but inside the last kept one (0, 10).
    let got = filter_overlaps(spans(&[(0, 2), (0, 10), (1, 3), (4, 12), (5, 11)]));
    assert_eq!(got, spans(&[(0, 10), (4, 12)]));
    // A span that starts where the kept one ends is not contained.
    assert_eq!(
        filter_overlaps(spans(&[(3, 6), (0, 3)])),
        spans(&[(0, 3), (3, 6)])
    );
}

/// The authors' `filter_overlapping_spans` loop, transcribed literally: sort by (start, −end),
/// walk with the current span, skip a next span whose end is ≤ the current end.
fn authors_filter(list: &[Span]) -> Vec<Span> {
    let mut sorted = list.to_vec();
    sorted.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut out = Vec::new();
    let Some(&first) = sorted.first() else {
        return out;
    };
    let mut current = first;
    for &next in &sorted[1..] {
        if next.end <= current.end {
            continue;
        }
        out.push(current);
        current = next;
    }
    out.push(current);
    out
}

#[test]
fn overlap_filter_properties_on_random_spans() {
    for seed in 0..200u64 {
        let n = (seed % 12) as usize;
        let raw = pseudo_random(2 * n, seed + 1, 1.0);
        let list: Vec<Span> = raw
            .chunks(2)
            .map(|p| {
                let s = ((p[0] + 1.0) * 10.0) as usize;
                let len = 1 + ((p[1] + 1.0) * 4.0) as usize;
                Span::new(s, s + len)
            })
            .collect();
        let kept = filter_overlaps(list.clone());
        assert_eq!(kept, authors_filter(&list), "seed {seed}");
        // Sorted by start, strictly increasing ends, no kept span contains another.
        for w in kept.windows(2) {
            assert!(
                w[0].start <= w[1].start && w[0].end < w[1].end,
                "seed {seed}"
            );
        }
        for (i, a) in kept.iter().enumerate() {
            for (j, b) in kept.iter().enumerate() {
                assert!(i == j || !a.contains(b), "seed {seed}: {a} ⊇ {b}");
            }
        }
        // Every input span is kept or inside a kept one.
        for s in &list {
            assert!(kept.iter().any(|k| k.contains(s)), "seed {seed}: {s} lost");
        }
        // Idempotent.
        assert_eq!(filter_overlaps(kept.clone()), kept);
    }
}

fn units(words: &[(usize, usize)], phrases: &[(usize, usize)]) -> Units {
    Units {
        words: spans(words),
        phrases: spans(phrases),
    }
}

fn assert_mentions(err: &UnitError, parts: &[&str]) {
    let msg = err.to_string();
    for part in parts {
        assert!(msg.contains(part), "`{msg}` does not mention `{part}`");
    }
}

#[test]
fn validation_accepts_sorted_in_bounds_units() {
    units(&[], &[]).validate(0).unwrap();
    // Equal starts, partial overlaps, nesting and a unit ending at the end are fine.
    units(&[(0, 3), (4, 9), (4, 6)], &[(0, 9), (0, 4), (2, 10)])
        .validate(10)
        .unwrap();
}

#[test]
fn validation_errors_name_granularity_index_and_values() {
    let err = units(&[(0, 3), (5, 4)], &[]).validate(10).unwrap_err();
    assert_eq!(
        err,
        UnitError::Reversed {
            granularity: Granularity::Words,
            index: 1,
            start: 5,
            end: 4
        }
    );
    assert_mentions(&err, &["words unit 1", "[5, 4)", "start 5 > end 4"]);

    let err = units(&[(0, 3)], &[(0, 3), (4, 11)])
        .validate(10)
        .unwrap_err();
    assert_eq!(
        err,
        UnitError::OutOfBounds {
            granularity: Granularity::Phrases,
            index: 1,
            start: 4,
            end: 11,
            response_chars: 10
        }
    );
    assert_mentions(&err, &["phrases unit 1", "[4, 11)", "10 characters"]);

    let err = units(&[(0, 3), (3, 3)], &[]).validate(10).unwrap_err();
    assert_eq!(
        err,
        UnitError::Empty {
            granularity: Granularity::Words,
            index: 1,
            start: 3
        }
    );
    assert_mentions(&err, &["words unit 1", "[3, 3)", "empty"]);

    let err = units(&[], &[(2, 5), (2, 3), (1, 8)])
        .validate(10)
        .unwrap_err();
    assert_eq!(
        err,
        UnitError::Unsorted {
            granularity: Granularity::Phrases,
            index: 2,
            start: 1,
            end: 8,
            previous_start: 2,
            previous_end: 3
        }
    );
    assert_mentions(
        &err,
        &[
            "phrases units are not sorted",
            "unit 2 = [1, 8)",
            "unit 1 = [2, 3)",
        ],
    );

    // Words are checked before phrases; in a list, the first bad unit is reported.
    let err = units(&[(0, 20)], &[(5, 1)]).validate(10).unwrap_err();
    assert!(matches!(
        err,
        UnitError::OutOfBounds {
            granularity: Granularity::Words,
            index: 0,
            ..
        }
    ));
    // A reversed unit past the end is reported as reversed.
    let err = units(&[(30, 20)], &[]).validate(10).unwrap_err();
    assert!(matches!(err, UnitError::Reversed { .. }));
}

#[test]
fn membership_bad_input_is_a_typed_error() {
    let err = unit_membership(&[(0, 1), (1, 2)], &[true], 0, &[Span::new(0, 1)]).unwrap_err();
    assert_eq!(
        err,
        UnitError::LengthMismatch {
            token_offsets: 2,
            eligible: 1
        }
    );
    assert_mentions(&err, &["`token_offsets` has 2", "`eligible` has 1"]);

    let err = unit_membership(&[(0, 1), (5, 2)], &[true, true], 0, &[Span::new(0, 1)]).unwrap_err();
    assert_eq!(
        err,
        UnitError::InvalidTokenOffsets {
            position: 1,
            start: 5,
            end: 2
        }
    );
    assert_mentions(&err, &["`token_offsets`[1] = (5, 2)"]);

    for (unit, shown) in [(Span::new(2, 2), "[2, 2)"), (Span::new(3, 1), "[3, 1)")] {
        let err = unit_membership(&[(0, 1)], &[true], 0, &[Span::new(0, 1), unit]).unwrap_err();
        assert_eq!(
            err,
            UnitError::InvalidUnit {
                index: 1,
                start: unit.start,
                end: unit.end
            }
        );
        assert_mentions(&err, &["`units`[1]", shown]);
    }
}

#[test]
fn units_serialise_as_the_data_record_field() {
    let u = units(&[(0, 3), (4, 9)], &[(0, 9)]);
    let json = serde_json::to_string(&u).unwrap();
    assert_eq!(json, r#"{"words":[[0,3],[4,9]],"phrases":[[0,9]]}"#);
    assert_eq!(serde_json::from_str::<Units>(&json).unwrap(), u);
    assert_eq!(serde_json::to_string(&Span::new(2, 7)).unwrap(), "[2,7]");
    // Missing or unknown fields and malformed spans are rejected.
    for bad in [
        r#"{"words":[[0,3]]}"#,
        r#"{"words":[],"phrases":[],"sentences":[]}"#,
        r#"{"words":[[0,3,5]],"phrases":[]}"#,
        r#"{"words":[[0]],"phrases":[]}"#,
        r#"{"words":[[-1,3]],"phrases":[]}"#,
        r#"{"words":[{"start":0,"end":3}],"phrases":[]}"#,
    ] {
        assert!(serde_json::from_str::<Units>(bad).is_err(), "{bad}");
    }
    assert_eq!(u.get(Granularity::Words), &u.words[..]);
    assert_eq!(u.get(Granularity::Phrases), &u.phrases[..]);
}

#[test]
fn granularity_names_parse_and_serialise() {
    for g in Granularity::ALL {
        assert_eq!(g.name().parse::<Granularity>().unwrap(), g);
        assert_eq!(g.to_string(), g.name());
        assert_eq!(
            serde_json::to_string(&g).unwrap(),
            format!("\"{}\"", g.name())
        );
    }
    assert_eq!(Granularity::Words.name(), "words");
    assert_eq!(Granularity::Phrases.name(), "phrases");
    let err = "sentences".parse::<Granularity>().unwrap_err();
    assert_eq!(
        err,
        UnitError::UnknownGranularity {
            got: "sentences".into()
        }
    );
    assert_mentions(&err, &["`sentences`", "`words` or `phrases`"]);
}
