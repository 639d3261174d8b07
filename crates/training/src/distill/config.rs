//! The TOML config of a distillation run (`mrl distill`): every section rejects unknown keys,
//! and [`DistillConfig::validate`] names the key of any bad value.
//!
//! ```toml
//! seed = 42
//! device = "flex"
//! output_dir = "runs/kd-smollm2"
//!
//! [teacher]
//! path = "${MRL_SHARED}/models/SmolLM2-135M-Instruct-Q4_1"   # a directory, a .gguf file or a Hugging Face id
//!
//! [student]
//! init = "first_layers"            # first_layers | fresh | pretrained (path = …)
//! layers = 10
//! # vocab = "${MRL_SHARED}/models/gpt2-tokenizer/tokenizer.json"   # cross-tokenizer kinds:
//! #                                # the student's own tokenizer, embedding by vocabulary transplant
//! #                                # (also SFT over that tokenizer: kind = "kd", alpha = 0)
//!
//! [data]
//! path = "${MRL_SHARED}/data/dolly_2k.jsonl"   # JSONL {"instruction", "response"}
//! records = "0..1900"
//! max_length = 128
//!
//! [objective]
//! alpha = 0.5                      # (1 − α)·CE + α·KD   (MTA: (1 − α)·CE + α·(KD + λ·L_MTA))
//! temperature = 1.0
//! divergence = { kind = "forward_kl" }
//! # kind = "mta"                   # + [objective.mta]: lambda, pairs, dsa_weight, hra_weight, …
//! # kind = "sra"                   # across tokenizers, with [student] vocab = "…/tokenizer.json":
//! #                                # (1 − α)·CE + α·L_SRA, [objective.sra]: pairs, geo_weight, …
//! # kind = "uld" | "mined" | "dskd-cma"   # the cross-tokenizer baselines (no divergence)
//! # kind = "mta-cross"             # MTA across tokenizers: (1 − α)·CE + α·λ·L_MTA
//!
//! [cache]                          # optional: read the teacher from `mrl distill cache`
//! dir = "runs/kd-smollm2/teacher-cache"
//! top_k = 64
//!
//! [training]
//! batch_size = 8
//! steps = 200
//!
//! [eval]                           # optional: dev loss every N steps
//! records = "1900..2000"
//! every = 50
//! ```

use std::ops::Range;
use std::path::{Path, PathBuf};

use distill_objectives::{
    Divergence, Granularity, KdLossConfig, KdObjectiveConfig, MtaLayerPair, MtaLossConfig,
    ProjectorInit, SraLayerPair, SraLossConfig,
};
use models::llama::StudentInit;
use mrl_common::DeviceKind;
use serde::{Deserialize, Serialize};

use crate::config::{
    bad, expand_path, CheckpointSection, LoopSettings, OptimizerSection, TrainingSection,
};
use crate::error::{Result, TrainError};

/// A whole distillation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// Seed of the data order and of a fresh student's initialisation. Default `42`.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Backend: `flex` (default), `ndarray`, `wgpu` or `cuda` (each needs its cargo feature).
    #[serde(default)]
    pub device: DeviceKind,
    /// Where checkpoints, the exported student and the reports go.
    pub output_dir: String,
    /// The teacher (a Llama-family decoder).
    pub teacher: TeacherSection,
    /// How the student is made from the teacher.
    pub student: StudentInit,
    /// The training data.
    pub data: DataSection,
    /// The loss.
    pub objective: ObjectiveSection,
    /// Read the teacher's targets from a cache instead of running it (optional).
    #[serde(default)]
    pub cache: Option<CacheSection>,
    /// AdamW and the learning-rate schedule; `head_lr` is the projectors' group.
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

/// `[teacher]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherSection {
    /// A model directory (Hugging Face layout or one `*.gguf`), a `.gguf` file, or a Hugging
    /// Face id (see [`models::resolve_model`]).
    pub path: String,
}

