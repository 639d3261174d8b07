//! The SwiGLU feed-forward block (Shazeer, 2020, "GLU Variants Improve Transformer"):
//! `down(silu(gate(x)) ⊙ up(x))` (`model.layers.{i}.mlp`).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::config::LlamaConfig;
use crate::linear_rows::linear_rows;

/// `mlp`: gate, up and down projections, no biases.
#[derive(Module, Debug)]
pub struct LlamaMlp {
    /// `gate_proj`, `hidden → intermediate`.
    pub gate_proj: Linear,
    /// `up_proj`, `hidden → intermediate`.
    pub up_proj: Linear,
    /// `down_proj`, `intermediate → hidden`.
    pub down_proj: Linear,
}

impl LlamaMlp {
    /// Randomly initialised block for `config`.
    pub fn new(config: &LlamaConfig, device: &Device) -> Self {
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let linear = |d_in, d_out| LinearConfig::new(d_in, d_out).with_bias(false).init(device);
        Self {
            gate_proj: linear(h, i),
            up_proj: linear(h, i),
            down_proj: linear(i, h),
        }
    }

    /// `[batch, seq, hidden]` → `[batch, seq, hidden]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = linear_rows(&self.gate_proj, x.clone());
        let up = linear_rows(&self.up_proj, x);
        linear_rows(&self.down_proj, crate::swiglu(gate, up))
    }
}
