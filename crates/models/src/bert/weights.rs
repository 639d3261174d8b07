//! Loading a Hugging Face `model.safetensors` into a [`BertModel`].
//!
//! The weight map is explicit:
//! - checkpoint keys are rewritten by [`KEY_REMAPS`] (optional `bert.` / `roberta.` prefix
//!   dropped,
//!   `LayerNorm` → `layer_norm`, `attention.self` → `attention.self_attention`);
//! - Linear weights are transposed from PyTorch's `[out, in]` to Burn's `[in, out]`, and LayerNorm
//!   `weight`/`bias` are read into `gamma`/`beta` (Burn's `PyTorchToBurnAdapter`);
//! - the keys matched by [`SKIPPED_KEYS`] (pooler, MLM/NSP heads, RoBERTa's `lm_head`, the
//!   `position_ids` buffer) are deliberately not loaded;
//! - every other checkpoint key must land on a parameter, and every parameter must be found with
//!   the right shape, or loading fails with a [`ModelError::WeightMismatch`] naming the keys.

use std::path::Path;

use burn::module::Module;
use burn::store::{ApplyError, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::Device;

use super::config::BertConfig;
use super::model::BertModel;
use crate::cast::CastToF32;
use crate::error::{ModelError, Result};
use crate::finite::check_finite_weights;

/// Checkpoint key → module path rewrites, applied in this order.
pub const KEY_REMAPS: &[(&str, &str)] = &[
    (r"^bert\.", ""),
    (r"^roberta\.", ""),
    (r"\.LayerNorm\.", ".layer_norm."),
    (r"\.attention\.self\.", ".attention.self_attention."),
];

/// Checkpoint keys (after [`KEY_REMAPS`]) that are deliberately left unused.
pub const SKIPPED_KEYS: &[&str] = &[
    "pooler.",                 // the NSP pooler: sentence embeddings use our own pooling
    "cls.",                    // MLM / NSP heads of pre-training checkpoints
    "lm_head.",                // the MLM head of RoBERTa / XLM-R `*ForMaskedLM` checkpoints
    "embeddings.position_ids", // a constant buffer (0..max_positions), recomputed in forward
];

/// Maps a module path back to the checkpoint's naming (`prefix` is the file's `bert.`,
/// `roberta.` or nothing), for error messages.
fn checkpoint_key(module_path: &str, prefix: &str) -> String {
    let key = module_path
        .replace(".layer_norm.", ".LayerNorm.")
        .replace(".attention.self_attention.", ".attention.self.");
    let key = match key.rsplit_once('.') {
        Some((head, "gamma")) if head.ends_with("LayerNorm") => format!("{head}.weight"),
        Some((head, "beta")) if head.ends_with("LayerNorm") => format!("{head}.bias"),
        _ => key,
    };
    format!("{prefix}{key}")
}

/// Whether a remapped checkpoint key is one of the deliberately unused ones.
fn is_skipped(key: &str) -> bool {
    SKIPPED_KEYS.iter().any(|prefix| key.starts_with(prefix))
}

impl BertModel {
    /// Builds the model described by `config` on `device` and loads `weights`
    /// (a Hugging Face `model.safetensors`, keys with or without a `bert.` / `roberta.`
    /// prefix).
    ///
    /// # Errors
    /// [`ModelError::Weights`] if the file cannot be read or parsed;
    /// [`ModelError::WeightMismatch`] listing every missing key, every key whose shape differs
    /// from the configured model (with both shapes), and every unexpected key;
    /// [`ModelError::NonFiniteWeight`] naming a tensor that holds a NaN or an infinity.
    pub fn load_safetensors(config: &BertConfig, weights: &Path, device: &Device) -> Result<Self> {
        if let Err(message) = config.validate() {
            return Err(ModelError::InvalidArgument {
                name: "config",
                message,
            });
        }
        let mut store = SafetensorsStore::from_file(weights)
            .with_from_adapter(PyTorchToBurnAdapter)
            .allow_partial(true)
            .validate(false);
        for (from, to) in KEY_REMAPS {
            store = store.with_key_remapping(*from, *to);
        }
        let mut model = config.init(device);
        let result = model
            .load_from(&mut store)
            .map_err(|e| ModelError::Weights {
                path: weights.to_path_buf(),
                message: e.to_string(),
            })?;

        let clean = result.missing.is_empty()
            && result.errors.is_empty()
            && result.unused.iter().all(|k| is_skipped(k));
        // Name keys as the file spells them.
        let prefix = checkpoint_prefix(weights)?;
        if clean {
            let model = model.map(&mut CastToF32);
            check_finite_weights(&model, weights, |path| checkpoint_key(path, prefix))?;
            return Ok(model);
        }
        let mut details = String::new();
        for (path, _) in &result.missing {
            details.push_str(&format!("\n  missing key {}", checkpoint_key(path, prefix)));
        }
        for error in &result.errors {
            let line = match error {
                ApplyError::ShapeMismatch {
                    path,
                    expected,
                    found,
                } => format!(
                    "\n  mis-shaped key {}: the model expects {:?}, the file has {:?} \
                     (Burn layout; Linear weights are transposed)",
                    checkpoint_key(path, prefix),
                    expected.as_slice(),
                    found.as_slice()
                ),
                other => format!("\n  {other}"),
            };
            details.push_str(&line);
        }
        for key in result.unused.iter().filter(|k| !is_skipped(k)) {
            details.push_str(&format!(
                "\n  unexpected key {}",
                checkpoint_key(key, prefix)
            ));
        }
        Err(ModelError::WeightMismatch {
            path: weights.to_path_buf(),
            details,
        })
    }
}

/// The model prefix of the checkpoint's keys, `bert.`, `roberta.` or none (read from the
/// safetensors header only).
fn checkpoint_prefix(path: &Path) -> Result<&'static str> {
    use std::io::Read;
    let io_err = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io_err)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(io_err)?;
    let len = u64::from_le_bytes(len).min(100 << 20) as usize;
    let mut header = vec![0u8; len];
    file.read_exact(&mut header).map_err(io_err)?;
    let header = String::from_utf8_lossy(&header);
    Ok(["bert.", "roberta."]
        .into_iter()
        .find(|prefix| header.contains(&format!("\"{prefix}")))
        .unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_key_inverts_the_remaps() {
        assert_eq!(
            checkpoint_key("encoder.layer.3.attention.output.layer_norm.gamma", ""),
            "encoder.layer.3.attention.output.LayerNorm.weight"
        );
        assert_eq!(
            checkpoint_key("embeddings.layer_norm.beta", "bert."),
            "bert.embeddings.LayerNorm.bias"
        );
        assert_eq!(
            checkpoint_key("embeddings.word_embeddings.weight", "roberta."),
            "roberta.embeddings.word_embeddings.weight"
        );
        assert_eq!(
            checkpoint_key("encoder.layer.0.attention.self_attention.query.weight", ""),
            "encoder.layer.0.attention.self.query.weight"
        );
    }

    #[test]
    fn pooler_heads_and_position_ids_are_skipped_but_nothing_else() {
        assert!(is_skipped("pooler.dense.weight"));
        assert!(is_skipped("cls.predictions.bias"));
        assert!(is_skipped("embeddings.position_ids"));
        assert!(is_skipped("lm_head.dense.weight"));
        assert!(!is_skipped("encoder.layer.6.output.dense.weight"));
    }
}
