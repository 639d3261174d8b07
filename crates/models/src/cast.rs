//! Dtype normalisation of loaded weights, shared by every architecture's loader.

use burn::module::{ModuleMapper, Param};
use burn::tensor::{DType, FloatDType, Tensor};

/// Casts every float parameter to f32: a checkpoint stored in f16/bf16 keeps its dtype when
/// loaded, while the models compute in f32.
pub(crate) struct CastToF32;

impl ModuleMapper for CastToF32 {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            if t.dtype() == DType::F32 {
                t
            } else {
                t.cast(FloatDType::F32)
            }
        })
    }
}
