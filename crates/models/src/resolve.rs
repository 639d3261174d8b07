//! Finding a model on disk: a local directory, or a Hugging Face id in the standard hub cache.
//!
//! Nothing is downloaded. An id `org/name` (optionally `org/name@revision`) is looked up as
//! `<cache>/models--org--name/snapshots/<commit>/`, where `<commit>` is read from
//! `refs/<revision>` (default `main`) or is the revision itself; the cache directories tried are,
//! in order, `$HF_HUB_CACHE`, `$HF_HOME/hub`, `$XDG_CACHE_HOME/huggingface/hub` and
//! `~/.cache/huggingface/hub`.

use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};

/// Resolves `spec` (a directory, or a Hugging Face id) to a model directory, using the cache
/// locations from the environment (see [`hf_cache_dirs`]).
///
/// # Errors
/// [`ModelError::NotFound`] listing every path that was tried.
pub fn resolve_model_dir(spec: &str) -> Result<PathBuf> {
    resolve_model_dir_in(spec, &hf_cache_dirs(|name| std::env::var_os(name)))
}

/// Resolves `spec` against an explicit list of hub cache directories.
///
/// # Errors
/// [`ModelError::NotFound`] listing every path that was tried.
pub fn resolve_model_dir_in(spec: &str, cache_dirs: &[PathBuf]) -> Result<PathBuf> {
    let as_path = Path::new(spec);
    if as_path.is_dir() {
        return Ok(as_path.to_path_buf());
    }
    let mut searched = vec![as_path.to_path_buf()];
    if let Some((repo_id, revision)) = parse_repo_id(spec) {
        for cache in cache_dirs {
            let repo_dir = cache.join(format!("models--{}", repo_id.replace('/', "--")));
            match snapshot_dir(&repo_dir, revision) {
                Some(dir) => return Ok(dir),
                None => {
                    searched.push(repo_dir.join("snapshots").join(
                        read_ref(&repo_dir, revision).unwrap_or_else(|| revision.to_string()),
                    ))
                }
            }
        }
    }
    Err(ModelError::NotFound {
        spec: spec.to_string(),
        searched,
    })
}

/// The hub cache directories, most specific first, from environment lookups `env`
/// (`$HF_HUB_CACHE`, `$HF_HOME/hub`, `$XDG_CACHE_HOME/huggingface/hub`,
/// `$HOME/.cache/huggingface/hub`).
pub fn hf_cache_dirs(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut push = |p: PathBuf| {
        if !dirs.contains(&p) {
            dirs.push(p);
        }
    };
    if let Some(p) = env("HF_HUB_CACHE") {
        push(PathBuf::from(p));
    }
    if let Some(p) = env("HF_HOME") {
        push(PathBuf::from(p).join("hub"));
    }
    if let Some(p) = env("XDG_CACHE_HOME") {
        push(PathBuf::from(p).join("huggingface").join("hub"));
    }
    if let Some(p) = env("HOME") {
        push(
            PathBuf::from(p)
                .join(".cache")
                .join("huggingface")
                .join("hub"),
        );
    }
    dirs
}

/// Splits `org/name[@revision]`; `None` if `spec` does not look like a hub id.
fn parse_repo_id(spec: &str) -> Option<(&str, &str)> {
    let (repo_id, revision) = spec.split_once('@').unwrap_or((spec, "main"));
    let mut parts = repo_id.split('/');
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s != "."
            && s != ".."
    };
    match (parts.next(), parts.next(), parts.next()) {
        (Some(org), Some(name), None) if valid(org) && valid(name) && !revision.is_empty() => {
            Some((repo_id, revision))
        }
        _ => None,
    }
}

/// The commit a ref points to (`refs/<revision>`), if the ref file exists.
fn read_ref(repo_dir: &Path, revision: &str) -> Option<String> {
    let text = std::fs::read_to_string(repo_dir.join("refs").join(revision)).ok()?;
    let commit = text.trim();
    (!commit.is_empty()).then(|| commit.to_string())
}

