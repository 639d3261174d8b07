//! Finding a model: the one resolver behind every command (`mrl train`, `eval`, `encode`,
//! `generate`) and [`crate::SentenceEncoder`] users.
//!
//! A model *spec* is a directory path or a Hugging Face id `org/name`, optionally pinned to a
//! revision (branch, tag or commit) as `org/name@revision`. [`resolve_model`] tries, in order:
//!
//! 1. the spec as a path, with `${MRL_SHARED}` expanded: a directory is used as is; an existing
//!    file is an error of its own ([`ModelError::NotADirectory`]), not "not found";
//! 2. for an id without `@revision`, `$MRL_SHARED/models/<name>` (`<name>` is the part after the
//!    `/`; `MRL_SHARED` defaults to `../shared`);
//! 3. the Hugging Face hub cache, in the layout `huggingface_hub` writes:
//!    `<cache>/models--org--name/snapshots/<commit>/`, where `<commit>` is read from
//!    `refs/<revision>` (default `main`) or is the revision itself. A snapshot counts only when it
//!    holds what the loaders need (`tokenizer.json`, and `config.json` + `model.safetensors` or a
//!    `*.gguf`): a partial download is reported, not loaded. The caches tried are, in order,
//!    `$HF_HUB_CACHE`, `$HF_HOME/hub`, `$XDG_CACHE_HOME/huggingface/hub` and
//!    `~/.cache/huggingface/hub` ([`hf_cache_dirs`]);
//! 4. with the `hub` feature, unless `HF_HUB_OFFLINE` is set: a download of the id from
//!    `$HF_ENDPOINT` (default `https://huggingface.co`, token from `$HF_TOKEN`) into the first
//!    of those caches, in the same layout, of only the files the loaders read ([`HUB_FILES`] plus
//!    the weights), with a progress bar on standard error.
//!
//! When all of that fails, [`ModelError::NotFound`] lists every place looked in (and what was
//! wrong with it), why nothing was downloaded, and how to fetch the model.
//!
//! The download itself (step 4) is not exercised by the tests: the test machines have no
//! network. What is tested is everything around it: the cache layout, `@revision`, partial
//! snapshots, and that `HF_HUB_OFFLINE` never opens a connection.

#[cfg(feature = "hub")]
mod download;

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};

/// Files fetched from the hub next to the weights when the repository has them: what
/// [`crate::SentenceEncoder`], [`crate::generation::TextGenerator`], the BERT loader and the
/// sentence-transformers export of `mrl-train` read. The weights are `model.safetensors`, or the
/// repository's single `*.gguf` when it has no safetensors.
pub const HUB_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
    "chat_template.jinja",
];

/// The hub's default endpoint (`$HF_ENDPOINT` overrides it).
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Resolves `spec` (a directory, or a Hugging Face id) to a model directory with the settings of
/// the process environment ([`Resolver::from_env`]); see the [module docs](self) for the rules.
///
/// # Errors
/// [`ModelError::NotADirectory`] when `spec` names a file; [`ModelError::NotFound`] listing
/// every place looked in, why nothing was downloaded and how to fetch the model.
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    Resolver::from_env().resolve(spec)
}

/// Where and how [`Resolver::resolve`] looks for models. Build it from the environment with
/// [`Resolver::from_env`], or field by field (tests do, to avoid touching the process
/// environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolver {
    /// `$MRL_SHARED` (default `../shared`): expands `${MRL_SHARED}` and holds `models/<name>`.
    pub shared: PathBuf,
    /// Hugging Face hub caches, most specific first; downloads go to the first.
    pub caches: Vec<PathBuf>,
    /// Whether a model found nowhere locally is downloaded.
    pub download: DownloadPolicy,
}

/// Whether and from where [`Resolver::resolve`] downloads a missing model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadPolicy {
    /// Download from the hub (needs the `hub` feature; without it this acts as
    /// [`NoDownload::HubDisabled`]).
    Hub {
        /// Base URL, e.g. [`DEFAULT_ENDPOINT`].
        endpoint: String,
        /// Access token for gated or private repositories.
        token: Option<String>,
    },
    /// Never download, for this reason.
    Never(NoDownload),
}

/// Why a model that was not found locally was not downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoDownload {
    /// `HF_HUB_OFFLINE` is set.
    Offline,
    /// Built without the `hub` cargo feature.
    HubDisabled,
    /// The spec is a path, not a Hugging Face id.
    NotAnId,
    /// A download was tried and failed.
    Failed {
        /// The endpoint it was tried from.
        endpoint: String,
        /// What went wrong (connection, HTTP status, missing files, …).
        message: String,
    },
}

/// One place [`Resolver::resolve`] looked in, and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The directory that was tried.
    pub path: PathBuf,
    /// Why it did not do.
    pub problem: Problem,
}

