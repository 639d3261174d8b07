//! What every task's TOML config shares: reading with `--set` overrides, `${MRL_SHARED}`
//! expansion, and the sections the training loop itself reads — `[optimizer]`, `[training]`,
//! `[checkpoint]` — each validated here once, with the key named in every error.
//!
//! A task's config (e.g. [`EmbeddingConfig`](crate::embedding::EmbeddingConfig)) holds these
//! sections as fields next to its own (`[model]`, `[data]`, `[objective]`, …) and hands the loop
//! a [`LoopSettings`].

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// A [`TrainError::ConfigValue`] for `key`.
pub(crate) fn bad(key: &str, message: impl Into<String>) -> TrainError {
    TrainError::ConfigValue {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Reads a TOML config, applying `overrides` (`key.path=value`, the value in TOML syntax or a
/// bare string; `key.path=` with nothing after `=` removes the key, so that it takes its
/// default — e.g. `training.epochs=` before `training.steps=10`) before deserialising.
///
/// # Errors
/// [`TrainError::Io`] naming the file; [`TrainError::ConfigSyntax`] (unknown key, wrong type,
/// unknown enum value: the message names the key and the allowed values).
pub fn read_toml<T: DeserializeOwned>(path: &Path, overrides: &[String]) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(crate::error::io_err(path))?;
    parse_toml(&text, path, overrides)
}

/// [`read_toml`] on a string; `origin` names it in errors.
///
/// # Errors
/// As [`read_toml`].
pub fn parse_toml<T: DeserializeOwned>(
    text: &str,
    origin: &Path,
    overrides: &[String],
) -> Result<T> {
    let syntax = |message: String| TrainError::ConfigSyntax {
        path: origin.to_path_buf(),
        message,
    };
    if overrides.is_empty() {
        // Straight from the text: errors carry the line and column, and name the key.
        return toml::from_str(text).map_err(|e| syntax(describe_toml_error(text, &e)));
    }
    let table: toml::Table =
        toml::from_str(text).map_err(|e| syntax(e.to_string().trim_end().to_string()))?;
    let mut value = toml::Value::Table(table);
    for item in overrides {
        apply_override(&mut value, item)?;
    }
    value
        .try_into()
        .map_err(|e: toml::de::Error| syntax(e.to_string().trim_end().to_string()))
}

/// The dotted key a TOML error is about, found from its span: the key on the line the span
/// starts on, under the nearest `[section]` above it; for a missing field (the span is the
/// section), the section and the field the message names.
fn toml_error_key(text: &str, err: &toml::de::Error) -> Option<String> {
    let start = err.span()?.start.min(text.len());
    let mut section = String::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let end = offset + line.len();
        let trimmed = line.trim();
        let header = trimmed
            .strip_prefix("[[")
            .and_then(|h| h.strip_suffix("]]"))
            .or_else(|| trimmed.strip_prefix('[').and_then(|h| h.split(']').next()));
        if let Some(h) = header {
            section = h.trim().to_string();
        }
        if start < end || end == text.len() {
            let join = |key: &str| {
                if section.is_empty() {
                    key.to_string()
                } else {
                    format!("{section}.{key}")
                }
            };
            if header.is_some() || trimmed.is_empty() {
                // The span is a whole section (a tagged section is read as one value): a missing
                // field names itself in the message; otherwise the key is the section's line
                // holding the value the message quotes.
                let quoted = err.message().split('`').nth(1)?;
                if err.message().starts_with("missing field") {
                    return Some(join(quoted));
                }
                let key = text[end..]
                    .lines()
                    .take_while(|l| !l.trim_start().starts_with('['))
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .find_map(|l| {
                        let (key, value) = l.split_once('=')?;
                        value.contains(quoted).then(|| key.trim().trim_matches('"'))
                    })?;
                return Some(join(key));
            }
            let key = line.split('=').next()?.trim().trim_matches('"');
            return (!key.is_empty()).then(|| join(key));
        }
        offset = end;
    }
    None
}

/// A TOML error with the dotted key it is about (when its span tells), e.g.
/// ``key `training.steps`: TOML parse error at line 22 …``.
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.to_string().trim_end().to_string();
    match toml_error_key(text, err) {
        Some(key) => format!("key `{key}`: {message}"),
        None => message,
    }
}

