//! The TOML training config: every section rejects unknown keys, and [`TrainConfig::validate`]
//! names the key of any bad value.
//!
//! ```toml
//! seed = 42
//! device = "flex"                  # flex | ndarray | wgpu
//! output_dir = "runs/mipic-minilm"
//!
//! [model]
//! path = "sentence-transformers/all-MiniLM-L6-v2"   # a directory, or an id looked up in
//! max_length = 64                                   # $MRL_SHARED/models and the HF cache
//!
//! [data]
//! path = "data/stsb_train_sentences.txt"
//! format = "sentences"             # sentences | pairs | triplets | scored_pairs
//!
//! [objective]
//! kind = "mipic"                   # mrl | ese | 2d | mipic
//! preset = "minilm-l6"             # mipic: a name of mrl_core::MipicPreset
//!
//! [optimizer]
//! lr = 2e-5
//!
//! [training]
//! batch_size = 16
//! steps = 300                      # or epochs = 1
//! ```
//!
//! Paths may contain `${MRL_SHARED}` (the environment variable, default `../shared`);
//! relative paths are relative to the working directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// A whole training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Seed of the data order, dropout and loss sampling. Default `42` (MIPIC Table 7).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Backend: `flex` (default), `ndarray` or `wgpu`.
    #[serde(default)]
    pub device: DeviceKind,
    /// Where checkpoints, the exported model and the report go.
    pub output_dir: String,
    /// The encoder to train.
    pub model: ModelSection,
    /// The training corpus.
    pub data: DataSection,
    /// The loss.
    pub objective: ObjectiveSection,
    /// AdamW and the learning-rate schedule.
    #[serde(default)]
    pub optimizer: OptimizerSection,
    /// Batch size and length of the run.
    pub training: TrainingSection,
    /// Dev-set evaluation during training (optional).
    #[serde(default)]
    pub eval: Option<EvalSection>,
    /// Checkpointing.
    #[serde(default)]
    pub checkpoint: CheckpointSection,
}

fn default_seed() -> u64 {
    42
}

/// A Burn backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// Burn's Flex CPU backend.
    #[default]
    Flex,
    /// Burn's NdArray CPU backend.
    Ndarray,
    /// wgpu (needs the `wgpu` feature).
    Wgpu,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A model directory (Hugging Face layout) or a Hugging Face id such as
    /// `sentence-transformers/all-MiniLM-L6-v2` (see [`crate::resolve_model`]).
    pub path: String,
    /// Truncation length in tokens during training. Default `128`.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// `mean` or `cls`; default: the model's `1_Pooling/config.json`, else the objective's.
    #[serde(default)]
    pub pooling: Option<String>,
}

fn default_max_length() -> usize {
    128
}

/// How the lines of the data file are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    /// One sentence per line, or one TSV column (`column`): unsupervised SimCSE.
    Sentences,
    /// `anchor<TAB>positive`: in-batch negatives (MNRL).
    Pairs,
    /// `anchor<TAB>positive<TAB>negative`: MNRL with a hard negative.
    Triplets,
    /// `score<TAB>sentence1<TAB>sentence2`: CoSENT.
    ScoredPairs,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// The data file (UTF-8).
    pub path: String,
    /// Its format.
    pub format: DataFormat,
    /// For `sentences`: read this 0-based TSV column instead of the whole line.
    #[serde(default)]
    pub column: Option<usize>,
    /// Columns of `pairs` / `triplets` / `scored_pairs` start here (0-based). Default `0`.
    #[serde(default)]
    pub first_column: usize,
    /// Skip the first line (a header). Default `false`.
    #[serde(default)]
    pub skip_header: bool,
    /// Use only the first N examples (after de-duplication for `sentences`).
    #[serde(default)]
    pub max_examples: Option<usize>,
}

/// The objectives `mrl train` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectiveKind {
    /// Matryoshka over InfoNCE (sentences), MNRL (pairs, triplets) or CoSENT (scored pairs).
    #[serde(rename = "mrl")]
    Mrl,
    /// ESE: MRL at the last layer plus one sampled layer, log dim weights.
    #[serde(rename = "ese")]
    Ese,
    /// 2D Matryoshka: one sampled dim and prior layer per step, KL to the last layer.
    #[serde(rename = "2d")]
    TwoD,
    /// MIPIC: MRL + SIA + PIC (sentences only).
    #[serde(rename = "mipic")]
    Mipic,
}

