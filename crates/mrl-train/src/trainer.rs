//! The training loop: AdamW with a linear warm-up and cosine decay, global-norm gradient
//! clipping, a separate learning rate for the objective's own parameters, dev-set evaluation
//! at every dim, checkpoints and resume.
//!
//! Everything random is a pure function of `(seed, step)`: the data order (see
//! [`Batching::epoch`]), dropout (the device is re-seeded before every step) and the losses'
//! dim/layer sampling. A run resumed from a checkpoint therefore replays exactly the steps the
//! uninterrupted run would have taken. Burn's CPU backends keep one process-wide RNG, so two
//! runs training concurrently in one process interleave their draws: run them one at a time
//! when they must be reproducible.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::{Bytes, Device, Tensor};
use models::{BertConfig, BertModel, SentenceEncoder, TextTokenizer};
use mrl_eval::{StsDataset, StsReport};

use crate::checkpoint::{checkpoints_dir, Checkpoint, CheckpointState};
use crate::config::{expand_path, DataFormat, TrainConfig};
use crate::data::{Batching, Corpus, Example, SplitMix64};
use crate::error::{io_err, Result, TrainError};
use crate::objective::{Objective, RoleOutputs};

/// Token length used for dev-set evaluation (MIPIC §5: 128 for STS).
pub const EVAL_MAX_LENGTH: usize = 128;

/// What one optimisation step did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// 1-based step number.
    pub step: usize,
    /// Steps of the whole run.
    pub total_steps: usize,
    /// Encoder learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// `(name, value)`: `total` first, then every term of the loss breakdown.
    pub terms: Vec<(String, f64)>,
}

impl StepReport {
    /// The total loss.
    pub fn loss(&self) -> f64 {
        self.terms[0].1
    }
}

/// Callbacks of [`Trainer::run`] (a progress bar, a logger); every method defaults to nothing.
pub trait TrainObserver {
    /// Training starts at `step` (0, or the resumed step) of `total`.
    fn on_start(&mut self, _step: usize, _total: usize) {}
    /// A step finished.
    fn on_step(&mut self, _report: &StepReport) {}
    /// The dev set was evaluated after `step` steps.
    fn on_eval(&mut self, _step: usize, _report: &StsReport) {}
    /// A checkpoint was written after `step` steps.
    fn on_checkpoint(&mut self, _step: usize, _dir: &Path) {}
}

/// An observer that does nothing.
pub struct Silent;
impl TrainObserver for Silent {}

/// What [`Trainer::run`] returns.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Dev scores before the first step (when evaluated).
    pub before: Option<StsReport>,
    /// Every dev evaluation `(step, report)`, the last one after the final step.
    pub evals: Vec<(usize, StsReport)>,
    /// Steps run in this call.
    pub steps_run: usize,
    /// Seconds spent in optimisation steps (not evaluation or checkpoints).
    pub train_seconds: f64,
}

/// A training run in progress.
pub struct Trainer {
    config: TrainConfig,
    model_dir: PathBuf,
    bert_config: BertConfig,
    tokenizer: TextTokenizer,
    eval_tokenizer: TextTokenizer,
    device: Device,
    encoder: BertModel,
    objective: Objective,
    pooling: models::Pooling,
    optim_encoder: ModuleOptimizer,
    optim_head: ModuleOptimizer,
    corpus: Corpus,
    lengths: Vec<usize>,
    batching: Batching,
    total_steps: usize,
    warmup_steps: usize,
    step: usize,
    losses: Vec<f64>,
    epoch_batches: Option<(usize, Vec<Vec<usize>>)>,
}

fn to_core_pooling(p: models::Pooling) -> Result<mrl_core::Pooling> {
    match p {
        models::Pooling::Mean => Ok(mrl_core::Pooling::Mean),
        models::Pooling::Cls => Ok(mrl_core::Pooling::Cls),
        other => Err(TrainError::ConfigValue {
            key: "model.pooling".into(),
            message: format!("{other} pooling is not supported for training (mean or cls)"),
        }),
    }
}

