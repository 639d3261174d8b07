//! What the training loop tells the outside world: a [`StepReport`] per step, evaluations and
//! checkpoints through a [`TrainObserver`] (a progress bar, a logger), and a [`RunSummary`].

use std::path::Path;

/// What one optimisation step did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// 1-based step number.
    pub step: usize,
    /// Steps of the whole run.
    pub total_steps: usize,
    /// Learning rate of the base parameter group at this step.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// `(name, value)`: `total` first, then every term of the loss breakdown.
    pub terms: Vec<(String, f64)>,
    /// Items (tokens, sentences) the step processed, for throughput; `0` when the task does not
    /// count them.
    pub items: usize,
}

impl StepReport {
    /// The total loss.
    pub fn loss(&self) -> f64 {
        self.terms[0].1
    }
}

/// Callbacks of [`Trainer::run`](crate::Trainer::run); every method defaults to nothing. `E` is
/// the task's evaluation result.
pub trait TrainObserver<E> {
    /// Training starts at `step` (0, or the resumed step) of `total`.
    fn on_start(&mut self, _step: usize, _total: usize) {}
    /// A step finished.
    fn on_step(&mut self, _report: &StepReport) {}
    /// The model was evaluated after `step` steps.
    fn on_eval(&mut self, _step: usize, _eval: &E) {}
    /// A checkpoint was written after `step` steps.
    fn on_checkpoint(&mut self, _step: usize, _dir: &Path) {}
}

/// An observer that does nothing.
pub struct Silent;
impl<E> TrainObserver<E> for Silent {}

/// What [`Trainer::run`](crate::Trainer::run) returns.
#[derive(Debug, Clone)]
pub struct RunSummary<E> {
    /// The evaluation before the first step (when configured; a resumed run reports the one
    /// its checkpoint kept).
    pub before: Option<E>,
    /// Every evaluation `(step, result)`, the last one after the final step.
    pub evals: Vec<(usize, E)>,
    /// Steps run in this call.
    pub steps_run: usize,
    /// Seconds spent in optimisation steps (not evaluation or checkpoints).
    pub train_seconds: f64,
    /// Items processed by the steps of this call (see [`StepReport::items`]).
    pub items: usize,
}
