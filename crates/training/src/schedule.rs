//! The learning-rate schedule: a linear warm-up from 0, then a cosine from the peak down to
//! `min_lr_ratio × peak` at the last step — as a Burn [`LrScheduler`], one per parameter group,
//! combined in Burn's [`ModuleLrScheduler`].
//!
//! The schedule is a pure function of the step ([`lr_factor`]), so a resumed run rebuilds it at
//! the checkpoint's step ([`WarmupCosine::at_step`]) and continues exactly.

use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::module::ParamGroup;

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

/// Warm-up + cosine for one parameter group: `peak × lr_factor(step, …)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupCosine {
    /// Peak learning rate.
    pub peak: f64,
    /// Warm-up steps.
    pub warmup: usize,
    /// Steps of the run.
    pub total: usize,
    /// Final learning rate as a fraction of the peak.
    pub min_ratio: f64,
    /// Steps taken so far (the next [`LrScheduler::step`] returns the rate of step `done + 1`).
    pub done: usize,
}

impl WarmupCosine {
    /// The schedule before its first step.
    pub fn new(peak: f64, warmup: usize, total: usize, min_ratio: f64) -> Self {
        Self {
            peak,
            warmup,
            total,
            min_ratio,
            done: 0,
        }
    }

    /// The same schedule after `done` steps (resume).
    pub fn at_step(mut self, done: usize) -> Self {
        self.done = done;
        self
    }

    /// The rate of 1-based step `step`.
    pub fn lr(&self, step: usize) -> f64 {
        self.peak * lr_factor(step, self.warmup, self.total, self.min_ratio)
    }
}

impl LrScheduler for WarmupCosine {
    fn step(&mut self) -> f64 {
        self.done += 1;
        self.lr(self.done)
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar("done", self.done as u64)
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(done) = record.scalar::<u64>("done") {
            self.done = done as usize;
        }
    }
}

/// One schedule per parameter group: `base` for every parameter, then each `(group, schedule)`
/// for the parameters it matches (the last match wins, as in Burn).
pub fn module_schedule(
    base: WarmupCosine,
    groups: impl IntoIterator<Item = (ParamGroup, WarmupCosine)>,
) -> ModuleLrScheduler {
    groups
        .into_iter()
        .fold(ModuleLrScheduler::new(base), |s, (group, schedule)| {
            s.with_group(group, schedule)
        })
}
