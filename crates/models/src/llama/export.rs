//! Writing a [`LlamaModel`] and its [`LlamaConfig`] as a Hugging Face model directory:
//! `config.json` and a `model.safetensors` whose keys are the checkpoint's own names, F32.
//!
//! The inverse of [`super::weights`]: Burn's `[in, out]` Linear weights are transposed back to
//! PyTorch's `[out, in]` (`BurnToPyTorchAdapter`; the RMSNorm scales keep their `weight`), and
//! the decoder's module paths get back their `model.` prefix ([`EXPORT_KEY_REMAPS`]):
//! `embed_tokens.weight` → `model.embed_tokens.weight`, `layers.{i}.…` → `model.layers.{i}.…`,
//! `norm.weight` → `model.norm.weight`; `lm_head.weight` keeps its name and is written only for
//! an untied head. Loading the directory with [`LlamaModel::from_pretrained`] gives the same
//! tensors bit for bit.
//!
//! [`export_decoder`] adds the tokenizer side (`tokenizer.json`, `tokenizer_config.json`, …)
//! so that transformers' `AutoModelForCausalLM` and `AutoTokenizer` both load the directory.

use std::path::{Path, PathBuf};

use super::config::{LlamaConfig, LlamaVariant, RopeScaling};
use super::model::LlamaModel;
use super::{CONFIG_FILE, WEIGHTS_FILE};
use crate::atomic::write_atomic;
use crate::error::{ModelError, Result};

/// Files of the tokenizer side that [`export_decoder`] copies when the source has them
/// (`tokenizer.json` itself is required).
pub const TOKENIZER_SIDE_FILES: &[&str] = &[
    TOKENIZER_CONFIG_FILE,
    "special_tokens_map.json",
    crate::generation::chat::CHAT_TEMPLATE_FILE,
    "generation_config.json",
];

/// The tokenizer config transformers' `AutoTokenizer` reads beside `tokenizer.json`.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";

/// Module path → checkpoint key rewrites applied when saving.
pub const EXPORT_KEY_REMAPS: &[(&str, &str)] = &[(r"^(embed_tokens|layers|norm)\.", "model.${1}.")];

impl LlamaVariant {
    /// The `model_type` of `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            LlamaVariant::Llama => "llama",
            LlamaVariant::Qwen2 => "qwen2",
            LlamaVariant::Qwen3 => "qwen3",
        }
    }

    /// The Hugging Face class with the language-model head (`architectures`).
    pub fn hf_architecture(self) -> &'static str {
        match self {
            LlamaVariant::Llama => "LlamaForCausalLM",
            LlamaVariant::Qwen2 => "Qwen2ForCausalLM",
            LlamaVariant::Qwen3 => "Qwen3ForCausalLM",
        }
    }
}

