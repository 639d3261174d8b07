//! Export in the sentence-transformers layout, equivalent to the source model's pipeline:
//!
//! ```text
//! <dir>/config.json                 Hugging Face config of the backbone (BERT family or Llama
//!                                   family; a GGUF decoder is written as f32 safetensors)
//! <dir>/model.safetensors           weights with Hugging Face key names (format = pt), plus the
//!                                   source checkpoint's BERT pooler (`pooler.dense.*`) unchanged
//! <dir>/tokenizer.json (+ tokenizer_config.json, vocab.txt, special_tokens_map.json,
//!                                   config_sentence_transformers.json when the source has them)
//! <dir>/modules.json                the source's modules: Transformer → Pooling (→ Normalize)
//! <dir>/sentence_bert_config.json   the source's max_seq_length and do_lower_case
//! <dir>/1_Pooling/config.json       mean, CLS or last-token pooling (the trained one)
//! <dir>/2_Normalize/                when the source pipeline normalises (its path and files kept)
//! ```
//!
//! loadable by `mrl eval --model <dir>`, by [`models::SentenceEncoder::load`] and by Python
//! `SentenceTransformer(<dir>)`, whose `encode` gives the same kind of vectors as for the source
//! (unit norm when the source normalises) and the same truncation. A source pipeline with a
//! module we cannot reproduce (Dense, LayerNorm, …) is rejected when training starts and here
//! ([`models::st_pipeline::read_modules`]). Every file is created with the usual permissions
//! (`0666` minus the umask). The directory is assembled under a temporary name and renamed into
//! place, so a crash never leaves a half-written export.

use std::path::{Component, Path};

use burn::module::Module;
use models::bert::{BertPooler, WEIGHTS_FILE};
use models::pooling::POOLING_DIR;
use models::st_pipeline::{
    read_modules, SentenceBertConfig, StModuleKind, MODULES_FILE, SENTENCE_BERT_CONFIG_FILE,
};
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

/// sentence-transformers' model-level settings (prompts, similarity function), copied from the
/// source when present.
pub const ST_CONFIG_FILE: &str = "config_sentence_transformers.json";

