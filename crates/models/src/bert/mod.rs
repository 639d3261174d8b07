//! BERT-family encoders (BERT, MiniLM, TinyBERT, BGE-en; RoBERTa and XLM-RoBERTa, e.g. BGE-M3)
//! from Hugging Face checkpoints.
//!
//! The members share every layer; RoBERTa and XLM-RoBERTa number their position ids from
//! `pad_token_id + 1` over the non-padding tokens ([`BertConfig::position_offset`]) and have a
//! single token type.
//!
//! - [`BertConfig`] — from `config.json` (`model_type` `bert`, `roberta`, `xlm-roberta`);
//! - [`BertModel`] — the encoder; [`BertModel::forward`] returns every hidden state and,
//!   on request, every layer's attention probabilities;
//! - [`weights`] — the checked mapping from `model.safetensors` keys to module paths;
//! - [`BertPooler`] — the checkpoint's (unused) pooler, read only to be exported again.

mod config;
mod export;
mod model;
mod pooler;
pub mod weights;

use std::path::Path;

use burn::tensor::Device;

pub use config::{BertConfig, BertVariant, HiddenAct};
pub use export::EXPORT_KEY_REMAPS;
pub use model::{
    AttentionMask, BertAttention, BertEmbeddings, BertEncoder, BertFeedForwardOutput, BertInput,
    BertIntermediate, BertLayer, BertModel, BertOutput, BertSelfAttention, BertSelfOutput,
};
pub use pooler::BertPooler;

use crate::error::{ModelError, Result};

/// File name of the architecture config in a Hugging Face model directory.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the weights in a Hugging Face model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";

impl BertModel {
    /// Reads `dir/config.json` and loads `dir/model.safetensors` onto `device`.
    ///
    /// Returns the config too (callers need the hidden size, max positions, …).
    ///
    /// # Errors
    /// See [`BertConfig::from_hf_json`] and [`BertModel::load_safetensors`]; a missing file is a
    /// [`ModelError::Io`] naming it.
    pub fn from_pretrained(dir: &Path, device: &Device) -> Result<(BertConfig, Self)> {
        let config = BertConfig::from_hf_json(&dir.join(CONFIG_FILE))?;
        let weights = dir.join(WEIGHTS_FILE);
        if !weights.is_file() {
            return Err(ModelError::Io {
                path: weights,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file (only safetensors checkpoints are supported)",
                ),
            });
        }
        let model = BertModel::load_safetensors(&config, &weights, device)?;
        Ok((config, model))
    }
}
