//! Vocabulary transplant (`models::vocab_transplant`) and the transplanted students of
//! `build_student` (`StudentInit::FirstLayers { vocab: Some(..) }`).
//!
//! - every rule on a hand-made pair of vocabularies, against values worked out by hand (exact
//!   copy, the eos override of an exact match, a greedy split with a repeated piece, the
//!   longest prefix chosen over a shorter one, an absent symbol → the mean source row);
//! - properties of random vocabularies: the pieces spell the token, each is the longest
//!   source prefix, every row is a convex combination of source rows;
//! - a transplanted student of a tiny random teacher (untied and tied heads, `untie_head`) on
//!   ndarray and flex: its embedding / head are the plan applied to the teacher's, its config
//!   has the new vocabulary and special ids, it runs, and its export carries its own
//!   tokenizer (not the teacher's chat template); special ids from a `tokenizer_config.json`;
//!   bad inputs give errors naming the file or argument;
//! - on the shared models (ignored without `MRL_SHARED`): SmolLM2 → GPT-2 against the
//!   reference of `crates/models/scripts/make_transplant_reference.py`
//!   (`tests/fixtures/transplant_smollm2_gpt2.json`), and a 10-layer SmolLM2 student over
//!   GPT-2's vocabulary that runs on GPT-2 token ids.

use crate::common::{devices, max_abs_diff, shared_path, TempDir};

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use models::gguf::GgufFile;
use models::llama::{build_student, export_decoder, StudentInit};
use models::vocab_transplant::{
    read_vocab, transplant_embedding, Piece, RowRule, TransplantCounts, VocabTransplant,
};
use models::{LayerSelection, LlamaInput, LlamaModel, ModelError};
use mrl_common::SplitMix64;
use tiny_models::{write_random_model, Arch, ModelShape};

fn vocab(tokens: &[&str]) -> HashMap<String, u32> {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), i as u32))
        .collect()
}

#[test]
fn every_rule_on_a_hand_made_pair_of_vocabularies() {
    // Source: 6 rows of width 2.
    let source = vocab(&["<eos>", "a", "ab", "abc", "d", "cd"]);
    #[rustfmt::skip]
    let rows = [
        0.5, -0.5, // <eos>
        1.0, 0.0, // a
        0.0, 2.0, // ab
        4.0, 4.0, // abc
        -2.0, 1.0, // d
        3.0, -3.0, // cd
    ];
    // Mean of the 6 rows: (6.5 / 6, 3.5 / 6).
    let target = vocab(&[
        "cd",    // 0 exact → cd
        "abcd",  // 1 longest prefix first: abc + d, not ab + cd
        "aaab",  // 2 a + a + ab (a repeated)
        "<eos>", // 3 exact → <eos>
        "</s>",  // 4 the target eos, mapped to the source eos <eos> (4 → 0)
        "dxa",   // 5 d + absent x + a
        "x",     // 6 absent x alone: the mean row
    ]);
    let (matrix, plan) = transplant_embedding(&source, &rows, 2, &target, &[(4, 0)]).unwrap();
    let t = Piece::Token;
    assert_eq!(
        plan.rows(),
        [
            RowRule::Exact { source: 5 },
            RowRule::Split {
                pieces: vec![t(3), t(4)]
            },
            RowRule::Split {
                pieces: vec![t(1), t(1), t(2)]
            },
            RowRule::Exact { source: 0 },
            RowRule::Special { source: 0 },
            RowRule::Split {
                pieces: vec![t(4), Piece::Absent('x'), t(1)]
            },
            RowRule::Split {
                pieces: vec![Piece::Absent('x')]
            },
        ]
    );
    assert_eq!(
        plan.counts(),
        TransplantCounts {
            exact_string_matches: 2,
            special: 1,
            exact: 2,
            split: 4,
            with_absent_symbol: 2,
        }
    );
    let (mx, my) = (6.5f32 / 6.0, 3.5f32 / 6.0);
    #[rustfmt::skip]
    let expected = [
        3.0, -3.0,                              // cd
        (4.0 - 2.0) / 2.0, (4.0 + 1.0) / 2.0,   // (abc + d) / 2
        (1.0 + 1.0) / 3.0, 2.0 / 3.0,           // (a + a + ab) / 3
        0.5, -0.5,                              // <eos>
        0.5, -0.5,                              // </s> → source eos
        (-2.0 + mx + 1.0) / 3.0, (1.0 + my) / 3.0, // (d + mean + a) / 3
        mx, my,                                 // mean
    ];
    assert!(max_abs_diff(&matrix, &expected) < 1e-6, "{matrix:?}");

    // The eos override wins over an exact match of the same token.
    let plan = VocabTransplant::new(&source, &target, &[(3, 4)]).unwrap();
    assert_eq!(plan.rows()[3], RowRule::Special { source: 4 });
    assert_eq!(plan.counts().exact_string_matches, 2);
    assert_eq!(plan.counts().exact, 1);
    assert_eq!(&plan.apply(&rows, 2).unwrap()[6..8], [-2.0, 1.0]);
}

