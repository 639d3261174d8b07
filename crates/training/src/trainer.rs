//! The training loop, written once for every task: AdamW ([`FusedAdamW`], Burn's update in one
//! pass per parameter on the CPU backends) over parameter groups (Burn's
//! [`ModuleOptimizer::with_group`]), warm-up + cosine per group (Burn's
//! [`ModuleLrScheduler`]), global-norm clipping, the NaN guard, `losses.jsonl`, periodic
//! evaluation, verified checkpoints and exact resume.
//!
//! A [`Task`] brings what differs between, say, embedding training and distillation: its
//! trainable [`Module`] (backbone plus the objective's own parameters), which parameters form
//! extra groups, the loss of a step (it picks the step's batch) and its evaluation.
//!
//! # Determinism
//! Everything random is a pure function of `(seed, step)`: the task's data order, dropout (the
//! device is re-seeded before every step here) and the losses' sampling (they receive the
//! step). A run resumed from a checkpoint therefore replays exactly the steps the uninterrupted
//! run would have taken. Burn's CPU backends keep one process-wide RNG, so two runs training
//! concurrently in one process interleave their draws: run them one at a time when they must
//! be reproducible.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::module::{Module, ParamGroup};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::{Bytes, Device, Tensor};

use crate::adamw::FusedAdamW;
use crate::checkpoint::{checkpoints_dir, write_atomic, Checkpoint, CheckpointState};
use crate::clipping::{clip_global_norm, global_norm};
use crate::config::LoopSettings;
use crate::error::{io_err, Result, TrainError};
use crate::observer::{RunSummary, StepReport, TrainObserver};
use crate::schedule::{module_schedule, WarmupCosine};
use mrl_common::SplitMix64;

/// The weights file of a checkpoint.
pub const MODEL_FILE: &str = "model.bpk";
/// The optimizer-state file of a checkpoint.
pub const OPTIM_FILE: &str = "optim.bpk";

/// What a task's loss returns: the differentiable total and every term by name.
pub struct LossTerms {
    /// `[1]`, differentiable.
    pub total: Tensor<1>,
    /// `(name, [1])` for the total and every term, the total first (see
    /// `mrl_core::LossBreakdown::named_terms`).
    pub terms: Vec<(String, Tensor<1>)>,
    /// Items (tokens, sentences) in the step's batch, for throughput (`0` if not counted).
    pub items: usize,
}

/// A parameter group with its own peak learning rate (and optionally its own weight decay).
pub struct ParamGroupSpec {
    /// Name, for messages.
    pub name: &'static str,
    /// Which parameters.
    pub group: ParamGroup,
    /// Peak learning rate (the group follows the same warm-up + cosine shape).
    pub lr: f64,
    /// Weight decay; `None` = the optimizer's.
    pub weight_decay: Option<f64>,
}

/// What the loop trains: see the [module docs](self).
pub trait Task {
    /// Every trained parameter, as one Burn module on an autodiff device.
    type Model: Module;
    /// What [`Task::evaluate`] returns (kept in checkpoints, so serialisable).
    type Eval: Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned;

    /// A name for checkpoints and messages (`embedding`, `distillation`).
    fn name(&self) -> &'static str;

    /// The config keys that a resumed run must share with the run that wrote the checkpoint,
    /// as a JSON object (model, data, objective, optimizer, batch, steps, seed — not, say,
    /// evaluation or checkpoint cadence). [`Trainer::resume`] names every key that differs.
    fn run_config(&self) -> serde_json::Value;

    /// Parameter groups beyond the base group (which has `optimizer.lr` and holds every
    /// parameter not matched here).
    fn param_groups(&self, model: &Self::Model) -> Vec<ParamGroupSpec>;

    /// The loss breakdown of 0-based step `step`. The task picks the step's batch as a function
    /// of the seed and `step`, so that a resumed run sees the same batches.
    ///
    /// # Errors
    /// Data, tokenizer or loss errors.
    fn step_loss(&mut self, model: &Self::Model, step: usize) -> Result<LossTerms>;

    /// Evaluates the model (inference mode: the task calls `model.valid()`); `None` when the
    /// task has nothing to evaluate.
    ///
    /// # Errors
    /// Evaluation errors.
    fn evaluate(&mut self, model: &Self::Model) -> Result<Option<Self::Eval>>;
}

const MODEL_PRESENT: &str = "the model is only taken out during the optimizer step";

/// Gradients of one step: the clipped gradients, their norm before clipping, the loss terms
/// read as numbers, the number of items.
type StepGradients = (GradientsParams, f64, Vec<(String, f64)>, usize);

