//! `models::llama::export_decoder`: a student exported with its teacher's tokenizer files is a
//! complete Hugging Face directory — the weights load back bit for bit, `tokenizer.json` and
//! every side file the source has are copied byte for byte, a minimal `tokenizer_config.json`
//! naming the bos/eos tokens is written when the source has none, stale side files of an
//! earlier export are removed, and the generator of this crate loads the result with its stop
//! token. A config read from GGUF metadata exports the right special ids, RoPE base and head
//! tying. Refusals (no `tokenizer.json`, a config that does not describe the model, a tokenizer
//! larger than the vocabulary, a special id the tokenizer lacks) write nothing.
//!
//! (`crates/models/scripts/check_export_decoder.py` checks an export against transformers; see
//! the `export_student` example.)

use crate::common::{devices, tensors, TempDir};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use models::generation::TextGenerator;
use models::gguf::GgufFile;
use models::llama::{build_student, export_decoder, StudentInit, TOKENIZER_SIDE_FILES};
use models::{LayerSelection, LlamaConfig, LlamaModel, ModelError};
use tiny_models::{word_tokenizer, write_random_model, Arch, ModelShape};

const VOCAB: usize = 48;

fn teacher(tmp: &TempDir, device: &Device) -> PathBuf {
    let dir = tmp.path().join("teacher");
    let shape = ModelShape::new(16, 3, 4, 24, VOCAB).with_kv_heads(2);
    write_random_model(&dir, Arch::Qwen3, &shape, 3, device).unwrap();
    dir
}

