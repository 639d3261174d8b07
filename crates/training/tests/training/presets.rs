//! The paper presets train on their architectures: BGE-M3's (XLM-RoBERTa, `D = 1024`, 24
//! layers, CLS pooling) and Qwen3-Embedding-0.6B's (a Qwen3 decoder, `D = 1024`, 28 layers,
//! last-token pooling), as random models of those shapes built in code — narrow where the
//! preset does not look (heads, intermediate size, vocabulary) — with the shipped config and
//! `model.path` overridden as a user would (`--set model.path=…`).

use std::path::Path;

use tiny_models::{write_random_model, Arch, ModelShape};
use training::embedding::EmbeddingConfig;
use training::embedding::EmbeddingTask;

use crate::common::{devices, rng_lock, TempDir};

/// Two MIPIC steps of `configs/<config>` on a random `arch` model of `shape`.
fn preset_trains(file: &str, arch: Arch, shape: ModelShape) {
    let _rng = rng_lock();
    let (_, device) = devices().remove(0);
    let tmp = TempDir::new(&format!("preset-{}", arch.model_type()));
    let model = tmp.path().join("model");
    write_random_model(&model, arch, &shape, 5, &device).unwrap();
    let corpus = tmp.path().join("corpus.txt");
    std::fs::write(&corpus, tiny_models::tiny_sentences(8).join("\n")).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(file);
    let overrides = [
        format!("model.path={}", model.display()),
        "model.max_length=10".into(),
        format!("data.path={}", corpus.display()),
        format!("output_dir={}", tmp.path().join("out").display()),
        "training.epochs=".into(),
        "training.steps=2".into(),
        "training.batch_size=2".into(),
        "eval=".into(),
    ];
    let config = EmbeddingConfig::from_file(&path, &overrides).unwrap();
    let mut trainer = EmbeddingTask::trainer(config, &device).unwrap();
    let model_ref = trainer.model();
    assert_eq!(model_ref.backbone.architecture(), arch.model_type());
    assert_eq!(model_ref.backbone.hidden_size(), shape.hidden_size);
    for _ in 0..2 {
        let report = trainer.train_step().unwrap();
        assert!(report.loss().is_finite(), "{file}: {report:?}");
        assert!(
            report.terms.iter().any(|(n, _)| n.starts_with("pic/")),
            "{file}: the PIC chain of the preset runs: {:?}",
            report.terms
        );
    }
}

#[test]
fn the_bge_m3_preset_trains_an_xlm_roberta() {
    preset_trains(
        "mipic-bge-m3.toml",
        Arch::XlmRoberta,
        ModelShape::new(1024, 24, 4, 32, 64).with_max_positions(40),
    );
}

#[test]
fn the_qwen3_embedding_preset_trains_a_qwen3_decoder() {
    preset_trains(
        "mipic-qwen3-embedding-0.6b.toml",
        Arch::Qwen3,
        ModelShape::new(1024, 28, 2, 32, 64)
            .with_kv_heads(1)
            .with_head_dim(32)
            .with_max_positions(40),
    );
}
