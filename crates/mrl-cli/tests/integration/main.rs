//! End-to-end tests of the `mrl` binary, linked into one test binary. The ignored ones need the
//! shared model and data (`MRL_SHARED`, default `../shared` next to the workspace root); CI runs
//! them with `--include-ignored`. Every run is offline (`HF_HUB_OFFLINE=1`, see
//! `common::mrl_command`): no test downloads.

mod common;

mod distill;
mod eval;
mod eval_instruct;
mod eval_tasks;
mod fresh_machine;
mod train;
