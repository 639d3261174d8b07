//! `mrl eval --task instruct` through the binary on a tiny random Llama (built by
//! `tiny_models`, with its word-level tokenizer): the JSON report and the predictions file,
//! seeds that differ, a seed that reproduces (whatever the `--records` range), batch sizes that
//! give the same answers, and the errors for bad ranges, malformed JSON lines, prompts beyond
//! the context and flags of the other task.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tiny_models::{write_random_model, Arch, ModelShape};

use crate::common::*;

/// Context of the tiny model, in tokens.
const CONTEXT: usize = 96;

/// A tiny Llama (vocabulary = its special tokens and words only, so that answers are words)
/// and a 3-record JSONL over the same words.
fn setup(root: &Path) -> (PathBuf, PathBuf) {
    #[allow(deprecated)]
    let device = burn::tensor::Device::ndarray();
    let model = root.join("model");
    let shape = ModelShape::new(32, 2, 4, 64, Arch::Llama.min_vocab_size())
        .with_kv_heads(2)
        .with_max_positions(CONTEXT);
    write_random_model(&model, Arch::Llama, &shape, 3, &device).unwrap();
    let data = root.join("data.jsonl");
    std::fs::write(
        &data,
        concat!(
            r#"{"instruction": "the man is playing", "response": "a man is playing a guitar in the park ."}"#,
            "\n",
            r#"{"instruction": "a dog", "response": "the dog is running in the garden"}"#,
            "\n\n",
            r#"{"instruction": "the cat is", "response": "the small cat is sleeping on the old book", "category": "x"}"#,
            "\n",
        ),
    )
    .unwrap();
    (model, data)
}