impl Trainer {
    /// Starts a run: resolves and loads the model onto `device` (autodiff is added here), reads
    /// the corpus, builds the objective and the optimizers.
    ///
    /// # Errors
    /// Model not found (listing where it looked) or not loadable, data errors, objective
    /// settings that do not fit the model.
    pub fn new(config: TrainConfig, device: &Device) -> Result<Self> {
        let model_dir = models::resolve::resolve_model(&config.model.path)?;
        let device = device.clone().autodiff();
        let (bert_config, encoder) = BertModel::from_pretrained(&model_dir, &device)?;
        let max_length = config.model.max_length;
        if max_length > bert_config.max_position_embeddings {
            return Err(TrainError::ConfigValue {
                key: "model.max_length".into(),
                message: format!(
                    "{max_length} exceeds the model's max_position_embeddings {}",
                    bert_config.max_position_embeddings
                ),
            });
        }
        let tok_path = model_dir.join(models::tokenizer::TOKENIZER_FILE);
        let tokenizer = TextTokenizer::from_file(&tok_path, max_length)?;
        let eval_tokenizer = TextTokenizer::from_file(
            &tok_path,
            EVAL_MAX_LENGTH.min(bert_config.max_position_embeddings),
        )?;
        let pooling = match &config.model.pooling {
            Some(p) => p.parse::<models::Pooling>()?,
            None => models::Pooling::from_model_dir(&model_dir)?.unwrap_or(models::Pooling::Mean),
        };
        // The objective's own parameters (MIPIC lifts, projectors) start from the run's seed.
        device.seed(SplitMix64::new(config.seed, 0x0B1E_C71E).next_u64());
        let objective = Objective::build(
            &config.objective,
            config.data.format,
            bert_config.hidden_size,
            bert_config.num_hidden_layers,
            to_core_pooling(pooling)?,
            config.seed,
            &device,
        )?;
        let corpus = Corpus::load(&config.data)?;
        let lengths: Vec<usize> = corpus.examples.iter().map(Example::length).collect();
        let batching = Batching {
            batch_size: config.training.batch_size,
            length_grouping: config.training.length_grouping,
            pool_batches: config.training.pool_batches,
            seed: config.seed,
        };
        let total_steps = config.total_steps(batching.batches_per_epoch(corpus.len()));
        let warmup_steps = config.warmup_steps(total_steps);
        let adamw = || {
            AdamWConfig::new()
                .with_beta_1(config.optimizer.beta1 as f32)
                .with_beta_2(config.optimizer.beta2 as f32)
                .with_epsilon(config.optimizer.eps as f32)
                .with_weight_decay(config.optimizer.weight_decay as f32)
                .init()
        };
        Ok(Self {
            optim_encoder: adamw(),
            optim_head: adamw(),
            config,
            model_dir,
            bert_config,
            tokenizer,
            eval_tokenizer,
            device,
            encoder,
            objective,
            pooling,
            corpus,
            lengths,
            batching,
            total_steps,
            warmup_steps,
            step: 0,
            losses: Vec::new(),
            epoch_batches: None,
        })
    }

    /// [`Trainer::new`], then restores the newest checkpoint in `output_dir/checkpoints`:
    /// weights, objective parameters, optimizer moments, step and loss history.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when there is none, or it is corrupt or does not fit the
    /// model; [`TrainError::ConfigValue`] (`seed`) when it was written with another seed.
    pub fn resume(config: TrainConfig, device: &Device) -> Result<Self> {
        let mut trainer = Self::new(config, device)?;
        let root = checkpoints_dir(&trainer.output_dir());
        let ckpt = Checkpoint::load_latest(&root)?;
        let dir = root.join(format!("step-{:08}", ckpt.state.step));
        if ckpt.state.seed != trainer.config.seed {
            return Err(TrainError::ConfigValue {
                key: "seed".into(),
                message: format!(
                    "the checkpoint in {} was written with seed {}, the config says {}: the data \
                     order would differ",
                    dir.display(),
                    ckpt.state.seed,
                    trainer.config.seed
                ),
            });
        }
        trainer.encoder = load_module(trainer.encoder, ckpt.file("encoder.bpk", &dir)?, &dir)?;
        if let Objective::Mipic(head) = &mut trainer.objective {
            *head = load_module(head.clone(), ckpt.file("objective.bpk", &dir)?, &dir)?;
            trainer.optim_head = load_optim(
                trainer.optim_head,
                ckpt.file("optim-objective.bpk", &dir)?,
                &dir,
            )?;
        }
        trainer.optim_encoder = load_optim(
            trainer.optim_encoder,
            ckpt.file("optim-encoder.bpk", &dir)?,
            &dir,
        )?;
        trainer.step = ckpt.state.step;
        trainer.losses = ckpt.state.losses;
        if trainer.losses.len() != trainer.step {
            return Err(TrainError::Checkpoint {
                path: dir,
                message: format!(
                    "state.json has {} losses for {} steps",
                    trainer.losses.len(),
                    trainer.step
                ),
            });
        }
        Ok(trainer)
    }

