//! The BERT encoder, in dependency order: embeddings → self-attention → feed-forward → layer →
//! encoder → model. Field names mirror the Hugging Face checkpoint keys
//! (`embeddings.word_embeddings`, `encoder.layer.{i}.attention.self.query`, …); the few
//! renames a Rust field needs are listed in [`super::weights`].

use burn::module::Module;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig,
};
use burn::tensor::activation::{gelu_approximate, relu};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Int, Tensor};

use super::config::{BertConfig, HiddenAct};
use crate::gelu::gelu_exact;
use crate::linear_rows::linear_rows;

/// Token ids, padding mask and (optional) segment ids of one batch.
///
/// # Shapes
/// - `input_ids`: `[batch, seq]`
/// - `attention_mask`: `[batch, seq]`, 1 for a real token and 0 for padding (HF convention)
/// - `token_type_ids`: `[batch, seq]`; all zeros when `None`
#[derive(Debug, Clone)]
pub struct BertInput {
    /// Token ids.
    pub input_ids: Tensor<2, Int>,
    /// 1 for a real token, 0 for padding.
    pub attention_mask: Tensor<2, Int>,
    /// Segment ids; zeros when `None`.
    pub token_type_ids: Option<Tensor<2, Int>>,
}

impl BertInput {
    /// An input with all-zero segment ids.
    pub fn new(input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Self {
        Self {
            input_ids,
            attention_mask,
            token_type_ids: None,
        }
    }

    /// Sets the segment ids.
    pub fn with_token_type_ids(mut self, token_type_ids: Tensor<2, Int>) -> Self {
        self.token_type_ids = Some(token_type_ids);
        self
    }
}

/// Everything a forward pass returns.
#[derive(Debug, Clone)]
pub struct BertOutput {
    /// `num_hidden_layers + 1` tensors of shape `[batch, seq, hidden]`: index 0 is the embedding
    /// output, index `l` the output of layer `l` (the Hugging Face `hidden_states` convention).
    pub hidden_states: Vec<Tensor<3>>,
    /// When requested: one `[batch, heads, seq, seq]` tensor per layer, the attention
    /// probabilities after softmax (before attention dropout, as Hugging Face returns them).
    pub attentions: Option<Vec<Tensor<4>>>,
}

impl BertOutput {
    /// The last layer's token states, `[batch, seq, hidden]`.
    pub fn last_hidden_state(&self) -> Tensor<3> {
        self.hidden_states
            .last()
            .cloned()
            .expect("a BertOutput always holds the embedding output")
    }
}

/// Word + position + token-type embeddings, then LayerNorm and dropout.
///
/// Position ids are `0..seq` in every row (BERT), or, for RoBERTa and XLM-RoBERTa, counted over
/// the non-padding tokens from `padding_idx + 1` (see [`BertConfig::position_offset`]).
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    /// `embeddings.word_embeddings`, `[vocab, hidden]`.
    pub word_embeddings: Embedding,
    /// `embeddings.position_embeddings`, `[max_positions, hidden]`.
    pub position_embeddings: Embedding,
    /// `embeddings.token_type_embeddings`, `[type_vocab, hidden]`.
    pub token_type_embeddings: Embedding,
    /// `embeddings.LayerNorm`.
    pub layer_norm: LayerNorm,
    /// Its epsilon (`layer_norm_eps`; Burn keeps the layer's own private).
    #[module(skip)]
    pub layer_norm_eps: f64,
    /// Hidden dropout (active only on an autodiff device).
    pub dropout: Dropout,
    /// `Some(pad_token_id)` when positions are numbered from the padding id (RoBERTa,
    /// XLM-RoBERTa), `None` for `0..seq` (configuration, not a parameter).
    #[module(skip)]
    pub padding_idx: Option<usize>,
}

