//! The error type of this crate: every variant names the file, argument or tensor at fault.

use std::path::PathBuf;

/// Everything that can go wrong while resolving, loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON configuration file is missing a field, has a wrong type or is not JSON.
    #[error("malformed config {path}: {message}")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The checkpoint describes a model this crate does not implement.
    #[error("unsupported model {path}: {message}")]
    Unsupported {
        /// The file that declares the unsupported feature.
        path: PathBuf,
        /// What is not supported.
        message: String,
    },
    /// The weights file cannot be parsed.
    #[error("cannot read weights {path}: {message}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A weight tensor holds a NaN or an infinity.
    #[error(
        "weights {path}: tensor {tensor} has {count} non-finite value(s) (the first is {value}); \
         the file is corrupt or the training that wrote it diverged"
    )]
    NonFiniteWeight {
        /// The weights file.
        path: PathBuf,
        /// The tensor, named as the file names it.
        tensor: String,
        /// How many of its values are NaN or infinite.
        count: usize,
        /// That value.
        value: f32,
    },
    /// A model output that leaves the program (an embedding, a row of logits) holds a NaN or
    /// an infinity.
    #[error("{what} is not finite ({count} NaN or infinite value(s)); the model's weights or inputs produce non-finite activations")]
    NonFiniteOutput {
        /// Which output, e.g. `the embedding of text 3`.
        what: String,
        /// How many of its values are NaN or infinite.
        count: usize,
    },
    /// The weights file parsed, but its tensors do not fit the configured model.
    #[error("weights {path} do not fit the model configured from config.json:{details}")]
    WeightMismatch {
        /// The weights file.
        path: PathBuf,
        /// One line per problem: missing keys, mis-shaped keys (with both shapes), unexpected keys.
        details: String,
    },
    /// The tokenizer file cannot be loaded or configured.
    #[error("cannot load tokenizer {path}: {message}")]
    Tokenizer {
        /// The `tokenizer.json` file.
        path: PathBuf,
        /// The tokenizers crate's message.
        message: String,
    },
    /// Tokenising a batch of texts failed.
    #[error("tokenisation failed: {0}")]
    Encode(String),
    /// A model was found neither as a directory, nor in `$MRL_SHARED/models`, nor in a Hugging
    /// Face cache, and was not downloaded (see [`crate::resolve`]).
    #[error(
        "{}",
        crate::resolve::not_found_message(.spec, .searched, .download, .fetch_into.as_deref())
    )]
    NotFound {
        /// What the user asked for (a path, `org/name` or `org/name@revision`).
        spec: String,
        /// Every place that was tried, in order, with what was wrong with it.
        searched: Vec<crate::resolve::Place>,
        /// Why nothing was downloaded.
        download: crate::resolve::NoDownload,
        /// The cache a download would go to (the first hub cache), if any.
        fetch_into: Option<PathBuf>,
    },
    /// A model path names a file where a model directory is expected.
    #[error(
        "{path} is a file, not a model directory (a directory with config.json, \
         model.safetensors or a *.gguf, and tokenizer.json)"
    )]
    NotADirectory {
        /// The file.
        path: PathBuf,
    },
    /// Pooling or Matryoshka truncation rejected its inputs (a dim out of range, a mask of
    /// the wrong shape, an unknown pooling name).
    #[error(transparent)]
    Common(#[from] mrl_common::CommonError),
    /// A GGUF file cannot be parsed or holds a tensor type that cannot be dequantised.
    #[error("GGUF file {path}: {source}")]
    Gguf {
        /// The GGUF file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: crate::gguf::GgufError,
    },
    /// A prompt does not fit the model's context window.
    #[error(
        "the prompt has {prompt_tokens} tokens; with max_new_tokens = {max_new_tokens} it needs \
         {needed} positions, but the context window is {context} tokens"
    )]
    ContextOverflow {
        /// Tokens in the prompt.
        prompt_tokens: usize,
        /// Requested new tokens.
        max_new_tokens: usize,
        /// `prompt_tokens + max_new_tokens`, or the prompt alone when it already overflows.
        needed: usize,
        /// The model's `max_position_embeddings`.
        context: usize,
    },
    /// An argument has a value outside its domain.
    #[error("invalid {name}: {message}")]
    InvalidArgument {
        /// The argument's name.
        name: &'static str,
        /// Why the value is rejected.
        message: String,
    },
    /// One row of a generation batch is invalid (an empty prompt, a context overflow).
    #[error("batch row {row}: {source}")]
    BatchRow {
        /// The row's index in the batch (0-based).
        row: usize,
        /// What is wrong with it.
        #[source]
        source: Box<ModelError>,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// Reads a file to a string, naming the file in the error.
pub(crate) fn read_to_string(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and parses a JSON file, naming the file in the error.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text = read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| {
        // serde_json names the line, not the key: quote the line, which holds the key.
        let line = text
            .lines()
            .nth(e.line().saturating_sub(1))
            .map(str::trim)
            .filter(|l| !l.is_empty() && e.line() > 0);
        ModelError::Config {
            path: path.to_path_buf(),
            message: match line {
                Some(line) => format!("{e} (`{line}`)"),
                None => e.to_string(),
            },
        }
    })
}