    /// `output_dir` with `${MRL_SHARED}` expanded.
    pub fn output_dir(&self) -> PathBuf {
        expand_path(&self.config.output_dir)
    }

    /// Steps completed.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Steps of the whole run.
    pub fn total_steps(&self) -> usize {
        self.total_steps
    }

    /// The total loss of every step so far.
    pub fn losses(&self) -> &[f64] {
        &self.losses
    }

    /// The model directory the run started from.
    pub fn model_dir(&self) -> &Path {
        &self.model_dir
    }

    /// The encoder being trained.
    pub fn encoder(&self) -> &BertModel {
        &self.encoder
    }

    /// The encoder's config.
    pub fn bert_config(&self) -> &BertConfig {
        &self.bert_config
    }

    /// The pooling the encoder is trained and evaluated with.
    pub fn pooling(&self) -> models::Pooling {
        self.pooling
    }

    /// The objective.
    pub fn objective(&self) -> &Objective {
        &self.objective
    }

    /// The config.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The number of training examples.
    pub fn corpus_len(&self) -> usize {
        self.corpus.len()
    }

    /// Learning-rate multiplier at 1-based `step`: linear warm-up from 0, then a cosine from 1
    /// down to `min_lr_ratio` at the last step.
    pub fn lr_factor(&self, step: usize) -> f64 {
        lr_factor(
            step,
            self.warmup_steps,
            self.total_steps,
            self.config.optimizer.min_lr_ratio,
        )
    }

    /// The example indices of 0-based step `step`.
    fn batch_at(&mut self, step: usize) -> Vec<usize> {
        let per_epoch = self.batching.batches_per_epoch(self.corpus.len()).max(1);
        let (epoch, index) = (step / per_epoch, step % per_epoch);
        if self.epoch_batches.as_ref().map(|(e, _)| *e) != Some(epoch) {
            self.epoch_batches = Some((epoch, self.batching.epoch(&self.lengths, epoch)));
        }
        self.epoch_batches.as_ref().expect("just set").1[index].clone()
    }

    /// Runs the encoder on the batch's texts (twice for SimCSE: two dropout views).
    fn encode(&self, examples: &[&Example]) -> Result<RoleOutputs> {
        let roles = examples[0].texts().len();
        let views = Objective::views(self.config.data.format);
        let mut out = RoleOutputs {
            hidden_states: Vec::new(),
            masks: Vec::new(),
            labels: None,
        };
        for role in 0..roles {
            let texts: Vec<&str> = examples.iter().map(|e| e.texts()[role]).collect();
            let batch = self.tokenizer.encode_batch(&texts)?;
            let input = batch.to_bert_input(&self.device);
            let mask = input.attention_mask.clone().float();
            for _ in 0..views {
                let hs = self.encoder.forward(input.clone(), false).hidden_states;
                out.hidden_states.push(hs);
                out.masks.push(mask.clone());
            }
        }
        if self.config.data.format == DataFormat::ScoredPairs {
            out.labels = Some(
                examples
                    .iter()
                    .map(|e| match e {
                        Example::Scored(s, _, _) => *s,
                        _ => unreachable!("scored-pairs corpus"),
                    })
                    .collect(),
            );
        }
        Ok(out)
    }