/// What was wrong with a [`Place`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// There is no such directory.
    Absent,
    /// The directory exists but lacks files the loaders need (a partial download).
    Incomplete(Vec<String>),
}

impl Place {
    /// A place that does not exist.
    pub fn absent(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            problem: Problem::Absent,
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            Problem::Absent => write!(f, "{} (no such directory)", self.path.display()),
            Problem::Incomplete(missing) => write!(
                f,
                "{} (incomplete: no {})",
                self.path.display(),
                missing.join(", no ")
            ),
        }
    }
}

impl Default for Resolver {
    fn default() -> Self {
        Self::from_env()
    }
}

impl Resolver {
    /// The settings of the process environment: `MRL_SHARED`, the cache variables of
    /// [`hf_cache_dirs`], `HF_HUB_OFFLINE`, `HF_ENDPOINT`, `HF_TOKEN`.
    pub fn from_env() -> Self {
        Self::from_env_with(|name| std::env::var_os(name))
    }

    /// As [`Resolver::from_env`], with `env` answering the variable lookups.
    ///
    /// Downloads are on when the crate is built with the `hub` feature and `HF_HUB_OFFLINE` is
    /// unset or not true (`1`, `ON`, `YES`, `TRUE`, any case, as `huggingface_hub` reads it).
    pub fn from_env_with(env: impl Fn(&str) -> Option<OsString>) -> Self {
        let shared = env("MRL_SHARED")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("../shared"));
        let caches = hf_cache_dirs(&env);
        let offline = env("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(
                v.to_string_lossy().trim().to_ascii_uppercase().as_str(),
                "1" | "ON" | "YES" | "TRUE"
            )
        });
        let download = if offline {
            DownloadPolicy::Never(NoDownload::Offline)
        } else if cfg!(feature = "hub") {
            DownloadPolicy::Hub {
                endpoint: env("HF_ENDPOINT")
                    .map(|e| e.to_string_lossy().trim_end_matches('/').to_string())
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
                token: env("HF_TOKEN")
                    .map(|t| t.to_string_lossy().trim().to_string())
                    .filter(|t| !t.is_empty()),
            }
        } else {
            DownloadPolicy::Never(NoDownload::HubDisabled)
        };
        Self {
            shared,
            caches,
            download,
        }
    }

    /// `path` with `${MRL_SHARED}` replaced by [`Resolver::shared`].
    pub fn expand(&self, path: &str) -> PathBuf {
        if path.contains("${MRL_SHARED}") {
            PathBuf::from(path.replace("${MRL_SHARED}", &self.shared.to_string_lossy()))
        } else {
            PathBuf::from(path)
        }
    }

    /// Resolves `spec` to a model directory; see the [module docs](self) for the rules.
    ///
    /// # Errors
    /// [`ModelError::NotADirectory`] when `spec` names a file; [`ModelError::NotFound`] listing
    /// every place looked in, why nothing was downloaded and how to fetch the model.
    pub fn resolve(&self, spec: &str) -> Result<PathBuf> {
        let direct = self.expand(spec);
        if direct.is_dir() {
            return Ok(direct);
        }
        if direct.exists() {
            return Err(ModelError::NotADirectory { path: direct });
        }
        let mut searched = vec![Place::absent(&direct)];
        let Some(id) = HubId::parse(spec) else {
            return Err(ModelError::NotFound {
                spec: spec.to_string(),
                searched,
                download: NoDownload::NotAnId,
                fetch_into: None,
            });
        };

        if id.revision.is_none() {
            let in_shared = self.shared.join("models").join(id.name());
            if in_shared.is_dir() {
                return Ok(in_shared);
            }
            searched.push(Place::absent(in_shared));
        }
        for cache in &self.caches {
            match id.snapshot_in(cache) {
                Ok(dir) => return Ok(dir),
                Err(place) => searched.push(place),
            }
        }

        let download = match &self.download {
            DownloadPolicy::Never(why) => why.clone(),
            DownloadPolicy::Hub { endpoint, token } => {
                match self.try_download(&id, endpoint, token.as_deref()) {
                    Ok(dir) => return Ok(dir),
                    Err(why) => why,
                }
            }
        };
        Err(ModelError::NotFound {
            spec: spec.to_string(),
            searched,
            download,
            fetch_into: self.caches.first().cloned(),
        })
    }

    /// Downloads `id` into the first cache and checks the snapshot is complete.
    #[cfg(feature = "hub")]
    fn try_download(
        &self,
        id: &HubId<'_>,
        endpoint: &str,
        token: Option<&str>,
    ) -> std::result::Result<PathBuf, NoDownload> {
        let failed = |message: String| NoDownload::Failed {
            endpoint: endpoint.to_string(),
            message,
        };
        let Some(cache) = self.caches.first() else {
            return Err(failed(
                "no cache directory to download into (set HF_HUB_CACHE, HF_HOME or HOME)".into(),
            ));
        };
        let dir = download::download(id, cache, endpoint, token).map_err(failed)?;
        match missing_files(&dir) {
            missing if missing.is_empty() => Ok(dir),
            missing => Err(failed(format!(
                "the downloaded snapshot {} lacks {}",
                dir.display(),
                missing.join(", ")
            ))),
        }
    }

    /// Without the `hub` feature nothing is downloaded.
    #[cfg(not(feature = "hub"))]
    fn try_download(
        &self,
        _id: &HubId<'_>,
        _endpoint: &str,
        _token: Option<&str>,
    ) -> std::result::Result<PathBuf, NoDownload> {
        Err(NoDownload::HubDisabled)
    }
}

