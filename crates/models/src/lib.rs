//! Encoders for Matryoshka representation learning, loaded from Hugging Face checkpoints.
//!
//! - [`bert`] — BERT-family encoders (BERT, MiniLM, TinyBERT, BGE-en, RoBERTa, XLM-RoBERTa /
//!   BGE-M3): every hidden state,
//!   optional attention probabilities, dropout on autodiff devices;
//! - [`llama`] — Llama-family decoders (SmolLM2, Qwen2, Qwen3) from safetensors or GGUF:
//!   logits, every hidden state, attention probabilities, KV-cached generation steps;
//! - [`gelu`] — the exact GELU as a backend operation (vectorised, multi-core on flex/ndarray);
//!   [`layer_norm`](mod@layer_norm), [`rms_norm`](mod@rms_norm),
//!   [`attention_softmax`](mod@attention_softmax), [`dropout`](mod@dropout),
//!   [`embedding`](mod@embedding) and [`swiglu`](mod@swiglu) the same way;
//! - [`generation`] — KV-cached greedy / sampled generation and chat templates;
//! - [`gguf`] — a reader for llama.cpp GGUF files (F32/F16/BF16/Q8_0/Q4_0/Q4_1 to f32);
//! - [`tokenizer`] — `tokenizer.json` with longest-in-batch padding, truncation and offsets;
//! - [`vocab_transplant`] — an embedding matrix for another tokenizer's vocabulary, made from a
//!   model's embedding row by row from the token strings (cross-tokenizer students);
//! - [`pooling`] — the pooling mode of a sentence-transformers model (`1_Pooling/config.json`);
//!   [`Pooling`], [`pool`] and the Matryoshka [`truncate_normalize`] are `mrl-common`'s,
//!   re-exported here;
//! - [`resolve`] — the one model resolver: a directory, `$MRL_SHARED/models/<name>`, a Hugging
//!   Face id in the hub cache, else (feature `hub`) downloaded into it;
//! - [`backbone`] — the network behind an embedding (encoder or decoder) as one trainable
//!   Burn module;
//! - [`sentence_encoder`] — model + tokenizer + pooling: texts in, vectors out; the model is a
//!   BERT-family encoder or a Llama-family decoder ([`Backbone`], from `model_type`), so a
//!   decoder embedder (last-token pooling) is evaluated like an encoder;
//! - [`st_pipeline`] — the sentence-transformers module list (`modules.json`) and
//!   `sentence_bert_config.json`, checked to be a pipeline the encoder reproduces.
//!
//! # Features
//! `ndarray` and `flex` (default), `wgpu` and `cuda` enable the corresponding Burn backends; the
//! device is chosen at run time (`Device::ndarray()`, `Device::flex()`, `Device::wgpu(..)`,
//! `Device::cuda(..)`, or by name with `mrl_common::DeviceKind`).
//! `hub` (off by default in this crate, on by default in the `mrl` binary) lets [`resolve`] download a model found
//! nowhere locally into the Hugging Face cache (`hf-hub`'s blocking client).
//!
//! # Example
//! ```no_run
//! use burn::tensor::Device;
//! use models::{EncoderOptions, SentenceEncoder, truncate_normalize};
//!
//! let device = Device::flex();
//! let dir = models::resolve_model("sentence-transformers/all-MiniLM-L6-v2")?;
//! let encoder = SentenceEncoder::load(&dir, &device, &EncoderOptions::default())?;
//! let pooled = encoder.embed_batch(&["A man is playing a guitar.", "A dog runs."])?;
//! let at_64 = truncate_normalize(pooled, 64)?; // [2, 64], unit rows
//! # Ok::<(), models::ModelError>(())
//! ```

pub mod atomic;
#[allow(deprecated)] // the generated dispatch names NdArray, deprecated upstream
pub mod attention_softmax;
pub mod backbone;
pub mod bert;
mod cast;
#[allow(deprecated)] // the generated dispatch names NdArray, deprecated upstream
pub mod dropout;
#[allow(deprecated)] // the generated dispatch names NdArray, deprecated upstream
pub mod embedding;
pub mod error;
pub mod finite;
#[allow(deprecated)] // the generated dispatch names NdArray, deprecated upstream
pub mod gelu;
pub mod generation;
pub mod gguf;
mod hf_safetensors;
#[allow(deprecated)] // the generated dispatch names NdArray, deprecated upstream
pub mod layer_norm;
mod linear_rows;
pub mod llama;
pub mod pooling;
pub mod resolve;
#[allow(deprecated)] // the generated dispatch names NdArray, deprecated upstream
pub mod rms_norm;
pub mod sentence_encoder;
pub mod st_pipeline;
#[allow(deprecated)] // the generated dispatch names NdArray, deprecated upstream
pub mod swiglu;
pub mod tokenizer;
pub mod vocab_transplant;

pub use attention_softmax::attention_softmax;
pub use backbone::Backbone;
pub use bert::{BertConfig, BertInput, BertModel, BertOutput, BertVariant};
pub use dropout::{dropout, dropout_keyed};
pub use embedding::embedding;
pub use error::{ModelError, Result};
pub use gelu::gelu_exact;
pub use layer_norm::layer_norm;
pub use llama::{LayerSelection, LlamaConfig, LlamaInput, LlamaModel, LlamaOutput};
pub use mrl_common::is_host_cpu;
pub use mrl_common::{pool, truncate_normalize, Pooling};
pub use pooling::pooling_from_model_dir;
pub use resolve::resolve_model;
pub use rms_norm::rms_norm;
pub use sentence_encoder::{EncoderOptions, SentenceEncoder};
pub use swiglu::swiglu;
pub use tokenizer::{TextTokenizer, TokenBatch};