fn student(teacher: &Path, device: &Device) -> (LlamaConfig, LlamaModel) {
    let init = StudentInit::FirstLayers {
        layers: 2,
        untie_head: false,
        vocab: None,
    };
    build_student(teacher, &init, device).unwrap()
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_tokenizer_json_alone_gets_a_minimal_tokenizer_config() {
    for (name, device) in devices() {
        let tmp = TempDir::new("export-decoder-minimal");
        let source = teacher(&tmp, &device);
        let (config, model) = student(&source, &device);
        let out = tmp.path().join("student");
        export_decoder(&model, &config, &out, &source).unwrap();

        let expected: BTreeSet<String> = [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        ]
        .map(String::from)
        .into();
        assert_eq!(names(&out), expected, "{name}");
        assert_eq!(
            std::fs::read(out.join("tokenizer.json")).unwrap(),
            std::fs::read(source.join("tokenizer.json")).unwrap(),
            "{name}"
        );
        let tokenizer_config = json(&out.join("tokenizer_config.json"));
        assert_eq!(tokenizer_config["bos_token"], "<s>", "{name}");
        assert_eq!(tokenizer_config["eos_token"], "</s>", "{name}");
        assert_eq!(
            tokenizer_config["tokenizer_class"], "PreTrainedTokenizerFast",
            "{name}"
        );
        assert_eq!(tokenizer_config["model_max_length"], 64, "{name}");

        let (reloaded_config, reloaded) =
            LlamaModel::from_pretrained(&out, LayerSelection::All, &device).unwrap();
        assert_eq!(reloaded_config, config, "{name}");
        assert_eq!(tensors(&reloaded), tensors(&model), "{name}");
        // The generator reads the export: the eos token, by name, is a stop token.
        let generator = TextGenerator::load(&out, &device).unwrap();
        assert_eq!(generator.stop_tokens, vec![2], "{name}");
    }
}

#[test]
fn the_side_files_are_copied_and_stale_ones_removed() {
    let (_, device) = devices().remove(1);
    let tmp = TempDir::new("export-decoder-side-files");
    let teacher_dir = teacher(&tmp, &device);
    let (config, model) = student(&teacher_dir, &device);
    // A source with every side file, given as a file inside it (as a teacher's .gguf is).
    let source = tmp.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::copy(
        teacher_dir.join("tokenizer.json"),
        source.join("tokenizer.json"),
    )
    .unwrap();
    let side: Vec<(&str, &str)> = vec![
        (
            "tokenizer_config.json",
            r#"{"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "tokenizer_class": "PreTrainedTokenizerFast"}"#,
        ),
        (
            "special_tokens_map.json",
            r#"{"bos_token": "<s>", "eos_token": "</s>"}"#,
        ),
        (
            "chat_template.jinja",
            "{% for m in messages %}{{ m['content'] }}{% endfor %}",
        ),
        (
            "generation_config.json",
            r#"{"bos_token_id": 1, "eos_token_id": 2}"#,
        ),
    ];
    assert_eq!(
        side.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        TOKENIZER_SIDE_FILES
    );
    for (file, text) in &side {
        std::fs::write(source.join(file), text).unwrap();
    }
    std::fs::write(source.join("model.gguf"), b"not read").unwrap();
    let out = tmp.path().join("student");
    export_decoder(&model, &config, &out, &source.join("model.gguf")).unwrap();
    for (file, text) in &side {
        assert_eq!(
            std::fs::read_to_string(out.join(file)).unwrap(),
            *text,
            "{file}"
        );
    }
    assert_eq!(names(&out).len(), 3 + side.len());
    assert!(TextGenerator::load(&out, &device)
        .unwrap()
        .template
        .is_some());

    // Exported again from the bare teacher: the side files it lacks are gone, the tokenizer
    // config is the minimal one again.
    export_decoder(&model, &config, &out, &teacher_dir).unwrap();
    assert_eq!(names(&out).len(), 4, "{:?}", names(&out));
    assert!(json(&out.join("tokenizer_config.json"))
        .get("pad_token")
        .is_none());
}

#[test]
fn refusals_write_nothing() {
    let (_, device) = devices().remove(1);
    let tmp = TempDir::new("export-decoder-errors");
    let teacher_dir = teacher(&tmp, &device);
    let (config, model) = student(&teacher_dir, &device);
    let out = tmp.path().join("student");

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = export_decoder(&model, &config, &out, &empty).unwrap_err();
    assert!(
        matches!(&err, ModelError::Io { path, .. } if path.ends_with("empty/tokenizer.json")),
        "{err}"
    );

    let wrong = LlamaConfig {
        num_hidden_layers: 3,
        ..config.clone()
    };
    let err = export_decoder(&model, &wrong, &out, &teacher_dir).unwrap_err();
    assert!(
        matches!(err, ModelError::InvalidArgument { name: "config", .. }),
        "{err}"
    );

    let bigger = tmp.path().join("bigger");
    std::fs::create_dir_all(&bigger).unwrap();
    word_tokenizer(Arch::Qwen3, VOCAB + 1)
        .save(bigger.join("tokenizer.json"), false)
        .unwrap();
    let err = export_decoder(&model, &config, &out, &bigger).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::InvalidArgument {
                name: "tokenizer_source",
                ..
            }
        ) && err.to_string().contains(&format!("{} tokens", VOCAB + 1)),
        "{err}"
    );

    // A smaller tokenizer is fine (a padded vocabulary), unless a special id falls outside it.
    let smaller = tmp.path().join("smaller");
    std::fs::create_dir_all(&smaller).unwrap();
    word_tokenizer(Arch::Qwen3, VOCAB - 4)
        .save(smaller.join("tokenizer.json"), false)
        .unwrap();
    let far_eos = config.clone().with_eos_token_ids(vec![VOCAB as u32 - 1]);
    let err = export_decoder(&model, &far_eos, &out, &smaller).unwrap_err();
    assert!(
        matches!(err, ModelError::InvalidArgument { name: "config", .. })
            && err.to_string().contains("eos_token_id 47"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written for a refused export");

    export_decoder(&model, &config, &out, &smaller).unwrap();
    assert!(out.join("tokenizer_config.json").is_file());
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn a_config_from_gguf_metadata_exports_its_special_ids_rope_and_tying() {
    let (_, device) = devices().remove(1);
    // tiny_llama.gguf has no config.json beside it: the config comes from the GGUF metadata.
    let gguf = fixtures().join("tiny_llama.gguf");
    assert!(!fixtures().join("config.json").exists());
    let init = StudentInit::FirstLayers {
        layers: 1,
        untie_head: false,
        vocab: None,
    };
    let (config, model) = build_student(&gguf, &init, &device).unwrap();
    let tmp = TempDir::new("export-decoder-gguf");
    let source = tmp.path().join("tokenizer");
    std::fs::create_dir_all(&source).unwrap();
    word_tokenizer(Arch::Llama, config.vocab_size)
        .save(source.join("tokenizer.json"), false)
        .unwrap();
    let out = tmp.path().join("student");
    export_decoder(&model, &config, &out, &source).unwrap();

    let exported = json(&out.join("config.json"));
    // The Hugging Face config the GGUF was converted from.
    let original = json(&fixtures().join("tiny_llama/config.json"));
    assert_eq!(exported["bos_token_id"], original["bos_token_id"]);
    assert_eq!(exported["eos_token_id"], original["eos_token_id"]);
    assert_eq!(
        exported["rope_theta"],
        original["rope_parameters"]["rope_theta"]
    );
    assert_eq!(
        exported["tie_word_embeddings"],
        original["tie_word_embeddings"]
    );
    assert_eq!(
        (
            exported["bos_token_id"].as_u64(),
            exported["eos_token_id"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(exported["num_hidden_layers"], 1);
    let (reloaded, _) = LlamaModel::from_pretrained(&out, LayerSelection::All, &device).unwrap();
    assert_eq!(reloaded, config);
}

#[test]
#[ignore = "needs MRL_SHARED"]
fn the_smollm2_gguf_metadata_gives_the_config_json_values() {
    let dir = crate::common::shared_path("models/SmolLM2-135M-Instruct-Q4_1");
    let gguf_path = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let gguf = GgufFile::open(&gguf_path).unwrap();
    let from_gguf = LlamaConfig::from_gguf(&gguf, &gguf_path)
        .unwrap()
        .to_hf_json();
    let shipped = json(&dir.join("config.json"));
    for key in [
        "bos_token_id",
        "eos_token_id",
        "tie_word_embeddings",
        "vocab_size",
        "num_hidden_layers",
        "num_key_value_heads",
        "rms_norm_eps",
    ] {
        assert_eq!(from_gguf[key], shipped[key], "{key}");
    }
    assert_eq!(
        from_gguf["rope_theta"],
        shipped["rope_parameters"]["rope_theta"]
    );
    assert_eq!(
        (
            from_gguf["bos_token_id"].as_u64(),
            from_gguf["eos_token_id"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(from_gguf["rope_theta"].as_f64(), Some(100000.0));
    assert_eq!(from_gguf["tie_word_embeddings"], true);
}