/// A random string of `len` characters over `alphabet`.
fn random_string(rng: &mut SplitMix64, alphabet: &[char], len: usize) -> String {
    (0..len)
        .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
        .collect()
}

#[test]
fn random_splits_spell_the_token_with_longest_pieces_and_rows_stay_in_the_hull() {
    let alphabet = ['a', 'b', 'c', 'Ġ', 'ñ'];
    let mut rng = SplitMix64::new(11);
    for case in 0..40 {
        let mut source: HashMap<String, u32> = HashMap::new();
        while source.len() < 12 {
            let len = 1 + (rng.next_u64() % 4) as usize;
            let s = random_string(&mut rng, &alphabet, len);
            let id = source.len() as u32;
            source.entry(s).or_insert(id);
        }
        let mut target: HashMap<String, u32> = HashMap::new();
        while target.len() < 30 {
            let len = 1 + (rng.next_u64() % 7) as usize;
            let s = random_string(&mut rng, &alphabet, len);
            let id = target.len() as u32;
            target.entry(s).or_insert(id);
        }
        let names: HashMap<u32, &str> = source.iter().map(|(s, &i)| (i, s.as_str())).collect();
        let plan = VocabTransplant::new(&source, &target, &[]).unwrap();
        for (token, &id) in &target {
            let rule = &plan.rows()[id as usize];
            match rule {
                RowRule::Exact { source: s } => {
                    assert_eq!(names[s], token.as_str(), "case {case}");
                }
                RowRule::Special { .. } => panic!("no special mapping given"),
                RowRule::Split { pieces } => {
                    assert!(!source.contains_key(token), "case {case}: {token}");
                    let chars: Vec<char> = token.chars().collect();
                    let mut at = 0;
                    for piece in pieces {
                        let len = match piece {
                            Piece::Token(s) => names[s].chars().count(),
                            Piece::Absent(c) => {
                                assert_eq!(chars[at], *c, "case {case}: {token}");
                                1
                            }
                        };
                        let spelt: String = chars[at..at + len].iter().collect();
                        if let Piece::Token(s) = piece {
                            assert_eq!(names[s], spelt, "case {case}: {token}");
                        }
                        // No longer (or, for an absent symbol, any) source prefix here.
                        let first_longer = if matches!(piece, Piece::Absent(_)) {
                            1
                        } else {
                            len + 1
                        };
                        for longer in first_longer..=chars.len() - at {
                            let prefix: String = chars[at..at + longer].iter().collect();
                            assert!(
                                !source.contains_key(&prefix),
                                "case {case}: {token} has the longer prefix {prefix} at {at}"
                            );
                        }
                        at += len;
                    }
                    assert_eq!(at, chars.len(), "case {case}: {token}");
                }
            }
        }
        // Rows: exact copies are the source rows bit for bit; every value lies between its
        // column's source minimum and maximum (means of source rows and of the mean row).
        let hidden = 3;
        let values: Vec<f32> = (0..source.len() * hidden)
            .map(|_| rng.next_f64() as f32 * 2.0 - 1.0)
            .collect();
        let out = plan.apply(&values, hidden).unwrap();
        assert_eq!(out.len(), target.len() * hidden);
        for (t, rule) in plan.rows().iter().enumerate() {
            let row = &out[t * hidden..(t + 1) * hidden];
            if let RowRule::Exact { source: s } = rule {
                let s = *s as usize;
                assert_eq!(row, &values[s * hidden..(s + 1) * hidden]);
            }
            for (h, &v) in row.iter().enumerate() {
                let column = values.iter().skip(h).step_by(hidden);
                let lo = column.clone().fold(f32::INFINITY, |a, &b| a.min(b));
                let hi = column.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                assert!(v >= lo - 1e-6 && v <= hi + 1e-6, "case {case} row {t}");
            }
        }
    }
}

