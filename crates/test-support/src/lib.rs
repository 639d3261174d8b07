//! Dev-only helpers of the burn-mrl test binaries (a `[dev-dependencies]` entry only):
//!
//! - [`TempDir`] — a fresh directory under the system temp dir, unique per call, removed on drop;
//! - [`shared_dir`] / [`shared_path`] — the shared models and data (`$MRL_SHARED`, default
//!   `../shared` next to the workspace root). A test that needs them panics with the variable
//!   name and the path when they are missing, so a misconfigured run fails loudly instead of
//!   skipping.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The variable that points at the shared models and data.
pub const SHARED_VAR: &str = "MRL_SHARED";

/// The workspace root (the directory holding the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("test-support lives at crates/test-support")
        .to_path_buf()
}

/// The shared models and data: `$MRL_SHARED` (relative paths are taken from the workspace
/// root), or `../shared` next to the workspace root.
///
/// # Panics
/// When the directory does not exist; the message names `MRL_SHARED` and the path.
pub fn shared_dir() -> PathBuf {
    let value = std::env::var_os(SHARED_VAR);
    let dir = match &value {
        Some(p) => workspace_root().join(p), // `join` keeps an absolute `p` as it is
        None => workspace_root().join("../shared"),
    };
    assert!(
        dir.is_dir(),
        "shared data not found: {} ({}) is not a directory; set {SHARED_VAR} to the shared/ \
         directory that holds models/ and fixtures/",
        dir.display(),
        match &value {
            Some(v) => format!("{SHARED_VAR}={}", Path::new(v).display()),
            None => format!("{SHARED_VAR} unset, default ../shared"),
        },
    );
    dir
}

/// `rel` inside [`shared_dir`], e.g. `shared_path("models/all-MiniLM-L6-v2")`.
///
/// # Panics
/// When the shared directory or `rel` inside it does not exist; the message names
/// `MRL_SHARED` and the path.
pub fn shared_path(rel: impl AsRef<Path>) -> PathBuf {
    let path = shared_dir().join(rel);
    assert!(
        path.exists(),
        "shared data not found: {} does not exist (set {SHARED_VAR} to the shared/ directory)",
        path.display()
    );
    path
}

/// A fresh, empty directory under the system temp dir, removed (with its contents) on drop.
///
/// The name holds the tag, the process id and a per-process counter, so two tests (or two
/// test binaries) running at once never share a directory, even with the same tag.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<temp>/burn-mrl-<tag>-<pid>-<n>`.
    ///
    /// # Panics
    /// When the directory cannot be created.
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("burn-mrl-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path); // left over from a crashed run with this pid
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_dirs_are_unique_and_removed_on_drop() {
        let a = TempDir::new("same");
        let b = TempDir::new("same");
        assert_ne!(a.path(), b.path());
        assert!(a.path().starts_with(std::env::temp_dir()));
        std::fs::write(a.path().join("f"), "x").unwrap();
        let kept = a.path().to_path_buf();
        drop(a);
        assert!(!kept.exists());
        assert!(b.path().is_dir());
    }

    #[test]
    fn the_workspace_root_holds_the_workspace_manifest() {
        assert!(workspace_root()
            .join("crates/test-support/Cargo.toml")
            .is_file());
    }

    #[test]
    #[should_panic(expected = "MRL_SHARED")]
    fn a_missing_shared_path_names_the_variable() {
        // Whatever MRL_SHARED is, this file is not in it (or the directory itself is missing).
        shared_path("no/such/file/in/the/shared/dir");
    }
}
