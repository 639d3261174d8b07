//! Value, invariant, gradient and bad-input tests of `mrl-core` on every compiled-in CPU device,
//! one file per concept (`info_nce.rs`, `matryoshka.rs`, `mipic.rs`, …), linked into one test
//! binary; shared helpers are in `common.rs`.
//!
//! Reference values come from `fixtures/make_fixtures.py` (NumPy float64, independent of the
//! Rust code); the values of learnable lifts and projectors are read from the same JSON and set
//! into the modules, so the script and the test compute the same function.
//!
//! Run one concept with a name filter, e.g. `cargo test -p mrl-core --test mrl_core mipic`.
#![allow(deprecated)] // `Device::ndarray()`, deprecated upstream, is one of the devices tested

mod common;

mod adaptive_layer;
mod cosent;
mod errors;
mod ese;
mod gradients;
mod info_nce;
mod matryoshka;
mod mipic;
mod mnrl;
mod pic;
mod pooling;
mod presets;
