//! A Llama-family decoder as a sentence embedder through [`SentenceEncoder`]: the architecture is
//! detected from `config.json`, the default pooling is the last real token, and the pooled
//! vectors equal transformers' last hidden state at that token (the tiny fixtures written by
//! `tests/fixtures/make_tiny_decoders.py`); on the shared SmolLM2 GGUF, a text embeds the same
//! alone and padded in a batch.

use std::path::Path;

use burn::tensor::Tensor;
use models::{Backbone, EncoderOptions, ModelError, Pooling, SentenceEncoder};

use crate::common::*;

/// A whitespace word-level tokenizer whose word `wN` is token id `N` (ids 0..64), so the
/// fixture's token ids can be written as text.
fn write_word_tokenizer(path: &Path) {
    let vocab: serde_json::Map<String, serde_json::Value> = (0..64)
        .map(|i| (format!("w{i}"), serde_json::json!(i)))
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"}
    });
    std::fs::write(path, serde_json::to_string(&json).unwrap()).unwrap();
}

#[derive(serde::Deserialize)]
struct Expected {
    input_ids: Vec<Vec<i64>>,
    attention_mask: Vec<Vec<i64>>,
    hidden_states: Vec<Vec<Vec<Vec<f32>>>>,
}

#[test]
fn tiny_decoders_embed_as_transformers_last_hidden_state_at_the_last_real_token() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (variant, arch) in [("llama", "llama"), ("qwen2", "qwen2"), ("qwen3", "qwen3")] {
        let src = fixtures.join(format!("tiny_{variant}"));
        let tmp = TempDir::new(&format!("decoder-embed-{variant}"));
        for file in ["config.json", "model.safetensors"] {
            std::fs::copy(src.join(file), tmp.path().join(file)).unwrap();
        }
        write_word_tokenizer(&tmp.path().join("tokenizer.json"));
        let expected: Expected =
            serde_json::from_str(&std::fs::read_to_string(src.join("expected.json")).unwrap())
                .unwrap();
        let texts: Vec<String> = expected
            .input_ids
            .iter()
            .zip(&expected.attention_mask)
            .map(|(ids, mask)| {
                ids.iter()
                    .zip(mask)
                    .filter(|(_, &m)| m == 1)
                    .map(|(id, _)| format!("w{id}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let last = expected.hidden_states.last().unwrap();

        for (name, device) in devices() {
            let encoder =
                SentenceEncoder::load(tmp.path(), &device, &EncoderOptions::default()).unwrap();
            assert!(matches!(encoder.backbone(), Backbone::Decoder(_)));
            assert_eq!(encoder.backbone().architecture(), arch);
            assert_eq!(encoder.pooling(), Pooling::LastToken, "{variant}");
            assert_eq!(encoder.hidden_size(), 32);
            assert_eq!(encoder.num_layers(), 2);
            let got = encoder.encode(&texts, 8, |_| {}).unwrap();
            for (b, row) in got.iter().enumerate() {
                let n = expected.attention_mask[b]
                    .iter()
                    .filter(|&&m| m == 1)
                    .count();
                let want = &last[b][n - 1];
                let diff = row
                    .iter()
                    .zip(want)
                    .map(|(a, w)| (a - w).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    diff <= 1e-4,
                    "{variant} on {name}: row {b} max |diff| {diff}"
                );
            }
        }
    }
}

#[test]
fn an_unknown_model_type_names_the_supported_ones() {
    let tmp = TempDir::new("decoder-embed-unknown");
    write_tiny_model(tmp.path());
    let config = tmp.path().join("config.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    json["model_type"] = serde_json::json!("t5");
    std::fs::write(&config, json.to_string()).unwrap();
    let (_, device) = devices().remove(1);
    let err = SentenceEncoder::load(tmp.path(), &device, &EncoderOptions::default()).unwrap_err();
    assert!(matches!(err, ModelError::Unsupported { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("`t5`") && message.contains("bert") && message.contains("qwen3"),
        "{message}"
    );
}

#[test]
#[ignore = "needs MRL_SHARED (SmolLM2-135M-Instruct GGUF)"]
fn smollm2_embeds_a_text_the_same_alone_and_padded_in_a_batch() {
    let dir = shared_path("models/SmolLM2-135M-Instruct-Q4_1");
    let (_, device) = devices().remove(1);
    let encoder = SentenceEncoder::load(&dir, &device, &EncoderOptions::default()).unwrap();
    assert_eq!(encoder.backbone().architecture(), "llama");
    assert_eq!(encoder.pooling(), Pooling::LastToken);
    assert_eq!(encoder.hidden_size(), 576);
    let texts = [
        "A man is playing a guitar on a stage in front of a small crowd.",
        "A cat sleeps.",
        "The capital of France is Paris.",
    ];
    let batch = encoder.embed_batch(&texts).unwrap();
    assert_eq!(batch.dims(), [3, 576]);
    for (i, text) in texts.iter().enumerate() {
        let alone = encoder.embed_batch(&[text]).unwrap();
        let padded: Tensor<2> = batch.clone().slice([i..i + 1, 0..576]);
        let diff: f32 = (alone - padded).abs().max().into_scalar();
        assert!(
            diff <= 1e-3,
            "text {i}: max |diff| {diff} between alone and batched"
        );
    }
}
