//! XLM-RoBERTa (BGE-M3's architecture) against transformers, on the tiny random checkpoint of
//! `tests/fixtures/tiny-xlm-roberta/` (written by `scripts/make_tiny_xlmr_fixture.py`):
//! position ids counted from `pad_token_id + 1` (also in a left-padded row), every hidden state
//! at every position (padding included) within 1e-4 on ndarray and flex, the tokenizer and the
//! sentence encoder (CLS pooling), a `roberta.`-prefixed masked-LM layout, and the HF-layout
//! export loading back as XLM-R.

use crate::common::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::store::{bridge, BurnToPyTorchAdapter, ModuleSnapshot};
use burn::tensor::{Device, Int, Tensor, TensorData};
use models::bert::EXPORT_KEY_REMAPS;
use models::{
    BertConfig, BertInput, BertModel, BertVariant, EncoderOptions, ModelError, Pooling,
    SentenceEncoder,
};
use serde::Deserialize;

/// What transformers computed (see the script for how).
#[derive(Deserialize)]
struct Expected {
    texts: Vec<String>,
    token_ids: Vec<Vec<u32>>,
    input_ids: Vec<Vec<i64>>,
    attention_mask: Vec<Vec<i64>>,
    position_ids: Vec<Vec<i64>>,
    /// `[layers + 1][batch][seq][hidden]`.
    hidden_states: Vec<Vec<Vec<Vec<f32>>>>,
}

const TOLERANCE: f32 = 1e-4;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-xlm-roberta")
}

fn expected() -> Expected {
    let path = fixture_dir().join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn int2(rows: &[Vec<i64>], device: &Device) -> Tensor<2, Int> {
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), rows[0].len()]), device)
}

fn input(expected: &Expected, device: &Device) -> BertInput {
    BertInput::new(
        int2(&expected.input_ids, device),
        int2(&expected.attention_mask, device),
    )
}

/// Every hidden state of `model` on the fixture batch against transformers', at every position.
fn assert_matches_transformers(
    model: &BertModel,
    expected: &Expected,
    device: &Device,
    what: &str,
) {
    let out = model.forward(input(expected, device), false);
    assert_eq!(
        out.hidden_states.len(),
        expected.hidden_states.len(),
        "{what}"
    );
    for (l, (got, want)) in out
        .hidden_states
        .iter()
        .zip(&expected.hidden_states)
        .enumerate()
    {
        let [batch, seq, hidden] = got.dims();
        let got = got.clone().into_data().try_into_vec_as::<f32>().unwrap();
        let want: Vec<f32> = want.iter().flatten().flatten().copied().collect();
        assert_eq!(got.len(), want.len(), "{what} hidden_states[{l}] shape");
        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
            let (b, t, h) = (i / (seq * hidden), (i / hidden) % seq, i % hidden);
            assert!(
                (g - e).abs() <= TOLERANCE,
                "{what} hidden_states[{l}][{b}, {t}, {h}] (batch {batch}): ours {g}, \
                 transformers {e}"
            );
        }
    }
}

#[test]
fn xlm_roberta_matches_transformers_at_every_position() {
    let expected = expected();
    for (name, device) in devices() {
        let (config, model) = BertModel::from_pretrained(&fixture_dir(), &device).unwrap();
        assert_eq!(config.variant, BertVariant::XlmRoberta, "{name}");
        assert_eq!(
            (
                config.pad_token_id,
                config.type_vocab_size,
                config.layer_norm_eps
            ),
            (1, 1, 1e-5),
            "{name}"
        );
        assert_eq!(config.position_offset(), Some(1), "{name}");
        assert_eq!(config.max_sequence_length(), 40 - 2, "{name}");

        // Row 4 is left-padded: its real tokens still start at position pad + 1 = 2, and every
        // padding token sits at position 1.
        let positions = model
            .embeddings
            .position_ids(&int2(&expected.input_ids, &device))
            .into_data()
            .try_into_vec_as::<i64>()
            .unwrap();
        let want: Vec<i64> = expected.position_ids.iter().flatten().copied().collect();
        assert_eq!(positions, want, "{name}: position ids");
        assert_eq!(expected.position_ids[4][..6], [1; 6]);
        assert_eq!(expected.position_ids[4][6], 2);

        assert_matches_transformers(&model, &expected, &device, name);
    }
}

