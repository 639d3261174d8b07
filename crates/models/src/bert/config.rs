//! [`BertConfig`]: the architecture hyper-parameters, read from a Hugging Face `config.json`.

use std::path::Path;

use burn::config::Config;
use burn::tensor::Device;
use serde::Deserialize;

use super::model::BertModel;
use crate::error::{read_json, ModelError, Result};

/// The activation of the feed-forward block (`hidden_act` in `config.json`).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum HiddenAct {
    /// Exact GELU, `x · Φ(x)` with the error function (`"gelu"`, what BERT and MiniLM use).
    Gelu,
    /// The tanh approximation of GELU (`"gelu_new"`, `"gelu_pytorch_tanh"`).
    GeluTanh,
    /// `max(x, 0)` (`"relu"`).
    Relu,
}

/// Architecture of a BERT-family encoder (BERT, MiniLM, TinyBERT, BGE-en).
///
/// Field names and defaults follow `transformers.BertConfig`; build one from a checkpoint with
/// [`BertConfig::from_hf_json`], or by hand with [`BertConfig::new`] and the `with_*` setters.
#[derive(Config, Debug)]
pub struct BertConfig {
    /// Number of rows of the word-embedding table.
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Number of attention heads; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Width of the feed-forward block.
    pub intermediate_size: usize,
    /// Number of learned positions (the longest input the model accepts). Default: 512.
    #[config(default = 512)]
    pub max_position_embeddings: usize,
    /// Number of token-type (segment) embeddings. Default: 2.
    #[config(default = 2)]
    pub type_vocab_size: usize,
    /// Epsilon of every LayerNorm. Default: 1e-12.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Dropout after the embeddings and after each residual projection. Default: 0.1.
    #[config(default = 0.1)]
    pub hidden_dropout_prob: f64,
    /// Dropout on the attention probabilities. Default: 0.1.
    #[config(default = 0.1)]
    pub attention_probs_dropout_prob: f64,
    /// Feed-forward activation. Default: exact GELU.
    #[config(default = "HiddenAct::Gelu")]
    pub hidden_act: HiddenAct,
}

/// The subset of `transformers.BertConfig` that this crate reads, with the library's defaults.
#[derive(Deserialize)]
struct HfBertConfig {
    #[serde(default)]
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "default_max_positions")]
    max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    type_vocab_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_dropout")]
    hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    attention_probs_dropout_prob: f64,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default)]
    position_embedding_type: Option<String>,
}

fn default_max_positions() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_dropout() -> f64 {
    0.1
}
fn default_act() -> String {
    "gelu".to_string()
}

impl BertConfig {
    /// Reads a Hugging Face `config.json` of a BERT-family model.
    ///
    /// # Errors
    /// [`ModelError::Io`] if the file cannot be read, [`ModelError::Config`] if a required field
    /// is missing or has the wrong type, [`ModelError::Unsupported`] for a non-BERT `model_type`,
    /// an unknown `hidden_act`, a non-absolute `position_embedding_type`, or heads that do not
    /// divide the hidden size.
    pub fn from_hf_json(path: &Path) -> Result<Self> {
        let hf: HfBertConfig = read_json(path)?;
        let unsupported = |message: String| ModelError::Unsupported {
            path: path.to_path_buf(),
            message,
        };
        if let Some(model_type) = &hf.model_type {
            if !matches!(model_type.as_str(), "bert" | "BertModel") {
                return Err(unsupported(format!(
                    "model_type `{model_type}` is not a BERT-family encoder (expected `bert`)"
                )));
            }
        }
        if let Some(kind) = &hf.position_embedding_type {
            if kind != "absolute" {
                return Err(unsupported(format!(
                    "position_embedding_type `{kind}` (only `absolute` is implemented)"
                )));
            }
        }
        let hidden_act = match hf.hidden_act.as_str() {
            "gelu" => HiddenAct::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => HiddenAct::GeluTanh,
            "relu" => HiddenAct::Relu,
            other => return Err(unsupported(format!("hidden_act `{other}`"))),
        };
        let config = BertConfig::new(
            hf.vocab_size,
            hf.hidden_size,
            hf.num_hidden_layers,
            hf.num_attention_heads,
            hf.intermediate_size,
        )
        .with_max_position_embeddings(hf.max_position_embeddings)
        .with_type_vocab_size(hf.type_vocab_size)
        .with_layer_norm_eps(hf.layer_norm_eps)
        .with_hidden_dropout_prob(hf.hidden_dropout_prob)
        .with_attention_probs_dropout_prob(hf.attention_probs_dropout_prob)
        .with_hidden_act(hidden_act);
        config.validate().map_err(unsupported)?;
        Ok(config)
    }

    /// Checks the invariants [`BertConfig::init`] relies on; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "num_attention_heads {} does not divide hidden_size {}",
                self.num_attention_heads, self.hidden_size
            ));
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{name} {p} is not in [0, 1)"));
            }
        }
        Ok(())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Builds a randomly initialised model on `device` (load weights with
    /// [`BertModel::load_safetensors`]).
    ///
    /// # Panics
    /// If [`BertConfig::validate`] fails.
    pub fn init(&self, device: &Device) -> BertModel {
        if let Err(message) = self.validate() {
            panic!("invalid BertConfig: {message}");
        }
        BertModel::new(self, device)
    }
}