/// `[data]`: JSONL records `{"instruction": …, "response": …}`, rendered with
/// [`mrl_eval::instruct::PROMPT_TEMPLATE`] + response + EOS, no BOS, the prompt masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// The JSONL file.
    pub path: String,
    /// The records to train on, a half-open range of 0-based record indices such as
    /// `"0..1900"`. Default: every record.
    #[serde(default)]
    pub records: Option<String>,
    /// Truncation length in tokens (prompt + response + EOS). Default `128`.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Leave out (and list) the records whose prompt alone fills `max_length`, in training and
    /// evaluation data. Default `false`: such a record is an error naming it.
    #[serde(default)]
    pub skip_long_prompts: bool,
}

fn default_max_length() -> usize {
    128
}

/// `[objective]`: `(1 − α)·CE + α·KD`, or with `kind = "mta"`
/// `(1 − α)·CE + α·(KD + λ·L_MTA)` (see [`MtaSection`]), or across tokenizers with
/// `kind = "sra"` `(1 − α)·CE + α·L_SRA` (see [`SraSection`]; no divergence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveSection {
    /// `kd` (default), `mta`, or across tokenizers `sra`, `uld`, `mined`, `mta-cross`,
    /// `dskd-cma`.
    #[serde(default)]
    pub kind: ObjectiveKind,
    /// Weight of the distillation term. Default `0.5` (DSKD's kd_rate).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Softmax temperature of both distributions in the divergence. Default `1`.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Multiply the divergence by `τ²` (Hinton's scaling). Default `false` (DSKD).
    #[serde(default)]
    pub temperature_squared: bool,
    /// The divergence, e.g. `{ kind = "forward_kl" }` or
    /// `{ kind = "skewed_reverse_kl", lambda = 0.1 }`: required by `kd` and `mta`, refused by
    /// `sra` (whose logit term is its own).
    #[serde(default)]
    pub divergence: Option<Divergence>,
    /// `[objective.mta]`, read with `kind = "mta"` (its defaults when absent).
    #[serde(default)]
    pub mta: Option<MtaSection>,
    /// `[objective.sra]`, read with `kind = "sra"` (its defaults when absent).
    #[serde(default)]
    pub sra: Option<SraSection>,
}

/// Which objective `[objective]` describes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveKind {
    /// Token-level KD: `(1 − α)·CE + α·KD`.
    #[default]
    Kd,
    /// MTA (arXiv 2605.01374): `(1 − α)·CE + α·(KD + λ·L_MTA)`.
    Mta,
    /// SRA (arXiv 2605.01205), across tokenizers: `(1 − α)·CE + α·L_SRA`.
    Sra,
    /// ULD (arXiv 2402.12030, DSKD's definition), across tokenizers: `(1 − α)·CE + α·ULD`.
    Uld,
    /// MinEdit forward KL (arXiv 2401.10491, DSKD's definition), across tokenizers, at
    /// `objective.temperature`: `(1 − α)·CE + α·MinED`.
    Mined,
    /// MTA's cross-tokenizer variant: `(1 − α)·CE + α·λ·L_MTA`, each model on its own tokens
    /// (no token-level divergence; `[objective.mta]` as for `mta`).
    #[serde(rename = "mta-cross")]
    MtaCross,
    /// DSKD with cross-model attention (arXiv 2406.17328), across tokenizers, at
    /// `objective.temperature` (DSKD's scripts use 2): `(1 − α)·CE + α·(t2s_ce + t2s_kd +
    /// s2t_kd)`; its three projectors train at `optimizer.head_lr`.
    #[serde(rename = "dskd-cma")]
    DskdCma,
}

impl ObjectiveKind {
    /// Whether the objective distils across tokenizers (the student has its own `vocab`).
    pub fn is_cross_tokenizer(self) -> bool {
        matches!(
            self,
            Self::Sra | Self::Uld | Self::Mined | Self::MtaCross | Self::DskdCma
        )
    }

    /// The config name (`kd`, `mta`, `sra`, `uld`, `mined`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Kd => "kd",
            Self::Mta => "mta",
            Self::Sra => "sra",
            Self::Uld => "uld",
            Self::Mined => "mined",
            Self::MtaCross => "mta-cross",
            Self::DskdCma => "dskd-cma",
        }
    }
}

