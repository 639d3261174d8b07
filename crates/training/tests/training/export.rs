//! The sentence-transformers export is equivalent to its source: the source's module list
//! (Normalize kept at its path), its `max_seq_length` and `do_lower_case` (not the training
//! length), its BERT pooler carried over unchanged, files with the usual permissions; a module
//! we cannot reproduce is an error naming it.

use std::path::Path;

use models::bert::BertPooler;
use models::BertModel;
use training::embedding::export::export_sentence_transformer;
use training::embedding::EmbeddingTask;
use training::Silent;

use crate::common::{devices, parse, rng_lock, tiny_setup, TempDir, MIPIC};

const NORMALIZE_CONFIG: &str = r#"{"module_input_name": "sentence_embedding"}"#;

/// Turns the tiny model at `dir` into a sentence-transformers source: a pooler in its
/// safetensors, Transformer → Pooling → Normalize (with a file in `2_Normalize`), a
/// `sentence_bert_config.json` and a `config_sentence_transformers.json`.
fn make_st_source(dir: &Path, device: &burn::tensor::Device, max_seq_length: usize) {
    let weights = dir.join("model.safetensors");
    let (config, model) = BertModel::from_pretrained(dir, device).unwrap();
    let pooler = BertPooler::new(config.hidden_size, device);
    model
        .save_hf_safetensors_with_pooler(&weights, Some(&pooler))
        .unwrap();
    std::fs::write(
        dir.join("modules.json"),
        r#"[
  {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
  {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
]"#,
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("2_Normalize")).unwrap();
    std::fs::write(dir.join("2_Normalize/config.json"), NORMALIZE_CONFIG).unwrap();
    std::fs::write(
        dir.join("sentence_bert_config.json"),
        format!(r#"{{"max_seq_length": {max_seq_length}, "do_lower_case": true}}"#),
    )
    .unwrap();
    std::fs::write(
        dir.join("config_sentence_transformers.json"),
        r#"{"prompts": {}, "similarity_fn_name": "cosine"}"#,
    )
    .unwrap();
}

/// The raw dtype, shape and bytes of `key` in a safetensors file.
fn raw_tensor(path: &Path, key: &str) -> Option<(String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = file.tensor(key).ok()?;
    Some((
        format!("{:?}", view.dtype()),
        view.shape().to_vec(),
        view.data().to_vec(),
    ))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Permission bits of every file under `dir`.
#[cfg(unix)]
fn modes(dir: &Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(modes(&path));
        } else {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            out.push((path.display().to_string(), mode));
        }
    }
    out
}

#[test]
fn the_export_keeps_the_source_pipeline_pooler_and_length() {
    let _rng = rng_lock();
    for (name, device) in devices() {
        let tmp = TempDir::new(&format!("st-export-{name}"));
        // Training max_length 16; the source says 40 (of 64 positions).
        let text = tiny_setup(tmp.path(), &device, MIPIC, "");
        let source = tmp.path().join("model");
        make_st_source(&source, &device, 40);
        let mut config = parse(&text).unwrap();
        config.training.steps = Some(1);
        let mut trainer = EmbeddingTask::trainer(config, &device).unwrap();
        trainer.run(&mut Silent, None).unwrap();
        let dir = tmp.path().join("exported");
        trainer.task().export(trainer.model(), &dir).unwrap();

        let modules = json(&dir.join("modules.json"));
        let list: Vec<(&str, &str, &str)> = modules
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap(),
                    m["path"].as_str().unwrap(),
                    m["type"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            list,
            [
                ("0", "", "sentence_transformers.models.Transformer"),
                ("1", "1_Pooling", "sentence_transformers.models.Pooling"),
                ("2", "2_Normalize", "sentence_transformers.models.Normalize"),
            ],
            "{name}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("2_Normalize/config.json")).unwrap(),
            NORMALIZE_CONFIG
        );
        let st = json(&dir.join("sentence_bert_config.json"));
        assert_eq!(st["max_seq_length"], 40, "{name}: {st}");
        assert_eq!(st["do_lower_case"], true, "{name}: {st}");
        assert_eq!(
            json(&dir.join("config_sentence_transformers.json"))["similarity_fn_name"],
            "cosine"
        );

        // The pooler is carried over byte for byte, under the same keys.
        for key in ["pooler.dense.weight", "pooler.dense.bias"] {
            let from = raw_tensor(&source.join("model.safetensors"), key).expect("source pooler");
            let to = raw_tensor(&dir.join("model.safetensors"), key)
                .unwrap_or_else(|| panic!("{name}: {key} missing from the export"));
            assert_eq!(from, to, "{name}: {key}");
        }
        // The trained weights are the model's, not the source's.
        let key = "encoder.layer.0.attention.self.query.weight";
        assert_ne!(
            raw_tensor(&source.join("model.safetensors"), key),
            raw_tensor(&dir.join("model.safetensors"), key),
            "{name}: {key}"
        );

        // Loads back with the source's length and our pooling.
        let loaded =
            models::SentenceEncoder::load(&dir, &device, &models::EncoderOptions::default())
                .unwrap();
        assert_eq!(loaded.max_length(), 40, "{name}");
        assert_eq!(loaded.pooling(), models::Pooling::Mean, "{name}");

        // Every file has the permissions of a newly created one (umask-respecting).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let probe = tmp.path().join("probe");
            std::fs::File::create(&probe).unwrap();
            let fresh = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
            let modes = modes(&dir);
            assert_eq!(modes.len(), 8, "{modes:?}");
            for (file, mode) in modes {
                assert_eq!(
                    mode, fresh,
                    "{name}: {file} has mode {mode:o}, not {fresh:o}"
                );
            }
        }
    }
}

