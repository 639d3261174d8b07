//! `models::resolve`, the one model resolver: a directory, `${MRL_SHARED}`,
//! `$MRL_SHARED/models/<name>`, Hugging Face caches built here (`refs/main`, `@revision`,
//! partial snapshots), the not-found listing, and `HF_HUB_OFFLINE` never opening a connection.
//!
//! The download itself cannot run here (no network) and is not tested; with the `hub` feature
//! the attempt against a closed local port is (it fails at once and says so).

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use models::resolve::{DownloadPolicy, NoDownload, Place, Problem, Resolver};
use models::{EncoderOptions, ModelError, SentenceEncoder};

use crate::common::{write_tiny_model, TempDir};

const ID: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// `<cache>/models--org--name`.
fn repo_dir(cache: &Path, id: &str) -> PathBuf {
    cache.join(format!("models--{}", id.replace('/', "--")))
}

/// A complete snapshot `commit` of `id` in `cache` (a loadable tiny BERT); returns its path.
fn snapshot(cache: &Path, id: &str, commit: &str) -> PathBuf {
    let dir = repo_dir(cache, id).join("snapshots").join(commit);
    std::fs::create_dir_all(&dir).unwrap();
    write_tiny_model(&dir);
    dir
}

/// Points `refs/<name>` of `id` at `commit`, with the trailing newline some writers add.
fn set_ref(cache: &Path, id: &str, name: &str, commit: &str) {
    let path = repo_dir(cache, id).join("refs").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("{commit}\n")).unwrap();
}

/// A resolver over `caches` with an empty `MRL_SHARED` under `root`, never downloading.
fn offline(root: &Path, caches: &[&Path]) -> Resolver {
    let shared = root.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    Resolver {
        shared,
        caches: caches.iter().map(|c| c.to_path_buf()).collect(),
        download: DownloadPolicy::Never(NoDownload::Offline),
    }
}

#[test]
fn an_id_follows_refs_main_in_the_first_cache_that_has_it() {
    let tmp = TempDir::new("resolve-refs");
    let empty = tmp.path().join("empty-cache");
    let cache = tmp.path().join("hub");
    std::fs::create_dir_all(&empty).unwrap();
    snapshot(&cache, ID, "0ld");
    let want = snapshot(&cache, ID, "c9745ed1");
    set_ref(&cache, ID, "main", "c9745ed1");

    let resolver = offline(tmp.path(), &[&empty, &cache]);
    let got = resolver.resolve(ID).unwrap();
    assert_eq!(got, want);
    // What it resolved to loads.
    #[allow(deprecated)]
    let device = burn::tensor::Device::ndarray();
    let encoder = SentenceEncoder::load(&got, &device, &EncoderOptions::default()).unwrap();
    assert_eq!(encoder.dir(), want.as_path());
}

#[test]
fn a_revision_suffix_picks_a_ref_or_a_commit_and_skips_mrl_shared() {
    let tmp = TempDir::new("resolve-rev");
    let cache = tmp.path().join("hub");
    let main = snapshot(&cache, ID, "aaaa");
    let tagged = snapshot(&cache, ID, "bbbb");
    let old = snapshot(&cache, ID, "cccc");
    set_ref(&cache, ID, "main", "aaaa");
    set_ref(&cache, ID, "v1", "bbbb");
    let resolver = offline(tmp.path(), &[&cache]);
    // The shared copy is used for the plain id only: its revision is unknown.
    let in_shared = resolver.shared.join("models/all-MiniLM-L6-v2");
    std::fs::create_dir_all(&in_shared).unwrap();

    assert_eq!(resolver.resolve(ID).unwrap(), in_shared);
    assert_eq!(resolver.resolve(&format!("{ID}@main")).unwrap(), main);
    assert_eq!(resolver.resolve(&format!("{ID}@v1")).unwrap(), tagged);
    assert_eq!(resolver.resolve(&format!("{ID}@cccc")).unwrap(), old);

    let err = resolver.resolve(&format!("{ID}@v2")).unwrap_err();
    let message = err.to_string();
    let expected = repo_dir(&cache, ID).join("snapshots/v2");
    assert!(
        message.contains(&format!("{} (no such directory)", expected.display())),
        "{message}"
    );
    assert!(
        !message.contains(&in_shared.display().to_string()),
        "@revision does not look in MRL_SHARED: {message}"
    );
    assert!(
        message.contains(&format!("hf download {ID} --revision v2")),
        "{message}"
    );
}

#[test]
fn a_snapshot_missing_a_file_is_reported_not_loaded() {
    let tmp = TempDir::new("resolve-partial");
    let partial_cache = tmp.path().join("partial");
    let full_cache = tmp.path().join("full");
    let partial = snapshot(&partial_cache, ID, "dddd");
    set_ref(&partial_cache, ID, "main", "dddd");
    std::fs::remove_file(partial.join("model.safetensors")).unwrap();

    // Only the partial snapshot: not found, and the listing says what is missing.
    let err = offline(tmp.path(), &[&partial_cache])
        .resolve(ID)
        .unwrap_err();
    let ModelError::NotFound {
        searched, download, ..
    } = &err
    else {
        panic!("expected NotFound, got {err}");
    };
    assert_eq!(*download, NoDownload::Offline);
    assert_eq!(
        searched.last(),
        Some(&Place {
            path: partial.clone(),
            problem: Problem::Incomplete(vec!["model.safetensors (or a *.gguf)".into()]),
        })
    );
    assert!(
        err.to_string()
            .contains("(incomplete: no model.safetensors (or a *.gguf))"),
        "{err}"
    );

    // A later cache with the whole snapshot wins.
    let full = snapshot(&full_cache, ID, "dddd");
    set_ref(&full_cache, ID, "main", "dddd");
    let got = offline(tmp.path(), &[&partial_cache, &full_cache])
        .resolve(ID)
        .unwrap();
    assert_eq!(got, full);

    // A ref whose snapshot is gone.
    set_ref(&full_cache, ID, "main", "eeee");
    let err = offline(tmp.path(), &[&full_cache]).resolve(ID).unwrap_err();
    assert!(err.to_string().contains("snapshots/eeee"), "{err}");
}

