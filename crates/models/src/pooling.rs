//! Sentence pooling over token states (CLS, mask-aware mean, last token) and the Matryoshka
//! step: truncate to the first `d` coordinates, then L2-normalise.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use burn::tensor::{Int, Tensor};
use serde::Deserialize;

use crate::error::{read_json, ModelError, Result};

/// Directory of the pooling module in a sentence-transformers model.
pub const POOLING_DIR: &str = "1_Pooling";

/// How token states `[batch, seq, hidden]` become one vector per text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The first token's state (`[CLS]`).
    Cls,
    /// The mean over real tokens (padding excluded by the attention mask).
    Mean,
    /// The state of the last real token (for decoder-style embedders).
    LastToken,
}

impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
            Pooling::LastToken => "last",
        })
    }
}

impl FromStr for Pooling {
    type Err = ModelError;

    /// Parses `cls`, `mean` or `last` (also `last_token`, `lasttoken`).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cls" => Ok(Pooling::Cls),
            "mean" => Ok(Pooling::Mean),
            "last" | "last_token" | "lasttoken" => Ok(Pooling::LastToken),
            other => Err(ModelError::InvalidArgument {
                name: "pooling",
                message: format!("`{other}` (expected mean, cls or last)"),
            }),
        }
    }
}

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

impl Pooling {
    /// Reads the pooling mode of a sentence-transformers model directory from
    /// `1_Pooling/config.json`; `Ok(None)` when the file does not exist.
    ///
    /// # Errors
    /// [`ModelError::Config`] if the file is malformed; [`ModelError::Unsupported`] for max,
    /// sqrt-length, weighted-mean pooling or a combination of modes.
    pub fn from_model_dir(dir: &Path) -> Result<Option<Self>> {
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

    /// Pools token states into one vector per text.
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]`
    /// - `attention_mask`: `[batch, seq]`, 1 for a real token, 0 for padding
    /// - output: `[batch, hidden]`
    pub fn pool(&self, hidden: Tensor<3>, attention_mask: Tensor<2, Int>) -> Tensor<2> {
        let [batch, seq, width] = hidden.dims();
        match self {
            Pooling::Cls => hidden
                .slice([0..batch, 0..1, 0..width])
                .reshape([batch, width]),
            Pooling::Mean => {
                let mask = attention_mask.float().unsqueeze_dim::<3>(2); // [batch, seq, 1]
                let summed = (hidden * mask.clone()).sum_dim(1).reshape([batch, width]);
                // sentence-transformers clamps the count at 1e-9 so an all-padding row gives 0.
                let counts = mask.sum_dim(1).reshape([batch, 1]).clamp_min(1e-9);
                summed / counts
            }
            Pooling::LastToken => {
                // The last position whose mask is 1 (works for left and right padding).
                let device = hidden.device();
                let positions = Tensor::<1, Int>::arange(0..seq as i64, &device)
                    .unsqueeze::<2>()
                    .expand([batch, seq]);
                let last = (attention_mask * positions).argmax(1); // [batch, 1]
                let index = last.unsqueeze_dim::<3>(2).expand([batch, 1, width]);
                hidden.gather(1, index).reshape([batch, width])
            }
        }
    }
}

/// The Matryoshka step: keeps the first `dim` coordinates, then L2-normalises each row.
///
/// A zero row stays zero (the norm is clamped at 1e-12, like `torch.nn.functional.normalize`).
///
/// # Shapes
/// - `embeddings`: `[batch, hidden]`
/// - output: `[batch, dim]`
///
/// # Errors
/// [`ModelError::DimTooLarge`] if `dim > hidden`, [`ModelError::InvalidArgument`] if `dim == 0`.
pub fn truncate_normalize(embeddings: Tensor<2>, dim: usize) -> Result<Tensor<2>> {
    let [batch, hidden] = embeddings.dims();
    check_dim(dim, hidden)?;
    let truncated = embeddings.slice([0..batch, 0..dim]);
    let norms = truncated
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12);
    Ok(truncated / norms)
}

/// Checks a Matryoshka dimension against the hidden size.
///
/// # Errors
/// [`ModelError::DimTooLarge`] if `dim > hidden_size`, [`ModelError::InvalidArgument`] if
/// `dim == 0`.
pub fn check_dim(dim: usize, hidden_size: usize) -> Result<()> {
    if dim == 0 {
        return Err(ModelError::InvalidArgument {
            name: "dim",
            message: "an embedding dim must be at least 1".to_string(),
        });
    }
    if dim > hidden_size {
        return Err(ModelError::DimTooLarge { dim, hidden_size });
    }
    Ok(())
}