/// Writes a word-level `tokenizer.json` over `words` (ids in order) with the `special` ones
/// as special added tokens.
fn write_tokenizer(path: &Path, words: &[&str], special: &[&str]) {
    let vocab: serde_json::Map<String, serde_json::Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), i.into()))
        .collect();
    let added: Vec<serde_json::Value> = special
        .iter()
        .map(|s| {
            let id = words.iter().position(|w| w == s).unwrap();
            serde_json::json!({"id": id, "content": s, "single_word": false, "lstrip": false,
                               "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": words[0]}
    });
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
}

/// The target vocabulary of the tiny-teacher tests: two exact copies, a split, a split with a
/// repeat, a split with an absent symbol, GPT-2's single special token.
const TARGET: &[&str] = &["the", "dog", "thedog", "aa", "cat!", "<|endoftext|>"];

fn transplant_init(layers: usize, untie_head: bool, vocab: &Path) -> StudentInit {
    StudentInit::FirstLayers {
        layers,
        untie_head,
        vocab: Some(vocab.to_path_buf()),
    }
}

fn host(tensor: Tensor<2>) -> Vec<f32> {
    tensor.into_data().try_into_vec_as::<f32>().unwrap()
}

fn ids(values: &[i64], device: &Device) -> LlamaInput {
    let n = values.len();
    LlamaInput {
        input_ids: Tensor::<2, Int>::from_data(TensorData::new(values.to_vec(), [1, n]), device),
        attention_mask: Tensor::<2, Int>::ones([1, n], device),
    }
}

