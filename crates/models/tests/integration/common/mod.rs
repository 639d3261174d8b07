//! Helpers shared by the integration tests: devices, a tiny synthetic BERT checkpoint written
//! to a temporary directory. The temporary directory and the shared data directory are
//! `test-support`'s, re-exported here.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
pub use test_support::{shared_path, TempDir};

/// Every parameter of `module` by module path, as raw values (to compare models exactly).
pub fn tensors(module: &impl burn::module::Module) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    use burn::store::{bridge, ModuleSnapshot};
    module
        .collect(None, None, false)
        .into_iter()
        .map(|t| {
            let shape = t.shape.to_vec();
            let values = bridge::to_data(&t)
                .unwrap()
                .try_into_vec_as::<f32>()
                .unwrap();
            (t.name.clone(), (shape, values))
        })
        .collect()
}

/// Every CPU device compiled in: tests run on each.
#[allow(deprecated)]
pub fn devices() -> Vec<(&'static str, Device)> {
    vec![("ndarray", Device::ndarray()), ("flex", Device::flex())]
}

/// The shared all-MiniLM-L6-v2 directory; panics naming `MRL_SHARED` and the path if it is
/// missing.
pub fn minilm_dir() -> PathBuf {
    let weights = shared_path("models/all-MiniLM-L6-v2/model.safetensors");
    weights.parent().expect("a file has a parent").to_path_buf()
}

/// Tiny architecture used by the synthetic checkpoints.
pub const VOCAB: usize = 24;
pub const HIDDEN: usize = 8;
pub const HEADS: usize = 2;
pub const LAYERS: usize = 2;
pub const INTERMEDIATE: usize = 16;
pub const POSITIONS: usize = 16;

pub fn tiny_config_json() -> String {
    format!(
        r#"{{"model_type": "bert", "vocab_size": {VOCAB}, "hidden_size": {HIDDEN},
            "num_hidden_layers": {LAYERS}, "num_attention_heads": {HEADS},
            "intermediate_size": {INTERMEDIATE}, "max_position_embeddings": {POSITIONS},
            "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}}"#
    )
}

/// Deterministic pseudo-random values in [-0.5, 0.5) (a splitmix-style hash of `seed`, `i`).
pub fn values(seed: u64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let mut z = seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(i as u64 + 1);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// The tensors of a tiny BERT checkpoint in Hugging Face naming (PyTorch layouts:
/// Linear weights `[out, in]`), with the pooler and `position_ids` included.
pub fn tiny_checkpoint() -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut t = BTreeMap::new();
    let mut seed = 1;
    let mut add = |name: String, shape: Vec<usize>| {
        let n = shape.iter().product();
        let data = if name.ends_with("LayerNorm.weight") {
            values(seed, n).iter().map(|v| 1.0 + 0.2 * v).collect()
        } else {
            values(seed, n)
        };
        seed += 1;
        t.insert(name, (shape, data));
    };
    add(
        "embeddings.word_embeddings.weight".into(),
        vec![VOCAB, HIDDEN],
    );
    add(
        "embeddings.position_embeddings.weight".into(),
        vec![POSITIONS, HIDDEN],
    );
    add(
        "embeddings.token_type_embeddings.weight".into(),
        vec![2, HIDDEN],
    );
    add("embeddings.LayerNorm.weight".into(), vec![HIDDEN]);
    add("embeddings.LayerNorm.bias".into(), vec![HIDDEN]);
    for l in 0..LAYERS {
        let p = format!("encoder.layer.{l}");
        for name in ["query", "key", "value"] {
            add(
                format!("{p}.attention.self.{name}.weight"),
                vec![HIDDEN, HIDDEN],
            );
            add(format!("{p}.attention.self.{name}.bias"), vec![HIDDEN]);
        }
        add(
            format!("{p}.attention.output.dense.weight"),
            vec![HIDDEN, HIDDEN],
        );
        add(format!("{p}.attention.output.dense.bias"), vec![HIDDEN]);
        add(
            format!("{p}.attention.output.LayerNorm.weight"),
            vec![HIDDEN],
        );
        add(format!("{p}.attention.output.LayerNorm.bias"), vec![HIDDEN]);
        add(
            format!("{p}.intermediate.dense.weight"),
            vec![INTERMEDIATE, HIDDEN],
        );
        add(format!("{p}.intermediate.dense.bias"), vec![INTERMEDIATE]);
        add(
            format!("{p}.output.dense.weight"),
            vec![HIDDEN, INTERMEDIATE],
        );
        add(format!("{p}.output.dense.bias"), vec![HIDDEN]);
        add(format!("{p}.output.LayerNorm.weight"), vec![HIDDEN]);
        add(format!("{p}.output.LayerNorm.bias"), vec![HIDDEN]);
    }
    add("pooler.dense.weight".into(), vec![HIDDEN, HIDDEN]);
    add("pooler.dense.bias".into(), vec![HIDDEN]);
    t
}