/// The hub cache directories, most specific first, from environment lookups `env`
/// (`$HF_HUB_CACHE`, `$HF_HOME/hub`, `$XDG_CACHE_HOME/huggingface/hub`,
/// `$HOME/.cache/huggingface/hub`; empty values are skipped).
pub fn hf_cache_dirs(env: impl Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut dirs = Vec::new();
    let mut push = |p: PathBuf| {
        if !dirs.contains(&p) {
            dirs.push(p);
        }
    };
    if let Some(p) = var("HF_HUB_CACHE") {
        push(p);
    }
    if let Some(p) = var("HF_HOME") {
        push(p.join("hub"));
    }
    if let Some(p) = var("XDG_CACHE_HOME") {
        push(p.join("huggingface").join("hub"));
    }
    if let Some(p) = var("HOME") {
        push(p.join(".cache").join("huggingface").join("hub"));
    }
    dirs
}

/// A Hugging Face model id, `org/name` with an optional `@revision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HubId<'a> {
    /// `org/name`.
    pub repo: &'a str,
    /// The explicit revision, if any.
    pub revision: Option<&'a str>,
}

impl<'a> HubId<'a> {
    /// Splits `org/name[@revision]`; `None` if `spec` does not look like a hub id.
    pub fn parse(spec: &'a str) -> Option<Self> {
        let (repo, revision) = match spec.split_once('@') {
            Some((repo, rev)) => (repo, Some(rev)),
            None => (spec, None),
        };
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && s != "."
                && s != ".."
        };
        // Branch names may hold `/` (`refs/pr/1`); no component may climb out of `refs/`.
        let revision_ok = |r: &str| r.split('/').all(name_ok);
        let mut parts = repo.split('/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(org), Some(name), None)
                if name_ok(org) && name_ok(name) && revision.is_none_or(revision_ok) =>
            {
                Some(Self { repo, revision })
            }
            _ => None,
        }
    }

    /// The revision to look up: the explicit one, else `main`.
    pub fn revision(&self) -> &'a str {
        self.revision.unwrap_or("main")
    }

    /// The part after the `/`.
    pub fn name(&self) -> &'a str {
        self.repo.rsplit('/').next().unwrap_or(self.repo)
    }

    /// `<cache>/models--org--name`.
    pub fn repo_dir(&self, cache: &Path) -> PathBuf {
        cache.join(format!("models--{}", self.repo.replace('/', "--")))
    }

    /// The complete snapshot of this id in `cache`, or the place tried and what was wrong.
    fn snapshot_in(&self, cache: &Path) -> std::result::Result<PathBuf, Place> {
        let repo_dir = self.repo_dir(cache);
        let commit =
            read_ref(&repo_dir, self.revision()).unwrap_or_else(|| self.revision().to_string());
        let dir = repo_dir.join("snapshots").join(commit);
        if !dir.is_dir() {
            return Err(Place::absent(dir));
        }
        match missing_files(&dir) {
            missing if missing.is_empty() => Ok(dir),
            missing => Err(Place {
                path: dir,
                problem: Problem::Incomplete(missing),
            }),
        }
    }
}

/// The commit a ref points to (`refs/<revision>`), if the ref file exists.
fn read_ref(repo_dir: &Path, revision: &str) -> Option<String> {
    let text = std::fs::read_to_string(repo_dir.join("refs").join(revision)).ok()?;
    let commit = text.trim();
    (!commit.is_empty()).then(|| commit.to_string())
}

