//! Step 4 of [`super`]: fetching a model from the hub into the standard cache with `hf-hub`'s
//! blocking client (feature `hub`).
//!
//! Untested here: the machines that run the tests have no network. The layout it writes is
//! `hf-hub`'s (the one `huggingface_hub` writes): `blobs/<etag>`, `snapshots/<commit>/<file>`
//! as a relative symlink into `blobs/`, and `refs/<revision>` holding the commit, which is
//! exactly what [`super::Resolver::resolve`] reads back.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

use super::{HubId, HUB_FILES};

/// Downloads the files the loaders need of `id` into `cache` (a hub cache directory, the one
/// that holds `models--org--name`) and returns the snapshot directory of the commit the
/// revision points to. Files already in that snapshot are not downloaded again.
///
/// # Errors
/// A message naming the request, file or directory that failed.
pub(super) fn download(
    id: &HubId<'_>,
    cache: &Path,
    endpoint: &str,
    token: Option<&str>,
) -> Result<PathBuf, String> {
    std::fs::create_dir_all(cache)
        .map_err(|e| format!("cannot create the cache directory {}: {e}", cache.display()))?;
    let hub_cache = Cache::new(cache.to_path_buf());
    let mut builder = ApiBuilder::from_cache(hub_cache.clone())
        .with_endpoint(endpoint.to_string())
        .with_progress(false)
        .with_retries(2)
        .with_user_agent("mrl", env!("CARGO_PKG_VERSION"));
    if let Some(token) = token {
        builder = builder.with_token(Some(token.to_string()));
    }
    let api = builder
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
    let repo = Repo::with_revision(
        id.repo.to_string(),
        RepoType::Model,
        id.revision().to_string(),
    );
    let remote = api.repo(repo.clone());
    let info = remote
        .info()
        .map_err(|e| format!("cannot list {} at revision {}: {e}", id.repo, id.revision()))?;
    if info.sha.is_empty() || !info.sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "{endpoint} answered commit `{}` for {}, not a commit hash",
            info.sha, id.repo
        ));
    }
    let listed: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    let files = files_to_fetch(&listed).map_err(|why| format!("{}: {why}", id.repo))?;

    eprintln!(
        "downloading {} ({}, commit {}) from {endpoint} into {}: {}",
        id.repo,
        id.revision(),
        info.sha,
        cache.display(),
        files.join(", ")
    );
    let snapshot = id.repo_dir(cache).join("snapshots").join(&info.sha);
    for file in &files {
        if snapshot.join(file).is_file() {
            continue;
        }
        let path = fetch_file(&remote, file)?;
        let landed = snapshot_of(&path, file)?;
        if landed != snapshot {
            return Err(format!(
                "the repository changed during the download: {file} landed in {}, not in {}; \
                 run again",
                landed.display(),
                snapshot.display()
            ));
        }
    }
    // Point the revision at this commit even when every file was already cached.
    hub_cache.repo(repo).create_ref(&info.sha).map_err(|e| {
        format!(
            "cannot write refs/{} under {}: {e}",
            id.revision(),
            id.repo_dir(cache).display()
        )
    })?;
    Ok(snapshot)
}

/// One file, with a progress bar on standard error (hidden when it is not a terminal).
fn fetch_file(remote: &ApiRepo, file: &str) -> Result<PathBuf, String> {
    let bar = indicatif::ProgressBar::new(0);
    remote
        .download_with_progress(file, bar)
        .map_err(|e| format!("cannot download {}: {e}", remote.url(file)))
}

/// The snapshot directory holding `path`, the cached copy of `file` (which may have
/// sub-directories, as `1_Pooling/config.json`).
fn snapshot_of(path: &Path, file: &str) -> Result<PathBuf, String> {
    let depth = Path::new(file).components().count();
    path.ancestors()
        .nth(depth)
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("unexpected cache path {} for {file}", path.display()))
}

