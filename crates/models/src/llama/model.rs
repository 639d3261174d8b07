//! The decoder stack (`model.*`) and the language-model head (`lm_head`).

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use mrl_common::{pool, Pooling};

use super::attention::{DecoderMask, LayerKvCache};
use super::block::LlamaDecoderLayer;
use super::config::LlamaConfig;
use super::rms_norm::LlamaRmsNorm;
use super::rope::RotaryEmbedding;
use crate::error::{ModelError, Result};
use crate::linear_rows::linear_rows;

/// Token ids and padding mask of one batch.
///
/// # Shapes
/// - `input_ids`: `[batch, seq]`
/// - `attention_mask`: `[batch, seq]`, 1 for a real token, 0 for padding (HF convention).
///   Positions are `0..seq` in every row. Right padding leaves the real positions exactly as
///   they are alone; left padding (batched generation) gives the same values up to float
///   rounding, since rotary attention depends only on the distance between positions (see
///   [`super::attention::DecoderMask`] for the padded queries).
#[derive(Debug, Clone)]
pub struct LlamaInput {
    /// Token ids.
    pub input_ids: Tensor<2, Int>,
    /// 1 for a real token, 0 for padding.
    pub attention_mask: Tensor<2, Int>,
}

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct LlamaOutput {
    /// Next-token logits `[batch, seq, vocab]` (absent from [`LlamaModel::forward_hidden`]).
    pub logits: Option<Tensor<3>>,
    /// `num_layers + 1` tensors `[batch, seq, hidden]`: index 0 is the token embeddings, index
    /// `l` the output of layer `l`, except the last, which is taken after the final norm (the
    /// Hugging Face `hidden_states` convention).
    pub hidden_states: Vec<Tensor<3>>,
    /// When requested: one `[batch, heads, seq, seq]` tensor per layer, the attention
    /// probabilities.
    pub attentions: Option<Vec<Tensor<4>>>,
}

impl LlamaOutput {
    /// The final-norm output, `[batch, seq, hidden]`.
    pub fn last_hidden_state(&self) -> Tensor<3> {
        self.hidden_states
            .last()
            .cloned()
            .expect("a LlamaOutput always holds the embedding output")
    }
}

/// Keys and values of every layer for the positions processed so far (generation).
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// One entry per layer; `None` before the first step.
    pub layers: Vec<Option<LayerKvCache>>,
    /// Number of cached positions.
    pub len: usize,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the batch rows `rows` (in that order) of every layer and drops the others, e.g.
    /// the sequences of a generation batch that have finished.
    ///
    /// # Panics
    /// If `rows` is empty or names a row the cache does not have.
    pub fn retain_rows(&mut self, rows: &[usize]) {
        assert!(!rows.is_empty(), "retain_rows: no rows to keep");
        for layer in self.layers.iter_mut().flatten() {
            let batch = layer.key.dims()[0];
            if let Some(&bad) = rows.iter().find(|&&r| r >= batch) {
                panic!("retain_rows: row {bad} out of range for a cache of {batch} rows");
            }
            let device = layer.key.device();
            let index = Tensor::<1, Int>::from_data(
                TensorData::new(rows.iter().map(|&r| r as i64).collect(), [rows.len()]),
                &device,
            );
            layer.key = layer.key.clone().select(0, index.clone());
            layer.value = layer.value.clone().select(0, index);
        }
    }
}

/// A Llama-family decoder with its language-model head.
///
/// Build it with [`LlamaConfig::init`] and load weights with
/// [`LlamaModel::load_safetensors`] / [`LlamaModel::load_gguf`], or both at once with
/// [`LlamaModel::from_pretrained`]. Field names mirror the Hugging Face keys without the
/// `model.` prefix.
#[derive(Module, Debug)]
pub struct LlamaModel {
    /// `model.embed_tokens`, `[vocab, hidden]`.
    pub embed_tokens: Embedding,
    /// `model.layers.{i}`.
    pub layers: Vec<LlamaDecoderLayer>,
    /// `model.norm`, the final norm.
    pub norm: LlamaRmsNorm,
    /// `lm_head`, `hidden → vocab`; `None` when tied to `embed_tokens`.
    pub lm_head: Option<Linear>,
    /// RoPE frequencies (not a parameter).
    #[module(skip)]
    pub rope: RotaryEmbedding,
    /// Context window (`max_position_embeddings`).
    pub max_positions: usize,
}