/// What a model directory lacks for the loaders: `tokenizer.json`, and `config.json` +
/// `model.safetensors` unless it holds a `*.gguf` (whose metadata carries the config).
pub(crate) fn missing_files(dir: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if !dir.join(crate::tokenizer::TOKENIZER_FILE).is_file() {
        missing.push(crate::tokenizer::TOKENIZER_FILE.to_string());
    }
    let has_gguf = std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| {
            let path = e.path();
            path.extension().is_some_and(|x| x == "gguf") && path.is_file()
        })
    });
    if !has_gguf {
        if !dir.join(crate::bert::CONFIG_FILE).is_file() {
            missing.push(crate::bert::CONFIG_FILE.to_string());
        }
        if !dir.join(crate::bert::WEIGHTS_FILE).is_file() {
            missing.push(format!("{} (or a *.gguf)", crate::bert::WEIGHTS_FILE));
        }
    }
    missing
}

/// The message of [`ModelError::NotFound`]: every place, why nothing was downloaded, how to
/// fetch the model.
pub(crate) fn not_found_message(
    spec: &str,
    searched: &[Place],
    download: &NoDownload,
    fetch_into: Option<&Path>,
) -> String {
    let mut out = format!("model `{spec}` not found; looked in:");
    for place in searched {
        out.push_str(&format!("\n  - {place}"));
    }
    let cache = fetch_into
        .map(|c| c.display().to_string())
        .unwrap_or_else(|| "the Hugging Face cache".to_string());
    let hf_download = match HubId::parse(spec) {
        Some(HubId {
            repo,
            revision: Some(rev),
        }) => format!("hf download {repo} --revision {rev}"),
        _ => format!("hf download {spec}"),
    };
    let by_hand = format!(
        "`{hf_download}` (Python huggingface_hub; older versions: `huggingface-cli download`) \
         puts it into {cache}; or pass a model directory"
    );
    let tail = match download {
        NoDownload::NotAnId => format!(
            "\n`{spec}` is neither a directory nor a Hugging Face id (`org/name` or \
             `org/name@revision`), so nothing was downloaded; check the path."
        ),
        NoDownload::Offline => format!(
            "\nNothing was downloaded: HF_HUB_OFFLINE is set. To fetch the model, run once with \
             network and without HF_HUB_OFFLINE (it is downloaded into {cache}), or {by_hand}."
        ),
        NoDownload::HubDisabled => format!(
            "\nNothing was downloaded: this build has no `hub` feature (`mrl` has it by \
             default). To fetch the model, rebuild with it, or {by_hand}."
        ),
        NoDownload::Failed { endpoint, message } => format!(
            "\nDownloading it from {endpoint} failed: {message}\nTo fetch the model, check the \
             network (HF_ENDPOINT for a mirror, HF_TOKEN for a gated or private model) and run \
             again, or {by_hand}; HF_HUB_OFFLINE=1 skips the download."
        ),
    };
    out.push_str(&tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dirs_follow_the_hub_precedence() {
        let env = |name: &str| -> Option<OsString> {
            match name {
                "HF_HUB_CACHE" => Some("/a/hub-cache".into()),
                "HF_HOME" => Some("/b/hf".into()),
                "XDG_CACHE_HOME" => Some("".into()),
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
        let id = |repo, revision| Some(HubId { repo, revision });
        assert_eq!(HubId::parse("org/name"), id("org/name", None));
        assert_eq!(HubId::parse("org/name@v1.0"), id("org/name", Some("v1.0")));
        assert_eq!(
            HubId::parse("org/name@refs/pr/1"),
            id("org/name", Some("refs/pr/1"))
        );
        assert_eq!(HubId::parse("org/name").unwrap().name(), "name");
        for not_an_id in [
            "./models/x",
            "/abs/path",
            "a/b/c",
            "name",
            "org/name@",
            "org/name@../../x",
            "org/..",
        ] {
            assert_eq!(HubId::parse(not_an_id), None, "{not_an_id}");
        }
    }

    #[test]
    fn offline_is_read_as_huggingface_hub_reads_it() {
        for (value, offline) in [
            ("1", true),
            ("true", true),
            ("YES", true),
            ("on", true),
            ("0", false),
            ("", false),
        ] {
            let r = Resolver::from_env_with(|name| {
                (name == "HF_HUB_OFFLINE").then(|| OsString::from(value))
            });
            assert_eq!(
                r.download == DownloadPolicy::Never(NoDownload::Offline),
                offline,
                "HF_HUB_OFFLINE={value}"
            );
        }
        let r = Resolver::from_env_with(|name| {
            (name == "HF_ENDPOINT").then(|| OsString::from("http://127.0.0.1:9/"))
        });
        if cfg!(feature = "hub") {
            assert_eq!(
                r.download,
                DownloadPolicy::Hub {
                    endpoint: "http://127.0.0.1:9".into(),
                    token: None
                }
            );
        } else {
            assert_eq!(r.download, DownloadPolicy::Never(NoDownload::HubDisabled));
        }
        assert_eq!(r.shared, PathBuf::from("../shared"));
    }
}
