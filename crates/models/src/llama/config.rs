//! [`LlamaConfig`]: the architecture of a Llama-family decoder, from a Hugging Face
//! `config.json` or from GGUF metadata.

use std::path::Path;

use burn::config::Config;
use serde_json::Value;

use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;

/// Which member of the Llama family: the variants differ only in a few switches.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum LlamaVariant {
    /// Llama / SmolLM2 / Mistral-style: no attention biases, no q/k norms.
    Llama,
    /// Qwen2: biases on the q, k and v projections.
    Qwen2,
    /// Qwen3: RMSNorm over each head of q and k before RoPE, no biases.
    Qwen3,
}

/// RoPE frequency scaling (`rope_scaling` / `rope_parameters` in `config.json`).
#[derive(Config, Debug, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Positions divided by `factor` (`rope_type: "linear"`).
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// Llama 3.1's piecewise frequency scaling (`rope_type: "llama3"`).
    Llama3 {
        /// Divisor of the low frequencies.
        factor: f64,
        /// Wavelengths above `original_max_position_embeddings / low_freq_factor` are scaled.
        low_freq_factor: f64,
        /// Wavelengths below `original_max_position_embeddings / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// The context length the model was pre-trained with.
        original_max_position_embeddings: usize,
    },
}

/// The architecture of a Llama-family decoder.
#[derive(Config, Debug, PartialEq)]
pub struct LlamaConfig {
    /// Family member.
    pub variant: LlamaVariant,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU hidden layer.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than the query heads).
    pub num_key_value_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Epsilon of every RMSNorm.
    #[config(default = 1e-6)]
    pub rms_norm_eps: f64,
    /// RoPE base.
    #[config(default = 10000.0)]
    pub rope_theta: f64,
    /// RoPE frequency scaling.
    #[config(default = "RopeScaling::None")]
    pub rope_scaling: RopeScaling,
    /// Context window.
    #[config(default = 2048)]
    pub max_position_embeddings: usize,
    /// Whether the output head shares the token embedding matrix.
    #[config(default = true)]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token.
    #[config(default = "None")]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence tokens (generation stops at any of them).
    #[config(default = "Vec::new()")]
    pub eos_token_ids: Vec<u32>,
}