impl BertEmbeddings {
    fn new(config: &BertConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        Self {
            word_embeddings: EmbeddingConfig::new(config.vocab_size, h).init(device),
            position_embeddings: EmbeddingConfig::new(config.max_position_embeddings, h)
                .init(device),
            token_type_embeddings: EmbeddingConfig::new(config.type_vocab_size, h).init(device),
            layer_norm: LayerNormConfig::new(h)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            layer_norm_eps: config.layer_norm_eps,
            dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
            padding_idx: config.position_offset(),
        }
    }

    /// `LayerNorm` over the last axis ([`crate::layer_norm`], one backend operation).
    fn layer_norm(&self, x: Tensor<3>) -> Tensor<3> {
        layer_norm_of(&self.layer_norm, self.layer_norm_eps, x)
    }

    /// The position ids of a batch, `[batch, seq]`.
    ///
    /// BERT: `0..seq` in every row. RoBERTa / XLM-RoBERTa, with `p = padding_idx` and
    /// `m = [input_ids ≠ p]`: `p + m · cumsum(m)` along the sequence, so the real tokens of a
    /// row are at `p + 1, p + 2, …` and every padding token is at `p`
    /// (`transformers`' `create_position_ids_from_input_ids`).
    ///
    /// # Panics
    /// If the largest position id does not fit `max_position_embeddings`.
    pub fn position_ids(&self, input_ids: &Tensor<2, Int>) -> Tensor<2, Int> {
        let [batch, seq] = input_ids.dims();
        let device = input_ids.device();
        let max_positions = self.position_embeddings.weight.dims()[0];
        let offset = self.padding_idx.map_or(0, |p| p + 1);
        assert!(
            seq + offset <= max_positions,
            "sequence length {seq} exceeds the {} positions of max_position_embeddings \
             {max_positions}",
            max_positions.saturating_sub(offset)
        );
        match self.padding_idx {
            None => Tensor::<1, Int>::arange(0..seq as i64, &device)
                .unsqueeze::<2>()
                .expand([batch, seq]),
            Some(p) => {
                let real = input_ids.clone().not_equal_elem(p as i64).int();
                real.clone().cumsum(1).mul(real).add_scalar(p as i64)
            }
        }
    }

    /// # Shapes
    /// - `input_ids`, `token_type_ids`: `[batch, seq]`
    /// - output: `[batch, seq, hidden]`
    ///
    /// # Panics
    /// If `seq` exceeds the positions the table covers ([`BertConfig::max_sequence_length`]).
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        token_type_ids: Option<Tensor<2, Int>>,
    ) -> Tensor<3> {
        let [batch, seq] = input_ids.dims();
        let device = input_ids.device();
        let positions = self.position_ids(&input_ids);
        let token_type_ids =
            token_type_ids.unwrap_or_else(|| Tensor::<2, Int>::zeros([batch, seq], &device));
        let x = crate::embedding(self.word_embeddings.weight.val(), input_ids)
            + crate::embedding(self.position_embeddings.weight.val(), positions)
            + crate::embedding(self.token_type_embeddings.weight.val(), token_type_ids);
        crate::dropout(&self.dropout, self.layer_norm(x))
    }
}

/// Multi-head scaled dot-product self-attention (`attention.self`).
#[derive(Module, Debug)]
pub struct BertSelfAttention {
    /// Query projection.
    pub query: Linear,
    /// Key projection.
    pub key: Linear,
    /// Value projection.
    pub value: Linear,
    /// Dropout on the attention probabilities.
    pub dropout: Dropout,
    /// Number of heads.
    pub num_heads: usize,
}

impl BertSelfAttention {
    fn new(config: &BertConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        Self {
            query: LinearConfig::new(h, h).init(device),
            key: LinearConfig::new(h, h).init(device),
            value: LinearConfig::new(h, h).init(device),
            dropout: DropoutConfig::new(config.attention_probs_dropout_prob).init(),
            num_heads: config.num_attention_heads,
        }
    }

