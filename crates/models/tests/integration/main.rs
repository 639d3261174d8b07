//! Integration tests of `models`, linked into one test binary (each binary links all of Burn,
//! wgpu and CubeCL; one binary instead of nine saves minutes of linking and gigabytes of disk).
//!
//! Run one group with a name filter, e.g. `cargo test -p models --test integration llama_smollm2`.

mod common;

mod attention_softmax;
mod bert_forward;
mod decoder_embedder;
mod dropout;
mod embedding;
mod gelu;
mod generate_batch;
mod generate_smollm2;
mod gguf_reader;
mod layer_norm;
mod llama_decoder;
mod llama_export;
mod llama_export_decoder;
mod llama_safetensors;
mod llama_smollm2;
mod llama_student;
mod llama_train_step;
mod loading;
mod minilm_fixture;
mod pooling;
mod resolve;
mod rms_norm;
mod swiglu;
mod vocab_transplant;
mod xlm_roberta;
