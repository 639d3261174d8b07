//! Distillation (`mrl distill`): a Llama-family student learns from a Llama-family teacher
//! with `(1 − α)·CE + α·KD` on instruction records, or with MTA (`[objective] kind = "mta"`)
//! `(1 − α)·CE + α·(KD + λ·L_MTA)`, or across tokenizers with SRA (`kind = "sra"`, a student
//! with its own `[student] vocab`) `(1 − α)·CE + α·L_SRA` — the shared training loop
//! ([`Trainer`]) with a [`DistillTask`].
//!
//! - [`config`] — the TOML config ([`DistillConfig`]);
//! - [`data`] — records → token ids with a response mask ([`DistillData`], [`DistillBatch`]);
//! - [`cache`] — the teacher cache written by `mrl distill cache` ([`TeacherCache`]);
//! - [`measure`] — the loss breakdown and the teacher/student CE and divergences over a file.
//!
//! The teacher runs in inference mode (no autodiff) on the same backend, or is replaced by
//! its cache. Without a cache the divergence uses the full vocabulary; with one it uses the
//! cached top-k + tail coarsening (see `distill_objectives::TeacherTarget`).
//!
//! # Example
//! ```no_run
//! use training::distill::{DistillConfig, DistillTask};
//! use training::Silent;
//!
//! let config = DistillConfig::from_file("configs/kd-smollm2.toml".as_ref(), &[])?;
//! let device = config.device.device()?;
//! let mut trainer = DistillTask::trainer(config, &device)?;
//! trainer.run(&mut Silent, None)?;
//! trainer.task().export(trainer.model(), "runs/kd-smollm2/student".as_ref())?;
//! # Ok::<(), training::TrainError>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, Param, ParamGroup};
use burn::nn::loss::Reduction;
use burn::nn::Linear;
use burn::tensor::Int;
use burn::tensor::{Device, Tensor, TensorData};
use distill_objectives::{
    com_weights, masked_cross_entropy, membership_tensor, span_membership, teacher_confidence,
    DskdCma, DskdCmaConfig, DskdCmaInput, DskdCmaSide, EnglishChunker, Granularity, KdObjective,
    Membership, MinedInput, MinedLoss, MinedLossConfig, MtaCrossInput, MtaInput, MtaLoss,
    MtaOutput, ProjectorInit, SpanSide, SraInput, SraLoss, TeacherTarget, UldLoss, UldLossConfig,
    VocabIntersection,
};
use models::llama::{build_student, LlamaConfig};
use models::{LayerSelection, LlamaModel};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::batching::{Batching, StepBatches};
use crate::error::{Result, TrainError};
use crate::trainer::{LossTerms, ParamGroupSpec, Task, Trainer};

pub mod cache;
pub mod config;
pub mod data;
pub mod measure;

pub use cache::{CacheKey, CacheManifest, CachedPart, TeacherCache};
pub use config::{DistillConfig, MtaSection, ObjectiveKind, ObjectiveSection, SraSection};
pub use data::{
    CrossTokens, DistillBatch, DistillData, DistillExample, ExampleUnits, PackedTargets,
};

/// Everything a distillation run trains: the student and the objective's projectors (MTA and
/// SRA map student hidden states to the teacher's width; plain KD has none), which form a
/// second parameter group with `optimizer.head_lr`.
#[derive(Module, Debug)]
pub struct DistillModel {
    /// The student decoder.
    pub student: LlamaModel,
    /// The objective's projectors.
    pub projectors: Vec<Linear>,
}

/// Where the teacher's targets come from.
#[derive(Debug)]
pub enum TeacherSource {
    /// The teacher itself, run in inference mode.
    Live(Box<LlamaModel>),
    /// Its cache.
    Cached(Box<TeacherCache>),
}

/// What the periodic dev evaluation measures: means over the counted next-token positions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillEval {
    /// The objective, `(1 − α)·CE + α·KD`.
    pub loss: f64,
    /// The student's cross-entropy on the response tokens.
    pub ce: f64,
    /// The divergence (as in training: full vocabulary live, top-k + tail with a cache);
    /// `None` when `α = 0`.
    pub kd: Option<f64>,
    /// Counted positions.
    pub positions: usize,
    /// `L_MTA` (MTA runs only; each batch's value weighted by its counted positions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mta: Option<f64>,
    /// `L_SRA` (SRA runs only; each batch's value weighted by its counted positions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sra: Option<f64>,
    /// ULD (ULD runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uld: Option<f64>,
    /// MinED (MinED runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mined: Option<f64>,
    /// DSKD-CMA's `t2s_ce + t2s_kd + s2t_kd` (DSKD-CMA runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dskd_cma: Option<f64>,
}

/// The distillation task of the training loop: see the [module docs](self).
pub struct DistillTask {
    config: DistillConfig,
    teacher_path: PathBuf,
    student_config: LlamaConfig,
    teacher_config: LlamaConfig,
    tokenizer: Tokenizer,
    device: Device,
    teacher: Option<TeacherSource>,
    train: DistillData,
    dev: Option<DistillData>,
    batches: StepBatches,
    objective: KdObjective,
    /// MTA's loss (its projectors live in [`DistillModel::projectors`]) and `λ`.
    mta: Option<(MtaLoss, f64)>,
    /// The cross-tokenizer objective (SRA, ULD, MinED), when the student has its own tokenizer.
    cross: Option<Cross>,
}

/// SRA in a [`DistillTask`].
#[derive(Debug)]
struct SraObjective {
    /// The loss (its projectors live in [`DistillModel::projectors`]).
    loss: SraLoss,
    /// The shared vocabulary of the logit term.
    shared: VocabIntersection,
    /// The teacher's head rows over `shared`, on the inner device.
    teacher_head: Tensor<2>,
}

/// A cross-tokenizer objective of a [`DistillTask`].
#[derive(Debug)]
enum Cross {
    /// SRA.
    Sra(Box<SraObjective>),
    /// ULD.
    Uld(UldLoss),
    /// MinED, the shared vocabulary and each side's token strings by id (student, teacher).
    Mined(
        MinedLoss,
        VocabIntersection,
        Box<(Vec<String>, Vec<String>)>,
    ),
    /// MTA's cross-tokenizer variant (its projectors live in [`DistillModel::projectors`]) and
    /// `λ`.
    Mta(MtaLoss, f64),
    /// DSKD-CMA (its query, s2t and t2s projectors live in [`DistillModel::projectors`], in
    /// that order).
    DskdCma(Box<DskdCma>),
}

/// The teacher's path (a `.gguf` file is used as is; anything else goes through
/// [`models::resolve_model`]).
///
/// # Errors
/// As [`models::resolve_model`].
pub fn resolve_teacher(path: &str) -> Result<PathBuf> {
    let expanded = crate::config::expand_path(path);
    if expanded.is_file() {
        Ok(expanded)
    } else {
        Ok(models::resolve_model(&expanded.to_string_lossy())?)
    }
}

/// The directory holding a model's `tokenizer.json` (the file's directory for a `.gguf`).
fn model_dir(path: &Path) -> PathBuf {
    if path.is_file() {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        path.to_path_buf()
    }
}

/// Loads a model's `tokenizer.json` (see [`models::tokenizer::tokenizer_file`]: a `.json`
/// path is the file itself), without padding or truncation.
///
/// # Errors
/// [`TrainError::Model`] naming the file.
pub fn load_tokenizer(model: &Path) -> Result<Tokenizer> {
    let path = models::tokenizer::tokenizer_file(model);
    let mut tokenizer = Tokenizer::from_file(&path).map_err(|e| models::ModelError::Tokenizer {
        path: path.clone(),
        message: e.to_string(),
    })?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(None)
        .map_err(|e| models::ModelError::Tokenizer {
            path,
            message: e.to_string(),
        })?;
    Ok(tokenizer)
}

