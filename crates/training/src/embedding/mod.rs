//! Embedding training (`mrl train`): a [`Backbone`] — BERT family or Llama family — and a
//! Matryoshka objective (MRL, ESE, 2D, MIPIC) trained together as one [`EmbeddingModel`], on
//! sentences (SimCSE), pairs, triplets or scored pairs, evaluated on an STS dev set at every
//! nested dim.
//!
//! - [`config`] — the TOML config ([`EmbeddingConfig`]);
//! - [`data`] — the corpus formats;
//! - [`objectives`] — one file per objective, each owning its `[objective]` section;
//! - [`export`] — the sentence-transformers layout;
//! - [`report`] — before/after tables as JSON, Markdown and SVG.
//!
//! # Example
//! ```no_run
//! use training::embedding::{EmbeddingConfig, EmbeddingTask};
//! use training::Silent;
//!
//! let config = EmbeddingConfig::from_file("configs/mipic-minilm.toml".as_ref(), &[])?;
//! let device = config.device.device()?;
//! let mut trainer = EmbeddingTask::trainer(config, &device)?;
//! let summary = trainer.run(&mut Silent, None)?;
//! trainer.task().export(trainer.model(), "runs/mipic-minilm/model".as_ref())?;
//! # let _ = summary;
//! # Ok::<(), training::TrainError>(())
//! ```

use std::path::{Path, PathBuf};

use burn::module::{Module, ParamGroup};
use burn::tensor::Device;
use models::{Backbone, BertInput, SentenceEncoder, TextTokenizer};
use mrl_eval::{StsDataset, StsReport};

use mrl_common::SplitMix64;

use crate::batching::{Batching, StepBatches};
use crate::error::{Result, TrainError};
use crate::trainer::{LossTerms, ParamGroupSpec, Task, Trainer};

pub mod config;
pub mod data;
pub mod export;
pub mod objectives;
pub mod report;

pub use config::{
    DataFormat, DataSection, EmbeddingConfig, EvalSection, ModelSection, SourceSection,
};
pub use data::{Corpus, Example};
pub use objectives::{Objective, ObjectiveSection, RoleOutputs};

/// Token length used for dev-set evaluation (MIPIC §5: 128 for STS).
pub const EVAL_MAX_LENGTH: usize = 128;

/// Everything an embedding run trains: the backbone and the objective's own parameters (MIPIC
/// lifts and projectors; none for MRL, ESE, 2D).
#[derive(Module, Debug)]
pub struct EmbeddingModel {
    /// The network.
    pub backbone: Backbone,
    /// The objective.
    pub objective: Objective,
}

/// The embedding task of the training loop: see the [module docs](self).
pub struct EmbeddingTask {
    config: EmbeddingConfig,
    model_dir: PathBuf,
    tokenizer: TextTokenizer,
    eval_tokenizer: TextTokenizer,
    pooling: models::Pooling,
    device: Device,
    corpus: Corpus,
    batches: StepBatches,
    dev: Option<(StsDataset, EvalSection)>,
}

