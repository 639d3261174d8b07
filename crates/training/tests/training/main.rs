//! The training loop and the embedding task end to end on a tiny random BERT built in code
//! (no shared data needed), on every compiled-in CPU device (and wgpu with the `wgpu`
//! feature): config rejection, data loading and batching, the schedule, atomic checkpoints,
//! resume == uninterrupted, non-finite loss detection, export round trip and equivalence to
//! the source pipeline.

mod adamw;
mod checkpoint;
mod common;
mod config;
mod data;
mod distill;
mod distill_cross;
mod distill_mta;
mod distill_smollm2;
mod distill_sra;
mod export;
mod presets;
mod runs;
mod schedule;
#[cfg(feature = "wgpu")]
mod wgpu;
