//! A tiny, randomly initialised BERT with a word-level tokenizer built in code, written in the
//! Hugging Face layout: a model that `mrl train` can train in a fraction of a second per step,
//! for tests, smoke runs and examples — no download and no shared data needed.

use std::path::Path;

use burn::tensor::Device;
use models::atomic::write_atomic;
use models::{BertConfig, ModelError, Result};
use tokenizers::Tokenizer;

use crate::random_model::write_tokenizer;

/// The words of the tiny vocabulary (after the five BERT special tokens).
pub const WORDS: &[&str] = &[
    "a", "the", "man", "woman", "dog", "cat", "child", "bird", "is", "are", "playing", "eating",
    "running", "sleeping", "singing", "reading", "a", "guitar", "piano", "ball", "book", "song",
    "food", "in", "on", "park", "house", "street", "garden", "small", "big", "old", "young",
    "happy", "quickly", "slowly", ".",
];

/// The hidden size of the tiny model.
pub const TINY_HIDDEN: usize = 32;
/// The number of layers of the tiny model.
pub const TINY_LAYERS: usize = 2;

/// The tiny BERT's config: hidden 32, 2 layers, 4 heads, intermediate 64, 64 positions.
pub fn tiny_config() -> BertConfig {
    let vocab = 5 + unique_words().len();
    BertConfig::new(vocab, TINY_HIDDEN, TINY_LAYERS, 4, 64).with_max_position_embeddings(64)
}

pub(crate) fn unique_words() -> Vec<&'static str> {
    let mut seen = std::collections::HashSet::new();
    WORDS.iter().copied().filter(|w| seen.insert(*w)).collect()
}

/// The BERT-style tokenizer of the tiny vocabulary (`[PAD]` 0, `[UNK]` 1, `[CLS]` 2,
/// `[SEP]` 3, `[MASK]` 4, then [`WORDS`]; lower-casing; `[CLS] … [SEP]`).
///
/// # Panics
/// Never for the built-in vocabulary.
pub fn tiny_tokenizer() -> Tokenizer {
    let vocab: serde_json::Map<String, serde_json::Value> =
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            .into_iter()
            .chain(unique_words())
            .enumerate()
            .map(|(i, t)| (t.to_string(), serde_json::Value::from(i)))
            .collect();
    // The same JSON a Hugging Face BERT `tokenizer.json` holds.
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": {"type": "BertNormalizer", "clean_text": true,
                       "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": null,
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}
    });
    Tokenizer::from_bytes(serde_json::to_vec(&json).expect("json")).expect("a valid tokenizer.json")
}

/// Writes a randomly initialised tiny BERT to `dir`: `config.json`, `model.safetensors`
/// (Hugging Face key names), `tokenizer.json` and `1_Pooling/config.json` (mean pooling).
/// The weights are drawn after seeding `device` with `seed`.
///
/// # Errors
/// [`ModelError::Write`] / [`ModelError::Weights`] naming the file that cannot be written.
pub fn write_tiny_model(dir: &Path, seed: u64, device: &Device) -> Result<()> {
    std::fs::create_dir_all(dir.join("1_Pooling")).map_err(|source| ModelError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let config = tiny_config();
    device.seed(seed);
    let model = config.init(device);
    model.save_hf_safetensors(&dir.join("model.safetensors"))?;
    let json = |v: serde_json::Value| serde_json::to_vec_pretty(&v).expect("json");
    write_atomic(&dir.join("config.json"), &json(config.to_hf_json()))?;
    write_tokenizer(&tiny_tokenizer(), &dir.join("tokenizer.json"))?;
    write_atomic(
        &dir.join("1_Pooling").join("config.json"),
        &json(serde_json::json!({
            "word_embedding_dimension": TINY_HIDDEN,
            "pooling_mode_mean_tokens": true
        })),
    )?;
    Ok(())
}

/// `n` deterministic sentences over the tiny vocabulary (distinct as long as `n <= 2000`).
pub fn tiny_sentences(n: usize) -> Vec<String> {
    let subjects = ["man", "woman", "dog", "cat", "child", "bird"];
    let verbs = [
        "playing", "eating", "running", "sleeping", "singing", "reading",
    ];
    let objects = ["guitar", "piano", "ball", "book", "song", "food"];
    let places = ["park", "house", "street", "garden"];
    let adjectives = ["small", "big", "old", "young", "happy"];
    (0..n)
        .map(|i| {
            let s = subjects[i % 6];
            let v = verbs[(i / 6) % 6];
            let o = objects[(i / 36) % 6];
            let a = adjectives[(i / 7) % 5];
            match i % 3 {
                0 => format!("a {a} {s} is {v} ."),
                1 => format!("the {s} is {v} a {o} in the {} .", places[(i / 5) % 4]),
                _ => format!(
                    "the {a} {s} is {v} {} .",
                    if i % 2 == 0 { "quickly" } else { "slowly" }
                ),
            }
        })
        .collect()
}

/// An STS TSV (header, then `score<TAB>s1<TAB>s2`) of `n` pairs over the tiny vocabulary;
/// scores are 5 for a sentence paired with itself and decrease with the index distance.
pub fn tiny_sts_tsv(n: usize) -> String {
    let sentences = tiny_sentences(2 * n + 4);
    let mut out = String::from("score\tsentence1\tsentence2\n");
    for i in 0..n {
        let j = i + (i % 5);
        let score = 5.0 - (i % 5) as f64;
        out.push_str(&format!("{score}\t{}\t{}\n", sentences[i], sentences[j]));
    }
    out
}
