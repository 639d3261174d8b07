//! The embedding config: defaults, unknown keys and bad values named, every shipped config.

use std::path::Path;

use training::embedding::{EmbeddingConfig, ObjectiveSection};
use training::TrainError;

use crate::common::{parse, MINIMAL};

#[test]
fn a_minimal_config_parses_with_the_documented_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.seed, 42);
    assert_eq!(c.optimizer.lr, 2e-5);
    assert_eq!(c.optimizer.weight_decay, 0.01);
    assert_eq!(c.training.batch_size, 16);
    assert_eq!(c.optimizer.head_lr(), 4e-5);
    assert_eq!(c.checkpoint.keep, 2);
}

#[test]
fn unknown_keys_are_rejected_naming_the_key() {
    for (text, key) in [
        (
            format!("{MINIMAL}\n[optimizer]\nlearning_rate = 1e-5\n"),
            "learning_rate",
        ),
        (format!("bogus = 1\n{MINIMAL}"), "bogus"),
        (
            MINIMAL.replace(
                "format = \"sentences\"",
                "format = \"sentences\"\ncolumnn = 1",
            ),
            "columnn",
        ),
        // A key of another objective is unknown to this one.
        (
            MINIMAL.replace("kind = \"mrl\"", "kind = \"mrl\"\nalpha = 0.5"),
            "alpha",
        ),
        (
            MINIMAL.replace("kind = \"mrl\"", "kind = \"mrl\"\npic_warmup_steps = 100"),
            "pic_warmup_steps",
        ),
        (
            MINIMAL.replace("kind = \"mrl\"", "kind = \"ese\"\ndetach_teacher = true"),
            "detach_teacher",
        ),
        // Unknown enum values name the allowed ones.
        (
            MINIMAL.replace("kind = \"mrl\"", "kind = \"mrll\""),
            "mipic",
        ),
        (
            MINIMAL.replace("kind = \"mrl\"", "kind = \"mrl\"\naggregation = \"avg\""),
            "mean",
        ),
        (
            MINIMAL.replace(
                "kind = \"mrl\"",
                "kind = \"mipic\"\npreset = \"minilm-l6\"\nvariant = \"papr\"",
            ),
            "notebook",
        ),
        (
            MINIMAL.replace(
                "kind = \"mrl\"",
                "kind = \"mipic\"\npreset = \"minilm-l6\"\natt_score = \"dot\"",
            ),
            "cosine",
        ),
    ] {
        let err = parse(&text).unwrap_err();
        assert!(matches!(err, TrainError::ConfigSyntax { .. }), "{err}");
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[test]
fn bad_values_are_rejected_naming_the_key() {
    let cases = [
        (
            format!("{MINIMAL}\n[optimizer]\nlr = -1.0\n"),
            "optimizer.lr",
        ),
        (
            format!("{MINIMAL}\n[optimizer]\nweight_decay = -0.1\n"),
            "optimizer.weight_decay",
        ),
        (
            format!("{MINIMAL}\n[optimizer]\nwarmup_ratio = 1.5\n"),
            "optimizer.warmup_ratio",
        ),
        (
            MINIMAL.replace("steps = 10", "steps = 10\nbatch_size = 1"),
            "training.batch_size",
        ),
        (
            MINIMAL.replace("steps = 10", "steps = 10\nepochs = 2"),
            "training.epochs",
        ),
        (MINIMAL.replace("steps = 10", "steps = 0"), "training.steps"),
        (
            MINIMAL.replace("kind = \"mrl\"", "kind = \"mipic\"\npreset = \"gpt-5\""),
            "objective.preset",
        ),
        (
            MINIMAL.replace(
                "kind = \"mrl\"",
                "kind = \"mipic\"\npreset = \"minilm-l6\"\nalpha = 1.5",
            ),
            "objective.alpha",
        ),
        (
            MINIMAL.replace("kind = \"mrl\"", "kind = \"mipic\"\ndims = [8, 384]"),
            "objective.preset",
        ),
        (
            MINIMAL.replace(
                "kind = \"mrl\"",
                "kind = \"mipic\"\npreset = \"minilm-l6\"\nlambda_pic = -1.0",
            ),
            "objective.lambda_pic",
        ),
        (
            MINIMAL.replace(
                "kind = \"mrl\"",
                "kind = \"mipic\"\npreset = \"minilm-l6\"\nmrl_weight = -1.0",
            ),
            "objective.mrl_weight",
        ),
        (
            MINIMAL.replace(
                "kind = \"mrl\"",
                "kind = \"mipic\"\npreset = \"minilm-l6\"\nmrl_weight = nan",
            ),
            "objective.mrl_weight",
        ),
        (
            MINIMAL.replace(
                "kind = \"mrl\"",
                "kind = \"mipic\"\npreset = \"minilm-l6\"\nchain = [[16, 1], [8, 2]]",
            ),
            "objective.chain",
        ),
        (
            MINIMAL.replace("kind = \"mrl\"", "kind = \"ese\"\ntemperature = 0.0"),
            "objective.temperature",
        ),
        (
            MINIMAL.replace("kind = \"mrl\"", "kind = \"2d\"\nkl_temperature = -1.0"),
            "objective.kl_temperature",
        ),
        (
            MINIMAL.replace("kind = \"mrl\"", "kind = \"mrl\"\ndims = [64, 32]"),
            "objective.dims",
        ),
        (
            MINIMAL.replace("path = \"m\"", "path = \"m\"\npooling = \"max\""),
            "model.pooling",
        ),
        (
            MINIMAL
                .replace("kind = \"mrl\"", "kind = \"mipic\"\npreset = \"minilm-l6\"")
                .replace("format = \"sentences\"", "format = \"pairs\""),
            "data.format",
        ),
    ];
    for (text, key) in cases {
        match parse(&text) {
            Err(err @ TrainError::ConfigValue { .. }) => {
                assert!(
                    err.to_string().contains(&format!("`{key}`")),
                    "{key}: {err}"
                )
            }
            other => panic!("{key}: expected a ConfigValue error, got {other:?}"),
        }
    }
    // A wrongly typed value is a syntax error naming the key.
    let err = parse(&MINIMAL.replace("steps = 10", "steps = \"ten\"")).unwrap_err();
    assert!(err.to_string().contains("steps"), "{err}");
    // Overrides go through the same checks.
    let err = EmbeddingConfig::from_toml_str(MINIMAL, Path::new("t"), &["optimizer.lr=5".into()])
        .unwrap_err();
    assert!(err.to_string().contains("`optimizer.lr`"), "{err}");
    let ok = EmbeddingConfig::from_toml_str(MINIMAL, Path::new("t"), &["training.steps=3".into()])
        .unwrap();
    assert_eq!(ok.training.steps, Some(3));
    // An empty value removes a key: a config counted in epochs can be cut to a few steps.
    let ok = EmbeddingConfig::from_toml_str(
        &MINIMAL.replace("steps = 10", "epochs = 5"),
        Path::new("t"),
        &["training.epochs=".into(), "training.steps=2".into()],
    )
    .unwrap();
    assert_eq!((ok.training.steps, ok.training.epochs), (Some(2), None));
}

#[test]
fn every_config_in_the_repository_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let (mut n, mut n_distill) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            // A distillation config names its teacher; every other one trains an embedder.
            let text = std::fs::read_to_string(&path).unwrap();
            let table: toml::Table = toml::from_str(&text).unwrap();
            if table.contains_key("teacher") {
                training::distill::DistillConfig::from_file(&path, &[])
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n_distill += 1;
            } else {
                EmbeddingConfig::from_file(&path, &[])
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
    }
    assert!(
        n >= 8,
        "expected the MiniLM configs and paper presets, found {n}"
    );
    assert!(
        n_distill >= 4,
        "expected the kd, mta and sra distillation configs, found {n_distill}"
    );
}

#[test]
fn mipic_sampling_and_curriculum_keys_reach_the_loss_config() {
    let text = MINIMAL.replace(
        "kind = \"mrl\"",
        "kind = \"mipic\"\npreset = \"minilm-l6\"\nmrl_dims_per_step = 3\npic_warmup_steps = 120",
    );
    let c = parse(&text).unwrap();
    let ObjectiveSection::Mipic(section) = &c.objective else {
        panic!("a mipic section")
    };
    let config = section.config(384, 6, mrl_core::Pooling::Mean).unwrap();
    assert_eq!(config.mrl_dims_per_step, Some(3));
    assert_eq!(config.pic_warmup_steps, 120);
    assert_eq!(config.mrl_config().n_dims_per_step, Some(3));
    assert_eq!(config.pic_config().warmup_steps, 120);
}

#[test]
fn mipic_mrl_weight_and_cosine_scores_reach_the_loss_config() {
    let text = MINIMAL.replace(
        "kind = \"mrl\"",
        "kind = \"mipic\"\npreset = \"minilm-l6\"\nvariant = \"notebook\"\nmrl_weight = 1.0\n\
         lambda_att = 0.4\natt_score = \"cosine\"",
    );
    let c = parse(&text).unwrap();
    let ObjectiveSection::Mipic(section) = &c.objective else {
        panic!("a mipic section")
    };
    let config = section.config(384, 6, mrl_core::Pooling::Mean).unwrap();
    assert_eq!(config.mrl_weight, Some(1.0));
    assert_eq!(
        config.alpha, 0.6,
        "the notebook's α still weighs the auxiliary terms"
    );
    assert_eq!(config.att_score, mrl_core::AttentionScore::Cosine);
    assert_eq!(
        config.sia_config().att_score,
        mrl_core::AttentionScore::Cosine
    );
    // Without the keys: Eq. 18's convex combination and Eq. 4's scores.
    let plain =
        parse(&MINIMAL.replace("kind = \"mrl\"", "kind = \"mipic\"\npreset = \"minilm-l6\""))
            .unwrap();
    let ObjectiveSection::Mipic(section) = &plain.objective else {
        panic!("a mipic section")
    };
    let config = section.config(384, 6, mrl_core::Pooling::Mean).unwrap();
    assert_eq!(config.mrl_weight, None);
    assert_eq!(config.att_score, mrl_core::AttentionScore::Scaled);
}