/// `[objective]`: the loss, a preset and overrides. Unset keys take the preset's (MIPIC) or
/// the loss's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveSection {
    /// Which loss.
    pub kind: ObjectiveKind,
    /// MIPIC preset name (`minilm-l6`, `tinybert-6l`, `bert-base`, `bge-m3`,
    /// `qwen3-embedding-0.6b`); default: `minilm-l6` for a 384-wide model.
    #[serde(default)]
    pub preset: Option<String>,
    /// `paper` (default) or `notebook` (MIPIC only).
    #[serde(default)]
    pub variant: Option<String>,
    /// Nested dims, strictly increasing, ending at the hidden size. Default: the preset's, or
    /// every power of two from 8 below the hidden size, and the hidden size.
    #[serde(default)]
    pub dims: Option<Vec<usize>>,
    /// InfoNCE / MIPIC temperature. Default `0.05`.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// MIPIC `α`.
    #[serde(default)]
    pub alpha: Option<f64>,
    /// MIPIC `λ_att`.
    #[serde(default)]
    pub lambda_att: Option<f64>,
    /// MIPIC `λ_cka`.
    #[serde(default)]
    pub lambda_cka: Option<f64>,
    /// MIPIC `λ_pic`.
    #[serde(default)]
    pub lambda_pic: Option<f64>,
    /// MIPIC SIA layers (hidden-state indices).
    #[serde(default)]
    pub sia_layers: Option<Vec<usize>>,
    /// MIPIC PIC chain of `[dim, layer]`.
    #[serde(default)]
    pub chain: Option<Vec<(usize, usize)>>,
    /// MIPIC: detach the full-width side of SIA.
    #[serde(default)]
    pub detach_teacher: Option<bool>,
    /// `sum` or `mean` over dims (and SIA terms, PIC links).
    #[serde(default)]
    pub aggregation: Option<String>,
    /// MIPIC: MRL dims sampled per step (default: every dim; SIA and PIC keep every dim).
    #[serde(default)]
    pub mrl_dims_per_step: Option<usize>,
    /// MIPIC: PIC curriculum length in steps (link `i` of `n` joins at `i · W / n`).
    /// Default `0` (every link from step 0, the paper).
    #[serde(default)]
    pub pic_warmup_steps: Option<usize>,
    /// 2D: prior layers sampled per step. Default `1`.
    #[serde(default)]
    pub n_layers_per_step: Option<usize>,
    /// 2D: KL temperature. Default `0.3`.
    #[serde(default)]
    pub kl_temperature: Option<f64>,
}

/// `[optimizer]`: AdamW, cosine schedule with linear warm-up, global-norm gradient clipping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSection {
    /// Peak learning rate of the encoder. Default `2e-5` (MIPIC Table 7).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Peak learning rate of the objective's own parameters (SIA lifts, PIC projectors).
    /// Default `2 × lr` (the MIPIC notebook).
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
    /// Clip the global gradient norm (encoder and objective together) to this; `0` = off.
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

/// `[training]`.
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
    /// Group examples of similar token length into batches (less padding). Default `true`.
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
fn default_true() -> bool {
    true
}
fn default_pool_batches() -> usize {
    50
}
fn default_one() -> usize {
    1
}

/// `[eval]`: STS dev set, Spearman at every dim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// STS TSV (`score<TAB>sentence1<TAB>sentence2`, one header line).
    pub dev: String,
    /// Evaluate every N steps (and at the end); `0` = only before and after training.
    #[serde(default)]
    pub every: usize,
    /// Dims to report. Default: the objective's dims.
    #[serde(default)]
    pub dims: Option<Vec<usize>>,
    /// Sentences per forward pass. Default `64`.
    #[serde(default = "default_eval_batch")]
    pub batch_size: usize,
    /// Evaluate before training too. Default `true`.
    #[serde(default = "default_true")]
    pub before: bool,
}