impl EmbeddingTask {
    /// Starts a run: resolves and loads the model onto `device` (autodiff is added here), reads
    /// the corpus and the dev set, builds the objective, the optimizer and the schedule.
    ///
    /// # Errors
    /// Model not found (listing where it looked) or not loadable, a `modules.json` with a module
    /// the export could not reproduce, data errors, objective settings that do not fit the model.
    pub fn trainer(config: EmbeddingConfig, device: &Device) -> Result<Trainer<Self>> {
        let model_dir = models::resolve_model(&config.model.path)?;
        // A sentence-transformers pipeline we could not export (or evaluate) fails now, not
        // after training.
        models::st_pipeline::read_modules(&model_dir)?;
        let device = device.clone().autodiff();
        let backbone = Backbone::load(&model_dir, &device)?;
        let max_length = config.model.max_length;
        let max_positions = backbone.max_position_embeddings();
        if max_length > max_positions {
            return Err(TrainError::ConfigValue {
                key: "model.max_length".into(),
                message: format!(
                    "{max_length} exceeds the model's max_position_embeddings {max_positions}"
                ),
            });
        }
        let tok_path = model_dir.join(models::tokenizer::TOKENIZER_FILE);
        let tokenizer = TextTokenizer::from_file(&tok_path, max_length)?;
        let eval_tokenizer =
            TextTokenizer::from_file(&tok_path, EVAL_MAX_LENGTH.min(max_positions))?;
        let pooling = match &config.model.pooling {
            Some(p) => p
                .parse::<models::Pooling>()
                .map_err(models::ModelError::from)?,
            None => models::pooling_from_model_dir(&model_dir)?
                .unwrap_or_else(|| backbone.default_pooling()),
        };
        // The objective's own parameters (MIPIC lifts, projectors) start from the run's seed.
        device.seed(SplitMix64::with_stream(config.seed, 0x0B1E_C71E).next_u64());
        let objective = config.objective.build(&objectives::ObjectiveContext {
            hidden_size: backbone.hidden_size(),
            num_layers: backbone.num_layers(),
            // One `Pooling` in the workspace (mrl-common): every mode, last-token included,
            // also pools in the losses.
            pooling,
            format: config.data.format,
            seed: config.seed,
            device: device.clone(),
        })?;
        let corpus = Corpus::load(&config.data)?;
        let lengths: Vec<usize> = corpus.examples.iter().map(Example::length).collect();
        let batching = Batching {
            batch_size: config.training.batch_size,
            length_grouping: config.training.length_grouping,
            pool_batches: config.training.pool_batches,
            seed: config.seed,
            min_batch: 2,
        };
        let dev = match &config.eval {
            Some(e) => {
                let path = crate::config::expand_path(&e.dev);
                let data = StsDataset::from_tsv(&path)
                    .map_err(|err| TrainError::Eval(format!("{}: {err}", path.display())))?;
                Some((data, e.clone()))
            }
            None => None,
        };
        let batches = StepBatches::new(batching, lengths);
        let settings = config.loop_settings(batches.per_epoch());
        let task = Self {
            config,
            model_dir,
            tokenizer,
            eval_tokenizer,
            pooling,
            device: device.clone(),
            corpus,
            batches,
            dev,
        };
        let model = EmbeddingModel {
            backbone,
            objective,
        };
        Ok(Trainer::new(task, model, settings, &device))
    }

    /// [`EmbeddingTask::trainer`], then the newest checkpoint in `output_dir/checkpoints`.
    ///
    /// # Errors
    /// As [`EmbeddingTask::trainer`] and [`Trainer::resume`].
    pub fn resume(config: EmbeddingConfig, device: &Device) -> Result<Trainer<Self>> {
        Self::trainer(config, device)?.resume()
    }

    /// The config.
    pub fn config(&self) -> &EmbeddingConfig {
        &self.config
    }

    /// The model directory the run started from.
    pub fn model_dir(&self) -> &Path {
        &self.model_dir
    }

    /// The pooling the backbone is trained and evaluated with.
    pub fn pooling(&self) -> models::Pooling {
        self.pooling
    }

    /// The number of training examples.
    pub fn corpus_len(&self) -> usize {
        self.corpus.len()
    }

    /// The dims to evaluate, widest first: `[eval] dims`, else the objective's dims.
    pub fn eval_dims(&self, model: &EmbeddingModel) -> Vec<usize> {
        let mut dims = self
            .config
            .eval
            .as_ref()
            .and_then(|e| e.dims.clone())
            .unwrap_or_else(|| model.objective.dims());
        dims.sort_unstable_by(|a, b| b.cmp(a));
        dims
    }

    /// The model's backbone as an inference [`SentenceEncoder`] (no autodiff, no dropout; max
    /// length [`EVAL_MAX_LENGTH`]).
    pub fn sentence_encoder(&self, model: &EmbeddingModel) -> SentenceEncoder {
        SentenceEncoder::from_backbone(
            model.backbone.valid(),
            self.eval_tokenizer.clone(),
            self.pooling,
            self.device.clone().inner(),
        )
    }

