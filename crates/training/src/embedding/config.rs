//! The TOML config of an embedding run (`mrl train`): every section rejects unknown keys,
//! and [`EmbeddingConfig::validate`] names the key of any bad value.
//!
//! ```toml
//! seed = 42
//! device = "flex"                  # flex | ndarray | wgpu
//! output_dir = "runs/mipic-minilm"
//!
//! [model]
//! path = "sentence-transformers/all-MiniLM-L6-v2"   # a directory, or a Hugging Face id
//! max_length = 64
//!
//! [data]
//! path = "data/stsb_train_sentences.txt"
//! format = "sentences"             # sentences | pairs | triplets | scored_pairs
//!
//! [objective]
//! kind = "mipic"                   # mrl | ese | 2d | mipic: the objective's own keys follow
//! preset = "minilm-l6"
//!
//! [optimizer]
//! lr = 2e-5
//!
//! [training]
//! batch_size = 16
//! steps = 300                      # or epochs = 1
//! ```
//!
//! Paths may contain `${MRL_SHARED}` (the environment variable, default `../shared`);
//! relative paths are relative to the working directory.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{
    bad, default_true, expand_path, CheckpointSection, LoopSettings, OptimizerSection,
    TrainingSection,
};
use crate::embedding::objectives::ObjectiveSection;
use crate::error::Result;
use mrl_common::DeviceKind;

/// A whole embedding-training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// Seed of the data order, dropout and loss sampling. Default `42` (MIPIC Table 7).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Backend: `flex` (default), `ndarray`, `wgpu` or `cuda` (each needs its cargo feature).
    #[serde(default)]
    pub device: DeviceKind,
    /// Where checkpoints, the exported model and the report go.
    pub output_dir: String,
    /// The model to train (BERT family or Llama family).
    pub model: ModelSection,
    /// The training corpus.
    pub data: DataSection,
    /// The loss: `kind` and that objective's keys.
    pub objective: ObjectiveSection,
    /// AdamW and the learning-rate schedule.
    #[serde(default)]
    pub optimizer: OptimizerSection,
    /// Batch size and length of the run.
    pub training: TrainingSection,
    /// Dev-set evaluation during training (optional).
    #[serde(default)]
    pub eval: Option<EvalSection>,
    /// Checkpointing.
    #[serde(default)]
    pub checkpoint: CheckpointSection,
}

fn default_seed() -> u64 {
    42
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A model directory (Hugging Face layout) or a Hugging Face id such as
    /// `sentence-transformers/all-MiniLM-L6-v2` (see [`models::resolve_model`]).
    pub path: String,
    /// Truncation length in tokens during training. Default `128`.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// `mean`, `cls` or `last_token`; default: the model's `1_Pooling/config.json`, else mean
    /// for an encoder and last-token for a decoder.
    #[serde(default)]
    pub pooling: Option<String>,
}

fn default_max_length() -> usize {
    128
}

/// How the lines of the data file are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    /// One sentence per line, or one TSV column (`column`): unsupervised SimCSE.
    Sentences,
    /// `anchor<TAB>positive`: in-batch negatives (MNRL).
    Pairs,
    /// `anchor<TAB>positive<TAB>negative`: MNRL with a hard negative.
    Triplets,
    /// `score<TAB>sentence1<TAB>sentence2`: CoSENT.
    ScoredPairs,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// The data file (UTF-8); or `sources` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A corpus pooled from several files (`format = "sentences"` only), instead of `path`:
    /// the texts of every source's columns, duplicates dropped (first occurrence kept), then
    /// shuffled with `shuffle_seed` before `max_examples` is taken — so a cap draws from every
    /// source, and the draw is the same for every run seed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceSection>,
    /// Seed of the shuffle of a pooled corpus (`sources`). Default `0`.
    #[serde(default)]
    pub shuffle_seed: u64,
    /// Its format.
    pub format: DataFormat,
    /// For `sentences`: read this 0-based TSV column instead of the whole line.
    #[serde(default)]
    pub column: Option<usize>,
    /// Columns of `pairs` / `triplets` / `scored_pairs` start here (0-based). Default `0`.
    #[serde(default)]
    pub first_column: usize,
    /// Skip the first line (a header). Default `false`.
    #[serde(default)]
    pub skip_header: bool,
    /// Use only the first N examples (after de-duplication for `sentences`).
    #[serde(default)]
    pub max_examples: Option<usize>,
}

/// One file of a pooled corpus (`[[data.sources]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// The file (UTF-8, `${MRL_SHARED}` expanded).
    pub path: String,
    /// The 0-based TSV columns whose texts are taken, in order (`[]`: the whole line).
    #[serde(default)]
    pub columns: Vec<usize>,
    /// Skip the first line (a header). Default `false`.
    #[serde(default)]
    pub skip_header: bool,
}

/// `[eval]`: STS dev set, Spearman at every dim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// STS TSV (`score<TAB>sentence1<TAB>sentence2`, one header line).
    pub dev: String,
    /// Evaluate every N steps (and at the end); `0` = only before and after training.
    #[serde(default)]
    pub every: usize,
    /// Dims to report. Default: the objective's dims.
    #[serde(default)]
    pub dims: Option<Vec<usize>>,
    /// Sentences per forward pass. Default `64`.
    #[serde(default = "default_eval_batch")]
    pub batch_size: usize,
    /// Evaluate before training too. Default `true`.
    #[serde(default = "default_true")]
    pub before: bool,
}