    /// `[batch, seq, hidden]` → `[batch, heads, seq, head_dim]`.
    fn split_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [batch, seq, hidden] = x.dims();
        x.reshape([batch, seq, self.num_heads, hidden / self.num_heads])
            .swap_dims(1, 2)
    }

    /// Returns the context `[batch, seq, hidden]` and, when `output_attentions`, the
    /// probabilities `[batch, heads, seq, seq]`.
    ///
    /// `mask` is the key-side padding mask: `padding` is `true` at padded keys (`[batch, seq]`),
    /// `additive` is 0 at real keys and the most negative f32 at padded keys
    /// (`[batch, 1, 1, seq]`).
    pub fn forward(
        &self,
        x: Tensor<3>,
        mask: &AttentionMask,
        output_attentions: bool,
    ) -> (Tensor<3>, Option<Tensor<4>>) {
        let [batch, seq, hidden] = x.dims();
        let q = self.split_heads(linear_rows(&self.query, x.clone()));
        let k = self.split_heads(linear_rows(&self.key, x.clone()));
        let v = self.split_heads(linear_rows(&self.value, x));
        let training = x_is_training(&q) && self.dropout.prob > 0.0;

        let (context, probs) = if output_attentions || training {
            // Explicit path: the probabilities are needed, or dropout must act on them.
            let scale = (self.head_dim(hidden) as f64).sqrt().recip();
            let scores = q.matmul(k.swap_dims(2, 3));
            let key_mask = mask.additive.clone().reshape([batch, seq]);
            let probs = crate::attention_softmax(scores, key_mask, scale);
            let context = crate::dropout(&self.dropout, probs.clone()).matmul(v);
            (context, output_attentions.then_some(probs))
        } else {
            // Inference: the backend's fused scaled-dot-product attention (1/sqrt(head_dim)).
            let keep_out = mask.padding.clone().reshape([batch, 1, 1, seq]).expand([
                batch,
                self.num_heads,
                seq,
                seq,
            ]);
            let context = attention(
                q,
                k,
                v,
                Some(keep_out),
                None,
                AttentionModuleOptions::default(),
            );
            (context, None)
        };
        let context = context.swap_dims(1, 2).reshape([batch, seq, hidden]);
        (context, probs)
    }

    fn head_dim(&self, hidden: usize) -> usize {
        hidden / self.num_heads
    }
}

/// `layer` (with its epsilon) applied by [`crate::layer_norm`].
fn layer_norm_of(layer: &LayerNorm, epsilon: f64, x: Tensor<3>) -> Tensor<3> {
    let beta = layer.beta.as_ref().expect("BERT LayerNorms have a bias");
    crate::layer_norm(x, layer.gamma.val(), beta.val(), epsilon)
}

/// Whether tensors on this device record gradients (dropout is active only then).
fn x_is_training<const D: usize>(x: &Tensor<D>) -> bool {
    x.device().is_autodiff()
}

/// The padding mask of a batch, in the two forms attention needs.
#[derive(Debug, Clone)]
pub struct AttentionMask {
    /// `true` at padded positions, `[batch, seq]`.
    pub padding: Tensor<2, Bool>,
    /// 0 at real positions, `f32::MIN` at padded ones, `[batch, 1, 1, seq]` (added to scores).
    pub additive: Tensor<4>,
}

impl AttentionMask {
    /// Builds both forms from an HF attention mask (1 = token, 0 = padding), `[batch, seq]`.
    pub fn from_attention_mask(attention_mask: Tensor<2, Int>) -> Self {
        let [batch, seq] = attention_mask.dims();
        let padding = attention_mask.equal_elem(0);
        // Hugging Face uses torch.finfo(dtype).min: exp(min - max) underflows to exactly 0.
        let additive = padding
            .clone()
            .float()
            .mul_scalar(f32::MIN)
            .reshape([batch, 1, 1, seq]);
        Self { padding, additive }
    }
}

