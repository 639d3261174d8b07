//! Export in the sentence-transformers layout:
//!
//! ```text
//! <dir>/config.json                 Hugging Face config of the backbone (BERT family or Llama
//!                                   family; a GGUF decoder is written as f32 safetensors)
//! <dir>/model.safetensors           weights with Hugging Face key names (format = pt)
//! <dir>/tokenizer.json (+ tokenizer_config.json, vocab.txt, special_tokens_map.json when the
//!                                   source model has them)
//! <dir>/modules.json                Transformer → Pooling
//! <dir>/sentence_bert_config.json   max_seq_length
//! <dir>/1_Pooling/config.json       mean, CLS or last-token pooling
//! ```
//!
//! loadable by `mrl eval --model <dir>`, by [`models::SentenceEncoder::load`] and by Python
//! `SentenceTransformer(<dir>)`. The directory is assembled under a temporary name and renamed
//! into place, so a crash never leaves a half-written export.

use std::path::Path;

use models::{Backbone, Pooling};

use crate::checkpoint::write_atomic;
use crate::error::{io_err, Result, TrainError};

/// Tokenizer files copied from the source model when present.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
];

/// Writes `backbone` (encoder or decoder, with the tokenizer files of `source_dir` and
/// `pooling`) to `dir` in the sentence-transformers layout, replacing `dir` if it exists.
///
/// # Errors
/// [`TrainError::Io`] naming the file that could not be written; [`TrainError::Model`] when
/// the weights cannot be serialised; [`TrainError::Data`] when the source has no
/// `tokenizer.json` or the pooling has no sentence-transformers equivalent.
pub fn export_sentence_transformer(
    backbone: &Backbone,
    source_dir: &Path,
    pooling: Pooling,
    max_seq_length: usize,
    dir: &Path,
) -> Result<()> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let tmp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    std::fs::create_dir_all(tmp.join("1_Pooling")).map_err(io_err(&tmp))?;

    let json = |v: serde_json::Value| serde_json::to_vec_pretty(&v).expect("json");
    let weights = tmp.join("model.safetensors");
    let hf_config = match backbone {
        Backbone::Bert(b) => {
            b.model.save_hf_safetensors(&weights)?;
            b.config.to_hf_json()
        }
        Backbone::Decoder(d) => {
            d.model.save_hf_safetensors(&weights)?;
            d.config.to_hf_json()
        }
    };
    write_atomic(&tmp.join("config.json"), &json(hf_config))?;
    if !source_dir.join("tokenizer.json").is_file() {
        return Err(TrainError::Data {
            path: source_dir.join("tokenizer.json"),
            line: 0,
            message: "the source model has no tokenizer.json to export".into(),
        });
    }
    for file in TOKENIZER_FILES {
        let from = source_dir.join(file);
        if from.is_file() {
            let bytes = std::fs::read(&from).map_err(io_err(&from))?;
            write_atomic(&tmp.join(file), &bytes)?;
        }
    }
    let (cls, mean, last) = match pooling {
        Pooling::Cls => (true, false, false),
        Pooling::Mean => (false, true, false),
        Pooling::LastToken => (false, false, true),
    };
    write_atomic(
        &tmp.join("modules.json"),
        &json(serde_json::json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
        ])),
    )?;
    write_atomic(
        &tmp.join("sentence_bert_config.json"),
        &json(serde_json::json!({
            "max_seq_length": max_seq_length.min(backbone.max_position_embeddings()),
            "do_lower_case": false
        })),
    )?;
    write_atomic(
        &tmp.join("1_Pooling").join("config.json"),
        &json(serde_json::json!({
            "word_embedding_dimension": backbone.hidden_size(),
            "pooling_mode_cls_token": cls,
            "pooling_mode_mean_tokens": mean,
            "pooling_mode_max_tokens": false,
            "pooling_mode_mean_sqrt_len_tokens": false,
            "pooling_mode_weightedmean_tokens": false,
            "pooling_mode_lasttoken": last,
            "include_prompt": true
        })),
    )?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io_err(dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(io_err(dir))?;
    Ok(())
}