fn default_eval_batch() -> usize {
    64
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

fn bad(key: &str, message: impl Into<String>) -> TrainError {
    TrainError::ConfigValue {
        key: key.to_string(),
        message: message.into(),
    }
}

impl TrainConfig {
    /// Reads and validates a TOML config, applying `overrides` (`key.path=value`, the value in
    /// TOML syntax or a bare string) first.
    ///
    /// # Errors
    /// [`TrainError::Io`], [`TrainError::ConfigSyntax`] (unknown key, wrong type: the message
    /// names the key), [`TrainError::ConfigValue`] (see [`TrainConfig::validate`]).
    pub fn from_file(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(crate::error::io_err(path))?;
        Self::from_toml_str(&text, path, overrides)
    }

    /// [`TrainConfig::from_file`] on a string; `origin` names it in errors.
    ///
    /// # Errors
    /// As [`TrainConfig::from_file`].
    pub fn from_toml_str(text: &str, origin: &Path, overrides: &[String]) -> Result<Self> {
        let syntax = |message: String| TrainError::ConfigSyntax {
            path: origin.to_path_buf(),
            message,
        };
        let config: TrainConfig = if overrides.is_empty() {
            // Straight from the text: errors carry the line and column of the key.
            toml::from_str(text).map_err(|e| syntax(e.to_string().trim_end().to_string()))?
        } else {
            let table: toml::Table =
                toml::from_str(text).map_err(|e| syntax(e.to_string().trim_end().to_string()))?;
            let mut value = toml::Value::Table(table);
            for item in overrides {
                apply_override(&mut value, item)?;
            }
            value
                .try_into()
                .map_err(|e: toml::de::Error| syntax(e.to_string().trim_end().to_string()))?
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every value that the types do not.
    ///
    /// # Errors
    /// [`TrainError::ConfigValue`] naming the key: learning rates not in `(0, 1]`, negative weight
    /// decay, betas outside `[0, 1)`, warm-up ratio outside `[0, 1)`, batch size < 2, neither or
    /// both of `training.steps` / `training.epochs`, zero steps or epochs, `max_length` 0,
    /// unknown pooling / variant / aggregation / preset names, dims not strictly increasing,
    /// supervised data with MIPIC.
    pub fn validate(&self) -> Result<()> {
        let o = &self.optimizer;
        for (key, lr) in [
            ("optimizer.lr", Some(o.lr)),
            ("optimizer.head_lr", o.head_lr),
        ] {
            if let Some(lr) = lr {
                if !(lr.is_finite() && lr > 0.0 && lr <= 1.0) {
                    return Err(bad(key, format!("must lie in (0, 1], got {lr}")));
                }
            }
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return Err(bad(
                "optimizer.weight_decay",
                format!("must be >= 0, got {}", o.weight_decay),
            ));
        }
        for (key, b) in [("optimizer.beta1", o.beta1), ("optimizer.beta2", o.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(bad(key, format!("must lie in [0, 1), got {b}")));
            }
        }
        if !(o.eps.is_finite() && o.eps > 0.0) {
            return Err(bad("optimizer.eps", format!("must be > 0, got {}", o.eps)));
        }
        if !(o.grad_clip.is_finite() && o.grad_clip >= 0.0) {
            return Err(bad(
                "optimizer.grad_clip",
                format!("must be >= 0 (0 = off), got {}", o.grad_clip),
            ));
        }
        if !(0.0..1.0).contains(&o.warmup_ratio) {
            return Err(bad(
                "optimizer.warmup_ratio",
                format!("must lie in [0, 1), got {}", o.warmup_ratio),
            ));
        }
        if !(0.0..=1.0).contains(&o.min_lr_ratio) {
            return Err(bad(
                "optimizer.min_lr_ratio",
                format!("must lie in [0, 1], got {}", o.min_lr_ratio),
            ));
        }
        let t = &self.training;
        if t.batch_size < 2 {
            return Err(bad(
                "training.batch_size",
                format!(
                    "must be >= 2 (in-batch negatives need two examples), got {}",
                    t.batch_size
                ),
            ));
        }
        match (t.steps, t.epochs) {
            (None, None) => {
                return Err(bad("training.steps", "set `steps` or `epochs`"));
            }
            (Some(_), Some(_)) => {
                return Err(bad(
                    "training.epochs",
                    "set either `steps` or `epochs`, not both",
                ));
            }
            (Some(0), _) => return Err(bad("training.steps", "must be >= 1")),
            (_, Some(0)) => return Err(bad("training.epochs", "must be >= 1")),
            _ => {}
        }
        if t.pool_batches == 0 {
            return Err(bad("training.pool_batches", "must be >= 1"));
        }
        if t.log_every == 0 {
            return Err(bad("training.log_every", "must be >= 1"));
        }
        if self.model.max_length < 2 {
            return Err(bad(
                "model.max_length",
                format!(
                    "must be >= 2 ([CLS] and [SEP]), got {}",
                    self.model.max_length
                ),
            ));
        }
        if let Some(p) = &self.model.pooling {
            if !matches!(p.as_str(), "mean" | "cls") {
                return Err(bad(
                    "model.pooling",
                    format!("`{p}` (expected mean or cls)"),
                ));
            }
        }
        if self.model.path.trim().is_empty() {
            return Err(bad("model.path", "is empty"));
        }
        if self.output_dir.trim().is_empty() {
            return Err(bad("output_dir", "is empty"));
        }
        self.validate_objective()?;
        if let Some(eval) = &self.eval {
            if eval.batch_size == 0 {
                return Err(bad("eval.batch_size", "must be >= 1"));
            }
            if let Some(dims) = &eval.dims {
                if dims.is_empty() || dims.contains(&0) {
                    return Err(bad("eval.dims", "must be a non-empty list of dims >= 1"));
                }
            }
        }
        if self.checkpoint.keep == 0 {
            return Err(bad(
                "checkpoint.keep",
                "must be >= 1 (the latest checkpoint is needed to resume)",
            ));
        }
        Ok(())
    }

    fn validate_objective(&self) -> Result<()> {
        let obj = &self.objective;
        let kind = obj.kind;
        let mipic_only: [(&str, bool); 11] = [
            ("preset", obj.preset.is_some()),
            ("variant", obj.variant.is_some()),
            ("alpha", obj.alpha.is_some()),
            ("lambda_att", obj.lambda_att.is_some()),
            ("lambda_cka", obj.lambda_cka.is_some()),
            ("lambda_pic", obj.lambda_pic.is_some()),
            ("sia_layers", obj.sia_layers.is_some()),
            ("chain", obj.chain.is_some()),
            ("detach_teacher", obj.detach_teacher.is_some()),
            ("mrl_dims_per_step", obj.mrl_dims_per_step.is_some()),
            ("pic_warmup_steps", obj.pic_warmup_steps.is_some()),
        ];
        if kind != ObjectiveKind::Mipic {
            if let Some((key, _)) = mipic_only.iter().find(|(_, set)| *set) {
                return Err(bad(
                    &format!("objective.{key}"),
                    format!("only applies to kind = \"mipic\", not {kind:?}"),
                ));
            }
        }
        if kind != ObjectiveKind::TwoD {
            for (key, set) in [
                ("n_layers_per_step", obj.n_layers_per_step.is_some()),
                ("kl_temperature", obj.kl_temperature.is_some()),
            ] {
                if set {
                    return Err(bad(
                        &format!("objective.{key}"),
                        "only applies to kind = \"2d\"",
                    ));
                }
            }
        }
        if let Some(name) = &obj.preset {
            if mrl_core::MipicPreset::from_name(name).is_none() {
                let names: Vec<&str> = mrl_core::MipicPreset::ALL
                    .iter()
                    .map(|p| p.name())
                    .collect();
                return Err(bad(
                    "objective.preset",
                    format!("unknown preset `{name}` (known: {})", names.join(", ")),
                ));
            }
        }
        if let Some(v) = &obj.variant {
            if !matches!(v.as_str(), "paper" | "notebook") {
                return Err(bad(
                    "objective.variant",
                    format!("`{v}` (expected paper or notebook)"),
                ));
            }
        }
        if let Some(a) = &obj.aggregation {
            if !matches!(a.as_str(), "sum" | "mean") {
                return Err(bad(
                    "objective.aggregation",
                    format!("`{a}` (expected sum or mean)"),
                ));
            }
        }
        if let Some(dims) = &obj.dims {
            if dims.is_empty() || dims[0] == 0 || dims.windows(2).any(|w| w[0] >= w[1]) {
                return Err(bad(
                    "objective.dims",
                    format!("must be strictly increasing and >= 1, got {dims:?}"),
                ));
            }
        }
        if let Some(t) = obj.temperature {
            if !(t.is_finite() && t > 0.0) {
                return Err(bad(
                    "objective.temperature",
                    format!("must be > 0, got {t}"),
                ));
            }
        }
        if let Some(a) = obj.alpha {
            if !(0.0..=1.0).contains(&a) {
                return Err(bad(
                    "objective.alpha",
                    format!("must lie in [0, 1], got {a}"),
                ));
            }
        }
        for (key, v) in [
            ("lambda_att", obj.lambda_att),
            ("lambda_cka", obj.lambda_cka),
            ("lambda_pic", obj.lambda_pic),
            ("kl_temperature", obj.kl_temperature),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(bad(
                        &format!("objective.{key}"),
                        format!("must be >= 0, got {v}"),
                    ));
                }
            }
        }
        if kind == ObjectiveKind::Mipic && self.data.format != DataFormat::Sentences {
            return Err(bad(
                "data.format",
                format!(
                    "MIPIC trains on unlabeled sentences (SimCSE views); got {:?}",
                    self.data.format
                ),
            ));
        }
        if self.data.column.is_some() && self.data.format != DataFormat::Sentences {
            return Err(bad(
                "data.column",
                "only applies to format = \"sentences\" (use first_column)",
            ));
        }
        Ok(())
    }
}

/// Sets `key.path = value` in a parsed TOML document; `value` is parsed as TOML, or taken as a
/// string when it does not parse.
fn apply_override(doc: &mut toml::Value, item: &str) -> Result<()> {
    let (key, raw) = item.split_once('=').ok_or_else(|| {
        bad(
            item,
            "an override must look like `section.key=value`".to_string(),
        )
    })?;
    let key = key.trim();
    let raw = raw.trim();
    let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("parsed `v`"),
        Err(_) => toml::Value::String(raw.to_string()),
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
    table.insert(parts[parts.len() - 1].to_string(), value);
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

impl TrainConfig {
    /// The number of optimisation steps for a corpus of `n_batches` batches per epoch.
    pub fn total_steps(&self, n_batches: usize) -> usize {
        match (self.training.steps, self.training.epochs) {
            (Some(s), _) => s,
            (None, Some(e)) => e * n_batches.max(1),
            (None, None) => unreachable!("validated: steps or epochs is set"),
        }
    }

    /// Warm-up steps for a run of `total` steps.
    pub fn warmup_steps(&self, total: usize) -> usize {
        self.optimizer
            .warmup_steps
            .unwrap_or_else(|| (self.optimizer.warmup_ratio * total as f64).round() as usize)
    }

    /// The objectives' head learning rate (`head_lr`, default `2 × lr`).
    pub fn head_lr(&self) -> f64 {
        self.optimizer.head_lr.unwrap_or(2.0 * self.optimizer.lr)
    }
}

impl DeviceKind {
    /// The Burn device, or an error naming the cargo feature that would enable it.
    ///
    /// # Errors
    /// [`TrainError::ConfigValue`] (`device`) when the backend is not compiled in.
    pub fn device(self) -> Result<burn::tensor::Device> {
        match self {
            #[cfg(feature = "flex")]
            DeviceKind::Flex => Ok(burn::tensor::Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            DeviceKind::Ndarray => Ok(burn::tensor::Device::ndarray()),
            #[cfg(feature = "wgpu")]
            DeviceKind::Wgpu => Ok(burn::tensor::Device::wgpu(Default::default())),
            #[allow(unreachable_patterns)]
            other => Err(bad(
                "device",
                format!("{other:?} is not compiled in; rebuild with its cargo feature"),
            )),
        }
    }
}