    /// One optimisation step.
    ///
    /// # Errors
    /// [`TrainError::NonFiniteLoss`] naming the step and the first non-finite term (the
    /// parameters are left unchanged); loss or tokenizer errors.
    pub fn train_step(&mut self) -> Result<StepReport> {
        let step = self.step + 1;
        let indices = self.batch_at(self.step);
        // Dropout masks are a function of (seed, step): resumed runs replay them.
        self.device
            .seed(SplitMix64::new(self.config.seed, 0xD80F_0000 + step as u64).next_u64());
        let examples: Vec<&Example> = indices.iter().map(|&i| &self.corpus.examples[i]).collect();
        let out = self.encode(&examples)?;
        let pooling = to_core_pooling(self.pooling)?;
        let loss = self.objective.forward(&out, pooling, self.step as u64)?;
        let terms = read_terms(&loss.terms);
        if let Some((term, value)) = terms
            .iter()
            .skip(1)
            .chain(terms.iter().take(1))
            .find(|(_, v)| !v.is_finite())
        {
            return Err(TrainError::NonFiniteLoss {
                step,
                term: term.clone(),
                value: *value,
            });
        }
        let mut grads = loss.total.backward();
        let mut grads_encoder = GradientsParams::from_module(&mut grads, &self.encoder);
        let mut grads_head = self
            .objective
            .head()
            .map(|h| GradientsParams::from_module(&mut grads, h));

        let mut sq = SquaredNorm {
            grads: &grads_encoder,
            sum: None,
        };
        self.encoder.visit(&mut sq);
        let mut sum = sq.sum;
        if let (Some(head), Some(g)) = (self.objective.head(), &grads_head) {
            let mut sq = SquaredNorm { grads: g, sum };
            head.visit(&mut sq);
            sum = sq.sum;
        }
        let grad_norm = sum.map(|s| s.into_scalar::<f64>().sqrt()).unwrap_or(0.0);
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                step,
                term: "gradient norm".into(),
                value: grad_norm,
            });
        }
        let clip = self.config.optimizer.grad_clip;
        if clip > 0.0 && grad_norm > clip {
            let scale = clip / (grad_norm + 1e-6);
            self.encoder.visit(&mut ScaleGrads {
                grads: &mut grads_encoder,
                scale,
            });
            if let (Some(head), Some(g)) = (self.objective.head(), grads_head.as_mut()) {
                head.visit(&mut ScaleGrads { grads: g, scale });
            }
        }

        let factor = self.lr_factor(step);
        let lr = self.config.optimizer.lr * factor;
        self.encoder = self
            .optim_encoder
            .step(lr, self.encoder.clone(), grads_encoder);
        if let (Objective::Mipic(head), Some(g)) = (&mut self.objective, grads_head) {
            let head_lr = self.config.head_lr() * factor;
            *head = self.optim_head.step(head_lr, head.clone(), g);
        }
        self.step = step;
        self.losses.push(terms[0].1);
        Ok(StepReport {
            step,
            total_steps: self.total_steps,
            lr,
            grad_norm,
            terms,
        })
    }

    /// Spearman/Pearson ×100 of the current encoder on an STS set at every dim in `dims`
    /// (inference mode: no dropout; max length [`EVAL_MAX_LENGTH`]).
    ///
    /// # Errors
    /// [`TrainError::Eval`] when encoding or scoring fails.
    pub fn evaluate(
        &self,
        dataset: &StsDataset,
        dims: &[usize],
        batch_size: usize,
    ) -> Result<StsReport> {
        let encoder = self.sentence_encoder();
        mrl_eval::run_sts(dataset, dims, |sentences: &[&str]| {
            encoder.encode(sentences, batch_size, |_| {})
        })
        .map_err(|e| TrainError::Eval(e.to_string()))
    }

    /// The current encoder as an inference [`SentenceEncoder`] (no autodiff, no dropout).
    pub fn sentence_encoder(&self) -> SentenceEncoder {
        SentenceEncoder::from_parts(
            self.encoder.valid(),
            self.bert_config.clone(),
            self.eval_tokenizer.clone(),
            self.pooling,
            self.device.clone().inner(),
        )
    }

    /// The dims to evaluate: `[eval] dims`, else the objective's dims, else the default ladder.
    pub fn eval_dims(&self) -> Vec<usize> {
        if let Some(d) = self.config.eval.as_ref().and_then(|e| e.dims.clone()) {
            return d;
        }
        let mut dims = match &self.objective {
            Objective::Mrl(l) => l.dims.clone(),
            Objective::Ese(l) => l.matryoshka.dims.clone(),
            Objective::TwoD(l) => l.base.dims.clone(),
            Objective::Mipic(l) => l.mrl.dims.clone(),
        };
        dims.sort_unstable_by(|a, b| b.cmp(a));
        dims
    }

    /// Writes a checkpoint of the current state (see [`crate::checkpoint`]); returns its
    /// directory.
    ///
    /// # Errors
    /// [`TrainError::Io`] / [`TrainError::Checkpoint`] when a file cannot be written.
    pub fn save_checkpoint(&self) -> Result<PathBuf> {
        let root = checkpoints_dir(&self.output_dir());
        let mut files = std::collections::BTreeMap::new();
        files.insert(
            "encoder.bpk".to_string(),
            module_bytes(&self.encoder, &root)?,
        );
        files.insert(
            "optim-encoder.bpk".to_string(),
            optim_bytes(&self.optim_encoder, &root)?,
        );
        if let Some(head) = self.objective.head() {
            files.insert("objective.bpk".to_string(), module_bytes(head, &root)?);
            files.insert(
                "optim-objective.bpk".to_string(),
                optim_bytes(&self.optim_head, &root)?,
            );
        }
        Checkpoint {
            state: CheckpointState {
                version: 1,
                step: self.step,
                seed: self.config.seed,
                losses: self.losses.clone(),
                files: Default::default(),
            },
            files,
        }
        .save(&root, self.config.checkpoint.keep)
    }

    /// Writes the encoder in sentence-transformers layout to `dir` (see [`crate::export`]).
    ///
    /// # Errors
    /// As [`crate::export::export_sentence_transformer`].
    pub fn export(&self, dir: &Path) -> Result<()> {
        crate::export::export_sentence_transformer(
            &self.encoder.valid(),
            &self.bert_config,
            &self.model_dir,
            self.pooling,
            self.config.model.max_length.max(EVAL_MAX_LENGTH),
            dir,
        )
    }

    /// Trains until step `until` (default: the end of the run), evaluating, logging
    /// (`output_dir/losses.jsonl`) and checkpointing as configured. A checkpoint is always
    /// written at the last step run.
    ///
    /// # Errors
    /// Any step, evaluation or checkpoint error; a non-finite loss stops the run after writing
    /// nothing for that step.
    pub fn run(
        &mut self,
        observer: &mut dyn TrainObserver,
        until: Option<usize>,
    ) -> Result<RunSummary> {
        let until = until.unwrap_or(self.total_steps).min(self.total_steps);
        let out_dir = self.output_dir();
        std::fs::create_dir_all(&out_dir).map_err(io_err(&out_dir))?;
        let dev = match &self.config.eval {
            Some(e) => {
                let path = expand_path(&e.dev);
                Some((
                    StsDataset::from_tsv(&path)
                        .map_err(|err| TrainError::Eval(format!("{}: {err}", path.display())))?,
                    e.clone(),
                ))
            }
            None => None,
        };
        let dims = self.eval_dims();
        let mut summary = RunSummary {
            before: None,
            evals: Vec::new(),
            steps_run: 0,
            train_seconds: 0.0,
        };
        if let Some((data, e)) = &dev {
            if e.before && self.step == 0 {
                let report = self.evaluate(data, &dims, e.batch_size)?;
                observer.on_eval(0, &report);
                summary.before = Some(report);
            }
        }
        let log_path = out_dir.join("losses.jsonl");
        truncate_log(&log_path, self.step)?;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        observer.on_start(self.step, self.total_steps);
        while self.step < until {
            let t0 = Instant::now();
            let report = self.train_step()?;
            summary.train_seconds += t0.elapsed().as_secs_f64();
            summary.steps_run += 1;
            if report.step % self.config.training.log_every == 0 || report.step == until {
                let mut line = serde_json::Map::new();
                line.insert("step".into(), report.step.into());
                line.insert("lr".into(), report.lr.into());
                line.insert("grad_norm".into(), report.grad_norm.into());
                for (name, v) in &report.terms {
                    line.insert(name.clone(), (*v).into());
                }
                writeln!(log, "{}", serde_json::Value::Object(line)).map_err(io_err(&log_path))?;
            }
            observer.on_step(&report);
            let every = self.config.checkpoint.every;
            if (every > 0 && self.step.is_multiple_of(every)) || self.step == until {
                log.flush().map_err(io_err(&log_path))?;
                let dir = self.save_checkpoint()?;
                observer.on_checkpoint(self.step, &dir);
            }
            if let Some((data, e)) = &dev {
                if (e.every > 0 && self.step.is_multiple_of(e.every))
                    || self.step == self.total_steps
                {
                    let report = self.evaluate(data, &dims, e.batch_size)?;
                    observer.on_eval(self.step, &report);
                    summary.evals.push((self.step, report));
                }
            }
        }
        Ok(summary)
    }
}