#[test]
fn a_transplanted_student_of_a_tiny_teacher() {
    for (name, device) in devices() {
        let tmp = TempDir::new("transplant-student");
        let target = tmp.path().join("gpt2-like").join("tokenizer.json");
        write_tokenizer(&target, TARGET, &["<|endoftext|>"]);
        for arch in [Arch::Llama, Arch::Qwen3] {
            let what = format!("{name} {}", arch.model_type());
            let teacher = tmp.path().join(arch.model_type());
            let vocab = Arch::Llama.min_vocab_size() + 3;
            let shape = ModelShape::new(16, 3, 4, 24, vocab).with_kv_heads(2);
            write_random_model(&teacher, arch, &shape, 5, &device).unwrap();
            // A chat template the student must not inherit.
            std::fs::write(teacher.join("chat_template.jinja"), "{{ messages }}").unwrap();
            let (_, full) =
                LlamaModel::from_pretrained(&teacher, LayerSelection::All, &device).unwrap();

            let source = read_vocab(&teacher.join("tokenizer.json")).unwrap();
            let plan = VocabTransplant::new(
                &source,
                &read_vocab(&target).unwrap(),
                &[(5, source["</s>"])],
            )
            .unwrap();
            assert_eq!(
                (
                    plan.counts().exact,
                    plan.counts().split,
                    plan.counts().special
                ),
                (2, 3, 1),
                "{what}"
            );
            let expected_embedding = plan
                .apply(&host(full.embed_tokens.weight.val()), 16)
                .unwrap();

            for untie_head in [false, true] {
                let init = transplant_init(2, untie_head, &target);
                let (config, student) = build_student(&teacher, &init, &device).unwrap();
                let what = format!("{what} untie_head {untie_head}");
                assert_eq!(config.vocab_size, TARGET.len(), "{what}");
                assert_eq!(
                    (config.bos_token_id, config.eos_token_ids.clone()),
                    (Some(5), vec![5]),
                    "{what}"
                );
                assert_eq!(config.num_hidden_layers, 2, "{what}");
                assert_eq!(student.vocab_size(), TARGET.len(), "{what}");
                assert_eq!(
                    host(student.embed_tokens.weight.val()),
                    expected_embedding,
                    "{what}"
                );
                // The head: the teacher's untied head transplanted, else a copy of the
                // transplanted embedding (untie_head), else tied.
                match (arch, untie_head) {
                    (Arch::Qwen3, false) => {
                        assert!(config.tie_word_embeddings && student.lm_head.is_none())
                    }
                    _ => {
                        assert!(!config.tie_word_embeddings, "{what}");
                        let head = student.lm_head.as_ref().expect("an untied head");
                        let expected = match &full.lm_head {
                            Some(teacher_head) => plan
                                .apply(&host(teacher_head.weight.val().transpose()), 16)
                                .unwrap(),
                            None => expected_embedding.clone(),
                        };
                        assert_eq!(head.weight.dims(), [16, TARGET.len()], "{what}");
                        assert_eq!(host(head.weight.val().transpose()), expected, "{what}");
                    }
                }
                // The layers are the teacher's.
                assert_eq!(
                    host(student.layers[1].mlp.up_proj.weight.val()),
                    host(full.layers[1].mlp.up_proj.weight.val()),
                    "{what}"
                );
                let logits = student
                    .forward(ids(&[0, 1, 2, 3, 4, 5], &device), false)
                    .logits
                    .unwrap();
                assert_eq!(logits.dims(), [1, 6, TARGET.len()], "{what}");
                let values = logits.into_data().try_into_vec_as::<f32>().unwrap();
                assert!(values.iter().all(|v| v.is_finite()), "{what}");

                // The export carries the student's tokenizer, not the teacher's files.
                assert_eq!(init.tokenizer_source(&teacher), target.as_path());
                let out = tmp
                    .path()
                    .join(format!("out-{}-{untie_head}", arch.model_type()));
                export_decoder(&student, &config, &out, init.tokenizer_source(&teacher)).unwrap();
                let names: BTreeSet<String> = std::fs::read_dir(&out)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect();
                let expected: BTreeSet<String> = [
                    "config.json",
                    "model.safetensors",
                    "tokenizer.json",
                    "tokenizer_config.json",
                ]
                .map(String::from)
                .into();
                assert_eq!(names, expected, "{what}");
                assert_eq!(
                    std::fs::read(out.join("tokenizer.json")).unwrap(),
                    std::fs::read(&target).unwrap(),
                    "{what}"
                );
                let tokenizer_config: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(out.join("tokenizer_config.json")).unwrap(),
                )
                .unwrap();
                assert_eq!(tokenizer_config["eos_token"], "<|endoftext|>", "{what}");
                assert_eq!(tokenizer_config["bos_token"], "<|endoftext|>", "{what}");
                let (reloaded, _) =
                    LlamaModel::from_pretrained(&out, LayerSelection::All, &device).unwrap();
                assert_eq!(reloaded, config, "{what}");
            }
        }
    }
}

fn invalid(err: ModelError) -> (&'static str, String) {
    match err {
        ModelError::InvalidArgument { name, message } => (name, message),
        other => panic!("expected InvalidArgument, got {other}"),
    }
}

