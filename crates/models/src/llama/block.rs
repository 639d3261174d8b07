//! One pre-norm decoder layer (`model.layers.{i}`):
//! `h = x + attn(norm₁(x))`, `out = h + mlp(norm₂(h))`.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::attention::{DecoderMask, LayerKvCache, LlamaAttention};
use super::config::LlamaConfig;
use super::mlp::LlamaMlp;
use super::rms_norm::LlamaRmsNorm;

/// A decoder layer.
#[derive(Module, Debug)]
pub struct LlamaDecoderLayer {
    /// `self_attn`.
    pub self_attn: LlamaAttention,
    /// `mlp`.
    pub mlp: LlamaMlp,
    /// `input_layernorm` (before attention).
    pub input_layernorm: LlamaRmsNorm,
    /// `post_attention_layernorm` (before the MLP).
    pub post_attention_layernorm: LlamaRmsNorm,
}

impl LlamaDecoderLayer {
    /// Randomly initialised layer for `config`.
    pub fn new(config: &LlamaConfig, device: &Device) -> Self {
        let norm = || LlamaRmsNorm::new(config.hidden_size, config.rms_norm_eps, device);
        Self {
            self_attn: LlamaAttention::new(config, device),
            mlp: LlamaMlp::new(config, device),
            input_layernorm: norm(),
            post_attention_layernorm: norm(),
        }
    }

    /// `[batch, seq, hidden]` → `[batch, seq, hidden]`, plus the attention probabilities when
    /// asked for. See [`LlamaAttention::forward`] for the other arguments.
    pub fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<2>,
        sin: &Tensor<2>,
        mask: &DecoderMask,
        cache: Option<&mut Option<LayerKvCache>>,
        output_attentions: bool,
    ) -> (Tensor<3>, Option<Tensor<4>>) {
        let (attended, probs) = self.self_attn.forward(
            self.input_layernorm.forward(x.clone()),
            cos,
            sin,
            mask,
            cache,
            output_attentions,
        );
        let h = x + attended;
        let out = h.clone() + self.mlp.forward(self.post_attention_layernorm.forward(h));
        (out, probs)
    }
}