#[test]
fn the_sentence_encoder_tokenizes_and_pools_like_transformers() {
    let expected = expected();
    let texts: Vec<&str> = expected.texts.iter().map(String::as_str).collect();
    let last = expected.hidden_states.last().unwrap();
    for (name, device) in devices() {
        let encoder =
            SentenceEncoder::load(&fixture_dir(), &device, &EncoderOptions::default()).unwrap();
        assert_eq!(encoder.pooling(), Pooling::Cls, "{name}");
        assert_eq!(
            encoder.max_length(),
            38,
            "{name}: positions start after the padding id"
        );

        // The tokenizer pads with `<pad>` = 1, as the position ids require.
        let batch = encoder.tokenizer().encode_batch(&texts).unwrap();
        for (i, want) in expected.token_ids.iter().enumerate() {
            assert_eq!(
                batch.ids(i),
                want.as_slice(),
                "{name}: ids of `{}`",
                texts[i]
            );
            let row = &batch.input_ids[i * batch.seq_len..(i + 1) * batch.seq_len];
            let want_row: Vec<u32> = expected.input_ids[i].iter().map(|&v| v as u32).collect();
            assert_eq!(row, want_row.as_slice(), "{name}: padded row {i}");
        }
        assert!(batch.token_type_ids.iter().all(|&t| t == 0), "{name}");

        // CLS pooling = the last hidden state at position 0 (`<s>`).
        let pooled = encoder.embed_batch(&texts).unwrap();
        let got = pooled.into_data().try_into_vec_as::<f32>().unwrap();
        let want: Vec<f32> = last[..texts.len()]
            .iter()
            .flat_map(|row| row[0].clone())
            .collect();
        let diff = max_abs_diff(&got, &want);
        assert!(
            diff <= TOLERANCE,
            "{name}: pooled embeddings differ by {diff}"
        );

        let err = SentenceEncoder::load(
            &fixture_dir(),
            &device,
            &EncoderOptions {
                max_length: Some(39),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::InvalidArgument {
                    name: "max_length",
                    ..
                }
            ),
            "{name}: {err}"
        );
    }
}

/// The model's tensors in Hugging Face naming and PyTorch layout, as `config.json` +
/// `model.safetensors` would hold them, each key prefixed with `prefix`.
fn hf_tensors(model: &BertModel, prefix: &str) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    model
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), false)
        .into_iter()
        .map(|t| {
            let mut key = t.name.clone();
            for (from, to) in EXPORT_KEY_REMAPS {
                key = regex_free_replace(&key, from, to);
            }
            let shape = t.shape.to_vec();
            let data = bridge::to_data(&t).unwrap();
            (
                format!("{prefix}{key}"),
                (shape, data.try_into_vec_as::<f32>().unwrap()),
            )
        })
        .collect()
}

/// The two export remaps are plain substring renames (`\.` is a literal dot).
fn regex_free_replace(key: &str, pattern: &str, to: &str) -> String {
    key.replace(&pattern.replace('\\', ""), to)
}

