//! [`Backbone`]: the network behind an embedding — a BERT-family encoder or a Llama-family
//! decoder — as one Burn [`Module`], so the same value is evaluated by
//! [`SentenceEncoder`](crate::SentenceEncoder) and trained by an optimizer.
//!
//! Which architecture a directory holds is read from `model_type` in `config.json` (a
//! directory with only a `*.gguf` file is a decoder).

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::bert::{BertConfig, BertInput, BertModel};
use crate::error::{read_json, ModelError, Result};
use crate::llama::{LayerSelection, LlamaConfig, LlamaInput, LlamaModel, LlamaVariant};
use mrl_common::Pooling;

/// `model_type`s loaded as a BERT-family encoder.
pub const ENCODER_TYPES: [&str; 3] = ["bert", "roberta", "xlm-roberta"];
/// `model_type`s loaded as a Llama-family decoder.
pub const DECODER_TYPES: [&str; 4] = ["llama", "mistral", "qwen2", "qwen3"];

/// A BERT-family encoder with its architecture.
#[derive(Module, Debug)]
pub struct EncoderBackbone {
    /// The encoder.
    pub model: BertModel,
    /// Its architecture (not a parameter).
    #[module(skip)]
    pub config: BertConfig,
}

/// A Llama-family decoder with its architecture (its output head is not used for embedding).
#[derive(Module, Debug)]
pub struct DecoderBackbone {
    /// The decoder.
    pub model: LlamaModel,
    /// Its architecture (not a parameter).
    #[module(skip)]
    pub config: LlamaConfig,
}

/// The network that turns tokens into hidden states: one [`Module`] whichever the
/// architecture, so trainers and evaluators hold one type.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Backbone {
    /// A BERT-family encoder (bidirectional attention; mean or CLS pooling; dropout active on
    /// an autodiff device).
    Bert(EncoderBackbone),
    /// A Llama-family decoder used as an embedder (causal attention, so only the last real
    /// token has seen the whole text: last-token pooling by default, as Qwen3-Embedding).
    Decoder(DecoderBackbone),
}

impl Backbone {
    /// A BERT-family backbone.
    pub fn bert(model: BertModel, config: BertConfig) -> Self {
        Backbone::Bert(EncoderBackbone { model, config })
    }

    /// A Llama-family backbone.
    pub fn decoder(model: LlamaModel, config: LlamaConfig) -> Self {
        Backbone::Decoder(DecoderBackbone { model, config })
    }

    /// Reads `model_type` from `dir/config.json` and loads the matching network onto `device`
    /// (every layer of a decoder).
    ///
    /// # Errors
    /// A [`ModelError`] naming the missing or malformed file, or an unsupported `model_type`
    /// (listing the supported ones).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config_path = dir.join(crate::bert::CONFIG_FILE);
        let is_decoder = if config_path.is_file() {
            let json: serde_json::Value = read_json(&config_path)?;
            match json.get("model_type").and_then(|v| v.as_str()) {
                None => false,
                Some(t) if ENCODER_TYPES.contains(&t) => false,
                Some(t) if DECODER_TYPES.contains(&t) => true,
                Some(other) => {
                    return Err(ModelError::Unsupported {
                        path: config_path,
                        message: format!(
                            "model_type `{other}` (encoders: {}; decoders: {})",
                            ENCODER_TYPES.join(", "),
                            DECODER_TYPES.join(", ")
                        ),
                    })
                }
            }
        } else {
            crate::llama::weights::find_gguf(dir)?.is_some()
        };
        if is_decoder {
            let (config, model) = LlamaModel::from_pretrained(dir, LayerSelection::All, device)?;
            Ok(Self::decoder(model, config))
        } else {
            let (config, model) = BertModel::from_pretrained(dir, device)?;
            Ok(Self::bert(model, config))
        }
    }

    /// Width of every hidden state (and of the pooled embedding).
    pub fn hidden_size(&self) -> usize {
        match self {
            Backbone::Bert(b) => b.config.hidden_size,
            Backbone::Decoder(d) => d.config.hidden_size,
        }
    }

    /// Number of transformer layers.
    pub fn num_layers(&self) -> usize {
        match self {
            Backbone::Bert(b) => b.model.num_layers(),
            Backbone::Decoder(d) => d.model.num_layers(),
        }
    }

    /// Longest input the position encoding covers (for the RoBERTa family, whose positions
    /// start after the padding id, fewer than `max_position_embeddings`: see
    /// [`BertConfig::max_sequence_length`]).
    pub fn max_position_embeddings(&self) -> usize {
        match self {
            Backbone::Bert(b) => b.config.max_sequence_length(),
            Backbone::Decoder(d) => d.config.max_position_embeddings,
        }
    }

    /// The `model_type`: `bert`, `roberta`, `xlm-roberta`, or the decoder family (`llama`,
    /// `qwen2`, `qwen3`).
    pub fn architecture(&self) -> &'static str {
        match self {
            Backbone::Bert(b) => b.config.variant.model_type(),
            Backbone::Decoder(d) => match d.config.variant {
                LlamaVariant::Llama => "llama",
                LlamaVariant::Qwen2 => "qwen2",
                LlamaVariant::Qwen3 => "qwen3",
            },
        }
    }

    /// Whether this is a decoder (causal attention).
    pub fn is_decoder(&self) -> bool {
        matches!(self, Backbone::Decoder(_))
    }

    /// The pooling used when neither the caller nor `1_Pooling/config.json` chooses one: mean
    /// for an encoder, last-token for a decoder.
    pub fn default_pooling(&self) -> Pooling {
        match self {
            Backbone::Bert(_) => Pooling::Mean,
            Backbone::Decoder(_) => Pooling::LastToken,
        }
    }

    /// Every hidden state of one batch (Hugging Face convention: index 0 the embeddings, index
    /// `l` the output of layer `l`; for a decoder the last one is taken after the final norm).
    /// Segment ids are ignored by decoders. Dropout is active on an autodiff device (encoders;
    /// decoders have none), so two passes give two SimCSE views.
    ///
    /// # Shapes
    /// - `input`: `[batch, seq]` ids and mask, right-padded
    /// - output: `num_layers + 1` tensors `[batch, seq, hidden]`
    pub fn hidden_states(&self, input: BertInput) -> Vec<Tensor<3>> {
        match self {
            Backbone::Bert(b) => b.model.forward(input, false).hidden_states,
            Backbone::Decoder(d) => {
                let input = LlamaInput {
                    input_ids: input.input_ids,
                    attention_mask: input.attention_mask,
                };
                d.model.forward_hidden(input, false).hidden_states
            }
        }
    }

    /// The BERT-family encoder, if that is the backbone.
    pub fn as_bert(&self) -> Option<&EncoderBackbone> {
        match self {
            Backbone::Bert(b) => Some(b),
            Backbone::Decoder(_) => None,
        }
    }

    /// The Llama-family decoder, if that is the backbone.
    pub fn as_decoder(&self) -> Option<&DecoderBackbone> {
        match self {
            Backbone::Decoder(d) => Some(d),
            Backbone::Bert(_) => None,
        }
    }
}
