//! One file per backend implementation of [`CkaOps`](crate::CkaOps).

mod autodiff;
#[cfg(feature = "cube")]
mod cubecl;

#[cfg(feature = "flex")]
impl crate::CkaOps for burn::backend::Flex {}

#[cfg(feature = "ndarray")]
#[allow(deprecated)]
impl crate::CkaOps for burn::backend::NdArray {}