/// `[objective.sra]`: the SRA term (see `distill_objectives::SraLoss`). The projectors train in
/// the second parameter group, at `optimizer.head_lr` (the authors' 5e-4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SraSection {
    /// The aligned layer pairs, e.g. `[{ teacher_layer = 30, student_layer = 10 }]` (hidden-state
    /// indices, 0 = embeddings, `n_layers` = after the final norm; an optional `weight`, default
    /// 1, normalised over the pairs). The geometric and logit terms use the last pair. Default:
    /// SmolLM2-135M → its first 10 layers, (30, 10).
    #[serde(default = "default_sra_pairs")]
    pub pairs: Vec<SraLayerPair>,
    /// `γ`, the weight of the geometric regularizer. Default `50`.
    #[serde(default = "default_geo_weight")]
    pub geo_weight: f64,
    /// `τ` of the span logit distillation. Default `2`.
    #[serde(default = "default_sra_temperature")]
    pub temperature: f64,
    /// `random` (default, trained) or `identity` (needs equal widths; for measuring).
    #[serde(default)]
    pub projector_init: ProjectorInit,
}

impl Default for SraSection {
    fn default() -> Self {
        Self {
            pairs: default_sra_pairs(),
            geo_weight: default_geo_weight(),
            temperature: default_sra_temperature(),
            projector_init: ProjectorInit::Random,
        }
    }
}

fn default_sra_pairs() -> Vec<SraLayerPair> {
    vec![SraLayerPair::new(30, 10)]
}
fn default_geo_weight() -> f64 {
    50.0
}
fn default_sra_temperature() -> f64 {
    2.0
}

impl SraSection {
    /// The loss configuration for a student of width `student_width` and a teacher of width
    /// `teacher_width`.
    pub fn loss_config(&self, student_width: usize, teacher_width: usize) -> SraLossConfig {
        SraLossConfig::new(self.pairs.clone(), student_width, teacher_width)
            .with_geo_weight(self.geo_weight)
            .with_temperature(self.temperature)
            .with_projector_init(self.projector_init)
    }
}

/// `[objective.mta]`: the MTA term (see `distill_objectives::MtaLoss`). The projectors train in
/// the second parameter group, at `optimizer.head_lr` (the authors' 5e-4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtaSection {
    /// `λ`, the weight of `L_MTA` inside the distillation term. Default `2`.
    #[serde(default = "default_mta_lambda")]
    pub lambda: f64,
    /// The layer schedule, e.g. `[{ teacher_layer = 15, student_layer = 5, granularity =
    /// "words" }, …]` (hidden-state indices: 0 = embeddings, `n_layers` = after the final
    /// norm). Default: SmolLM2-135M → its first 10 layers: (15, 5) words, (24, 8) and (30, 10)
    /// phrases.
    #[serde(default = "default_mta_pairs")]
    pub pairs: Vec<MtaLayerPair>,
    /// Weight of DSA in each pair. Default `1`; `0` = the HRA-only ablation.
    #[serde(default = "default_dsa_weight")]
    pub dsa_weight: f64,
    /// Weight of HRA in each pair. Default `0.1`; `0` = the DSA-only ablation.
    #[serde(default = "default_hra_weight")]
    pub hra_weight: f64,
    /// Teacher token weights from its confidence `1 − H/ln V` instead of attention. Default
    /// `false`.
    #[serde(default)]
    pub entropy_weighting: bool,
    /// `random` (default, trained) or `identity` (needs equal widths; for measuring).
    #[serde(default)]
    pub projector_init: ProjectorInit,
}

impl Default for MtaSection {
    fn default() -> Self {
        Self {
            lambda: default_mta_lambda(),
            pairs: default_mta_pairs(),
            dsa_weight: default_dsa_weight(),
            hra_weight: default_hra_weight(),
            entropy_weighting: false,
            projector_init: ProjectorInit::Random,
        }
    }
}

fn default_mta_lambda() -> f64 {
    2.0
}
fn default_mta_pairs() -> Vec<MtaLayerPair> {
    vec![
        MtaLayerPair::new(15, 5, Granularity::Words),
        MtaLayerPair::new(24, 8, Granularity::Phrases),
        MtaLayerPair::new(30, 10, Granularity::Phrases),
    ]
}
fn default_dsa_weight() -> f64 {
    1.0
}
fn default_hra_weight() -> f64 {
    0.1
}

