//! `cargo xtask` — everything CI and the benchmarks run.
//!
//! - `cargo xtask ci` — format check; clippy `-D warnings` with default features and with
//!   the wgpu lane ([`WGPU_LANE`]); `cargo check` of `cka-kernels` and `mrl-cli` with `cuda`
//!   (the CUDA kernels and `--device cuda` keep compiling; there is no GPU to run them); every
//!   test of the workspace with the wgpu lane compiled in, so the CKA tests run on ndarray,
//!   flex **and** the `#[cube]` kernels through wgpu (Mesa lavapipe on a CPU-only machine) and a
//!   MIPIC training run is checked on wgpu against flex, ignored tests included (tests that need
//!   `MRL_SHARED` data run and fail loudly when it is missing); the README's main job as on a
//!   fresh machine (its config from the repository root, the model in a Hugging Face cache the
//!   test builds, data from `data/`, two steps); the doc build with warnings denied. One
//!   feature set for clippy and tests keeps it to one Burn build.
//! - `cargo xtask bench cka [ARGS]` — the CKA benchmark (release build); ARGS go to the bench
//!   program, e.g. `--devices flex,ndarray --iters 10`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};
use std::time::Instant;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn run(step: &str, program: &str, args: &[&str], envs: &[(&str, String)]) {
    eprintln!("\n==> {step}: {program} {}", args.join(" "));
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(workspace_root())
        .status()
        .unwrap_or_else(|err| {
            eprintln!("xtask: could not start {program}: {err}");
            exit(2)
        });
    eprintln!("<== {step}: {:.0} s", start.elapsed().as_secs_f64());
    if !status.success() {
        eprintln!("xtask: step `{step}` failed ({status})");
        exit(status.code().unwrap_or(1));
    }
}

fn shared_dir() -> String {
    env::var("MRL_SHARED").unwrap_or_else(|_| {
        workspace_root()
            .join("../shared")
            .to_string_lossy()
            .into_owned()
    })
}

/// The features that add the wgpu device to the CKA tests (the `#[cube]` kernels run on
/// lavapipe) and to the training tests (a MIPIC run on wgpu, CKA kernels inside autodiff).
/// They enable no other Burn feature than `cka-kernels/wgpu` alone, so the lanes share one
/// build of Burn.
const WGPU_LANE: &str = "cka-kernels/wgpu,training/wgpu";

/// The README's main job from the repository root, for two steps, with the model only in a
/// Hugging Face cache built by the test, `MRL_SHARED` empty and `HF_HUB_OFFLINE=1`
/// (`crates/mrl-cli/tests/integration/fresh_machine.rs`): its own step, skipped in `test`.
const FRESH_MACHINE_TEST: &str = "fresh_machine";

/// The CUDA check builds a different CubeCL feature set; its own target dir keeps it from
/// invalidating the main one.
fn cuda_target_dir() -> String {
    let base = env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    base.join("cuda-check").to_string_lossy().into_owned()
}

fn ci() {
    let shared = shared_dir();
    if !Path::new(&shared).join("README.md").exists() {
        eprintln!(
            "xtask ci: MRL_SHARED={shared} does not hold the shared models and data; \
             tests that need them will fail"
        );
    }
    let envs = [("MRL_SHARED", shared)];
    run("fmt", "cargo", &["fmt", "--all", "--", "--check"], &[]);
    run(
        "clippy",
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    );
    run(
        "clippy wgpu",
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--features",
            WGPU_LANE,
            "--",
            "-D",
            "warnings",
        ],
        &[],
    );
    run(
        "check cuda",
        "cargo",
        &[
            "check",
            "-p",
            "cka-kernels",
            "-p",
            "mrl-cli",
            "--features",
            "cuda",
        ],
        // cubecl-cuda 0.11 pulls cubecl-llvm, whose build script downloads an LLVM bundle
        // (no network here); `DOCS_RS` makes it and llvm-sys skip the native set-up, which a
        // type-check does not need.
        &[
            ("CARGO_TARGET_DIR", cuda_target_dir()),
            ("DOCS_RS", "1".to_string()),
        ],
    );
    run(
        "test",
        "cargo",
        &[
            "test",
            "--workspace",
            "--features",
            WGPU_LANE,
            "--",
            "--include-ignored",
            "--skip",
            FRESH_MACHINE_TEST,
        ],
        &envs,
    );
    run(
        "main job on a fresh machine",
        "cargo",
        &[
            "test",
            "--workspace",
            "--features",
            WGPU_LANE,
            "--test",
            "integration",
            FRESH_MACHINE_TEST,
            "--",
            "--include-ignored",
        ],
        &envs,
    );
    run(
        "doc",
        "cargo",
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings".to_string())],
    );
    eprintln!("\nxtask ci: all steps passed");
}

fn bench(args: &[String]) {
    let Some(which) = args.first() else {
        eprintln!("usage: cargo xtask bench cka [ARGS...]");
        exit(2)
    };
    match which.as_str() {
        "cka" => {
            let mut cmd: Vec<&str> = vec![
                "run",
                "--release",
                "-p",
                "cka-kernels",
                "--example",
                "bench_cka",
            ];
            let rest: Vec<&str> = args[1..].iter().map(String::as_str).collect();
            let has_wgpu = rest.iter().any(|a| a.contains("wgpu"));
            if has_wgpu {
                cmd.extend(["--features", "wgpu"]);
            }
            cmd.push("--");
            cmd.extend(rest);
            run("bench cka", "cargo", &cmd, &[]);
        }
        other => {
            eprintln!("xtask bench: unknown benchmark `{other}` (known: cka)");
            exit(2)
        }
    }
}

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <ci | bench cka [ARGS]>");
            exit(2)
        }
    }
}
