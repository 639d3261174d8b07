//! Matryoshka training for the `models` crate's BERT-family encoders with the `mrl-core`
//! objectives (MRL, ESE, 2D Matryoshka, MIPIC).
//!
//! - [`config`] — the TOML config ([`TrainConfig`]): unknown keys and bad values are rejected
//!   with the key named;
//! - [`data`] — sentences (SimCSE), pairs, triplets, scored pairs; seeded shuffle and
//!   length-aware batching;
//! - [`objective`] — the loss of a run, built from the config and the encoder's shape;
//! - [`trainer`] — the loop: AdamW, linear warm-up + cosine decay, global-norm gradient
//!   clipping, a separate learning rate for the objective's parameters (MIPIC lifts and
//!   projectors), dev-set STS evaluation at every dim, non-finite loss detection;
//! - [`checkpoint`] — atomic checkpoints, verified on resume;
//! - [`export`] — the sentence-transformers layout;
//! - [`report`] — before/after tables as JSON, Markdown and SVG;
//! - [`tiny`] — a tiny random BERT and tokenizer built in code, for tests and smoke runs.
//!
//! # Example
//! ```no_run
//! use mrl_train::{Silent, TrainConfig, Trainer};
//!
//! let config = TrainConfig::from_file("configs/mipic-minilm.toml".as_ref(), &[])?;
//! let device = config.device.device()?;
//! let mut trainer = Trainer::new(config, &device)?;
//! let summary = trainer.run(&mut Silent, None)?;
//! trainer.export("runs/mipic-minilm/model".as_ref())?;
//! # let _ = summary;
//! # Ok::<(), mrl_train::TrainError>(())
//! ```
//!
//! # Determinism
//! The data order, dropout masks and the losses' sampling are functions of `(seed, step)`, so
//! a run resumed from a checkpoint takes exactly the steps of an uninterrupted one (a test
//! checks the loss sequence).

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod export;
pub mod objective;
pub mod report;
pub mod tiny;
pub mod trainer;

pub use config::{DataFormat, DeviceKind, ObjectiveKind, TrainConfig};
pub use data::{Batching, Corpus, Example};
pub use error::{Result, TrainError};
pub use export::export_sentence_transformer;
/// The model resolver of [`models::resolve`] (the only one), re-exported for configs and callers.
pub use models::resolve::resolve_model;
pub use objective::Objective;
pub use trainer::{lr_factor, RunSummary, Silent, StepReport, TrainObserver, Trainer};