fn config_err(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Config {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl LlamaConfig {
    /// Whether q, k and v projections carry a bias.
    pub fn attention_bias(&self) -> bool {
        self.variant == LlamaVariant::Qwen2
    }

    /// Whether q and k are RMS-normalised per head.
    pub fn qk_norm(&self) -> bool {
        self.variant == LlamaVariant::Qwen3
    }

    /// Checks the shapes are consistent.
    ///
    /// # Errors
    /// A message naming the inconsistent fields.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("num_hidden_layers", self.num_hidden_layers),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(format!(
                "num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "head_dim ({}) must be even for RoPE",
                self.head_dim
            ));
        }
        Ok(())
    }

    /// Reads a Hugging Face `config.json` (`model_type` `llama`, `mistral`, `qwen2` or
    /// `qwen3`; `rope_theta`/`rope_scaling` in the transformers 4 form or `rope_parameters`
    /// in the transformers 5 form).
    ///
    /// # Errors
    /// [`ModelError::Config`] for a missing or mistyped field, [`ModelError::Unsupported`] for
    /// another `model_type` or an unknown RoPE type.
    pub fn from_hf_json(path: &Path) -> Result<Self> {
        let json: Value = crate::error::read_json(path)?;
        Self::from_hf_value(&json, path)
    }

    fn from_hf_value(json: &Value, path: &Path) -> Result<Self> {
        let model_type = json
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| config_err(path, "missing string field `model_type`"))?;
        let variant = match model_type {
            "llama" | "mistral" => LlamaVariant::Llama,
            "qwen2" => LlamaVariant::Qwen2,
            "qwen3" => LlamaVariant::Qwen3,
            other => {
                return Err(ModelError::Unsupported {
                    path: path.to_path_buf(),
                    message: format!(
                        "model_type `{other}` (supported: llama, mistral, qwen2, qwen3)"
                    ),
                })
            }
        };
        let usize_field = |name: &str| -> Result<usize> {
            json.get(name)
                .and_then(Value::as_u64)
                .map(|v| v as usize)
                .ok_or_else(|| config_err(path, format!("missing integer field `{name}`")))
        };
        let hidden_size = usize_field("hidden_size")?;
        let num_attention_heads = usize_field("num_attention_heads")?;
        let head_dim = match json.get("head_dim").and_then(Value::as_u64) {
            Some(d) => d as usize,
            None => hidden_size / num_attention_heads.max(1),
        };
        // transformers 5 nests theta and scaling in `rope_parameters`; 4 has them at top level.
        let present = |name: &str| json.get(name).filter(|v| !v.is_null());
        let rope = present("rope_parameters").or_else(|| present("rope_scaling"));
        let rope_theta = json
            .get("rope_theta")
            .or_else(|| rope.and_then(|r| r.get("rope_theta")))
            .and_then(Value::as_f64)
            .unwrap_or(10000.0);
        let rope_scaling = parse_rope_scaling(rope, path)?;
        let eos_token_ids = match json.get("eos_token_id") {
            Some(Value::Array(ids)) => ids.iter().filter_map(Value::as_u64).collect(),
            Some(v) => v.as_u64().into_iter().collect(),
            None => Vec::new(),
        }
        .into_iter()
        .map(|v| v as u32)
        .collect();
        let num_key_value_heads = json
            .get("num_key_value_heads")
            .and_then(Value::as_u64)
            .map_or(num_attention_heads, |v| v as usize);
        let config = Self::new(
            variant,
            usize_field("vocab_size")?,
            hidden_size,
            usize_field("intermediate_size")?,
            usize_field("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
        )
        .with_rms_norm_eps(
            json.get("rms_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-6),
        )
        .with_rope_theta(rope_theta)
        .with_rope_scaling(rope_scaling)
        .with_max_position_embeddings(
            json.get("max_position_embeddings")
                .and_then(Value::as_u64)
                .map_or(2048, |v| v as usize),
        )
        .with_tie_word_embeddings(
            json.get("tie_word_embeddings")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        )
        .with_bos_token_id(
            json.get("bos_token_id")
                .and_then(Value::as_u64)
                .map(|v| v as u32),
        )
        .with_eos_token_ids(eos_token_ids);
        if variant == LlamaVariant::Llama
            && (json.get("attention_bias").and_then(Value::as_bool) == Some(true)
                || json.get("mlp_bias").and_then(Value::as_bool) == Some(true))
        {
            return Err(ModelError::Unsupported {
                path: path.to_path_buf(),
                message: "attention_bias / mlp_bias = true for a llama model".into(),
            });
        }
        // Sliding-window attention (Mistral, some Qwen2) is not implemented: refuse it rather
        // than silently attend to the whole context.
        let sliding = json.get("use_sliding_window").and_then(Value::as_bool) == Some(true)
            || (model_type == "mistral"
                && json.get("sliding_window").is_some_and(|w| !w.is_null()));
        if sliding {
            return Err(ModelError::Unsupported {
                path: path.to_path_buf(),
                message: "sliding-window attention".into(),
            });
        }
        config
            .validate()
            .map_err(|message| config_err(path, message))?;
        Ok(config)
    }

    /// Reads the architecture from GGUF metadata (`general.architecture` = `llama`, `qwen2`
    /// or `qwen3`, then `{arch}.block_count`, `{arch}.embedding_length`, …). The vocabulary
    /// size is taken from the token embedding's shape; `tie_word_embeddings` from whether an
    /// `output.weight` tensor exists.
    ///
    /// # Errors
    /// [`ModelError::Config`] for missing keys, [`ModelError::Unsupported`] for another
    /// architecture.
    pub fn from_gguf(gguf: &GgufFile, path: &Path) -> Result<Self> {
        let arch = gguf
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .ok_or_else(|| config_err(path, "missing metadata `general.architecture`"))?;
        let variant = match arch {
            "llama" => LlamaVariant::Llama,
            "qwen2" => LlamaVariant::Qwen2,
            "qwen3" => LlamaVariant::Qwen3,
            other => {
                return Err(ModelError::Unsupported {
                    path: path.to_path_buf(),
                    message: format!(
                        "general.architecture `{other}` (supported: llama, qwen2, qwen3)"
                    ),
                })
            }
        };
        let key = |name: &str| format!("{arch}.{name}");
        let int = |name: &str| -> Result<usize> {
            gguf.get(&key(name))
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
                .ok_or_else(|| {
                    config_err(path, format!("missing integer metadata `{arch}.{name}`"))
                })
        };
        let float = |name: &str| gguf.get(&key(name)).and_then(|v| v.as_f64());
        let hidden_size = int("embedding_length")?;
        let num_attention_heads = int("attention.head_count")?;
        let head_dim =
            int("attention.key_length").unwrap_or(hidden_size / num_attention_heads.max(1));
        let vocab_size = match gguf.tensor_info("token_embd.weight") {
            Some(info) => info.shape()[0],
            None => int("vocab_size")?,
        };
        let rope_scaling = match gguf.get(&key("rope.scaling.type")).and_then(|v| v.as_str()) {
            None | Some("none") => RopeScaling::None,
            Some("linear") => RopeScaling::Linear {
                factor: float("rope.scaling.factor").unwrap_or(1.0),
            },
            Some(other) => {
                return Err(ModelError::Unsupported {
                    path: path.to_path_buf(),
                    message: format!("rope scaling type `{other}`"),
                })
            }
        };
        let token = |name: &str| {
            gguf.get(&format!("tokenizer.ggml.{name}"))
                .and_then(|v| v.as_u64())
                .map(|v| v as u32)
        };
        let config = Self::new(
            variant,
            vocab_size,
            hidden_size,
            int("feed_forward_length")?,
            int("block_count")?,
            num_attention_heads,
            int("attention.head_count_kv").unwrap_or(num_attention_heads),
            head_dim,
        )
        .with_rms_norm_eps(float("attention.layer_norm_rms_epsilon").unwrap_or(1e-6))
        .with_rope_theta(float("rope.freq_base").unwrap_or(10000.0))
        .with_rope_scaling(rope_scaling)
        .with_max_position_embeddings(int("context_length").unwrap_or(2048))
        .with_tie_word_embeddings(gguf.tensor_info("output.weight").is_none())
        .with_bos_token_id(token("bos_token_id"))
        .with_eos_token_ids(token("eos_token_id").into_iter().collect());
        config
            .validate()
            .map_err(|message| config_err(path, message))?;
        Ok(config)
    }
}

