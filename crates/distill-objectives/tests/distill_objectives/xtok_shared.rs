//! The cross-tokenizer pieces on the real tokenizers (ignored without `MRL_SHARED`): GPT-2
//! (student, 50,257 tokens) and SmolLM2-135M-Instruct (teacher, 49,152 tokens) share 36,961
//! exact-string tokens, and MinEdit aligns Dolly responses tokenised both ways token for token
//! where the two tokenisations agree.

use crate::common::*;
use distill_objectives::{
    MinEditAlignment, MinedInput, MinedLossConfig, UldLossConfig, VocabIntersection,
};
use tokenizers::Tokenizer;

fn tokenizer(rel: &str) -> Tokenizer {
    Tokenizer::from_file(test_support::shared_path(rel)).expect("tokenizer.json")
}

fn gpt2() -> Tokenizer {
    tokenizer("models/gpt2-tokenizer/tokenizer.json")
}

fn smollm2() -> Tokenizer {
    tokenizer("models/SmolLM2-135M-Instruct-Q4_1/tokenizer.json")
}

fn dolly_responses(n: usize) -> Vec<String> {
    let path = test_support::shared_path("data/dolly_2k.jsonl");
    std::fs::read_to_string(path)
        .expect("dolly_2k.jsonl")
        .lines()
        .take(n)
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON line");
            v["response"].as_str().expect("response").to_string()
        })
        .collect()
}

#[test]
#[ignore = "needs MRL_SHARED"]
fn gpt2_and_smollm2_share_36961_exact_tokens() {
    let map =
        VocabIntersection::from_token_maps(&gpt2().get_vocab(true), &smollm2().get_vocab(true))
            .unwrap();
    assert_eq!(map.student_vocab_size(), 50_257);
    assert_eq!(map.teacher_vocab_size(), 49_152);
    assert_eq!(map.len(), 36_961);
    let pairs: Vec<(u32, u32)> = map.pairs().collect();
    assert!(pairs.contains(&(50_256, 0)), "<|endoftext|>");
    let (s, t) = (gpt2(), smollm2());
    for (sid, tid) in pairs.iter().step_by(997) {
        assert_eq!(s.id_to_token(*sid), t.id_to_token(*tid));
    }
    assert!(
        pairs.windows(2).all(|w| w[0].0 < w[1].0),
        "student id order"
    );
}

#[test]
#[ignore = "needs MRL_SHARED"]
fn min_edit_aligns_dolly_responses_on_shared_boundaries() {
    let (s, t) = (gpt2(), smollm2());
    let (mut aligned, mut total) = (0, 0);
    for (n, text) in dolly_responses(5).iter().enumerate() {
        let es = s.encode(text.as_str(), false).unwrap();
        let et = t.encode(text.as_str(), false).unwrap();
        let a = MinEditAlignment::new(es.get_tokens(), et.get_tokens());
        for (j, partner) in a.aligned.iter().enumerate() {
            if let Some(i) = *partner {
                // An aligned pair is the same string at the same place in the text.
                assert_eq!(es.get_tokens()[j], et.get_tokens()[i], "record {n}");
                assert_eq!(
                    es.get_offsets()[j],
                    et.get_offsets()[i],
                    "record {n}, token {j}"
                );
            }
        }
        // Monotone: aligned teacher positions increase with the student's.
        let partners: Vec<usize> = a.aligned.iter().flatten().copied().collect();
        assert!(partners.windows(2).all(|w| w[0] < w[1]), "record {n}");
        aligned += a.aligned_count();
        total += es.len();
    }
    // First record: "WFSD Radio is licensed to Tallahassee, Florida, United States" — 14 of
    // its 15 GPT-2 tokens; over the first five records about 80 %.
    let first = dolly_responses(1).remove(0);
    let es = s.encode(first.as_str(), false).unwrap();
    let et = t.encode(first.as_str(), false).unwrap();
    let a = MinEditAlignment::new(es.get_tokens(), et.get_tokens());
    assert_eq!((es.len(), a.aligned_count()), (15, 14));
    assert!(
        aligned as f64 >= 0.75 * total as f64,
        "{aligned} of {total} tokens aligned"
    );
}

#[test]
#[ignore = "needs MRL_SHARED"]
fn both_losses_run_on_real_vocabulary_sizes() {
    let (s, t) = (gpt2(), smollm2());
    let map = VocabIntersection::from_token_maps(&s.get_vocab(true), &t.get_vocab(true)).unwrap();
    let text = dolly_responses(1).remove(0);
    let es = s.encode(text.as_str(), false).unwrap();
    let et = t.encode(text.as_str(), false).unwrap();
    let (ls, lt) = (es.len(), et.len());
    let (vs, vt) = (50_257, 49_152);
    for (dev_name, device) in devices() {
        let student = tensor(
            pseudo_random(ls * vs, 1, 3.0),
            [1, ls, vs],
            &device,
            DType::F32,
        );
        let teacher = tensor(
            pseudo_random(lt * vt, 2, 3.0),
            [1, lt, vt],
            &device,
            DType::F32,
        );
        // Every position but the first predicts a response token.
        let mask = |n: usize| {
            let v: Vec<f64> = (0..n).map(|i| f64::from(u8::from(i > 0))).collect();
            tensor(v, [1, n], &device, DType::F32)
        };
        let targets: Vec<i64> = es.get_ids()[1..]
            .iter()
            .map(|&i| i64::from(i))
            .chain([50_256])
            .collect();
        let out = MinedLossConfig::new().with_temperature(2.0).init().forward(
            MinedInput {
                student_logits: student.clone(),
                student_mask: mask(ls),
                student_targets: Some(int_tensor(targets, [1, ls], &device)),
                teacher_logits: teacher.clone(),
                teacher_mask: mask(lt),
                student_tokens: vec![es.get_tokens().to_vec()],
                teacher_tokens: vec![et.get_tokens().to_vec()],
            },
            &map,
            Reduction::Mean,
        );
        assert_eq!(out.student_positions, ls - 1, "{dev_name}");
        assert!(
            out.aligned_positions >= ls - 3,
            "{dev_name}: {}",
            out.aligned_positions
        );
        let v = scalar(&out.loss);
        assert!(v.is_finite() && v > 0.0, "{dev_name}: {v}");
        let uld = UldLossConfig::new().init().forward(
            student,
            mask(ls),
            teacher,
            mask(lt),
            Reduction::Mean,
        );
        assert_eq!(uld.aligned_positions, ls.min(lt) - 1, "{dev_name}");
        let v = scalar(&uld.loss);
        assert!(v.is_finite() && v > 0.0 && v <= 2.0, "{dev_name}: {v}");
    }
}