/// The data a config names: its training records and, with `[eval]`, its dev records.
///
/// # Errors
/// Data errors (see [`DistillData::load`]).
pub fn load_data(
    config: &DistillConfig,
    tokenizer: &Tokenizer,
    eos: u32,
) -> Result<(DistillData, Option<DistillData>)> {
    let path = crate::config::expand_path(&config.data.path);
    let records = config
        .data
        .records
        .as_deref()
        .map(|r| config::parse_records("data.records", r))
        .transpose()?;
    let (max_length, skip) = (config.data.max_length, config.data.skip_long_prompts);
    let train = DistillData::load(
        &path,
        records,
        "data.records",
        tokenizer,
        eos,
        max_length,
        skip,
    )?;
    if train.is_empty() {
        return Err(crate::config::bad("data.records", "selects no record"));
    }
    let dev = match &config.eval {
        Some(e) => {
            let path = e
                .path
                .as_deref()
                .map_or(path.clone(), crate::config::expand_path);
            let records = e
                .records
                .as_deref()
                .map(|r| config::parse_records("eval.records", r))
                .transpose()?;
            Some(DistillData::load(
                &path,
                records,
                "eval.records",
                tokenizer,
                eos,
                max_length,
                skip,
            )?)
        }
        None => None,
    };
    Ok((train, dev))
}

/// The end-of-sequence token appended to every record: the teacher config's first EOS id.
///
/// # Errors
/// [`TrainError::ConfigValue`] on `teacher.path` when the config has none.
pub fn eos_token(config: &LlamaConfig) -> Result<u32> {
    config.eos_token_ids.first().copied().ok_or_else(|| {
        crate::config::bad("teacher.path", "the teacher's config has no eos_token_id")
    })
}

/// The config's student on `device`: built from the teacher (its first layers, a fresh config)
/// or loaded (`init = "pretrained"`, `${MRL_SHARED}` expanded), then checked against the
/// teacher for distillation over one tokenizer: the same vocabulary size and, when the student
/// has its own `tokenizer.json`, the same tokenizer. A first-layers student with its own
/// `vocab` (a vocabulary transplant, for cross-tokenizer objectives) has its own tokenizer by
/// construction.
///
/// # Errors
/// As [`build_student`]; [`TrainError::ConfigValue`] on `student` when the vocabularies or
/// tokenizers differ.
pub fn load_student(
    config: &DistillConfig,
    teacher_path: &Path,
    teacher_config: &LlamaConfig,
    device: &Device,
) -> Result<(LlamaConfig, LlamaModel)> {
    let init = student_init(config);
    device.seed(mrl_common::SplitMix64::with_stream(config.seed, 0x57DE_0000).next_u64());
    let (student_config, student) =
        build_student(teacher_path, &init, device).map_err(|e| match e {
            // A value of `[student]` out of range: name the config key.
            models::ModelError::InvalidArgument { name, message } => {
                crate::config::bad(&format!("student.{name}"), message)
            }
            other => other.into(),
        })?;
    if init.vocab().is_some() {
        return Ok((student_config, student));
    }
    if student_config.vocab_size != teacher_config.vocab_size {
        return Err(crate::config::bad(
            "student",
            format!(
                "the student's vocabulary ({}) differs from the teacher's ({}); KD over one \
                 tokenizer needs the same vocabulary",
                student_config.vocab_size, teacher_config.vocab_size
            ),
        ));
    }
    if let models::llama::StudentInit::Pretrained { path } = &init {
        let mine = model_dir(path).join(models::tokenizer::TOKENIZER_FILE);
        let theirs = model_dir(teacher_path).join(models::tokenizer::TOKENIZER_FILE);
        if mine.is_file() {
            let (a, b) = (load_tokenizer(path)?, load_tokenizer(teacher_path)?);
            if a.get_vocab(true) != b.get_vocab(true) {
                return Err(crate::config::bad(
                    "student",
                    format!(
                        "{} and {} hold different vocabularies; KD over one tokenizer needs the \
                         teacher's",
                        mine.display(),
                        theirs.display()
                    ),
                ));
            }
        }
    }
    Ok((student_config, student))
}

/// The config's `[student]` with `${MRL_SHARED}` expanded in its paths.
fn student_init(config: &DistillConfig) -> models::llama::StudentInit {
    match &config.student {
        models::llama::StudentInit::Pretrained { path } => models::llama::StudentInit::Pretrained {
            path: crate::config::expand_path(&path.to_string_lossy()),
        },
        models::llama::StudentInit::FirstLayers {
            layers,
            untie_head,
            vocab: Some(vocab),
        } => models::llama::StudentInit::FirstLayers {
            layers: *layers,
            untie_head: *untie_head,
            vocab: Some(crate::config::expand_path(&vocab.to_string_lossy())),
        },
        other => other.clone(),
    }
}

/// The cache key a config expects for `train` / `dev` data (for SRA, the teacher's side of the
/// data: [`DistillData::teacher_side`]). An SRA config expects a span cache: `top_k` and the
/// temperature 0, its pairs' teacher layers (sorted, each once).
///
/// # Errors
/// [`TrainError::Io`] reading the teacher's files.
pub fn expected_cache_key(
    config: &DistillConfig,
    teacher_path: &Path,
    train: &DistillData,
    dev: Option<&DistillData>,
) -> Result<CacheKey> {
    let cache = config.cache.as_ref().ok_or_else(|| {
        crate::config::bad("cache", "the config has no [cache] section (dir, top_k)")
    })?;
    let mut data_sha256 = BTreeMap::new();
    data_sha256.insert("train".to_string(), cache::data_sha256(&train.examples));
    if let Some(dev) = dev {
        data_sha256.insert("dev".to_string(), cache::data_sha256(&dev.examples));
    }
    let (top_k, temperature, hidden_layers) = match config.objective.sra() {
        Some(sra) => {
            let mut layers: Vec<usize> = sra.pairs.iter().map(|p| p.teacher_layer).collect();
            layers.sort_unstable();
            layers.dedup();
            (0, 0.0, layers)
        }
        None => (cache.top_k, config.objective.temperature, Vec::new()),
    };
    Ok(CacheKey {
        format: cache::CACHE_FORMAT,
        teacher_sha256: cache::teacher_sha256(teacher_path)?,
        template: mrl_eval::instruct::PROMPT_TEMPLATE.to_string(),
        top_k,
        temperature,
        max_length: config.data.max_length,
        hidden_layers,
        data_sha256,
    })
}