impl MtaSection {
    /// The loss configuration for a student of width `student_width` and a teacher of width
    /// `teacher_width`.
    pub fn loss_config(&self, student_width: usize, teacher_width: usize) -> MtaLossConfig {
        MtaLossConfig::new(self.pairs.clone(), student_width, teacher_width)
            .with_dsa_weight(self.dsa_weight)
            .with_hra_weight(self.hra_weight)
            .with_entropy_weighting(self.entropy_weighting)
            .with_projector_init(self.projector_init)
    }
}

fn default_alpha() -> f64 {
    0.5
}
fn default_temperature() -> f64 {
    1.0
}

impl ObjectiveSection {
    /// The divergence (forward KL when none is given: an SRA objective has none, and its KD
    /// objective only serves the cross-entropy).
    pub fn divergence(&self) -> Divergence {
        self.divergence.unwrap_or(Divergence::ForwardKl)
    }

    /// The objective of `distill-objectives`.
    pub fn kd_objective(&self) -> KdObjectiveConfig {
        KdObjectiveConfig::new(
            KdLossConfig::new(self.divergence())
                .with_temperature(self.temperature)
                .with_temperature_squared(self.temperature_squared),
        )
        .with_alpha(self.alpha)
    }

    /// `[objective.mta]` when `kind = "mta"` (its defaults when the table is absent).
    pub fn mta(&self) -> Option<MtaSection> {
        (self.kind == ObjectiveKind::Mta).then(|| self.mta.clone().unwrap_or_default())
    }

    /// `[objective.mta]` when `kind = "mta-cross"` (its defaults when the table is absent).
    pub fn mta_cross(&self) -> Option<MtaSection> {
        (self.kind == ObjectiveKind::MtaCross).then(|| self.mta.clone().unwrap_or_default())
    }

    /// `[objective.sra]` when `kind = "sra"` (its defaults when the table is absent).
    pub fn sra(&self) -> Option<SraSection> {
        (self.kind == ObjectiveKind::Sra).then(|| self.sra.clone().unwrap_or_default())
    }
}

/// `[cache]`: what the objective reads of the teacher, written once by `mrl distill cache`:
/// for KD, its top-k next-token distribution per response position; for SRA, its aligned
/// layers' hidden states and centre-of-mass weights per response token (see
/// [`cache`](super::cache)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// The cache directory.
    pub dir: String,
    /// Teacher tokens kept per position (KD; an SRA cache keeps states, not tokens). Default
    /// `64`.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Records per shard file. Default `256`.
    #[serde(default = "default_shard_records")]
    pub shard_records: usize,
}

fn default_top_k() -> usize {
    64
}
fn default_shard_records() -> usize {
    256
}

/// `[eval]`: the objective's terms, the student's CE and the divergence on held-out records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// A JSONL file; default: `data.path`.
    #[serde(default)]
    pub path: Option<String>,
    /// Its records, e.g. `"1900..2000"`. Default: every record.
    #[serde(default)]
    pub records: Option<String>,
    /// Evaluate every N steps (and at the end); `0` = only before and after training.
    #[serde(default)]
    pub every: usize,
    /// Records per forward pass. Default `8`.
    #[serde(default = "default_eval_batch")]
    pub batch_size: usize,
    /// Evaluate before training too. Default `true`.
    #[serde(default = "crate::config::default_true")]
    pub before: bool,
}

fn default_eval_batch() -> usize {
    8
}

/// Parses a half-open record range `"START..END"`; `key` names it in errors.
///
/// # Errors
/// [`TrainError::ConfigValue`] for anything but two integers
/// with `START < END`.
pub fn parse_records(key: &str, text: &str) -> Result<Range<usize>> {
    text.parse::<mrl_eval::instruct::RecordRange>()
        .map(|r| r.range())
        .map_err(|e| bad(key, e))
}

impl DistillConfig {
    /// Reads and validates a TOML config, applying `overrides` (`key.path=value`) first.
    ///
    /// # Errors
    /// As [`crate::embedding::EmbeddingConfig::from_file`].
    pub fn from_file(path: &Path, overrides: &[String]) -> Result<Self> {
        let config: Self = crate::config::read_toml(path, overrides)?;
        config.validate()?;
        Ok(config)
    }