#[test]
fn special_ids_from_a_tokenizer_config_and_bad_inputs() {
    let (_, device) = devices().remove(1);
    let tmp = TempDir::new("transplant-errors");
    let teacher = tmp.path().join("teacher");
    let shape = ModelShape::new(16, 2, 4, 24, Arch::Llama.min_vocab_size()).with_kv_heads(2);
    write_random_model(&teacher, Arch::Llama, &shape, 5, &device).unwrap();

    // Two special tokens: a tokenizer_config.json beside the tokenizer names bos and eos; the
    // vocab may be the directory holding the tokenizer.
    let words = ["<bos>", "the", "<end>", "dog"];
    let two = tmp.path().join("two");
    write_tokenizer(&two.join("tokenizer.json"), &words, &["<bos>", "<end>"]);
    let init = |vocab: &Path| transplant_init(1, false, vocab);
    let err = build_student(&teacher, &init(&two), &device).unwrap_err();
    let (name, message) = invalid(err);
    assert_eq!(name, "vocab");
    assert!(
        message.contains("cannot tell the end-of-sequence token") && message.contains("<end>"),
        "{message}"
    );
    std::fs::write(
        two.join("tokenizer_config.json"),
        r#"{"bos_token": "<bos>", "eos_token": {"content": "<end>"}}"#,
    )
    .unwrap();
    let (config, student) = build_student(&teacher, &init(&two), &device).unwrap();
    assert_eq!(
        (config.vocab_size, config.bos_token_id, config.eos_token_ids),
        (4, Some(0), vec![2])
    );
    // The eos row is the teacher's eos row (`</s>`, 2 in tiny-models' tokenizer).
    let (_, full) = LlamaModel::from_pretrained(&teacher, LayerSelection::All, &device).unwrap();
    let teacher_rows = host(full.embed_tokens.weight.val());
    let rows = host(student.embed_tokens.weight.val());
    assert_eq!(&rows[2 * 16..3 * 16], &teacher_rows[2 * 16..3 * 16]);

    // A tokenizer_config naming a token the tokenizer lacks.
    std::fs::write(
        two.join("tokenizer_config.json"),
        r#"{"eos_token": "</s>"}"#,
    )
    .unwrap();
    let (name, message) = invalid(build_student(&teacher, &init(&two), &device).unwrap_err());
    assert_eq!(name, "vocab");
    assert!(
        message.contains("eos_token \"</s>\"") && message.contains("tokenizer_config.json"),
        "{message}"
    );
    // A tokenizer_config that is not JSON.
    std::fs::write(two.join("tokenizer_config.json"), "{").unwrap();
    match build_student(&teacher, &init(&two), &device).unwrap_err() {
        ModelError::Config { path, .. } => assert!(path.ends_with("tokenizer_config.json")),
        other => panic!("{other}"),
    }

    // A missing tokenizer file.
    let missing = tmp.path().join("nowhere").join("tokenizer.json");
    match build_student(&teacher, &init(&missing), &device).unwrap_err() {
        ModelError::Io { path, .. } => assert_eq!(path, missing),
        other => panic!("{other}"),
    }
    // A tokenizer file that is not JSON.
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, "{ not json").unwrap();
    match build_student(&teacher, &init(&bad), &device).unwrap_err() {
        ModelError::Tokenizer { path, .. } => assert_eq!(path, bad),
        other => panic!("{other}"),
    }
    std::fs::write(
        two.join("tokenizer_config.json"),
        r#"{"eos_token": "<end>"}"#,
    )
    .unwrap();
    // A teacher tokenizer with more tokens than the teacher's embedding has rows.
    let teacher_tokenizer = teacher.join("tokenizer.json");
    let original = std::fs::read(&teacher_tokenizer).unwrap();
    tiny_models::word_tokenizer(Arch::Llama, Arch::Llama.min_vocab_size() + 2)
        .save(&teacher_tokenizer, false)
        .unwrap();
    let (name, message) = invalid(build_student(&teacher, &init(&two), &device).unwrap_err());
    assert_eq!(name, "teacher");
    assert!(
        message.contains(&format!("with id {}", Arch::Llama.min_vocab_size() + 1))
            && message.contains(&format!("{} rows", Arch::Llama.min_vocab_size())),
        "{message}"
    );
    std::fs::write(&teacher_tokenizer, &original).unwrap();
    // A teacher config without an eos id: nothing to map the student's eos to.
    let config_path = teacher.join("config.json");
    let original_config = std::fs::read(&config_path).unwrap();
    let mut config_json: serde_json::Value = serde_json::from_slice(&original_config).unwrap();
    config_json.as_object_mut().unwrap().remove("eos_token_id");
    std::fs::write(&config_path, serde_json::to_vec(&config_json).unwrap()).unwrap();
    let (name, message) = invalid(build_student(&teacher, &init(&two), &device).unwrap_err());
    assert_eq!(name, "teacher");
    assert!(message.contains("no eos_token_id"), "{message}");
    std::fs::write(&config_path, &original_config).unwrap();
    build_student(&teacher, &init(&two), &device).unwrap();

    // A teacher without a tokenizer.json (the transplant needs its vocabulary).
    std::fs::remove_file(teacher.join("tokenizer.json")).unwrap();
    std::fs::write(
        two.join("tokenizer_config.json"),
        r#"{"eos_token": "<end>"}"#,
    )
    .unwrap();
    match build_student(&teacher, &init(&two), &device).unwrap_err() {
        ModelError::Io { path, .. } => assert_eq!(path, teacher.join("tokenizer.json")),
        other => panic!("{other}"),
    }
    // Without a vocab, nothing changes: the student keeps the teacher's vocabulary.
    let plain = StudentInit::FirstLayers {
        layers: 1,
        untie_head: false,
        vocab: None,
    };
    assert_eq!(plain.tokenizer_source(&teacher), teacher.as_path());
    let (config, _) = build_student(&teacher, &plain, &device).unwrap();
    assert_eq!(config.vocab_size, Arch::Llama.min_vocab_size());
}

