//! `mrl train` end to end on a tiny random BERT (built in code by `tiny_models`): stop,
//! resume, export, report, and `mrl eval` on the export; config errors name the key.

use std::path::{Path, PathBuf};

use crate::common::*;

fn setup(root: &Path) -> PathBuf {
    #[allow(deprecated)]
    let device = burn::tensor::Device::ndarray();
    tiny_models::write_tiny_model(&root.join("model"), 5, &device).unwrap();
    std::fs::write(
        root.join("corpus.txt"),
        tiny_models::tiny_sentences(32).join("\n"),
    )
    .unwrap();
    std::fs::write(root.join("dev.tsv"), tiny_models::tiny_sts_tsv(20)).unwrap();
    let config = root.join("train.toml");
    std::fs::write(
        &config,
        format!(
            r#"seed = 1
device = "ndarray"
output_dir = "{out}"
[model]
path = "{model}"
max_length = 16
[data]
path = "{corpus}"
format = "sentences"
[objective]
kind = "mrl"
dims = [8, 16, 32]
[optimizer]
lr = 1e-3
[training]
batch_size = 8
steps = 4
[eval]
dev = "{dev}"
[checkpoint]
every = 2
"#,
            out = root.join("out").display(),
            model = root.join("model").display(),
            corpus = root.join("corpus.txt").display(),
            dev = root.join("dev.tsv").display(),
        ),
    )
    .unwrap();
    config
}

#[test]
fn train_stops_resumes_exports_and_the_export_evaluates() {
    let tmp = TempDir::new("e2e");
    let config = setup(tmp.path());
    let config = config.to_str().unwrap();
    let dev = tmp.path().join("dev.tsv");

    let first = mrl(&["train", "--config", config, "--stop-after", "2"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stderr).contains("--resume"),
        "{}",
        text(&first.stderr)
    );
    assert!(
        !tmp.path().join("out/model").exists(),
        "no export before the run ends"
    );

    let second = mrl(&[
        "train",
        "--config",
        config,
        "--resume",
        "--eval",
        dev.to_str().unwrap(),
    ]);
    let stderr = text(&second.stderr);
    let stdout = text(&second.stdout);
    assert!(second.status.success(), "{stderr}");
    assert!(stderr.contains("starting at 2"), "{stderr}");
    assert!(
        stdout.contains("| dim |") && stdout.contains("| 8 |"),
        "{stdout}"
    );
    for f in [
        "model/model.safetensors",
        "model/modules.json",
        "model/1_Pooling/config.json",
        "report/dev.json",
        "report/dev.md",
        "report/dev.svg",
        "losses.jsonl",
        "checkpoints/latest",
    ] {
        assert!(
            tmp.path().join("out").join(f).is_file(),
            "{f} missing\n{stderr}"
        );
    }
    let log = std::fs::read_to_string(tmp.path().join("out/losses.jsonl")).unwrap();
    assert_eq!(
        log.lines().count(),
        4,
        "one line per step, none repeated:\n{log}"
    );

    let exported = tmp.path().join("out/model");
    let eval = mrl(&[
        "eval",
        "--model",
        exported.to_str().unwrap(),
        "--task",
        "sts",
        "--data",
        dev.to_str().unwrap(),
        "--dims",
        "32,8",
        "--device",
        "ndarray",
    ]);
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    assert!(
        text(&eval.stdout).contains("Spearman"),
        "{}",
        text(&eval.stdout)
    );
}

#[test]
fn config_errors_name_the_key() {
    let tmp = TempDir::new("errors");
    let config = setup(tmp.path());
    let config = config.to_str().unwrap();
    let out = mrl(&["train", "--config", config, "--set", "optimizer.lr=2"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("optimizer.lr"),
        "{}",
        text(&out.stderr)
    );
    let out = mrl(&["train", "--config", config, "--set", "training.stepz=2"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("stepz"), "{}", text(&out.stderr));
    let out = mrl(&[
        "train",
        "--config",
        config,
        "--set",
        "model.path=nobody/nothing",
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not found") && stderr.contains("looked in"),
        "{stderr}"
    );
}
