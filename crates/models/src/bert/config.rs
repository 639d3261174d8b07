//! [`BertConfig`]: the architecture hyper-parameters, read from a Hugging Face `config.json`
//! (`model_type` `bert`, `roberta` or `xlm-roberta`).

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

/// Which member of the BERT family: the members share every layer and differ only in how the
/// position ids are numbered (and in what `config.json` says).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum BertVariant {
    /// BERT, MiniLM, TinyBERT, BGE-en (`model_type = "bert"`): token `t` of every row has
    /// position `t`.
    Bert,
    /// RoBERTa (`"roberta"`): positions count the non-padding tokens from `pad_token_id + 1`
    /// (see [`BertConfig::position_offset`]).
    Roberta,
    /// XLM-RoBERTa (`"xlm-roberta"`: BGE-M3, multilingual-e5): positions as RoBERTa.
    XlmRoberta,
}

impl BertVariant {
    /// The `model_type` of `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            BertVariant::Bert => "bert",
            BertVariant::Roberta => "roberta",
            BertVariant::XlmRoberta => "xlm-roberta",
        }
    }

    /// The `model_type`s read as this family (`BertModel` is what some old exports wrote).
    pub fn from_model_type(model_type: &str) -> Option<Self> {
        match model_type {
            "bert" | "BertModel" => Some(BertVariant::Bert),
            "roberta" => Some(BertVariant::Roberta),
            "xlm-roberta" => Some(BertVariant::XlmRoberta),
            _ => None,
        }
    }

    /// The Hugging Face class of the bare encoder (`architectures` in `config.json`).
    pub fn hf_architecture(self) -> &'static str {
        match self {
            BertVariant::Bert => "BertModel",
            BertVariant::Roberta => "RobertaModel",
            BertVariant::XlmRoberta => "XLMRobertaModel",
        }
    }

    /// `pad_token_id` when `config.json` does not give one (the `transformers` defaults:
    /// 0 for BERT, 1 for RoBERTa and XLM-RoBERTa, whose `<pad>` is token 1).
    pub fn default_pad_token_id(self) -> usize {
        match self {
            BertVariant::Bert => 0,
            BertVariant::Roberta | BertVariant::XlmRoberta => 1,
        }
    }
}

/// Architecture of a BERT-family encoder (BERT, MiniLM, TinyBERT, BGE-en; RoBERTa and
/// XLM-RoBERTa, e.g. BGE-M3).
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
    /// Family member: decides how position ids are numbered. Default: BERT.
    #[config(default = "BertVariant::Bert")]
    pub variant: BertVariant,
    /// Id of the padding token (`pad_token_id`). RoBERTa-style position ids start after it.
    /// Default: 0 (BERT's `[PAD]`).
    #[config(default = 0)]
    pub pad_token_id: usize,
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
    #[serde(default)]
    pad_token_id: Option<usize>,
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
    /// is missing or has the wrong type, [`ModelError::Unsupported`] for a `model_type` other
    /// than `bert`, `roberta` and `xlm-roberta`, an unknown `hidden_act`, a non-absolute
    /// `position_embedding_type`, heads that do not divide the hidden size, or a RoBERTa-style
    /// `pad_token_id` that leaves no position (see [`BertConfig::validate`]).
    pub fn from_hf_json(path: &Path) -> Result<Self> {
        let hf: HfBertConfig = read_json(path)?;
        let unsupported = |message: String| ModelError::Unsupported {
            path: path.to_path_buf(),
            message,
        };
        // No `model_type` at all: a BERT (what this crate read before knowing other members).
        let variant = match &hf.model_type {
            None => BertVariant::Bert,
            Some(model_type) => BertVariant::from_model_type(model_type).ok_or_else(|| {
                unsupported(format!(
                    "model_type `{model_type}` is not a BERT-family encoder \
                     (expected `bert`, `roberta` or `xlm-roberta`)"
                ))
            })?,
        };
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
        .with_hidden_act(hidden_act)
        .with_variant(variant)
        .with_pad_token_id(
            hf.pad_token_id
                .unwrap_or_else(|| variant.default_pad_token_id()),
        );
        config.validate().map_err(unsupported)?;
        Ok(config)
    }

    /// Checks the invariants [`BertConfig::init`] relies on; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
        ] {
            if value == 0 {
                return Err(format!("{name} must be positive"));
            }
        }
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
        if self.max_sequence_length() == 0 {
            return Err(format!(
                "max_position_embeddings {} leaves no position after pad_token_id {} \
                 ({} positions start at pad_token_id + 1)",
                self.max_position_embeddings,
                self.pad_token_id,
                self.variant.model_type()
            ));
        }
        Ok(())
    }

    /// Where the position ids of real tokens start, for the members that number them from the
    /// padding id: `Some(pad_token_id)` for RoBERTa and XLM-RoBERTa, `None` for BERT.
    ///
    /// With `p = pad_token_id` and `m_t = [input_ids_t ≠ p]`, the position of token `t` is
    /// `p + m_t · Σ_{s ≤ t} m_s` (`transformers`' `create_position_ids_from_input_ids`): the
    /// real tokens of a row get `p + 1, p + 2, …` and padding gets `p` (whose embedding row is
    /// never trained), wherever the padding stands.
    pub fn position_offset(&self) -> Option<usize> {
        match self.variant {
            BertVariant::Bert => None,
            BertVariant::Roberta | BertVariant::XlmRoberta => Some(self.pad_token_id),
        }
    }

    /// The longest input (in tokens, special tokens included) the position table covers:
    /// `max_position_embeddings` for BERT, `max_position_embeddings − pad_token_id − 1` for the
    /// RoBERTa members (XLM-R: 514 − 1 − 1 = 512).
    pub fn max_sequence_length(&self) -> usize {
        match self.position_offset() {
            None => self.max_position_embeddings,
            Some(pad) => self.max_position_embeddings.saturating_sub(pad + 1),
        }
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