/// A training run in progress: a [`Task`], its model, the optimizer and the schedule.
pub struct Trainer<T: Task> {
    task: T,
    /// `None` only inside [`Trainer::train_step`]'s optimizer step, which takes the model by
    /// value so that the optimizer holds the only reference to every parameter and updates it
    /// in place.
    model: Option<T::Model>,
    optim: ModuleOptimizer,
    schedule: ModuleLrScheduler,
    base_schedule: WarmupCosine,
    group_schedules: Vec<(ParamGroup, WarmupCosine)>,
    settings: LoopSettings,
    device: Device,
    step: usize,
    losses: Vec<f64>,
    before: Option<T::Eval>,
}

impl<T: Task> Trainer<T> {
    /// A run at step 0. `device` is the autodiff device the model lives on (re-seeded before
    /// every step for dropout).
    pub fn new(task: T, model: T::Model, settings: LoopSettings, device: &Device) -> Self {
        let (optim, base_schedule, group_schedules) = optimizer(&task, &model, &settings);
        let schedule = module_schedule(base_schedule, group_schedules.clone());
        Self {
            task,
            model: Some(model),
            optim,
            schedule,
            base_schedule,
            group_schedules,
            settings,
            device: device.clone(),
            step: 0,
            losses: Vec::new(),
            before: None,
        }
    }

    /// Restores the newest checkpoint in `output_dir/checkpoints`: weights, optimizer moments,
    /// step and loss history; the schedule continues from the step.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when there is none, it is corrupt, was written by another
    /// task, or does not fit the model; [`TrainError::ResumeConfig`] naming every key of
    /// [`Task::run_config`] that differs from the run that wrote it.
    pub fn resume(mut self) -> Result<Self> {
        let root = checkpoints_dir(&self.settings.output_dir);
        let ckpt = Checkpoint::load_latest(&root)?;
        let dir = root.join(format!("step-{:08}", ckpt.state.step));
        if ckpt.state.task != self.task.name() {
            return Err(TrainError::Checkpoint {
                path: dir,
                message: format!(
                    "written by a {} run, this is a {} run",
                    ckpt.state.task,
                    self.task.name()
                ),
            });
        }
        let differing = differing_keys(&ckpt.state.config, &self.task.run_config(), "");
        if !differing.is_empty() {
            return Err(TrainError::ResumeConfig {
                checkpoint: dir,
                keys: differing,
            });
        }
        self.model = Some(load_module(
            self.model.take().expect(MODEL_PRESENT),
            ckpt.file(MODEL_FILE, &dir)?,
            &dir,
        )?);
        // The loaded parameters carry the checkpoint's ids: the groups are rebuilt from them
        // before the optimizer state (keyed by those ids) is read.
        let (optim, base_schedule, group_schedules) =
            optimizer(&self.task, self.model(), &self.settings);
        self.base_schedule = base_schedule;
        self.group_schedules = group_schedules;
        self.optim = optim
            .from_bytes(Bytes::from_bytes_vec(ckpt.file(OPTIM_FILE, &dir)?.to_vec()))
            .map_err(|e| TrainError::Checkpoint {
                path: dir.clone(),
                message: format!("cannot read the optimizer state: {e}"),
            })?;
        if ckpt.state.losses.len() != ckpt.state.step {
            return Err(TrainError::Checkpoint {
                path: dir,
                message: format!(
                    "state.json has {} losses for {} steps",
                    ckpt.state.losses.len(),
                    ckpt.state.step
                ),
            });
        }
        self.step = ckpt.state.step;
        self.losses = ckpt.state.losses;
        self.before = match &ckpt.state.before {
            Some(text) => Some(
                serde_json::from_str(text).map_err(|e| TrainError::Checkpoint {
                    path: dir.join(crate::checkpoint::STATE_FILE),
                    message: format!("corrupt `before` evaluation: {e}"),
                })?,
            ),
            None => None,
        };
        self.schedule = module_schedule(
            self.base_schedule.at_step(self.step),
            self.group_schedules
                .iter()
                .map(|(g, s)| (g.clone(), s.at_step(self.step))),
        );
        Ok(self)
    }

    /// The task.
    pub fn task(&self) -> &T {
        &self.task
    }

    /// The task, mutably (e.g. for extra evaluations between runs).
    pub fn task_mut(&mut self) -> &mut T {
        &mut self.task
    }

    /// The model being trained (on the autodiff device).
    pub fn model(&self) -> &T::Model {
        self.model.as_ref().expect(MODEL_PRESENT)
    }