fn parse_rope_scaling(rope: Option<&Value>, path: &Path) -> Result<RopeScaling> {
    let Some(rope) = rope.filter(|r| !r.is_null()) else {
        return Ok(RopeScaling::None);
    };
    let rope_type = rope
        .get("rope_type")
        .or_else(|| rope.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let float = |name: &str| -> Result<f64> {
        rope.get(name)
            .and_then(Value::as_f64)
            .ok_or_else(|| config_err(path, format!("rope scaling `{rope_type}` needs `{name}`")))
    };
    Ok(match rope_type {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: float("factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: float("factor")?,
            low_freq_factor: float("low_freq_factor")?,
            high_freq_factor: float("high_freq_factor")?,
            original_max_position_embeddings: float("original_max_position_embeddings")? as usize,
        },
        other => {
            return Err(ModelError::Unsupported {
                path: path.to_path_buf(),
                message: format!("rope_type `{other}` (supported: default, linear, llama3)"),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm2_json() -> Value {
        serde_json::json!({
            "model_type": "llama", "vocab_size": 49152, "hidden_size": 576,
            "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
            "num_key_value_heads": 3, "head_dim": 64, "rms_norm_eps": 1e-5,
            "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"},
            "max_position_embeddings": 8192, "tie_word_embeddings": true,
            "bos_token_id": 1, "eos_token_id": 2
        })
    }

    #[test]
    fn reads_the_transformers_5_form() {
        let c = LlamaConfig::from_hf_value(&smollm2_json(), Path::new("config.json")).unwrap();
        assert_eq!(c.variant, LlamaVariant::Llama);
        assert_eq!(
            (c.num_attention_heads, c.num_key_value_heads, c.head_dim),
            (9, 3, 64)
        );
        assert_eq!(c.rope_theta, 100000.0);
        assert_eq!(c.rope_scaling, RopeScaling::None);
        assert!(c.tie_word_embeddings);
        assert_eq!(c.eos_token_ids, vec![2]);
    }

    #[test]
    fn reads_the_transformers_4_form_and_qwen_variants() {
        let mut json = smollm2_json();
        json["model_type"] = "qwen3".into();
        json["rope_theta"] = 1e6.into();
        json["rope_parameters"] = Value::Null;
        json["rope_scaling"] = serde_json::json!({"rope_type": "linear", "factor": 2.0});
        json["eos_token_id"] = serde_json::json!([2, 7]);
        let c = LlamaConfig::from_hf_value(&json, Path::new("c.json")).unwrap();
        assert!(c.qk_norm() && !c.attention_bias());
        assert_eq!(c.rope_theta, 1e6);
        assert_eq!(c.rope_scaling, RopeScaling::Linear { factor: 2.0 });
        assert_eq!(c.eos_token_ids, vec![2, 7]);
    }

    #[test]
    fn errors_name_the_field() {
        let mut json = smollm2_json();
        json.as_object_mut().unwrap().remove("intermediate_size");
        let err = LlamaConfig::from_hf_value(&json, Path::new("c.json")).unwrap_err();
        assert!(err.to_string().contains("intermediate_size"), "{err}");
        let mut json = smollm2_json();
        json["num_key_value_heads"] = 4.into();
        let err = LlamaConfig::from_hf_value(&json, Path::new("c.json")).unwrap_err();
        assert!(err.to_string().contains("num_key_value_heads (4)"), "{err}");
        let mut json = smollm2_json();
        json["model_type"] = "gpt2".into();
        let err = LlamaConfig::from_hf_value(&json, Path::new("c.json")).unwrap_err();
        assert!(err.to_string().contains("gpt2"), "{err}");
    }
}
