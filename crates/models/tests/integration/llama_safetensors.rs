//! Tiny random Llama / Qwen2 / Qwen3 checkpoints saved by transformers
//! (`tests/fixtures/make_tiny_decoders.py`): our logits and every hidden state match transformers'
//! at the real positions of a right-padded batch, loaded from `model.safetensors` and, for the
//! llama one, from a GGUF written with llama.cpp's names and q/k permutation. Also: a
//! checkpoint that does not fit its config is refused with the offending keys named.

use crate::common;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use models::{LayerSelection, LlamaInput, LlamaModel, ModelError};

#[derive(serde::Deserialize)]
struct Expected {
    input_ids: Vec<Vec<i64>>,
    attention_mask: Vec<Vec<i64>>,
    logits: Vec<Vec<Vec<f32>>>,
    hidden_states: Vec<Vec<Vec<Vec<f32>>>>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn expected(variant: &str) -> Expected {
    let path = fixtures().join(format!("tiny_{variant}/expected.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn int2(rows: &[Vec<i64>], device: &Device) -> Tensor<2, Int> {
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), rows[0].len()]), device)
}

/// Compares `[batch, seq, width]` values at the real positions.
fn assert_close(got: Tensor<3>, want: &[Vec<Vec<f32>>], mask: &[Vec<i64>], what: &str) {
    let [batch, seq, width] = got.dims();
    let got = got.into_data().try_to_vec::<f32>().unwrap();
    for b in 0..batch {
        for t in 0..seq {
            if mask[b][t] == 0 {
                continue;
            }
            for w in 0..width {
                let (g, e) = (got[(b * seq + t) * width + w], want[b][t][w]);
                assert!(
                    (g - e).abs() <= 2e-4 + 2e-4 * e.abs(),
                    "{what}[{b}, {t}, {w}]: ours {g}, transformers {e}"
                );
            }
        }
    }
}

fn check(model: &LlamaModel, expected: &Expected, device: &Device, what: &str) {
    let out = model.forward(
        LlamaInput {
            input_ids: int2(&expected.input_ids, device),
            attention_mask: int2(&expected.attention_mask, device),
        },
        false,
    );
    assert_eq!(
        out.hidden_states.len(),
        expected.hidden_states.len(),
        "{what}"
    );
    for (l, (got, want)) in out
        .hidden_states
        .into_iter()
        .zip(&expected.hidden_states)
        .enumerate()
    {
        assert_close(
            got,
            want,
            &expected.attention_mask,
            &format!("{what} hidden_states[{l}]"),
        );
    }
    assert_close(
        out.logits.unwrap(),
        &expected.logits,
        &expected.attention_mask,
        &format!("{what} logits"),
    );
}

#[test]
fn safetensors_checkpoints_match_transformers() {
    for (name, device) in common::devices() {
        for variant in ["llama", "qwen2", "qwen3"] {
            let dir = fixtures().join(format!("tiny_{variant}"));
            let (config, model) =
                LlamaModel::from_pretrained(&dir, LayerSelection::All, &device).unwrap();
            assert_eq!(config.num_hidden_layers, 2);
            check(
                &model,
                &expected(variant),
                &device,
                &format!("{name} {variant}"),
            );
        }
    }
}

#[test]
fn the_gguf_with_permuted_qk_matches_transformers() {
    for (name, device) in common::devices() {
        // No config.json beside it: the config comes from the GGUF metadata.
        let (config, model) = LlamaModel::from_pretrained(
            &fixtures().join("tiny_llama.gguf"),
            LayerSelection::All,
            &device,
        )
        .unwrap();
        assert_eq!(
            (config.num_attention_heads, config.num_key_value_heads),
            (4, 2)
        );
        assert_eq!(config.rope_theta, 500.0);
        assert!(config.tie_word_embeddings);
        check(&model, &expected("llama"), &device, &format!("{name} gguf"));
    }
}

#[test]
fn a_first_layers_student_loads_only_those_layers() {
    let device = Device::flex();
    let dir = fixtures().join("tiny_qwen2");
    let (config, student) =
        LlamaModel::from_pretrained(&dir, LayerSelection::First(1), &device).unwrap();
    assert_eq!((config.num_hidden_layers, student.num_layers()), (1, 1));
    let err = LlamaModel::from_pretrained(&dir, LayerSelection::First(3), &device).unwrap_err();
    assert!(err.to_string().contains("3 layers requested"), "{err}");
}

#[test]
fn a_config_that_does_not_fit_the_weights_names_the_keys() {
    let device = Device::flex();
    let dir = fixtures().join("tiny_qwen3");
    let mut config = models::LlamaConfig::from_hf_json(&dir.join("config.json")).unwrap();
    config.num_hidden_layers = 3;
    config.intermediate_size = 48;
    let err = LlamaModel::load_safetensors(
        &config,
        &dir.join("model.safetensors"),
        LayerSelection::All,
        &device,
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, ModelError::WeightMismatch { .. }),
        "{message}"
    );
    assert!(
        message.contains("missing tensor model.layers.2.self_attn.q_proj.weight"),
        "{message}"
    );
    assert!(message.contains("mlp.up_proj.weight"), "{message}");
    assert!(
        message.contains("[32, 48]") && message.contains("[32, 40]"),
        "{message}"
    );
}

#[test]
fn truncated_weight_files_are_clear_errors() {
    let device = Device::flex();
    let tmp = test_support::TempDir::new("llama-trunc");
    let tmp = tmp.path();
    let gguf = std::fs::read(fixtures().join("tiny_llama.gguf")).unwrap();
    let cut = tmp.join("cut.gguf");
    std::fs::write(&cut, &gguf[..gguf.len() - 100]).unwrap();
    let err = LlamaModel::from_pretrained(&cut, LayerSelection::All, &device).unwrap_err();
    assert!(err.to_string().contains("truncated file"), "{err}");

    let st_dir = tmp.join("st");
    std::fs::create_dir_all(&st_dir).unwrap();
    std::fs::copy(
        fixtures().join("tiny_llama/config.json"),
        st_dir.join("config.json"),
    )
    .unwrap();
    let st = std::fs::read(fixtures().join("tiny_llama/model.safetensors")).unwrap();
    std::fs::write(st_dir.join("model.safetensors"), &st[..st.len() / 2]).unwrap();
    let err = LlamaModel::from_pretrained(&st_dir, LayerSelection::All, &device).unwrap_err();
    assert!(matches!(err, ModelError::Weights { .. }), "{err:?}");
}