fn run_instruct(model: &Path, data: &Path, extra: &[&str]) -> std::process::Output {
    mrl_command()
        .args(["eval", "--task", "instruct", "--model"])
        .arg(model)
        .arg("--data")
        .arg(data)
        .args(extra)
        .output()
        .expect("run mrl")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `(index, seed) → prediction` of a predictions file.
fn answers(lines: &[Value]) -> Vec<(u64, u64, String)> {
    lines
        .iter()
        .map(|l| {
            (
                l["index"].as_u64().unwrap(),
                l["seed"].as_u64().unwrap(),
                l["prediction"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn instruct_reports_per_seed_rouge_and_seeds_reproduce_on_both_cpu_backends() {
    let tmp = TempDir::new("instruct");
    let (model, data) = setup(tmp.path());
    for device in ["ndarray", "flex"] {
        let json = tmp.path().join(format!("{device}.json"));
        let predictions = tmp.path().join(format!("{device}.jsonl"));
        let out = run_instruct(
            &model,
            &data,
            &[
                "--seeds",
                "1,2",
                "--max-new-tokens",
                "12",
                "--device",
                device,
                "--json",
                json.to_str().unwrap(),
                "--predictions",
                predictions.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{device}: {}", stderr(&out));
        let table = text(&out.stdout);
        assert!(
            table.contains("ROUGE-L") && table.contains("mean"),
            "{table}"
        );

        let report = read_json(&json);
        assert_eq!(report["task"], "instruct");
        assert_eq!(report["n_records"], 3);
        assert_eq!(report["records"]["start"], 0);
        assert_eq!(report["records"]["end"], 3);
        assert_eq!(
            report["prompt_template"],
            "### Instruction:\n{instruction}\n\n### Response:\n"
        );
        assert_eq!(report["generation"]["temperature"], 1.0);
        assert_eq!(report["generation"]["top_p"], 1.0);
        assert_eq!(report["generation"]["top_k"], 0);
        assert_eq!(report["generation"]["no_repeat_ngram_size"], 6);
        assert_eq!(report["generation"]["max_new_tokens"], 12);
        assert_eq!(report["std_kind"], "population");
        assert_eq!(report["batch_size"], 16);
        assert!(report["seconds_per_record"].as_f64().unwrap() > 0.0);
        assert!(report["tokens_per_second"].as_f64().unwrap() > 0.0);
        assert!(
            report.get("predictions").is_none(),
            "predictions go to their own file"
        );
        let seeds = report["seeds"].as_array().unwrap();
        assert_eq!(seeds.len(), 2);
        let scores: Vec<f64> = seeds
            .iter()
            .map(|s| s["rouge_l"].as_f64().unwrap())
            .collect();
        assert_eq!(seeds[0]["seed"], 1);
        assert_eq!(seeds[1]["seed"], 2);
        for s in &scores {
            assert!((0.0..=100.0).contains(s), "{scores:?}");
        }
        let mean = (scores[0] + scores[1]) / 2.0;
        assert!((report["mean"].as_f64().unwrap() - mean).abs() < 1e-9);
        let std = (scores[0] - scores[1]).abs() / 2.0;
        assert!((report["std"].as_f64().unwrap() - std).abs() < 1e-9);

        // The predictions: 3 records × 2 seeds, with their references; the seeds differ.
        let lines = read_lines(&predictions);
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[4]["index"], 1);
        assert_eq!(lines[4]["seed"], 2);
        assert_eq!(lines[4]["reference"], "the dog is running in the garden");
        assert_eq!(lines[4]["instruction"], "a dog");
        let per_seed: Vec<f64> = [1, 2]
            .iter()
            .map(|&seed| {
                lines
                    .iter()
                    .filter(|l| l["seed"] == seed)
                    .map(|l| l["rouge_l"].as_f64().unwrap())
                    .sum::<f64>()
                    / 3.0
            })
            .collect();
        assert!((per_seed[0] - scores[0]).abs() < 1e-9 && (per_seed[1] - scores[1]).abs() < 1e-9);
        let all = answers(&lines);
        assert!(
            (0..3).any(|i| all[i].2 != all[i + 3].2),
            "{device}: seeds 1 and 2 gave the same answers: {all:?}"
        );
        assert!(all.iter().any(|a| !a.2.is_empty()), "{all:?}");

        // Seed 2 alone, on records 1..3 only: the same answers as in the full run.
        let again = tmp.path().join(format!("{device}-again.jsonl"));
        let json_again = tmp.path().join(format!("{device}-again.json"));
        let out = run_instruct(
            &model,
            &data,
            &[
                "--seeds",
                "2",
                "--records",
                "1..3",
                "--max-new-tokens",
                "12",
                "--device",
                device,
                "--predictions",
                again.to_str().unwrap(),
                "--json",
                json_again.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{device}: {}", stderr(&out));
        let again = answers(&read_lines(&again));
        assert_eq!(again, all[4..6], "{device}");
        assert_eq!(read_json(&json_again)["n_records"], 2);
    }
}

/// Rows are generated in batches (`--batch-size`, rows sorted by prompt length): every batch
/// size gives each (record, seed) the answer it gets alone (`--batch-size 1`) — up to float
/// rounding in general, exactly on this tiny model — and the same scores.
#[test]
fn batch_sizes_give_the_answers_of_one_row_at_a_time() {
    let tmp = TempDir::new("instruct-batch");
    let (model, data) = setup(tmp.path());
    for device in ["ndarray", "flex"] {
        let mut runs = Vec::new();
        for batch_size in ["1", "2", "5", "16"] {
            let json = tmp.path().join(format!("{device}-{batch_size}.json"));
            let predictions = tmp.path().join(format!("{device}-{batch_size}.jsonl"));
            let out = run_instruct(
                &model,
                &data,
                &[
                    "--seeds",
                    "3,4",
                    "--max-new-tokens",
                    "10",
                    "--batch-size",
                    batch_size,
                    "--device",
                    device,
                    "--json",
                    json.to_str().unwrap(),
                    "--predictions",
                    predictions.to_str().unwrap(),
                ],
            );
            assert!(
                out.status.success(),
                "{device} {batch_size}: {}",
                stderr(&out)
            );
            assert!(
                stderr(&out).contains(&format!("in batches of {batch_size}:")),
                "{}",
                stderr(&out)
            );
            let report = read_json(&json);
            assert_eq!(report["batch_size"], batch_size.parse::<u64>().unwrap());
            let lines = read_lines(&predictions);
            // Predictions stay in (seed, record) order whatever the batches were.
            let order: Vec<(u64, u64)> = lines
                .iter()
                .map(|l| (l["seed"].as_u64().unwrap(), l["index"].as_u64().unwrap()))
                .collect();
            assert_eq!(order, [(3, 0), (3, 1), (3, 2), (4, 0), (4, 1), (4, 2)]);
            runs.push((batch_size, answers(&lines), report));
        }
        let (_, one, one_report) = &runs[0];
        assert!(one.iter().any(|a| !a.2.is_empty()), "{one:?}");
        for (batch_size, got, report) in &runs[1..] {
            assert_eq!(got, one, "{device}: --batch-size {batch_size} vs 1");
            assert_eq!(
                report["seeds"], one_report["seeds"],
                "{device} {batch_size}"
            );
            assert_eq!(report["mean"], one_report["mean"], "{device} {batch_size}");
        }
    }
    let out = run_instruct(&model, &data, &["--batch-size", "0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--batch-size"), "{}", stderr(&out));
}

#[test]
fn bad_record_ranges_are_errors() {
    let tmp = TempDir::new("instruct-range");
    let data = tmp.path().join("d.jsonl");
    std::fs::write(
        &data,
        "{\"instruction\": \"a\", \"response\": \"b\"}\n".repeat(3),
    )
    .unwrap();
    // Checked before the model is loaded: the model path need not exist.
    let model = tmp.path().join("no-model");
    let out = run_instruct(&model, &data, &["--records", "2..5"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--records 2..5 is out of range")
            && stderr(&out).contains("has 3 records"),
        "{}",
        stderr(&out)
    );
    for bad in ["3..3", "x..4", "4"] {
        let out = run_instruct(&model, &data, &["--records", bad]);
        assert!(!out.status.success(), "{bad}");
        assert!(
            stderr(&out).contains("--records"),
            "{bad}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_malformed_json_line_is_reported_with_its_number() {
    let tmp = TempDir::new("instruct-malformed");
    let data = tmp.path().join("bad.jsonl");
    std::fs::write(
        &data,
        "{\"instruction\": \"a\", \"response\": \"b\"}\n\n{\"instruction\": \"a\", \"response\": 7}\n",
    )
    .unwrap();
    let out = run_instruct(Path::new("unused"), &data, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("bad.jsonl:3: \"response\" is a number, expected a string"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_prompt_beyond_the_context_names_its_record() {
    let tmp = TempDir::new("instruct-context");
    let (model, data) = setup(tmp.path());
    // Record 0's prompt is about 20 tokens: with 90 new tokens it does not fit 96.
    let out = run_instruct(
        &model,
        &data,
        &[
            "--max-new-tokens",
            "90",
            "--device",
            "ndarray",
            "--seeds",
            "1",
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("record 0 of") && err.contains(&format!("context of {CONTEXT} tokens")),
        "{err}"
    );
}

#[test]
fn flags_of_the_other_task_are_refused() {
    let tmp = TempDir::new("instruct-flags");
    let data = tmp.path().join("d.jsonl");
    std::fs::write(&data, "{\"instruction\": \"a\", \"response\": \"b\"}\n").unwrap();
    for (flag, value) in [
        ("--pooling", "mean"),
        ("--max-length", "16"),
        ("--dims", "8"),
    ] {
        let out = run_instruct(Path::new("unused"), &data, &[flag, value]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains(&format!("{flag} applies to the embedding tasks only")),
            "{flag}: {}",
            stderr(&out)
        );
    }
    let tsv = tmp.path().join("d.tsv");
    std::fs::write(&tsv, "score\tsentence1\tsentence2\n1\ta\tb\n2\tc\td\n").unwrap();
    let out = mrl(&[
        "eval",
        "--task",
        "sts",
        "--model",
        "unused",
        "--data",
        tsv.to_str().unwrap(),
        "--seeds",
        "1",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--seeds applies to --task instruct only"),
        "{}",
        stderr(&out)
    );
}
