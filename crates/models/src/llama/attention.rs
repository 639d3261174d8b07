//! Grouped-query self-attention with rotary positions, a causal + padding mask and an optional
//! key/value cache (`model.layers.{i}.self_attn`).
//!
//! `num_attention_heads` query heads share `num_key_value_heads` key/value heads: each group
//! of `num_attention_heads / num_key_value_heads` consecutive query heads reads the same key and
//! value head (Ainslie et al., 2023, "GQA").

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Int, Tensor};

use super::config::LlamaConfig;
use super::rms_norm::LlamaRmsNorm;
use super::rope::apply_rotary;
use crate::linear_rows::linear_rows;

/// The mask of one forward pass, in the two forms attention needs.
#[derive(Debug, Clone)]
pub struct DecoderMask {
    /// `true` where a query may not see a key (a later position or a padded key),
    /// `[batch, 1, q_len, k_len]`.
    pub blocked: Tensor<4, Bool>,
    /// 0 where allowed, `f32::MIN` where blocked, `[batch, 1, q_len, k_len]`.
    pub additive: Tensor<4>,
}

impl DecoderMask {
    /// The causal mask of `q_len` new queries at positions `past..past + q_len` over
    /// `past + q_len` keys, combined with the key padding of `attention_mask`
    /// (`[batch, past + q_len]`, 1 = token, 0 = padding).
    ///
    /// A query that would see no key at all — a left-padding position, whose earlier keys and
    /// itself are all padding — sees its own key instead. Without that its attention is
    /// undefined: Burn's fused `attention` returns zeros for such a row on the CPU backends,
    /// the explicit path (`f32::MIN` added to every score) a uniform average over all keys, and
    /// other kernels need not agree. No real position ever attends to a padded key, so this
    /// only makes the (ignored) outputs at padded positions finite and the same on every path;
    /// a query that sees at least one key — every query of an unpadded or right-padded batch —
    /// keeps its mask unchanged.
    ///
    /// # Shapes
    /// - `attention_mask`: `[batch, past + q_len]`
    /// - `blocked`, `additive`: `[batch, 1, q_len, past + q_len]`
    pub fn new(attention_mask: Tensor<2, Int>, past: usize, q_len: usize) -> Self {
        let [batch, k_len] = attention_mask.dims();
        assert_eq!(
            k_len,
            past + q_len,
            "attention_mask covers {k_len} positions, expected past ({past}) + new ({q_len})"
        );
        let device = attention_mask.device();
        let query_pos = Tensor::<1, Int>::arange(past as i64..k_len as i64, &device)
            .reshape([q_len, 1])
            .expand([q_len, k_len]);
        let key_pos = Tensor::<1, Int>::arange(0..k_len as i64, &device)
            .reshape([1, k_len])
            .expand([q_len, k_len]);
        let shape = [batch, 1, q_len, k_len];
        let future = key_pos
            .clone()
            .greater(query_pos.clone())
            .reshape([1, 1, q_len, k_len]);
        let own = key_pos.equal(query_pos).reshape([1, 1, q_len, k_len]);
        let padded = attention_mask.equal_elem(0).reshape([batch, 1, 1, k_len]);
        let blocked = future.expand(shape).bool_or(padded.expand(shape));
        // Queries that see nothing, `[batch, 1, q_len, 1]`: they see their own key.
        let sees_nothing = blocked.clone().all_dim(3);
        let unblocked = own.expand(shape).bool_and(sees_nothing.expand(shape));
        let blocked = blocked.bool_and(unblocked.bool_not());
        let additive = blocked.clone().float().mul_scalar(f32::MIN);
        Self { blocked, additive }
    }
}

/// Keys and values of the positions seen so far, for one layer (after RoPE).
#[derive(Debug, Clone)]
pub struct LayerKvCache {
    /// `[batch, kv_heads, past, head_dim]`.
    pub key: Tensor<4>,
    /// `[batch, kv_heads, past, head_dim]`.
    pub value: Tensor<4>,
}

