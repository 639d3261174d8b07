//! Llama-family decoders (Llama, SmolLM2, Mistral-style, Qwen2, Qwen3) from Hugging Face
//! safetensors checkpoints or llama.cpp GGUF files.
//!
//! In dependency order, one concept per file:
//! [`config`](LlamaConfig) → [`rms_norm`](LlamaRmsNorm) → [`rope`](RotaryEmbedding) →
//! [`attention`](LlamaAttention) (grouped-query, KV cache) → [`mlp`](LlamaMlp) (SwiGLU) →
//! [`block`](LlamaDecoderLayer) → [`model`](LlamaModel) → [`weights`] (loading) → export
//! ([`LlamaModel::save_pretrained`], a Hugging Face directory; [`export_decoder`] with the
//! tokenizer) → students for distillation ([`build_student`], [`StudentInit`]).
//!
//! [`LlamaModel::forward`] returns logits, every hidden state (index 0 = embeddings, last =
//! after the final norm) and optionally every layer's attention probabilities;
//! [`LlamaModel::forward_cached`] runs one generation step against a [`KvCache`].

mod attention;
mod block;
mod config;
mod export;
mod mlp;
mod model;
mod rms_norm;
mod rope;
mod student;
pub mod weights;

pub use attention::{DecoderMask, LayerKvCache, LlamaAttention};
pub use block::LlamaDecoderLayer;
pub use config::{LlamaConfig, LlamaVariant, RopeScaling};
pub use export::{export_decoder, EXPORT_KEY_REMAPS, TOKENIZER_CONFIG_FILE, TOKENIZER_SIDE_FILES};
pub use mlp::LlamaMlp;
pub use model::{KvCache, LlamaInput, LlamaModel, LlamaOutput};
pub use rms_norm::LlamaRmsNorm;
pub use rope::{apply_rotary, RotaryEmbedding};
pub use student::{build_student, StudentInit, FRESH_INIT_STD};
pub use weights::LayerSelection;

/// File name of the architecture config in a Hugging Face model directory.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the safetensors weights in a Hugging Face model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