    /// Spearman/Pearson ×100 of the model on an STS set at every evaluation dim.
    ///
    /// # Errors
    /// [`TrainError::Eval`] when encoding or scoring fails.
    pub fn evaluate_on(&self, model: &EmbeddingModel, dataset: &StsDataset) -> Result<StsReport> {
        let encoder = self.sentence_encoder(model);
        let batch_size = self.config.eval.as_ref().map_or(64, |e| e.batch_size);
        mrl_eval::run_sts(dataset, &self.eval_dims(model), |sentences: &[&str]| {
            encoder.encode(sentences, batch_size, |_| {})
        })
        .map_err(|e| TrainError::Eval(e.to_string()))
    }

    /// Writes the model's backbone to `dir` in the sentence-transformers layout (see
    /// [`export`]).
    ///
    /// # Errors
    /// As [`export::export_sentence_transformer`].
    pub fn export(&self, model: &EmbeddingModel, dir: &Path) -> Result<()> {
        export::export_sentence_transformer(
            &model.backbone.valid(),
            &self.model_dir,
            self.pooling,
            dir,
        )
    }

    /// Runs the backbone on the batch's texts; for SimCSE the two dropout views of a role run as
    /// one batch of twice the rows.
    fn encode(&self, model: &EmbeddingModel, examples: &[&Example]) -> Result<RoleOutputs> {
        let roles = examples[0].texts().len();
        let views = model.objective.views(self.config.data.format);
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
            if views == 1 {
                out.hidden_states.push(model.backbone.hidden_states(input));
                out.masks.push(mask);
                continue;
            }
            // The views as one batch of `views · B` rows (one pass, one dropout draw per
            // layer covering every view), split back per view.
            let rows = texts.len();
            let stacked = BertInput {
                input_ids: input.input_ids.repeat_dim(0, views),
                attention_mask: input.attention_mask.repeat_dim(0, views),
                token_type_ids: input.token_type_ids.map(|t| t.repeat_dim(0, views)),
            };
            let states = model.backbone.hidden_states(stacked);
            for view in 0..views {
                out.hidden_states.push(
                    states
                        .iter()
                        .map(|h| h.clone().narrow(0, view * rows, rows))
                        .collect(),
                );
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
}

impl Task for EmbeddingTask {
    type Model = EmbeddingModel;
    type Eval = StsReport;

    fn name(&self) -> &'static str {
        "embedding"
    }

    /// Everything but `device`, `output_dir`, `[eval]`, `[checkpoint]` and
    /// `training.log_every`, which may change between an interrupted run and its resumption.
    fn run_config(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.config).expect("the config serialises");
        if let Some(map) = value.as_object_mut() {
            for key in ["device", "output_dir", "eval", "checkpoint"] {
                map.remove(key);
            }
            if let Some(training) = map.get_mut("training").and_then(|t| t.as_object_mut()) {
                training.remove("log_every");
            }
        }
        value
    }

    fn param_groups(&self, model: &EmbeddingModel) -> Vec<ParamGroupSpec> {
        vec![ParamGroupSpec {
            name: "objective",
            group: ParamGroup::ids_from_module(model.objective.clone()),
            lr: self.config.optimizer.head_lr(),
            weight_decay: None,
        }]
    }

    fn step_loss(&mut self, model: &EmbeddingModel, step: usize) -> Result<LossTerms> {
        let indices = self.batches.batch_at(step);
        let examples: Vec<&Example> = indices.iter().map(|&i| &self.corpus.examples[i]).collect();
        let out = self.encode(model, &examples)?;
        let mut loss = model.objective.forward(&out, step)?;
        loss.items = examples.len();
        Ok(loss)
    }

    fn evaluate(&mut self, model: &EmbeddingModel) -> Result<Option<StsReport>> {
        match &self.dev {
            Some((data, _)) => self.evaluate_on(model, data).map(Some),
            None => Ok(None),
        }
    }
}