    /// [`DistillConfig::from_file`] on a string; `origin` names it in errors.
    ///
    /// # Errors
    /// As [`DistillConfig::from_file`].
    pub fn from_toml_str(text: &str, origin: &Path, overrides: &[String]) -> Result<Self> {
        let config: Self = crate::config::parse_toml(text, origin, overrides)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value that does not depend on the models (student layers against the
    /// teacher's depth are checked when the student is built).
    ///
    /// # Errors
    /// [`TrainError::ConfigValue`] naming the key.
    pub fn validate(&self) -> Result<()> {
        self.optimizer.validate()?;
        self.training.validate(1, "at least one record per step")?;
        self.checkpoint.validate()?;
        for (key, value) in [
            ("teacher.path", &self.teacher.path),
            ("data.path", &self.data.path),
            ("output_dir", &self.output_dir),
        ] {
            if value.trim().is_empty() {
                return Err(bad(key, "is empty"));
            }
        }
        mrl_common::limits::check_max_length(self.data.max_length)
            .map_err(|m| bad("data.max_length", m))?;
        if let Some(r) = &self.data.records {
            parse_records("data.records", r)?;
        }
        self.objective
            .kd_objective()
            .try_init()
            .map_err(objective_error)?;
        let kind = self.objective.kind;
        let sft = kind == ObjectiveKind::Kd && self.objective.alpha == 0.0;
        if !kind.is_cross_tokenizer() && !sft && self.student.vocab().is_some() {
            return Err(bad(
                "student.vocab",
                "gives the student another tokenizer, which only a cross-tokenizer objective \
                 (objective.kind = \"sra\", \"uld\", \"mined\", \"mta-cross\" or \
                 \"dskd-cma\") can distil into, or SFT (kind = \"kd\" with alpha = 0)",
            ));
        }
        if self.objective.kind != ObjectiveKind::Sra && self.objective.sra.is_some() {
            return Err(bad(
                "objective.sra",
                "is set, but objective.kind is not \"sra\" (set objective.kind = \"sra\")",
            ));
        }
        match (kind.is_cross_tokenizer(), self.objective.divergence) {
            (true, Some(_)) => {
                return Err(bad(
                    "objective.divergence",
                    format!(
                        "is not used by objective.kind = \"{}\" (a cross-tokenizer objective \
                         has its own): remove it",
                        kind.name()
                    ),
                ))
            }
            (false, None) => {
                return Err(bad(
                    "objective.divergence",
                    "is missing, e.g. divergence = { kind = \"forward_kl\" }",
                ))
            }
            _ => {}
        }
        match (kind, &self.objective.mta) {
            (
                ObjectiveKind::Sra
                | ObjectiveKind::Uld
                | ObjectiveKind::Mined
                | ObjectiveKind::MtaCross
                | ObjectiveKind::DskdCma,
                _,
            ) => self.validate_cross()?,
            (ObjectiveKind::Kd, Some(_)) => {
                return Err(bad(
                    "objective.mta",
                    "is set, but objective.kind is \"kd\" (set objective.kind = \"mta\")",
                ))
            }
            (ObjectiveKind::Mta, _) => {
                let mta = self.objective.mta().expect("kind = mta");
                if !(mta.lambda.is_finite() && mta.lambda >= 0.0) {
                    return Err(bad(
                        "objective.mta.lambda",
                        format!("must be finite and >= 0, got {}", mta.lambda),
                    ));
                }
                if self.objective.alpha == 0.0 {
                    return Err(bad(
                        "objective.alpha",
                        "is 0, which switches the whole distillation term (KD and MTA) off; \
                         MTA needs alpha > 0",
                    ));
                }
                if self.cache.is_some() {
                    return Err(bad(
                        "cache",
                        "MTA needs the teacher's hidden states, which the cache does not hold: \
                         run the teacher live (remove [cache], or --set cache=)",
                    ));
                }
                // Widths are checked when the models are loaded; the rest of the MTA values here.
                mta.loss_config(1, 1)
                    .validate()
                    .map_err(|e| bad("objective.mta", e.to_string()))?;
            }
            (ObjectiveKind::Kd, None) => {}
        }
        if let Some(cache) = &self.cache {
            if cache.dir.trim().is_empty() {
                return Err(bad("cache.dir", "is empty"));
            }
            if cache.top_k == 0 {
                return Err(bad("cache.top_k", "must be >= 1"));
            }
            if cache.shard_records == 0 {
                return Err(bad("cache.shard_records", "must be >= 1"));
            }
        }
        if let Some(eval) = &self.eval {
            if eval.batch_size == 0 {
                return Err(bad("eval.batch_size", "must be >= 1"));
            }
            if let Some(r) = &eval.records {
                parse_records("eval.records", r)?;
            }
        }
        Ok(())
    }

    /// The checks of a cross-tokenizer objective: a student over its own tokenizer, α > 0, no
    /// cache but for SRA, valid `[objective.sra]` values for SRA.
    fn validate_cross(&self) -> Result<()> {
        let name = self.objective.kind.name();
        if let Some(mta) = self.objective.mta_cross() {
            if !(mta.lambda.is_finite() && mta.lambda >= 0.0) {
                return Err(bad(
                    "objective.mta.lambda",
                    format!("must be finite and >= 0, got {}", mta.lambda),
                ));
            }
            if mta.entropy_weighting {
                return Err(bad(
                    "objective.mta.entropy_weighting",
                    "is not offered across tokenizers (the teacher's distribution is over other \
                     tokens)",
                ));
            }
            mta.loss_config(1, 1)
                .validate()
                .map_err(|e| bad("objective.mta", e.to_string()))?;
        } else if self.objective.mta.is_some() {
            return Err(bad(
                "objective.mta",
                format!("is set, but objective.kind is \"{name}\""),
            ));
        }
        if self.student.vocab().is_none() {
            return Err(bad(
                "student.vocab",
                format!(
                    "objective.kind = \"{name}\" distils across tokenizers: give the student its \
                     tokenizer, e.g. vocab = \"${{MRL_SHARED}}/models/gpt2-tokenizer/tokenizer.json\" \
                     (init = \"first_layers\")"
                ),
            ));
        }
        if self.objective.alpha == 0.0 {
            return Err(bad(
                "objective.alpha",
                format!(
                    "is 0, which switches the {name} term off (train with kind = \"kd\" and \
                     alpha = 0 for SFT, over the student's vocab when it is set); {name} needs \
                     alpha > 0"
                ),
            ));
        }
        if self.cache.is_some() && self.objective.kind != ObjectiveKind::Sra {
            return Err(bad(
                "cache",
                format!(
                    "{name} reads the teacher's full next-token logits or every hidden state, \
                     which the cache does not hold (it serves KD and SRA): run the teacher live \
                     (remove [cache], or --set cache=)"
                ),
            ));
        }
        if let Some(sra) = self.objective.sra() {
            sra.loss_config(1, 1)
                .validate()
                .map_err(|e| bad("objective.sra", e.to_string()))?;
        }
        Ok(())
    }

    /// `output_dir` with `${MRL_SHARED}` expanded.
    pub fn output_dir(&self) -> PathBuf {
        expand_path(&self.output_dir)
    }

    /// The cache directory, when the run reads one.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.cache.as_ref().map(|c| expand_path(&c.dir))
    }

    /// What the training loop reads, for data of `batches_per_epoch` batches.
    pub fn loop_settings(&self, batches_per_epoch: usize) -> LoopSettings {
        LoopSettings {
            seed: self.seed,
            optimizer: self.optimizer.clone(),
            total_steps: self.training.total_steps(batches_per_epoch),
            log_every: self.training.log_every,
            checkpoint: self.checkpoint.clone(),
            eval_every: self.eval.as_ref().map_or(0, |e| e.every),
            eval_before: self.eval.as_ref().is_some_and(|e| e.before),
            output_dir: self.output_dir(),
        }
    }
}

/// An objective's construction error under the config key it is about: `objective.{field}` for
/// a value out of its domain, else `objective`.
pub(crate) fn objective_error(e: distill_objectives::DistillError) -> TrainError {
    match &e {
        distill_objectives::DistillError::InvalidConfig { field, .. } => {
            bad(&format!("objective.{field}"), e.to_string())
        }
        _ => bad("objective", e.to_string()),
    }
}