    /// The task and the model together (a task evaluating the model it trains).
    pub fn parts_mut(&mut self) -> (&mut T, &T::Model) {
        (&mut self.task, self.model.as_ref().expect(MODEL_PRESENT))
    }

    /// The loop's settings.
    pub fn settings(&self) -> &LoopSettings {
        &self.settings
    }

    /// Steps completed.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Steps of the whole run.
    pub fn total_steps(&self) -> usize {
        self.settings.total_steps
    }

    /// The total loss of every step so far.
    pub fn losses(&self) -> &[f64] {
        &self.losses
    }

    /// The base group's learning rate at 1-based `step`.
    pub fn lr(&self, step: usize) -> f64 {
        self.base_schedule.lr(step)
    }

    /// One optimisation step.
    ///
    /// # Errors
    /// [`TrainError::NonFiniteLoss`] naming the step and the first non-finite term, or the
    /// gradient norm (the parameters are left unchanged); the task's errors.
    pub fn train_step(&mut self) -> Result<StepReport> {
        let step = self.step + 1;
        // Dropout masks are a function of (seed, step): resumed runs replay them.
        self.device.seed(
            SplitMix64::with_stream(self.settings.seed, 0xD80F_0000 + step as u64).next_u64(),
        );
        // The optimizer gets the model by value: with no second reference, every parameter
        // is updated in its own buffer instead of being copied first.
        let model = self.model.take().expect(MODEL_PRESENT);
        let (grads, grad_norm, terms, items) = match self.gradients(&model, step) {
            Ok(parts) => parts,
            Err(e) => {
                self.model = Some(model);
                return Err(e);
            }
        };
        let lrs = self.schedule.step();
        self.model = Some(self.optim.step(lrs, model, grads));
        self.step = step;
        self.losses.push(terms[0].1);
        Ok(StepReport {
            step,
            total_steps: self.settings.total_steps,
            lr: self.base_schedule.lr(step),
            grad_norm,
            terms,
            items,
        })
    }

    /// The loss of step `step`, checked, and its clipped gradients with their global norm.
    fn gradients(&mut self, model: &T::Model, step: usize) -> Result<StepGradients> {
        let loss = self.task.step_loss(model, self.step)?;
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
        let mut grads = GradientsParams::from_module(&mut grads, model);
        let grad_norm = global_norm(model, &mut grads);
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                step,
                term: "gradient norm".into(),
                value: grad_norm,
            });
        }
        clip_global_norm(
            model,
            &mut grads,
            grad_norm,
            self.settings.optimizer.grad_clip,
        );
        Ok((grads, grad_norm, terms, loss.items))
    }

    /// Writes a checkpoint of the current state (see [`crate::checkpoint`]); returns its
    /// directory.
    ///
    /// # Errors
    /// [`TrainError::Io`] / [`TrainError::Checkpoint`] when a file cannot be written.
    pub fn save_checkpoint(&self) -> Result<PathBuf> {
        let root = checkpoints_dir(&self.settings.output_dir);
        let mut files = std::collections::BTreeMap::new();
        files.insert(MODEL_FILE.to_string(), module_bytes(self.model(), &root)?);
        let optim = self
            .optim
            .into_bytes()
            .map_err(|e| TrainError::Checkpoint {
                path: root.clone(),
                message: format!("cannot serialise the optimizer state: {e}"),
            })?;
        files.insert(OPTIM_FILE.to_string(), optim.to_vec());
        Checkpoint {
            state: CheckpointState {
                version: crate::checkpoint::VERSION,
                task: self.task.name().to_string(),
                step: self.step,
                seed: self.settings.seed,
                losses: self.losses.clone(),
                config: self.task.run_config(),
                before: self
                    .before
                    .as_ref()
                    .map(|b| serde_json::to_string(b).expect("an evaluation serialises")),
                files: Default::default(),
            },
            files,
        }
        .save(&root, self.settings.checkpoint.keep)
    }

    /// Trains until step `until` (default: the end of the run), evaluating, logging
    /// (`output_dir/losses.jsonl`) and checkpointing as configured. A checkpoint is always
    /// written at the last step run.
    ///
    /// A run that fails before writing its first checkpoint removes the output directory when
    /// it created it, so a failed fresh run leaves nothing behind (a resumed run keeps its
    /// directory, which holds the checkpoints to resume from).
    ///
    /// # Errors
    /// Any step, evaluation or checkpoint error; a non-finite loss stops the run after writing
    /// nothing for that step.
    pub fn run(
        &mut self,
        observer: &mut dyn TrainObserver<T::Eval>,
        until: Option<usize>,
    ) -> Result<RunSummary<T::Eval>> {
        let out_dir = self.settings.output_dir.clone();
        let created = !out_dir.exists();
        let result = self.run_in(observer, until);
        let checkpointed = checkpoints_dir(&out_dir)
            .join(crate::checkpoint::LATEST)
            .exists();
        if result.is_err() && created && !checkpointed {
            let _ = std::fs::remove_dir_all(&out_dir);
        }
        result
    }

    fn run_in(
        &mut self,
        observer: &mut dyn TrainObserver<T::Eval>,
        until: Option<usize>,
    ) -> Result<RunSummary<T::Eval>> {
        let total = self.settings.total_steps;
        let until = until.unwrap_or(total).min(total);
        let out_dir = self.settings.output_dir.clone();
        std::fs::create_dir_all(&out_dir).map_err(io_err(&out_dir))?;
        let mut summary = RunSummary {
            before: self.before.clone(),
            evals: Vec::new(),
            steps_run: 0,
            train_seconds: 0.0,
            items: 0,
        };
        if self.settings.eval_before && self.step == 0 {
            if let Some(eval) = self
                .task
                .evaluate(self.model.as_ref().expect(MODEL_PRESENT))?
            {
                observer.on_eval(0, &eval);
                self.before = Some(eval.clone());
                summary.before = Some(eval);
            }
        }
        let log_path = out_dir.join("losses.jsonl");
        truncate_log(&log_path, self.step)?;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        observer.on_start(self.step, total);
        while self.step < until {
            let t0 = Instant::now();
            let report = self.train_step()?;
            summary.train_seconds += t0.elapsed().as_secs_f64();
            summary.steps_run += 1;
            summary.items += report.items;
            if report.step.is_multiple_of(self.settings.log_every) || report.step == until {
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
            let every = self.settings.checkpoint.every;
            if (every > 0 && self.step.is_multiple_of(every)) || self.step == until {
                log.flush().map_err(io_err(&log_path))?;
                let dir = self.save_checkpoint()?;
                observer.on_checkpoint(self.step, &dir);
            }
            let eval_every = self.settings.eval_every;
            if (eval_every > 0 && self.step.is_multiple_of(eval_every)) || self.step == total {
                if let Some(eval) = self
                    .task
                    .evaluate(self.model.as_ref().expect(MODEL_PRESENT))?
                {
                    observer.on_eval(self.step, &eval);
                    summary.evals.push((self.step, eval));
                }
            }
        }
        Ok(summary)
    }
}

