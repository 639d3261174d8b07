//! One file per backend implementation of [`CkaOps`](crate::CkaOps).

mod autodiff;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod cpu;
#[cfg(feature = "cube")]
mod cubecl;
