//! Helpers shared by the test files: devices, the RNG lock, temp dirs, the tiny run.

use std::path::Path;

use burn::tensor::Device;
use tiny_models as tiny;
use training::embedding::EmbeddingConfig;
use training::TrainError;

#[allow(clippy::vec_init_then_push)] // the pushes are feature-gated
pub fn devices() -> Vec<(&'static str, Device)> {
    let mut out = Vec::new();
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    out.push(("ndarray", Device::ndarray()));
    #[cfg(feature = "flex")]
    out.push(("flex", Device::flex()));
    assert!(!out.is_empty(), "no CPU device compiled in");
    out
}

/// Burn's CPU backends seed one process-wide RNG: tests that train hold this lock so that
/// another test's random draws cannot interleave with theirs (dropout replay).
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub use test_support::TempDir;

/// A tiny model, corpus and dev set under `root`; returns the TOML config text.
pub fn tiny_setup(root: &Path, device: &Device, objective: &str, extra: &str) -> String {
    let model = root.join("model");
    tiny::write_tiny_model(&model, 7, device).unwrap();
    std::fs::write(root.join("corpus.txt"), tiny::tiny_sentences(40).join("\n")).unwrap();
    std::fs::write(root.join("dev.tsv"), tiny::tiny_sts_tsv(24)).unwrap();
    format!(
        r#"
seed = 3
output_dir = "{out}"
[model]
path = "{model}"
max_length = 16
[data]
path = "{corpus}"
format = "sentences"
[objective]
{objective}
[optimizer]
lr = 1e-3
warmup_steps = 2
[training]
batch_size = 8
steps = 6
[eval]
dev = "{dev}"
before = false
[checkpoint]
every = 0
keep = 2
{extra}
"#,
        out = root.join("out").display(),
        model = model.display(),
        corpus = root.join("corpus.txt").display(),
        dev = root.join("dev.tsv").display(),
    )
}

pub const MIPIC: &str = r#"kind = "mipic"
dims = [8, 16, 32]
sia_layers = [1, 2]
chain = [[8, 1], [32, 2]]"#;

pub fn parse(text: &str) -> Result<EmbeddingConfig, TrainError> {
    EmbeddingConfig::from_toml_str(text, Path::new("test.toml"), &[])
}

pub const MINIMAL: &str = r#"
output_dir = "o"
[model]
path = "m"
[data]
path = "d.txt"
format = "sentences"
[objective]
kind = "mrl"
[training]
steps = 10
"#;