/// Of the repository's files `listed`, those the loaders read: [`HUB_FILES`] when present,
/// plus the weights (`model.safetensors`, else the single top-level `*.gguf`).
///
/// # Errors
/// Why the repository cannot be loaded: no `tokenizer.json`, no weights in a supported
/// format, several GGUF files to choose from, or safetensors without `config.json`.
pub(super) fn files_to_fetch(listed: &[&str]) -> Result<Vec<String>, String> {
    let has = |f: &str| listed.contains(&f);
    let weights = if has(crate::bert::WEIGHTS_FILE) {
        if !has(crate::bert::CONFIG_FILE) {
            return Err(format!(
                "the repository has {} but no {}",
                crate::bert::WEIGHTS_FILE,
                crate::bert::CONFIG_FILE
            ));
        }
        crate::bert::WEIGHTS_FILE.to_string()
    } else {
        let ggufs: Vec<&str> = listed
            .iter()
            .copied()
            .filter(|f| f.ends_with(".gguf") && !f.contains('/'))
            .collect();
        match ggufs.as_slice() {
            [one] => one.to_string(),
            [] => {
                return Err(format!(
                    "the repository has neither {} nor a *.gguf file (sharded or \
                     PyTorch-only checkpoints are not supported)",
                    crate::bert::WEIGHTS_FILE
                ))
            }
            several => {
                return Err(format!(
                    "the repository has several GGUF files ({}); download the one you want \
                     by hand and pass its directory",
                    several.join(", ")
                ))
            }
        }
    };
    if !has(crate::tokenizer::TOKENIZER_FILE) {
        return Err(format!(
            "the repository has no {}",
            crate::tokenizer::TOKENIZER_FILE
        ));
    }
    let mut files: Vec<String> = HUB_FILES
        .iter()
        .copied()
        .filter(|f| has(f))
        .map(str::to_string)
        .collect();
    files.push(weights);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_files_the_loaders_read_are_fetched() {
        let minilm = [
            ".gitattributes",
            "1_Pooling/config.json",
            "README.md",
            "config.json",
            "model.safetensors",
            "modules.json",
            "onnx/model.onnx",
            "pytorch_model.bin",
            "sentence_bert_config.json",
            "special_tokens_map.json",
            "tf_model.h5",
            "tokenizer.json",
            "tokenizer_config.json",
            "vocab.txt",
        ];
        assert_eq!(
            files_to_fetch(&minilm).unwrap(),
            [
                "config.json",
                "tokenizer.json",
                "tokenizer_config.json",
                "special_tokens_map.json",
                "vocab.txt",
                "modules.json",
                "sentence_bert_config.json",
                "1_Pooling/config.json",
                "model.safetensors",
            ]
        );
        let gguf = ["m.Q4_1.gguf", "tokenizer.json", "README.md"];
        assert_eq!(
            files_to_fetch(&gguf).unwrap(),
            ["tokenizer.json", "m.Q4_1.gguf"]
        );
    }

    #[test]
    fn unloadable_repositories_are_refused_with_the_reason() {
        let e = files_to_fetch(&["a.Q4_0.gguf", "a.Q8_0.gguf", "tokenizer.json"]).unwrap_err();
        assert!(e.contains("a.Q4_0.gguf, a.Q8_0.gguf"), "{e}");
        let e =
            files_to_fetch(&["pytorch_model.bin", "config.json", "tokenizer.json"]).unwrap_err();
        assert!(e.contains("neither model.safetensors nor a *.gguf"), "{e}");
        let e = files_to_fetch(&["model.safetensors", "config.json"]).unwrap_err();
        assert!(e.contains("no tokenizer.json"), "{e}");
        let e = files_to_fetch(&["model.safetensors", "tokenizer.json"]).unwrap_err();
        assert!(e.contains("no config.json"), "{e}");
    }

    #[test]
    fn the_snapshot_is_the_directory_above_the_file() {
        let p = Path::new("/c/models--o--n/snapshots/abc/1_Pooling/config.json");
        assert_eq!(
            snapshot_of(p, "1_Pooling/config.json").unwrap(),
            Path::new("/c/models--o--n/snapshots/abc")
        );
        let p = Path::new("/c/models--o--n/snapshots/abc/config.json");
        assert_eq!(
            snapshot_of(p, "config.json").unwrap(),
            Path::new("/c/models--o--n/snapshots/abc")
        );
    }
}