// ---- the shared models ----

fn fixture() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/transplant_smollm2_gpt2.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn rule_json(rule: &RowRule) -> serde_json::Value {
    match rule {
        RowRule::Special { source } => serde_json::json!({"rule": "special", "source": source}),
        RowRule::Exact { source } => serde_json::json!({"rule": "exact", "source": source}),
        RowRule::Split { pieces } => {
            let pieces: Vec<serde_json::Value> = pieces
                .iter()
                .map(|p| match p {
                    Piece::Token(id) => serde_json::json!({"token": id}),
                    Piece::Absent(c) => serde_json::json!({"absent": c.to_string()}),
                })
                .collect();
            serde_json::json!({"rule": "split", "pieces": pieces})
        }
    }
}

fn floats(value: &serde_json::Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
#[ignore = "needs MRL_SHARED"]
fn smollm2_to_gpt2_matches_the_python_reference() {
    let smol = shared_path("models/SmolLM2-135M-Instruct-Q4_1");
    let gpt2 = shared_path("models/gpt2-tokenizer/tokenizer.json");
    let gguf_path = smol.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let (shape, embedding) = GgufFile::open(&gguf_path)
        .unwrap()
        .tensor_f32("token_embd.weight")
        .unwrap();
    assert_eq!(shape, [49152, 576]);
    let source = read_vocab(&smol.join("tokenizer.json")).unwrap();
    let target = read_vocab(&gpt2).unwrap();
    assert_eq!((source.len(), target.len()), (49152, 50257));
    let (eos_t, eos_s) = (target["<|endoftext|>"], 2);
    assert_eq!((eos_t, source["<|im_end|>"]), (50256, eos_s));
    let (matrix, plan) =
        transplant_embedding(&source, &embedding, 576, &target, &[(eos_t, eos_s)]).unwrap();

    let reference = fixture();
    let c = plan.counts();
    let counts = &reference["counts"];
    assert_eq!(
        (
            c.exact_string_matches,
            c.special,
            c.exact,
            c.split,
            c.with_absent_symbol
        ),
        (
            counts["exact_string_matches"].as_u64().unwrap() as usize,
            counts["special"].as_u64().unwrap() as usize,
            counts["exact"].as_u64().unwrap() as usize,
            counts["split"].as_u64().unwrap() as usize,
            counts["with_absent_symbol"].as_u64().unwrap() as usize,
        )
    );
    // The numbers measured when this test was written (reported to the project).
    assert_eq!(
        (
            c.exact_string_matches,
            c.special,
            c.exact,
            c.split,
            c.with_absent_symbol
        ),
        (36961, 1, 36960, 13296, 21)
    );
    let absent: BTreeSet<String> = plan
        .rows()
        .iter()
        .flat_map(|r| match r {
            RowRule::Split { pieces } => pieces
                .iter()
                .filter_map(|p| match p {
                    Piece::Absent(c) => Some(c.to_string()),
                    Piece::Token(_) => None,
                })
                .collect(),
            _ => Vec::new(),
        })
        .collect();
    let expected_absent: BTreeSet<String> = reference["absent_byte_symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(expected_absent.len(), 21);
    assert_eq!(absent, expected_absent);

    for (id, rule) in reference["sample_rules"].as_object().unwrap() {
        let id: usize = id.parse().unwrap();
        assert_eq!(&rule_json(&plan.rows()[id]), rule, "row {id}");
    }
    for (id, row) in reference["full_rows"].as_object().unwrap() {
        let id: usize = id.parse().unwrap();
        let expected: Vec<f32> = floats(row).into_iter().map(|v| v as f32).collect();
        let diff = max_abs_diff(&matrix[id * 576..(id + 1) * 576], &expected);
        assert!(diff <= 1e-6, "row {id}: max |Δ| {diff}");
    }
    // The whole matrix: column sums, plain and weighted by (id + 1) / V.
    let n = target.len();
    let mut plain = vec![0.0f64; 576];
    let mut weighted = vec![0.0f64; 576];
    for (t, row) in matrix.chunks_exact(576).enumerate() {
        let w = (t as f64 + 1.0) / n as f64;
        for (h, &v) in row.iter().enumerate() {
            plain[h] += f64::from(v);
            weighted[h] += w * f64::from(v);
        }
    }
    for (name, ours, theirs) in [
        ("column_sums", &plain, floats(&reference["column_sums"])),
        (
            "weighted_column_sums",
            &weighted,
            floats(&reference["weighted_column_sums"]),
        ),
    ] {
        for (h, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                "{name}[{h}]: {a} vs {b}"
            );
        }
    }
}

#[test]
#[ignore = "needs MRL_SHARED"]
fn a_smollm2_student_over_the_gpt2_vocabulary_runs_on_gpt2_ids() {
    let smol = shared_path("models/SmolLM2-135M-Instruct-Q4_1");
    let gpt2 = shared_path("models/gpt2-tokenizer/tokenizer.json");
    let tokenizer = tokenizers::Tokenizer::from_file(&gpt2).unwrap();
    let text = "Hello world<|endoftext|>";
    let encoded: Vec<i64> = tokenizer
        .encode(text, false)
        .unwrap()
        .get_ids()
        .iter()
        .map(|&i| i64::from(i))
        .collect();
    assert_eq!(encoded, [15496, 995, 50256]);
    let longer: Vec<i64> = tokenizer
        .encode("The quick brown fox jumps over the lazy dog.", false)
        .unwrap()
        .get_ids()
        .iter()
        .map(|&i| i64::from(i))
        .chain(encoded)
        .collect();
    for (name, device) in devices() {
        let init = transplant_init(10, false, &gpt2);
        let (config, student) = build_student(&smol, &init, &device).unwrap();
        assert_eq!(config.vocab_size, 50257, "{name}");
        assert_eq!(
            (config.bos_token_id, config.eos_token_ids.clone()),
            (Some(50256), vec![50256]),
            "{name}"
        );
        assert!(
            config.tie_word_embeddings && student.lm_head.is_none(),
            "{name}"
        );
        assert_eq!(config.num_hidden_layers, 10, "{name}");
        // The eos row is SmolLM2's eos row (id 2); "Hello" is SmolLM2's "Hello" (19556).
        let (_, teacher) =
            LlamaModel::from_pretrained(&smol, LayerSelection::First(1), &device).unwrap();
        let teacher_rows = host(teacher.embed_tokens.weight.val());
        let rows = host(student.embed_tokens.weight.val());
        for (t, s) in [(50256usize, 2usize), (15496, 19556)] {
            assert_eq!(
                &rows[t * 576..(t + 1) * 576],
                &teacher_rows[s * 576..(s + 1) * 576],
                "{name} row {t}"
            );
        }
        let logits = student
            .forward(ids(&longer, &device), false)
            .logits
            .unwrap();
        assert_eq!(logits.dims(), [1, longer.len(), 50257], "{name}");
        let values = logits.into_data().try_into_vec_as::<f32>().unwrap();
        assert!(values.iter().all(|v| v.is_finite()), "{name}");
    }
}