fn default_eval_batch() -> usize {
    64
}

impl EmbeddingConfig {
    /// Reads and validates a TOML config, applying `overrides` (`key.path=value`, the value in
    /// TOML syntax or a bare string) first.
    ///
    /// # Errors
    /// [`TrainError::Io`](crate::TrainError::Io), [`TrainError::ConfigSyntax`](crate::TrainError::ConfigSyntax)
    /// (unknown key, wrong type, unknown objective kind: the message names the key),
    /// [`TrainError::ConfigValue`](crate::TrainError::ConfigValue) (see [`EmbeddingConfig::validate`]).
    pub fn from_file(path: &Path, overrides: &[String]) -> Result<Self> {
        let config: Self = crate::config::read_toml(path, overrides)?;
        config.validate()?;
        Ok(config)
    }

    /// [`EmbeddingConfig::from_file`] on a string; `origin` names it in errors.
    ///
    /// # Errors
    /// As [`EmbeddingConfig::from_file`].
    pub fn from_toml_str(text: &str, origin: &Path, overrides: &[String]) -> Result<Self> {
        let config: Self = crate::config::parse_toml(text, origin, overrides)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value that the types do not (what depends on the model — dims against
    /// the hidden size, layers against the depth — is checked when the objective is built).
    ///
    /// # Errors
    /// [`TrainError::ConfigValue`](crate::TrainError::ConfigValue) naming the key: the
    /// `[optimizer]`, `[training]` (batch size < 2: in-batch negatives) and `[checkpoint]`
    /// checks, `max_length` < 2, an unknown pooling, empty paths, the objective's own checks
    /// (see [`ObjectiveSection::validate`]), eval batch size or dims.
    pub fn validate(&self) -> Result<()> {
        self.optimizer.validate()?;
        self.training
            .validate(2, "in-batch negatives need two examples")?;
        self.checkpoint.validate()?;
        mrl_common::limits::check_max_length(self.model.max_length)
            .map_err(|m| bad("model.max_length", m))?;
        if let Some(p) = &self.model.pooling {
            p.parse::<models::Pooling>()
                .map_err(|e| bad("model.pooling", e.to_string()))?;
        }
        if self.model.path.trim().is_empty() {
            return Err(bad("model.path", "is empty"));
        }
        if self.output_dir.trim().is_empty() {
            return Err(bad("output_dir", "is empty"));
        }
        self.objective.validate(self.data.format)?;
        match (&self.data.path, self.data.sources.is_empty()) {
            (None, true) => {
                return Err(bad(
                    "data.path",
                    "is missing: give the data file, or `[[data.sources]]` to pool several",
                ))
            }
            (Some(_), false) => {
                return Err(bad(
                    "data.sources",
                    "give either `path` or `sources`, not both",
                ))
            }
            (Some(path), true) if path.trim().is_empty() => {
                return Err(bad("data.path", "is empty"));
            }
            _ => {}
        }
        if !self.data.sources.is_empty() {
            if self.data.format != DataFormat::Sentences {
                return Err(bad(
                    "data.sources",
                    "pools sentences: it needs format = \"sentences\"",
                ));
            }
            if self.data.column.is_some() || self.data.skip_header {
                return Err(bad(
                    "data.sources",
                    "each source has its own `columns` and `skip_header`; remove them from [data]",
                ));
            }
            for (i, s) in self.data.sources.iter().enumerate() {
                if s.path.trim().is_empty() {
                    return Err(bad(&format!("data.sources[{i}].path"), "is empty"));
                }
                let mut seen = std::collections::BTreeSet::new();
                if let Some(c) = s.columns.iter().find(|c| !seen.insert(**c)) {
                    return Err(bad(
                        &format!("data.sources[{i}].columns"),
                        format!("column {c} is listed twice"),
                    ));
                }
            }
        }
        if self.data.max_examples == Some(0) {
            return Err(bad("data.max_examples", "must be >= 1"));
        }
        if self.data.column.is_some() && self.data.format != DataFormat::Sentences {
            return Err(bad(
                "data.column",
                "only applies to format = \"sentences\" (use first_column)",
            ));
        }
        if let Some(eval) = &self.eval {
            if eval.batch_size == 0 {
                return Err(bad("eval.batch_size", "must be >= 1"));
            }
            if let Some(dims) = &eval.dims {
                mrl_common::limits::check_dims(dims).map_err(|m| bad("eval.dims", m))?;
            }
        }
        Ok(())
    }

    /// `output_dir` with `${MRL_SHARED}` expanded.
    pub fn output_dir(&self) -> std::path::PathBuf {
        expand_path(&self.output_dir)
    }

    /// What the training loop reads, for data of `batches_per_epoch` batches.
    pub fn loop_settings(&self, batches_per_epoch: usize) -> LoopSettings {
        LoopSettings {
            seed: self.seed,
            optimizer: self.optimizer.clone(),
            total_steps: self.training.total_steps(batches_per_epoch),
            log_every: self.training.log_every,
            checkpoint: self.checkpoint.clone(),
            eval_every: self.eval.as_ref().map_or(0, |e| e.every),
            eval_before: self.eval.as_ref().is_some_and(|e| e.before),
            output_dir: self.output_dir(),
        }
    }
}
