//! Helpers shared by the `mrl` binary tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `$MRL_SHARED` (default `../shared` next to the workspace root); panics naming the path when
/// the shared model is not there, so a missing data directory fails loudly.
pub fn shared_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = match std::env::var_os("MRL_SHARED") {
        Some(p) if Path::new(&p).is_absolute() => PathBuf::from(p),
        Some(p) => workspace.join(p),
        None => workspace.join("../shared"),
    };
    let model = dir.join("models/all-MiniLM-L6-v2/model.safetensors");
    assert!(
        model.is_file(),
        "shared model not found at {} (set MRL_SHARED to the shared/ directory)",
        model.display()
    );
    dir
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mrl-cli-{tag}-{}", std::process::id()));
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

/// The `mrl` binary built for this test, never downloading: `HF_HUB_OFFLINE=1`, and the hub
/// endpoint on a closed local port in case anything ignored that.
pub fn mrl_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mrl"));
    command
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_ENDPOINT", "http://127.0.0.1:9");
    command
}

/// Runs the `mrl` binary built for this test (offline, see [`mrl_command`]).
pub fn mrl(args: &[&str]) -> Output {
    mrl_command().args(args).output().expect("run mrl")
}

/// Lossy UTF-8 of a process output stream.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The standard error of a finished `mrl` run.
pub fn stderr(out: &Output) -> String {
    text(&out.stderr)
}