#[test]
fn directories_mrl_shared_and_files() {
    let tmp = TempDir::new("resolve-paths");
    let resolver = offline(tmp.path(), &[]);
    // A directory is used as is, whatever it holds.
    assert_eq!(
        resolver.resolve(tmp.path().to_str().unwrap()).unwrap(),
        tmp.path()
    );
    // ${MRL_SHARED} is expanded; $MRL_SHARED/models/<name> is found for an id.
    let shared_model = resolver.shared.join("models/all-MiniLM-L6-v2");
    std::fs::create_dir_all(&shared_model).unwrap();
    assert_eq!(
        resolver
            .resolve("${MRL_SHARED}/models/all-MiniLM-L6-v2")
            .unwrap(),
        shared_model
    );
    assert_eq!(resolver.resolve(ID).unwrap(), shared_model);
    // A file is its own error, not "not found".
    let file = tmp.path().join("model.safetensors");
    std::fs::write(&file, b"not a directory").unwrap();
    let err = resolver.resolve(file.to_str().unwrap()).unwrap_err();
    assert!(
        matches!(&err, ModelError::NotADirectory { path } if *path == file),
        "{err}"
    );
    assert!(
        err.to_string().contains("is a file, not a model directory"),
        "{err}"
    );
    // A path that is not there and is no hub id: checked, not downloaded.
    let err = resolver.resolve("./no/such/dir").unwrap_err();
    assert!(
        matches!(
            &err,
            ModelError::NotFound {
                download: NoDownload::NotAnId,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("neither a directory nor a Hugging Face id"),
        "{err}"
    );
}

/// Environment lookups answered from `vars` only.
fn env_of(vars: Vec<(&'static str, OsString)>) -> impl Fn(&str) -> Option<OsString> {
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

#[test]
fn offline_mode_never_opens_a_connection() {
    let tmp = TempDir::new("resolve-offline");
    // A listening socket as the endpoint: any connection attempt would be queued on it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let cache = tmp.path().join("hub");
    let shared = tmp.path().join("shared");
    let resolver = Resolver::from_env_with(env_of(vec![
        ("HF_HUB_OFFLINE", "1".into()),
        ("HF_ENDPOINT", endpoint.clone().into()),
        ("HF_HUB_CACHE", cache.clone().into()),
        ("MRL_SHARED", shared.clone().into()),
    ]));
    assert_eq!(resolver.caches, vec![cache.clone()]);
    assert_eq!(
        resolver.download,
        DownloadPolicy::Never(NoDownload::Offline)
    );

    let start = Instant::now();
    let err = resolver.resolve(ID).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2), "immediately");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("offline mode connected to {endpoint}: {other:?}"),
    }
    // Every place looked in, in order, and how to fetch the model.
    let message = err.to_string();
    let places = [
        PathBuf::from(ID),
        shared.join("models/all-MiniLM-L6-v2"),
        repo_dir(&cache, ID).join("snapshots/main"),
    ];
    let mut at = 0;
    for place in &places {
        let needle = format!("  - {} (no such directory)", place.display());
        let found = message[at..]
            .find(&needle)
            .unwrap_or_else(|| panic!("{needle} missing or out of order in:\n{message}"));
        at += found + needle.len();
    }
    assert!(
        message.starts_with(&format!("model `{ID}` not found; looked in:")),
        "{message}"
    );
    assert!(
        message.contains("Nothing was downloaded: HF_HUB_OFFLINE is set")
            && message.contains(&format!("`hf download {ID}`"))
            && message.contains(&format!("downloaded into {}", cache.display())),
        "{message}"
    );
}

#[test]
fn without_offline_mode_a_missing_id_is_fetched_or_the_failure_is_listed() {
    let tmp = TempDir::new("resolve-online");
    // A port with nobody listening: the download attempt is refused at once.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let cache = tmp.path().join("hub");
    let resolver = Resolver::from_env_with(env_of(vec![
        ("HF_ENDPOINT", endpoint.clone().into()),
        ("HF_HUB_CACHE", cache.clone().into()),
        ("MRL_SHARED", tmp.path().join("shared").into()),
    ]));
    let err = resolver.resolve(ID).unwrap_err();
    let ModelError::NotFound { download, .. } = &err else {
        panic!("expected NotFound, got {err}");
    };
    if cfg!(feature = "hub") {
        assert!(
            matches!(download, NoDownload::Failed { endpoint: e, .. } if *e == endpoint),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains(&format!("Downloading it from {endpoint} failed")),
            "{err}"
        );
    } else {
        assert_eq!(*download, NoDownload::HubDisabled, "{err}");
        assert!(err.to_string().contains("no `hub` feature"), "{err}");
    }
}
