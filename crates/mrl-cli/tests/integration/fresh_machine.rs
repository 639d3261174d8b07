//! The README's main job on a fresh machine: a clean clone with no `../shared` beside it and the
//! model only in a Hugging Face cache. The cache is built here, in the layout `huggingface_hub`
//! and `hf-hub` write (`refs/main`, `snapshots/<commit>/<file>` symlinked into `blobs/`), from
//! the shared all-MiniLM-L6-v2; `MRL_SHARED` points at an empty directory and downloads are off
//! (`HF_HUB_OFFLINE=1`), so the run can only use the cache and the repository's `data/`.
//! `mrl train --config configs/mipic-minilm.toml` then runs from the repository root, as the
//! README says, for two steps.

use std::path::{Path, PathBuf};

use crate::common::*;

/// The commit name of the snapshot directory; the hub names snapshots by commit hash, the value
/// itself does not matter to the resolver.
const COMMIT: &str = "4f0a6d1b5c2e8a7d9f3b1c0e2a4d6f8b0c2e4a6d";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root")
}

/// Copies every file of `src` into `<repo_dir>/blobs/` and links it from
/// `<repo_dir>/snapshots/<COMMIT>/` by a relative symlink (a copy where symlinks do not exist),
/// then writes `refs/main`.
fn fill_cache(src: &Path, repo_dir: &Path) {
    let snapshot = repo_dir.join("snapshots").join(COMMIT);
    let blobs = repo_dir.join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let mut stack = vec![PathBuf::new()];
    let mut n = 0;
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(src.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let rel = rel.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                stack.push(rel);
                continue;
            }
            n += 1;
            let blob = blobs.join(format!("blob{n:03}"));
            std::fs::copy(src.join(&rel), &blob).unwrap();
            let link = snapshot.join(&rel);
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            #[cfg(unix)]
            {
                // snapshots/<commit>/[sub/]file -> ../../[../]blobs/blobNNN
                let up = "../".repeat(rel.components().count() + 1);
                std::os::unix::fs::symlink(format!("{up}blobs/blob{n:03}"), &link).unwrap();
            }
            #[cfg(not(unix))]
            std::fs::copy(&blob, &link).unwrap();
        }
    }
    std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
    std::fs::write(repo_dir.join("refs/main"), COMMIT).unwrap();
}

#[test]
#[ignore = "needs MRL_SHARED (the model copied into the test's Hugging Face cache)"]
fn the_main_job_runs_from_a_clean_clone_with_the_model_in_a_hugging_face_cache() {
    let minilm = shared_path("models/all-MiniLM-L6-v2");
    let tmp = TempDir::new("fresh-machine");
    let cache = tmp.path().join("hf-home/hub");
    let repo_dir = cache.join("models--sentence-transformers--all-MiniLM-L6-v2");
    fill_cache(&minilm, &repo_dir);
    let snapshot = repo_dir.join("snapshots").join(COMMIT);
    let no_shared = tmp.path().join("no-shared");
    std::fs::create_dir_all(&no_shared).unwrap();
    let out_dir = tmp.path().join("run");

    let root = workspace_root();
    let config = "configs/mipic-minilm.toml";
    assert!(root.join("data/stsb_dev.tsv").is_file(), "bundled dev set");
    let parsed = training::embedding::EmbeddingConfig::from_file(&root.join(config), &[]).unwrap();
    assert_eq!(
        parsed.eval.as_ref().map(|e| e.dev.as_str()),
        Some("data/stsb_dev.tsv"),
        "the main job reads the bundled dev set"
    );

    let out = mrl_command()
        .current_dir(&root)
        .env("MRL_SHARED", &no_shared)
        .env("HF_HUB_CACHE", &cache)
        .env_remove("HF_HOME")
        .env("HOME", tmp.path().join("home"))
        .env_remove("XDG_CACHE_HOME")
        .args([
            "train",
            "--config",
            config,
            "--set",
            "training.steps=2",
            "--set",
            "training.batch_size=4",
            "--set",
            "model.max_length=16",
            "--set",
            &format!("output_dir={}", out_dir.display()),
        ])
        .output()
        .expect("run mrl");
    let stderr = stderr(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("model {} (", snapshot.display())),
        "the model comes from the cache snapshot: {stderr}"
    );
    // The dev set was read (before and after) and reported, from data/.
    let report = out_dir.join("report/stsb_dev.json");
    assert!(report.is_file(), "{} missing; {stderr}", report.display());
    let report = std::fs::read_to_string(&report).unwrap();
    assert!(report.contains("384"), "{report}");
    assert!(
        out_dir.join("model/model.safetensors").is_file(),
        "exported: {stderr}"
    );
    assert!(
        !stderr.contains(&no_shared.display().to_string()),
        "{stderr}"
    );
}
