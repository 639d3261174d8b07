//! ROUGE-L and the Porter stemmer against Python: `rouge_score` 0.1.2 and NLTK's
//! `PorterStemmer()` (fixtures written by `crates/mrl-eval/scripts/make_rouge_reference.py` and
//! `make_porter_fixture.py`). The ignored test needs `MRL_SHARED` (the Dolly sample).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mrl_eval::porter::stem;
use mrl_eval::rouge::{rouge_l, rouge_l_multi, tokenize, words};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn rouge_l_equals_rouge_score_on_every_case() {
    let fixture = fixture("rouge_l.json");
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 230, "{} cases", cases.len());
    let mut with_tokens = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let prediction = case["prediction"].as_str().unwrap();
        let references = strings(&case["references"]);
        if let Some(tokens) = case.get("prediction_tokens") {
            with_tokens += 1;
            assert_eq!(
                tokenize(prediction),
                strings(tokens),
                "{name}: prediction tokens"
            );
            for (reference, tokens) in references
                .iter()
                .zip(case["reference_tokens"].as_array().unwrap())
            {
                assert_eq!(
                    tokenize(reference),
                    strings(tokens),
                    "{name}: reference tokens"
                );
            }
        }
        let score = if references.len() == 1 {
            rouge_l(prediction, &references[0])
        } else {
            let refs: Vec<&str> = references.iter().map(String::as_str).collect();
            rouge_l_multi(prediction, &refs)
        };
        // The same integer LCS and the same f64 operations in the same order: bit-for-bit.
        for (what, got) in [
            ("precision", score.precision),
            ("recall", score.recall),
            ("fmeasure", score.fmeasure),
        ] {
            // Stored as strings: serde_json's default float parsing is not always correctly
            // rounded, `str::parse` is.
            let want: f64 = case[what].as_str().unwrap().parse().unwrap();
            assert_eq!(got, want, "{name}: {what} {got:e} vs rouge_score {want:e}");
        }
    }
    assert!(with_tokens >= 35, "{with_tokens} hand-written cases");
}

#[test]
fn porter_equals_nltk_on_the_committed_sample() {
    let fixture = fixture("porter_nltk.json");
    let stems = fixture["stems"].as_object().unwrap();
    assert!(stems.len() >= 3000, "{} words", stems.len());
    let mut wrong = Vec::new();
    for (word, want) in stems {
        let got = stem(word);
        if got != want.as_str().unwrap() {
            wrong.push(format!("{word}: {got} (NLTK {want})"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} differ:\n{}",
        wrong.len(),
        stems.len(),
        wrong.join("\n")
    );
    // Every word where NLTK's modes disagree is in the sample.
    let differ = strings(&fixture["modes_differ"]);
    assert!(differ.len() > 300, "{}", differ.len());
    for word in &differ {
        assert!(stems.contains_key(word), "{word} missing from the sample");
    }
}

/// FNV-1a, 64 bits (the digest the fixture script writes).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

#[test]
#[ignore = "needs MRL_SHARED"]
fn porter_matches_nltk_on_every_dolly_token() {
    let data = test_support::shared_path("data/dolly_2k.jsonl");
    let records = mrl_eval::read_instruct_jsonl(&data).unwrap();
    let tokens: BTreeSet<String> = records
        .iter()
        .flat_map(|r| words(&r.instruction).into_iter().chain(words(&r.response)))
        .collect();
    let mapping: String = tokens
        .iter()
        .map(|w| format!("{w}\t{}\n", stem(w)))
        .collect();
    let fixture = fixture("porter_nltk.json");
    let want_count = fixture["all_tokens"]["count"].as_u64().unwrap() as usize;
    let want_digest = fixture["all_tokens"]["fnv1a64"].as_str().unwrap();
    let digest = format!("{:016x}", fnv1a64(mapping.as_bytes()));
    if tokens.len() != want_count || digest != want_digest {
        let out: PathBuf = std::env::temp_dir().join("mrl_eval_rust_stems.tsv");
        std::fs::write(&out, &mapping).unwrap();
        panic!(
            "{} tokens (NLTK: {want_count}), digest {digest} (NLTK: {want_digest}); the Rust \
             stems are in {path}: `python3 crates/mrl-eval/scripts/make_porter_fixture.py \
             --compare {path}` lists the differences",
            tokens.len(),
            path = out.display()
        );
    }
}
