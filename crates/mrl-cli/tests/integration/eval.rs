//! `mrl eval` and `mrl encode` through the binary: errors on bad input, and STS-B test parity of
//! all-MiniLM-L6-v2 with sentence-transformers (ignored: needs `MRL_SHARED`).

use std::path::Path;

use crate::common::*;

/// Reference Spearman ×100 of all-MiniLM-L6-v2 on STS-B test (shared/README.md,
/// sentence-transformers 6.2, mean pooling, truncate → L2-normalise → cosine).
const MINILM_STSB_TEST: [(usize, f64); 7] = [
    (384, 82.03),
    (256, 81.89),
    (128, 80.68),
    (64, 79.21),
    (32, 76.67),
    (16, 72.02),
    (8, 62.46),
];

#[test]
fn a_malformed_tsv_row_is_reported_with_its_line_number() {
    let tmp = TempDir::new("malformed");
    let data = tmp.path().join("bad.tsv");
    std::fs::write(
        &data,
        "score\tsentence1\tsentence2\n1.0\ta\tb\n2.0\tmissing a column\n",
    )
    .unwrap();
    let out = mrl(&[
        "eval",
        "--model",
        "unused",
        "--task",
        "sts",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("bad.tsv:3: expected 3 tab-separated fields"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_empty_data_file_is_an_error() {
    let tmp = TempDir::new("empty");
    let data = tmp.path().join("empty.tsv");
    std::fs::write(&data, "score\tsentence1\tsentence2\n").unwrap();
    let out = mrl(&[
        "eval",
        "--model",
        "unused",
        "--task",
        "sts",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("has no data rows"),
        "{}",
        stderr(&out)
    );

    let input = tmp.path().join("empty.txt");
    std::fs::write(&input, "\n\n").unwrap();
    let out = mrl(&[
        "encode",
        "--model",
        "unused",
        "--input",
        input.to_str().unwrap(),
        "--dim",
        "8",
        "--output",
        tmp.path().join("o.jsonl").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("has no sentences"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_model_that_is_nowhere_lists_where_it_looked() {
    let tmp = TempDir::new("notfound");
    let data = tmp.path().join("d.tsv");
    std::fs::write(&data, "score\tsentence1\tsentence2\n1\ta\tb\n2\tc\td\n").unwrap();
    let cache = tmp.path().join("hub");
    let out = mrl_command()
        .args([
            "eval",
            "--model",
            "acme/missing-model",
            "--task",
            "sts",
            "--data",
        ])
        .arg(&data)
        .env("HF_HUB_CACHE", &cache)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("model `acme/missing-model` not found"),
        "{err}"
    );
    assert!(
        err.contains(
            &cache
                .join("models--acme--missing-model")
                .display()
                .to_string()
        ),
        "{err}"
    );
    // Offline: no download was tried, and the message says how to fetch the model.
    assert!(
        err.contains("Nothing was downloaded: HF_HUB_OFFLINE is set")
            && err.contains("hf download acme/missing-model"),
        "{err}"
    );
}

#[test]
fn a_file_given_as_the_model_is_not_a_directory() {
    let tmp = TempDir::new("modelfile");
    let data = tmp.path().join("d.tsv");
    std::fs::write(&data, "score\tsentence1\tsentence2\n1\ta\tb\n2\tc\td\n").unwrap();
    let out = mrl(&[
        "eval",
        "--model",
        data.to_str().unwrap(),
        "--task",
        "sts",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{} is a file, not a model directory",
            data.display()
        )) && !err.contains("not found"),
        "{err}"
    );
}

#[test]
#[ignore = "needs MRL_SHARED"]
fn a_dim_larger_than_the_hidden_size_is_an_error() {
    let model = shared_path("models/all-MiniLM-L6-v2/model.safetensors");
    let model = model.parent().unwrap();
    let data = shared_path("data/stsb_dev.tsv");
    let out = mrl(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--task",
        "sts",
        "--data",
        data.to_str().unwrap(),
        "--dims",
        "384,512",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("embedding dim 512 is out of range: it must lie in 1..=384"),
        "{}",
        stderr(&out)
    );
}

#[test]
#[ignore = "needs MRL_SHARED"]
fn encode_writes_one_truncated_unit_vector_per_line() {
    let model = shared_path("models/all-MiniLM-L6-v2/model.safetensors");
    let model = model.parent().unwrap();
    let tmp = TempDir::new("encode");
    let input = tmp.path().join("in.txt");
    let output = tmp.path().join("out.jsonl");
    std::fs::write(
        &input,
        "A man is playing a guitar.\n\nA woman is slicing an onion.\n",
    )
    .unwrap();
    let out = mrl(&[
        "encode",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--dim",
        "64",
        "--output",
        output.to_str().unwrap(),
        "--device",
        "ndarray",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Vec<f32>> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    // Reference: the sentence-transformers embedding of the fixture, truncated to 64 and
    // renormalised.
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../models/tests/fixtures/minilm_embeddings.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line.len(), 64);
        let want: Vec<f32> = fixture["embeddings"][i].as_array().unwrap()[..64]
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let norm = want.iter().map(|v| v * v).sum::<f32>().sqrt();
        for (a, b) in line.iter().zip(&want) {
            assert!((a - b / norm).abs() < 1e-4, "line {i}: {a} vs {}", b / norm);
        }
    }
}

#[test]
#[ignore = "needs MRL_SHARED"]
fn minilm_reproduces_the_reference_stsb_test_spearman_on_flex() {
    let model = shared_path("models/all-MiniLM-L6-v2/model.safetensors");
    let model = model.parent().unwrap();
    let data = shared_path("data/stsb_test.tsv");
    let tmp = TempDir::new("parity");
    let json = tmp.path().join("scores.json");
    let out = mrl(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--task",
        "sts",
        "--data",
        data.to_str().unwrap(),
        "--device",
        "flex",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    println!("{}", String::from_utf8_lossy(&out.stdout));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["task"], "sts");
    assert_eq!(report["n_pairs"], 1379);
    let dims = report["dims"].as_object().unwrap();
    let keys: Vec<&str> = dims.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), MINILM_STSB_TEST.len(), "{keys:?}");
    for (dim, want) in MINILM_STSB_TEST {
        let got = dims[&dim.to_string()]["spearman"].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 0.05,
            "dim {dim}: Spearman {got:.3}, reference {want:.2}"
        );
        assert!(dims[&dim.to_string()]["pearson"].as_f64().unwrap() > 50.0);
    }
}
