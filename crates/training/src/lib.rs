//! One training loop for every task, and the tasks it trains.
//!
//! - [`trainer`] — the loop, written once: AdamW ([`adamw`], fused on the CPU backends) over
//!   parameter groups, warm-up + cosine per
//!   group ([`schedule`]), global-norm clipping ([`clipping`]), the NaN guard, `losses.jsonl`,
//!   periodic evaluation, verified checkpoints ([`checkpoint`]) and exact resume. A [`Task`]
//!   brings its trainable module, its batches, the loss of a step and its evaluation;
//! - [`config`] — what every task's TOML shares (`--set` overrides, `[optimizer]`,
//!   `[training]`, `[checkpoint]`), validated once;
//! - [`batching`] — seeded, length-grouped batches as a pure function of `(seed, epoch)`;
//! - [`observer`] — step reports, observers (progress bars) and run summaries;
//! - [`embedding`] — the embedding task (`mrl train`): a BERT- or Llama-family backbone and a
//!   Matryoshka objective (MRL, ESE, 2D, MIPIC), STS evaluation, sentence-transformers export;
//! - [`distill`] — the distillation task (`mrl distill`): a decoder student, a live or cached
//!   decoder teacher, `(1 − α)·CE + α·KD`, Hugging Face export;
//!
//! # Determinism
//! The data order, dropout masks and the losses' sampling are functions of `(seed, step)`, so
//! a run resumed from a checkpoint takes exactly the steps of an uninterrupted one (a test
//! checks the loss sequence).

pub mod adamw;
pub mod batching;
pub mod checkpoint;
pub mod clipping;
pub mod config;
pub mod distill;
pub mod embedding;
pub mod error;
pub mod observer;
pub mod schedule;
pub mod trainer;

pub use adamw::FusedAdamW;
pub use batching::Batching;
pub use config::LoopSettings;
pub use error::{Result, TrainError};
pub use observer::{RunSummary, Silent, StepReport, TrainObserver};
pub use schedule::lr_factor;
pub use trainer::{LossTerms, ParamGroupSpec, Task, Trainer};