/// Serialises f32 tensors in the safetensors format (8-byte header length, JSON header, data).
pub fn safetensors_bytes(tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, (shape, values)) in tensors {
        let start = data.len();
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut header = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(data);
    out
}

/// A WordPiece tokenizer over a tiny lowercase vocabulary of `VOCAB` entries, saved as
/// `tokenizer.json` with BERT's `[CLS] … [SEP]` template and a fixed padding to 12 (which the
/// loader must replace by longest-in-batch).
pub fn write_tiny_tokenizer(path: &Path) {
    let words = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "dog", "sat", "on", "mat", "a", "runs",
        "fast", "##s", "big", "red", "blue", "bird", "flies", ".", ",", "and", "is", "small",
    ];
    assert_eq!(words.len(), VOCAB);
    let vocab: serde_json::Map<String, serde_json::Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), serde_json::json!(i)))
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": {"strategy": {"Fixed": 12}, "direction": "Right", "pad_to_multiple_of": null,
                    "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": [],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                               "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}
    });
    std::fs::write(path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

/// Writes a complete tiny model directory (config, weights, tokenizer, mean pooling).
pub fn write_tiny_model(dir: &Path) {
    std::fs::write(dir.join("config.json"), tiny_config_json()).unwrap();
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors_bytes(&tiny_checkpoint()),
    )
    .unwrap();
    write_tiny_tokenizer(&dir.join("tokenizer.json"));
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    std::fs::write(
        dir.join("1_Pooling/config.json"),
        r#"{"word_embedding_dimension": 8, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true}"#,
    )
    .unwrap();
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The values of a tensor of any float dtype, as f32.
pub fn f32_values<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Largest difference relative to `max(|b|, 1)` between two equally long slices.
pub fn worst_relative(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0, f32::max)
}

/// `require_grad` on autodiff devices (finite differences run the same code without).
pub trait RequireGradIfAutodiff {
    fn require_grad_if_autodiff(self) -> Self;
}

impl<const D: usize> RequireGradIfAutodiff for burn::tensor::Tensor<D> {
    fn require_grad_if_autodiff(self) -> Self {
        if self.device().is_autodiff() {
            self.require_grad()
        } else {
            self
        }
    }
}

/// Central finite differences (step 1e-2) of `loss` at `args` against `analytic` (one gradient
/// per argument), each element within 2e-3 relative to `max(|analytic|, 1)`; `name` prefixes
/// the panic, which names the argument and the element.
pub fn assert_finite_differences(
    name: &str,
    args: &[Vec<f32>],
    analytic: &[Vec<f32>],
    loss: impl Fn(&[Vec<f32>]) -> f64,
) {
    let h = 1e-2f32;
    for (which, base) in args.iter().enumerate() {
        for i in 0..base.len() {
            let at = |shift: f32| {
                let mut shifted = args.to_vec();
                shifted[which][i] += shift;
                loss(&shifted)
            };
            let numeric = ((at(h) - at(-h)) / (2.0 * h as f64)) as f32;
            let a = analytic[which][i];
            assert!(
                (numeric - a).abs() < 2e-3 * a.abs().max(1.0),
                "{name}: argument {which}, element {i}: analytic {a}, finite difference {numeric}"
            );
        }
    }
}
