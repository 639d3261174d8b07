//! The sentence-transformers pipeline of a model directory: the module list of `modules.json`
//! and the Transformer module's `sentence_bert_config.json`.
//!
//! [`SentenceEncoder`](crate::SentenceEncoder) reproduces the pipelines made of a Transformer,
//! a Pooling and optionally a Normalize module, in that order (Normalize does not change a
//! cosine; [`SentenceEncoder::encode`](crate::SentenceEncoder::encode) returns un-normalised
//! vectors). Any other module (Dense, LayerNorm, Router, …) would make the vectors differ from
//! sentence-transformers', so [`read_modules`] rejects it, naming the module.
//!
//! Module types are matched by class name (the last component of `type`), so both the
//! sentence-transformers 2–5 names (`sentence_transformers.models.Pooling`) and the 6.x ones
//! (`sentence_transformers.sentence_transformer.modules.pooling.Pooling`) are recognised.

use std::path::Path;

use serde::Deserialize;

use crate::error::{read_json, ModelError, Result};

/// File name of the module list.
pub const MODULES_FILE: &str = "modules.json";
/// File name of the Transformer module's settings.
pub const SENTENCE_BERT_CONFIG_FILE: &str = "sentence_bert_config.json";

/// What a module of the pipeline does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StModuleKind {
    /// The network (its weights and config are the directory's own).
    Transformer,
    /// Pooling of the token states (`1_Pooling/config.json`).
    Pooling,
    /// L2 normalisation of the sentence vector (no settings that change the result).
    Normalize,
}

/// One entry of `modules.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StModule {
    /// Position in the pipeline.
    pub idx: usize,
    /// Module name (usually the position as text).
    pub name: String,
    /// Directory of the module's files, relative to the model directory (`""` = itself).
    pub path: String,
    /// Python class, e.g. `sentence_transformers.models.Normalize`.
    #[serde(rename = "type")]
    pub type_name: String,
}

impl StModule {
    /// The kind, from the class name; `None` for a module we cannot reproduce.
    pub fn kind(&self) -> Option<StModuleKind> {
        match self.type_name.rsplit('.').next() {
            Some("Transformer") => Some(StModuleKind::Transformer),
            Some("Pooling") => Some(StModuleKind::Pooling),
            Some("Normalize") => Some(StModuleKind::Normalize),
            _ => None,
        }
    }
}

/// The module list of `dir/modules.json`, checked to be Transformer → Pooling (→ Normalize);
/// `Ok(None)` when the directory has no `modules.json` (a plain Hugging Face model).
///
/// # Errors
/// [`ModelError::Config`] if the file is malformed; [`ModelError::Unsupported`] naming the
/// module (name, type and path) when the pipeline has a module other than Transformer, Pooling
/// and Normalize, has them in another order, or keeps the Transformer in a sub-directory.
pub fn read_modules(dir: &Path) -> Result<Option<Vec<StModule>>> {
    let path = dir.join(MODULES_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let modules: Vec<StModule> = read_json(&path)?;
    let describe =
        |m: &StModule| format!("module `{}` ({}, path `{}`)", m.name, m.type_name, m.path);
    let unsupported = |message: String| ModelError::Unsupported {
        path: path.clone(),
        message,
    };
    if let Some(m) = modules.iter().find(|m| m.kind().is_none()) {
        return Err(unsupported(format!(
            "{}: only Transformer, Pooling and Normalize modules can be reproduced; \
             without it the vectors would differ from sentence-transformers'",
            describe(m)
        )));
    }
    let kinds: Vec<StModuleKind> = modules.iter().filter_map(StModule::kind).collect();
    use StModuleKind::{Normalize, Pooling, Transformer};
    if !matches!(
        kinds.as_slice(),
        [Transformer, Pooling] | [Transformer, Pooling, Normalize]
    ) {
        let list: Vec<String> = modules.iter().map(describe).collect();
        return Err(unsupported(format!(
            "the pipeline [{}] is not Transformer → Pooling (→ Normalize)",
            list.join(", ")
        )));
    }
    if !modules[0].path.is_empty() {
        return Err(unsupported(format!(
            "{}: the Transformer must be the model directory itself (path \"\")",
            describe(&modules[0])
        )));
    }
    Ok(Some(modules))
}

/// The fields of `sentence_bert_config.json` that describe the model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SentenceBertConfig {
    /// Truncation length in tokens.
    pub max_seq_length: Option<usize>,
    /// Whether the text is lower-cased before tokenisation.
    pub do_lower_case: Option<bool>,
}

impl SentenceBertConfig {
    /// `dir/sentence_bert_config.json`; `Ok(None)` when the file does not exist.
    ///
    /// # Errors
    /// [`ModelError::Config`] if the file is malformed.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(SENTENCE_BERT_CONFIG_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        read_json(&path).map(Some)
    }
}