#[test]
fn a_roberta_prefixed_masked_lm_checkpoint_loads_and_strays_are_named() {
    let expected = expected();
    let device = Device::flex();
    let (_, model) = BertModel::from_pretrained(&fixture_dir(), &device).unwrap();
    let tmp = TempDir::new("xlmr-prefixed");
    std::fs::copy(
        fixture_dir().join("config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();

    // `XLMRobertaForMaskedLM.save_pretrained` layout: `roberta.` prefix, an `lm_head`, no pooler.
    let mut tensors = hf_tensors(&model, "roberta.");
    assert!(tensors.contains_key("roberta.encoder.layer.1.attention.self.query.weight"));
    tensors.insert("lm_head.bias".into(), (vec![48], vec![0.25; 48]));
    tensors.insert(
        "lm_head.dense.weight".into(),
        (vec![32, 32], values(9, 32 * 32)),
    );
    std::fs::write(
        tmp.path().join("model.safetensors"),
        safetensors_bytes(&tensors),
    )
    .unwrap();
    let (_, reloaded) = BertModel::from_pretrained(tmp.path(), &device).unwrap();
    assert_matches_transformers(&reloaded, &expected, &device, "roberta.-prefixed");

    // A key that lands nowhere is named as the file spells it.
    tensors.insert(
        "roberta.encoder.layer.0.extra.weight".into(),
        (vec![2], vec![1.0, 2.0]),
    );
    std::fs::write(
        tmp.path().join("model.safetensors"),
        safetensors_bytes(&tensors),
    )
    .unwrap();
    let err = BertModel::from_pretrained(tmp.path(), &device).unwrap_err();
    assert!(
        err.to_string()
            .contains("unexpected key roberta.encoder.layer.0.extra.weight"),
        "{err}"
    );
}

#[test]
fn the_hf_export_loads_back_as_xlm_roberta() {
    let expected = expected();
    let device = Device::flex();
    let (config, model) = BertModel::from_pretrained(&fixture_dir(), &device).unwrap();
    let tmp = TempDir::new("xlmr-export");
    let json = serde_json::to_vec_pretty(&config.to_hf_json()).unwrap();
    std::fs::write(tmp.path().join("config.json"), json).unwrap();
    model
        .save_hf_safetensors(&tmp.path().join("model.safetensors"))
        .unwrap();

    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(written["model_type"], "xlm-roberta");
    assert_eq!(written["architectures"][0], "XLMRobertaModel");
    assert_eq!(
        (&written["pad_token_id"], &written["type_vocab_size"]),
        (&1.into(), &1.into())
    );

    let (again, reloaded) = BertModel::from_pretrained(tmp.path(), &device).unwrap();
    assert_eq!(again.variant, BertVariant::XlmRoberta);
    assert_eq!(
        (
            again.pad_token_id,
            again.max_position_embeddings,
            again.type_vocab_size
        ),
        (1, 40, 1)
    );
    // Same tensors, bit for bit.
    assert_eq!(hf_tensors(&reloaded, ""), hf_tensors(&model, ""));
    assert_matches_transformers(&reloaded, &expected, &device, "exported");
}

#[test]
fn roberta_configs_default_their_pad_id_and_need_room_for_positions() {
    let tmp = TempDir::new("roberta-config");
    let path = tmp.path().join("config.json");
    let base = serde_json::json!({
        "model_type": "roberta", "vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 20,
        "type_vocab_size": 1
    });
    std::fs::write(&path, base.to_string()).unwrap();
    let config = BertConfig::from_hf_json(&path).unwrap();
    assert_eq!(
        (config.variant, config.pad_token_id),
        (BertVariant::Roberta, 1)
    );
    assert_eq!(config.max_sequence_length(), 18);
    assert_eq!(config.to_hf_json()["model_type"], "roberta");

    let mut cramped = base.clone();
    cramped["max_position_embeddings"] = 2.into();
    std::fs::write(&path, cramped.to_string()).unwrap();
    let message = BertConfig::from_hf_json(&path).unwrap_err().to_string();
    assert!(
        message.contains("leaves no position after pad_token_id 1")
            && message.contains("config.json"),
        "{message}"
    );

    let mut other = base;
    other["model_type"] = "deberta-v2".into();
    std::fs::write(&path, other.to_string()).unwrap();
    let message = BertConfig::from_hf_json(&path).unwrap_err().to_string();
    assert!(message.contains("model_type `deberta-v2`"), "{message}");
}

#[test]
#[should_panic(expected = "sequence length 39 exceeds the 38 positions")]
fn an_input_longer_than_the_positions_after_the_pad_id_panics() {
    let device = Device::flex();
    let (_, model) = BertModel::from_pretrained(&fixture_dir(), &device).unwrap();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![5i64; 39], [1, 39]), &device);
    model.embeddings.position_ids(&ids);
}