impl LlamaConfig {
    /// The Hugging Face `config.json` of this configuration, in the transformers 4 form
    /// (`rope_theta` and `rope_scaling` at top level, which transformers 5 also reads):
    /// `model_type` and `architectures` of the variant, every shape, `head_dim`, the norm
    /// epsilon, RoPE, the context window, `tie_word_embeddings`, the special token ids,
    /// `hidden_act = "silu"`, no attention / MLP biases beyond Qwen2's q/k/v ones, no sliding
    /// window, `torch_dtype = "float32"`.
    pub fn to_hf_json(&self) -> serde_json::Value {
        let rope_scaling = match &self.rope_scaling {
            RopeScaling::None => serde_json::Value::Null,
            RopeScaling::Linear { factor } => {
                serde_json::json!({"rope_type": "linear", "factor": factor})
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => serde_json::json!({
                "rope_type": "llama3",
                "factor": factor,
                "low_freq_factor": low_freq_factor,
                "high_freq_factor": high_freq_factor,
                "original_max_position_embeddings": original_max_position_embeddings,
            }),
        };
        let eos = match self.eos_token_ids.as_slice() {
            [] => serde_json::Value::Null,
            [one] => (*one).into(),
            many => many.into(),
        };
        let mut json = serde_json::json!({
            "architectures": [self.variant.hf_architecture()],
            "model_type": self.variant.model_type(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": rope_scaling,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": eos,
            "torch_dtype": "float32",
            "initializer_range": 0.02,
            "use_cache": true,
        });
        match self.variant {
            LlamaVariant::Llama => {
                json["attention_bias"] = false.into();
                json["mlp_bias"] = false.into();
            }
            LlamaVariant::Qwen2 => json["use_sliding_window"] = false.into(),
            LlamaVariant::Qwen3 => {
                json["attention_bias"] = false.into();
                json["use_sliding_window"] = false.into();
            }
        }
        json
    }
}

impl LlamaModel {
    /// Writes `config` and this model's weights as a Hugging Face model directory `dir`
    /// (created if missing): `config.json` ([`LlamaConfig::to_hf_json`]) and
    /// `model.safetensors` ([`LlamaModel::save_hf_safetensors`]). Each file is written to a
    /// scratch sibling and renamed into place, so a file already there is kept or replaced whole.
    ///
    /// # Errors
    /// [`ModelError::InvalidArgument`] (`config`) when `config` does not describe this model
    /// (layers, widths, vocabulary, tied or untied head); [`ModelError::Write`] naming the
    /// directory or `config.json`, [`ModelError::Weights`] naming `model.safetensors`, when a
    /// file cannot be written.
    pub fn save_pretrained(&self, config: &LlamaConfig, dir: &Path) -> Result<()> {
        self.check_config(config)?;
        std::fs::create_dir_all(dir).map_err(|source| ModelError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let json = serde_json::to_vec_pretty(&config.to_hf_json()).expect("a JSON value");
        write_atomic(&dir.join(CONFIG_FILE), &json)?;
        self.save_hf_safetensors(&dir.join(WEIGHTS_FILE))
    }

    /// Writes the weights to `path` as a Hugging Face `model.safetensors`: F32, keys as in
    /// [`super::weights`] with the `model.` prefix, PyTorch layouts, `format = pt` metadata
    /// (which `transformers` requires); `lm_head.weight` only when the head is untied.
    ///
    /// Written to a scratch sibling and renamed into place.
    ///
    /// # Errors
    /// [`ModelError::Weights`] naming `path` when the file cannot be written.
    pub fn save_hf_safetensors(&self, path: &Path) -> Result<()> {
        crate::hf_safetensors::save_hf_safetensors(self, path, EXPORT_KEY_REMAPS)
    }

    /// Whether `config` describes this model: shapes, variant switches, head tying, norm
    /// epsilon and RoPE frequencies.
    fn check_config(&self, config: &LlamaConfig) -> Result<()> {
        let invalid = |message: String| ModelError::InvalidArgument {
            name: "config",
            message,
        };
        config.validate().map_err(invalid)?;
        let mut have = vec![
            ("vocab_size", self.vocab_size()),
            ("hidden_size", self.hidden_size()),
            ("num_hidden_layers", self.num_layers()),
            ("max_position_embeddings", self.max_positions),
            ("tie_word_embeddings", usize::from(self.lm_head.is_none())),
        ];
        let mut want = vec![
            config.vocab_size,
            config.hidden_size,
            config.num_hidden_layers,
            config.max_position_embeddings,
            usize::from(config.tie_word_embeddings),
        ];
        if let Some(layer) = self.layers.first() {
            let attn = &layer.self_attn;
            have.extend([
                ("num_attention_heads", attn.num_heads),
                ("num_key_value_heads", attn.num_kv_heads),
                ("head_dim", attn.head_dim),
                ("intermediate_size", layer.mlp.up_proj.weight.dims()[1]),
                ("attention_bias", usize::from(attn.q_proj.bias.is_some())),
                ("qk_norm", usize::from(attn.q_norm.is_some())),
            ]);
            want.extend([
                config.num_attention_heads,
                config.num_key_value_heads,
                config.head_dim,
                config.intermediate_size,
                usize::from(config.attention_bias()),
                usize::from(config.qk_norm()),
            ]);
        }
        for ((name, have), want) in have.into_iter().zip(want) {
            if have != want {
                return Err(invalid(format!(
                    "{name} is {want} in the config but {have} in the model \
                     (variant {:?})",
                    config.variant
                )));
            }
        }
        if self.norm.eps != config.rms_norm_eps {
            return Err(invalid(format!(
                "rms_norm_eps is {} in the config but {} in the model",
                config.rms_norm_eps, self.norm.eps
            )));
        }
        if self.rope != super::rope::RotaryEmbedding::new(config) {
            return Err(invalid(
                "rope_theta / rope_scaling / head_dim of the config give other RoPE \
                 frequencies than the model's"
                    .to_string(),
            ));
        }
        Ok(())
    }
}

/// Writes `model` as a Hugging Face model directory `dir` that transformers loads with
/// `AutoModelForCausalLM.from_pretrained(dir)` and `AutoTokenizer.from_pretrained(dir)`:
/// [`LlamaModel::save_pretrained`]'s `config.json` and `model.safetensors`, plus the tokenizer
/// of `tokenizer_source` (a model directory, or a file in one such as the teacher's `.gguf`,
/// or a tokenizer file `*.json` itself, see [`crate::tokenizer::tokenizer_file`]): its
/// `tokenizer.json` and whichever of [`TOKENIZER_SIDE_FILES`] its directory has, byte for
/// byte.
///
/// When the source has no `tokenizer_config.json`, a minimal one is written: the
/// `PreTrainedTokenizerFast` class, the `bos_token` / `eos_token` strings of `config`'s
/// `bos_token_id` / first `eos_token_ids` (looked up in `tokenizer.json`) and
/// `model_max_length = max_position_embeddings`. A file of [`TOKENIZER_SIDE_FILES`] that the
/// source lacks but `dir` holds (from an earlier export) is removed, so that the directory
/// describes this model only.
///
/// Everything is read and checked before anything is written; each file is then written to a
/// scratch sibling and renamed into place (`write_atomic`), so no file is ever half-written.
///
/// # Errors
/// [`ModelError::InvalidArgument`] (`config`) when `config` does not describe `model`, or
/// names a special token id that `tokenizer.json` does not have;
/// [`ModelError::InvalidArgument`] (`tokenizer_source`) when the tokenizer has more tokens
/// than the model's vocabulary; [`ModelError::Io`] naming `tokenizer.json` (or another source
/// file) when it cannot be read; [`ModelError::Tokenizer`] when it does not parse;
/// [`ModelError::Write`] / [`ModelError::Weights`] naming the file that cannot be written.
pub fn export_decoder(
    model: &LlamaModel,
    config: &LlamaConfig,
    dir: &Path,
    tokenizer_source: &Path,
) -> Result<()> {
    model.check_config(config)?;
    let tokenizer_path = crate::tokenizer::tokenizer_file(tokenizer_source);
    let source_dir = tokenizer_path.parent().unwrap_or(Path::new("."));
    let tokenizer_bytes = read(&tokenizer_path)?;
    let tokenizer =
        tokenizers::Tokenizer::from_bytes(&tokenizer_bytes).map_err(|e| ModelError::Tokenizer {
            path: tokenizer_path.clone(),
            message: e.to_string(),
        })?;
    let tokens = tokenizer.get_vocab_size(true);
    if tokens > config.vocab_size {
        return Err(ModelError::InvalidArgument {
            name: "tokenizer_source",
            message: format!(
                "{} has {tokens} tokens, more than the model's vocabulary of {}",
                tokenizer_path.display(),
                config.vocab_size
            ),
        });
    }
    let mut files: Vec<(&str, Vec<u8>)> = vec![(crate::tokenizer::TOKENIZER_FILE, tokenizer_bytes)];
    let mut absent = Vec::new();
    for name in TOKENIZER_SIDE_FILES {
        let path = source_dir.join(name);
        if path.is_file() {
            files.push((name, read(&path)?));
        } else if *name == TOKENIZER_CONFIG_FILE {
            let json = minimal_tokenizer_config(config, &tokenizer, &tokenizer_path)?;
            files.push((
                name,
                serde_json::to_vec_pretty(&json).expect("a JSON value"),
            ));
        } else {
            absent.push(*name);
        }
    }
    model.save_pretrained(config, dir)?;
    for (name, bytes) in files {
        write_atomic(&dir.join(name), &bytes)?;
    }
    for name in absent {
        let stale = dir.join(name);
        if stale.is_file() {
            std::fs::remove_file(&stale).map_err(|source| ModelError::Write {
                path: stale.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| ModelError::Io {
        path: PathBuf::from(path),
        source,
    })
}

/// `tokenizer_config.json` for a source that has none: the fast-tokenizer class over
/// `tokenizer.json`, the special tokens of `config` by name, the context window.
fn minimal_tokenizer_config(
    config: &LlamaConfig,
    tokenizer: &tokenizers::Tokenizer,
    tokenizer_path: &Path,
) -> Result<serde_json::Value> {
    let name_of = |what: &str, id: u32| {
        tokenizer
            .id_to_token(id)
            .ok_or_else(|| ModelError::InvalidArgument {
                name: "config",
                message: format!(
                    "{what} {id} is not a token of {} (which has {} tokens)",
                    tokenizer_path.display(),
                    tokenizer.get_vocab_size(true)
                ),
            })
    };
    let mut json = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": config.max_position_embeddings,
        "clean_up_tokenization_spaces": false,
    });
    if let Some(id) = config.bos_token_id {
        json["bos_token"] = name_of("bos_token_id", id)?.into();
    }
    if let Some(&id) = config.eos_token_ids.first() {
        json["eos_token"] = name_of("eos_token_id", id)?.into();
    }
    Ok(json)
}
