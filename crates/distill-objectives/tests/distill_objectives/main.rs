//! Value, gradient, property and bad-input tests of `distill-objectives` on every compiled-in
//! CPU device (NdArray, Flex), one file per concern, linked into one test binary; shared helpers
//! are in `common.rs`.
//!
//! Reference values come from `scripts/make_divergence_reference.py` (NumPy float64, written
//! independently of the Rust code in plain probability space), stored in
//! `tests/fixtures/divergences.json`; MTA unit memberships from
//! `scripts/make_units_reference.py` (the real SmolLM2 tokenizer's character offsets), stored in
//! `tests/fixtures/units_reference.json`; the cross-tokenizer objectives (ULD, MinEdit, the
//! vocabulary intersection) from `scripts/make_xtok_reference.py`, stored in
//! `tests/fixtures/xtok.json`.
//!
//! Run one concern with a name filter, e.g. `cargo test -p distill-objectives --test
//! distill_objectives gradients`.
#![allow(deprecated)] // `Device::ndarray()`, deprecated upstream, is one of the devices tested

mod common;

mod chunker;
mod config;
mod dskd_cma;
mod errors;
mod gradients;
mod mta;
mod mta_cross;
mod properties;
mod sra;
mod units;
mod values;
mod xtok;
mod xtok_errors;
mod xtok_properties;
mod xtok_shared;
