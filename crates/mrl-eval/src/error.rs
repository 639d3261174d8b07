//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading evaluation data, generating or scoring.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A data file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A data file has no rows.
    #[error("{0} has no data rows")]
    Empty(PathBuf),
    /// A row (or the header) of a data file is malformed.
    #[error("{}:{line}: {message}", path.display())]
    MalformedRow {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A requested dim is 0 or wider than the embeddings.
    #[error("dim {dim} is not in 1..={width} (the embedding width)")]
    DimTooLarge {
        /// The requested dim.
        dim: usize,
        /// The embeddings' width.
        width: usize,
    },
    /// A correlation is undefined for the given inputs.
    #[error("correlation: {0}")]
    Correlation(String),
    /// The encoder failed.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// An argument of a task runner is outside its domain.
    #[error("invalid {name}: {message}")]
    InvalidArgument {
        /// The argument.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A labelled data file has only one class: no classifier or threshold can be fitted.
    #[error("{}: every row has the label `{label}`; at least two classes are needed", path.display())]
    SingleClass {
        /// The file.
        path: PathBuf,
        /// The one label.
        label: String,
    },
    /// A test row carries a label that no training row has: the probe cannot predict it.
    #[error("{}:{line}: label `{label}` does not occur in the training data {}", path.display(), train.display())]
    UnseenLabel {
        /// The test file.
        path: PathBuf,
        /// 1-based line number in the test file.
        line: usize,
        /// The label.
        label: String,
        /// The training file.
        train: PathBuf,
    },
    /// Text generation failed for one record.
    #[error("generation failed for record {index} (seed {seed}): {message}")]
    Generate {
        /// Index of the record in the data file (0-based).
        index: usize,
        /// The run's seed.
        seed: u64,
        /// The generator's error.
        message: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;
