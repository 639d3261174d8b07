//! Loading a checkpoint directory: the weight map, and the errors for every kind of broken file.

use crate::common::*;
use models::{BertConfig, BertModel, EncoderOptions, ModelError, SentenceEncoder};

fn tensor_values<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

#[test]
fn weights_land_on_the_right_parameters_with_linear_weights_transposed() {
    let tmp = TempDir::new("map");
    write_tiny_model(tmp.path());
    let checkpoint = tiny_checkpoint();
    for (name, device) in devices() {
        let (config, model) = BertModel::from_pretrained(tmp.path(), &device).unwrap();
        assert_eq!(config.hidden_size, HIDDEN, "{name}");
        assert_eq!(model.num_layers(), LAYERS, "{name}");
        let (_, words) = &checkpoint["embeddings.word_embeddings.weight"];
        assert_eq!(
            &tensor_values(model.embeddings.word_embeddings.weight.val()),
            words,
            "{name}"
        );
        // PyTorch stores intermediate.dense.weight as [out=16, in=8]; Burn holds [in, out].
        let (_, torch_w) = &checkpoint["encoder.layer.1.intermediate.dense.weight"];
        let burn_w = model.encoder.layer[1].intermediate.dense.weight.val();
        assert_eq!(burn_w.dims(), [HIDDEN, INTERMEDIATE], "{name}");
        let burn_w = tensor_values(burn_w);
        for o in 0..INTERMEDIATE {
            for i in 0..HIDDEN {
                assert_eq!(
                    burn_w[i * INTERMEDIATE + o],
                    torch_w[o * HIDDEN + i],
                    "{name}"
                );
            }
        }
        let (_, gamma) = &checkpoint["encoder.layer.0.attention.output.LayerNorm.weight"];
        assert_eq!(
            &tensor_values(
                model.encoder.layer[0]
                    .attention
                    .output
                    .layer_norm
                    .gamma
                    .val()
            ),
            gamma,
            "{name}"
        );
    }
}

#[test]
fn a_bert_prefix_is_accepted() {
    let tmp = TempDir::new("prefix");
    write_tiny_model(tmp.path());
    let prefixed = tiny_checkpoint()
        .into_iter()
        .map(|(k, v)| (format!("bert.{k}"), v))
        .collect();
    std::fs::write(
        tmp.path().join("model.safetensors"),
        safetensors_bytes(&prefixed),
    )
    .unwrap();
    for (name, device) in devices() {
        let (_, model) = BertModel::from_pretrained(tmp.path(), &device)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (_, words) = &tiny_checkpoint()["embeddings.word_embeddings.weight"];
        assert_eq!(
            &tensor_values(model.embeddings.word_embeddings.weight.val()),
            words
        );
    }
}

fn load_error(tmp: &TempDir) -> String {
    let (_, device) = devices().remove(1);
    match BertModel::from_pretrained(tmp.path(), &device) {
        Ok(_) => panic!("loading {} should fail", tmp.path().display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_mis_shaped_and_unexpected_keys_are_named() {
    let tmp = TempDir::new("mismatch");
    write_tiny_model(tmp.path());
    let mut broken = tiny_checkpoint();
    broken.remove("encoder.layer.1.attention.self.key.bias");
    broken.remove("embeddings.LayerNorm.weight");
    broken.insert(
        "encoder.layer.0.output.dense.weight".into(),
        (
            vec![HIDDEN, INTERMEDIATE + 1],
            values(7, HIDDEN * (INTERMEDIATE + 1)),
        ),
    );
    broken.insert(
        "encoder.layer.2.output.dense.bias".into(),
        (vec![HIDDEN], values(8, HIDDEN)),
    );
    std::fs::write(
        tmp.path().join("model.safetensors"),
        safetensors_bytes(&broken),
    )
    .unwrap();
    let message = load_error(&tmp);
    for needle in [
        "missing key encoder.layer.1.attention.self.key.bias",
        "missing key embeddings.LayerNorm.weight",
        "mis-shaped key encoder.layer.0.output.dense.weight",
        "[17, 8]",
        "unexpected key encoder.layer.2.output.dense.bias",
    ] {
        assert!(message.contains(needle), "`{needle}` not in:\n{message}");
    }
    // The pooler and position_ids are skipped silently.
    assert!(!message.contains("pooler"), "{message}");
}

#[test]
fn missing_and_corrupt_files_are_named() {
    let tmp = TempDir::new("files");
    write_tiny_model(tmp.path());

    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    let message = load_error(&tmp);
    assert!(message.contains("model.safetensors"), "{message}");

    std::fs::write(
        tmp.path().join("model.safetensors"),
        b"not a safetensors file",
    )
    .unwrap();
    let message = load_error(&tmp);
    assert!(
        message.contains("cannot read weights") && message.contains("model.safetensors"),
        "{message}"
    );

    std::fs::write(tmp.path().join("config.json"), "{\"hidden_size\": 8,").unwrap();
    let message = load_error(&tmp);
    assert!(
        message.contains("malformed config") && message.contains("config.json"),
        "{message}"
    );

    std::fs::write(tmp.path().join("config.json"), r#"{"hidden_size": 8}"#).unwrap();
    let message = load_error(&tmp);
    assert!(message.contains("vocab_size"), "{message}");

    std::fs::remove_file(tmp.path().join("config.json")).unwrap();
    let message = load_error(&tmp);
    assert!(
        message.contains("cannot read") && message.contains("config.json"),
        "{message}"
    );
}

#[test]
fn unsupported_configs_say_what_is_unsupported() {
    let tmp = TempDir::new("unsupported");
    let path = tmp.path().join("config.json");
    let cases = [
        (
            tiny_config_json().replace("\"gelu\"", "\"swish\""),
            "hidden_act `swish`",
        ),
        (
            tiny_config_json().replace("\"bert\"", "\"llama\""),
            "model_type `llama`",
        ),
        (
            tiny_config_json().replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 3"),
            "does not divide hidden_size 8",
        ),
    ];
    for (json, needle) in cases {
        std::fs::write(&path, json).unwrap();
        let message = BertConfig::from_hf_json(&path).unwrap_err().to_string();
        assert!(message.contains(needle), "`{needle}` not in {message}");
    }
}

#[test]
fn the_tokenizer_and_options_are_checked_by_the_sentence_encoder() {
    let tmp = TempDir::new("encoder");
    write_tiny_model(tmp.path());
    let (_, device) = devices().remove(1);

    let err = SentenceEncoder::load(
        tmp.path(),
        &device,
        &EncoderOptions {
            max_length: Some(POSITIONS + 1),
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
        "{err}"
    );

    std::fs::write(tmp.path().join("tokenizer.json"), "{ corrupt").unwrap();
    let err = SentenceEncoder::load(tmp.path(), &device, &EncoderOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("cannot load tokenizer")
            && err.to_string().contains("tokenizer.json"),
        "{err}"
    );

    std::fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
    let err = SentenceEncoder::load(tmp.path(), &device, &EncoderOptions::default()).unwrap_err();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");

    let err = SentenceEncoder::load(
        &tmp.path().join("nope"),
        &device,
        &EncoderOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ModelError::NotFound { .. }), "{err}");
}
