//! BERT's pooler (`pooler.dense`, a `hidden → hidden` Linear followed by tanh over the `[CLS]`
//! state), kept only so that an export carries it over.
//!
//! The pooler was trained for next-sentence prediction; sentence embeddings pool the last
//! hidden state themselves, so [`BertModel`](super::BertModel) neither loads nor uses it
//! ([`super::weights::SKIPPED_KEYS`]). `transformers`' `BertModel`, however, has a pooler and
//! reports it as missing (and initialises it at random) when a checkpoint lacks it, so
//! [`BertModel::save_hf_safetensors_with_pooler`](super::BertModel::save_hf_safetensors_with_pooler)
//! writes the source checkpoint's pooler back unchanged.

use std::path::Path;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::Device;

use crate::cast::CastToF32;
use crate::error::{ModelError, Result};

/// Checkpoint key → module path rewrites for the pooler: the optional `bert.` / `roberta.`
/// prefix and the `pooler.` container are dropped (`pooler.dense.weight` → `dense.weight`).
const POOLER_KEY_REMAPS: &[(&str, &str)] = &[(r"^(bert\.|roberta\.)?pooler\.", "")];

/// `pooler.dense` of a BERT-family checkpoint.
///
/// # Shapes
/// - `dense.weight`: `[hidden, hidden]` (Burn layout `[in, out]`; PyTorch's is `[out, in]`)
/// - `dense.bias`: `[hidden]`
#[derive(Module, Debug)]
pub struct BertPooler {
    /// `pooler.dense`.
    pub dense: Linear,
}

impl BertPooler {
    /// A pooler of width `hidden_size` with Burn's default initialisation (for tests and
    /// synthetic checkpoints; a real one comes from [`BertPooler::load_safetensors`]).
    pub fn new(hidden_size: usize, device: &Device) -> Self {
        Self {
            dense: LinearConfig::new(hidden_size, hidden_size).init(device),
        }
    }

    /// The pooler of the checkpoint at `weights` (keys `pooler.dense.weight` / `.bias`, with or
    /// without a `bert.` / `roberta.` prefix) for a model of width `hidden_size`, as f32 on
    /// `device`; `Ok(None)` when the checkpoint has no pooler.
    ///
    /// # Errors
    /// [`ModelError::Weights`] if the file cannot be read; [`ModelError::WeightMismatch`] when
    /// only one of the two tensors is present or a shape is not `[hidden_size, hidden_size]` /
    /// `[hidden_size]`.
    pub fn load_safetensors(
        weights: &Path,
        hidden_size: usize,
        device: &Device,
    ) -> Result<Option<Self>> {
        let mut store = SafetensorsStore::from_file(weights)
            .with_from_adapter(PyTorchToBurnAdapter)
            .allow_partial(true)
            .validate(false);
        for (from, to) in POOLER_KEY_REMAPS {
            store = store.with_key_remapping(*from, *to);
        }
        let mut pooler = Self::new(hidden_size, device);
        let result = pooler
            .load_from(&mut store)
            .map_err(|e| ModelError::Weights {
                path: weights.to_path_buf(),
                message: e.to_string(),
            })?;
        if result.applied.is_empty() && result.errors.is_empty() {
            return Ok(None);
        }
        if result.missing.is_empty() && result.errors.is_empty() {
            return Ok(Some(pooler.map(&mut CastToF32)));
        }
        let mut details = String::new();
        for (path, _) in &result.missing {
            details.push_str(&format!(
                "\n  missing key pooler.{path} (the pooler is partial)"
            ));
        }
        for error in &result.errors {
            details.push_str(&format!(
                "\n  pooler: {error} (expected a {hidden_size} × {hidden_size} dense layer)"
            ));
        }
        Err(ModelError::WeightMismatch {
            path: weights.to_path_buf(),
            details,
        })
    }
}