impl DistillTask {
    /// Starts a run: loads the teacher (or opens and verifies its cache), builds the student,
    /// reads and tokenizes the data, builds the objective, the optimizer and the schedule.
    ///
    /// # Errors
    /// Teacher not found or not loadable, a student that does not fit the teacher, data
    /// errors, a stale or missing cache, objective values out of range.
    pub fn trainer(config: DistillConfig, device: &Device) -> Result<Trainer<Self>> {
        let teacher_path = resolve_teacher(&config.teacher.path)?;
        let device = device.clone().autodiff();
        let inner = device.clone().inner();
        let tokenizer = load_tokenizer(&teacher_path)?;
        let objective = config
            .objective
            .kd_objective()
            .try_init()
            .map_err(config::objective_error)?;
        let needs_teacher = config.objective.alpha > 0.0;
        let (teacher_config, teacher) = if needs_teacher && config.cache.is_none() {
            let (c, m) = LlamaModel::from_pretrained(&teacher_path, LayerSelection::All, &inner)?;
            (c, Some(TeacherSource::Live(Box::new(m))))
        } else {
            (LlamaConfig::from_pretrained(&teacher_path)?, None)
        };
        let (student_config, student) =
            load_student(&config, &teacher_path, &teacher_config, &device)?;
        let eos = eos_token(&teacher_config)?;
        let (mut train, mut dev, cross, tokenizer) = if config.objective.kind.is_cross_tokenizer() {
            let live = match &teacher {
                Some(TeacherSource::Live(m)) => Some(m.as_ref()),
                _ => None,
            };
            let (train, dev, cross, student_tokenizer) = cross_setup(
                &config,
                (&tokenizer, &teacher_path, live),
                (&student_config, &teacher_config),
                &device,
            )?;
            (train, dev, Some(cross), student_tokenizer)
        } else if config.student.vocab().is_some() {
            // SFT (alpha = 0, validated) over the student's own tokenizer.
            let (train, dev, student_tokenizer) =
                cross_data(&config, &tokenizer, (&student_config, &teacher_config))?;
            (train, dev, None, student_tokenizer)
        } else {
            let (train, dev) = load_data(&config, &tokenizer, eos)?;
            (train, dev, None, tokenizer)
        };
        let mta = match config.objective.mta() {
            Some(section) => {
                let loss = mta_loss(
                    &section,
                    config.seed,
                    &student_config,
                    &teacher_config,
                    &device,
                )?;
                train.attach_units(&EnglishChunker)?;
                if let Some(dev) = dev.as_mut() {
                    dev.attach_units(&EnglishChunker)?;
                }
                Some((loss, section.lambda))
            }
            None => None,
        };
        let teacher = match teacher {
            Some(t) => Some(t),
            None if needs_teacher => {
                let dir = config
                    .cache_dir()
                    .expect("a cache when the teacher is not live");
                let key = if cross.is_some() {
                    let dev = dev.as_ref().map(DistillData::teacher_side);
                    expected_cache_key(&config, &teacher_path, &train.teacher_side(), dev.as_ref())?
                } else {
                    expected_cache_key(&config, &teacher_path, &train, dev.as_ref())?
                };
                Some(TeacherSource::Cached(Box::new(TeacherCache::open(
                    &dir, &key,
                )?)))
            }
            None => None,
        };
        let lengths = train.examples.iter().map(DistillExample::len).collect();
        let batching = Batching {
            batch_size: config.training.batch_size,
            length_grouping: config.training.length_grouping,
            pool_batches: config.training.pool_batches,
            seed: config.seed,
            min_batch: 1,
        };
        let batches = StepBatches::new(batching, lengths);
        let settings = config.loop_settings(batches.per_epoch());
        let task = Self {
            config,
            teacher_path,
            student_config,
            teacher_config,
            tokenizer,
            device: device.clone(),
            teacher,
            train,
            dev,
            batches,
            objective,
            mta,
            cross,
        };
        let projectors = match (&task.mta, &task.cross) {
            (Some((loss, _)), _) => loss.projectors.clone(),
            (_, Some(Cross::Sra(sra))) => sra.loss.projectors.clone(),
            (_, Some(Cross::Mta(loss, _))) => loss.projectors.clone(),
            (_, Some(Cross::DskdCma(cma))) => {
                vec![cma.query.clone(), cma.s2t.clone(), cma.t2s.clone()]
            }
            _ => Vec::new(),
        };
        let model = DistillModel {
            student,
            projectors,
        };
        Ok(Trainer::new(task, model, settings, &device))
    }

    /// [`DistillTask::trainer`], then the newest checkpoint in `output_dir/checkpoints`.
    ///
    /// # Errors
    /// As [`DistillTask::trainer`] and [`Trainer::resume`].
    pub fn resume(config: DistillConfig, device: &Device) -> Result<Trainer<Self>> {
        Self::trainer(config, device)?.resume()
    }

    /// The config.
    pub fn config(&self) -> &DistillConfig {
        &self.config
    }

    /// The teacher's path.
    pub fn teacher_path(&self) -> &Path {
        &self.teacher_path
    }

    /// The student's config.
    pub fn student_config(&self) -> &LlamaConfig {
        &self.student_config
    }

    /// The teacher's config.
    pub fn teacher_config(&self) -> &LlamaConfig {
        &self.teacher_config
    }

    /// The tokenizer of the training data: the teacher's, which the student shares, or the
    /// student's own with a cross-tokenizer objective.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The training records.
    pub fn train_data(&self) -> &DistillData {
        &self.train
    }

    /// The dev records (with `[eval]`).
    pub fn dev_data(&self) -> Option<&DistillData> {
        self.dev.as_ref()
    }

    /// `"live"`, `"cache (top-k)"` or `"none"` (α = 0).
    pub fn teacher_kind(&self) -> String {
        match &self.teacher {
            Some(TeacherSource::Live(_)) => "live".into(),
            Some(TeacherSource::Cached(c)) if c.manifest.key.top_k == 0 => format!(
                "cache {} (hidden states {:?})",
                c.dir.display(),
                c.manifest.key.hidden_layers
            ),
            Some(TeacherSource::Cached(c)) => {
                format!("cache {} (top-{})", c.dir.display(), c.manifest.key.top_k)
            }
            None => "none (α = 0)".into(),
        }
    }

    /// Writes the student to `dir` in the Hugging Face layout (config.json,
    /// model.safetensors, the student's tokenizer files: the teacher's, or those of the
    /// `[student] vocab` tokenizer of a vocabulary transplant), loadable by transformers and
    /// by `mrl generate` / `mrl eval --task instruct`.
    ///
    /// # Errors
    /// [`TrainError::Model`] when writing fails.
    pub fn export(&self, model: &DistillModel, dir: &Path) -> Result<()> {
        let tokenizer_source = match self.config.student.vocab() {
            Some(vocab) => crate::config::expand_path(&vocab.to_string_lossy()),
            None => model_dir(&self.teacher_path),
        };
        models::llama::export_decoder(
            &model.student.valid(),
            &self.student_config,
            dir,
            &tokenizer_source,
        )?;
        Ok(())
    }

    /// The teacher's targets at the counted positions of a batch of `part` (`train` / `dev`),
    /// on `device`, packed as [`DistillBatch::packed`] orders them.
    fn teacher_target(
        &self,
        part: &str,
        examples: &[&DistillExample],
        device: &Device,
    ) -> Result<TeacherTarget> {
        match self.teacher.as_ref().expect("a teacher when α > 0") {
            TeacherSource::Live(teacher) => {
                let inner = device.clone().inner();
                let b = DistillBatch::new(examples, &inner);
                let packed = b.packed(&inner).ok_or_else(no_counted_position)?;
                let logits = counted_logits(teacher, &b, packed.rows);
                let logits = if device.is_autodiff() {
                    Tensor::from_inner(logits)
                } else {
                    logits
                };
                Ok(TeacherTarget::Full { logits })
            }
            TeacherSource::Cached(cache) => cache.part(part)?.batch_target(examples, device),
        }
    }

    /// The objective on one batch of `part`, on `device` (autodiff for training).
    fn batch_loss(
        &self,
        model: &DistillModel,
        part: &str,
        examples: &[&DistillExample],
        device: &Device,
    ) -> Result<(LossTerms, DistillBatch)> {
        let batch = DistillBatch::new(examples, device);
        if let Some(cross) = &self.cross {
            let (ce, own) = self.cross_forward(model, cross, part, examples, &batch, device)?;
            let alpha = self.config.objective.alpha;
            let weighted = match cross {
                Cross::Mta(_, lambda) => own[0].1.clone().mul_scalar(*lambda),
                _ => own[0].1.clone(),
            };
            let total = ce.clone().mul_scalar(1.0 - alpha) + weighted.mul_scalar(alpha);
            let mut terms = vec![("total".to_string(), total.clone()), ("ce".to_string(), ce)];
            terms.extend(own);
            return Ok((
                LossTerms {
                    total,
                    terms,
                    items: batch.tokens,
                },
                batch,
            ));
        }
        if let Some((mta, lambda)) = &self.mta {
            let (kd, mta) = self.mta_forward(model, mta, examples, &batch, device)?;
            let alpha = self.config.objective.alpha;
            let mut terms = vec![("total".to_string(), Tensor::<1>::zeros([1], device))];
            self.push_kd_terms(&mut terms, kd.terms);
            let total = kd.loss + mta.loss.clone().mul_scalar(alpha * lambda);
            terms[0].1 = total.clone();
            terms.extend(prefixed_terms("mta", mta.terms()));
            return Ok((
                LossTerms {
                    total,
                    terms,
                    items: batch.tokens,
                },
                batch,
            ));
        }
        // The head and the loss only at the counted (response) positions, packed into one row:
        // the token mean is the same, and the prompt and padding rows never reach the
        // `[positions, vocab]` work.
        let packed = batch.packed(device).ok_or_else(no_counted_position)?;
        let logits = counted_logits(&model.student, &batch, packed.rows);
        let alpha = self.config.objective.alpha;
        let mut terms = Vec::new();
        let total = if alpha > 0.0 {
            let teacher = self.teacher_target(part, examples, device)?;
            let out = self
                .objective
                .try_forward(
                    logits,
                    packed.targets,
                    packed.mask,
                    &teacher,
                    Reduction::Mean,
                )
                .map_err(|e| TrainError::Eval(format!("distillation loss: {e}")))?;
            terms.push(("total".to_string(), out.loss.clone()));
            self.push_kd_terms(&mut terms, out.terms);
            out.loss
        } else {
            let ce = masked_cross_entropy(logits, packed.targets, packed.mask, Reduction::Mean);
            terms.push(("total".to_string(), ce.clone()));
            terms.push(("ce".to_string(), ce.clone()));
            ce
        };
        Ok((
            LossTerms {
                total,
                terms,
                items: batch.tokens,
            },
            batch,
        ))
    }

