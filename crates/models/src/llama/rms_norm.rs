//! Root-mean-square layer normalisation (Zhang & Sennrich, 2019), as Llama uses it:
//! `y = x / sqrt(mean(x²) + eps) · weight`, computed over the last axis by [`crate::rms_norm`].

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

/// RMSNorm with a learned per-channel scale (`*.input_layernorm`, `model.norm`, …).
///
/// Named after Hugging Face's class so that Burn's PyTorch adapter leaves `weight` as it is
/// (it renames the `weight` of its own `RmsNorm` to `gamma`).
#[derive(Module, Debug)]
pub struct LlamaRmsNorm {
    /// The scale, `[dim]` (checkpoint key `*.weight`).
    pub weight: Param<Tensor<1>>,
    /// Added to the mean square.
    pub eps: f64,
}

impl LlamaRmsNorm {
    /// A norm over `dim` channels with unit scale.
    pub fn new(dim: usize, eps: f64, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::ones([dim], device)),
            eps,
        }
    }

    /// Normalises over the last axis.
    ///
    /// # Shapes
    /// - `x`: `[..., dim]`; output: same shape.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        crate::rms_norm(x, self.weight.val(), self.eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{TensorData, Tolerance};

    #[test]
    fn normalises_each_row_by_its_rms() {
        let device = Device::flex();
        let mut norm = LlamaRmsNorm::new(2, 0.0, &device);
        norm.weight = Param::from_tensor(Tensor::from_floats([1.0, 2.0], &device));
        // Row [3, 4]: rms = sqrt((9 + 16) / 2) = 3.5355; → [0.8485, 2·1.1314].
        let x = Tensor::<2>::from_floats([[3.0, 4.0], [1.0, 1.0]], &device);
        norm.forward(x).into_data().assert_approx_eq::<f32>(
            &TensorData::from([[0.848_528, 2.262_742], [1.0, 2.0]]),
            Tolerance::absolute(1e-5),
        );
    }
}