/// Learning-rate multiplier at 1-based `step` of `total`: `step / warmup` during the warm-up,
/// then `min + (1 − min) · ½ (1 + cos(π · p))` with `p = (step − warmup − 1) / (total − warmup − 1)`
/// going from 0 at the first step after the warm-up to 1 at the last step.
pub fn lr_factor(step: usize, warmup: usize, total: usize, min_ratio: f64) -> f64 {
    if step <= warmup && warmup > 0 {
        return step as f64 / warmup as f64;
    }
    // The first step after the warm-up runs at the peak, the last one at the minimum.
    let span = total.saturating_sub(warmup + 1).max(1) as f64;
    let p = (step.saturating_sub(warmup + 1) as f64 / span).clamp(0.0, 1.0);
    min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
}

/// Reads every term in one device sync.
fn read_terms(terms: &[(String, Tensor<1>)]) -> Vec<(String, f64)> {
    let tensors: Vec<Tensor<1>> = terms
        .iter()
        .map(|(_, t)| t.clone().detach().reshape([1]))
        .collect();
    let values = Tensor::cat(tensors, 0)
        .into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .expect("float tensor converts to f64");
    terms.iter().map(|(n, _)| n.clone()).zip(values).collect()
}

/// Σ‖g‖² over a module's parameters, as a device tensor (one sync at the end).
struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.powi_scalar(2).sum();
            self.sum = Some(match self.sum.take() {
                Some(acc) => acc + s,
                None => s,
            });
        }
    }
}