/// `self_attn`: q/k/v/o projections (biases on q/k/v for Qwen2), per-head q/k RMSNorm for
/// Qwen3.
#[derive(Module, Debug)]
pub struct LlamaAttention {
    /// `q_proj`, `hidden → heads · head_dim`.
    pub q_proj: Linear,
    /// `k_proj`, `hidden → kv_heads · head_dim`.
    pub k_proj: Linear,
    /// `v_proj`, `hidden → kv_heads · head_dim`.
    pub v_proj: Linear,
    /// `o_proj`, `heads · head_dim → hidden`.
    pub o_proj: Linear,
    /// `q_norm` (Qwen3 only), over `head_dim`.
    pub q_norm: Option<LlamaRmsNorm>,
    /// `k_norm` (Qwen3 only), over `head_dim`.
    pub k_norm: Option<LlamaRmsNorm>,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads.
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl LlamaAttention {
    /// Randomly initialised attention for `config`.
    pub fn new(config: &LlamaConfig, device: &Device) -> Self {
        let (h, hd) = (config.hidden_size, config.head_dim);
        let (nh, nkv) = (config.num_attention_heads, config.num_key_value_heads);
        let bias = config.attention_bias();
        let norm = || {
            config
                .qk_norm()
                .then(|| LlamaRmsNorm::new(hd, config.rms_norm_eps, device))
        };
        Self {
            q_proj: LinearConfig::new(h, nh * hd).with_bias(bias).init(device),
            k_proj: LinearConfig::new(h, nkv * hd).with_bias(bias).init(device),
            v_proj: LinearConfig::new(h, nkv * hd).with_bias(bias).init(device),
            o_proj: LinearConfig::new(nh * hd, h).with_bias(false).init(device),
            q_norm: norm(),
            k_norm: norm(),
            num_heads: nh,
            num_kv_heads: nkv,
            head_dim: hd,
        }
    }

    /// `[batch, seq, heads · head_dim]` → `[batch, heads, seq, head_dim]`, with the optional
    /// per-head norm.
    fn split_heads(&self, x: Tensor<3>, heads: usize, norm: Option<&LlamaRmsNorm>) -> Tensor<4> {
        let [batch, seq, _] = x.dims();
        let x = x.reshape([batch, seq, heads, self.head_dim]);
        let x = match norm {
            Some(norm) => norm.forward(x),
            None => x,
        };
        x.swap_dims(1, 2)
    }

    /// Repeats each key/value head for the query heads of its group:
    /// `[batch, kv_heads, len, head_dim]` → `[batch, heads, len, head_dim]`.
    fn repeat_kv(&self, x: Tensor<4>) -> Tensor<4> {
        let groups = self.num_heads / self.num_kv_heads;
        if groups == 1 {
            return x;
        }
        let [batch, kv_heads, len, dim] = x.dims();
        x.unsqueeze_dim::<5>(2)
            .expand([batch, kv_heads, groups, len, dim])
            .reshape([batch, kv_heads * groups, len, dim])
    }

    /// Attends from the new positions to the cached and new ones.
    ///
    /// Returns the output `[batch, seq, hidden]` and, when `output_attentions`, the
    /// probabilities `[batch, heads, seq, past + seq]`. When `cache` is given, the new keys and
    /// values are appended to it.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`
    /// - `cos`, `sin`: `[seq, head_dim]` for positions `past..past + seq`
    /// - `mask`: see [`DecoderMask`]
    pub fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<2>,
        sin: &Tensor<2>,
        mask: &DecoderMask,
        cache: Option<&mut Option<LayerKvCache>>,
        output_attentions: bool,
    ) -> (Tensor<3>, Option<Tensor<4>>) {
        let [batch, seq, _] = x.dims();
        let q = self.split_heads(
            linear_rows(&self.q_proj, x.clone()),
            self.num_heads,
            self.q_norm.as_ref(),
        );
        let k = self.split_heads(
            linear_rows(&self.k_proj, x.clone()),
            self.num_kv_heads,
            self.k_norm.as_ref(),
        );
        let v = self.split_heads(linear_rows(&self.v_proj, x), self.num_kv_heads, None);
        let q = apply_rotary(q, cos, sin);
        let mut k = apply_rotary(k, cos, sin);
        let mut v = v;
        if let Some(cache) = cache {
            if let Some(past) = cache.take() {
                k = Tensor::cat(vec![past.key, k], 2);
                v = Tensor::cat(vec![past.value, v], 2);
            }
            *cache = Some(LayerKvCache {
                key: k.clone(),
                value: v.clone(),
            });
        }
        let k_len = k.dims()[2];
        let (k, v) = (self.repeat_kv(k), self.repeat_kv(v));

        let (context, probs) = if output_attentions {
            let scale = (self.head_dim as f64).sqrt().recip();
            let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale) + mask.additive.clone();
            let probs = softmax(scores, 3);
            (probs.clone().matmul(v), Some(probs))
        } else {
            let blocked = mask
                .blocked
                .clone()
                .expand([batch, self.num_heads, seq, k_len]);
            let context = attention(
                q,
                k,
                v,
                Some(blocked),
                None,
                AttentionModuleOptions::default(),
            );
            (context, None)
        };
        let context = context
            .swap_dims(1, 2)
            .reshape([batch, seq, self.num_heads * self.head_dim]);
        (linear_rows(&self.o_proj, context), probs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// `blocked[b][q][k]` as nested vectors.
    fn blocked(mask: &[&[i64]], past: usize) -> Vec<Vec<Vec<bool>>> {
        let device = Device::flex();
        let (batch, k_len) = (mask.len(), mask[0].len());
        let flat: Vec<i64> = mask.concat();
        let mask = Tensor::<2, Int>::from_data(TensorData::new(flat, [batch, k_len]), &device);
        let decoder = DecoderMask::new(mask, past, k_len - past);
        let q_len = k_len - past;
        let values = decoder.blocked.into_data().try_to_vec::<bool>().unwrap();
        let additive = decoder.additive.into_data().try_to_vec::<f32>().unwrap();
        for (b, a) in values.iter().zip(&additive) {
            assert_eq!(*a, if *b { f32::MIN } else { 0.0 });
        }
        (0..batch)
            .map(|b| {
                (0..q_len)
                    .map(|q| values[(b * q_len + q) * k_len..(b * q_len + q + 1) * k_len].to_vec())
                    .collect()
            })
            .collect()
    }

    /// Causal + key padding, the mask before padded queries that see nothing were handled.
    fn causal_and_padding(mask: &[&[i64]], past: usize) -> Vec<Vec<Vec<bool>>> {
        let k_len = mask[0].len();
        mask.iter()
            .map(|row| {
                (past..k_len)
                    .map(|q| (0..k_len).map(|k| k > q || row[k] == 0).collect())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn rows_that_see_a_key_keep_the_causal_padding_mask() {
        // Unpadded, right-padded, an inner gap, and with cached positions.
        for (mask, past) in [
            (&[&[1, 1, 1, 1][..], &[1, 1, 0, 0]][..], 0),
            (&[&[1, 0, 1, 1, 0][..]][..], 0),
            (&[&[1, 1, 1, 0, 0, 1][..], &[1, 1, 1, 1, 1, 1]][..], 3),
        ] {
            assert_eq!(
                blocked(mask, past),
                causal_and_padding(mask, past),
                "{mask:?}"
            );
        }
    }

    #[test]
    fn a_query_that_sees_nothing_sees_itself() {
        // Left padding: queries 0 and 1 of row 0 see only padded keys.
        let mask: &[&[i64]] = &[&[0, 0, 1, 1], &[1, 1, 1, 1]];
        let got = blocked(mask, 0);
        let mut want = causal_and_padding(mask, 0);
        assert!(want[0][0].iter().all(|&b| b) && want[0][1].iter().all(|&b| b));
        want[0][0][0] = false;
        want[0][1][1] = false;
        assert_eq!(got, want);
        // An all-padding row: every query sees itself only.
        let got = blocked(&[&[0, 0, 0]], 0);
        for (q, row) in got[0].iter().enumerate() {
            let seen: Vec<usize> = (0..3).filter(|&k| !row[k]).collect();
            assert_eq!(seen, [q]);
        }
    }
}