/// The dotted keys whose values differ between two JSON objects (a key missing on one side
/// differs).
fn differing_keys(a: &serde_json::Value, b: &serde_json::Value, prefix: &str) -> Vec<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    let null = Value::Null;
                    differing_keys(x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null), &path)
                })
                .collect()
        }
        _ if a == b => Vec::new(),
        _ => vec![prefix.to_string()],
    }
}

/// AdamW over the base group and the task's groups, and each group's schedule.
fn optimizer<T: Task>(
    task: &T,
    model: &T::Model,
    settings: &LoopSettings,
) -> (
    ModuleOptimizer,
    WarmupCosine,
    Vec<(ParamGroup, WarmupCosine)>,
) {
    let o = &settings.optimizer;
    let adamw = |weight_decay: f64| {
        FusedAdamW::new(
            o.beta1 as f32,
            o.beta2 as f32,
            o.eps as f32,
            weight_decay as f32,
        )
    };
    let (warmup, total) = (settings.warmup_steps(), settings.total_steps);
    let base = WarmupCosine::new(o.lr, warmup, total, o.min_lr_ratio);
    let mut optim = ModuleOptimizer::from(adamw(o.weight_decay));
    let mut groups = Vec::new();
    for spec in task.param_groups(model) {
        optim = optim.with_group(
            spec.group.clone(),
            adamw(spec.weight_decay.unwrap_or(o.weight_decay)),
            None,
        );
        groups.push((
            spec.group,
            WarmupCosine::new(spec.lr, warmup, total, o.min_lr_ratio),
        ));
    }
    (optim, base, groups)
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

fn module_bytes<M: Module>(module: &M, root: &std::path::Path) -> Result<Vec<u8>> {
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

fn load_module<M: Module>(mut module: M, bytes: &[u8], dir: &std::path::Path) -> Result<M> {
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

/// Keeps only the log lines of steps `<= step` (a resumed run rewrites what came after).
fn truncate_log(path: &std::path::Path, step: usize) -> Result<()> {
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
    write_atomic(path, kept.as_bytes())
}