    /// The KD objective's terms: `ce`, `kd`, then the divergence's own parts (AKL: fkl, rkl,
    /// head weight) as `kd/…`; the divergence under its own name is `kd` again.
    fn push_kd_terms(
        &self,
        terms: &mut Vec<(String, Tensor<1>)>,
        kd_terms: Vec<(&'static str, Tensor<1>)>,
    ) {
        let own = self.config.objective.divergence().name();
        for (name, value) in kd_terms {
            match name {
                "ce" | "kd" => terms.push((name.to_string(), value)),
                _ if name == own => {}
                _ => terms.push((format!("kd/{name}"), value)),
            }
        }
    }

    /// One MTA batch: the student and the live teacher with every hidden state, the KD
    /// objective on the full teacher distribution and the MTA term with the model's projectors.
    fn mta_forward(
        &self,
        model: &DistillModel,
        mta: &MtaLoss,
        examples: &[&DistillExample],
        batch: &DistillBatch,
        device: &Device,
    ) -> Result<(distill_objectives::KdObjectiveOutput, MtaOutput)> {
        let Some(TeacherSource::Live(teacher)) = self.teacher.as_ref() else {
            return Err(crate::config::bad(
                "cache",
                "MTA needs the live teacher's hidden states",
            ));
        };
        let student = model.student.forward(batch.input(), false);
        let s_logits = drop_last_position(student.logits.expect("forward returns logits"));
        let inner = device.clone().inner();
        let t_batch = DistillBatch::new(examples, &inner);
        let t_out = teacher.forward(t_batch.input(), false);
        let lift = |t: Tensor<3>| {
            if device.is_autodiff() {
                Tensor::from_inner(t)
            } else {
                t
            }
        };
        let t_logits = lift(t_out.logits.expect("forward returns logits"));
        let teacher_hidden: Vec<Tensor<3>> = t_out.hidden_states.into_iter().map(lift).collect();
        let confidence = mta
            .entropy_weighting
            .then(|| teacher_confidence(t_logits.clone()));
        let kd = self
            .objective
            .try_forward(
                s_logits,
                batch.targets.clone(),
                batch.target_mask.clone(),
                &TeacherTarget::Full {
                    logits: drop_last_position(t_logits),
                },
                Reduction::Mean,
            )
            .map_err(|e| TrainError::Eval(format!("distillation loss: {e}")))?;
        let [_, seq] = batch.dims();
        let members = |g: Granularity| {
            let list: Vec<Membership> = examples
                .iter()
                .map(|e| {
                    e.units
                        .as_ref()
                        .expect("MTA data carries units")
                        .get(g)
                        .clone()
                })
                .collect();
            membership_tensor(&list, seq, device).0
        };
        let loss = MtaLoss {
            projectors: model.projectors.clone(),
            ..mta.clone()
        };
        let out = loss
            .try_forward(
                MtaInput {
                    teacher_hidden,
                    student_hidden: student.hidden_states,
                    attention_mask: batch.attention_mask.clone().float(),
                    words: members(Granularity::Words),
                    phrases: members(Granularity::Phrases),
                    teacher_confidence: confidence,
                },
                Reduction::Mean,
            )
            .map_err(|e| TrainError::Eval(format!("MTA loss: {e}")))?;
        Ok((kd, out))
    }

    /// One cross-tokenizer batch: the student on its own tokens, the live teacher on its own;
    /// the student's cross-entropy and the objective's named terms (its own value first, e.g.
    /// `sra`, then `sra/com`, …; MTA's without its `λ`).
    fn cross_forward(
        &self,
        model: &DistillModel,
        cross: &Cross,
        part: &str,
        examples: &[&DistillExample],
        batch: &DistillBatch,
        device: &Device,
    ) -> Result<(Tensor<1>, Vec<(String, Tensor<1>)>)> {
        let teacher_examples: Vec<&DistillExample> = examples
            .iter()
            .map(|e| {
                &e.cross
                    .as_ref()
                    .expect("cross-tokenizer data carries teacher tokens")
                    .teacher
            })
            .collect();
        let loss_err = |what: &str| {
            let what = what.to_string();
            move |e: distill_objectives::DistillError| TrainError::Eval(format!("{what} loss: {e}"))
        };
        if let Cross::Sra(sra) = cross {
            let spans: Vec<_> = examples
                .iter()
                .map(|e| {
                    e.cross
                        .as_ref()
                        .expect("SRA data carries spans")
                        .spans
                        .clone()
                })
                .collect();
            let teacher = match self.teacher.as_ref() {
                Some(TeacherSource::Live(teacher)) => SraTeacher::Live(teacher),
                Some(TeacherSource::Cached(cache)) => SraTeacher::Cached(cache.part(part)?),
                None => unreachable!("SRA runs have a teacher (alpha > 0)"),
            };
            let models = SraModels {
                student: &model.student,
                teacher,
                shared: &sra.shared,
                teacher_head: sra.teacher_head.clone(),
            };
            let (ce, input) = sra_inputs(
                &models,
                &sra.loss.pairs,
                (batch, &teacher_examples, &spans),
                device,
            )?;
            let loss = SraLoss {
                projectors: model.projectors.clone(),
                ..sra.loss.clone()
            };
            let out = loss
                .try_forward(input, Reduction::Mean)
                .map_err(loss_err("SRA"))?;
            return Ok((ce, prefixed_terms("sra", out.terms())));
        }
        let Some(TeacherSource::Live(teacher)) = self.teacher.as_ref() else {
            return Err(crate::config::bad(
                "cache",
                "this cross-tokenizer objective needs the live teacher",
            ));
        };
        match cross {
            Cross::Sra(..) => unreachable!("handled above"),
            Cross::Mta(mta, _) => {
                let CrossPass {
                    ce,
                    student,
                    teacher_batch: t_batch,
                    teacher: t_out,
                    ..
                } = cross_pass(
                    &model.student,
                    teacher,
                    batch,
                    &teacher_examples,
                    device,
                    (false, false),
                );
                let members = |units: Vec<&ExampleUnits>, g: Granularity, seq: usize| {
                    let list: Vec<Membership> = units.iter().map(|u| u.get(g).clone()).collect();
                    membership_tensor(&list, seq, device).0
                };
                let student_units: Vec<&ExampleUnits> = examples
                    .iter()
                    .map(|e| e.units.as_deref().expect("MTA data carries units"))
                    .collect();
                let teacher_units: Vec<&ExampleUnits> = examples
                    .iter()
                    .map(|e| {
                        e.cross
                            .as_ref()
                            .and_then(|c| c.units.as_deref())
                            .expect("cross-tokenizer MTA data carries the teacher's units")
                    })
                    .collect();
                let (seq_s, seq_t) = (batch.dims()[1], t_batch.dims()[1]);
                let loss = MtaLoss {
                    projectors: model.projectors.clone(),
                    ..mta.clone()
                };
                let out = loss
                    .try_forward_cross(
                        MtaCrossInput {
                            teacher_hidden: t_out
                                .hidden_states
                                .into_iter()
                                .map(|t| lift(t, device))
                                .collect(),
                            student_hidden: student.hidden_states,
                            teacher_mask: lift(t_batch.attention_mask.clone().float(), device),
                            student_mask: batch.attention_mask.clone().float(),
                            teacher_words: members(
                                teacher_units.clone(),
                                Granularity::Words,
                                seq_t,
                            ),
                            teacher_phrases: members(teacher_units, Granularity::Phrases, seq_t),
                            student_words: members(
                                student_units.clone(),
                                Granularity::Words,
                                seq_s,
                            ),
                            student_phrases: members(student_units, Granularity::Phrases, seq_s),
                        },
                        Reduction::Mean,
                    )
                    .map_err(loss_err("MTA"))?;
                let terms = prefixed_terms("mta", out.terms());
                Ok((ce, terms))
            }
            Cross::DskdCma(cma) => {
                let pass = cross_pass(
                    &model.student,
                    teacher,
                    batch,
                    &teacher_examples,
                    device,
                    (false, true),
                );
                let CrossPass {
                    ce,
                    student_logits,
                    student,
                    teacher_batch,
                    teacher: mut t_out,
                } = pass;
                let t_logits =
                    drop_last_position(t_out.logits.take().expect("teacher logits were asked for"));
                // Hidden states at the positions that have a next token, and each position's
                // input token: the positions of the next-token logits.
                let cut3 = |t: Tensor<3>| {
                    let [rows, seq, width] = t.dims();
                    t.slice([0..rows, 0..seq - 1, 0..width])
                };
                let cut2 = |t: Tensor<2, Int>| {
                    let [rows, seq] = t.dims();
                    t.slice([0..rows, 0..seq - 1])
                };
                let student_side = DskdCmaSide {
                    hidden: cut3(student.last_hidden_state()),
                    logits: student_logits,
                    inputs: cut2(batch.input_ids.clone()),
                    targets: batch.targets.clone(),
                    mask: batch.target_mask.clone(),
                    embedding: model.student.embed_tokens.weight.val(),
                    head: output_embedding(&model.student),
                };
                let teacher_side = DskdCmaSide {
                    hidden: lift(cut3(t_out.last_hidden_state()), device),
                    logits: lift(t_logits, device),
                    inputs: lift_int(cut2(teacher_batch.input_ids.clone()), device),
                    targets: lift_int(teacher_batch.targets.clone(), device),
                    mask: lift(teacher_batch.target_mask.clone(), device),
                    embedding: lift(teacher.embed_tokens.weight.val(), device),
                    head: lift(output_embedding(teacher), device),
                };
                let module = DskdCma {
                    query: model.projectors[0].clone(),
                    s2t: model.projectors[1].clone(),
                    t2s: model.projectors[2].clone(),
                    ..cma.as_ref().clone()
                };
                let out = module
                    .try_forward(
                        DskdCmaInput {
                            student: student_side,
                            teacher: teacher_side,
                        },
                        Reduction::Mean,
                    )
                    .map_err(loss_err("DSKD-CMA"))?;
                let terms = prefixed_terms("dskd_cma", out.terms());
                Ok((ce, terms))
            }
            Cross::Uld(uld) => {
                let (ce, s_logits, t_logits, t_batch) =
                    self.cross_logits(model, teacher, &teacher_examples, batch, device);
                let out = uld
                    .try_forward(
                        s_logits,
                        batch.target_mask.clone(),
                        t_logits,
                        lift(t_batch.target_mask, device),
                        Reduction::Mean,
                    )
                    .map_err(loss_err("ULD"))?;
                Ok((ce, vec![("uld".to_string(), out.loss)]))
            }
            Cross::Mined(mined, shared, vocabularies) => {
                let (ce, s_logits, t_logits, t_batch) =
                    self.cross_logits(model, teacher, &teacher_examples, batch, device);
                let (student_vocab, teacher_vocab) = vocabularies.as_ref();
                let strings = |e: &&DistillExample, vocab: &[String], seq: usize| -> Vec<String> {
                    (0..seq)
                        .map(|t| {
                            e.ids
                                .get(t)
                                .and_then(|&id| vocab.get(id as usize))
                                .cloned()
                                .unwrap_or_default()
                        })
                        .collect()
                };
                let seq_s = batch.dims()[1] - 1;
                let seq_t = t_batch.dims()[1] - 1;
                let out = mined
                    .try_forward(
                        MinedInput {
                            student_logits: s_logits,
                            student_mask: batch.target_mask.clone(),
                            student_targets: Some(batch.targets.clone()),
                            teacher_logits: t_logits,
                            teacher_mask: lift(t_batch.target_mask, device),
                            student_tokens: examples
                                .iter()
                                .map(|e| strings(e, student_vocab, seq_s))
                                .collect(),
                            teacher_tokens: teacher_examples
                                .iter()
                                .map(|e| strings(e, teacher_vocab, seq_t))
                                .collect(),
                        },
                        shared,
                        Reduction::Mean,
                    )
                    .map_err(loss_err("MinED"))?;
                Ok((ce, vec![("mined".to_string(), out.loss)]))
            }
        }
    }

    /// The student's CE and next-token logits on its batch, the teacher's next-token logits on
    /// its own tokens (lifted to `device`) and the teacher's batch.
    fn cross_logits(
        &self,
        model: &DistillModel,
        teacher: &LlamaModel,
        teacher_examples: &[&DistillExample],
        batch: &DistillBatch,
        device: &Device,
    ) -> (Tensor<1>, Tensor<3>, Tensor<3>, DistillBatch) {
        let pass = cross_pass(
            &model.student,
            teacher,
            batch,
            teacher_examples,
            device,
            (false, true),
        );
        let t_logits = lift(
            drop_last_position(pass.teacher.logits.expect("teacher logits were asked for")),
            device,
        );
        let (ce, s_logits, t_batch) = (pass.ce, pass.student_logits, pass.teacher_batch);
        (ce, s_logits, t_logits, t_batch)
    }

    /// [`DistillEval`] of `model` on `data` (a `part` of the cache when the teacher is cached).
    ///
    /// # Errors
    /// Cache or loss errors.
    pub fn evaluate_on(
        &self,
        model: &DistillModel,
        part: &str,
        data: &DistillData,
    ) -> Result<DistillEval> {
        let inference = DistillModel {
            student: model.student.valid(),
            projectors: model.projectors.iter().map(|p| p.valid()).collect(),
        };
        let device = self.device.clone().inner();
        let batch_size = self.config.eval.as_ref().map_or(8, |e| e.batch_size);
        let (mut loss, mut ce, mut kd, mut mta, mut positions) = (0.0, 0.0, 0.0, 0.0, 0usize);
        let (mut sra, mut uld, mut mined, mut cma) = (0.0, 0.0, 0.0, 0.0);
        for chunk in data.examples.chunks(batch_size) {
            let refs: Vec<&DistillExample> = chunk.iter().collect();
            let (terms, batch) = self.batch_loss(&inference, part, &refs, &device)?;
            let n = batch.targets_counted as f64;
            let value = |name: &str| -> f64 {
                terms
                    .terms
                    .iter()
                    .find(|(t, _)| t == name)
                    .map_or(0.0, |(_, v)| f64::from(v.clone().into_scalar::<f32>()))
            };
            loss += value("total") * n;
            ce += value("ce") * n;
            kd += value("kd") * n;
            mta += value("mta") * n;
            sra += value("sra") * n;
            uld += value("uld") * n;
            mined += value("mined") * n;
            cma += value("dskd_cma") * n;
            positions += batch.targets_counted;
        }
        let n = positions.max(1) as f64;
        Ok(DistillEval {
            loss: loss / n,
            ce: ce / n,
            kd: (self.config.objective.alpha > 0.0 && self.cross.is_none()).then_some(kd / n),
            positions,
            mta: (self.mta.is_some() || matches!(self.cross, Some(Cross::Mta(..))))
                .then_some(mta / n),
            sra: matches!(self.cross, Some(Cross::Sra(..))).then_some(sra / n),
            uld: matches!(self.cross, Some(Cross::Uld(..))).then_some(uld / n),
            mined: matches!(self.cross, Some(Cross::Mined(..))).then_some(mined / n),
            dskd_cma: matches!(self.cross, Some(Cross::DskdCma(..))).then_some(cma / n),
        })
    }
}

/// The decoder's logits at every position but the last, `[batch, seq − 1, vocab]`: position
/// `t` predicts token `t + 1` (aligned with [`DistillBatch::targets`]).
pub fn next_token_logits(model: &LlamaModel, batch: &DistillBatch) -> Tensor<3> {
    let logits = model
        .forward(batch.input(), false)
        .logits
        .expect("forward returns logits");
    drop_last_position(logits)
}

/// The decoder's logits at the counted positions of `batch` only, `[1, M, vocab]`: the last
/// hidden states at `rows` ([`PackedTargets::rows`] of [`DistillBatch::packed`]) through the
/// head, equal to [`next_token_logits`] at the positions where `target_mask` is 1.
pub fn counted_logits(model: &LlamaModel, batch: &DistillBatch, rows: Tensor<1, Int>) -> Tensor<3> {
    let hidden = model
        .forward_hidden(batch.input(), false)
        .last_hidden_state();
    let [b, s, width] = hidden.dims();
    let picked = hidden.reshape([b * s, width]).select(0, rows);
    let m = picked.dims()[0];
    model.logits(picked.reshape([1, m, width]))
}

/// A batch without a counted target position has no token mean.
fn no_counted_position() -> TrainError {
    TrainError::Eval("a batch has no response position to distil on".to_string())
}

/// `[batch, seq − 1, vocab]`: the logits that have a next token.
fn drop_last_position(logits: Tensor<3>) -> Tensor<3> {
    let [b, s, v] = logits.dims();
    logits.slice([0..b, 0..s - 1, 0..v])
}

/// MTA's loss for these models on `device`, its schedule checked against their depths; random
/// projectors are drawn from `seed`.
///
/// # Errors
/// [`TrainError::ConfigValue`] on `objective.mta.pairs` for a layer past a model's depth, on
/// `objective.mta` for values the loss rejects (an identity projector between different widths).
pub fn mta_loss(
    section: &MtaSection,
    seed: u64,
    student: &LlamaConfig,
    teacher: &LlamaConfig,
    device: &Device,
) -> Result<MtaLoss> {
    let pairs = section
        .pairs
        .iter()
        .map(|p| (p.teacher_layer, p.student_layer));
    check_pair_layers("objective.mta.pairs", pairs, 0, (student, teacher))?;
    let mut loss = section
        .loss_config(student.hidden_size, teacher.hidden_size)
        .try_init(device)
        .map_err(|e| crate::config::bad("objective.mta", e.to_string()))?;
    if section.projector_init == ProjectorInit::Random {
        seeded_projectors(&mut loss.projectors, seed, 0x4D54_4150, device);
    }
    Ok(loss)
}

/// The cross-tokenizer data and objective of a config whose kind is cross-tokenizer: the
/// records tokenized by the student's own tokenizer (`[student] vocab`, its EOS) and again by
/// the teacher's, with the spans both share; the objective (with its projectors and shared
/// vocabulary where it has them); the student's tokenizer.
///
/// # Errors
/// Data errors, a tokenizer that does not load, two vocabularies without a common token, pair
/// layers past the models' depths.
fn cross_setup(
    config: &DistillConfig,
    (teacher_tokenizer, teacher_path, live_teacher): (&Tokenizer, &Path, Option<&LlamaModel>),
    (student_config, teacher_config): (&LlamaConfig, &LlamaConfig),
    device: &Device,
) -> Result<(DistillData, Option<DistillData>, Cross, Tokenizer)> {
    let (mut train, mut dev, student_tokenizer) =
        cross_data(config, teacher_tokenizer, (student_config, teacher_config))?;
    let cross = match config.objective.kind {
        ObjectiveKind::Sra => {
            let section = config.objective.sra().expect("kind = sra");
            let shared = shared_vocabulary(&student_tokenizer, teacher_tokenizer)?;
            let loss = sra_loss(
                &section,
                config.seed,
                student_config,
                teacher_config,
                device,
            )?;
            let inner = device.clone().inner();
            let teacher_head = match live_teacher {
                Some(teacher) => sra_teacher_head(teacher, &shared),
                None => {
                    // A cached teacher: its embedding (and head) without the decoder layers.
                    let (_, embedding) = LlamaModel::from_pretrained(
                        teacher_path,
                        models::LayerSelection::First(1),
                        &inner,
                    )?;
                    sra_teacher_head(&embedding, &shared)
                }
            };
            Cross::Sra(Box::new(SraObjective {
                loss,
                shared,
                teacher_head,
            }))
        }
        ObjectiveKind::Uld => Cross::Uld(UldLossConfig::new().init()),
        ObjectiveKind::Mined => {
            let shared = shared_vocabulary(&student_tokenizer, teacher_tokenizer)?;
            let loss = MinedLossConfig::new()
                .with_temperature(config.objective.temperature)
                .try_init()
                .map_err(|e| crate::config::bad("objective.temperature", e.to_string()))?;
            let strings = |t: &Tokenizer, what| {
                distill_objectives::vocabulary_from_token_map(what, &t.get_vocab(true))
                    .map_err(|e| crate::config::bad("student.vocab", e.to_string()))
            };
            let vocabularies = (
                strings(&student_tokenizer, "student vocabulary")?,
                strings(teacher_tokenizer, "teacher vocabulary")?,
            );
            Cross::Mined(loss, shared, Box::new(vocabularies))
        }
        ObjectiveKind::MtaCross => {
            let section = config.objective.mta_cross().expect("kind = mta-cross");
            let loss = mta_loss(
                &section,
                config.seed,
                student_config,
                teacher_config,
                device,
            )?;
            train.attach_units(&EnglishChunker)?;
            if let Some(dev) = dev.as_mut() {
                dev.attach_units(&EnglishChunker)?;
            }
            Cross::Mta(loss, section.lambda)
        }
        ObjectiveKind::DskdCma => {
            let mut cma =
                DskdCmaConfig::new(student_config.hidden_size, teacher_config.hidden_size)
                    .with_temperature(config.objective.temperature)
                    .try_init(device)
                    .map_err(config::objective_error)?;
            let mut projectors = [cma.query.clone(), cma.s2t.clone(), cma.t2s.clone()];
            seeded_projectors(&mut projectors, config.seed, 0x434D_4150, device);
            let [query, s2t, t2s] = projectors;
            cma.query = query;
            cma.s2t = s2t;
            cma.t2s = t2s;
            Cross::DskdCma(Box::new(cma))
        }
        ObjectiveKind::Kd | ObjectiveKind::Mta => {
            unreachable!("cross_setup is called for cross-tokenizer kinds")
        }
    };
    Ok((train, dev, cross, student_tokenizer))
}

/// The records of a run whose student has its own tokenizer (`[student] vocab`): tokenized by
/// the student's tokenizer, with the teacher's tokens of the same text attached (a record either
/// side drops is dropped), and the student's tokenizer. SFT over the student's tokenizer reads the
/// same records as the cross-tokenizer objectives.
///
/// # Errors
/// As [`student_tokenizer`] and [`DistillData::attach_teacher_tokens`];
/// [`TrainError::ConfigValue`] on `data.records` when no training record is left.
fn cross_data(
    config: &DistillConfig,
    teacher_tokenizer: &Tokenizer,
    (student_config, teacher_config): (&LlamaConfig, &LlamaConfig),
) -> Result<(DistillData, Option<DistillData>, Tokenizer)> {
    let (student_tokenizer, student_eos) = student_tokenizer(config, student_config)?;
    let teacher_eos = eos_token(teacher_config)?;
    let (mut train, mut dev) = load_data(config, &student_tokenizer, student_eos)?;
    let (max_length, skip) = (config.data.max_length, config.data.skip_long_prompts);
    train.attach_teacher_tokens(teacher_tokenizer, teacher_eos, max_length, skip)?;
    if train.is_empty() {
        return Err(crate::config::bad("data.records", "selects no record"));
    }
    if let Some(dev) = dev.as_mut() {
        dev.attach_teacher_tokens(teacher_tokenizer, teacher_eos, max_length, skip)?;
    }
    Ok((train, dev, student_tokenizer))
}

/// The student's own tokenizer (`[student] vocab`, `${MRL_SHARED}` expanded) and EOS id.
///
/// # Errors
/// [`TrainError::ConfigValue`] on `student.vocab` when it is not set or the student has no EOS;
/// [`TrainError::Model`] when the tokenizer does not load.
pub fn student_tokenizer(
    config: &DistillConfig,
    student_config: &LlamaConfig,
) -> Result<(Tokenizer, u32)> {
    let vocab = config
        .student
        .vocab()
        .map(|v| crate::config::expand_path(&v.to_string_lossy()))
        .ok_or_else(|| {
            crate::config::bad("student.vocab", "a cross-tokenizer objective needs it")
        })?;
    let tokenizer = load_tokenizer(&vocab)?;
    let eos = student_config
        .eos_token_ids
        .first()
        .copied()
        .ok_or_else(|| {
            crate::config::bad("student.vocab", "the student's tokenizer has no eos token")
        })?;
    Ok((tokenizer, eos))
}

/// The vocabulary intersection of SRA's logit term: exact token strings, space markers folded.
///
/// # Errors
/// [`TrainError::ConfigValue`] on `student.vocab` when the vocabularies share no token.
pub fn shared_vocabulary(student: &Tokenizer, teacher: &Tokenizer) -> Result<VocabIntersection> {
    VocabIntersection::from_token_maps(&student.get_vocab(true), &teacher.get_vocab(true))
        .map_err(|e| crate::config::bad("student.vocab", e.to_string()))
}

/// SRA's loss for these models on `device`, its pairs checked against their depths (an SRA
/// pair needs the attention of the layer that produced its state, so layer 0 is refused);
/// random projectors are drawn from `seed`.
///
/// # Errors
/// [`TrainError::ConfigValue`] on `objective.sra.pairs` for a layer 0 or past a model's depth,
/// on `objective.sra` for values the loss rejects.
pub fn sra_loss(
    section: &SraSection,
    seed: u64,
    student: &LlamaConfig,
    teacher: &LlamaConfig,
    device: &Device,
) -> Result<SraLoss> {
    // Layer 0 (the embeddings) has no attention to weigh the centres of mass.
    let pairs = section
        .pairs
        .iter()
        .map(|p| (p.teacher_layer, p.student_layer));
    check_pair_layers("objective.sra.pairs", pairs, 1, (student, teacher))?;
    let mut loss = section
        .loss_config(student.hidden_size, teacher.hidden_size)
        .try_init(device)
        .map_err(|e| crate::config::bad("objective.sra", e.to_string()))?;
    if section.projector_init == ProjectorInit::Random {
        seeded_projectors(&mut loss.projectors, seed, 0x5352_4150, device);
    }
    Ok(loss)
}

/// Checks `(teacher layer, student layer)` pairs against the models' depths: hidden-state
/// indices `first..=n_layers` (0 = embeddings, `n_layers` = after the final norm).
///
/// # Errors
/// [`TrainError::ConfigValue`] on `key` naming the first layer out of range.
fn check_pair_layers(
    key: &str,
    pairs: impl Iterator<Item = (usize, usize)>,
    first: usize,
    (student, teacher): (&LlamaConfig, &LlamaConfig),
) -> Result<()> {
    for (teacher_layer, student_layer) in pairs {
        for (side, layer, depth) in [
            ("teacher", teacher_layer, teacher.num_hidden_layers),
            ("student", student_layer, student.num_hidden_layers),
        ] {
            if layer < first || layer > depth {
                return Err(crate::config::bad(
                    key,
                    format!(
                        "{side}_layer = {layer} is outside {first}..={depth}: the {side} has \
                         {depth} layers (hidden states 0..={depth}: 0 = embeddings, {depth} = \
                         after the final norm){}",
                        if first > 0 {
                            "; this objective reads the attention of the layer that produced \
                             the state, so not the embeddings"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Redraws projectors with Burn's `Linear` default (uniform ±1/√d_in for weight and bias) from
/// the run's own seeded stream rather than the backend's global RNG, which other threads share.
fn seeded_projectors(projectors: &mut [Linear], seed: u64, stream: u64, device: &Device) {
    let mut rng = mrl_common::SplitMix64::with_stream(seed, stream);
    let mut uniform = |shape: &[usize], bound: f64| {
        let n = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
            .collect();
        TensorData::new(values, shape.to_vec())
    };
    for p in projectors {
        let [d_in, d_out] = p.weight.dims();
        let bound = 1.0 / (d_in as f64).sqrt();
        p.weight = Param::from_tensor(Tensor::from_data(uniform(&[d_in, d_out], bound), device));
        p.bias = Some(Param::from_tensor(Tensor::from_data(
            uniform(&[d_out], bound),
            device,
        )));
    }
}

/// Where SRA's teacher side of a batch comes from.
pub enum SraTeacher<'a> {
    /// The teacher, run on its own tokens (on the batch device's inner, non-autodiff device).
    Live(&'a LlamaModel),
    /// A span cache's part: the aligned layers' states and centre-of-mass weights.
    Cached(&'a CachedPart),
}

/// What an SRA batch reads.
pub struct SraModels<'a> {
    /// The student (on the batch's device).
    pub student: &'a LlamaModel,
    /// The teacher's side.
    pub teacher: SraTeacher<'a>,
    /// The exact-string vocabulary intersection of the logit term.
    pub shared: &'a VocabIntersection,
    /// The teacher's head rows over `shared` ([`sra_teacher_head`]), on the inner device.
    pub teacher_head: Tensor<2>,
}

/// The teacher's output-embedding rows over `shared` (in its order), `[shared, d_T]`.
pub fn sra_teacher_head(teacher: &LlamaModel, shared: &VocabIntersection) -> Tensor<2> {
    let head = output_embedding(teacher);
    let device = head.device();
    head.select(0, token_ids(shared.teacher_ids(), &device))
}

fn token_ids(ids: &[u32], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
    Tensor::<1, Int>::from_data(TensorData::new(v, [ids.len()]), device)
}

/// The student's cross-entropy on its response tokens and SRA's inputs for one batch: the
/// student's `batch` (its own tokens), the teacher's tokenization of the same examples and
/// their shared spans; `pairs` are the loss's layer pairs. With a cached teacher the teacher's
/// hidden states the pairs do not read are `[batch, 1, d_T]` zeros (never read by the loss).
///
/// # Errors
/// [`TrainError::Cache`] when the cache lacks a record or a pair's layer.
pub fn sra_inputs(
    models: &SraModels<'_>,
    pairs: &[distill_objectives::SraLayerPair],
    (batch, teacher_examples, spans): (
        &DistillBatch,
        &[&DistillExample],
        &[Vec<distill_objectives::AlignedSpan>],
    ),
    device: &Device,
) -> Result<(Tensor<1>, SraInput)> {
    let inner = device.clone().inner();
    let t_batch = DistillBatch::new(teacher_examples, &inner);
    let seq_t = t_batch.dims()[1];
    let student = student_pass(models.student, batch, true);
    let s_attn = student
        .output
        .attentions
        .as_ref()
        .expect("attentions were asked for");
    let s_mask = batch.attention_mask.clone().float();
    let student_weights = pairs
        .iter()
        .map(|pair| com_weights(s_attn[pair.student_layer - 1].clone(), s_mask.clone()))
        .collect();
    let (teacher_hidden, teacher_weights) = match &models.teacher {
        SraTeacher::Live(teacher) => {
            let t_out = teacher.forward_hidden(t_batch.input(), true);
            let t_attn = t_out.attentions.expect("attentions were asked for");
            let t_mask = t_batch.attention_mask.clone().float();
            // Hidden state l is the output of decoder layer l − 1 (then the final norm for
            // the last): its attention weighs the centres of mass.
            let weights = pairs
                .iter()
                .map(|pair| {
                    lift(
                        com_weights(t_attn[pair.teacher_layer - 1].clone(), t_mask.clone()),
                        device,
                    )
                })
                .collect();
            let hidden = t_out
                .hidden_states
                .into_iter()
                .map(|t| lift(t, device))
                .collect();
            (hidden, weights)
        }
        SraTeacher::Cached(part) => {
            let layers = part.span_inputs(teacher_examples, seq_t, &inner)?;
            let of = |layer: usize| {
                layers.iter().find(|l| l.layer == layer).ok_or_else(|| {
                    crate::config::bad(
                        "cache",
                        format!(
                            "the cache holds teacher layers {:?}, not layer {layer} of \
                             objective.sra.pairs: rebuild it with `mrl distill cache --force`",
                            part.hidden_layers()
                        ),
                    )
                })
            };
            let weights = pairs
                .iter()
                .map(|pair| Ok(lift(of(pair.teacher_layer)?.weights.clone(), device)))
                .collect::<Result<Vec<_>>>()?;
            let deepest = pairs.iter().map(|p| p.teacher_layer).max().unwrap_or(0);
            let width = layers.first().map_or(1, |l| l.hidden.dims()[2]);
            let b = teacher_examples.len();
            let mut hidden = Vec::with_capacity(deepest + 1);
            for layer in 0..=deepest {
                hidden.push(match layers.iter().find(|l| l.layer == layer) {
                    Some(l) => lift(l.hidden.clone(), device),
                    None => Tensor::zeros([b, 1, width], device),
                });
            }
            (hidden, weights)
        }
    };
    let members = |side: SpanSide, seq: usize| {
        let list: Vec<Membership> = spans.iter().map(|s| span_membership(s, side)).collect();
        membership_tensor(&list, seq, device).0
    };
    let student_head =
        output_embedding(models.student).select(0, token_ids(models.shared.student_ids(), device));
    Ok((
        student.ce,
        SraInput {
            teacher_hidden,
            student_hidden: student.output.hidden_states,
            teacher_weights,
            student_weights,
            teacher_spans: members(SpanSide::Teacher, seq_t),
            student_spans: members(SpanSide::Student, batch.dims()[1]),
            teacher_head: lift(models.teacher_head.clone(), device),
            student_head,
        },
    ))
}

/// Both models of a cross-tokenizer batch, each on its own tokens.
pub struct CrossPass {
    /// The student's cross-entropy on its response tokens (mean over the counted positions).
    pub ce: Tensor<1>,
    /// The student's next-token logits `[batch, seq_S − 1, vocab_S]`.
    pub student_logits: Tensor<3>,
    /// The student's hidden states (and attentions when asked for).
    pub student: models::LlamaOutput,
    /// The teacher's batch (its own tokens), on the inner device.
    pub teacher_batch: DistillBatch,
    /// The teacher's outputs on the inner device: hidden states, attentions when asked for,
    /// logits when asked for.
    pub teacher: models::LlamaOutput,
}

/// Runs the student on `batch` (its own tokens) and the teacher on `teacher_examples` (the same
/// records in its tokens, on `device`'s inner device), with every hidden state;
/// `attentions` and `teacher_logits` say what else the objective reads.
pub fn cross_pass(
    student: &LlamaModel,
    teacher: &LlamaModel,
    batch: &DistillBatch,
    teacher_examples: &[&DistillExample],
    device: &Device,
    (attentions, teacher_logits): (bool, bool),
) -> CrossPass {
    let StudentPass {
        ce,
        logits: student_logits,
        output: s_out,
    } = student_pass(student, batch, attentions);
    let inner = device.clone().inner();
    let teacher_batch = DistillBatch::new(teacher_examples, &inner);
    let t_input = teacher_batch.input();
    let t_out = if teacher_logits {
        teacher.forward(t_input, attentions)
    } else {
        teacher.forward_hidden(t_input, attentions)
    };
    CrossPass {
        ce,
        student_logits,
        student: s_out,
        teacher_batch,
        teacher: t_out,
    }
}

/// The student's side of a batch: see [`student_pass`].
struct StudentPass {
    /// Cross-entropy on the response tokens (mean over the counted positions).
    ce: Tensor<1>,
    /// Next-token logits `[batch, seq − 1, vocab]`.
    logits: Tensor<3>,
    /// Hidden states (and attentions when asked for); `logits` taken out.
    output: models::LlamaOutput,
}

/// Runs the student on `batch` with every hidden state (and attentions when asked for).
fn student_pass(student: &LlamaModel, batch: &DistillBatch, attentions: bool) -> StudentPass {
    let mut output = student.forward(batch.input(), attentions);
    let logits = drop_last_position(output.logits.take().expect("forward returns logits"));
    let ce = masked_cross_entropy(
        logits.clone(),
        batch.targets.clone(),
        batch.target_mask.clone(),
        Reduction::Mean,
    );
    StudentPass { ce, logits, output }
}

/// A tensor of the inner (non-autodiff) device on `device` (as a constant when `device` is
/// autodiff).
fn lift<const D: usize>(t: Tensor<D>, device: &Device) -> Tensor<D> {
    if device.is_autodiff() {
        Tensor::from_inner(t)
    } else {
        t
    }
}

/// An objective's named terms for the step report: its own value under `own`, the others as
/// `own/name`.
fn prefixed_terms<S: Into<String>>(
    own: &str,
    terms: Vec<(S, Tensor<1>)>,
) -> Vec<(String, Tensor<1>)> {
    terms
        .into_iter()
        .map(|(name, value)| {
            let name = name.into();
            let key = if name == own {
                name
            } else {
                format!("{own}/{name}")
            };
            (key, value)
        })
        .collect()
}

/// An int tensor of the inner device on `device`.
fn lift_int(t: Tensor<2, Int>, device: &Device) -> Tensor<2, Int> {
    if device.is_autodiff() {
        Tensor::from_inner(t)
    } else {
        t
    }
}

/// The output embedding `[vocab, hidden]`: the `lm_head` (transposed), or the tied input
/// embedding.
fn output_embedding(model: &LlamaModel) -> Tensor<2> {
    match &model.lm_head {
        Some(head) => head.weight.val().transpose(),
        None => model.embed_tokens.weight.val(),
    }
}

impl Task for DistillTask {
    type Model = DistillModel;
    type Eval = DistillEval;

    fn name(&self) -> &'static str {
        "distillation"
    }

    /// Everything but `device`, `output_dir`, `[eval]`, `[checkpoint]`, `training.log_every`
    /// and where the cache lives (`cache.dir`, `cache.shard_records`).
    fn run_config(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.config).expect("the config serialises");
        if let Some(map) = value.as_object_mut() {
            for key in ["device", "output_dir", "eval", "checkpoint"] {
                map.remove(key);
            }
            if let Some(training) = map.get_mut("training").and_then(|t| t.as_object_mut()) {
                training.remove("log_every");
            }
            if let Some(cache) = map.get_mut("cache").and_then(|t| t.as_object_mut()) {
                cache.remove("dir");
                cache.remove("shard_records");
            }
        }
        value
    }

    fn param_groups(&self, model: &DistillModel) -> Vec<ParamGroupSpec> {
        if model.projectors.is_empty() {
            return Vec::new();
        }
        vec![ParamGroupSpec {
            name: "projectors",
            group: ParamGroup::ids_from_module(model.projectors.clone()),
            lr: self.config.optimizer.head_lr(),
            // SRA's authors train the projectors without weight decay.
            weight_decay: matches!(self.cross, Some(Cross::Sra(..))).then_some(0.0),
        }]
    }

    fn step_loss(&mut self, model: &DistillModel, step: usize) -> Result<LossTerms> {
        let indices = self.batches.batch_at(step);
        let examples: Vec<&DistillExample> =
            indices.iter().map(|&i| &self.train.examples[i]).collect();
        let device = self.device.clone();
        Ok(self.batch_loss(model, "train", &examples, &device)?.0)
    }

    fn evaluate(&mut self, model: &DistillModel) -> Result<Option<DistillEval>> {
        match &self.dev {
            Some(dev) => self.evaluate_on(model, "dev", dev).map(Some),
            None => Ok(None),
        }
    }
}
