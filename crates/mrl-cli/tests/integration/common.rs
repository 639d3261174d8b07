//! Helpers shared by the `mrl` binary tests.

use std::process::{Command, Output};

pub use test_support::{shared_path, TempDir};

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