/// Writes `backbone` (encoder or decoder, with the tokenizer files of `source_dir` and
/// `pooling`) to `dir` in the sentence-transformers layout, replacing `dir` if it exists.
///
/// What describes the model rather than the training run is taken from the source directory:
/// - the module list of its `modules.json` (Transformer → Pooling, and its Normalize module,
///   at the path the source named, with that directory's files); without a `modules.json`,
///   Transformer → Pooling;
/// - `max_seq_length` of its `sentence_bert_config.json`, capped by the backbone's
///   `max_position_embeddings`, and `do_lower_case` (default `false`). The training
///   `max_length` is a setting of the run, not of the model, and is not exported: a user
///   loading the export expects the truncation the source model had. Without a source value
///   none is written, so each loader picks the same default for the export as for the source;
///   edit `sentence_bert_config.json` to truncate differently;
/// - a BERT source checkpoint's pooler (`pooler.dense.weight` / `.bias`), which the encoder does
///   not use, written back unchanged so that `transformers` finds all of `BertModel`'s weights;
/// - `config_sentence_transformers.json` (prompts, similarity function), copied.
///
/// The module types are written with sentence-transformers' long-standing names
/// (`sentence_transformers.models.Transformer`, `.Pooling`, `.Normalize`), which every version
/// loads, together with configs in the matching format; the pooling is `pooling`, the one
/// trained and evaluated.
///
/// # Errors
/// [`TrainError::Io`] naming the file that could not be read or written; [`TrainError::Model`]
/// when the weights cannot be serialised, the source's pooler is malformed, its `modules.json`
/// or `sentence_bert_config.json` is malformed, or its pipeline has a module we cannot
/// reproduce (named in the error); [`TrainError::Data`] when the source has no
/// `tokenizer.json` or a module path leaves the model directory.
pub fn export_sentence_transformer(
    backbone: &Backbone,
    source_dir: &Path,
    pooling: Pooling,
    dir: &Path,
) -> Result<()> {
    // Everything read from the source is checked before anything is written.
    let modules = read_modules(source_dir)?;
    let st_config = SentenceBertConfig::read(source_dir)?.unwrap_or_default();
    if !source_dir.join("tokenizer.json").is_file() {
        return Err(TrainError::Data {
            path: source_dir.join("tokenizer.json"),
            line: 0,
            message: "the source model has no tokenizer.json to export".into(),
        });
    }
    let normalize_path = modules
        .iter()
        .flatten()
        .find(|m| m.kind() == Some(StModuleKind::Normalize))
        .map(|m| m.path.clone());
    if let Some(path) = &normalize_path {
        let inside = Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !inside {
            return Err(TrainError::Data {
                path: source_dir.join(MODULES_FILE),
                line: 0,
                message: format!(
                    "the Normalize module's path `{path}` is not a directory inside the model"
                ),
            });
        }
    }

    let parent = models::atomic::parent_dir(dir);
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    models::atomic::remove_stale_scratch(parent);
    let tmp = models::atomic::scratch_path(dir);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    std::fs::create_dir_all(tmp.join(POOLING_DIR)).map_err(io_err(&tmp))?;

    let json = |v: serde_json::Value| serde_json::to_vec_pretty(&v).expect("json");
    let weights = tmp.join(WEIGHTS_FILE);
    let hf_config = match backbone {
        Backbone::Bert(b) => {
            let source_weights = source_dir.join(WEIGHTS_FILE);
            let pooler = match b.model.devices().first() {
                Some(device) if source_weights.is_file() => {
                    BertPooler::load_safetensors(&source_weights, b.config.hidden_size, device)?
                }
                _ => None,
            };
            b.model
                .save_hf_safetensors_with_pooler(&weights, pooler.as_ref())?;
            b.config.to_hf_json()
        }
        Backbone::Decoder(d) => {
            d.model.save_hf_safetensors(&weights)?;
            d.config.to_hf_json()
        }
    };
    write_atomic(&tmp.join("config.json"), &json(hf_config))?;
    for file in TOKENIZER_FILES.iter().chain([&ST_CONFIG_FILE]) {
        copy_if_present(&source_dir.join(file), &tmp.join(file))?;
    }

    let module = |idx: usize, name: &str, path: &str, kind: &str| {
        serde_json::json!({
            "idx": idx,
            "name": name,
            "path": path,
            "type": format!("sentence_transformers.models.{kind}"),
        })
    };
    let module_list: Vec<serde_json::Value> = match &modules {
        Some(modules) => modules
            .iter()
            .map(|m| match m.kind() {
                Some(StModuleKind::Transformer) => module(m.idx, &m.name, "", "Transformer"),
                Some(StModuleKind::Pooling) => module(m.idx, &m.name, POOLING_DIR, "Pooling"),
                Some(StModuleKind::Normalize) => module(m.idx, &m.name, &m.path, "Normalize"),
                None => unreachable!("read_modules rejects unknown modules"),
            })
            .collect(),
        None => vec![
            module(0, "0", "", "Transformer"),
            module(1, "1", POOLING_DIR, "Pooling"),
        ],
    };
    write_atomic(
        &tmp.join(MODULES_FILE),
        &json(serde_json::Value::Array(module_list)),
    )?;
    if let Some(path) = &normalize_path {
        let (from, to) = (source_dir.join(path), tmp.join(path));
        std::fs::create_dir_all(&to).map_err(io_err(&to))?;
        if from.is_dir() {
            for entry in std::fs::read_dir(&from).map_err(io_err(&from))? {
                let entry = entry.map_err(io_err(&from))?;
                if entry.path().is_file() {
                    copy_if_present(&entry.path(), &to.join(entry.file_name()))?;
                }
            }
        }
    }

    let mut sentence_bert = serde_json::json!({
        "do_lower_case": st_config.do_lower_case.unwrap_or(false)
    });
    if let Some(n) = st_config.max_seq_length {
        sentence_bert["max_seq_length"] = n.min(backbone.max_position_embeddings()).into();
    }
    write_atomic(&tmp.join(SENTENCE_BERT_CONFIG_FILE), &json(sentence_bert))?;
    let (cls, mean, last) = match pooling {
        Pooling::Cls => (true, false, false),
        Pooling::Mean => (false, true, false),
        Pooling::LastToken => (false, false, true),
    };
    write_atomic(
        &tmp.join(POOLING_DIR).join("config.json"),
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

/// Copies `from` to `to` (a new file with the usual permissions) when `from` exists.
fn copy_if_present(from: &Path, to: &Path) -> Result<()> {
    if from.is_file() {
        let bytes = std::fs::read(from).map_err(io_err(from))?;
        write_atomic(to, &bytes)?;
    }
    Ok(())
}
