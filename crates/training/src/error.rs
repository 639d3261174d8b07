//! Errors of training: every variant names the file, config key or step it is about.

use std::path::PathBuf;

/// Everything that can stop a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TOML config does not parse (unknown key, wrong type, …); the message names the key.
    #[error("config {path}: {message}")]
    ConfigSyntax {
        /// The config file (or `<string>`).
        path: PathBuf,
        /// The parser's message, which names the offending key and its line.
        message: String,
    },
    /// A config value is out of range or inconsistent with another.
    #[error("config key `{key}`: {message}")]
    ConfigValue {
        /// The dotted key, e.g. `optimizer.lr`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A data file is malformed.
    #[error("data {path}, line {line}: {message}")]
    Data {
        /// The data file.
        path: PathBuf,
        /// 1-based line number (0 when the problem is the whole file).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A model could not be found or loaded.
    #[error(transparent)]
    Model(#[from] models::ModelError),
    /// A shared value (device, pooling, dims) is not usable.
    #[error(transparent)]
    Common(#[from] mrl_common::CommonError),
    /// A loss rejected its inputs or config.
    #[error(transparent)]
    Loss(#[from] mrl_core::MrlError),
    /// A checkpoint is missing, incomplete or corrupt.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint directory or file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// `--resume` with a config whose training-relevant keys differ from the run that wrote
    /// the checkpoint.
    #[error(
        "cannot resume from {checkpoint}: the config differs from the run that wrote it in {}; \
         resume with that run's config (evaluation and checkpoint settings may change) or start \
         afresh in another output_dir",
        keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
    )]
    ResumeConfig {
        /// The checkpoint directory.
        checkpoint: PathBuf,
        /// The dotted keys that differ.
        keys: Vec<String>,
    },
    /// The loss (or one of its terms) became NaN or infinite.
    #[error("non-finite loss at step {step}: term `{term}` = {value}; stopping (lower the learning rate or check the data)")]
    NonFiniteLoss {
        /// The 1-based optimisation step.
        step: usize,
        /// The name of the first non-finite term (e.g. `mrl/dim_8`, or `total`).
        term: String,
        /// Its value.
        value: f64,
    },
    /// The teacher cache is missing, stale or corrupt.
    #[error("teacher cache {dir}: {message}")]
    Cache {
        /// The cache directory (or shard).
        dir: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A data file of the evaluation crate's formats (instruction JSONL) is missing or
    /// malformed (the file and line are named).
    #[error(transparent)]
    Records(#[from] mrl_eval::EvalError),
    /// The dev-set evaluation failed.
    #[error("dev evaluation: {0}")]
    Eval(String),
}

/// `Result` with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;

/// An [`TrainError::Io`] for `path`.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.into();
    move |source| TrainError::Io { path, source }
}