/// Sets `key.path = value` in a parsed TOML document; `value` is parsed as TOML, or taken as a
/// string when it does not parse; an empty value removes the key.
fn apply_override(doc: &mut toml::Value, item: &str) -> Result<()> {
    let (key, raw) = item
        .split_once('=')
        .ok_or_else(|| bad(item, "an override must look like `section.key=value`"))?;
    let key = key.trim();
    let raw = raw.trim();
    let value: Option<toml::Value> = if raw.is_empty() {
        None
    } else {
        Some(match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
            Ok(mut t) => t.remove("v").expect("parsed `v`"),
            Err(_) => toml::Value::String(raw.to_string()),
        })
    };
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad(key, "empty key segment in override"));
    }
    let mut table = doc
        .as_table_mut()
        .ok_or_else(|| bad(key, "the config is not a table"))?;
    for part in &parts[..parts.len() - 1] {
        table = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .ok_or_else(|| bad(key, format!("`{part}` is not a section")))?;
    }
    let last = parts[parts.len() - 1].to_string();
    match value {
        Some(value) => {
            table.insert(last, value);
        }
        None => {
            table.remove(&last);
        }
    }
    Ok(())
}

/// Expands `${MRL_SHARED}` (environment variable, default `../shared`) in a config path.
pub fn expand_path(path: &str) -> PathBuf {
    if path.contains("${MRL_SHARED}") {
        let shared = std::env::var("MRL_SHARED").unwrap_or_else(|_| "../shared".to_string());
        PathBuf::from(path.replace("${MRL_SHARED}", &shared))
    } else {
        PathBuf::from(path)
    }
}

/// `[optimizer]`: AdamW, cosine schedule with linear warm-up, global-norm gradient clipping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSection {
    /// Peak learning rate of the backbone. Default `2e-5` (MIPIC Table 7).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Peak learning rate of the objective's own parameters (SIA lifts, PIC projectors,
    /// distillation projectors), a second parameter group. Default `2 × lr` (the MIPIC notebook).
    #[serde(default)]
    pub head_lr: Option<f64>,
    /// Decoupled weight decay. Default `0.01`.
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Adam `β₁`. Default `0.9`.
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    /// Adam `β₂`. Default `0.999`.
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    /// Adam `ε`. Default `1e-6`.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Clip the global gradient norm (every parameter group together) to this; `0` = off.
    /// Default `1.0`.
    #[serde(default = "default_grad_clip")]
    pub grad_clip: f64,
    /// Fraction of the steps spent warming up linearly from 0. Default `0.1`.
    #[serde(default = "default_warmup_ratio")]
    pub warmup_ratio: f64,
    /// Warm-up steps; overrides `warmup_ratio` when set.
    #[serde(default)]
    pub warmup_steps: Option<usize>,
    /// Learning rate at the end of the cosine, as a fraction of the peak. Default `0`.
    #[serde(default)]
    pub min_lr_ratio: f64,
}

fn default_lr() -> f64 {
    2e-5
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-6
}
fn default_grad_clip() -> f64 {
    1.0
}
fn default_warmup_ratio() -> f64 {
    0.1
}

impl Default for OptimizerSection {
    fn default() -> Self {
        toml::from_str("").expect("every optimizer key has a default")
    }
}

impl OptimizerSection {
    /// The second group's peak learning rate (`head_lr`, default `2 × lr`).
    pub fn head_lr(&self) -> f64 {
        self.head_lr.unwrap_or(2.0 * self.lr)
    }

    /// Checks every value.
    ///
    /// # Errors
    /// [`TrainError::ConfigValue`] naming the key: learning rates not in `(0, 1]`, negative
    /// weight decay, betas outside `[0, 1)`, `eps <= 0`, negative clipping, warm-up ratio
    /// outside `[0, 1)`, `min_lr_ratio` outside `[0, 1]`.
    pub fn validate(&self) -> Result<()> {
        for (key, lr) in [
            ("optimizer.lr", Some(self.lr)),
            ("optimizer.head_lr", self.head_lr),
        ] {
            if let Some(lr) = lr {
                if !(lr.is_finite() && lr > 0.0 && lr <= 1.0) {
                    return Err(bad(key, format!("must lie in (0, 1], got {lr}")));
                }
            }
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(bad(
                "optimizer.weight_decay",
                format!("must be >= 0, got {}", self.weight_decay),
            ));
        }
        for (key, b) in [
            ("optimizer.beta1", self.beta1),
            ("optimizer.beta2", self.beta2),
        ] {
            if !(0.0..1.0).contains(&b) {
                return Err(bad(key, format!("must lie in [0, 1), got {b}")));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(bad(
                "optimizer.eps",
                format!("must be > 0, got {}", self.eps),
            ));
        }
        if !(self.grad_clip.is_finite() && self.grad_clip >= 0.0) {
            return Err(bad(
                "optimizer.grad_clip",
                format!("must be >= 0 (0 = off), got {}", self.grad_clip),
            ));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return Err(bad(
                "optimizer.warmup_ratio",
                format!("must lie in [0, 1), got {}", self.warmup_ratio),
            ));
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return Err(bad(
                "optimizer.min_lr_ratio",
                format!("must lie in [0, 1], got {}", self.min_lr_ratio),
            ));
        }
        Ok(())
    }

    /// Warm-up steps for a run of `total` steps.
    pub fn warmup_steps(&self, total: usize) -> usize {
        self.warmup_steps
            .unwrap_or_else(|| (self.warmup_ratio * total as f64).round() as usize)
    }
}

/// `[training]`: batch size and length of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSection {
    /// Examples per step. Default `16` (MIPIC Table 7).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Number of optimisation steps (exclusive with `epochs`).
    #[serde(default)]
    pub steps: Option<usize>,
    /// Number of passes over the data (exclusive with `steps`).
    #[serde(default)]
    pub epochs: Option<usize>,
    /// Group examples of similar length into batches (less padding). Default `true`.
    #[serde(default = "default_true")]
    pub length_grouping: bool,
    /// Batches per length-sorted pool when grouping. Default `50`.
    #[serde(default = "default_pool_batches")]
    pub pool_batches: usize,
    /// Append the loss breakdown to `losses.jsonl` every N steps. Default `1`.
    #[serde(default = "default_one")]
    pub log_every: usize,
}

