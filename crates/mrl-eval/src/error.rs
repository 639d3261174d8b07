//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading evaluation data or scoring embeddings.
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
}

/// Shorthand for results of this crate.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;