#[test]
fn max_seq_length_is_capped_by_the_positions_and_absent_when_the_source_has_none() {
    let _rng = rng_lock();
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new("st-export-length");
    let source = tmp.path().join("model");
    tiny_models::write_tiny_model(&source, 7, &device).unwrap();
    let backbone = models::Backbone::load(&source, &device).unwrap();

    // No ST files: Transformer → Pooling, no max_seq_length, no pooler (the source has none).
    let plain = tmp.path().join("plain");
    export_sentence_transformer(&backbone, &source, models::Pooling::Cls, &plain).unwrap();
    let kinds: Vec<String> = json(&plain.join("modules.json"))
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "sentence_transformers.models.Transformer",
            "sentence_transformers.models.Pooling"
        ]
    );
    let st = json(&plain.join("sentence_bert_config.json"));
    assert!(st.get("max_seq_length").is_none(), "{st}");
    assert_eq!(st["do_lower_case"], false);
    assert!(raw_tensor(&plain.join("model.safetensors"), "pooler.dense.weight").is_none());
    assert_eq!(
        json(&plain.join("1_Pooling/config.json"))["pooling_mode_cls_token"],
        true
    );

    // A source length beyond the 64 positions is capped.
    make_st_source(&source, &device, 1000);
    let capped = tmp.path().join("capped");
    export_sentence_transformer(&backbone, &source, models::Pooling::Mean, &capped).unwrap();
    assert_eq!(
        json(&capped.join("sentence_bert_config.json"))["max_seq_length"],
        64
    );
}

#[test]
fn a_module_we_cannot_reproduce_is_an_error_naming_it() {
    let _rng = rng_lock();
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new("st-export-dense");
    let text = tiny_setup(tmp.path(), &device, MIPIC, "");
    let source = tmp.path().join("model");
    let backbone = models::Backbone::load(&source, &device).unwrap();
    std::fs::write(
        source.join("modules.json"),
        r#"[
  {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
  {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
]"#,
    )
    .unwrap();
    let out = tmp.path().join("exported");
    let err = export_sentence_transformer(&backbone, &source, models::Pooling::Mean, &out)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sentence_transformers.models.Dense") && err.contains("2_Dense"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written");
    // Training refuses it at the start, and so does the loader.
    let err = EmbeddingTask::trainer(parse(&text).unwrap(), &device)
        .err()
        .expect("a Dense module")
        .to_string();
    assert!(err.contains("Dense"), "{err}");
    let err = models::SentenceEncoder::load(&source, &device, &models::EncoderOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("Dense"), "{err}");

    // Modules out of order, and a Normalize path leaving the directory, are errors too.
    std::fs::write(
        source.join("modules.json"),
        r#"[
  {"idx": 0, "name": "0", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
  {"idx": 1, "name": "1", "path": "", "type": "sentence_transformers.models.Transformer"}
]"#,
    )
    .unwrap();
    let err = export_sentence_transformer(&backbone, &source, models::Pooling::Mean, &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not Transformer → Pooling"), "{err}");
    std::fs::write(
        source.join("modules.json"),
        r#"[
  {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
  {"idx": 2, "name": "2", "path": "../x", "type": "sentence_transformers.models.Normalize"}
]"#,
    )
    .unwrap();
    let err = export_sentence_transformer(&backbone, &source, models::Pooling::Mean, &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("../x"), "{err}");
    assert!(!out.exists(), "nothing is written");
}