/// The snapshot directory for `revision` (a ref name or a commit hash), if present.
fn snapshot_dir(repo_dir: &Path, revision: &str) -> Option<PathBuf> {
    let snapshots = repo_dir.join("snapshots");
    let commit = read_ref(repo_dir, revision).unwrap_or_else(|| revision.to_string());
    let dir = snapshots.join(commit);
    dir.is_dir().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    /// A fresh empty directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "models-resolve-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn make_snapshot(cache: &Path, repo: &str, commit: &str, main: Option<&str>) -> PathBuf {
        let repo_dir = cache.join(format!("models--{}", repo.replace('/', "--")));
        let snap = repo_dir.join("snapshots").join(commit);
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(snap.join("config.json"), "{}").unwrap();
        if let Some(main) = main {
            std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
            std::fs::write(repo_dir.join("refs").join("main"), format!("{main}\n")).unwrap();
        }
        snap
    }

    #[test]
    fn a_local_directory_resolves_to_itself() {
        let tmp = TempDir::new("local");
        assert_eq!(
            resolve_model_dir_in(tmp.0.to_str().unwrap(), &[]).unwrap(),
            tmp.0
        );
    }

    #[test]
    fn an_id_follows_refs_main_in_the_first_cache_that_has_it() {
        let tmp = TempDir::new("refs");
        let empty = tmp.0.join("empty-cache");
        let cache = tmp.0.join("hub");
        std::fs::create_dir_all(&empty).unwrap();
        make_snapshot(
            &cache,
            "sentence-transformers/all-MiniLM-L6-v2",
            "old",
            None,
        );
        let want = make_snapshot(
            &cache,
            "sentence-transformers/all-MiniLM-L6-v2",
            "c9745ed",
            Some("c9745ed"),
        );
        let got = resolve_model_dir_in(
            "sentence-transformers/all-MiniLM-L6-v2",
            &[empty, cache.clone()],
        )
        .unwrap();
        assert_eq!(got, want);
        // An explicit commit picks that snapshot instead of refs/main.
        let old =
            resolve_model_dir_in("sentence-transformers/all-MiniLM-L6-v2@old", &[cache]).unwrap();
        assert!(old.ends_with("snapshots/old"), "{}", old.display());
    }

    #[test]
    fn a_missing_model_names_every_place_it_looked() {
        let tmp = TempDir::new("missing");
        let err = resolve_model_dir_in("BAAI/bge-small-en-v1.5", std::slice::from_ref(&tmp.0))
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("BAAI/bge-small-en-v1.5"), "{message}");
        let expected = tmp
            .0
            .join("models--BAAI--bge-small-en-v1.5")
            .join("snapshots")
            .join("main");
        assert!(
            message.contains(&expected.display().to_string()),
            "{message}"
        );
    }

    #[test]
    fn a_ref_without_its_snapshot_is_not_found() {
        let tmp = TempDir::new("dangling");
        make_snapshot(&tmp.0, "org/model", "aaa", Some("bbb"));
        let err = resolve_model_dir_in("org/model", std::slice::from_ref(&tmp.0)).unwrap_err();
        assert!(err.to_string().contains("snapshots/bbb"), "{err}");
    }

    #[test]
    fn cache_dirs_follow_the_hub_precedence() {
        let env = |name: &str| -> Option<OsString> {
            match name {
                "HF_HUB_CACHE" => Some("/a/hub-cache".into()),
                "HF_HOME" => Some("/b/hf".into()),
                "HOME" => Some("/home/u".into()),
                _ => None,
            }
        };
        assert_eq!(
            hf_cache_dirs(env),
            vec![
                PathBuf::from("/a/hub-cache"),
                PathBuf::from("/b/hf/hub"),
                PathBuf::from("/home/u/.cache/huggingface/hub"),
            ]
        );
    }

    #[test]
    fn only_org_slash_name_is_a_hub_id() {
        assert_eq!(parse_repo_id("org/name"), Some(("org/name", "main")));
        assert_eq!(parse_repo_id("org/name@v1.0"), Some(("org/name", "v1.0")));
        assert_eq!(parse_repo_id("./models/x"), None);
        assert_eq!(parse_repo_id("/abs/path"), None);
        assert_eq!(parse_repo_id("a/b/c"), None);
    }
}