/// Multiplies every gradient of a module by `scale`.
struct ScaleGrads<'a> {
    grads: &'a mut GradientsParams,
    scale: f64,
}

impl ModuleVisitor for ScaleGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register::<D>(param.id, g.mul_scalar(self.scale));
        }
    }
}

fn module_bytes<M: Module>(module: &M, root: &Path) -> Result<Vec<u8>> {
    let mut store = BurnpackStore::from_bytes(None);
    let fail = |e: String| TrainError::Checkpoint {
        path: root.to_path_buf(),
        message: format!("cannot serialise the weights: {e}"),
    };
    module
        .save_into(&mut store)
        .map_err(|e| fail(e.to_string()))?;
    let bytes = store.get_bytes().map_err(|e| fail(e.to_string()))?;
    Ok(bytes.to_vec())
}

fn optim_bytes(optim: &ModuleOptimizer, root: &Path) -> Result<Vec<u8>> {
    let bytes = optim.into_bytes().map_err(|e| TrainError::Checkpoint {
        path: root.to_path_buf(),
        message: format!("cannot serialise the optimizer state: {e}"),
    })?;
    Ok(bytes.to_vec())
}

fn load_module<M: Module>(mut module: M, bytes: &[u8], dir: &Path) -> Result<M> {
    let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes.to_vec())));
    let fail = |message: String| TrainError::Checkpoint {
        path: dir.to_path_buf(),
        message,
    };
    let result = module
        .load_from(&mut store)
        .map_err(|e| fail(format!("cannot read the weights: {e}")))?;
    if !result.missing.is_empty() || !result.errors.is_empty() || !result.unused.is_empty() {
        return Err(fail(format!(
            "the weights do not fit the configured model: missing {:?}, unexpected {:?}, errors {:?}",
            result.missing.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            result.unused,
            result.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        )));
    }
    Ok(module)
}

fn load_optim(optim: ModuleOptimizer, bytes: &[u8], dir: &Path) -> Result<ModuleOptimizer> {
    optim
        .from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| TrainError::Checkpoint {
            path: dir.to_path_buf(),
            message: format!("cannot read the optimizer state: {e}"),
        })
}

/// Keeps only the log lines of steps `<= step` (a resumed run rewrites what came after).
fn truncate_log(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s as usize <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    crate::checkpoint::write_atomic(path, kept.as_bytes())
}