/// Output projection of the attention block with residual and LayerNorm
/// (`attention.output`).
#[derive(Module, Debug)]
pub struct BertSelfOutput {
    /// `attention.output.dense`.
    pub dense: Linear,
    /// `attention.output.LayerNorm`.
    pub layer_norm: LayerNorm,
    /// Its epsilon (`layer_norm_eps`).
    #[module(skip)]
    pub layer_norm_eps: f64,
    /// Hidden dropout.
    pub dropout: Dropout,
}

impl BertSelfOutput {
    fn new(config: &BertConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        Self {
            dense: LinearConfig::new(h, h).init(device),
            layer_norm: LayerNormConfig::new(h)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            layer_norm_eps: config.layer_norm_eps,
            dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
        }
    }

    /// `LayerNorm` over the last axis ([`crate::layer_norm`], one backend operation).
    fn layer_norm(&self, x: Tensor<3>) -> Tensor<3> {
        layer_norm_of(&self.layer_norm, self.layer_norm_eps, x)
    }

    /// `LayerNorm(dropout(dense(context)) + residual)`, all `[batch, seq, hidden]`.
    pub fn forward(&self, context: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        let x = crate::dropout(&self.dropout, linear_rows(&self.dense, context));
        self.layer_norm(x + residual)
    }
}

/// Self-attention followed by its output block (`attention`).
#[derive(Module, Debug)]
pub struct BertAttention {
    /// `attention.self` (renamed: `self` is a Rust keyword).
    pub self_attention: BertSelfAttention,
    /// `attention.output`.
    pub output: BertSelfOutput,
}

/// First half of the feed-forward block: `act(dense(x))` (`intermediate`).
#[derive(Module, Debug)]
pub struct BertIntermediate {
    /// `intermediate.dense`, `hidden → intermediate`.
    pub dense: Linear,
    /// The activation (configuration, not a parameter).
    #[module(skip)]
    pub hidden_act: HiddenAct,
}

impl BertIntermediate {
    /// `[batch, seq, hidden]` → `[batch, seq, intermediate]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = linear_rows(&self.dense, x);
        match self.hidden_act {
            HiddenAct::Gelu => gelu_exact(x),
            HiddenAct::GeluTanh => gelu_approximate(x),
            HiddenAct::Relu => relu(x),
        }
    }
}

/// Second half of the feed-forward block with residual and LayerNorm (`output`).
#[derive(Module, Debug)]
pub struct BertFeedForwardOutput {
    /// `output.dense`, `intermediate → hidden`.
    pub dense: Linear,
    /// `output.LayerNorm`.
    pub layer_norm: LayerNorm,
    /// Its epsilon (`layer_norm_eps`).
    #[module(skip)]
    pub layer_norm_eps: f64,
    /// Hidden dropout.
    pub dropout: Dropout,
}

impl BertFeedForwardOutput {
    /// `LayerNorm` over the last axis ([`crate::layer_norm`], one backend operation).
    fn layer_norm(&self, x: Tensor<3>) -> Tensor<3> {
        layer_norm_of(&self.layer_norm, self.layer_norm_eps, x)
    }

    /// `LayerNorm(dropout(dense(x)) + residual)`.
    pub fn forward(&self, x: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        let x = crate::dropout(&self.dropout, linear_rows(&self.dense, x));
        self.layer_norm(x + residual)
    }
}

/// One transformer layer (`encoder.layer.{i}`): post-LayerNorm attention, then feed-forward.
#[derive(Module, Debug)]
pub struct BertLayer {
    /// `attention`.
    pub attention: BertAttention,
    /// `intermediate`.
    pub intermediate: BertIntermediate,
    /// `output`.
    pub output: BertFeedForwardOutput,
}

