//! The pooling a sentence-transformers model was trained with, read from its
//! `1_Pooling/config.json`.
//!
//! [`Pooling`] itself and the pooling function [`pool`](mrl_common::pool) live in `mrl-common`
//! (shared with the losses of `mrl-core`); this crate re-exports them.

use std::path::Path;

use mrl_common::Pooling;
use serde::Deserialize;

use crate::error::{read_json, ModelError, Result};

/// Directory of the pooling module in a sentence-transformers model.
pub const POOLING_DIR: &str = "1_Pooling";

/// The fields of sentence-transformers' `1_Pooling/config.json` that select the mode.
#[derive(Deserialize)]
struct StPoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

/// Reads the pooling mode of a sentence-transformers model directory from
/// `1_Pooling/config.json`; `Ok(None)` when the file does not exist.
///
/// # Errors
/// [`ModelError::Config`] if the file is malformed; [`ModelError::Unsupported`] for max,
/// sqrt-length, weighted-mean pooling or a combination of modes.
pub fn pooling_from_model_dir(dir: &Path) -> Result<Option<Pooling>> {
    let path = dir.join(POOLING_DIR).join("config.json");
    if !path.is_file() {
        return Ok(None);
    }
    let config: StPoolingConfig = read_json(&path)?;
    let modes = [
        (
            config.pooling_mode_cls_token,
            Some(Pooling::Cls),
            "cls_token",
        ),
        (
            config.pooling_mode_mean_tokens,
            Some(Pooling::Mean),
            "mean_tokens",
        ),
        (
            config.pooling_mode_lasttoken,
            Some(Pooling::LastToken),
            "lasttoken",
        ),
        (config.pooling_mode_max_tokens, None, "max_tokens"),
        (
            config.pooling_mode_mean_sqrt_len_tokens,
            None,
            "mean_sqrt_len_tokens",
        ),
        (
            config.pooling_mode_weightedmean_tokens,
            None,
            "weightedmean_tokens",
        ),
    ];
    let enabled: Vec<_> = modes.iter().filter(|(on, _, _)| *on).collect();
    match enabled.as_slice() {
        [(_, Some(pooling), _)] => Ok(Some(*pooling)),
        [(_, None, name)] => Err(ModelError::Unsupported {
            path,
            message: format!("pooling mode `{name}` (supported: cls, mean, lasttoken)"),
        }),
        [] => Err(ModelError::Config {
            path,
            message: "no pooling_mode_* is true".to_string(),
        }),
        several => Err(ModelError::Unsupported {
            path,
            message: format!(
                "{} pooling modes at once ({}); choose one with --pooling",
                several.len(),
                several
                    .iter()
                    .map(|(_, _, n)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}
