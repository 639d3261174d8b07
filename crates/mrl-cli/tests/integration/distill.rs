//! `mrl distill` through the binary on a tiny random Llama teacher (no shared data): the
//! teacher cache (written, found up to date, refused when stale, rebuilt with `--force`),
//! training from it with `--stop-after` / `--resume` and the export, `mrl eval --task
//! instruct` on the exported student, `--eval-only --json`, and clear errors for a malformed
//! data line and a missing config.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tiny_models::{tiny_sentences, write_random_model, Arch, ModelShape};

use crate::common::*;

/// A tiny teacher, 10 records and a config (1-layer student, FKL, cache) under `root`.
fn setup(root: &Path) -> PathBuf {
    #[allow(deprecated)]
    let device = burn::tensor::Device::ndarray();
    let teacher = root.join("teacher");
    let shape = ModelShape::new(16, 2, 4, 32, 120)
        .with_kv_heads(2)
        .with_max_positions(64);
    write_random_model(&teacher, Arch::Llama, &shape, 4, &device).unwrap();
    let s = tiny_sentences(20);
    let lines: Vec<String> = (0..10)
        .map(|i| serde_json::json!({"instruction": s[2 * i], "response": s[2 * i + 1]}).to_string())
        .collect();
    std::fs::write(root.join("data.jsonl"), lines.join("\n")).unwrap();
    let config = root.join("kd.toml");
    std::fs::write(
        &config,
        format!(
            r#"
device = "ndarray"
output_dir = "{out}"
[teacher]
path = "{teacher}"
[student]
init = "first_layers"
layers = 1
[data]
path = "{data}"
records = "0..8"
max_length = 40
[objective]
alpha = 0.5
divergence = {{ kind = "reverse_kl" }}
[cache]
dir = "{cache}"
top_k = 8
[optimizer]
lr = 1e-2
warmup_steps = 1
[training]
batch_size = 4
steps = 4
[eval]
records = "8..10"
[checkpoint]
every = 2
"#,
            out = root.join("run").display(),
            teacher = teacher.display(),
            data = root.join("data.jsonl").display(),
            cache = root.join("cache").display(),
        ),
    )
    .unwrap();
    config
}

fn distill(config: &Path, extra: &[&str]) -> std::process::Output {
    mrl_command()
        .args(["distill", "--config"])
        .arg(config)
        .args(extra)
        .output()
        .expect("run mrl")
}

fn cache(config: &Path, extra: &[&str]) -> std::process::Output {
    mrl_command()
        .args(["distill", "cache", "--config"])
        .arg(config)
        .args(extra)
        .output()
        .expect("run mrl")
}

