//! End-to-end tests of the `mrl` binary, linked into one test binary. The ignored ones need the
//! shared model and data (`MRL_SHARED`, default `../shared` next to the workspace root); CI runs
//! them with `--include-ignored`.

mod common;

mod eval;
mod train;
