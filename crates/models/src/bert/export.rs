//! Writing a [`BertModel`] back in the Hugging Face layout: `config.json` and a
//! `model.safetensors` whose keys are the checkpoint's own names.
//!
//! The inverse of [`super::weights`]: Burn's `[in, out]` Linear weights are transposed back to
//! PyTorch's `[out, in]` and LayerNorm `gamma`/`beta` become `weight`/`bias`
//! (`BurnToPyTorchAdapter`), then the module paths are renamed by [`EXPORT_KEY_REMAPS`]
//! (`layer_norm` → `LayerNorm`, `attention.self_attention` → `attention.self`). Keys carry no
//! `bert.` / `roberta.` prefix, as in sentence-transformers checkpoints; the file's metadata says
//! `format = pt`, which `transformers` requires. The source checkpoint's pooler, which the encoder
//! does not use, can be written alongside ([`BertModel::save_hf_safetensors_with_pooler`]), so
//! that `transformers` finds every weight of its `BertModel`. `config.json` keeps the family member
//! (`model_type` `bert`, `roberta` or `xlm-roberta`) and its `pad_token_id`, so an exported
//! XLM-RoBERTa loads again as one.

use std::path::Path;

use burn::module::Module;

use super::config::{BertConfig, BertVariant, HiddenAct};
use super::model::BertModel;
use super::pooler::BertPooler;
use crate::error::Result;

/// Module path → checkpoint key rewrites applied when saving, in this order.
pub const EXPORT_KEY_REMAPS: &[(&str, &str)] = &[
    (r"\.layer_norm\.", ".LayerNorm."),
    (r"\.attention\.self_attention\.", ".attention.self."),
];

impl BertConfig {
    /// The Hugging Face `config.json` of this configuration: `model_type` and `architectures`
    /// of the family member (`bert` / `BertModel`, `roberta` / `RobertaModel`, `xlm-roberta` /
    /// `XLMRobertaModel`), absolute position embeddings, `pad_token_id`; the RoBERTa members also
    /// get their `bos_token_id` 0 and `eos_token_id` 2 (`<s>`, `</s>`), which `transformers`
    /// reads but the encoder does not use.
    pub fn to_hf_json(&self) -> serde_json::Value {
        let hidden_act = match self.hidden_act {
            HiddenAct::Gelu => "gelu",
            HiddenAct::GeluTanh => "gelu_new",
            HiddenAct::Relu => "relu",
        };
        let mut json = serde_json::json!({
            "architectures": [self.variant.hf_architecture()],
            "model_type": self.variant.model_type(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "layer_norm_eps": self.layer_norm_eps,
            "hidden_dropout_prob": self.hidden_dropout_prob,
            "attention_probs_dropout_prob": self.attention_probs_dropout_prob,
            "hidden_act": hidden_act,
            "position_embedding_type": "absolute",
            "initializer_range": 0.02,
            "pad_token_id": self.pad_token_id,
        });
        if self.variant != BertVariant::Bert {
            json["bos_token_id"] = 0.into();
            json["eos_token_id"] = 2.into();
        }
        json
    }
}

impl BertModel {
    /// Writes the weights to `path` as a Hugging Face `model.safetensors` (f32, keys as in
    /// [`super::weights`] without a `bert.` / `roberta.` prefix), readable by
    /// [`BertModel::load_safetensors`] and by PyTorch `transformers`.
    ///
    /// The file is written to a scratch sibling and renamed into place, so an existing file at
    /// `path` is either kept or replaced whole.
    ///
    /// # Errors
    /// [`ModelError::Weights`](crate::ModelError::Weights) naming `path` when the file cannot be written.
    pub fn save_hf_safetensors(&self, path: &Path) -> Result<()> {
        crate::hf_safetensors::save_hf_safetensors(self, path, EXPORT_KEY_REMAPS)
    }

    /// [`BertModel::save_hf_safetensors`] plus, when given, `pooler` as
    /// `pooler.dense.weight` / `pooler.dense.bias` (PyTorch layout, like the other weights).
    ///
    /// # Errors
    /// [`ModelError::Weights`](crate::ModelError::Weights) naming `path` when the file cannot be written.
    pub fn save_hf_safetensors_with_pooler(
        &self,
        path: &Path,
        pooler: Option<&BertPooler>,
    ) -> Result<()> {
        let Some(pooler) = pooler else {
            return self.save_hf_safetensors(path);
        };
        let module = BertWithPooler {
            model: self.clone(),
            pooler: pooler.clone(),
        };
        let mut remaps = vec![(r"^model\.", "")];
        remaps.extend_from_slice(EXPORT_KEY_REMAPS);
        crate::hf_safetensors::save_hf_safetensors(&module, path, &remaps)
    }
}

/// The module written by [`BertModel::save_hf_safetensors_with_pooler`]: the encoder's paths
/// lose their `model.` prefix, the pooler's keep `pooler.`.
#[derive(Module, Debug)]
struct BertWithPooler {
    model: BertModel,
    pooler: BertPooler,
}