impl LlamaConfig {
    /// A randomly initialised model of this architecture.
    pub fn init(&self, device: &Device) -> LlamaModel {
        LlamaModel {
            embed_tokens: EmbeddingConfig::new(self.vocab_size, self.hidden_size).init(device),
            layers: (0..self.num_hidden_layers)
                .map(|_| LlamaDecoderLayer::new(self, device))
                .collect(),
            norm: LlamaRmsNorm::new(self.hidden_size, self.rms_norm_eps, device),
            lm_head: (!self.tie_word_embeddings).then(|| {
                LinearConfig::new(self.hidden_size, self.vocab_size)
                    .with_bias(false)
                    .init(device)
            }),
            rope: RotaryEmbedding::new(self),
            max_positions: self.max_position_embeddings,
        }
    }
}

impl LlamaModel {
    /// Width of the residual stream.
    pub fn hidden_size(&self) -> usize {
        self.embed_tokens.weight.dims()[1]
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.embed_tokens.weight.dims()[0]
    }

    /// Number of decoder layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Keeps the first `k` layers (then the final norm and head, unchanged): the "first K
    /// layers" student initialised from a teacher.
    ///
    /// # Errors
    /// [`ModelError::InvalidArgument`] if `k` is 0 or more than the model has.
    pub fn first_layers(mut self, k: usize) -> Result<Self> {
        if k == 0 || k > self.layers.len() {
            return Err(ModelError::InvalidArgument {
                name: "k",
                message: format!("{k} layers requested, the model has {}", self.layers.len()),
            });
        }
        self.layers.truncate(k);
        Ok(self)
    }