fn default_batch_size() -> usize {
    16
}
pub(crate) fn default_true() -> bool {
    true
}
fn default_pool_batches() -> usize {
    50
}
fn default_one() -> usize {
    1
}

impl TrainingSection {
    /// Checks every value; `min_batch` is the smallest batch the task can use (2 for in-batch
    /// negatives, 1 for distillation).
    ///
    /// # Errors
    /// [`TrainError::ConfigValue`] naming the key: a batch below `min_batch`, neither or both of
    /// `steps` / `epochs`, zero steps or epochs, zero `pool_batches` or `log_every`.
    pub fn validate(&self, min_batch: usize, why_min: &str) -> Result<()> {
        if self.batch_size < min_batch {
            return Err(bad(
                "training.batch_size",
                format!(
                    "must be >= {min_batch} ({why_min}), got {}",
                    self.batch_size
                ),
            ));
        }
        match (self.steps, self.epochs) {
            (None, None) => return Err(bad("training.steps", "set `steps` or `epochs`")),
            (Some(_), Some(_)) => {
                return Err(bad(
                    "training.epochs",
                    "set either `steps` or `epochs`, not both",
                ))
            }
            (Some(0), _) => return Err(bad("training.steps", "must be >= 1")),
            (_, Some(0)) => return Err(bad("training.epochs", "must be >= 1")),
            _ => {}
        }
        if self.pool_batches == 0 {
            return Err(bad("training.pool_batches", "must be >= 1"));
        }
        if self.log_every == 0 {
            return Err(bad("training.log_every", "must be >= 1"));
        }
        Ok(())
    }

    /// The number of optimisation steps for data of `n_batches` batches per epoch.
    pub fn total_steps(&self, n_batches: usize) -> usize {
        match (self.steps, self.epochs) {
            (Some(s), _) => s,
            (None, Some(e)) => e * n_batches.max(1),
            (None, None) => unreachable!("validated: steps or epochs is set"),
        }
    }
}

/// `[checkpoint]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSection {
    /// Save every N steps (and at the end); `0` = only at the end. Default `100`.
    #[serde(default = "default_ckpt_every")]
    pub every: usize,
    /// Checkpoints kept on disk (oldest removed first). Default `2`.
    #[serde(default = "default_keep")]
    pub keep: usize,
}

fn default_ckpt_every() -> usize {
    100
}
fn default_keep() -> usize {
    2
}

impl Default for CheckpointSection {
    fn default() -> Self {
        Self {
            every: default_ckpt_every(),
            keep: default_keep(),
        }
    }
}

impl CheckpointSection {
    /// Checks every value.
    ///
    /// # Errors
    /// [`TrainError::ConfigValue`] (`checkpoint.keep`) when no checkpoint would be kept.
    pub fn validate(&self) -> Result<()> {
        if self.keep == 0 {
            return Err(bad(
                "checkpoint.keep",
                "must be >= 1 (the latest checkpoint is needed to resume)",
            ));
        }
        Ok(())
    }
}

/// Everything the training loop reads from a task's config.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopSettings {
    /// Seed of everything random (data order, dropout, the losses' sampling).
    pub seed: u64,
    /// AdamW, schedule and clipping.
    pub optimizer: OptimizerSection,
    /// Steps of the whole run.
    pub total_steps: usize,
    /// Append to `losses.jsonl` every N steps.
    pub log_every: usize,
    /// Checkpointing.
    pub checkpoint: CheckpointSection,
    /// Evaluate every N steps (and after the last); `0` = only before and after training.
    pub eval_every: usize,
    /// Evaluate before the first step.
    pub eval_before: bool,
    /// Where `losses.jsonl` and `checkpoints/` go.
    pub output_dir: PathBuf,
}

impl LoopSettings {
    /// Warm-up steps of the run.
    pub fn warmup_steps(&self) -> usize {
        self.optimizer.warmup_steps(self.total_steps)
    }
}