impl BertLayer {
    fn new(config: &BertConfig, device: &Device) -> Self {
        let (h, i) = (config.hidden_size, config.intermediate_size);
        Self {
            attention: BertAttention {
                self_attention: BertSelfAttention::new(config, device),
                output: BertSelfOutput::new(config, device),
            },
            intermediate: BertIntermediate {
                dense: LinearConfig::new(h, i).init(device),
                hidden_act: config.hidden_act,
            },
            output: BertFeedForwardOutput {
                dense: LinearConfig::new(i, h).init(device),
                layer_norm: LayerNormConfig::new(h)
                    .with_epsilon(config.layer_norm_eps)
                    .init(device),
                layer_norm_eps: config.layer_norm_eps,
                dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
            },
        }
    }

    /// `[batch, seq, hidden]` → `[batch, seq, hidden]`, plus the attention probabilities when
    /// asked for.
    pub fn forward(
        &self,
        x: Tensor<3>,
        mask: &AttentionMask,
        output_attentions: bool,
    ) -> (Tensor<3>, Option<Tensor<4>>) {
        let (context, probs) =
            self.attention
                .self_attention
                .forward(x.clone(), mask, output_attentions);
        let attended = self.attention.output.forward(context, x);
        let ff = self.intermediate.forward(attended.clone());
        (self.output.forward(ff, attended), probs)
    }
}

/// The stack of layers (`encoder`).
#[derive(Module, Debug)]
pub struct BertEncoder {
    /// `encoder.layer.{i}`.
    pub layer: Vec<BertLayer>,
}

/// A BERT-family encoder without pooler or task head.
///
/// Build it with [`BertConfig::init`] and load a checkpoint with
/// [`BertModel::load_safetensors`], or both at once with [`BertModel::from_pretrained`].
/// Dropout is active when the model runs on an autodiff device (`device.autodiff()`) and the
/// module has not been frozen, so two forward passes of one batch give two SimCSE views; on a
/// plain device the forward pass is deterministic.
#[derive(Module, Debug)]
pub struct BertModel {
    /// `embeddings`.
    pub embeddings: BertEmbeddings,
    /// `encoder`.
    pub encoder: BertEncoder,
}

impl BertModel {
    pub(crate) fn new(config: &BertConfig, device: &Device) -> Self {
        Self {
            embeddings: BertEmbeddings::new(config, device),
            encoder: BertEncoder {
                layer: (0..config.num_hidden_layers)
                    .map(|_| BertLayer::new(config, device))
                    .collect(),
            },
        }
    }

    /// Width of every hidden state.
    pub fn hidden_size(&self) -> usize {
        self.embeddings.word_embeddings.weight.dims()[1]
    }

    /// Number of transformer layers.
    pub fn num_layers(&self) -> usize {
        self.encoder.layer.len()
    }

    /// Runs the encoder and returns every hidden state (and, when `output_attentions`, every
    /// layer's attention probabilities).
    ///
    /// # Shapes
    /// - input: see [`BertInput`]
    /// - `hidden_states[l]`: `[batch, seq, hidden]` for `l = 0..=num_layers`
    /// - `attentions[l]`: `[batch, heads, seq, seq]` for `l = 0..num_layers`
    pub fn forward(&self, input: BertInput, output_attentions: bool) -> BertOutput {
        let mask = AttentionMask::from_attention_mask(input.attention_mask);
        let mut x = self
            .embeddings
            .forward(input.input_ids, input.token_type_ids);
        let mut hidden_states = Vec::with_capacity(self.num_layers() + 1);
        let mut attentions = output_attentions.then(|| Vec::with_capacity(self.num_layers()));
        hidden_states.push(x.clone());
        for layer in &self.encoder.layer {
            let (next, probs) = layer.forward(x, &mask, output_attentions);
            if let (Some(all), Some(probs)) = (attentions.as_mut(), probs) {
                all.push(probs);
            }
            hidden_states.push(next.clone());
            x = next;
        }
        BertOutput {
            hidden_states,
            attentions,
        }
    }
}