    /// The head: `[batch, seq, hidden]` → `[batch, seq, vocab]` (the tied embedding matrix
    /// when there is no `lm_head`).
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => linear_rows(head, hidden),
            None => {
                // `h · Eᵀ` gives the logits row-major, as every consumer reads them; flex's GEMM
                // and the GPU kernels read the transposed `E` in place. ndarray's product copies
                // a transposed operand first, so there, with no more rows than `hidden`
                // (generation), `(E · hᵀ)ᵀ` costs less: transposing the `[rows, vocab]` result
                // instead of copying the `[vocab, hidden]` matrix, which would dominate a
                // one-token step.
                let [batch, seq, width] = hidden.dims();
                let rows = hidden.reshape([batch * seq, width]);
                let embed = self.embed_tokens.weight.val();
                let vocab = embed.dims()[0];
                let logits = if batch * seq <= width
                    && mrl_common::matmul_copies_transposed_operands(&embed.device())
                {
                    embed.matmul(rows.transpose()).transpose()
                } else {
                    rows.matmul(embed.transpose())
                };
                logits.reshape([batch, seq, vocab])
            }
        }
    }

    /// Runs the decoder and the head: logits, every hidden state and, when
    /// `output_attentions`, every layer's attention probabilities.
    ///
    /// # Shapes
    /// - input: see [`LlamaInput`]
    /// - `logits`: `[batch, seq, vocab]`; `hidden_states[l]`: `[batch, seq, hidden]`;
    ///   `attentions[l]`: `[batch, heads, seq, seq]`
    ///
    /// # Panics
    /// If `seq` exceeds the context window.
    pub fn forward(&self, input: LlamaInput, output_attentions: bool) -> LlamaOutput {
        let mut out = self.forward_hidden(input, output_attentions);
        out.logits = Some(self.logits(out.last_hidden_state()));
        out
    }

    /// [`LlamaModel::forward`] without the head (for embedding and for distillation losses
    /// that compute logits in chunks).
    pub fn forward_hidden(&self, input: LlamaInput, output_attentions: bool) -> LlamaOutput {
        let (hidden_states, attentions) = self.run(
            input.input_ids,
            input.attention_mask,
            None,
            output_attentions,
        );
        LlamaOutput {
            logits: None,
            hidden_states,
            attentions,
        }
    }

    /// One vector per sequence from the final-norm hidden states: the decoder as an embedder.
    /// Decoder embedders (Qwen3-Embedding, …) use [`Pooling::LastToken`]: with causal
    /// attention only the last real token has seen the whole text.
    ///
    /// # Shapes
    /// - input: see [`LlamaInput`] (left or right padding for last-token pooling)
    /// - output: `[batch, hidden]`
    ///
    /// # Errors
    /// [`ModelError::Common`] when the attention mask is not `[batch, seq]`.
    pub fn embed(&self, input: LlamaInput, pooling: Pooling) -> Result<Tensor<2>> {
        let mask = input.attention_mask.clone().float();
        let hidden = self.forward_hidden(input, false).last_hidden_state();
        Ok(pool(hidden, mask, pooling)?)
    }

    /// One incremental step: runs the new tokens `input_ids` (`[batch, new]`) after the
    /// `cache.len` cached positions and returns the logits of the new positions
    /// (`[batch, new, vocab]`), appending their keys and values to `cache`.
    /// `attention_mask` covers the cached and the new positions (`[batch, cache.len + new]`).
    ///
    /// # Panics
    /// If `cache.len + new` exceeds the context window.
    pub fn forward_cached(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        cache: &mut KvCache,
    ) -> Tensor<3> {
        let new = input_ids.dims()[1];
        let (hidden, _) = self.run(input_ids, attention_mask, Some(cache), false);
        cache.len += new;
        self.logits(hidden.last().cloned().expect("embedding output"))
    }

    /// [`LlamaModel::forward_cached`] returning only the logits of the last new position of
    /// each row, `[batch, vocab]`: the head runs on one position per row instead of all of
    /// them (a prefill of `batch × seq` positions would otherwise compute and hold
    /// `batch × seq × vocab` logits to use `batch × vocab` of them).
    ///
    /// # Shapes
    /// - `input_ids`: `[batch, new]`, `new ≥ 1`
    /// - `attention_mask`: `[batch, cache.len + new]`
    /// - output: `[batch, vocab]`
    ///
    /// # Panics
    /// If `new` is 0 or `cache.len + new` exceeds the context window.
    pub fn forward_cached_last(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        cache: &mut KvCache,
    ) -> Tensor<2> {
        let [batch, new] = input_ids.dims();
        assert!(new > 0, "forward_cached_last: input_ids has no positions");
        let (hidden, _) = self.run(input_ids, attention_mask, Some(cache), false);
        cache.len += new;
        let last = hidden.last().cloned().expect("embedding output");
        let last = last.slice([0..batch, new - 1..new]);
        self.logits(last).reshape([batch, self.vocab_size()])
    }

    fn run(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        mut cache: Option<&mut KvCache>,
        output_attentions: bool,
    ) -> (Vec<Tensor<3>>, Option<Vec<Tensor<4>>>) {
        let [_, seq] = input_ids.dims();
        let device = input_ids.device();
        let past = cache.as_ref().map_or(0, |c| c.len);
        assert!(
            past + seq <= self.max_positions,
            "{} positions exceed the context window of {} tokens",
            past + seq,
            self.max_positions
        );
        if let Some(cache) = cache.as_mut() {
            cache.layers.resize(self.layers.len(), None);
        }
        let mask = DecoderMask::new(attention_mask, past, seq);
        let (cos, sin) = self.rope.cos_sin(past, seq, &device);
        let mut x = crate::embedding(self.embed_tokens.weight.val(), input_ids);
        let mut hidden_states = Vec::with_capacity(self.layers.len() + 1);
        let mut attentions = output_attentions.then(|| Vec::with_capacity(self.layers.len()));
        for (i, layer) in self.layers.iter().enumerate() {
            hidden_states.push(x.clone());
            let layer_cache = cache.as_mut().map(|c| &mut c.layers[i]);
            let (next, probs) = layer.forward(x, &cos, &sin, &mask, layer_cache, output_attentions);
            if let (Some(all), Some(probs)) = (attentions.as_mut(), probs) {
                all.push(probs);
            }
            x = next;
        }
        hidden_states.push(self.norm.forward(x));
        (hidden_states, attentions)
    }
}