#[test]
fn cache_train_resume_export_and_score_a_student() {
    let tmp = TempDir::new("cli-distill");
    let config = setup(tmp.path());

    // Training before the cache exists says how to write it.
    let out = distill(&config, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("mrl distill cache"),
        "{}",
        stderr(&out)
    );

    let out = cache(&config, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("10 records"), "{}", stderr(&out));
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("cache/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["top_k"], 8);
    assert!(manifest["parts"]["dev"].is_object());
    let out = cache(&config, &[]);
    assert!(stderr(&out).contains("up to date"), "{}", stderr(&out));

    // A config whose data differs finds the cache stale, for training and for `cache`.
    let stale = ["--set", "data.max_length=30"];
    let out = distill(&config, &stale);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("stale") && stderr(&out).contains("--force"),
        "{}",
        stderr(&out)
    );
    let out = cache(&config, &stale);
    assert!(!out.status.success(), "{}", stderr(&out));
    let out = cache(&config, &[&stale[..], &["--force"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cache(&config, &[]);
    assert!(!out.status.success(), "stale again for the original config");
    let out = cache(&config, &["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Two steps, a checkpoint, the resume hint; then the rest.
    let out = distill(&config, &["--stop-after", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("--resume"), "{}", stderr(&out));
    assert!(stderr(&out).contains("tokens/s"), "{}", stderr(&out));
    let out = distill(&config, &["--resume"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("dev after 0 steps") && stdout.contains("dev after 4 steps"),
        "{stdout}"
    );
    let student = tmp.path().join("run/student");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(student.join(f).is_file(), "{f}");
    }
    let losses = std::fs::read_to_string(tmp.path().join("run/losses.jsonl")).unwrap();
    assert_eq!(losses.lines().count(), 4, "{losses}");

    // The student answers instructions.
    let json = tmp.path().join("rouge.json");
    let out = mrl_command()
        .args(["eval", "--task", "instruct", "--model"])
        .arg(&student)
        .arg("--data")
        .arg(tmp.path().join("data.jsonl"))
        .args([
            "--records",
            "8..10",
            "--seeds",
            "1",
            "--max-new-tokens",
            "6",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report["mean"].as_f64().is_some(), "{report}");
}

#[test]
fn eval_only_measures_teacher_and_student_without_training() {
    let tmp = TempDir::new("cli-distill-eval");
    let config = setup(tmp.path());
    let json = tmp.path().join("kd.json");
    let out = distill(
        &config,
        &[
            "--eval-only",
            "--data",
            tmp.path().join("data.jsonl").to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["records"], 10);
    for key in [
        "teacher_ce",
        "student_ce",
        "fkl",
        "rkl",
        "jsd",
        "top1_agreement",
        "fkl_top_k",
    ] {
        assert!(
            report["kd"][key].as_f64().unwrap().is_finite(),
            "{key}: {report}"
        );
    }
    // RKL objective: total = ½ CE + ½ RKL.
    let total = report["loss"]["total"].as_f64().unwrap();
    let (ce, rkl) = (
        report["kd"]["student_ce"].as_f64().unwrap(),
        report["kd"]["rkl"].as_f64().unwrap(),
    );
    assert!(
        (total - 0.5 * (ce + rkl)).abs() < 1e-3 * total.abs().max(1.0),
        "{report}"
    );
    assert!(
        !tmp.path().join("run").exists(),
        "no step, no run directory"
    );
}

/// MTA's eval-only breakdown: per pair and per record, every record in one batch, identity
/// projectors, and the objective's total with its MTA term.
#[test]
fn eval_only_writes_the_mta_breakdown() {
    let tmp = TempDir::new("cli-distill-mta");
    let config = setup(tmp.path());
    // The KD config without its [cache] (MTA runs the teacher live), as MTA.
    let mut skip = false;
    let mut lines = Vec::new();
    for line in std::fs::read_to_string(&config).unwrap().lines() {
        if line.starts_with('[') {
            skip = line == "[cache]";
        }
        if !skip {
            lines.push(line.to_string());
        }
    }
    let toml = lines
        .join("\n")
        .replace("[objective]", "[objective]\nkind = \"mta\"")
        + "\n[objective.mta]\nprojector_init = \"identity\"\npairs = [\n  { teacher_layer = 1, \
           student_layer = 1, granularity = \"words\" },\n  { teacher_layer = 2, student_layer = \
           1, granularity = \"phrases\" },\n]\n";
    let mta_config = tmp.path().join("mta.toml");
    std::fs::write(&mta_config, toml).unwrap();
    let json = tmp.path().join("mta.json");
    let out = distill(
        &mta_config,
        &[
            "--eval-only",
            "--data",
            tmp.path().join("data.jsonl").to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text(&out.stdout).contains("MTA "), "{}", text(&out.stdout));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let mta = report["mta"].as_f64().unwrap();
    assert!(mta.is_finite() && mta > 0.0, "{report}");
    let pairs = report["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 2);
    for key in [
        "teacher_layer",
        "student_layer",
        "units",
        "dsa",
        "hra",
        "loss",
    ] {
        assert!(pairs[0][key].is_number(), "{key}: {report}");
    }
    let mean = (pairs[0]["loss"].as_f64().unwrap() + pairs[1]["loss"].as_f64().unwrap()) / 2.0;
    assert!((mta - mean).abs() < 1e-6, "{report}");
    assert_eq!(report["examples"].as_array().unwrap().len(), 10);
    let total = report["loss"]["total"].as_f64().unwrap();
    let (ce, rkl) = (
        report["kd"]["student_ce"].as_f64().unwrap(),
        report["kd"]["rkl"].as_f64().unwrap(),
    );
    let expected = 0.5 * ce + 0.5 * (rkl + 2.0 * mta);
    assert!(
        (total - expected).abs() < 1e-3 * total.abs().max(1.0),
        "total {total} vs {expected}: {report}"
    );
    assert_eq!(report["loss"]["mta"].as_f64(), Some(mta));
}

#[test]
fn bad_data_and_missing_flags_are_named() {
    let tmp = TempDir::new("cli-distill-bad");
    let config = setup(tmp.path());
    std::fs::write(
        tmp.path().join("data.jsonl"),
        "{\"instruction\": \"a\", \"response\": \"b\"}\n{\"instruction\": \"a\"}\n",
    )
    .unwrap();
    let out = cache(&config, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("data.jsonl:2:") && stderr(&out).contains("response"),
        "{}",
        stderr(&out)
    );
    let out = mrl(&["distill"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--config"), "{}", stderr(&out));
}
